// Forward of the layer ops (RMSNorm, RoPE with llama3 / linear scaling, causal GQA attention with
// segments, SwiGLU, embedding, cross-entropy, add, accumulate, dropout) against the f64 references.
//
// Tolerances:
//   rmsnorm      y, rstd: rtol 2e-6 + 2e-7·sqrt(C) of |ref| (f32 sum of C squares)
//   rope         |err| <= 1e-6 · (|x_j| + |x_j+D/2|) (one rotation in f32; the angle is the same f32 value)
//   attention    out: 1e-5 · max|v|; lse: 1e-5 · (1 + |lse|) (f32 dot products of length D, polynomial exp2)
//   swiglu       1e-6 · |g|·|u| + 1e-30 (exp with ~2 ulp error)
//   embedding    exact (a copy; bf16 widened exactly)
//   cross-entropy losses, lse: 4e-6 · (1 + |lse|)
//   add          exact (one f32 addition); accumulate: 1 ulp of |y| + |αx| (with or without FMA)
//   dropout      exact: x · fround(1 / (1 − p)) on the elements the counter hash keeps
import { Tensor, ops } from '../../bindings/index.js';
import type { RopeConfig } from '../../bindings/index.js';
import { expectClose, expectEqual, uniform, randInts, roundBf16Array, maxAbs, prod } from '../helpers/numeric.js';
import {
  rmsnormRef,
  ropeInvFreqRef,
  ropeRef,
  attentionRef,
  swigluRef,
  embeddingRef,
  crossEntropyRef,
  addRef,
  dropoutFactors,
  dropoutKeepScale,
  dropoutUniform,
} from '../helpers/reference.js';
import type { AttnShape } from '../helpers/reference.js';
import { f32, bf16, i32, read, nanTensor } from '../helpers/tensors.js';

let seed = 5000;

describe('rmsnormForward', () => {
  test.each([
    [[1], 1],
    [[7], 33],
    [[2, 5], 1000],
    [[33], 7],
    [[3, 4, 5], 576],
    [[1000], 17],
  ] as [number[], number][])('x %j × C=%i', (lead, C) => {
    const N = prod(lead);
    const x = uniform(N * C, ++seed, -3, 3);
    const w = uniform(C, ++seed, 0.5, 1.5);
    const y = nanTensor([...lead, C]);
    const rstd = nanTensor([N]);
    ops.rmsnormForward(f32(x, [...lead, C]), f32(w, [C]), 1e-5, y, rstd);
    const ref = rmsnormRef(x, w, N, C, 1e-5);
    const rtol = 2e-6 + 2e-7 * Math.sqrt(C);
    expectClose('rmsnorm y', read(y), ref.y, { rtol, atol: 1e-30, shape: [N, C] });
    expectClose('rmsnorm rstd', read(rstd), ref.rstd, { rtol });
  });

  test('eps dominates an all-zero row: y = 0, rstd = 1/sqrt(eps)', () => {
    const y = Tensor.empty('f32', [2, 8]);
    const rstd = Tensor.empty('f32', [2]);
    ops.rmsnormForward(Tensor.empty('f32', [2, 8]), f32(new Float64Array(8).fill(1), [8]), 1e-2, y, rstd);
    expect(Array.from(y.data())).toEqual(new Array(16).fill(0));
    expectClose('rstd', read(rstd), [10, 10], { rtol: 1e-6 });
  });
});

