// The native thread pool: results do not depend on the number of threads (1, 2, 3: the GEMM grid, the
// per-thread partial sums of rmsnorm's dw and of the grad norm, attention's per-thread dq scratch, and
// embedding's column split), and setNumThreads refuses nonsense.
//
// Tolerance between thread counts: |a − b| <= 1e-5·max|b| + 1e-5·|b| (summation order may change).
import { Tensor, ops, setNumThreads, nativeInfo } from '../../bindings/index.js';
import { expectClose, maxAbs, uniform, randInts } from '../helpers/numeric.js';
import { f32, i32, read, nanTensor } from '../helpers/tensors.js';

const initial = nativeInfo().threads;
afterAll(() => {
  setNumThreads(initial);
  expect(nativeInfo().threads).toBe(initial);
});

function workload(): Record<string, Float64Array> {
  const out: Record<string, Float64Array> = {};
  // GEMM large enough to be split across threads
  const [M, N, K] = [200, 150, 300];
  const c = nanTensor([M, N]);
  ops.matmul(f32(uniform(M * K, 1), [M, K]), f32(uniform(N * K, 2), [N, K]), c, false, true, 1, 0);
  out.matmul = read(c);
  // rmsnorm backward: per-thread dw partials
  const [R, C] = [1500, 40];
  const x = f32(uniform(R * C, 3), [R, C]);
  const w = f32(uniform(C, 4), [C]);
  const rstd = Tensor.empty('f32', [R]);
  ops.rmsnormForward(x, w, 1e-5, Tensor.empty('f32', [R, C]), rstd);
  const dx = nanTensor([R, C]);
  const dw = Tensor.empty('f32', [C]);
  ops.rmsnormBackward(f32(uniform(R * C, 5), [R, C]), x, w, rstd, dx, dw);
  out.rmsDx = read(dx);
  out.rmsDw = read(dw);
  // attention backward: dq accumulated in per-thread scratch
  const [B, T, Hq, Hkv, D] = [2, 150, 4, 2, 16];
  const q = f32(uniform(B * T * Hq * D, 6), [B, T, Hq, D]);
  const k = f32(uniform(B * T * Hkv * D, 7), [B, T, Hkv, D]);
  const v = f32(uniform(B * T * Hkv * D, 8), [B, T, Hkv, D]);
  const o = Tensor.empty('f32', [B, T, Hq, D]);
  const lse = Tensor.empty('f32', [B, Hq, T]);
  ops.attentionForward(q, k, v, null, 0.25, true, o, lse);
  const dq = nanTensor([B, T, Hq, D]);
  const dk = nanTensor([B, T, Hkv, D]);
  const dv = nanTensor([B, T, Hkv, D]);
  ops.attentionBackward(q, k, v, null, 0.25, true, o, lse, f32(uniform(B * T * Hq * D, 9), [B, T, Hq, D]), dq, dk, dv);
  out.attnOut = read(o);
  out.dq = read(dq);
  out.dk = read(dk);
  out.dv = read(dv);
  // embedding backward: columns split across threads, repeated ids
  const ids = i32(randInts(200, 10, 0, 5), [200]);
  const dt = Tensor.empty('f32', [5, 300]);
  ops.embeddingBackward(ids, f32(uniform(200 * 300, 11), [200, 300]), dt);
  out.dtable = read(dt);
  // grad norm: per-thread partial sums
  out.norm = Float64Array.of(ops.globalGradNorm([f32(uniform(50001, 12), [50001])]));
  return out;
}

test('results agree for 1, 2 and 3 threads', () => {
  const runs = [1, 2, 3].map((n) => {
    setNumThreads(n);
    expect(nativeInfo().threads).toBe(n);
    return workload();
  });
  setNumThreads(initial);
  for (const [i, r] of runs.entries()) {
    if (i === 0) continue;
    for (const key of Object.keys(runs[0])) {
      expectClose(`${key} with ${i + 1} threads vs 1`, r[key], runs[0][key], { rtol: 1e-5, atol: 1e-5 * maxAbs(runs[0][key]) });
    }
  }
});

test('setNumThreads refuses 0, negatives and fractions', () => {
  expect(() => setNumThreads(0)).toThrow(/setNumThreads: argument 'n' must be in \[1, 1024\], got 0/);
  expect(() => setNumThreads(-2)).toThrow(/must be in \[1, 1024\]/);
  expect(() => setNumThreads(1.5)).toThrow(/setNumThreads: argument 'n' must be an integer/);
  expect(nativeInfo().threads).toBe(initial);
});
