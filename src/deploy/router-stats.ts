// Statistics of the A/B comparison and the monitor: quantiles, means with Student-t confidence
// intervals, Welch's t-test (ratings, latencies), the two-proportion z-test (error rates). The t
// distribution's CDF comes from the regularized incomplete beta function (Lentz's continued fraction).
import { percentile } from '../eval/perf.js';

/** The q-quantile (0..1) of the values, nearest rank (eval/perf.ts's percentile); null when empty. */
export function quantile(values: readonly number[], q: number): number | null {
  if (!values.length) return null;
  return percentile([...values].sort((a, b) => a - b), q * 100);
}

export function mean(values: readonly number[]): number | null {
  return values.length ? values.reduce((a, b) => a + b, 0) / values.length : null;
}

/** Sample variance (n - 1 in the denominator); null below two values. */
export function variance(values: readonly number[]): number | null {
  if (values.length < 2) return null;
  const m = mean(values)!;
  return values.reduce((a, v) => a + (v - m) ** 2, 0) / (values.length - 1);
}

// Lanczos approximation (g = 7, n = 9) of ln Γ(x), x > 0
const LANCZOS = [0.99999999999980993, 676.5203681218851, -1259.1392167224028, 771.32342877765313, -176.61502916214059, 12.507343278686905, -0.13857109526572012, 9.9843695780195716e-6, 1.5056327351493116e-7];
export function logGamma(x: number): number {
  if (x < 0.5) return Math.log(Math.PI / Math.sin(Math.PI * x)) - logGamma(1 - x);
  x -= 1;
  let a = LANCZOS[0];
  const t = x + 7.5;
  for (let i = 1; i < 9; i++) a += LANCZOS[i] / (x + i);
  return 0.5 * Math.log(2 * Math.PI) + (x + 0.5) * Math.log(t) - t + Math.log(a);
}

function betaContinuedFraction(a: number, b: number, x: number): number {
  const tiny = 1e-300;
  let c = 1;
  let d = 1 - ((a + b) * x) / (a + 1);
  if (Math.abs(d) < tiny) d = tiny;
  d = 1 / d;
  let h = d;
  for (let m = 1; m <= 300; m++) {
    const m2 = 2 * m;
    let aa = (m * (b - m) * x) / ((a + m2 - 1) * (a + m2));
    d = 1 + aa * d;
    if (Math.abs(d) < tiny) d = tiny;
    c = 1 + aa / c;
    if (Math.abs(c) < tiny) c = tiny;
    d = 1 / d;
    h *= d * c;
    aa = (-(a + m) * (a + b + m) * x) / ((a + m2) * (a + m2 + 1));
    d = 1 + aa * d;
    if (Math.abs(d) < tiny) d = tiny;
    c = 1 + aa / c;
    if (Math.abs(c) < tiny) c = tiny;
    d = 1 / d;
    const del = d * c;
    h *= del;
    if (Math.abs(del - 1) < 1e-14) break;
  }
  return h;
}

/** The regularized incomplete beta function I_x(a, b). */
export function incompleteBeta(a: number, b: number, x: number): number {
  if (x <= 0) return 0;
  if (x >= 1) return 1;
  const front = Math.exp(logGamma(a + b) - logGamma(a) - logGamma(b) + a * Math.log(x) + b * Math.log(1 - x));
  return x < (a + 1) / (a + b + 2) ? (front * betaContinuedFraction(a, b, x)) / a : 1 - (front * betaContinuedFraction(b, a, 1 - x)) / b;
}

/** P(|T| >= |t|) for Student's t with df degrees of freedom. */
export function tTwoSidedP(t: number, df: number): number {
  return incompleteBeta(df / 2, 0.5, df / (df + t * t));
}

/** The t value with P(T <= t) = p (0.5 < p < 1), by bisection. */
export function tQuantile(p: number, df: number): number {
  let lo = 0;
  let hi = 1e3;
  for (let i = 0; i < 200; i++) {
    const mid = (lo + hi) / 2;
    if (1 - tTwoSidedP(mid, df) / 2 < p) lo = mid;
    else hi = mid;
  }
  return (lo + hi) / 2;
}

/** Φ(z), the standard normal CDF (via erfc, Numerical Recipes' Chebyshev fit, |error| < 1.2e-7). */
export function normalCdf(z: number): number {
  const x = Math.abs(z) / Math.SQRT2;
  const t = 1 / (1 + 0.5 * x);
  const erfc = t * Math.exp(-x * x - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 + t * (-0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277)))))))));
  return z >= 0 ? 1 - erfc / 2 : erfc / 2;
}

/** The mean and its 95% confidence interval (Student t); the interval is null below two values. */
export function meanCi95(values: readonly number[]): { n: number; mean: number | null; ci95: [number, number] | null } {
  const m = mean(values);
  const v = variance(values);
  if (m === null || v === null) return { n: values.length, mean: m, ci95: null };
  const half = tQuantile(0.975, values.length - 1) * Math.sqrt(v / values.length);
  return { n: values.length, mean: m, ci95: [m - half, m + half] };
}

export interface TestResult {
  /** b - a */
  difference: number;
  statistic: number;
  /** two-sided */
  p: number;
  df?: number;
  /** 95% interval of the difference */
  ci95?: [number, number];
}

/** Welch's t-test of mean(b) - mean(a); null when either side has fewer than two values or both have no spread. */
export function welchTTest(a: readonly number[], b: readonly number[]): TestResult | null {
  const va = variance(a);
  const vb = variance(b);
  if (va === null || vb === null) return null;
  const sa = va / a.length;
  const sb = vb / b.length;
  const se = Math.sqrt(sa + sb);
  const difference = mean(b)! - mean(a)!;
  if (se === 0) return null;
  const df = (sa + sb) ** 2 / (sa ** 2 / (a.length - 1) + sb ** 2 / (b.length - 1));
  const statistic = difference / se;
  const half = tQuantile(0.975, df) * se;
  return { difference, statistic, p: tTwoSidedP(statistic, df), df, ci95: [difference - half, difference + half] };
}

/** Two-proportion z-test of kb/nb - ka/na (pooled); null when a side is empty or the pooled rate is 0 or 1. */
export function twoProportionZTest(ka: number, na: number, kb: number, nb: number): TestResult | null {
  if (!na || !nb) return null;
  const pooled = (ka + kb) / (na + nb);
  if (pooled === 0 || pooled === 1) return null;
  const difference = kb / nb - ka / na;
  const statistic = difference / Math.sqrt(pooled * (1 - pooled) * (1 / na + 1 / nb));
  return { difference, statistic, p: 2 * (1 - normalCdf(Math.abs(statistic))) };
}
