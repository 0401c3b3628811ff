#!/usr/bin/env bash
# Installs the benchmarks' peer: PyTorch on CPU from Debian (python3-torch) using OpenBLAS
# (libopenblas0-pthread). Run as root (or with sudo): npm run bench:install-peer
set -euo pipefail
SUDO=""
if [ "$(id -u)" != "0" ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends python3 python3-torch python3-numpy libopenblas0-pthread >/dev/null
/usr/bin/python3 -c "import torch; print('peer ready: torch', torch.__version__, 'threads', torch.get_num_threads())"
