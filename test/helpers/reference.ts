// Plain f64 TypeScript references of the native ops (naive loops, full score matrices, no tiling), used
// by the forward tests (compare) and by the backward tests (finite differences of these functions).
// Scalars that the addon takes as f32 (scale, eps, p, lr, ...) are rounded with Math.fround first, so
// the reference computes the same function, only in f64.
import { dot } from './numeric.js';

export type F64 = Float64Array;

const f = Math.fround;

// ---- matmul / linear

export interface MatmulArgs {
  /** A as stored: [M, K], or [K, M] with transA */
  a: ArrayLike<number>;
  aShape: readonly [number, number];
  /** B as stored: [K, N], or [N, K] with transB */
  b: ArrayLike<number>;
  bShape: readonly [number, number];
  transA: boolean;
  transB: boolean;
  alpha: number;
  beta: number;
  /** C before the call ([M, N]); read when beta != 0 */
  c?: ArrayLike<number>;
}

export function matmulDims(p: MatmulArgs): { M: number; N: number; K: number } {
  const [ar, ac] = p.aShape;
  const [br, bc] = p.bShape;
  const M = p.transA ? ac : ar;
  const K = p.transA ? ar : ac;
  const Kb = p.transB ? bc : br;
  const N = p.transB ? br : bc;
  if (K !== Kb) throw new Error(`matmulRef: inner dimensions differ (${K} vs ${Kb})`);
  return { M, N, K };
}

/** C = alpha·op(A)·op(B) + beta·C (beta == 0: C is not read, as gemm.h specifies) */
export function matmulRef(p: MatmulArgs): F64 {
  const { M, N, K } = matmulDims(p);
  const [, ac] = p.aShape;
  const [, bc] = p.bShape;
  const alpha = f(p.alpha);
  const beta = f(p.beta);
  // op(A) as [M, K] rows and op(B)ᵀ as [N, K] rows, so the inner loop is contiguous
  const A = new Float64Array(M * K);
  const Bt = new Float64Array(N * K);
  for (let i = 0; i < M; i++) for (let k = 0; k < K; k++) A[i * K + k] = p.transA ? p.a[k * ac + i] : p.a[i * ac + k];
  for (let j = 0; j < N; j++) for (let k = 0; k < K; k++) Bt[j * K + k] = p.transB ? p.b[j * bc + k] : p.b[k * bc + j];
  const out = new Float64Array(M * N);
  for (let i = 0; i < M; i++) {
    const ao = i * K;
    for (let j = 0; j < N; j++) {
      const bo = j * K;
      let s = 0;
      for (let k = 0; k < K; k++) s += A[ao + k] * Bt[bo + k];
      out[i * N + j] = alpha * s + (beta !== 0 && p.c ? beta * p.c[i * N + j] : 0);
    }
  }
  return out;
}

/** |alpha|·|op(A)|·|op(B)| + |beta|·|C|: the magnitude that bounds the rounding error of each element. */
export function matmulAbsRef(p: MatmulArgs): F64 {
  const abs = (x: ArrayLike<number>) => Float64Array.from(x as ArrayLike<number>, Math.abs);
  return matmulRef({
    ...p,
    a: abs(p.a),
    b: abs(p.b),
    c: p.c ? abs(p.c) : undefined,
    alpha: Math.abs(p.alpha),
    beta: Math.abs(p.beta),
  });
}

/** y[M, N] = x[M, K] · W[N, K]ᵀ */
export function linearRef(x: ArrayLike<number>, w: ArrayLike<number>, M: number, K: number, N: number): F64 {
  return matmulRef({ a: x, aShape: [M, K], b: w, bShape: [N, K], transA: false, transB: true, alpha: 1, beta: 0 });
}

export function linearAbsRef(x: ArrayLike<number>, w: ArrayLike<number>, M: number, K: number, N: number): F64 {
  return matmulAbsRef({ a: x, aShape: [M, K], b: w, bShape: [N, K], transA: false, transB: true, alpha: 1, beta: 0 });
}

