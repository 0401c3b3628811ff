// A self-contained LoRA fit on the native core: a frozen linear layer W (bf16, as real base weights are)
// and a target layer W + ΔW with a rank-r ΔW; the fused LoRA linear, its backward, gradient clipping and
// AdamW learn A and B so that x·Wᵀ + s·x·Aᵀ·Bᵀ matches the target. It exercises the whole training step
// of one adapted layer and shows the loss falling; the full model pipeline builds on the same ops.
import { Tensor, ops } from '../../bindings/index.js';

export interface DemoOptions {
  inFeatures?: number;
  outFeatures?: number;
  tokens?: number;
  r?: number;
  loraAlpha?: number;
  steps?: number;
  lr?: number;
  seed?: number;
  onStep?: (step: number, loss: number, gradNorm: number) => void;
}

export interface DemoResult {
  losses: number[];
  initialLoss: number;
  finalLoss: number;
  millisPerStep: number;
}

function lowRankDelta(out: number, inp: number, rank: number, seed: number): Tensor {
  const u = Tensor.random([out, rank], seed, -0.5, 0.5);
  const v = Tensor.random([rank, inp], seed + 1, -0.5, 0.5);
  const d = Tensor.empty('f32', [out, inp]);
  ops.matmul(u, v, d, false, false, 1, 0);
  u.release();
  v.release();
  return d;
}

export async function fitLoraDemo(opts: DemoOptions = {}): Promise<DemoResult> {
  const K = opts.inFeatures ?? 256;
  const N = opts.outFeatures ?? 256;
  const M = opts.tokens ?? 512;
  const r = opts.r ?? 8;
  const steps = opts.steps ?? 60;
  const seed = opts.seed ?? 7;
  const scale = ops.loraScaling(opts.loraAlpha ?? 16, r, false);

  const w32 = Tensor.random([N, K], seed, -0.1, 0.1);
  const w = w32.convert('bf16');
  const delta = lowRankDelta(N, K, 4, seed + 10);
  const x = Tensor.random([M, K], seed + 20);
  // target = x·(W + ΔW)ᵀ, with W as the frozen bf16 weight sees it
  const wTarget = w.convert('f32');
  ops.accumulate(delta, 1, wTarget);
  const target = Tensor.empty('f32', [M, N]);
  ops.linearForward(x, wTarget, target);

  // PEFT initialization: A Kaiming-uniform (bound 1/sqrt(in)), B zero
  const bound = 1 / Math.sqrt(K);
  const a = Tensor.random([r, K], seed + 30, -bound, bound);
  const b = Tensor.empty('f32', [N, r]);
  const params = [a, b];
  const grads = [Tensor.empty('f32', [r, K]), Tensor.empty('f32', [N, r])];
  const m = [Tensor.empty('f32', [r, K]), Tensor.empty('f32', [N, r])];
  const v = [Tensor.empty('f32', [r, K]), Tensor.empty('f32', [N, r])];
  const y = Tensor.empty('f32', [M, N]);
  const u = Tensor.empty('f32', [M, r]);
  const dy = Tensor.empty('f32', [M, N]);
  const cfg = { scale, dropout: 0, seed };

  const losses: number[] = [];
  const t0 = performance.now();
  for (let step = 1; step <= steps; step++) {
    await ops.loraLinearForwardAsync(x, w, a, b, cfg, y, u);
    // mean squared error and its gradient: dy = 2 (y - target) / numel
    const yv = y.data();
    const tv = target.data();
    const dv = dy.data();
    let loss = 0;
    for (let i = 0; i < yv.length; i++) {
      const e = yv[i] - tv[i];
      loss += e * e;
      dv[i] = (2 * e) / yv.length;
    }
    loss /= yv.length;
    losses.push(loss);
    ops.zero(grads);
    await ops.loraLinearBackwardAsync(dy, x, w, a, b, u, cfg, null, grads[0], grads[1], null);
    const gradNorm = ops.clipGradNorm(grads, 1.0);
    ops.adamwStep(params, grads, m, v, { lr: opts.lr ?? 1e-2, weightDecay: 0, step });
    opts.onStep?.(step, loss, gradNorm);
  }
  const millisPerStep = (performance.now() - t0) / steps;
  for (const t of [w32, w, delta, x, wTarget, target, a, b, ...grads, ...m, ...v, y, u, dy]) t.release();
  return { losses, initialLoss: losses[0], finalLoss: losses[losses.length - 1], millisPerStep };
}
