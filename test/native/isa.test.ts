// The instruction-set paths agree: every op (forward and backward) runs with setIsa('scalar'), 'avx2'
// and 'avx512' (those nativeInfo().isa.detected allows) on the same inputs, and the outputs of each
// path are compared with the scalar path's (and, for the GEMM and attention kernels, with the f64
// reference too). Sizes are chosen to leave vector tails (not multiples of 8/16) and to cross the
// threshold where the kernels go parallel.
//
// Tolerances between paths: |a − b| <= rtol·|b| + atol·max|b| with
//   GEMM-based ops 1e-5 / 1e-5 (summation order differs), attention 2e-5 / 2e-5, element-wise and
//   normalization ops 2e-6 / 1e-7 (vectorized exp / reductions), copies and masks exact.
import { Tensor, ops, setIsa, setBf16Dot, nativeInfo } from '../../bindings/index.js';
import type { IsaName } from '../../bindings/index.js';
import { expectClose, uniform, randInts, maxAbs } from '../helpers/numeric.js';
import { matmulRef, matmulAbsRef, attentionRef } from '../helpers/reference.js';
import type { MatmulArgs } from '../helpers/reference.js';
import { f32, bf16, i32, read, nanTensor, availableIsas, restoreDefaults } from '../helpers/tensors.js';

const ISAS = availableIsas();
const detected = nativeInfo().isa.detected;

afterAll(() => {
  restoreDefaults();
  expect(nativeInfo().isa.active).toBe(detected);
});

interface Tol {
  rtol: number;
  atol: number;
}
const GEMM: Tol = { rtol: 1e-5, atol: 1e-5 };
const ATTN: Tol = { rtol: 2e-5, atol: 2e-5 };
const ELEM: Tol = { rtol: 2e-6, atol: 1e-7 };
const EXACT: Tol = { rtol: 0, atol: 0 };

type Outputs = Record<string, Float64Array>;

function runAll(fn: () => Outputs): Map<IsaName, Outputs> {
  const res = new Map<IsaName, Outputs>();
  for (const isa of ISAS) {
    setIsa(isa);
    expect(nativeInfo().isa.active).toBe(isa);
    res.set(isa, fn());
  }
  setIsa(detected);
  return res;
}

function agree(name: string, res: Map<IsaName, Outputs>, tol: Tol): void {
  const base = res.get('scalar')!;
  for (const [isa, outs] of res) {
    if (isa === 'scalar') continue;
    for (const key of Object.keys(base)) {
      expectClose(`${name}: ${key} on ${isa} vs scalar`, outs[key], base[key], { rtol: tol.rtol, atol: tol.atol * maxAbs(base[key]) });
    }
  }
}

test('this CPU offers at least the scalar path, and setIsa refuses a path above the detected one', () => {
  expect(ISAS[0]).toBe('scalar');
  const order: IsaName[] = ['scalar', 'avx2', 'avx512'];
  for (const isa of order.slice(order.indexOf(detected) + 1)) expect(() => setIsa(isa)).toThrow(/not available/);
  expect(() => setIsa('sse9' as IsaName)).toThrow(/unknown ISA 'sse9'/);
});

