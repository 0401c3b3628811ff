// npm run bench:native [-- --json] [-- --quick]
// The native core against PyTorch on CPU, same shapes, same run: matmul (f32 weights and bf16 weights),
// LoRA linear forward+backward, attention forward+backward, AdamW over 10M parameters, and a triad
// that measures this machine's memory bandwidth. Shapes of SmolLM2-135M and Qwen2.5-0.5B, 2048 tokens, r=16.
import { join } from 'node:path';
import { Tensor, ops, nativeInfo, packageRoot } from '../bindings/index.js';
import { bestMs, print, row, runTorchPeer, type BenchRow } from './lib/report.js';

const json = process.argv.includes('--json');
const quick = process.argv.includes('--quick');
const T = quick ? 512 : 2048;
const R = 16;

const MODELS = [
  { name: 'smollm2-135m', hidden: 576, inter: 1536, hq: 9, hkv: 3, d: 64 },
  { name: 'qwen2.5-0.5b', hidden: 896, inter: 4864, hq: 14, hkv: 2, d: 64 },
];

type Case =
  | { name: string; kind: 'matmul'; M: number; N: number; K: number; repeats: number }
  | { name: string; kind: 'lora'; M: number; N: number; K: number; r: number; scale: number; repeats: number }
  | { name: string; kind: 'attention'; B: number; T: number; Hq: number; Hkv: number; D: number; repeats: number }
  | { name: string; kind: 'adamw'; n: number; repeats: number }
  | { name: string; kind: 'triad'; n: number; repeats: number };

const cases: Case[] = [];
for (const m of MODELS) {
  cases.push({ name: `matmul f32 ${m.name} gate_proj ${T}x${m.inter}x${m.hidden}`, kind: 'matmul', M: T, N: m.inter, K: m.hidden, repeats: 8 });
  cases.push({ name: `matmul f32 ${m.name} down_proj ${T}x${m.hidden}x${m.inter}`, kind: 'matmul', M: T, N: m.hidden, K: m.inter, repeats: 8 });
}
for (const m of MODELS) {
  cases.push({ name: `lora fwd+bwd ${m.name} gate_proj r=${R}`, kind: 'lora', M: T, N: m.inter, K: m.hidden, r: R, scale: 2, repeats: 5 });
}
for (const m of MODELS) {
  cases.push({ name: `attention fwd+bwd ${m.name} T=${T}`, kind: 'attention', B: 1, T, Hq: m.hq, Hkv: m.hkv, D: m.d, repeats: 3 });
}
cases.push({ name: 'adamw 10M params', kind: 'adamw', n: 10_000_000, repeats: 10 });
cases.push({ name: 'triad y+=a*x 40M f32 (memory bandwidth)', kind: 'triad', n: 40_000_000, repeats: 10 });

function bf16Copy(t: Tensor): Tensor {
  return t.convert('bf16');
}

