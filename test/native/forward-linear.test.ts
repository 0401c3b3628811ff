// Forward of the GEMM-based ops (matmul, linear, LoRA linear) against the f64 references, on awkward
// shapes (1, 7, 33, 1000, sizes that are not multiples of the register tiles, K past one cache block,
// M past one MC block, N = 16 / M = 16 as in LoRA), f32 and bf16 weights, with the AVX512-BF16 dot
// path allowed and forbidden.
//
// Tolerances (stated once, used everywhere below):
//   f32 GEMM:  |got − ref| <= tolF32(K) · (|α|·Σ_k |a_ik||b_kj| + |β||c_ij|),  tolF32(K) = 1e-6·sqrt(K) + 1e-6
//              (f32 rounding grows like sqrt(K)·2^-24 for random data; a single missing or doubled term of
//              a sum of K is ~1/K of that magnitude, far above this bound for every K used here)
//   bf16 weights, dot path off: the reference uses the bf16-rounded weights, same f32 tolerance
//   bf16 weights, AVX512-BF16 dot on: activations are also rounded to bf16 (RNE) → tight against the
//              reference on the rounded activations, and 1e-2 relative to Σ|a||b| against the plain one
import { Tensor, ops, setBf16Dot, nativeInfo } from '../../bindings/index.js';
import { expectClose, expectCloseToEither, uniform, roundBf16Array, prod } from '../helpers/numeric.js';
import { matmulRef, matmulAbsRef, linearRef, linearAbsRef, loraRef, loraAbsRef, dropoutFactors } from '../helpers/reference.js';
import type { MatmulArgs } from '../helpers/reference.js';
import { f32, bf16, read, nanTensor, bf16DotActive, restoreDefaults } from '../helpers/tensors.js';

const tolF32 = (K: number) => 1e-6 * Math.sqrt(Math.max(K, 1)) + 1e-6;
const BF16_LOOSE = 1e-2;

afterAll(restoreDefaults);

// [M, N, K]
const SHAPES: [number, number, number][] = [
  [1, 1, 1],
  [1, 7, 33],
  [7, 33, 1],
  [33, 1, 7],
  [7, 1000, 33],
  [1000, 7, 33],
  [33, 33, 1000],
  [13, 16, 50],
  [16, 45, 50],
  [24, 64, 17],
  [150, 100, 400],
  [9, 2100, 70],
  // one-token decode (M <= 4, transposed B): one row streamed in 64-element steps plus a tail
  [1, 40, 1000],
  [1, 9, 128],
  [3, 17, 300],
];

const TRANS: [boolean, boolean][] = [
  [false, false],
  [false, true],
  [true, false],
  [true, true],
];

function stored(rows: number, cols: number, trans: boolean): [number, number] {
  return trans ? [cols, rows] : [rows, cols];
}

let seed = 1000;