// ---- dropout: the counter hash of native/cpu/kernels.h dropout_uniform, in BigInt

const MASK64 = (1n << 64n) - 1n;
const GOLDEN = 0x9e3779b97f4a7c15n;
const MIX1 = 0xbf58476d1ce4e5b9n;
const MIX2 = 0x94d049bb133111ebn;

/** splitmix64 of seed + (i + 1)·golden, top 24 bits as a float in [0, 1) */
export function dropoutUniform(seed: bigint, i: number): number {
  let z = (seed + (BigInt(i) + 1n) * GOLDEN) & MASK64;
  z = ((z ^ (z >> 30n)) * MIX1) & MASK64;
  z = ((z ^ (z >> 27n)) * MIX2) & MASK64;
  z ^= z >> 31n;
  return Number(z >> 40n) / 16777216;
}

/** 1 / (1 - p) as the kernel computes it in f32 */
export function dropoutKeepScale(p: number): number {
  return f(1 / f(1 - f(p)));
}

/** Per-element factor of dropout(seed, p) over n elements: 0 (dropped) or 1/(1-p) (kept). */
export function dropoutFactors(n: number, p: number, seed: number | bigint): F64 {
  const out = new Float64Array(n);
  const pf = f(p);
  const ks = dropoutKeepScale(p);
  const s = BigInt(seed);
  for (let i = 0; i < n; i++) out[i] = dropoutUniform(s, i) >= pf ? ks : 0;
  return out;
}

export function dropoutRef(x: ArrayLike<number>, factors: ArrayLike<number>): F64 {
  const out = new Float64Array(x.length);
  for (let i = 0; i < x.length; i++) out[i] = x[i] * factors[i];
  return out;
}

// ---- LoRA linear: y = x·Wᵀ + s·(dropout(x)·Aᵀ)·Bᵀ, u = dropout(x)·Aᵀ

export interface LoraArgs {
  x: ArrayLike<number>;
  w: ArrayLike<number>;
  a: ArrayLike<number>;
  b: ArrayLike<number>;
  M: number;
  K: number;
  N: number;
  r: number;
  scale: number;
  /** per-element dropout factors of x (dropoutFactors), or undefined for no dropout */
  factors?: ArrayLike<number>;
}

export function loraRef(p: LoraArgs): { y: F64; u: F64 } {
  const { M, K, N, r } = p;
  const xd = p.factors ? dropoutRef(p.x, p.factors) : p.x;
  const u = linearRef(xd, p.a, M, K, r);
  const y = linearRef(p.x, p.w, M, K, N);
  const ub = linearRef(u, p.b, M, r, N);
  const s = f(p.scale);
  for (let i = 0; i < y.length; i++) y[i] += s * ub[i];
  return { y, u };
}

/** magnitude bound of y's rounding error: |x|·|W|ᵀ + |s|·(|xd|·|A|ᵀ)·|B|ᵀ */
export function loraAbsRef(p: LoraArgs): F64 {
  const abs = (x: ArrayLike<number>) => Float64Array.from(x as ArrayLike<number>, Math.abs);
  return loraRef({ ...p, x: abs(p.x), w: abs(p.w), a: abs(p.a), b: abs(p.b), scale: Math.abs(p.scale), factors: p.factors ? abs(p.factors) : undefined }).y;
}

// ---- RMSNorm: y = w · x · rstd, rstd = 1 / sqrt(mean(x²) + eps)

export function rmsnormRef(x: ArrayLike<number>, w: ArrayLike<number>, N: number, C: number, eps: number): { y: F64; rstd: F64 } {
  const y = new Float64Array(N * C);
  const rstd = new Float64Array(N);
  const e = f(eps);
  for (let i = 0; i < N; i++) {
    let ss = 0;
    for (let j = 0; j < C; j++) ss += x[i * C + j] ** 2;
    const r = 1 / Math.sqrt(ss / C + e);
    rstd[i] = r;
    for (let j = 0; j < C; j++) y[i * C + j] = w[j] * x[i * C + j] * r;
  }
  return { y, rstd };
}