describe('ropeForward', () => {
  function positions(B: number, T: number, max: number, s: number): Int32Array {
    // packed sequences: positions restart, plus large ones
    const r = randInts(B * T, s, 0, max);
    for (let i = 0; i < Math.min(T, 4); i++) r[i] = i;
    return r;
  }

  function check(B: number, T: number, H: number, D: number, cfg: RopeConfig, maxPos: number, inPlace = false) {
    const x = uniform(B * T * H * D, ++seed, -2, 2);
    const pos = positions(B, T, maxPos, ++seed);
    const xt = f32(x, [B, T, H, D]);
    const y = inPlace ? xt : nanTensor([B, T, H, D]);
    ops.ropeForward(xt, i32(pos, [B, T]), cfg, y);
    const inv = ropeInvFreqRef(cfg);
    const want = ropeRef(x, pos, inv, B * T, H, D);
    const half = D / 2;
    const scale = new Float64Array(x.length);
    for (let i = 0; i < x.length; i++) {
      const j = i % D;
      const base = i - j;
      const jj = j % half;
      scale[i] = Math.abs(x[base + jj]) + Math.abs(x[base + jj + half]);
    }
    const got = read(y);
    expectClose(`rope B=${B} T=${T} H=${H} D=${D}`, got, want, { rtol: 1e-6, scale, shape: [B, T, H, D] });
    return { x, pos, inv, got, scale };
  }

  test.each([
    [1, 1, 1, 2, 10000, 10],
    [2, 7, 3, 8, 10000, 100],
    [1, 33, 2, 64, 10000, 4096],
    [2, 17, 4, 128, 500000, 131072],
    [1, 5, 1, 6, 1000, 50],
  ])('B=%i T=%i H=%i D=%i theta=%i positions < %i', (B, T, H, D, theta, maxPos) => {
    check(B, T, H, D, { headDim: D, theta }, maxPos);
  });

  test('in place (y is x)', () => {
    check(2, 9, 2, 16, { headDim: 16, theta: 10000 }, 500, true);
  });

  test('the angle is the f32 product fround(pos · inv_freq) (an f64 angle is measurably different at large positions)', () => {
    const { x, pos, inv, got, scale } = check(1, 64, 1, 32, { headDim: 32, theta: 10000 }, 1 << 20);
    // reference with the angle left in f64: differs from the op by far more than the tolerance
    const half = 16;
    const y64 = new Float64Array(x.length);
    for (let t = 0; t < 64; t++)
      for (let j = 0; j < half; j++) {
        const a = pos[t] * inv[j];
        const o = t * 32;
        y64[o + j] = x[o + j] * Math.cos(a) - x[o + j + half] * Math.sin(a);
        y64[o + j + half] = x[o + j + half] * Math.cos(a) + x[o + j] * Math.sin(a);
      }
    expect(() => expectClose('f64 angle', got, y64, { rtol: 1e-6, scale })).toThrow(/out of tolerance/);
  });

  // inv_freq read back from the op: at position 1 a unit vector rotates by exactly inv_freq[j]
  function nativeInvFreq(cfg: RopeConfig): Float64Array {
    const D = cfg.headDim;
    const half = D / 2;
    const x = new Float64Array(half * D);
    for (let j = 0; j < half; j++) x[j * D + j] = 1; // head j: e_j
    const y = Tensor.empty('f32', [1, 1, half, D]);
    ops.ropeForward(f32(x, [1, 1, half, D]), i32([1], [1, 1]), cfg, y);
    const v = read(y);
    return Float64Array.from({ length: half }, (_, j) => Math.atan2(v[j * D + j + half], v[j * D + j]));
  }

  test('llama3 rope_scaling: inv_freq as transformers computes it (high frequencies kept, low / factor, smooth between)', () => {
    const llama3 = { factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositionEmbeddings: 8192 };
    const cfg: RopeConfig = { headDim: 128, theta: 500000, llama3 };
    const plain = ropeInvFreqRef({ headDim: 128, theta: 500000 });
    const scaled = ropeInvFreqRef(cfg);
    // the reference itself: the three regimes
    let high = 0;
    let low = 0;
    let mid = 0;
    for (let j = 0; j < 64; j++) {
      const wavelen = (2 * Math.PI) / plain[j];
      if (wavelen < 8192 / 4) {
        expect(scaled[j]).toBe(plain[j]);
        high++;
      } else if (wavelen > 8192) {
        expect(scaled[j]).toBeCloseTo(plain[j] / 8, 12);
        low++;
      } else {
        expect(scaled[j]).toBeLessThan(plain[j]);
        expect(scaled[j]).toBeGreaterThan(plain[j] / 8);
        mid++;
      }
    }
    expect(high).toBeGreaterThan(0);
    expect(low).toBeGreaterThan(0);
    expect(mid).toBeGreaterThan(0);
    // the op uses these frequencies
    expectClose('native llama3 inv_freq', nativeInvFreq(cfg), scaled, { rtol: 2e-7, atol: 1e-12 });
    expectClose('native plain inv_freq', nativeInvFreq({ headDim: 128, theta: 500000 }), plain, { rtol: 2e-7, atol: 1e-12 });
    // and the full rotation at long positions
    check(1, 40, 2, 128, cfg, 131072);
  });

  test('linear rope_scaling divides inv_freq by the factor', () => {
    const cfg: RopeConfig = { headDim: 64, theta: 10000, linearFactor: 4 };
    const inv = ropeInvFreqRef(cfg);
    const plain = ropeInvFreqRef({ headDim: 64, theta: 10000 });
    for (let j = 0; j < 32; j++) expect(inv[j]).toBeCloseTo(plain[j] / 4, 12);
    expectClose('native linear inv_freq', nativeInvFreq(cfg), inv, { rtol: 2e-7, atol: 1e-12 });
    check(2, 11, 2, 64, cfg, 32768);
  });
});

