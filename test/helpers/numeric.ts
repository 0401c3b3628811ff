// Numeric helpers of the native test suite: a seeded generator, bf16 / f16 bit conversions written
// independently of the addon, element-wise comparison that reports the worst element, and central
// finite differences in f64.

// ---- seeded random numbers (mulberry32): reproducible on every platform

export class Rng {
  private s: number;
  constructor(seed: number) {
    this.s = seed >>> 0 || 0x9e3779b9;
  }
  /** uniform in [0, 1) */
  next(): number {
    let t = (this.s = (this.s + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  uniform(lo: number, hi: number): number {
    return lo + (hi - lo) * this.next();
  }
  int(lo: number, hiExclusive: number): number {
    return lo + Math.floor(this.next() * (hiExclusive - lo));
  }
}

/** n values uniform in [lo, hi), each exactly representable in f32 (so f32 tensors hold them exactly). */
export function uniform(n: number, seed: number, lo = -1, hi = 1): Float64Array {
  const r = new Rng(seed);
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) out[i] = Math.fround(r.uniform(lo, hi));
  return out;
}

/** n integers in [lo, hi) */
export function randInts(n: number, seed: number, lo: number, hiExclusive: number): Int32Array {
  const r = new Rng(seed);
  const out = new Int32Array(n);
  for (let i = 0; i < n; i++) out[i] = r.int(lo, hiExclusive);
  return out;
}

export function prod(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

// ---- bf16 / f16 bits (round to nearest even, as core/half.h documents)

const f32buf = new Float32Array(1);
const u32buf = new Uint32Array(f32buf.buffer);

export function f32Bits(x: number): number {
  f32buf[0] = x;
  return u32buf[0];
}

export function f32FromBits(u: number): number {
  u32buf[0] = u >>> 0;
  return f32buf[0];
}

/** f32 -> bf16 bits, round to nearest even; NaN stays a (quiet) NaN. */
export function f32ToBf16Bits(x: number): number {
  const u = f32Bits(x);
  if ((u & 0x7fffffff) >>> 0 > 0x7f800000) return ((u >>> 16) | 0x40) & 0xffff;
  return ((u + 0x7fff + ((u >>> 16) & 1)) >>> 16) & 0xffff;
}

export function bf16BitsToNumber(h: number): number {
  return f32FromBits((h & 0xffff) << 16);
}

export function roundBf16(x: number): number {
  return bf16BitsToNumber(f32ToBf16Bits(x));
}

export function roundBf16Array(x: ArrayLike<number>): Float64Array {
  const out = new Float64Array(x.length);
  for (let i = 0; i < x.length; i++) out[i] = roundBf16(x[i]);
  return out;
}

/** IEEE half bits -> value (written from the format's definition, not from the addon's code). */
export function f16BitsToNumber(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0) return sign * m * 2 ** -24;
  if (e === 31) return m ? NaN : sign * Infinity;
  return sign * (1 + m / 1024) * 2 ** (e - 15);
}

// ---- comparison

export interface CloseOptions {
  /** absolute tolerance */
  atol?: number;
  /** relative tolerance, applied to `scale` (per element or one number) or else to |want| */
  rtol?: number;
  scale?: ArrayLike<number> | number;
  /** shape of the arrays, to print the worst element's coordinates */
  shape?: readonly number[];
  /** restrict the comparison to these flat indices (and print them) */
  indices?: readonly number[];
}

export interface CloseReport {
  maxAbs: number;
  maxRel: number;
  worst: number;
  bad: number;
}

export function unravel(i: number, shape?: readonly number[]): string {
  if (!shape || shape.length === 0) return `[${i}]`;
  const idx: number[] = [];
  let r = i;
  for (let d = shape.length - 1; d >= 0; d--) {
    idx.unshift(r % shape[d]);
    r = Math.floor(r / shape[d]);
  }
  return `[${idx.join(', ')}]`;
}

function fmt(x: number): string {
  return Number.isFinite(x) ? x.toPrecision(9) : String(x);
}

/**
 * Element-wise |got - want| <= atol + rtol * scale. NaN must match NaN and infinities must match
 * exactly. Throws an Error naming the worst element (flat index and coordinates), its values, the
 * allowed error, the max absolute and relative errors and how many elements are out of tolerance.
 */
export function expectClose(label: string, got: ArrayLike<number>, want: ArrayLike<number>, opts: CloseOptions = {}): CloseReport {
  const { atol = 0, rtol = 0, scale, shape, indices } = opts;
  if (indices === undefined && got.length !== want.length) {
    throw new Error(`${label}: length mismatch: got ${got.length} values, want ${want.length}`);
  }
  const n = indices ? indices.length : want.length;
  let maxAbs = 0;
  let maxRel = 0;
  let worst = -1;
  let worstExcess = -Infinity;
  let bad = 0;
  for (let t = 0; t < n; t++) {
    const i = indices ? indices[t] : t;
    const g = got[i];
    const w = want[i];
    const sc = scale === undefined ? Math.abs(w) : typeof scale === 'number' ? scale : Math.abs(scale[i]);
    let allowed: number;
    let err: number;
    if (!Number.isFinite(w)) {
      // NaN must be NaN, ±inf must be the same infinity, whatever the tolerance
      allowed = 0;
      err = (Number.isNaN(w) && Number.isNaN(g)) || g === w ? 0 : Infinity;
    } else {
      allowed = atol + rtol * (Number.isFinite(sc) ? sc : 0);
      err = Number.isNaN(g) ? Infinity : Math.abs(g - w);
    }
    const rel = err / Math.max(Math.abs(w), Number.MIN_VALUE);
    if (err > maxAbs) maxAbs = err;
    if (rel > maxRel && Number.isFinite(rel)) maxRel = rel;
    const excess = err - allowed;
    if (err > allowed) bad++;
    if (excess > worstExcess || worst < 0) {
      worstExcess = excess;
      worst = i;
    }
  }
  if (bad > 0) {
    const w = want[worst];
    const g = got[worst];
    const sc = scale === undefined ? Math.abs(w) : typeof scale === 'number' ? scale : Math.abs(scale[worst]);
    const allowedWorst = Number.isFinite(w) ? atol + rtol * (Number.isFinite(sc) ? sc : 0) : 0;
    throw new Error(
      `${label}: ${bad} of ${n} elements out of tolerance (atol ${atol}, rtol ${rtol}). ` +
        `Worst at flat index ${worst} ${unravel(worst, shape)}: got ${fmt(g)}, want ${fmt(w)}, ` +
        `|err| ${fmt(Math.abs(g - w))} > allowed ${fmt(allowedWorst)}. ` +
        `Max abs err ${fmt(maxAbs)}, max rel err ${fmt(maxRel)}.`,
    );
  }
  return { maxAbs, maxRel, worst, bad };
}

/** Exact equality (bitwise for finite values, NaN == NaN), with the same worst-index report. */
export function expectEqual(label: string, got: ArrayLike<number>, want: ArrayLike<number>, shape?: readonly number[]): void {
  expectClose(label, got, want, { atol: 0, rtol: 0, shape });
}

export function maxAbs(x: ArrayLike<number>, indices?: readonly number[]): number {
  let m = 0;
  if (indices) for (const i of indices) m = Math.max(m, Math.abs(x[i]));
  else for (let i = 0; i < x.length; i++) m = Math.max(m, Math.abs(x[i]));
  return m;
}

// ---- finite differences

/** All indices when n <= count; else `count` distinct indices (always including the first and last). */
export function sampleIndices(n: number, count: number, seed: number): number[] {
  if (n <= count) return Array.from({ length: n }, (_, i) => i);
  const set = new Set<number>([0, n - 1]);
  const r = new Rng(seed);
  while (set.size < count) set.add(r.int(0, n));
  return [...set].sort((a, b) => a - b);
}

/**
 * Central differences of the scalar f at x (f64), for the given coordinates of x: x is perturbed in
 * place and restored. The step is relative to |x_i| (h * (1 + |x_i|)). f receives the perturbed index,
 * so that it may evaluate only the part of the loss that depends on it (the rest cancels anyway).
 */
export function finiteDiff(f: (i: number) => number, x: Float64Array, indices: readonly number[], h = 1e-6): Float64Array {
  const out = new Float64Array(x.length);
  for (const i of indices) {
    const v = x[i];
    const step = h * (1 + Math.abs(v));
    x[i] = v + step;
    const fp = f(i);
    x[i] = v - step;
    const fm = f(i);
    x[i] = v;
    out[i] = (fp - fm) / (2 * step);
  }
  return out;
}

/** L = Σ out ∘ R: the scalar loss whose gradient with respect to out is R. */
export function dot(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`dot: lengths differ (${a.length} vs ${b.length})`);
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i] * b[i];
  return s;
}

