// Backward of the layer ops against central finite differences (f64) of the forward references:
// rmsnorm (dx, dw), rope (dx), attention (dq, dk, dv; GQA, causal, segments), swiglu, embedding
// (dtable with repeated ids), cross-entropy (dlogits incl. ignored rows and grad_scale), dropout; and
// the accumulate-vs-write contract (dw / dtable accumulate, activation grads are overwritten: their
// outputs are prefilled with NaN).
//
// Loss: L = Σ out ∘ R (R random), the backward gets dout = R. Tolerance: |native − fd| <= rtol ·
// (|fd| + max|fd|), rtol 5e-5 (1e-4 for attention: softmax of f32 scores through a polynomial exp2).
import { Tensor, ops } from '../../bindings/index.js';
import type { RopeConfig } from '../../bindings/index.js';
import { expectClose, expectEqual, expectGradClose, finiteDiff, dot, uniform, randInts, sampleIndices, prod } from '../helpers/numeric.js';
import {
  rmsnormRef,
  ropeInvFreqRef,
  ropeRef,
  attentionLosses,
  swigluRef,
  embeddingRef,
  crossEntropyRef,
  dropoutFactors,
  dropoutRef,
} from '../helpers/reference.js';
import type { AttnShape } from '../helpers/reference.js';
import { f32, i32, read, nanTensor } from '../helpers/tensors.js';

const RTOL = 5e-5;
const SAMPLES = 40;
let seed = 20000;

describe('rmsnormBackward', () => {
  test.each([
    [[1], 1],
    [[3], 4],
    [[7], 33],
    [[3, 4], 64],
    [[33], 1000],
  ] as [number[], number][])('x %j × C=%i: dx and dw vs finite differences', (lead, C) => {
    const N = prod(lead);
    const x = uniform(N * C, ++seed, -2, 2);
    const w = uniform(C, ++seed, 0.5, 1.5);
    const R = uniform(N * C, ++seed);
    const eps = 1e-5;
    const loss = () => dot(rmsnormRef(x, w, N, C, eps).y, R);
    const X = f32(x, [...lead, C]);
    const W = f32(w, [C]);
    const rstd = Tensor.empty('f32', [N]);
    ops.rmsnormForward(X, W, eps, Tensor.empty('f32', [...lead, C]), rstd);
    const dx = nanTensor([...lead, C]);
    const dw = Tensor.empty('f32', [C]);
    ops.rmsnormBackward(f32(R, [...lead, C]), X, W, rstd, dx, dw);
    const ix = sampleIndices(x.length, SAMPLES, ++seed);
    const iw = sampleIndices(w.length, SAMPLES, ++seed);
    expectGradClose('rmsnorm dx', read(dx), finiteDiff(loss, x, ix), ix, RTOL, [N, C]);
    expectGradClose('rmsnorm dw', read(dw), finiteDiff(loss, w, iw), iw, RTOL, [C]);
  });

  test('dw accumulates (also across threads: 2000 rows), dx is written; dw may be null', () => {
    const [N, C] = [2000, 24];
    const X = f32(uniform(N * C, 1), [N, C]);
    const W = f32(uniform(C, 2, 0.5, 1.5), [C]);
    const dy = f32(uniform(N * C, 3), [N, C]);
    const rstd = Tensor.empty('f32', [N]);
    ops.rmsnormForward(X, W, 1e-6, Tensor.empty('f32', [N, C]), rstd);
    const w0 = uniform(C, 4);
    const dw = f32(w0, [C]);
    const dx = nanTensor([N, C]);
    ops.rmsnormBackward(dy, X, W, rstd, dx, dw);
    const dx1 = read(dx);
    const g = read(dw).map((v, i) => v - w0[i]);
    // the reference dw: Σ_rows dy · x · rstd
    const xv = read(X);
    const dyv = read(dy);
    const r = rmsnormRef(xv, read(W), N, C, 1e-6).rstd;
    const want = new Float64Array(C);
    for (let i = 0; i < N; i++) for (let j = 0; j < C; j++) want[j] += dyv[i * C + j] * xv[i * C + j] * r[i];
    expectClose('dw over 2000 rows', g, want, { rtol: 1e-4, atol: 1e-3 });
    ops.rmsnormBackward(dy, X, W, rstd, dx, dw);
    expectEqual('dx unchanged', read(dx), dx1);
    expectClose('dw = w0 + 2g', read(dw), w0.map((v, i) => v + 2 * g[i]), { rtol: 1e-6, atol: 1e-5 });
    const dx2 = nanTensor([N, C]);
    ops.rmsnormBackward(dy, X, W, rstd, dx2, null);
    expectEqual('dx without dw', read(dx2), dx1);
  });
});

