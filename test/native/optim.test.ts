// Optimizer ops: the fused AdamW step over several tensors and several steps against the f64
// torch.optim.AdamW reference (tight tolerance), decoupled weight decay, argument errors; global
// gradient norm, torch-style clipping (and no clipping under max_norm); zero.
//
// Tolerances: params |err| <= 2e-6·|p| + 1e-7·step (a handful of f32 roundings per step), moments
// rtol 2e-6 (+2e-8·step absolute for m, whose β1·m + (1−β1)·g can cancel; +1e-12 for v); global norm rtol 1e-12 (squares summed in f64); clipped grads rtol 1e-6.
import { Tensor, ops } from '../../bindings/index.js';
import { expectClose, expectEqual, uniform } from '../helpers/numeric.js';
import { adamwRef, adamwStepsRef, globalNormRef, clipRef } from '../helpers/reference.js';
import type { AdamWRef } from '../helpers/reference.js';
import { f32, read, filled } from '../helpers/tensors.js';

describe('adamwStep', () => {
  const SIZES: number[][] = [[1], [7], [33, 3], [1000], [20011]];

  test.each([
    [{ lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.01 }],
    [{ lr: 3e-2, beta1: 0.8, beta2: 0.95, eps: 1e-6, weightDecay: 0.1 }],
    [{ lr: 5e-4, beta1: 0, beta2: 0.5, eps: 1e-3, weightDecay: 0 }],
  ])('5 steps over %j tensors of sizes 1, 7, 33x3, 1000, 20011 match torch.optim.AdamW', (hp) => {
    const P = SIZES.map((s, i) => uniform(s.reduce((a, b) => a * b), 100 + i, -1, 1));
    const Mr = P.map((p) => new Float64Array(p.length));
    const Vr = P.map((p) => new Float64Array(p.length));
    const Pr = P.map((p) => Float64Array.from(p));
    const params = P.map((p, i) => f32(p, SIZES[i]));
    const m = SIZES.map((s) => Tensor.empty('f32', s));
    const v = SIZES.map((s) => Tensor.empty('f32', s));
    for (let step = 1; step <= 5; step++) {
      const G = P.map((p, i) => uniform(p.length, 1000 * step + i, -0.5, 0.5));
      ops.adamwStep(params, G.map((g, i) => f32(g, SIZES[i])), m, v, { ...hp, step });
      Pr.forEach((p, i) => adamwRef(p, G[i], Mr[i], Vr[i], { ...hp, step }));
      params.forEach((p, i) => {
        expectClose(`param ${i} after step ${step}`, read(p), Pr[i], { rtol: 2e-6, atol: 1e-7 * step, shape: SIZES[i] });
        expectClose(`m ${i} after step ${step}`, read(m[i]), Mr[i], { rtol: 2e-6, atol: 2e-8 * step });
        expectClose(`v ${i} after step ${step}`, read(v[i]), Vr[i], { rtol: 2e-6, atol: 1e-12 });
      });
    }
    // the parameters moved (the comparison above is about real updates)
    const moved = read(params[3]).map((x, i) => Math.abs(x - P[3][i]));
    expect(Math.max(...moved)).toBeGreaterThan(hp.lr);
  });

  test('defaults are torch.optim.AdamW defaults (beta1 0.9, beta2 0.999, eps 1e-8, weight decay 0.01)', () => {
    const p0 = uniform(100, 1);
    const g = uniform(100, 2);
    const p = f32(p0, [100]);
    ops.adamwStep([p], [f32(g, [100])], [Tensor.empty('f32', [100])], [Tensor.empty('f32', [100])], { lr: 0.01, step: 1 });
    const ref = Float64Array.from(p0);
    const hp: AdamWRef = { lr: 0.01, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.01, step: 1 };
    adamwRef(ref, g, new Float64Array(100), new Float64Array(100), hp);
    expectClose('default hyper-parameters', read(p), ref, { rtol: 2e-6, atol: 1e-7 });
  });

  test('ten steps with a constant gradient, from step 4 on (resumed moments), match the multi-step reference', () => {
    const n = 333;
    const p0 = uniform(n, 7);
    const g = uniform(n, 8, -0.3, 0.3);
    const m0 = uniform(n, 9, -0.01, 0.01);
    const v0 = uniform(n, 10, 0, 1e-3);
    const hp = { lr: 2e-3, beta1: 0.9, beta2: 0.98, eps: 1e-8, weightDecay: 0.05 };
    const P = f32(p0, [n]);
    const M = f32(m0, [n]);
    const V = f32(v0, [n]);
    const G = f32(g, [n]);
    for (let step = 4; step < 14; step++) ops.adamwStep([P], [G], [M], [V], { ...hp, step });
    const [pr, mr, vr] = [Float64Array.from(p0), Float64Array.from(m0), Float64Array.from(v0)];
    adamwStepsRef(pr, new Array(10).fill(g), mr, vr, hp, 4);
    expectClose('params after 10 steps', read(P), pr, { rtol: 2e-6, atol: 2e-6 });
    expectClose('m after 10 steps', read(M), mr, { rtol: 1e-5, atol: 1e-8 });
    expectClose('v after 10 steps', read(V), vr, { rtol: 1e-5, atol: 1e-12 });
  });

  test('first step moves every parameter by about lr·sign(g) (bias correction)', () => {
    const g = uniform(1000, 3);
    const p = Tensor.empty('f32', [1000]);
    ops.adamwStep([p], [f32(g, [1000])], [Tensor.empty('f32', [1000])], [Tensor.empty('f32', [1000])], { lr: 0.1, weightDecay: 0, step: 1 });
    const got = read(p);
    for (let i = 0; i < 1000; i++) if (Math.abs(g[i]) > 1e-3) expect(got[i]).toBeCloseTo(-0.1 * Math.sign(g[i]), 4);
  });

  test('weight decay is decoupled: p·(1 − lr·wd) with a zero gradient, and the same update for any p', () => {
    const p0 = uniform(500, 4, -3, 3);
    const p = f32(p0, [500]);
    ops.adamwStep([p], [Tensor.empty('f32', [500])], [Tensor.empty('f32', [500])], [Tensor.empty('f32', [500])], { lr: 0.1, weightDecay: 0.5, step: 3 });
    const decay = 1 - Math.fround(0.1) * Math.fround(0.5);
    expectClose('zero grad: pure decay', read(p), p0.map((x) => x * decay), { rtol: 2e-7 });

    // two parameter tensors with the same gradient and different values: the Adam part of the update is
    // identical (an L2 penalty folded into the gradient would make it depend on p)
    const g = uniform(200, 5);
    const a0 = uniform(200, 6, -1, 1);
    const b0 = a0.map((x) => x + 5);
    const A = f32(a0, [200]);
    const B = f32(b0, [200]);
    ops.adamwStep([A, B], [f32(g, [200]), f32(g, [200])], [Tensor.empty('f32', [200]), Tensor.empty('f32', [200])], [Tensor.empty('f32', [200]), Tensor.empty('f32', [200])], { lr: 0.05, weightDecay: 0.2, step: 1 });
    const d = 1 - Math.fround(0.05) * Math.fround(0.2);
    const ua = read(A).map((x, i) => x - a0[i] * d);
    const ub = read(B).map((x, i) => x - b0[i] * d);
    expectClose('Adam update independent of p', ua, ub, { atol: 2e-6 });
    expect(Math.max(...ua.map(Math.abs))).toBeGreaterThan(0.04);
  });

  test.each([0, -1])('step %i is refused (steps are 1-based)', (step) => {
    const t = () => Tensor.empty('f32', [3]);
    expect(() => ops.adamwStep([t()], [t()], [t()], [t()], { lr: 1e-3, step })).toThrow(/adamw_step: argument 'step' must be >= 1.*got/);
  });

  test('a NaN or infinite lr is refused, sync and async, and nothing is written', async () => {
    const p = filled([4], 1);
    const t = () => Tensor.empty('f32', [4]);
    const g = filled([4], 1);
    expect(() => ops.adamwStep([p], [g], [t()], [t()], { lr: NaN, step: 1 })).toThrow(/adamw_step: argument 'lr' must be finite/);
    await expect(ops.adamwStepAsync([p], [g], [t()], [t()], { lr: Infinity, step: 1 })).rejects.toThrow(/adamw_step: argument 'lr' must be finite/);
    expect(Array.from(p.data())).toEqual([1, 1, 1, 1]);
  });

  test('beta outside [0, 1), eps <= 0 and lists of different lengths are refused', () => {
    const t = () => Tensor.empty('f32', [2]);
    expect(() => ops.adamwStep([t()], [t()], [t()], [t()], { lr: 1e-3, beta1: 1, step: 1 })).toThrow(/adamw_step: argument 'beta1' must be in/);
    expect(() => ops.adamwStep([t()], [t()], [t()], [t()], { lr: 1e-3, beta2: -0.1, step: 1 })).toThrow(/adamw_step: argument 'beta2' must be in/);
    expect(() => ops.adamwStep([t()], [t()], [t()], [t()], { lr: 1e-3, eps: 0, step: 1 })).toThrow(/adamw_step: argument 'eps' must be a finite number > 0/);
    expect(() => ops.adamwStep([t(), t()], [t()], [t(), t()], [t(), t()], { lr: 1e-3, step: 1 })).toThrow(/adamw_step: 'grads' has 1 tensors but 'params' has 2/);
    expect(() => ops.adamwStep([t()], [Tensor.empty('f32', [3])], [t()], [t()], { lr: 1e-3, step: 1 })).toThrow(/adamw_step: grads\[0\] f32\[3\] must have the shape of params\[0\] f32\[2\]/);
  });
});

