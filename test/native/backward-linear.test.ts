// Backward of the GEMM-based ops against central finite differences (f64) of the forward references:
// the matmul gradients (computed with matmul itself and its transposes), linearBackward and
// loraLinearBackward (dx, dA, dB, and dW of a trainable f32 W; with and without dropout; rsLoRA scale),
// plus the accumulate-vs-write contract: parameter grads accumulate (+=), activation grads are written.
//
// Loss: L = Σ out ∘ R with a random R, so dL/dout = R is what the backward receives as dy.
// Tolerance: |native − fd| <= 2e-5 · (|fd| + max|fd|) on sampled coordinates (all of them for tiny
// shapes). The f64 differences are exact to ~1e-9 here; the f32 backward to ~sqrt(K)·6e-8.
import { Tensor, ops, setBf16Dot } from '../../bindings/index.js';
import { expectClose, expectGradClose, finiteDiff, dot, uniform, sampleIndices, roundBf16Array, prod } from '../helpers/numeric.js';
import { matmulRef, linearRef, loraRef, dropoutFactors } from '../helpers/reference.js';
import type { MatmulArgs } from '../helpers/reference.js';
import { f32, bf16, read, nanTensor, bf16DotActive, restoreDefaults } from '../helpers/tensors.js';

const RTOL = 2e-5;
const SAMPLES = 48;
let seed = 9000;

afterAll(restoreDefaults);

describe('matmul gradients, computed with matmul and its transposes', () => {
  // C = alpha·op(A)·op(B) + beta·C0;  dA, dB in the stored layouts, dC0 = beta·R
  const CASES: [number, number, number, boolean, boolean][] = [
    [1, 1, 1, false, false],
    [3, 4, 5, false, false],
    [7, 5, 33, false, true],
    [33, 7, 5, true, false],
    [5, 33, 7, true, true],
    [40, 37, 70, false, true],
    [70, 40, 37, true, true],
  ];

  test.each(CASES)('M=%i N=%i K=%i transA=%s transB=%s', (M, N, K, ta, tb) => {
    const aShape: [number, number] = ta ? [K, M] : [M, K];
    const bShape: [number, number] = tb ? [N, K] : [K, N];
    const a = uniform(M * K, ++seed);
    const b = uniform(K * N, ++seed);
    const c0 = uniform(M * N, ++seed);
    const R = uniform(M * N, ++seed);
    const alpha = 0.75;
    const beta = -0.5;
    const args: MatmulArgs = { a, aShape, b, bShape, transA: ta, transB: tb, alpha, beta, c: c0 };
    const loss = () => dot(matmulRef(args), R);

    const A = f32(a, aShape);
    const B = f32(b, bShape);
    const Rt = f32(R, [M, N]);
    const dA = nanTensor(aShape);
    const dB = nanTensor(bShape);
    // d op(A) = alpha·R·op(B)ᵀ ; stored: transA ? (alpha·op(B)·Rᵀ) : alpha·R·op(B)ᵀ
    if (!ta) ops.matmul(Rt, B, dA, false, !tb, alpha, 0);
    else ops.matmul(B, Rt, dA, tb, true, alpha, 0);
    // d op(B) = alpha·op(A)ᵀ·R ; stored: transB ? (alpha·Rᵀ·op(A)) : alpha·op(A)ᵀ·R
    if (!tb) ops.matmul(A, Rt, dB, !ta, false, alpha, 0);
    else ops.matmul(Rt, A, dB, true, ta, alpha, 0);

    const ia = sampleIndices(a.length, SAMPLES, ++seed);
    const ib = sampleIndices(b.length, SAMPLES, ++seed);
    expectGradClose('dA', read(dA), finiteDiff(loss, a, ia), ia, RTOL, aShape);
    expectGradClose('dB', read(dB), finiteDiff(loss, b, ib), ib, RTOL, bShape);
    const ic = sampleIndices(c0.length, 16, ++seed);
    expectGradClose('dC0 = beta·R', R.map((r) => Math.fround(beta) * r), finiteDiff(loss, c0, ic), ic, RTOL);
  });
});