describe('ropeBackward', () => {
  function check(B: number, T: number, H: number, D: number, cfg: RopeConfig, maxPos: number, inPlace: boolean) {
    const x = uniform(B * T * H * D, ++seed);
    const pos = randInts(B * T, ++seed, 0, maxPos);
    const R = uniform(x.length, ++seed);
    const inv = ropeInvFreqRef(cfg);
    const loss = () => dot(ropeRef(x, pos, inv, B * T, H, D), R);
    const dy = f32(R, [B, T, H, D]);
    const dx = inPlace ? dy : nanTensor([B, T, H, D]);
    ops.ropeBackward(dy, i32(pos, [B, T]), cfg, dx);
    const ix = sampleIndices(x.length, 64, ++seed);
    expectGradClose('rope dx', read(dx), finiteDiff(loss, x, ix), ix, RTOL, [B, T, H, D]);
  }

  test.each([
    [1, 1, 1, 2, 10],
    [2, 7, 3, 8, 100],
    [1, 33, 2, 64, 4096],
    [2, 5, 2, 128, 100000],
  ])('B=%i T=%i H=%i D=%i positions < %i', (B, T, H, D, maxPos) => {
    check(B, T, H, D, { headDim: D, theta: 10000 }, maxPos, false);
  });

  test('llama3 scaling, in place (dx is dy)', () => {
    check(1, 9, 2, 32, { headDim: 32, theta: 500000, llama3: { factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositionEmbeddings: 8192 } }, 65536, true);
  });

  test('backward ∘ forward is the identity (the rotation is orthogonal)', () => {
    const [B, T, H, D] = [2, 13, 3, 16];
    const x = uniform(B * T * H * D, 77);
    const pos = i32(randInts(B * T, 78, 0, 5000), [B, T]);
    const cfg = { headDim: D, theta: 10000 };
    const y = Tensor.empty('f32', [B, T, H, D]);
    ops.ropeForward(f32(x, [B, T, H, D]), pos, cfg, y);
    ops.ropeBackward(y, pos, cfg, y);
    expectClose('Rᵀ R x', read(y), x, { atol: 1e-6 });
  });
});