describe('GEMM ops on every ISA', () => {
  const SHAPES: [number, number, number][] = [
    [1, 1, 1],
    [7, 33, 5],
    [33, 7, 1000],
    [13, 16, 50],
    [16, 45, 50],
    [150, 100, 400],
    [5, 1000, 33],
  ];
  const CASES = SHAPES.flatMap((s) =>
    [
      [false, false],
      [false, true],
      [true, false],
      [true, true],
    ].map(([ta, tb]) => [...s, ta, tb] as [number, number, number, boolean, boolean]),
  );

  test.each(CASES)('matmul f32 M=%i N=%i K=%i transA=%s transB=%s: each path vs f64 reference and vs scalar', (M, N, K, ta, tb) => {
    const aShape: [number, number] = ta ? [K, M] : [M, K];
    const bShape: [number, number] = tb ? [N, K] : [K, N];
    const a = uniform(M * K, M + 7 * N + 13 * K);
    const b = uniform(K * N, M * 3 + N + K);
    const c0 = uniform(M * N, 5);
    const args: MatmulArgs = { a, aShape, b, bShape, transA: ta, transB: tb, alpha: 1.5, beta: 0.5, c: c0 };
    const ref = matmulRef(args);
    const scale = matmulAbsRef(args);
    const res = runAll(() => {
      const c = f32(c0, [M, N]);
      ops.matmul(f32(a, aShape), f32(b, bShape), c, ta, tb, 1.5, 0.5);
      return { c: read(c) };
    });
    for (const [isa, o] of res) expectClose(`matmul on ${isa} vs reference`, o.c, ref, { rtol: 1e-6 * Math.sqrt(K) + 1e-6, scale, shape: [M, N] });
    agree('matmul', res, GEMM);
  });

  test.each([
    [7, 33, 5, false],
    [33, 47, 1000, true],
    [150, 100, 401, false],
    [12, 32, 7, true],
  ])('matmul bf16 B M=%i N=%i K=%i transB=%s, bf16 dot off: all paths widen bf16 (tight agreement)', (M, N, K, tb) => {
    setBf16Dot(false);
    try {
      const a = uniform(M * K, 1);
      const bShape: [number, number] = tb ? [N, K] : [K, N];
      const { t: bt, values } = bf16(uniform(K * N, 2), bShape);
      const res = runAll(() => {
        const c = nanTensor([M, N]);
        ops.matmul(f32(a, [M, K]), bt, c, false, tb, 1, 0);
        return { c: read(c) };
      });
      const args: MatmulArgs = { a, aShape: [M, K], b: values, bShape, transA: false, transB: tb, alpha: 1, beta: 0 };
      for (const [isa, o] of res) expectClose(`bf16 matmul on ${isa}`, o.c, matmulRef(args), { rtol: 1e-6 * Math.sqrt(K) + 1e-6, scale: matmulAbsRef(args) });
      agree('bf16 matmul', res, GEMM);
    } finally {
      setBf16Dot(true);
    }
  });

  test('matmul bf16 B with the bf16 dot allowed: every path within 1e-2 of Σ|a||b| of the f32-activation product', () => {
    const [M, N, K] = [33, 47, 300];
    const a = uniform(M * K, 3);
    const { t: bt, values } = bf16(uniform(K * N, 4), [N, K]);
    const res = runAll(() => {
      const c = nanTensor([M, N]);
      ops.matmul(f32(a, [M, K]), bt, c, false, true, 1, 0);
      return { c: read(c) };
    });
    const args: MatmulArgs = { a, aShape: [M, K], b: values, bShape: [N, K], transA: false, transB: true, alpha: 1, beta: 0 };
    const scale = matmulAbsRef(args);
    for (const [isa, o] of res) expectClose(`bf16-dot matmul on ${isa}`, o.c, matmulRef(args), { rtol: 1e-2, scale });
  });

  test('linear forward and backward (f32 W)', () => {
    const [M, K, N] = [37, 70, 45];
    const x = uniform(M * K, 1);
    const w = uniform(N * K, 2);
    const dy = uniform(M * N, 3);
    const res = runAll(() => {
      const X = f32(x, [M, K]);
      const W = f32(w, [N, K]);
      const y = nanTensor([M, N]);
      ops.linearForward(X, W, y);
      const dx = nanTensor([M, K]);
      const dw = Tensor.empty('f32', [N, K]);
      ops.linearBackward(f32(dy, [M, N]), X, W, dx, dw);
      return { y: read(y), dx: read(dx), dw: read(dw) };
    });
    agree('linear', res, GEMM);
  });

  test('LoRA linear forward and backward with dropout', () => {
    const [M, K, N, r] = [40, 96, 33, 16];
    const cfg = { scale: 2, dropout: 0.1, seed: 11 };
    const ins = [uniform(M * K, 1), uniform(N * K, 2), uniform(r * K, 3), uniform(N * r, 4), uniform(M * N, 5)];
    const res = runAll(() => {
      const [X, W, A, B, dY] = [f32(ins[0], [M, K]), f32(ins[1], [N, K]), f32(ins[2], [r, K]), f32(ins[3], [N, r]), f32(ins[4], [M, N])];
      const y = nanTensor([M, N]);
      const u = nanTensor([M, r]);
      ops.loraLinearForward(X, W, A, B, cfg, y, u);
      const dx = nanTensor([M, K]);
      const da = Tensor.empty('f32', [r, K]);
      const db = Tensor.empty('f32', [N, r]);
      const dw = Tensor.empty('f32', [N, K]);
      ops.loraLinearBackward(dY, X, W, A, B, u, cfg, dx, da, db, dw);
      return { y: read(y), u: read(u), dx: read(dx), da: read(da), db: read(db), dw: read(dw) };
    });
    agree('lora', res, GEMM);
  });
});

