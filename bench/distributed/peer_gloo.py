#!/usr/bin/env python3
"""PyTorch peer of bench/distributed.ts: torch.distributed with the gloo backend on CPU, N processes on this
machine (the standard for CPU data parallelism).

Reads one JSON object on stdin:
  {"workers": N, "threads": per-process threads, "elems": all-reduce length (f32), "reps": 20,
   "train": null | {model config in camelCase (bench/peer_model_torch.py's), "T", "r", "alpha", "microBatch",
                    "gradAccum", "steps", "dtype": "bf16" | "f32"}}
and prints JSON lines:
  {"case": "allreduce", "workers": N, "ms": median over reps of the slowest rank's time}
  {"case": "train", "workers": N, "stepMs": median step time (the slowest rank's; the first step is a
   warm-up), "tokensPerStep": gradAccum * microBatch * T, "tokensPerSec": ...}

The training step is bench/peer_model_torch.py's model (SmolLM2-shaped, LoRA on all seven projections,
full-vocabulary cross-entropy) wrapped in DistributedDataParallel: micro-batch k of a step is rank
k % N's (as ours), the first ones under no_sync() and the last one's backward all-reducing the LoRA
gradients; then clipping and AdamW. The base weights are bf16 and the LoRA parameters f32 under CPU
autocast(bf16) (PEFT's usual mixed precision): gloo in this PyTorch cannot all-reduce bf16, and f32 LoRA
gradients are what ours exchanges (the same 4 bytes per parameter).
"""
import json
import math
import os
import socket
import statistics
import sys
import time

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from peer_model_torch import Layer, RMSNorm  # noqa: E402


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def slowest(values):
    """Element-wise max over the ranks of a list of floats."""
    t = torch.tensor(values, dtype=torch.float64)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return t.tolist()


def bench_allreduce(c):
    n = c["elems"]
    x = torch.rand(n, dtype=torch.float32)
    for _ in range(3):
        dist.all_reduce(x)
    times = []
    for _ in range(c.get("reps", 20)):
        x.fill_(1.0)
        dist.barrier()
        t0 = time.perf_counter()
        dist.all_reduce(x)
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(slowest(times))


class Model(torch.nn.Module):
    def __init__(self, c, dtype):
        super().__init__()
        torch.manual_seed(0)
        C, V, r = c["hiddenSize"], c["vocabSize"], c["r"]
        self.V = V
        self.register_buffer("embed", (torch.rand(V, C) * 0.08 - 0.04).to(dtype))
        self.layers = torch.nn.ModuleList([Layer(c, c, r, dtype) for _ in range(c["numHiddenLayers"])])
        self.norm = RMSNorm(C, c["rmsNormEps"], dtype)
        # the adapter in f32 (its gradients are what the workers exchange)
        for layer in self.layers:
            for lin in (layer.q, layer.k, layer.v, layer.o, layer.gate, layer.up, layer.down):
                lin.lora_A = torch.nn.Parameter(lin.lora_A.detach().float())
                lin.lora_B = torch.nn.Parameter(lin.lora_B.detach().float())
                lin.scaling = c["alpha"] / r
        D, T = c["headDim"], c["T"]
        inv = 1.0 / (c["ropeTheta"] ** (torch.arange(0, D, 2, dtype=torch.int64).float() / D))
        f = torch.outer(torch.arange(T).float(), inv)
        emb = torch.cat((f, f), dim=-1)
        self.register_buffer("cos", emb.cos().to(dtype))
        self.register_buffer("sin", emb.sin().to(dtype))
        self.register_buffer("mask", torch.full((T, T), float("-inf")).triu(1).to(dtype))

    def forward(self, ids, tg):
        x = F.embedding(ids, self.embed)
        for layer in self.layers:
            x = layer(x, self.cos, self.sin, self.mask)
        logits = F.linear(self.norm(x), self.embed).float()
        return F.cross_entropy(logits.view(-1, self.V), tg.view(-1))


def bench_train(c, rank, world):
    dtype = {"f32": torch.float32, "bf16": torch.bfloat16}[c.get("dtype", "bf16")]
    model = Model(c, dtype)
    # the frozen base and the buffers are the same on every rank (same seed) and never synchronized (gloo has
    # no bf16 collectives here); DDP syncs only the adapter
    frozen = [n for n, p in model.named_parameters() if not p.requires_grad] + [n for n, _ in model.named_buffers()]
    torch.nn.parallel.DistributedDataParallel._set_params_and_buffers_to_ignore_for_model(model, frozen)
    ddp = torch.nn.parallel.DistributedDataParallel(model, broadcast_buffers=False)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-4, weight_decay=0.0)
    B, T, G, V = c["microBatch"], c["T"], c["gradAccum"], c["vocabSize"]
    gen = torch.Generator().manual_seed(1)
    micro = [(torch.randint(0, V, (B, T), generator=gen), torch.randint(0, V, (B, T), generator=gen)) for _ in range(G)]
    mine = [micro[k] for k in range(G) if k % world == rank]
    autocast = dtype == torch.bfloat16

    def step():
        opt.zero_grad(set_to_none=True)
        for i, (ids, tg) in enumerate(mine):
            last = i == len(mine) - 1
            ctx = ddp.no_sync() if not last else _null()
            with ctx:
                with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
                    loss = ddp(ids, tg) / G
                loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()

    times = []
    for _ in range(c["steps"]):
        dist.barrier()
        t0 = time.perf_counter()
        step()
        times.append((time.perf_counter() - t0) * 1000)
    ms = statistics.median(slowest(times)[1:] or times)
    return ms, G * B * T


class _null:
    def __enter__(self):
        return self

    def __exit__(self, *a):
        return False


def worker(rank, c, port):
    os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ["MASTER_PORT"] = str(port)
    torch.set_num_threads(c.get("threads", 1))
    world = c["workers"]
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        if c.get("elems"):
            ms = bench_allreduce(c)
            if rank == 0:
                print(json.dumps({"case": "allreduce", "workers": world, "ms": ms}), flush=True)
        if c.get("train"):
            t = dict(c["train"])
            t.setdefault("headDim", t["hiddenSize"] // t["numAttentionHeads"])
            ms, tokens = bench_train(t, rank, world)
            if rank == 0:
                print(json.dumps({"case": "train", "workers": world, "stepMs": ms, "tokensPerStep": tokens,
                                  "tokensPerSec": tokens / (ms / 1000)}), flush=True)
    finally:
        dist.destroy_process_group()


def main():
    c = json.load(sys.stdin)
    print(json.dumps({"peer": f"torch {torch.__version__} gloo"}), flush=True)
    mp.spawn(worker, args=(c, free_port()), nprocs=c["workers"], join=True)


if __name__ == "__main__":
    main()