describe('attentionForward', () => {
  function segments(B: number, T: number, s: number): Int32Array {
    const seg = new Int32Array(B * T);
    const lens = randInts(64, s, 1, Math.max(2, Math.ceil(T / 3)));
    let li = 0;
    for (let b = 0; b < B; b++) {
      let id = 0;
      let left = lens[li++ % 64];
      for (let t = 0; t < T; t++) {
        if (left === 0) {
          id++;
          left = lens[li++ % 64];
        }
        seg[b * T + t] = id;
        left--;
      }
    }
    return seg;
  }

  // [B, T, Hq, Hkv, D, causal, segmented, scale (0: 1/sqrt(D))]
  const CASES: [number, number, number, number, number, boolean, boolean, number][] = [
    [1, 1, 1, 1, 1, true, false, 0],
    [2, 7, 4, 2, 8, true, false, 0],
    [1, 33, 3, 1, 16, true, false, 0],
    [1, 70, 2, 2, 12, true, false, 0],
    [2, 65, 4, 4, 32, false, false, 0],
    [1, 130, 2, 1, 64, true, true, 0],
    [2, 33, 4, 2, 16, false, true, 0.3],
    [1, 100, 2, 2, 7, true, true, 0],
    [1, 9, 6, 3, 5, false, false, 1.7],
  ];

  test.each(CASES)('B=%i T=%i Hq=%i Hkv=%i D=%i causal=%s segments=%s scale=%f', (B, T, Hq, Hkv, D, causal, segmented, sc) => {
    const s: AttnShape = { B, T, Hq, Hkv, D };
    const scale = sc || 1 / Math.sqrt(D);
    const q = uniform(B * T * Hq * D, ++seed, -1.5, 1.5);
    const k = uniform(B * T * Hkv * D, ++seed, -1.5, 1.5);
    const v = uniform(B * T * Hkv * D, ++seed);
    const seg = segmented ? segments(B, T, ++seed) : null;
    const out = nanTensor([B, T, Hq, D]);
    const lse = nanTensor([B, Hq, T]);
    ops.attentionForward(f32(q, [B, T, Hq, D]), f32(k, [B, T, Hkv, D]), f32(v, [B, T, Hkv, D]), seg ? i32(seg, [B, T]) : null, scale, causal, out, lse);
    const ref = attentionRef(q, k, v, s, seg, scale, causal);
    expectClose('attention out', read(out), ref.out, { atol: 1e-5 * maxAbs(v), shape: [B, T, Hq, D] });
    expectClose('attention lse', read(lse), ref.lse, { atol: 1e-5, rtol: 1e-5, shape: [B, Hq, T] });
  });

  test.each([true, false])('segment ids need not be sorted or contiguous (random ids in {0, 1, 2}), causal=%s', (causal) => {
    const [B, T, Hq, Hkv, D] = [2, 140, 2, 1, 16];
    const q = uniform(B * T * Hq * D, 61);
    const k = uniform(B * T * Hkv * D, 62);
    const v = uniform(B * T * Hkv * D, 63);
    const seg = randInts(B * T, 64, 0, 3);
    const out = nanTensor([B, T, Hq, D]);
    const lse = nanTensor([B, Hq, T]);
    ops.attentionForward(f32(q, [B, T, Hq, D]), f32(k, [B, T, Hkv, D]), f32(v, [B, T, Hkv, D]), i32(seg, [B, T]), 0.25, causal, out, lse);
    const ref = attentionRef(q, k, v, { B, T, Hq, Hkv, D }, seg, 0.25, causal);
    expectClose('interleaved segments out', read(out), ref.out, { atol: 1e-5, shape: [B, T, Hq, D] });
    expectClose('interleaved segments lse', read(lse), ref.lse, { atol: 1e-5, rtol: 1e-5, shape: [B, Hq, T] });
  });

  test('causal: a query never sees a later key (changing future keys/values leaves earlier outputs unchanged)', () => {
    const [B, T, H, D] = [1, 40, 2, 8];
    const q = uniform(B * T * H * D, 1);
    const k = uniform(B * T * H * D, 2);
    const v = uniform(B * T * H * D, 3);
    const run = (kk: Float64Array, vv: Float64Array) => {
      const out = Tensor.empty('f32', [B, T, H, D]);
      ops.attentionForward(f32(q, [B, T, H, D]), f32(kk, [B, T, H, D]), f32(vv, [B, T, H, D]), null, 0.35, true, out, Tensor.empty('f32', [B, H, T]));
      return read(out);
    };
    const a = run(k, v);
    const k2 = k.slice();
    const v2 = v.slice();
    for (let i = 20 * H * D; i < k.length; i++) {
      k2[i] += 1;
      v2[i] -= 1;
    }
    const b = run(k2, v2);
    expectEqual('outputs of positions < 20', b.slice(0, 20 * H * D), a.slice(0, 20 * H * D));
    expect(maxAbs(b.slice(20 * H * D).map((x, i) => x - a[20 * H * D + i]))).toBeGreaterThan(1e-3);
  });

  test('large scores stay finite (online softmax is stable)', () => {
    const [B, T, H, D] = [1, 80, 1, 16];
    const q = uniform(B * T * H * D, 4, -8, 8);
    const k = uniform(B * T * H * D, 5, -8, 8);
    const v = uniform(B * T * H * D, 6);
    const out = Tensor.empty('f32', [B, T, H, D]);
    const lse = Tensor.empty('f32', [B, H, T]);
    ops.attentionForward(f32(q, [B, T, H, D]), f32(k, [B, T, H, D]), f32(v, [B, T, H, D]), null, 1, true, out, lse);
    const ref = attentionRef(q, k, v, { B, T, Hq: H, Hkv: H, D }, null, 1, true);
    expectClose('out', read(out), ref.out, { atol: 1e-4 });
    expectClose('lse', read(lse), ref.lse, { rtol: 1e-5, atol: 1e-4 });
  });
});