describe('attention on every ISA', () => {
  test.each([
    [1, 7, 2, 1, 8, true, false],
    [2, 70, 4, 2, 16, true, true],
    [1, 130, 2, 2, 64, false, false],
    [1, 33, 3, 1, 12, true, true],
    [1, 65, 2, 1, 5, false, true],
  ])('B=%i T=%i Hq=%i Hkv=%i D=%i causal=%s segments=%s: forward vs reference, forward and backward vs scalar', (B, T, Hq, Hkv, D, causal, segmented) => {
    const q = uniform(B * T * Hq * D, 1);
    const k = uniform(B * T * Hkv * D, 2);
    const v = uniform(B * T * Hkv * D, 3);
    const dO = uniform(B * T * Hq * D, 4);
    const seg = segmented ? Int32Array.from({ length: B * T }, (_, i) => Math.floor((i % T) / 11)) : null;
    const scale = 1 / Math.sqrt(D);
    const res = runAll(() => {
      const [Q, K, V] = [f32(q, [B, T, Hq, D]), f32(k, [B, T, Hkv, D]), f32(v, [B, T, Hkv, D])];
      const S = seg ? i32(seg, [B, T]) : null;
      const out = nanTensor([B, T, Hq, D]);
      const lse = nanTensor([B, Hq, T]);
      ops.attentionForward(Q, K, V, S, scale, causal, out, lse);
      const dq = nanTensor([B, T, Hq, D]);
      const dk = nanTensor([B, T, Hkv, D]);
      const dv = nanTensor([B, T, Hkv, D]);
      ops.attentionBackward(Q, K, V, S, scale, causal, out, lse, f32(dO, [B, T, Hq, D]), dq, dk, dv);
      return { out: read(out), lse: read(lse), dq: read(dq), dk: read(dk), dv: read(dv) };
    });
    const ref = attentionRef(q, k, v, { B, T, Hq, Hkv, D }, seg, scale, causal);
    for (const [isa, o] of res) {
      expectClose(`attention out on ${isa}`, o.out, ref.out, { atol: 1e-5 });
      expectClose(`attention lse on ${isa}`, o.lse, ref.lse, { atol: 1e-5, rtol: 1e-5 });
    }
    agree('attention', res, ATTN);
  });
});

