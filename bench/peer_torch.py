#!/usr/bin/env python3
"""The benchmarks' peer: PyTorch on CPU (Debian's python3-torch with OpenBLAS).

Reads a JSON list of cases on stdin (the same list bench/native.ts measures) and prints one JSON object
per case: {"case": name, "value": number, "unit": unit}. Each case is timed as the best of several
repeats after a warm-up, with torch.set_num_threads(threads).
"""
import json
import sys
import time

import torch


def best_of(fn, repeats, warmup=1):
    for _ in range(warmup):
        fn()
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def run(case):
    kind = case["kind"]
    g = torch.Generator().manual_seed(1)
    rnd = lambda *s: torch.rand(*s, generator=g) * 2 - 1
    reps = case.get("repeats", 5)
    if kind == "matmul":
        M, N, K = case["M"], case["N"], case["K"]
        x, w = rnd(M, K), rnd(N, K)
        y = torch.empty(M, N)
        t = best_of(lambda: torch.matmul(x, w.t(), out=y), reps)
        return 2 * M * N * K / t / 1e9
    if kind == "lora":
        M, N, K, r = case["M"], case["N"], case["K"], case["r"]
        s = case["scale"]
        x = rnd(M, K).requires_grad_(True)
        w = rnd(N, K)  # frozen
        a = (rnd(r, K) * 0.1).requires_grad_(True)
        b = (rnd(N, r) * 0.1).requires_grad_(True)
        dy = rnd(M, N)

        def step():
            x.grad = a.grad = b.grad = None
            y = torch.nn.functional.linear(x, w) + s * torch.nn.functional.linear(torch.nn.functional.linear(x, a), b)
            y.backward(dy)

        return best_of(step, reps) * 1e3
    if kind == "attention":
        B, T, Hq, Hkv, D = case["B"], case["T"], case["Hq"], case["Hkv"], case["D"]
        q = rnd(B, Hq, T, D).requires_grad_(True)
        k = rnd(B, Hkv, T, D).requires_grad_(True)
        v = rnd(B, Hkv, T, D).requires_grad_(True)
        do = rnd(B, Hq, T, D)
        mask = torch.ones(T, T, dtype=torch.bool).triu(1)
        rep = Hq // Hkv

        def step():
            q.grad = k.grad = v.grad = None
            kk = k.repeat_interleave(rep, dim=1)
            vv = v.repeat_interleave(rep, dim=1)
            s = (q @ kk.transpose(-1, -2)) * (D ** -0.5)
            s = s.masked_fill(mask, float("-inf"))
            o = torch.softmax(s, dim=-1) @ vv
            o.backward(do)

        return best_of(step, reps) * 1e3
    if kind == "adamw":
        n = case["n"]
        p = torch.nn.Parameter(rnd(n))
        p.grad = rnd(n)
        opt = torch.optim.AdamW([p], lr=1e-3, weight_decay=0.01)
        return best_of(opt.step, reps, warmup=2) * 1e3
    if kind == "triad":
        n = case["n"]
        x, y = rnd(n), rnd(n)
        t = best_of(lambda: y.add_(x, alpha=0.5), reps, warmup=2)
        return 12 * n / t / 1e9
    raise ValueError("unknown case kind " + kind)


def main():
    spec = json.load(sys.stdin)
    torch.set_num_threads(spec["threads"])
    for case in spec["cases"]:
        value = run(case)
        print(json.dumps({"case": case["name"], "value": value}), flush=True)


if __name__ == "__main__":
    main()