/**
 * A native gradient against finite differences on sampled coordinates: |got - fd| <= rtol * (|fd| +
 * max|fd|) (the max term stands for the f32 cancellation of near-zero entries).
 */
export function expectGradClose(
  label: string,
  got: ArrayLike<number>,
  fd: ArrayLike<number>,
  indices: readonly number[],
  rtol: number,
  shape?: readonly number[],
  allowZero = false,
): CloseReport {
  const m = maxAbs(fd, indices);
  if (!(m > 0)) {
    // a gradient that is truly zero (e.g. dq of a single visible key) must be (near) zero natively too
    if (allowZero) return expectClose(label, got, fd, { indices, atol: 1e-7, shape });
    throw new Error(`${label}: the finite-difference gradient is zero on every sampled coordinate; the check would be vacuous`);
  }
  return expectClose(label, got, fd, { indices, rtol, atol: rtol * m, shape });
}

/**
 * The bf16 dot-product path may round the activations to bf16 (vdpbf16ps) or, on shapes where the GEMM
 * picks an exact kernel (one-token rows, rank-sized N), use them as they are: accept either reference,
 * each with the tight tolerance, and report both when neither matches.
 */
export function expectCloseToEither(
  label: string,
  got: ArrayLike<number>,
  wants: [name: string, values: ArrayLike<number>][],
  opts: CloseOptions = {},
): CloseReport {
  const errors: string[] = [];
  for (const [name, want] of wants) {
    try {
      return expectClose(`${label} vs ${name}`, got, want, opts);
    } catch (e) {
      errors.push((e as Error).message);
    }
  }
  throw new Error(errors.join('\n'));
}
