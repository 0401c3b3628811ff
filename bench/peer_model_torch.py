#!/usr/bin/env python3
"""PyTorch CPU peer of bench/model-native.ts: the same Llama-shaped model and training step.

Reads one JSON object on stdin (the model config in camelCase plus B, T, r, steps, checkpointing, threads)
and prints one JSON line per weight dtype: tokens/s of a full step (forward, loss, backward, clip, AdamW)
with LoRA r on all seven projections, written as transformers' LlamaForCausalLM eager path + PEFT compute
it (RMSNorm in f32, rotate_half RoPE, repeat_kv GQA, causal softmax attention, SiLU-gated MLP, tied
lm_head, full-vocabulary cross-entropy). transformers and peft are not installed here, hence the model
is spelled out; random weights.
"""
import json
import math
import resource
import sys
import time

import torch
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint


class Lora(torch.nn.Module):
    def __init__(self, out_f, in_f, r, alpha, dtype):
        super().__init__()
        self.weight = torch.nn.Parameter((torch.rand(out_f, in_f) * 2 - 1).div_(math.sqrt(in_f)).to(dtype), requires_grad=False)
        self.lora_A = torch.nn.Parameter((torch.rand(r, in_f) * 2 - 1).div_(math.sqrt(in_f)).to(dtype))
        self.lora_B = torch.nn.Parameter(torch.zeros(out_f, r, dtype=dtype))
        self.scaling = alpha / r

    def forward(self, x):
        return F.linear(x, self.weight) + F.linear(F.linear(x, self.lora_A), self.lora_B) * self.scaling


class RMSNorm(torch.nn.Module):
    def __init__(self, c, eps, dtype):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.ones(c, dtype=dtype), requires_grad=False)
        self.eps = eps

    def forward(self, x):
        dt = x.dtype
        x = x.to(torch.float32)
        x = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * x.to(dt)


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat((-x[..., h:], x[..., :h]), dim=-1)


class Layer(torch.nn.Module):
    def __init__(self, c, cfg, r, dtype):
        super().__init__()
        C, I, D = c["hiddenSize"], c["intermediateSize"], c["headDim"]
        self.hq, self.hkv, self.d = c["numAttentionHeads"], c["numKeyValueHeads"], D
        a = 2 * r
        self.q = Lora(self.hq * D, C, r, a, dtype)
        self.k = Lora(self.hkv * D, C, r, a, dtype)
        self.v = Lora(self.hkv * D, C, r, a, dtype)
        self.o = Lora(C, self.hq * D, r, a, dtype)
        self.gate = Lora(I, C, r, a, dtype)
        self.up = Lora(I, C, r, a, dtype)
        self.down = Lora(C, I, r, a, dtype)
        self.ln1 = RMSNorm(C, c["rmsNormEps"], dtype)
        self.ln2 = RMSNorm(C, c["rmsNormEps"], dtype)

    def forward(self, x, cos, sin, mask):
        B, T, _ = x.shape
        h = self.ln1(x)
        q = self.q(h).view(B, T, self.hq, self.d).transpose(1, 2)
        k = self.k(h).view(B, T, self.hkv, self.d).transpose(1, 2)
        v = self.v(h).view(B, T, self.hkv, self.d).transpose(1, 2)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        rep = self.hq // self.hkv
        k = k.repeat_interleave(rep, dim=1)
        v = v.repeat_interleave(rep, dim=1)
        s = torch.matmul(q, k.transpose(2, 3)) / math.sqrt(self.d) + mask
        p = torch.softmax(s, dim=-1, dtype=torch.float32).to(q.dtype)
        o = torch.matmul(p, v).transpose(1, 2).reshape(B, T, -1)
        x = x + self.o(o)
        h = self.ln2(x)
        return x + self.down(F.silu(self.gate(h)) * self.up(h))


def run(c, dtype):
    torch.manual_seed(0)
    B, T, r = c["B"], c["T"], c["r"]
    C, V = c["hiddenSize"], c["vocabSize"]
    embed = (torch.rand(V, C) * 0.08 - 0.04).to(dtype)
    layers = torch.nn.ModuleList([Layer(c, c, r, dtype) for _ in range(c["numHiddenLayers"])])
    norm = RMSNorm(C, c["rmsNormEps"], dtype)
    params = [p for p in layers.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-4, weight_decay=0.0)
    D = c["headDim"]
    inv = 1.0 / (c["ropeTheta"] ** (torch.arange(0, D, 2, dtype=torch.int64).float() / D))
    f = torch.outer(torch.arange(T).float(), inv)
    emb = torch.cat((f, f), dim=-1)
    cos, sin = emb.cos().to(dtype), emb.sin().to(dtype)
    mask = torch.full((T, T), float("-inf")).triu(1).to(dtype)
    ids = torch.randint(0, V, (B, T))
    tg = torch.randint(0, V, (B, T))

    def step():
        opt.zero_grad(set_to_none=True)
        x = F.embedding(ids, embed)
        for layer in layers:
            x = checkpoint(layer, x, cos, sin, mask, use_reentrant=False) if c["checkpointing"] else layer(x, cos, sin, mask)
        logits = F.linear(norm(x), embed).float()
        loss = F.cross_entropy(logits.view(-1, V), tg.view(-1))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        return loss.item()

    step()
    best = float("inf")
    for _ in range(c["steps"]):
        t0 = time.perf_counter()
        step()
        best = min(best, time.perf_counter() - t0)
    return B * T / best, best


def main():
    c = json.load(sys.stdin)
    torch.set_num_threads(c.get("threads", 2))
    for name in c.get("dtypes", ["f32", "bf16"]):
        dtype = {"f32": torch.float32, "bf16": torch.bfloat16}[name]
        tps, best = run(c, dtype)
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024  # peak of the process so far (MB)
        print(json.dumps({"peer": f"torch {torch.__version__} {name} weights+activations", "checkpointing": c["checkpointing"],
                          "bestMs": round(best * 1000), "tokensPerSec": round(tps), "peakRssMB": rss}))
        sys.stdout.flush()


if __name__ == "__main__":
    main()