describe('swigluForward', () => {
  test.each([[[1]], [[7]], [[33, 3]], [[1000]], [[4, 1000]]] as [number[]][])('shape %j', (shape) => {
    const n = prod(shape);
    const g = uniform(n, ++seed, -8, 8);
    const u = uniform(n, ++seed, -2, 2);
    const h = nanTensor(shape);
    ops.swigluForward(f32(g, shape), f32(u, shape), h);
    expectClose('swiglu', read(h), swigluRef(g, u), { rtol: 1e-6, atol: 1e-30, scale: g.map((x, i) => Math.abs(x * u[i])) });
  });

  test('saturation: silu(-100) = -0·…, silu(100) = 100', () => {
    const h = Tensor.empty('f32', [4]);
    ops.swigluForward(f32([-100, 100, 0, -1e-3], [4]), f32([1, 1, 5, 1], [4]), h);
    const v = read(h);
    expect(Math.abs(v[0])).toBeLessThan(1e-30);
    expect(v[1]).toBeCloseTo(100, 4);
    expect(v[2]).toBe(0);
    expectClose('tiny', [v[3]], swigluRef([-1e-3], [1]), { rtol: 1e-5 });
  });
});

describe('embeddingForward', () => {
  test.each([
    [1, 1, [1]],
    [7, 33, [5]],
    [1000, 17, [3, 11]],
    [50, 1000, [2, 7]],
  ] as [number, number, number[]][])('V=%i C=%i ids %j (f32 table)', (V, C, idShape) => {
    const n = prod(idShape);
    const ids = randInts(n, ++seed, 0, V);
    ids[0] = V - 1;
    const table = uniform(V * C, ++seed);
    const out = nanTensor([...idShape, C]);
    ops.embeddingForward(i32(ids, idShape), f32(table, [V, C]), out);
    expectEqual('embedding', read(out), embeddingRef(ids, table, C), [n, C]);
  });

  test('bf16 table is widened exactly', () => {
    const [V, C] = [33, 40];
    const ids = randInts(9, 3, 0, V);
    const { t, values } = bf16(uniform(V * C, 7, -100, 100), [V, C]);
    const out = nanTensor([9, C]);
    ops.embeddingForward(i32(ids, [9]), t, out);
    expectEqual('embedding bf16', read(out), embeddingRef(ids, values, C), [9, C]);
  });
});

