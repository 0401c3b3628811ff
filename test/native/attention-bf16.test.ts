// Attention with bf16 tile products (vdpbf16ps; the model's attention_precision 'bf16'): forward against
// the fp64 reference, backward against finite differences of that reference, with tolerances of bf16
// rounding (8 mantissa bits), on awkward shapes (T = 1, odd T and D, partial tiles, GQA, segments). On a CPU
// without AVX512-BF16 (or with the bf16 dot products switched off) the flag must fall back to exactly the
// f32 kernel.
import { Tensor, ops, nativeInfo, setBf16Dot } from '../../bindings/index.js';
import { expectClose, expectEqual, finiteDiff, uniform, randInts, sampleIndices, maxAbs } from '../helpers/numeric.js';
import { attentionRef, attentionLosses } from '../helpers/reference.js';
import type { AttnShape } from '../helpers/reference.js';
import { f32, i32, read, nanTensor } from '../helpers/tensors.js';

const hasBf16 = nativeInfo().isa.active === 'avx512' && nativeInfo().isa.avx512bf16;

// [B, T, Hq, Hkv, D, causal, segmented]
const CASES: [number, number, number, number, number, boolean, boolean][] = [
  [1, 1, 1, 1, 2, true, false],
  [1, 7, 2, 1, 5, true, false],
  [2, 67, 4, 2, 8, true, false],
  [1, 130, 3, 1, 64, true, false],
  [2, 70, 2, 2, 16, false, true],
  [1, 129, 2, 1, 7, true, true],
];

function run(s: AttnShape, q: Float64Array, k: Float64Array, v: Float64Array, R: Float64Array, seg: Int32Array | null, causal: boolean, bf16: boolean) {
  const { B, T, Hq, Hkv, D } = s;
  const scale = 1 / Math.sqrt(D);
  const Q = f32(q, [B, T, Hq, D]);
  const K = f32(k, [B, T, Hkv, D]);
  const V = f32(v, [B, T, Hkv, D]);
  const S = seg ? i32(seg, [B, T]) : null;
  const out = nanTensor([B, T, Hq, D]);
  const lse = nanTensor([B, Hq, T]);
  ops.attentionForward(Q, K, V, S, scale, causal, out, lse, bf16);
  const dq = nanTensor([B, T, Hq, D]);
  const dk = nanTensor([B, T, Hkv, D]);
  const dv = nanTensor([B, T, Hkv, D]);
  ops.attentionBackward(Q, K, V, S, scale, causal, out, lse, f32(R, [B, T, Hq, D]), dq, dk, dv, bf16);
  const res = { out: read(out), lse: read(lse), dq: read(dq), dk: read(dk), dv: read(dv) };
  for (const t of [Q, K, V, out, lse, dq, dk, dv]) t.release();
  return res;
}

function segments(B: number, T: number, seed: number): Int32Array {
  const seg = new Int32Array(B * T);
  const cuts = randInts(B * 4, seed, 1, T);
  for (let b = 0; b < B; b++) for (let t = 0; t < T; t++) seg[b * T + t] = cuts.slice(b * 4, b * 4 + 4).filter((c) => c <= t).length;
  return seg;
}

let seed = 91000;

describe('attention with bf16 products', () => {
  (hasBf16 ? test.each(CASES) : test.skip.each(CASES))(
    'B=%i T=%i Hq=%i Hkv=%i D=%i causal=%s segments=%s: out/lse vs fp64, dq/dk/dv vs finite differences (bf16 tolerance)',
    (B, T, Hq, Hkv, D, causal, segmented) => {
      const s: AttnShape = { B, T, Hq, Hkv, D };
      const scale = 1 / Math.sqrt(D);
      const q = uniform(B * T * Hq * D, ++seed, -2, 2);
      const k = uniform(B * T * Hkv * D, ++seed, -2, 2);
      const v = uniform(B * T * Hkv * D, ++seed);
      const R = uniform(B * T * Hq * D, ++seed);
      const seg = segmented ? segments(B, T, ++seed) : null;
      const got = run(s, q, k, v, R, seg, causal, true);
      const ref = attentionRef(q, k, v, s, seg, scale, causal);
      // bf16 operands: relative rounding 2^-9 per operand; errors of a few 1e-3 of the output's scale
      expectClose('out', got.out, ref.out, { atol: 8e-3 * maxAbs(ref.out), rtol: 0 });
      expectClose('lse', got.lse, ref.lse, { atol: 2e-2, rtol: 0 });
      const f32run = run(s, q, k, v, R, seg, causal, false);
      // the bf16 path really ran: not bit-identical to the f32 kernel (except the trivial T = 1 row)
      if (T > 1) expect(got.out.some((x, i) => x !== f32run.out[i])).toBe(true);

      const { lossQ, lossKV } = attentionLosses(q, k, v, s, seg, scale, causal, R);
      const check = (name: string, g: Float64Array, f32g: Float64Array, x: Float64Array, loss: (i: number) => number) => {
        const idx = sampleIndices(x.length, 12, ++seed);
        const fd = finiteDiff(loss, x, idx);
        const scaleG = Math.max(maxAbs(f32g), 0.05); // T = 1: dq is 0 in exact arithmetic, bf16 leaves ~1e-3
        expectClose(`${name} vs finite differences`, g, fd, { atol: 3e-2 * scaleG, rtol: 0, indices: idx });
        expectClose(`${name} vs the f32 kernel`, g, f32g, { atol: 3e-2 * scaleG, rtol: 0 });
        expect(g.some(Number.isNaN)).toBe(false);
      };
      check('dq', got.dq, f32run.dq, q, lossQ);
      check('dk', got.dk, f32run.dk, k, lossKV);
      check('dv', got.dv, f32run.dv, v, lossKV);
    },
  );

  test('without bf16 dot products the flag computes exactly the f32 kernel', () => {
    const s: AttnShape = { B: 1, T: 40, Hq: 2, Hkv: 1, D: 8 };
    const q = uniform(40 * 2 * 8, 1), k = uniform(40 * 8, 2), v = uniform(40 * 8, 3), R = uniform(40 * 2 * 8, 4);
    const ref = run(s, q, k, v, R, null, true, false);
    setBf16Dot(false);
    try {
      const got = run(s, q, k, v, R, null, true, true);
      for (const key of ['out', 'lse', 'dq', 'dk', 'dv'] as const) expectEqual(key, got[key], ref[key]);
    } finally {
      setBf16Dot(true);
    }
  });
});