describe('matmul (f32)', () => {
  describe.each(SHAPES)('M=%i N=%i K=%i', (M, N, K) => {
    test.each(TRANS)('transA=%s transB=%s, alpha 1 beta 0 (C prefilled with NaN is overwritten)', (ta, tb) => {
      const aShape = stored(M, K, ta);
      const bShape = stored(K, N, tb);
      const a = uniform(M * K, ++seed);
      const b = uniform(K * N, ++seed);
      const c = nanTensor([M, N]);
      ops.matmul(f32(a, aShape), f32(b, bShape), c, ta, tb, 1, 0);
      const args: MatmulArgs = { a, aShape, b, bShape, transA: ta, transB: tb, alpha: 1, beta: 0 };
      expectClose(`matmul ${M}x${N}x${K} ta=${ta} tb=${tb}`, read(c), matmulRef(args), {
        rtol: tolF32(K),
        scale: matmulAbsRef(args),
        shape: [M, N],
      });
    });

    test.each(TRANS)('transA=%s transB=%s, alpha 0.75 beta -1.25 (C read)', (ta, tb) => {
      const aShape = stored(M, K, ta);
      const bShape = stored(K, N, tb);
      const a = uniform(M * K, ++seed);
      const b = uniform(K * N, ++seed);
      const c0 = uniform(M * N, ++seed, -2, 2);
      const c = f32(c0, [M, N]);
      ops.matmul(f32(a, aShape), f32(b, bShape), c, ta, tb, 0.75, -1.25);
      const args: MatmulArgs = { a, aShape, b, bShape, transA: ta, transB: tb, alpha: 0.75, beta: -1.25, c: c0 };
      expectClose(`matmul ${M}x${N}x${K} ta=${ta} tb=${tb} a=.75 b=-1.25`, read(c), matmulRef(args), {
        rtol: tolF32(K),
        scale: matmulAbsRef(args),
        shape: [M, N],
      });
    });
  });

  test('leading dimensions of A and C are flattened into M', () => {
    const [K, N] = [33, 7];
    const a = uniform(2 * 3 * K, 11);
    const b = uniform(K * N, 12);
    const c = nanTensor([2, 3, N]);
    ops.matmul(f32(a, [2, 3, K]), f32(b, [K, N]), c, false, false, 1, 0);
    expect(c.shape).toEqual([2, 3, N]);
    const args: MatmulArgs = { a, aShape: [6, K], b, bShape: [K, N], transA: false, transB: false, alpha: 1, beta: 0 };
    expectClose('matmul 3-D A', read(c), matmulRef(args), { rtol: tolF32(K), scale: matmulAbsRef(args) });
  });

  test('K = 0: C = beta·C (beta 0 clears NaN)', () => {
    const c = nanTensor([3, 4]);
    ops.matmul(Tensor.empty('f32', [3, 0]), Tensor.empty('f32', [0, 4]), c, false, false, 1, 0);
    expect(Array.from(c.data())).toEqual(new Array(12).fill(0));
    const c2 = f32([1, 2, 3, 4, 5, 6], [2, 3]);
    ops.matmul(Tensor.empty('f32', [2, 0]), Tensor.empty('f32', [0, 3]), c2, false, false, 1, 0.5);
    expect(Array.from(c2.data())).toEqual([0.5, 1, 1.5, 2, 2.5, 3]);
  });

  test('alpha = 0: C = beta·C without reading A·B', () => {
    const a = f32([NaN, 1, 2, 3], [2, 2]);
    const b = f32([1, 2, 3, 4], [2, 2]);
    const c = f32([1, 2, 3, 4], [2, 2]);
    ops.matmul(a, b, c, false, false, 0, 2);
    expect(Array.from(c.data())).toEqual([2, 4, 6, 8]);
  });

  test('M = 0 or N = 0 is a no-op', () => {
    const c = Tensor.empty('f32', [0, 5]);
    ops.matmul(Tensor.empty('f32', [0, 3]), f32(uniform(15, 3), [3, 5]), c, false, false, 1, 0);
    expect(c.shape).toEqual([0, 5]);
    const c2 = Tensor.empty('f32', [4, 0]);
    ops.matmul(f32(uniform(12, 4), [4, 3]), Tensor.empty('f32', [3, 0]), c2, false, false, 1, 0);
    expect(c2.shape).toEqual([4, 0]);
  });
});

// bf16 B with the dot path allowed (when this CPU has it) and forbidden
const BF16_SHAPES: [number, number, number][] = [
  [1, 1, 1],
  [7, 33, 1],
  [1, 7, 33],
  [33, 47, 7],
  [7, 1000, 33],
  [33, 33, 1000],
  [150, 100, 401],
  [5, 2100, 33],
  // one-token decode: a row in 128-weight steps plus a 32-step tail (K = 1000), exact multiples, M = 2..4
  [1, 40, 1000],
  [1, 9, 256],
  [2, 17, 300],
  [4, 33, 64],
];