describe('attentionBackward', () => {
  function segments(B: number, T: number, s: number): Int32Array {
    if (s < 0) return randInts(B * T, -s, 0, 3); // unsorted ids
    const seg = new Int32Array(B * T);
    const cuts = randInts(B * 4, s, 1, T);
    for (let b = 0; b < B; b++) for (let t = 0; t < T; t++) seg[b * T + t] = cuts.slice(b * 4, b * 4 + 4).filter((c) => c <= t).length;
    return seg;
  }

  // [B, T, Hq, Hkv, D, causal, segmented]
  const CASES: [number, number, number, number, number, boolean, boolean][] = [
    [1, 1, 1, 1, 1, true, false],
    [1, 5, 2, 1, 4, true, false],
    [2, 7, 4, 2, 8, true, false],
    [1, 9, 2, 2, 5, false, false],
    [2, 33, 4, 2, 12, false, true],
    [1, 70, 2, 1, 16, true, true],
    [1, 66, 3, 3, 7, true, false],
    [1, 67, 2, 1, 8, false, true], // unsorted segment ids
  ];

  test.each(CASES)('B=%i T=%i Hq=%i Hkv=%i D=%i causal=%s segments=%s: dq, dk, dv vs finite differences', (B, T, Hq, Hkv, D, causal, segmented) => {
    const s: AttnShape = { B, T, Hq, Hkv, D };
    const scale = 1 / Math.sqrt(D);
    const q = uniform(B * T * Hq * D, ++seed);
    const k = uniform(B * T * Hkv * D, ++seed);
    const v = uniform(B * T * Hkv * D, ++seed);
    const R = uniform(B * T * Hq * D, ++seed);
    const seg = segmented ? segments(B, T, T === 67 ? -seed : ++seed) : null;
    const { lossQ, lossKV } = attentionLosses(q, k, v, s, seg, scale, causal, R);

    const Q = f32(q, [B, T, Hq, D]);
    const K = f32(k, [B, T, Hkv, D]);
    const V = f32(v, [B, T, Hkv, D]);
    const S = seg ? i32(seg, [B, T]) : null;
    const out = Tensor.empty('f32', [B, T, Hq, D]);
    const lse = Tensor.empty('f32', [B, Hq, T]);
    ops.attentionForward(Q, K, V, S, scale, causal, out, lse);
    const dq = nanTensor([B, T, Hq, D]);
    const dk = nanTensor([B, T, Hkv, D]);
    const dv = nanTensor([B, T, Hkv, D]);
    ops.attentionBackward(Q, K, V, S, scale, causal, out, lse, f32(R, [B, T, Hq, D]), dq, dk, dv);

    const iq = sampleIndices(q.length, SAMPLES, ++seed);
    const ik = sampleIndices(k.length, SAMPLES, ++seed);
    const iv = sampleIndices(v.length, SAMPLES, ++seed);
    expectGradClose('attention dq', read(dq), finiteDiff(lossQ, q, iq), iq, 1e-4, [B, T, Hq, D], T === 1);
    expectGradClose('attention dk', read(dk), finiteDiff(lossKV, k, ik), ik, 1e-4, [B, T, Hkv, D], T === 1);
    expectGradClose('attention dv', read(dv), finiteDiff(lossKV, v, iv), iv, 1e-4, [B, T, Hkv, D]);
    // every element written (no NaN left from the prefill)
    for (const [name, t] of [['dq', dq], ['dk', dk], ['dv', dv]] as const) expect(read(t).some(Number.isNaN)).toBe(false);
  });

  test('gradients are written, not accumulated: a second call gives the same dq, dk, dv', () => {
    const [B, T, Hq, Hkv, D] = [1, 20, 2, 1, 8];
    const Q = f32(uniform(B * T * Hq * D, 1), [B, T, Hq, D]);
    const K = f32(uniform(B * T * Hkv * D, 2), [B, T, Hkv, D]);
    const V = f32(uniform(B * T * Hkv * D, 3), [B, T, Hkv, D]);
    const dO = f32(uniform(B * T * Hq * D, 4), [B, T, Hq, D]);
    const out = Tensor.empty('f32', [B, T, Hq, D]);
    const lse = Tensor.empty('f32', [B, Hq, T]);
    ops.attentionForward(Q, K, V, null, 0.35, true, out, lse);
    const dq = Tensor.empty('f32', [B, T, Hq, D]);
    const dk = Tensor.empty('f32', [B, T, Hkv, D]);
    const dv = Tensor.empty('f32', [B, T, Hkv, D]);
    ops.attentionBackward(Q, K, V, null, 0.35, true, out, lse, dO, dq, dk, dv);
    const first = [read(dq), read(dk), read(dv)];
    ops.attentionBackward(Q, K, V, null, 0.35, true, out, lse, dO, dq, dk, dv);
    expectEqual('dq', read(dq), first[0]);
    expectEqual('dk', read(dk), first[1]);
    expectEqual('dv', read(dv), first[2]);
  });
});

describe('swigluBackward', () => {
  test.each([[[1]], [[7]], [[33, 5]], [[1000]]] as [number[]][])('shape %j: dgate, dup vs finite differences', (shape) => {
    const n = prod(shape);
    const g = uniform(n, ++seed, -6, 6);
    const u = uniform(n, ++seed, -2, 2);
    const R = uniform(n, ++seed);
    const loss = () => dot(swigluRef(g, u), R);
    const dg = nanTensor(shape);
    const du = nanTensor(shape);
    ops.swigluBackward(f32(R, shape), f32(g, shape), f32(u, shape), dg, du);
    const idx = sampleIndices(n, 64, ++seed);
    expectGradClose('swiglu dgate', read(dg), finiteDiff(loss, g, idx), idx, RTOL, shape);
    expectGradClose('swiglu dup', read(du), finiteDiff(loss, u, idx), idx, RTOL, shape);
  });
});