// ---- rotary embedding (Hugging Face: inv_freq, llama3 / linear scaling, rotate_half)

export interface RopeRef {
  headDim: number;
  theta: number;
  llama3?: { factor: number; lowFreqFactor: number; highFreqFactor: number; originalMaxPositionEmbeddings: number };
  linearFactor?: number;
}

/**
 * inv_freq[j] = 1 / theta^(2j/D) (exponent in f32 as torch computes arange(0, D, 2).float() / D), then
 * transformers' _compute_llama3_parameters (wavelen > low_freq_wavelen: / factor; between: smoothed),
 * then / linear factor; returned as f32 values.
 */
export function ropeInvFreqRef(p: RopeRef): F64 {
  const half = p.headDim / 2;
  const out = new Float64Array(half);
  for (let j = 0; j < half; j++) {
    const expo = f(f(2 * j) / f(p.headDim));
    let inv = 1 / Math.pow(p.theta, expo);
    if (p.llama3) {
      const { factor, lowFreqFactor, highFreqFactor, originalMaxPositionEmbeddings: old } = p.llama3;
      const lowFreqWavelen = old / lowFreqFactor;
      const highFreqWavelen = old / highFreqFactor;
      const wavelen = (2 * Math.PI) / inv;
      let scaled = wavelen > lowFreqWavelen ? inv / factor : inv;
      const isMedium = !(wavelen < highFreqWavelen) && !(wavelen > lowFreqWavelen);
      if (isMedium) {
        const smooth = (old / wavelen - lowFreqFactor) / (highFreqFactor - lowFreqFactor);
        scaled = ((1 - smooth) * scaled) / factor + smooth * scaled;
      }
      inv = scaled;
    }
    inv /= p.linearFactor ?? 1;
    out[j] = f(inv);
  }
  return out;
}

/**
 * x [BT, H, D] with positions [BT]: y[j] = x[j]·cos − x[j+D/2]·sin, y[j+D/2] = x[j+D/2]·cos + x[j]·sin,
 * angle = fround(pos · inv_freq[j]) (the f32 product, as Hugging Face computes it). inverse: Rᵀ.
 */
export function ropeRef(x: ArrayLike<number>, pos: ArrayLike<number>, invFreq: ArrayLike<number>, BT: number, H: number, D: number, inverse = false): F64 {
  const half = D / 2;
  const y = new Float64Array(BT * H * D);
  const sg = inverse ? -1 : 1;
  for (let t = 0; t < BT; t++) {
    for (let j = 0; j < half; j++) {
      const angle = f(f(pos[t]) * invFreq[j]);
      const c = Math.cos(angle);
      const s = Math.sin(angle);
      for (let h = 0; h < H; h++) {
        const o = (t * H + h) * D;
        const x1 = x[o + j];
        const x2 = x[o + j + half];
        y[o + j] = x1 * c - sg * x2 * s;
        y[o + j + half] = x2 * c + sg * x1 * s;
      }
    }
  }
  return y;
}

// ---- attention (naive: the full score matrix of every query row)

export interface AttnShape {
  B: number;
  T: number;
  Hq: number;
  Hkv: number;
  D: number;
}