describe('linearBackward', () => {
  // [leading dims of x, K, N]
  const CASES: [number[], number, number][] = [
    [[1], 1, 1],
    [[7], 33, 5],
    [[33], 70, 47],
    [[2, 5], 16, 33],
    [[130], 64, 48],
    [[9], 1000, 7],
  ];

  test.each(CASES)('x %j × K=%i, N=%i: dx and dW (f32 W) vs finite differences', (lead, K, N) => {
    const M = prod(lead);
    const x = uniform(M * K, ++seed);
    const w = uniform(N * K, ++seed);
    const R = uniform(M * N, ++seed);
    const loss = () => dot(linearRef(x, w, M, K, N), R);
    const dx = nanTensor([...lead, K]);
    const dw = Tensor.empty('f32', [N, K]);
    ops.linearBackward(f32(R, [...lead, N]), f32(x, [...lead, K]), f32(w, [N, K]), dx, dw);
    const ix = sampleIndices(x.length, SAMPLES, ++seed);
    const iw = sampleIndices(w.length, SAMPLES, ++seed);
    expectGradClose('linear dx', read(dx), finiteDiff(loss, x, ix), ix, RTOL, [M, K]);
    expectGradClose('linear dW', read(dw), finiteDiff(loss, w, iw), iw, RTOL, [N, K]);
  });

  test('dW accumulates, dx is written: calling twice doubles dW (from its initial value) and leaves dx unchanged', () => {
    const [M, K, N] = [33, 20, 7];
    const x = f32(uniform(M * K, 1), [M, K]);
    const w = f32(uniform(N * K, 2), [N, K]);
    const dy = f32(uniform(M * N, 3), [M, N]);
    const d0 = uniform(N * K, 4);
    const dw = f32(d0, [N, K]);
    const dx = nanTensor([M, K]);
    ops.linearBackward(dy, x, w, dx, dw);
    const dx1 = read(dx);
    const g1 = read(dw).map((v, i) => v - d0[i]);
    ops.linearBackward(dy, x, w, dx, dw);
    expectClose('dx after the second call', read(dx), dx1, { rtol: 0 });
    expectClose('dW after two calls = d0 + 2·g', read(dw), d0.map((v, i) => v + 2 * g1[i]), { rtol: 1e-6, atol: 1e-6 });
    // and the gradient part is not zero (the check above is not vacuous)
    expect(Math.max(...g1.map(Math.abs))).toBeGreaterThan(0.1);
  });

  test('dx or dW may be null', () => {
    const [M, K, N] = [5, 6, 7];
    const x = f32(uniform(M * K, 5), [M, K]);
    const w = f32(uniform(N * K, 6), [N, K]);
    const dy = f32(uniform(M * N, 7), [M, N]);
    const dxFull = Tensor.empty('f32', [M, K]);
    const dwFull = Tensor.empty('f32', [N, K]);
    ops.linearBackward(dy, x, w, dxFull, dwFull);
    const dx = Tensor.empty('f32', [M, K]);
    ops.linearBackward(dy, x, w, dx, null);
    expectClose('dx alone', read(dx), read(dxFull), { rtol: 0 });
    const dw = Tensor.empty('f32', [N, K]);
    ops.linearBackward(dy, x, w, undefined, dw);
    expectClose('dW alone', read(dw), read(dwFull), { rtol: 0 });
  });

  test.each([false, true])('frozen bf16 W: dx = dy·W (bf16 dot %s)', (useDot) => {
    setBf16Dot(useDot);
    try {
      const [M, K, N] = [33, 70, 47];
      const x = uniform(M * K, 8);
      const { t: wt, values: wv } = bf16(uniform(N * K, 9), [N, K]);
      const R = uniform(M * N, 10);
      const dx = nanTensor([M, K]);
      ops.linearBackward(f32(R, [M, N]), f32(x, [M, K]), wt, dx, null);
      if (bf16DotActive()) {
        // the GEMM rounds dy to bf16 on this path: compare with the rounded product (f32 tolerance)
        const want = matmulRef({ a: roundBf16Array(R), aShape: [M, N], b: wv, bShape: [N, K], transA: false, transB: false, alpha: 1, beta: 0 });
        expectClose('bf16-dot dx', read(dx), want, { rtol: 1e-5, atol: 1e-5 });
      } else {
        const loss = () => dot(linearRef(x, wv, M, K, N), R);
        const ix = sampleIndices(x.length, SAMPLES, 11);
        expectGradClose('bf16 W dx', read(dx), finiteDiff(loss, x, ix), ix, RTOL, [M, K]);
      }
    } finally {
      setBf16Dot(true);
    }
  });
});