describe('element-wise and normalization ops on every ISA', () => {
  const n = 20000 + 7; // parallel path plus a vector tail

  test('rmsnorm forward and backward', () => {
    const [N, C] = [303, 67];
    const x = uniform(N * C, 1, -3, 3);
    const w = uniform(C, 2);
    const dy = uniform(N * C, 3);
    const res = runAll(() => {
      const X = f32(x, [N, C]);
      const W = f32(w, [C]);
      const y = nanTensor([N, C]);
      const rstd = nanTensor([N]);
      ops.rmsnormForward(X, W, 1e-5, y, rstd);
      const dx = nanTensor([N, C]);
      const dw = Tensor.empty('f32', [C]);
      ops.rmsnormBackward(f32(dy, [N, C]), X, W, rstd, dx, dw);
      return { y: read(y), rstd: read(rstd), dx: read(dx), dw: read(dw) };
    });
    agree('rmsnorm', res, { rtol: 1e-5, atol: 1e-6 });
  });

  test('rope forward and backward (llama3)', () => {
    const [B, T, H, D] = [2, 37, 3, 40];
    const x = uniform(B * T * H * D, 1);
    const pos = randInts(B * T, 2, 0, 100000);
    const cfg = { headDim: D, theta: 500000, llama3: { factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositionEmbeddings: 8192 } };
    const res = runAll(() => {
      const y = nanTensor([B, T, H, D]);
      ops.ropeForward(f32(x, [B, T, H, D]), i32(pos, [B, T]), cfg, y);
      const dx = nanTensor([B, T, H, D]);
      ops.ropeBackward(f32(x, [B, T, H, D]), i32(pos, [B, T]), cfg, dx);
      return { y: read(y), dx: read(dx) };
    });
    agree('rope', res, ELEM);
  });

  test('swiglu forward and backward', () => {
    const g = uniform(n, 1, -10, 10);
    const u = uniform(n, 2);
    const dh = uniform(n, 3);
    const res = runAll(() => {
      const h = nanTensor([n]);
      ops.swigluForward(f32(g, [n]), f32(u, [n]), h);
      const dg = nanTensor([n]);
      const du = nanTensor([n]);
      ops.swigluBackward(f32(dh, [n]), f32(g, [n]), f32(u, [n]), dg, du);
      return { h: read(h), dg: read(dg), du: read(du) };
    });
    agree('swiglu', res, ELEM);
  });

  test('embedding forward (f32 and bf16 tables) and backward', () => {
    const [V, C, N] = [50, 333, 120];
    const ids = randInts(N, 1, 0, V);
    const table = uniform(V * C, 2);
    const { t: tb } = bf16(table, [V, C]);
    const dout = uniform(N * C, 3);
    const res = runAll(() => {
      const o1 = nanTensor([N, C]);
      ops.embeddingForward(i32(ids, [N]), f32(table, [V, C]), o1);
      const o2 = nanTensor([N, C]);
      ops.embeddingForward(i32(ids, [N]), tb, o2);
      const dt = Tensor.empty('f32', [V, C]);
      ops.embeddingBackward(i32(ids, [N]), f32(dout, [N, C]), dt);
      return { f32: read(o1), bf16: read(o2) };
    });
    agree('embedding forward', res, EXACT);
    const res2 = runAll(() => {
      const dt = Tensor.empty('f32', [V, C]);
      ops.embeddingBackward(i32(ids, [N]), f32(dout, [N, C]), dt);
      return { dtable: read(dt) };
    });
    agree('embedding backward', res2, { rtol: 1e-6, atol: 1e-7 });
  });

  test('cross-entropy forward and backward', () => {
    const [N, V] = [61, 1001];
    const logits = uniform(N * V, 1, -6, 6);
    const targets = randInts(N, 2, 0, V);
    targets[3] = -100;
    const res = runAll(() => {
      const L = f32(logits, [N, V]);
      const T = i32(targets, [N]);
      const losses = nanTensor([N]);
      const lse = nanTensor([N]);
      const count = ops.crossEntropyForward(L, T, -100, losses, lse);
      const dl = nanTensor([N, V]);
      ops.crossEntropyBackward(L, T, lse, -100, 1 / count, dl);
      return { losses: read(losses), lse: read(lse), dlogits: read(dl), count: Float64Array.of(count) };
    });
    agree('cross-entropy', res, { rtol: 1e-5, atol: 1e-6 });
  });

  test('add, accumulate', () => {
    const a = uniform(n, 1);
    const b = uniform(n, 2);
    const res = runAll(() => {
      const out = nanTensor([n]);
      ops.add(f32(a, [n]), f32(b, [n]), out);
      const y = f32(b, [n]);
      ops.accumulate(f32(a, [n]), 0.37, y);
      return { add: read(out), acc: read(y) };
    });
    // add is one rounding (exact agreement); y + αx may or may not be fused (FMA): 1 ulp of the inputs
    agree('add', new Map([...res].map(([k, v]) => [k, { add: v.add }])), EXACT);
    agree('accumulate', new Map([...res].map(([k, v]) => [k, { acc: v.acc }])), { rtol: 1.2e-7, atol: 1.2e-7 });
  });

  test('dropout forward and backward', () => {
    const x = uniform(n, 1);
    const res = runAll(() => {
      const out = nanTensor([n]);
      ops.dropoutForward(f32(x, [n]), 0.35, 1234, out);
      const dx = nanTensor([n]);
      ops.dropoutBackward(f32(x, [n]), 0.35, 1234, dx);
      return { fwd: read(out), bwd: read(dx) };
    });
    agree('dropout', res, EXACT);
  });

  test('adamw step, grad norm, clip', () => {
    const sizes = [1, 7, 1000, 20011];
    const ps = sizes.map((s, i) => uniform(s, 10 + i));
    const gs = sizes.map((s, i) => uniform(s, 20 + i, -0.1, 0.1));
    const res = runAll(() => {
      const P = ps.map((p) => f32(p, [p.length]));
      const G = gs.map((g) => f32(g, [g.length]));
      const Mo = ps.map((p) => Tensor.empty('f32', [p.length]));
      const Vo = ps.map((p) => Tensor.empty('f32', [p.length]));
      const norm = ops.globalGradNorm(G);
      const before = ops.clipGradNorm(G, 0.5);
      for (let step = 1; step <= 3; step++) ops.adamwStep(P, G, Mo, Vo, { lr: 1e-2, weightDecay: 0.1, step });
      const out: Outputs = { norm: Float64Array.of(norm, before) };
      P.forEach((p, i) => (out[`p${i}`] = read(p)));
      Mo.forEach((m, i) => (out[`m${i}`] = read(m)));
      Vo.forEach((v, i) => (out[`v${i}`] = read(v)));
      return out;
    });
    agree('optimizer', res, { rtol: 1e-6, atol: 1e-7 });
  });
});