/** out [B, T, Hq, D], lse [B, Hq, T] (natural log); a row with no visible key gets out 0, lse -inf */
export function attentionRef(
  q: ArrayLike<number>,
  k: ArrayLike<number>,
  v: ArrayLike<number>,
  s: AttnShape,
  segment: ArrayLike<number> | null,
  scale: number,
  causal: boolean,
  /** compute only batch b, query heads [h0, h1) (the rest stays 0): for cheap finite differences */
  only?: { b: number; h0: number; h1: number },
): { out: F64; lse: F64 } {
  const { B, T, Hq, Hkv, D } = s;
  const G = Hq / Hkv;
  const sc = f(scale);
  const out = new Float64Array(B * T * Hq * D);
  const lse = new Float64Array(B * Hq * T);
  const scores = new Float64Array(T);
  for (let b = only ? only.b : 0; b < (only ? only.b + 1 : B); b++) {
    for (let h = only ? only.h0 : 0; h < (only ? only.h1 : Hq); h++) {
      const g = Math.floor(h / G);
      for (let i = 0; i < T; i++) {
        const qo = ((b * T + i) * Hq + h) * D;
        let mx = -Infinity;
        for (let j = 0; j < T; j++) {
          const visible = (!causal || j <= i) && (!segment || segment[b * T + i] === segment[b * T + j]);
          if (!visible) {
            scores[j] = -Infinity;
            continue;
          }
          const ko = ((b * T + j) * Hkv + g) * D;
          let d = 0;
          for (let e = 0; e < D; e++) d += q[qo + e] * k[ko + e];
          scores[j] = d * sc;
          if (scores[j] > mx) mx = scores[j];
        }
        if (mx === -Infinity) {
          lse[(b * Hq + h) * T + i] = -Infinity;
          continue;
        }
        let sum = 0;
        for (let j = 0; j < T; j++) sum += scores[j] === -Infinity ? 0 : Math.exp(scores[j] - mx);
        lse[(b * Hq + h) * T + i] = mx + Math.log(sum);
        for (let j = 0; j < T; j++) {
          if (scores[j] === -Infinity) continue;
          const pj = Math.exp(scores[j] - mx) / sum;
          const vo = ((b * T + j) * Hkv + g) * D;
          for (let e = 0; e < D; e++) out[qo + e] += pj * v[vo + e];
        }
      }
    }
  }
  return { out, lse };
}

// ---- SwiGLU, embedding, cross-entropy, add

export function swigluRef(g: ArrayLike<number>, u: ArrayLike<number>): F64 {
  const h = new Float64Array(g.length);
  for (let i = 0; i < g.length; i++) h[i] = (g[i] / (1 + Math.exp(-g[i]))) * u[i];
  return h;
}

/** out [N, C] = table[ids[i], :] */
export function embeddingRef(ids: ArrayLike<number>, table: ArrayLike<number>, C: number): F64 {
  const out = new Float64Array(ids.length * C);
  for (let i = 0; i < ids.length; i++) for (let j = 0; j < C; j++) out[i * C + j] = table[ids[i] * C + j];
  return out;
}

/** losses[i] = lse_i − logits[i, t_i] (0 where t_i == ignore), lse for every row, count of counted rows */
export function crossEntropyRef(
  logits: ArrayLike<number>,
  targets: ArrayLike<number>,
  N: number,
  V: number,
  ignoreIndex: number,
): { losses: F64; lse: F64; count: number } {
  const losses = new Float64Array(N);
  const lse = new Float64Array(N);
  let count = 0;
  for (let i = 0; i < N; i++) {
    let mx = -Infinity;
    for (let j = 0; j < V; j++) mx = Math.max(mx, logits[i * V + j]);
    let s = 0;
    for (let j = 0; j < V; j++) s += Math.exp(logits[i * V + j] - mx);
    lse[i] = mx + Math.log(s);
    if (targets[i] === ignoreIndex) continue;
    count++;
    losses[i] = lse[i] - logits[i * V + targets[i]];
  }
  return { losses, lse, count };
}

export function addRef(a: ArrayLike<number>, b: ArrayLike<number>): F64 {
  const out = new Float64Array(a.length);
  for (let i = 0; i < a.length; i++) out[i] = a[i] + b[i];
  return out;
}

// ---- optimizer