describe.each([true, false])('matmul with bf16 B, setBf16Dot(%s)', (dot) => {
  beforeAll(() => setBf16Dot(dot));
  afterAll(() => setBf16Dot(true));

  test.each(BF16_SHAPES.flatMap(([M, N, K]) => [false, true].map((tb) => [M, N, K, tb] as [number, number, number, boolean])))(
    'M=%i N=%i K=%i transB=%s',
    (M, N, K, tb) => {
      const aShape: [number, number] = [M, K];
      const bShape = stored(K, N, tb);
      const a = uniform(M * K, ++seed);
      const { t: bt, values: bv } = bf16(uniform(K * N, ++seed), bShape);
      const c = nanTensor([M, N]);
      ops.matmul(f32(a, aShape), bt, c, false, tb, 1, 0);
      const got = read(c);
      const plain: MatmulArgs = { a, aShape, b: bv, bShape, transA: false, transB: tb, alpha: 1, beta: 0 };
      const scale = matmulAbsRef(plain);
      if (bf16DotActive()) {
        // vdpbf16ps: A rounded to bf16, products exact, f32 accumulation
        const rounded = { ...plain, a: roundBf16Array(a) };
        expectCloseToEither(`bf16-dot matmul ${M}x${N}x${K} tb=${tb}`, got, [['A rounded to bf16', matmulRef(rounded)], ['exact A', matmulRef(plain)]], {
          rtol: tolF32(K),
          scale,
          shape: [M, N],
        });
        expectClose(`bf16-dot matmul ${M}x${N}x${K} tb=${tb} vs f32 A`, got, matmulRef(plain), { rtol: BF16_LOOSE, scale, shape: [M, N] });
      } else {
        // bf16 widened to f32: exactly the f32 product with the rounded weights
        expectClose(`widened-bf16 matmul ${M}x${N}x${K} tb=${tb}`, got, matmulRef(plain), { rtol: tolF32(K), scale, shape: [M, N] });
      }
    },
  );

  test('nativeInfo reports the setting (the dot path needs the avx512 ISA active and AVX512-BF16 in the CPU)', () => {
    const info = nativeInfo();
    expect(info.isa.bf16Dot).toBe(dot && info.isa.active === 'avx512' && info.isa.avx512bf16);
  });
});

describe('linearForward', () => {
  // [M (as leading dims), K, N]
  const CASES: [number[], number, number][] = [
    [[1], 1, 1],
    [[7], 33, 1],
    [[1000], 33, 7],
    [[33], 1000, 47],
    [[2, 5], 70, 16],
    [[3, 1, 11], 17, 33],
  ];

  test.each(CASES)('x %j × K=%i, W f32 [N=%i, K]', (lead, K, N) => {
    const M = prod(lead);
    const x = uniform(M * K, ++seed);
    const w = uniform(N * K, ++seed);
    const y = nanTensor([...lead, N]);
    ops.linearForward(f32(x, [...lead, K]), f32(w, [N, K]), y);
    expectClose(`linear ${M}x${K}->${N}`, read(y), linearRef(x, w, M, K, N), {
      rtol: tolF32(K),
      scale: linearAbsRef(x, w, M, K, N),
      shape: [M, N],
    });
  });

  test('K = 0: y = 0 (an empty sum), whatever y held', () => {
    const y = nanTensor([3, 4]);
    ops.linearForward(Tensor.empty('f32', [3, 0]), Tensor.empty('f32', [4, 0]), y);
    expect(Array.from(y.data())).toEqual(new Array(12).fill(0));
  });

  test.each(CASES.flatMap((c) => [true, false].map((d) => [...c, d] as [number[], number, number, boolean])))(
    'x %j × K=%i, W bf16 [N=%i, K], bf16 dot %s',
    (lead, K, N, dot) => {
      setBf16Dot(dot);
      try {
        const M = prod(lead);
        const x = uniform(M * K, ++seed);
        const { t: wt, values: wv } = bf16(uniform(N * K, ++seed), [N, K]);
        const y = nanTensor([...lead, N]);
        ops.linearForward(f32(x, [...lead, K]), wt, y);
        const scale = linearAbsRef(x, wv, M, K, N);
        const refs: [string, ArrayLike<number>][] = [['exact x', linearRef(x, wv, M, K, N)]];
        if (bf16DotActive()) refs.unshift(['x rounded to bf16', linearRef(roundBf16Array(x), wv, M, K, N)]);
        expectCloseToEither(`linear bf16 ${M}x${K}->${N} dot=${bf16DotActive()}`, read(y), refs, {
          rtol: tolF32(K),
          scale,
          shape: [M, N],
        });
        expectClose(`linear bf16 ${M}x${K}->${N} vs f32 x`, read(y), linearRef(x, wv, M, K, N), {
          rtol: BF16_LOOSE,
          scale,
          shape: [M, N],
        });
      } finally {
        setBf16Dot(true);
      }
    },
  );
});

