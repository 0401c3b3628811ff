#!/usr/bin/env bash
# The Elixir client's ExUnit suite (erlang_port/) against the real sidecar. Needs Erlang/Elixir
# (Debian: apt-get install -y elixir erlang-dev) and the compiled TypeScript (dist/), built here first.
set -euo pipefail
cd "$(dirname "$0")/.."
export HOME="${HOME:-/root}" LANG="${LANG:-C.UTF-8}" MIX_ENV=test
if ! command -v mix >/dev/null; then
  echo "scripts/test-elixir.sh: mix not found: install Erlang and Elixir (apt-get install -y elixir erlang-dev)" >&2
  exit 1
fi
if [ "${SKIP_BUILD_TS:-}" != 1 ]; then npm run build:ts --silent; fi
cd erlang_port
mix compile --warnings-as-errors
mix test "$@"