/** Our measurements: one or more rows per case (bf16-weight variants beside the f32 ones). */
function measure(c: Case): { label: string; unit: 'GFLOP/s' | 'ms' | 'GB/s'; value: number }[] {
  switch (c.kind) {
    case 'matmul': {
      const x = Tensor.random([c.M, c.K], 1);
      const w = Tensor.random([c.N, c.K], 2);
      const wb = bf16Copy(w);
      const y = Tensor.empty('f32', [c.M, c.N]);
      const flops = 2 * c.M * c.N * c.K;
      const f32 = flops / bestMs(() => ops.linearForward(x, w, y), c.repeats) / 1e6;
      const bf = flops / bestMs(() => ops.linearForward(x, wb, y), c.repeats) / 1e6;
      [x, w, wb, y].forEach((t) => t.release());
      return [
        { label: c.name, unit: 'GFLOP/s', value: f32 },
        { label: c.name.replace('matmul f32', 'matmul bf16-weights'), unit: 'GFLOP/s', value: bf },
      ];
    }
    case 'lora': {
      const x = Tensor.random([c.M, c.K], 1);
      const w = Tensor.random([c.N, c.K], 2);
      const wb = bf16Copy(w);
      const a = Tensor.random([c.r, c.K], 3, -0.1, 0.1);
      const b = Tensor.random([c.N, c.r], 4, -0.1, 0.1);
      const dy = Tensor.random([c.M, c.N], 5);
      const y = Tensor.empty('f32', [c.M, c.N]);
      const u = Tensor.empty('f32', [c.M, c.r]);
      const dx = Tensor.empty('f32', [c.M, c.K]);
      const da = Tensor.empty('f32', [c.r, c.K]);
      const db = Tensor.empty('f32', [c.N, c.r]);
      const cfg = { scale: c.scale, dropout: 0, seed: 0 };
      const step = (wt: Tensor) => () => {
        ops.zero([da, db]);
        ops.loraLinearForward(x, wt, a, b, cfg, y, u);
        ops.loraLinearBackward(dy, x, wt, a, b, u, cfg, dx, da, db, null);
      };
      const f32 = bestMs(step(w), c.repeats);
      const bf = bestMs(step(wb), c.repeats);
      [x, w, wb, a, b, dy, y, u, dx, da, db].forEach((t) => t.release());
      return [
        { label: `${c.name} f32 weights`, unit: 'ms', value: f32 },
        { label: `${c.name} bf16 weights`, unit: 'ms', value: bf },
      ];
    }
    case 'attention': {
      const q = Tensor.random([c.B, c.T, c.Hq, c.D], 1);
      const k = Tensor.random([c.B, c.T, c.Hkv, c.D], 2);
      const v = Tensor.random([c.B, c.T, c.Hkv, c.D], 3);
      const dout = Tensor.random([c.B, c.T, c.Hq, c.D], 4);
      const out = Tensor.empty('f32', q.shape);
      const lse = Tensor.empty('f32', [c.B, c.Hq, c.T]);
      const dq = Tensor.empty('f32', q.shape);
      const dk = Tensor.empty('f32', k.shape);
      const dv = Tensor.empty('f32', v.shape);
      const scale = 1 / Math.sqrt(c.D);
      const ms = bestMs(() => {
        ops.attentionForward(q, k, v, null, scale, true, out, lse);
        ops.attentionBackward(q, k, v, null, scale, true, out, lse, dout, dq, dk, dv);
      }, c.repeats);
      [q, k, v, dout, out, lse, dq, dk, dv].forEach((t) => t.release());
      return [{ label: c.name, unit: 'ms', value: ms }];
    }
    case 'adamw': {
      const p = Tensor.random([c.n], 1);
      const g = Tensor.random([c.n], 2);
      const m = Tensor.empty('f32', [c.n]);
      const v = Tensor.empty('f32', [c.n]);
      let step = 0;
      const ms = bestMs(() => ops.adamwStep([p], [g], [m], [v], { lr: 1e-3, weightDecay: 0.01, step: ++step }), c.repeats, 2);
      [p, g, m, v].forEach((t) => t.release());
      return [{ label: c.name, unit: 'ms', value: ms }];
    }
    case 'triad': {
      const x = Tensor.random([c.n], 1);
      const y = Tensor.random([c.n], 2);
      const ms = bestMs(() => ops.accumulate(x, 0.5, y), c.repeats, 2);
      [x, y].forEach((t) => t.release());
      return [{ label: c.name, unit: 'GB/s', value: (12 * c.n) / ms / 1e6 }];
    }
  }
}

const info = nativeInfo();
const threads = info.threads;
if (!json) {
  console.log(`starweave native core: isa ${info.isa.active} (bf16 dot: ${info.isa.bf16Dot}), ${threads} threads, T=${T}`);
}
const peer = runTorchPeer(join(packageRoot(), 'bench', 'peer_torch.py'), { threads, cases });
if (peer.error && !json) console.log(`note: ${peer.error}`);

const rows: BenchRow[] = [];
for (const c of cases) {
  const p = peer.values.get(c.name) ?? null;
  for (const m of measure(c)) rows.push(row(m.label, m.unit, m.value, p, peer.name));
}
print(rows, json);
