// The checkers check: the comparison helpers fail on real differences and report the worst element,
// finite differences are accurate, and the f64 references give known values on hand-computed cases.
import {
  expectClose,
  expectGradClose,
  finiteDiff,
  f32ToBf16Bits,
  bf16BitsToNumber,
  f16BitsToNumber,
  sampleIndices,
  uniform,
  dot,
} from '../helpers/numeric.js';
import {
  matmulRef,
  attentionRef,
  ropeInvFreqRef,
  ropeRef,
  crossEntropyRef,
  rmsnormRef,
  adamwRef,
  dropoutUniform,
  clipRef,
  swigluRef,
} from '../helpers/reference.js';

describe('expectClose', () => {
  test('passes within tolerance and fails outside, naming the worst element with coordinates', () => {
    expect(() => expectClose('ok', [1, 2, 3], [1, 2, 3.0000001], { rtol: 1e-6 })).not.toThrow();
    expect(() => expectClose('bad', [1, 2, 3, 4, 5, 6], [1, 2, 3, 4, 5.5, 6], { rtol: 1e-3, shape: [2, 3] })).toThrow(
      /bad: 1 of 6 elements out of tolerance.*flat index 4 \[1, 1\]: got 5\.0+, want 5\.50+/,
    );
  });

  test('NaN must match NaN and infinities must match exactly; a NaN result never passes a finite expectation', () => {
    expect(() => expectClose('nan', [NaN, Infinity], [NaN, Infinity], {})).not.toThrow();
    expect(() => expectClose('nan', [1], [NaN], { atol: 1e9 })).toThrow(/out of tolerance/);
    expect(() => expectClose('nan', [NaN], [1], { atol: 1e9 })).toThrow(/out of tolerance/);
    expect(() => expectClose('inf', [-Infinity], [Infinity], { atol: 1e9 })).toThrow(/out of tolerance/);
    expect(() => expectClose('len', [1, 2], [1, 2, 3], {})).toThrow(/length mismatch/);
  });

  test('scale and indices options', () => {
    expect(() => expectClose('scaled', [1.001], [1], { rtol: 1e-3, scale: [2] })).not.toThrow();
    expect(() => expectClose('scaled', [1.01], [1], { rtol: 1e-3, scale: 2 })).toThrow();
    expect(() => expectClose('sampled', [0, 99, 2], [0, 1, 2], { indices: [0, 2] })).not.toThrow();
  });
});

describe('finite differences', () => {
  test('central differences of Σ x³ are 3x² to ~1e-8', () => {
    const x = uniform(20, 1, -2, 2);
    const fd = finiteDiff(() => x.reduce((s, v) => s + v ** 3, 0), x, sampleIndices(20, 20, 1));
    expectClose('d/dx Σx³', fd, x.map((v) => 3 * v * v), { rtol: 1e-7, atol: 1e-8 });
  });

  test('expectGradClose catches a gradient that is 1% off, and refuses a vacuous all-zero check', () => {
    const x = uniform(30, 2);
    const R = uniform(30, 3);
    const idx = sampleIndices(30, 30, 4);
    const fd = finiteDiff(() => dot(swigluRef(x, x), R), x, idx);
    const right = x.map((g, i) => {
      const s = 1 / (1 + Math.exp(-g));
      return R[i] * (g * s * (2 + g * (1 - s)));
    });
    expect(() => expectGradClose('right', right, fd, idx, 1e-6)).not.toThrow();
    expect(() => expectGradClose('wrong', right.map((v) => v * 1.01), fd, idx, 1e-4)).toThrow(/wrong: .* out of tolerance/);
    expect(() => expectGradClose('zero', [0, 0], [0, 0], [0, 1], 1e-4)).toThrow(/vacuous/);
  });

  test('sampleIndices: all when few, distinct and including both ends when many', () => {
    expect(sampleIndices(5, 10, 1)).toEqual([0, 1, 2, 3, 4]);
    const s = sampleIndices(1000, 40, 2);
    expect(s).toHaveLength(40);
    expect(new Set(s).size).toBe(40);
    expect(s[0]).toBe(0);
    expect(s[39]).toBe(999);
  });
});

describe('bit conversions', () => {
  test('bf16 rounding to nearest even, including ties and NaN', () => {
    expect(f32ToBf16Bits(1)).toBe(0x3f80);
    expect(f32ToBf16Bits(1 + 2 ** -8)).toBe(0x3f80); // tie -> even (down)
    expect(f32ToBf16Bits(1 + 3 * 2 ** -8)).toBe(0x3f82); // tie -> even (up)
    expect(f32ToBf16Bits(-2)).toBe(0xc000);
    expect(f32ToBf16Bits(Infinity)).toBe(0x7f80);
    expect(Number.isNaN(bf16BitsToNumber(f32ToBf16Bits(NaN)))).toBe(true);
    expect(bf16BitsToNumber(0x4049)).toBe(3.140625);
  });

  test('f16 decoding from the format definition', () => {
    expect(f16BitsToNumber(0x3c00)).toBe(1);
    expect(f16BitsToNumber(0x7bff)).toBe(65504);
    expect(f16BitsToNumber(0x0001)).toBe(2 ** -24);
    expect(f16BitsToNumber(0x0400)).toBe(2 ** -14);
    expect(Object.is(f16BitsToNumber(0x8000), -0)).toBe(true);
    expect(f16BitsToNumber(0xfc00)).toBe(-Infinity);
    expect(Number.isNaN(f16BitsToNumber(0x7e00))).toBe(true);
  });

  test('dropoutUniform is splitmix64: seed 0, element 0 gives the first splitmix64 output 0xE220A8397B1DCDAF', () => {
    expect(dropoutUniform(0n, 0)).toBe(0xe220a8 / 16777216);
    const u = Array.from({ length: 10000 }, (_, i) => dropoutUniform(12345n, i));
    const mean = u.reduce((a, b) => a + b) / u.length;
    expect(Math.abs(mean - 0.5)).toBeLessThan(0.02);
    expect(u.every((v) => v >= 0 && v < 1)).toBe(true);
  });
});