export interface AdamWRef {
  lr: number;
  beta1?: number;
  beta2?: number;
  eps?: number;
  weightDecay?: number;
  step: number;
}

/**
 * One torch.optim.AdamW step (foreach=False, amsgrad=False), in place, in torch's order of operations:
 * p *= 1 − lr·wd; m = β1·m + (1−β1)·g; v = β2·v + (1−β2)·g²; p −= (lr / (1−β1^t)) · m / (sqrt(v)/sqrt(1−β2^t) + eps).
 * Defaults as the addon's: β1 0.9, β2 0.999, eps 1e-8, weight decay 0.01.
 */
export function adamwRef(p: F64, g: ArrayLike<number>, m: F64, v: F64, hp: AdamWRef): void {
  const lr = f(hp.lr);
  const b1 = f(hp.beta1 ?? 0.9);
  const b2 = f(hp.beta2 ?? 0.999);
  const eps = f(hp.eps ?? 1e-8);
  const wd = f(hp.weightDecay ?? 0.01);
  const bc1 = 1 - Math.pow(b1, hp.step);
  const bc2 = 1 - Math.pow(b2, hp.step);
  const stepSize = lr / bc1;
  const bc2Sqrt = Math.sqrt(bc2);
  for (let i = 0; i < p.length; i++) {
    p[i] *= 1 - lr * wd;
    m[i] = b1 * m[i] + (1 - b1) * g[i];
    v[i] = b2 * v[i] + (1 - b2) * g[i] * g[i];
    const denom = Math.sqrt(v[i]) / bc2Sqrt + eps;
    p[i] -= stepSize * (m[i] / denom);
  }
}

/** Several AdamW steps, grads[k] at step firstStep + k (in place). */
export function adamwStepsRef(p: F64, grads: readonly ArrayLike<number>[], m: F64, v: F64, hp: Omit<AdamWRef, 'step'>, firstStep = 1): void {
  grads.forEach((g, k) => adamwRef(p, g, m, v, { ...hp, step: firstStep + k }));
}

export function globalNormRef(grads: readonly ArrayLike<number>[]): number {
  let s = 0;
  for (const g of grads) for (let i = 0; i < g.length; i++) s += g[i] * g[i];
  return Math.sqrt(s);
}

/** torch.nn.utils.clip_grad_norm_: coef = max_norm / (norm + 1e-6), applied when < 1; returns the norm */
export function clipRef(grads: F64[], maxNorm: number): number {
  const norm = globalNormRef(grads);
  const coef = maxNorm / (norm + 1e-6);
  if (coef < 1) for (const g of grads) for (let i = 0; i < g.length; i++) g[i] *= coef;
  return norm;
}

/**
 * L = Σ attention(q, k, v) ∘ R as a function of a perturbed element index, for finite differences of dq
 * (lossQ: index into q) and dk / dv (lossKV: index into k or v): only the batch and heads the element
 * feeds are evaluated (the rest cancels in the difference).
 */
export function attentionLosses(
  q: ArrayLike<number>,
  k: ArrayLike<number>,
  v: ArrayLike<number>,
  s: AttnShape,
  segment: ArrayLike<number> | null,
  scale: number,
  causal: boolean,
  R: ArrayLike<number>,
): { lossQ: (i: number) => number; lossKV: (i: number) => number } {
  const { T, Hq, Hkv, D } = s;
  const G = Hq / Hkv;
  return {
    lossQ: (i) => {
      const b = Math.floor(i / (T * Hq * D));
      const h = Math.floor(i / D) % Hq;
      return dot(attentionRef(q, k, v, s, segment, scale, causal, { b, h0: h, h1: h + 1 }).out, R);
    },
    lossKV: (i) => {
      const b = Math.floor(i / (T * Hkv * D));
      const g = Math.floor(i / D) % Hkv;
      return dot(attentionRef(q, k, v, s, segment, scale, causal, { b, h0: g * G, h1: (g + 1) * G }).out, R);
    },
  };
}