describe('embeddingBackward', () => {
  test.each([
    [5, 3, [7]],
    [7, 33, [4, 9]],
    [50, 100, [300]],
    [3, 1000, [40]],
  ] as [number, number, number[]][])('V=%i C=%i ids %j with repeats: dtable vs finite differences, accumulated', (V, C, idShape) => {
    const n = prod(idShape);
    const ids = randInts(n, ++seed, 0, V);
    ids[0] = ids[n - 1]; // at least one repeat
    const table = uniform(V * C, ++seed);
    const R = uniform(n * C, ++seed);
    const loss = () => dot(embeddingRef(ids, table, C), R);
    const t0 = uniform(V * C, ++seed);
    const dtable = f32(t0, [V, C]);
    ops.embeddingBackward(i32(ids, idShape), f32(R, [...idShape, C]), dtable);
    const it = sampleIndices(V * C, 200, ++seed);
    const fd = finiteDiff(loss, table, it);
    expectGradClose('embedding dtable (minus initial)', read(dtable).map((v, i) => v - t0[i]), fd, it, 1e-5, [V, C]);
    // exact scatter-add reference over all rows
    const want = Float64Array.from(t0);
    for (let i = 0; i < n; i++) for (let j = 0; j < C; j++) want[ids[i] * C + j] += R[i * C + j];
    expectClose('embedding dtable', read(dtable), want, { rtol: 1e-6, atol: 1e-5, shape: [V, C] });
  });

  test('many repeats of few ids over wide rows (the parallel path must not race)', () => {
    const [V, C, n] = [3, 4096, 64];
    const ids = randInts(n, 5, 0, V);
    const dout = uniform(n * C, 6);
    const dtable = Tensor.empty('f32', [V, C]);
    ops.embeddingBackward(i32(ids, [n]), f32(dout, [n, C]), dtable);
    const want = new Float64Array(V * C);
    for (let i = 0; i < n; i++) for (let j = 0; j < C; j++) want[ids[i] * C + j] += dout[i * C + j];
    expectClose('dtable', read(dtable), want, { rtol: 1e-6, atol: 1e-5, shape: [V, C] });
  });
});

describe('crossEntropyBackward', () => {
  test.each([
    [1, 1, 1],
    [7, 33, 1],
    [6, 9, 0.25],
    [33, 1000, 1 / 30],
  ])('N=%i V=%i grad_scale=%f: dlogits vs finite differences of grad_scale·Σ losses, ignored rows 0', (N, V, gs) => {
    const logits = uniform(N * V, ++seed, -4, 4);
    const targets = randInts(N, ++seed, 0, V);
    if (N > 2) targets[2] = -100;
    if (N > 5) targets[5] = -100;
    // the perturbed element only changes its own row's loss
    const loss = (i: number) => {
      const row = Math.floor(i / V);
      const l = crossEntropyRef(logits.subarray(row * V, row * V + V), [targets[row]], 1, V, -100).losses;
      return Math.fround(gs) * l[0];
    };
    const L = f32(logits, [N, V]);
    const T = i32(targets, [N]);
    const lse = Tensor.empty('f32', [N]);
    ops.crossEntropyForward(L, T, -100, Tensor.empty('f32', [N]), lse);
    const dl = nanTensor([N, V]);
    ops.crossEntropyBackward(L, T, lse, -100, gs, dl);
    const idx = sampleIndices(N * V, 120, ++seed);
    for (let i = 0; i < N; i++) if (targets[i] === -100) idx.push(i * V, i * V + V - 1);
    const got = read(dl);
    expectGradClose('ce dlogits', got, finiteDiff(loss, logits, idx), idx, RTOL, [N, V], V === 1);
    for (let i = 0; i < N; i++) if (targets[i] === -100) for (let j = 0; j < V; j++) expect(got[i * V + j]).toBe(0);
  });

  test('in place: dlogits may be the logits tensor', () => {
    const [N, V] = [5, 17];
    const logits = uniform(N * V, 3, -3, 3);
    const targets = i32([0, 16, -100, 8, 3], [N]);
    const L = f32(logits, [N, V]);
    const lse = Tensor.empty('f32', [N]);
    ops.crossEntropyForward(L, targets, -100, Tensor.empty('f32', [N]), lse);
    const separate = Tensor.empty('f32', [N, V]);
    ops.crossEntropyBackward(L, targets, lse, -100, 0.5, separate);
    ops.crossEntropyBackward(L, targets, lse, -100, 0.5, L);
    expectEqual('in place', read(L), read(separate), [N, V]);
  });
});

describe('dropoutBackward', () => {
  test.each([
    [7, 0.1, 3],
    [1000, 0.5, 77],
    [5000, 0.9, 2 ** 40],
  ])('n=%i p=%f seed=%i: dx = dy·mask/(1-p), the forward mask (finite differences)', (n, p, s) => {
    const x = uniform(n, ++seed);
    const R = uniform(n, ++seed);
    const fac = dropoutFactors(n, p, s);
    const loss = () => dot(dropoutRef(x, fac), R);
    const dx = nanTensor([n]);
    ops.dropoutBackward(f32(R, [n]), p, s, dx);
    const idx = sampleIndices(n, 64, ++seed);
    expectGradClose('dropout dx', read(dx), finiteDiff(loss, x, idx), idx, 1e-6);
    // and exactly the forward's mask applied to dy
    const fwd = Tensor.empty('f32', [n]);
    ops.dropoutForward(f32(R, [n]), p, s, fwd);
    expectEqual('dropout backward = forward applied to dy', read(dx), read(fwd));
  });
});