describe('crossEntropyForward', () => {
  test.each([
    [1, 1],
    [7, 33],
    [33, 1000],
    [5, 7],
    [64, 50],
  ])('N=%i V=%i with ignored rows', (N, V) => {
    const logits = uniform(N * V, ++seed, -5, 5);
    const targets = randInts(N, ++seed, 0, V);
    if (N > 2) targets[1] = -100;
    if (N > 4) targets[N - 1] = -100;
    const losses = nanTensor([N]);
    const lse = nanTensor([N]);
    const count = ops.crossEntropyForward(f32(logits, [N, V]), i32(targets, [N]), -100, losses, lse);
    const ref = crossEntropyRef(logits, targets, N, V, -100);
    expect(count).toBe(ref.count);
    const scale = ref.lse.map((x) => 1 + Math.abs(x));
    expectClose('ce lse', read(lse), ref.lse, { rtol: 4e-6, scale });
    expectClose('ce losses', read(losses), ref.losses, { rtol: 4e-6, scale });
    const l = read(losses);
    for (let i = 0; i < N; i++) if (targets[i] === -100) expect(l[i]).toBe(0);
  });

  test('a custom ignore index and extreme logits', () => {
    const logits = f32([1000, 0, -1000, 0, 0, 0, -50, 50, 20], [3, 3]);
    const losses = Tensor.empty('f32', [3]);
    const lse = Tensor.empty('f32', [3]);
    const n = ops.crossEntropyForward(logits, i32([1, 2, 7], [3]), 7, losses, lse);
    expect(n).toBe(2);
    const ref = crossEntropyRef(read(logits), [1, 2, 7], 3, 3, 7);
    expectClose('extreme lse', read(lse), ref.lse, { rtol: 1e-6, atol: 1e-4 });
    expectClose('extreme losses', read(losses), ref.losses, { rtol: 1e-6, atol: 1e-4 });
  });
});

describe('add and accumulate', () => {
  test.each([[[1]], [[7, 33]], [[1000]], [[5, 1000]]] as [number[]][])('add %j', (shape) => {
    const n = prod(shape);
    const a = uniform(n, ++seed, -10, 10);
    const b = uniform(n, ++seed);
    const out = nanTensor(shape);
    ops.add(f32(a, shape), f32(b, shape), out);
    expectEqual('add', read(out), addRef(a, b).map(Math.fround), shape);
  });

  test('add in place (out is a)', () => {
    const a = f32([1, 2, 3], [3]);
    ops.add(a, f32([10, 20, 30], [3]), a);
    expect(Array.from(a.data())).toEqual([11, 22, 33]);
  });

  test.each([[[1]], [[33, 7]], [[20000]]] as [number[]][])('accumulate y += alpha·x %j', (shape) => {
    const n = prod(shape);
    const x = uniform(n, ++seed);
    const y0 = uniform(n, ++seed, -3, 3);
    const y = f32(y0, shape);
    ops.accumulate(f32(x, shape), -0.3, y);
    const a = Math.fround(-0.3);
    expectClose('accumulate', read(y), y0.map((v, i) => v + a * x[i]), {
      rtol: 1.2e-7,
      scale: y0.map((v, i) => Math.abs(v) + Math.abs(a * x[i])),
    });
  });
});

describe('dropoutForward', () => {
  test.each([
    [7, 0.1, 1],
    [1000, 0.5, 123456789],
    [33 * 33, 0.9, 0],
    [20000, 0.25, 2 ** 52 + 1],
  ])('n=%i p=%f seed=%i: exactly x/(1-p) where the counter hash keeps, 0 elsewhere', (n, p, s) => {
    const x = uniform(n, ++seed);
    const out = nanTensor([n]);
    ops.dropoutForward(f32(x, [n]), p, s, out);
    const fac = dropoutFactors(n, p, s);
    expectEqual('dropout', read(out), x.map((v, i) => Math.fround(v * fac[i])));
  });

  test('a 64-bit BigInt seed', () => {
    const sd = (1n << 63n) + 12345n;
    const x = new Float64Array(500).fill(1);
    const out = Tensor.empty('f32', [500]);
    ops.dropoutForward(f32(x, [500]), 0.3, sd, out);
    const ks = dropoutKeepScale(0.3);
    const want = Float64Array.from({ length: 500 }, (_, i) => (dropoutUniform(sd, i) >= Math.fround(0.3) ? ks : 0));
    expectEqual('dropout bigint seed', read(out), want);
  });

  test('p = 0 is the identity; the kept fraction is about 1 - p', () => {
    const x = uniform(100000, 9);
    const out = Tensor.empty('f32', [100000]);
    ops.dropoutForward(f32(x, [100000]), 0, 5, out);
    expectEqual('p=0', read(out), x);
    ops.dropoutForward(f32(new Float64Array(100000).fill(1), [100000]), 0.3, 5, out);
    const kept = read(out).filter((v) => v !== 0).length / 100000;
    expect(Math.abs(kept - 0.7)).toBeLessThan(0.01);
  });
});

// bf16 helper self-consistency used above (the rounding of the reference is the addon's rounding)
test('Tensor.convert("bf16") rounds like the reference (nearest even)', () => {
  const x = uniform(4096, 42, -1000, 1000);
  const t = f32(x, [4096]).convert('bf16');
  expectEqual('convert bf16', read(t), roundBf16Array(x));
});