describe('loraLinearBackward', () => {
  // [M, K, N, r, dropout, rsLoRA]
  const CASES: [number, number, number, number, number, boolean][] = [
    [1, 1, 1, 1, 0, false],
    [3, 7, 5, 2, 0, false],
    [7, 33, 17, 4, 0, true],
    [33, 70, 47, 8, 0.1, false],
    [20, 40, 33, 16, 0.5, true],
    [130, 64, 48, 16, 0, false],
    [9, 1000, 7, 4, 0.25, false],
  ];

  test.each(CASES)('M=%i K=%i N=%i r=%i dropout=%f rsLoRA=%s: dx, dA, dB, dW vs finite differences', (M, K, N, r, p, rs) => {
    const s = ops.loraScaling(16, r, rs);
    const x = uniform(M * K, ++seed);
    const w = uniform(N * K, ++seed);
    const a = uniform(r * K, ++seed, -0.5, 0.5);
    const b = uniform(N * r, ++seed, -0.5, 0.5);
    const R = uniform(M * N, ++seed);
    const lseed = 31 * M + K;
    const factors = p > 0 ? dropoutFactors(M * K, p, lseed) : undefined;
    const loss = () => dot(loraRef({ x, w, a, b, M, K, N, r, scale: s, factors }).y, R);

    const cfg = { scale: s, dropout: p, seed: lseed };
    const X = f32(x, [M, K]);
    const W = f32(w, [N, K]);
    const A = f32(a, [r, K]);
    const B = f32(b, [N, r]);
    const y = Tensor.empty('f32', [M, N]);
    const u = Tensor.empty('f32', [M, r]);
    ops.loraLinearForward(X, W, A, B, cfg, y, u);
    const dx = nanTensor([M, K]);
    const da = Tensor.empty('f32', [r, K]);
    const db = Tensor.empty('f32', [N, r]);
    const dw = Tensor.empty('f32', [N, K]);
    ops.loraLinearBackward(f32(R, [M, N]), X, W, A, B, u, cfg, dx, da, db, dw);

    const ix = sampleIndices(x.length, SAMPLES, ++seed);
    const ia = sampleIndices(a.length, SAMPLES, ++seed);
    const ib = sampleIndices(b.length, SAMPLES, ++seed);
    const iw = sampleIndices(w.length, SAMPLES, ++seed);
    expectGradClose('lora dx', read(dx), finiteDiff(loss, x, ix), ix, RTOL, [M, K]);
    expectGradClose('lora dA', read(da), finiteDiff(loss, a, ia), ia, RTOL, [r, K]);
    expectGradClose('lora dB', read(db), finiteDiff(loss, b, ib), ib, RTOL, [N, r]);
    expectGradClose('lora dW', read(dw), finiteDiff(loss, w, iw), iw, RTOL, [N, K]);
  });

  // W bf16 without dropout: dx = dy·W + du·A in one pass (the LoRA term folded into the bf16 GEMM as an
  // f32 second product). dx against the f32 path on the same (bf16-valued) weights: equal up to dy
  // rounded to bf16 on the vdpbf16ps path; the LoRA part must be exact f32.
  test.each([
    [1, 9, 33, 4],
    [130, 70, 47, 16],
    [33, 64, 1000, 8],
  ])('M=%i K=%i N=%i r=%i, W bf16: dx (base + folded LoRA term) as the f32 path on the same weights', (M, K, N, r) => {
    const x = uniform(M * K, ++seed);
    const w = bf16(uniform(N * K, ++seed), [N, K]);
    const a = uniform(r * K, ++seed, -0.5, 0.5);
    const b = uniform(N * r, ++seed, -0.5, 0.5);
    const R = uniform(M * N, ++seed);
    const cfg = { scale: 2, dropout: 0, seed: 1 };
    const dxOf = (W: Tensor, dotOn: boolean) => {
      setBf16Dot(dotOn);
      try {
        const X = f32(x, [M, K]);
        const u = Tensor.empty('f32', [M, r]);
        ops.loraLinearForward(X, W, f32(a, [r, K]), f32(b, [N, r]), cfg, Tensor.empty('f32', [M, N]), u);
        const dx = nanTensor([M, K]);
        ops.loraLinearBackward(f32(R, [M, N]), X, W, f32(a, [r, K]), f32(b, [N, r]), u, cfg, dx, Tensor.zeros([r, K]), Tensor.zeros([N, r]), null);
        return read(dx);
      } finally {
        restoreDefaults();
      }
    };
    const ref = dxOf(f32(w.values, [N, K]), true);
    expectClose('dx, bf16 W widened', dxOf(w.t, false), ref, { rtol: 1e-5, scale: Math.max(...ref.map(Math.abs)) });
    // du·A is f32 in both; dy·W differs by dy's bf16 rounding on the dot path
    expectClose('dx, bf16 W on the dot path', dxOf(w.t, true), ref, { rtol: 1e-2, scale: Math.max(...ref.map(Math.abs)) });
  });

  test('B = 0 (fresh LoRA init): dA = 0 but dB is not, and dx = dy·W', () => {
    const [M, K, N, r] = [9, 20, 11, 4];
    const x = uniform(M * K, 1);
    const w = uniform(N * K, 2);
    const a = uniform(r * K, 3);
    const R = uniform(M * N, 4);
    const cfg = { scale: 2, dropout: 0, seed: 0 };
    const X = f32(x, [M, K]);
    const W = f32(w, [N, K]);
    const A = f32(a, [r, K]);
    const B = Tensor.empty('f32', [N, r]);
    const u = Tensor.empty('f32', [M, r]);
    ops.loraLinearForward(X, W, A, B, cfg, Tensor.empty('f32', [M, N]), u);
    const dx = nanTensor([M, K]);
    const da = Tensor.empty('f32', [r, K]);
    const db = Tensor.empty('f32', [N, r]);
    ops.loraLinearBackward(f32(R, [M, N]), X, W, A, B, u, cfg, dx, da, db, null);
    expect(read(da).every((v) => v === 0)).toBe(true);
    expect(Math.max(...read(db).map(Math.abs))).toBeGreaterThan(0.1);
    const want = matmulRef({ a: R, aShape: [M, N], b: w, bShape: [N, K], transA: false, transB: false, alpha: 1, beta: 0 });
    expectClose('dx = dy·W', read(dx), want, { rtol: 1e-5, atol: 1e-5 });
  });

  test('dA, dB, dW accumulate and dx is written: a second call doubles the param grads, dx unchanged', () => {
    const [M, K, N, r] = [17, 33, 9, 4];
    const cfg = { scale: 1.5, dropout: 0.2, seed: 99 };
    const X = f32(uniform(M * K, 11), [M, K]);
    const W = f32(uniform(N * K, 12), [N, K]);
    const A = f32(uniform(r * K, 13), [r, K]);
    const B = f32(uniform(N * r, 14), [N, r]);
    const dy = f32(uniform(M * N, 15), [M, N]);
    const u = Tensor.empty('f32', [M, r]);
    ops.loraLinearForward(X, W, A, B, cfg, Tensor.empty('f32', [M, N]), u);
    const dx = nanTensor([M, K]);
    const [a0, b0, w0] = [uniform(r * K, 16), uniform(N * r, 17), uniform(N * K, 18)];
    const da = f32(a0, [r, K]);
    const db = f32(b0, [N, r]);
    const dw = f32(w0, [N, K]);
    ops.loraLinearBackward(dy, X, W, A, B, u, cfg, dx, da, db, dw);
    const dx1 = read(dx);
    const ga = read(da).map((v, i) => v - a0[i]);
    const gb = read(db).map((v, i) => v - b0[i]);
    const gw = read(dw).map((v, i) => v - w0[i]);
    ops.loraLinearBackward(dy, X, W, A, B, u, cfg, dx, da, db, dw);
    expectClose('dx unchanged', read(dx), dx1, { rtol: 0 });
    expectClose('dA = a0 + 2·gA', read(da), a0.map((v, i) => v + 2 * ga[i]), { rtol: 1e-6, atol: 1e-6 });
    expectClose('dB = b0 + 2·gB', read(db), b0.map((v, i) => v + 2 * gb[i]), { rtol: 1e-6, atol: 1e-6 });
    expectClose('dW = w0 + 2·gW', read(dw), w0.map((v, i) => v + 2 * gw[i]), { rtol: 1e-6, atol: 1e-6 });
    for (const g of [ga, gb, gw]) expect(Math.max(...g.map(Math.abs))).toBeGreaterThan(1e-2);
  });

  test('dx may be null (first layer) and dW null (frozen W): dA and dB are the same', () => {
    const [M, K, N, r] = [6, 10, 8, 3];
    const cfg = { scale: 2, dropout: 0.3, seed: 5 };
    const X = f32(uniform(M * K, 21), [M, K]);
    const W = f32(uniform(N * K, 22), [N, K]);
    const A = f32(uniform(r * K, 23), [r, K]);
    const B = f32(uniform(N * r, 24), [N, r]);
    const dy = f32(uniform(M * N, 25), [M, N]);
    const u = Tensor.empty('f32', [M, r]);
    ops.loraLinearForward(X, W, A, B, cfg, Tensor.empty('f32', [M, N]), u);
    const da1 = Tensor.empty('f32', [r, K]);
    const db1 = Tensor.empty('f32', [N, r]);
    ops.loraLinearBackward(dy, X, W, A, B, u, cfg, Tensor.empty('f32', [M, K]), da1, db1, Tensor.empty('f32', [N, K]));
    const da2 = Tensor.empty('f32', [r, K]);
    const db2 = Tensor.empty('f32', [N, r]);
    ops.loraLinearBackward(dy, X, W, A, B, u, cfg, null, da2, db2, null);
    expectClose('dA', read(da2), read(da1), { rtol: 0 });
    expectClose('dB', read(db2), read(db1), { rtol: 0 });
  });

  test.each([false, true])('frozen bf16 W: dx, dA, dB (bf16 dot %s)', (useDot) => {
    setBf16Dot(useDot);
    try {
      const [M, K, N, r, p] = [21, 33, 19, 4, 0.2];
      const s = 2;
      const x = uniform(M * K, 31);
      const { t: wt, values: wv } = bf16(uniform(N * K, 32), [N, K]);
      const a = uniform(r * K, 33, -0.5, 0.5);
      const b = uniform(N * r, 34, -0.5, 0.5);
      const R = uniform(M * N, 35);
      const factors = dropoutFactors(M * K, p, 7);
      const cfg = { scale: s, dropout: p, seed: 7 };
      const X = f32(x, [M, K]);
      const A = f32(a, [r, K]);
      const B = f32(b, [N, r]);
      const u = Tensor.empty('f32', [M, r]);
      ops.loraLinearForward(X, wt, A, B, cfg, Tensor.empty('f32', [M, N]), u);
      const dx = nanTensor([M, K]);
      const da = Tensor.empty('f32', [r, K]);
      const db = Tensor.empty('f32', [N, r]);
      ops.loraLinearBackward(f32(R, [M, N]), X, wt, A, B, u, cfg, dx, da, db, null);
      const loss = () => dot(loraRef({ x, w: wv, a, b, M, K, N, r, scale: s, factors }).y, R);
      const ia = sampleIndices(a.length, SAMPLES, 36);
      const ib = sampleIndices(b.length, SAMPLES, 37);
      expectGradClose('bf16 lora dA', read(da), finiteDiff(loss, a, ia), ia, RTOL);
      expectGradClose('bf16 lora dB', read(db), finiteDiff(loss, b, ib), ib, RTOL);
      const ix = sampleIndices(x.length, SAMPLES, 38);
      if (bf16DotActive()) {
        // dy·W goes through the bf16 dot (dy rounded); the LoRA path is f32
        const base = matmulRef({ a: roundBf16Array(R), aShape: [M, N], b: wv, bShape: [N, K], transA: false, transB: false, alpha: 1, beta: 0 });
        const fdLora = finiteDiff(() => dot(loraRef({ x, w: new Float64Array(N * K), a, b, M, K, N, r, scale: s, factors }).y, R), x, ix);
        const want = new Float64Array(x.length);
        for (const i of ix) want[i] = base[i] + fdLora[i];
        expectGradClose('bf16-dot lora dx', read(dx), want, ix, RTOL);
      } else {
        expectGradClose('bf16 lora dx', read(dx), finiteDiff(loss, x, ix), ix, RTOL);
      }
    } finally {
      setBf16Dot(true);
    }
  });

  test('a bf16 W cannot receive a gradient (trainable weights are f32 masters)', () => {
    const { t: wt } = bf16(uniform(12, 1), [3, 4]);
    expect(() =>
      ops.linearBackward(f32(uniform(6, 2), [2, 3]), f32(uniform(8, 3), [2, 4]), wt, null, Tensor.empty('f32', [3, 4])),
    ).toThrow(/linear_backward: a trainable weight must be f32.*bf16\[3, 4\]/);
  });
});