describe('loraLinearForward', () => {
  // [M, K, N, r, dropout]
  const CASES: [number, number, number, number, number][] = [
    [1, 7, 33, 1, 0],
    [33, 70, 47, 8, 0],
    [7, 1000, 33, 16, 0],
    [130, 64, 48, 16, 0],
    [33, 70, 47, 8, 0.1],
    [130, 64, 48, 16, 0.5],
    [1, 1000, 7, 4, 0.3],
  ];

  function run(M: number, K: number, N: number, r: number, p: number, wDtype: 'f32' | 'bf16', s: number) {
    const x = uniform(M * K, ++seed);
    const w0 = uniform(N * K, ++seed);
    const a = uniform(r * K, ++seed, -0.5, 0.5);
    const b = uniform(N * r, ++seed, -0.5, 0.5);
    const lseed = 77 + M * 1000 + K;
    const w = wDtype === 'f32' ? { t: f32(w0, [N, K]), values: w0 } : bf16(w0, [N, K]);
    const y = nanTensor([M, N]);
    const u = nanTensor([M, r]);
    ops.loraLinearForward(f32(x, [M, K]), w.t, f32(a, [r, K]), f32(b, [N, r]), { scale: s, dropout: p, seed: lseed }, y, u);
    const factors = p > 0 ? dropoutFactors(M * K, p, lseed) : undefined;
    const xd = factors ? x.map((v, i) => v * factors[i]) : x;
    return { x, xd, w: w.values, a, b, y: read(y), u: read(u), factors };
  }

  test.each(CASES)('M=%i K=%i N=%i r=%i dropout=%f, W f32', (M, K, N, r, p) => {
    const s = 2.5;
    const o = run(M, K, N, r, p, 'f32', s);
    const args = { x: o.x, w: o.w, a: o.a, b: o.b, M, K, N, r, scale: s, factors: o.factors };
    const ref = loraRef(args);
    expectClose('lora y', o.y, ref.y, { rtol: tolF32(K + r), scale: loraAbsRef(args), shape: [M, N] });
    expectClose('lora u = dropout(x)·Aᵀ', o.u, ref.u, { rtol: tolF32(K), scale: linearAbsRef(o.xd, o.a, M, K, r), shape: [M, r] });
  });

  const BF16_CASES: [number, number, number, number, number, boolean][] = [true, false].flatMap((d) =>
    CASES.filter((c) => c[0] > 1).map((c) => [...c, d] as [number, number, number, number, number, boolean]),
  );
  test.each(BF16_CASES)(
    'M=%i K=%i N=%i r=%i dropout=%f, W bf16, bf16 dot %s',
    (M, K, N, r, p, dot) => {
      setBf16Dot(dot);
      try {
        const s = 0.5;
        const o = run(M, K, N, r, p, 'bf16', s);
        // the frozen part x·Wᵀ goes through the bf16 GEMM, the LoRA part is f32
        const lora = loraRef({ x: o.x, w: new Float64Array(N * K), a: o.a, b: o.b, M, K, N, r, scale: s, factors: o.factors });
        const withBase = (xs: ArrayLike<number>) => linearRef(xs, o.w, M, K, N).map((v, i) => v + lora.y[i]);
        const refs: [string, ArrayLike<number>][] = [['exact x', withBase(o.x)]];
        if (bf16DotActive()) refs.unshift(['x rounded to bf16', withBase(roundBf16Array(o.x))]);
        const scale = loraAbsRef({ x: o.x, w: o.w, a: o.a, b: o.b, M, K, N, r, scale: s, factors: o.factors });
        expectCloseToEither(`lora bf16 y (dot ${bf16DotActive()})`, o.y, refs, { rtol: tolF32(K + r), scale, shape: [M, N] });
        expectClose('lora bf16 u', o.u, lora.u, { rtol: tolF32(K), scale: linearAbsRef(o.xd, o.a, M, K, r), shape: [M, r] });
      } finally {
        setBf16Dot(true);
      }
    },
  );

  test('x with leading dimensions [2, 5, K]: y [2, 5, N] and u [2, 5, r], the same values as x [10, K]', () => {
    const [K, N, r] = [33, 20, 4];
    const x = uniform(10 * K, 501);
    const W = f32(uniform(N * K, 502), [N, K]);
    const A = f32(uniform(r * K, 503), [r, K]);
    const B = f32(uniform(N * r, 504), [N, r]);
    const cfg = { scale: 2, dropout: 0.2, seed: 3 };
    const y3 = nanTensor([2, 5, N]);
    const u3 = nanTensor([2, 5, r]);
    ops.loraLinearForward(f32(x, [2, 5, K]), W, A, B, cfg, y3, u3);
    const y2 = nanTensor([10, N]);
    const u2 = nanTensor([10, r]);
    ops.loraLinearForward(f32(x, [10, K]), W, A, B, cfg, y2, u2);
    expect(read(y3)).toEqual(read(y2));
    expect(read(u3)).toEqual(read(u2));
  });

  test('dropout uses the counter mask of element index over the flattened x (same seed, same mask)', () => {
    const [M, K, N, r] = [9, 40, 5, 3];
    const x = new Float64Array(M * K).fill(1);
    const a = new Float64Array(r * K);
    for (let k = 0; k < K; k++) a[0 * K + k] = 1; // u[:, 0] = number of kept x per row / (1 - p)
    const y = Tensor.empty('f32', [M, N]);
    const u = Tensor.empty('f32', [M, r]);
    const cfg = { scale: 1, dropout: 0.25, seed: 2 ** 40 + 7 };
    ops.loraLinearForward(f32(x, [M, K]), f32(new Float64Array(N * K), [N, K]), f32(a, [r, K]), f32(new Float64Array(N * r), [N, r]), cfg, y, u);
    const fac = dropoutFactors(M * K, 0.25, BigInt(2 ** 40 + 7));
    const want = new Float64Array(M * r);
    for (let i = 0; i < M; i++) for (let k = 0; k < K; k++) want[i * r] += fac[i * K + k];
    expectClose('u column 0 = kept count / (1-p)', read(u), want, { rtol: 1e-6 });
    // and another seed gives another mask
    const u2 = Tensor.empty('f32', [M, r]);
    ops.loraLinearForward(f32(x, [M, K]), f32(new Float64Array(N * K), [N, K]), f32(a, [r, K]), f32(new Float64Array(N * r), [N, r]), { ...cfg, seed: 8 }, y, u2);
    expect(Array.from(u2.data())).not.toEqual(Array.from(u.data()));
  });

  test('loraScaling: alpha / r, and alpha / sqrt(r) with rsLoRA', () => {
    expect(ops.loraScaling(16, 8, false)).toBe(2);
    expect(ops.loraScaling(16, 4, true)).toBe(8);
    expect(ops.loraScaling(32, 16, false)).toBe(2);
    expect(ops.loraScaling(32, 16, true)).toBe(8);
    expect(ops.loraScaling(8, 3, true)).toBeCloseTo(8 / Math.sqrt(3), 6);
    expect(ops.loraScaling(7, 3, false)).toBe(Math.fround(7 / 3));
  });
});