describe('references on hand-computed cases', () => {
  test('matmul with transposes, alpha, beta', () => {
    const a = [1, 2, 3, 4];
    const b = [5, 6, 7, 8];
    expect(Array.from(matmulRef({ a, aShape: [2, 2], b, bShape: [2, 2], transA: false, transB: false, alpha: 1, beta: 0 }))).toEqual([19, 22, 43, 50]);
    expect(Array.from(matmulRef({ a, aShape: [2, 2], b, bShape: [2, 2], transA: true, transB: false, alpha: 1, beta: 0 }))).toEqual([26, 30, 38, 44]);
    expect(Array.from(matmulRef({ a, aShape: [2, 2], b, bShape: [2, 2], transA: false, transB: true, alpha: 1, beta: 0 }))).toEqual([17, 23, 39, 53]);
    expect(Array.from(matmulRef({ a, aShape: [2, 2], b, bShape: [2, 2], transA: false, transB: false, alpha: 2, beta: 0.5, c: [2, 2, 2, 2] }))).toEqual([39, 45, 87, 101]);
    // a [1, 3] · b [3, 2]
    expect(Array.from(matmulRef({ a: [1, 2, 3], aShape: [1, 3], b: [1, 0, 0, 1, 1, 1], bShape: [3, 2], transA: false, transB: false, alpha: 1, beta: 0 }))).toEqual([4, 5]);
  });

  test('attention: one key gives out = v and lse = scale·q·k; two equal keys give lse + log 2', () => {
    const q = [1, 2];
    const k = [3, 4, 3, 4];
    const v = [5, 6, 7, 8];
    const r = attentionRef(q.concat(q), k, v, { B: 1, T: 2, Hq: 1, Hkv: 1, D: 2 }, null, 0.5, true);
    expect(Array.from(r.out.slice(0, 2))).toEqual([5, 6]);
    expect(r.lse[0]).toBeCloseTo(0.5 * 11, 12);
    expect(r.lse[1]).toBeCloseTo(0.5 * 11 + Math.log(2), 12);
    expect(Array.from(r.out.slice(2))).toEqual([6, 7]);
    // a segment boundary hides the first key from the second query
    const s = attentionRef(q.concat(q), k, v, { B: 1, T: 2, Hq: 1, Hkv: 1, D: 2 }, [0, 1], 0.5, false);
    expect(Array.from(s.out.slice(2))).toEqual([7, 8]);
  });

  test('rope: inv_freq of theta 10000, D 4 is [1, 0.01]; position 0 is the identity; rotate_half at 90°', () => {
    const inv = ropeInvFreqRef({ headDim: 4, theta: 10000 });
    expect(inv[0]).toBe(1);
    expect(inv[1]).toBe(Math.fround(0.01));
    const x = [1, 2, 3, 4];
    expect(Array.from(ropeRef(x, [0], inv, 1, 1, 4))).toEqual(x);
    // angle π/2 on pair (x0, x2): y0 = -x2, y2 = x0
    const y = ropeRef([1, 0, 3, 0], [1], [Math.PI / 2, 0], 1, 1, 4);
    expect(y[0]).toBeCloseTo(-3, 6);
    expect(y[2]).toBeCloseTo(1, 6);
  });

  test('cross-entropy of uniform logits is log V; rmsnorm of a constant row is w', () => {
    const ce = crossEntropyRef([0, 0, 0, 0, 5, 5, 5, 5], [1, -100], 2, 4, -100);
    expect(ce.losses[0]).toBeCloseTo(Math.log(4), 12);
    expect(ce.losses[1]).toBe(0);
    expect(ce.lse[1]).toBeCloseTo(5 + Math.log(4), 12);
    expect(ce.count).toBe(1);
    const rn = rmsnormRef([3, 3, 3], [1, 2, 3], 1, 3, 1e-12);
    expect(rn.y[1]).toBeCloseTo(2, 9);
  });

  test('AdamW first step with wd 0 moves by lr·g/(|g| + eps); clip halves a norm-2 gradient at max 1', () => {
    const p = Float64Array.of(1, 1);
    adamwRef(p, [0.5, -2], new Float64Array(2), new Float64Array(2), { lr: 0.1, weightDecay: 0, step: 1 });
    expect(p[0]).toBeCloseTo(1 - Math.fround(0.1), 6);
    expect(p[1]).toBeCloseTo(1 + Math.fround(0.1), 6);
    const g = [Float64Array.of(0, 2)];
    expect(clipRef(g, 1)).toBe(2);
    expect(g[0][1]).toBeCloseTo(1, 6);
  });
});