describe('globalGradNorm and clipGradNorm', () => {
  const SIZES = [1, 7, 1000, 33 * 33, 20011];
  const grads = () => SIZES.map((n, i) => uniform(n, 300 + i, -0.2, 0.2));

  test('global norm: sqrt of the sum of squares over all tensors (f64 accumulation)', () => {
    const G = grads();
    expect(ops.globalGradNorm(G.map((g) => f32(g, [g.length])))).toBeCloseTo(globalNormRef(G), 12);
    const norm = ops.globalGradNorm(G.map((g) => f32(g, [g.length])));
    expect(Math.abs(norm - globalNormRef(G)) / globalNormRef(G)).toBeLessThan(1e-12);
    expect(ops.globalGradNorm([f32([3, 4], [2]), f32([12], [1])])).toBe(13);
    expect(ops.globalGradNorm([])).toBe(0);
  });

  test('clip above max_norm: grads scaled by max_norm / (norm + 1e-6), returns the norm before clipping', () => {
    const G = grads();
    const T = G.map((g) => f32(g, [g.length]));
    const want = G.map((g) => Float64Array.from(g));
    const refNorm = clipRef(want, 1.0);
    expect(refNorm).toBeGreaterThan(1);
    const norm = ops.clipGradNorm(T, 1.0);
    expect(Math.abs(norm - refNorm) / refNorm).toBeLessThan(1e-12);
    T.forEach((t, i) => expectClose(`clipped grads[${i}]`, read(t), want[i], { rtol: 1e-6 }));
    expect(ops.globalGradNorm(T)).toBeCloseTo(1.0, 5);
  });

  test('no clipping under max_norm: grads unchanged bit for bit', () => {
    const G = grads();
    const T = G.map((g) => f32(g, [g.length]));
    const norm = ops.clipGradNorm(T, 1000);
    expect(norm).toBeCloseTo(globalNormRef(G), 10);
    T.forEach((t, i) => expectEqual(`unclipped grads[${i}]`, read(t), G[i]));
  });

  test('max_norm must be a finite number > 0', () => {
    const t = filled([3], 1);
    expect(() => ops.clipGradNorm([t], 0)).toThrow(/clip_grad_norm: argument 'max_norm' must be a finite number > 0/);
    expect(() => ops.clipGradNorm([t], NaN)).toThrow(/clip_grad_norm: argument 'max_norm' must be a finite number > 0/);
    expect(Array.from(t.data())).toEqual([1, 1, 1]);
  });
});

describe('zero', () => {
  test('zeros every listed tensor (NaN included), leaves others alone', () => {
    const a = filled([7], NaN);
    const b = f32(uniform(1000, 1), [10, 100]);
    const c = filled([3], 5);
    ops.zero([a, b]);
    expect(read(a).every((v) => v === 0)).toBe(true);
    expect(read(b).every((v) => v === 0)).toBe(true);
    expect(Array.from(c.data())).toEqual([5, 5, 5]);
    expect(() => ops.zero([])).not.toThrow();
  });

  test('only f32 tensors', () => {
    expect(() => ops.zero([Tensor.empty('i32', [2])])).toThrow(/zero: argument 'tensors\[0\]' must be f32, got i32\[2\]/);
  });
});
