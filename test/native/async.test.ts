// The `...Async` variants: they run on the libuv pool, resolve with the same result as the synchronous
// op, keep the event loop free (a setInterval keeps firing during a large awaited matmulAsync), can run
// several at once, and hold their tensors alive even if JS releases them while the op runs.
import { Tensor, ops } from '../../bindings/index.js';
import { expectEqual, expectClose, uniform, randInts } from '../helpers/numeric.js';
import { crossEntropyRef, globalNormRef } from '../helpers/reference.js';
import { f32, i32, read } from '../helpers/tensors.js';

function square(n: number, seed: number): Tensor {
  return Tensor.random([n, n], seed);
}

describe('matmulAsync on a large problem', () => {
  test('resolves with the sync result, and timers fire while it runs', async () => {
    // pick a size that takes long enough here for timers to matter (>= ~150 ms), at most 4096²
    let n = 1536;
    let a = square(n, 1);
    let b = square(n, 2);
    const cSync = Tensor.empty('f32', [n, n]);
    let t0 = performance.now();
    ops.matmul(a, b, cSync, false, true, 1, 0);
    let syncMs = performance.now() - t0;
    let cs = cSync;
    while (syncMs < 150 && n < 4096) {
      n = Math.min(4096, Math.round((n * 1.5) / 64) * 64);
      a.release();
      b.release();
      cs.release();
      a = square(n, 1);
      b = square(n, 2);
      cs = Tensor.empty('f32', [n, n]);
      t0 = performance.now();
      ops.matmul(a, b, cs, false, true, 1, 0);
      syncMs = performance.now() - t0;
    }

    const cAsync = Tensor.empty('f32', [n, n]);
    let ticks = 0;
    const timer = setInterval(() => ticks++, 2);
    try {
      t0 = performance.now();
      const p = ops.matmulAsync(a, b, cAsync, false, true, 1, 0);
      const ticksAtReturn = ticks;
      expect(p).toBeInstanceOf(Promise);
      await p;
      const asyncMs = performance.now() - t0;
      expect(ticksAtReturn).toBe(0); // the call returned before doing the work
      expect(asyncMs).toBeGreaterThan(50);
      expect(ticks).toBeGreaterThanOrEqual(3); // the loop ran timers while the GEMM was computing
    } finally {
      clearInterval(timer);
    }
    // same kernels, same threads: the same bits (sample rows to keep the comparison cheap)
    const s = cs.data();
    const q = cAsync.data();
    for (const row of [0, 1, Math.floor(n / 2), n - 1]) {
      expectEqual(`row ${row}`, q.subarray(row * n, row * n + n), s.subarray(row * n, row * n + n));
    }
    a.release();
    b.release();
    cs.release();
    cAsync.release();
  });

  test('inputs released right after the call stay alive until the op is done', async () => {
    const n = 500;
    const av = uniform(n * n, 3);
    const bv = uniform(n * n, 4);
    const ref = Tensor.empty('f32', [n, n]);
    ops.matmul(f32(av, [n, n]), f32(bv, [n, n]), ref, false, false, 1, 0);
    const a = f32(av, [n, n]);
    const b = f32(bv, [n, n]);
    const c = Tensor.empty('f32', [n, n]);
    const view = c.data();
    const p = ops.matmulAsync(a, b, c, false, false, 1, 0);
    a.release();
    b.release();
    c.release();
    // churn memory while the op runs
    const junk = Array.from({ length: 4 }, (_, i) => Tensor.random([n, n], 100 + i));
    await p;
    expectEqual('result through a view of the released output', view, ref.data());
    junk.forEach((j) => j.release());
  });
});

describe('every op has an async variant with the same result', () => {
  test('several different ops in flight at once', async () => {
    const [M, K, N] = [64, 96, 80];
    const x = f32(uniform(M * K, 1), [M, K]);
    const w = f32(uniform(N * K, 2), [N, K]);
    const [NR, V] = [33, 100];
    const logits = f32(uniform(NR * V, 3, -4, 4), [NR, V]);
    const targets = randInts(NR, 4, 0, V);
    targets[5] = -100;
    const T = i32(targets, [NR]);
    const g = [f32(uniform(1000, 5), [1000]), f32(uniform(7, 6), [7])];

    const yS = Tensor.empty('f32', [M, N]);
    ops.linearForward(x, w, yS);
    const lossS = Tensor.empty('f32', [NR]);
    const lseS = Tensor.empty('f32', [NR]);
    const countS = ops.crossEntropyForward(logits, T, -100, lossS, lseS);
    const normS = ops.globalGradNorm(g);
    const hS = Tensor.empty('f32', [M, K]);
    ops.swigluForward(x, x, hS);

    const yA = Tensor.empty('f32', [M, N]);
    const lossA = Tensor.empty('f32', [NR]);
    const lseA = Tensor.empty('f32', [NR]);
    const hA = Tensor.empty('f32', [M, K]);
    const [r1, countA, normA, r4, scaling] = await Promise.all([
      ops.linearForwardAsync(x, w, yA),
      ops.crossEntropyForwardAsync(logits, T, -100, lossA, lseA),
      ops.globalGradNormAsync(g),
      ops.swigluForwardAsync(x, x, hA),
      ops.loraScalingAsync(16, 4, true),
    ]);
    expect(r1).toBeUndefined();
    expect(r4).toBeUndefined();
    expect(countA).toBe(countS);
    expect(countA).toBe(NR - 1);
    expect(normA).toBe(normS);
    expect(normA).toBeCloseTo(globalNormRef(g.map(read)), 10);
    expect(scaling).toBe(8);
    expectEqual('linear', read(yA), read(yS));
    expectEqual('ce losses', read(lossA), read(lossS));
    expectEqual('ce lse', read(lseA), read(lseS));
    expectEqual('swiglu', read(hA), read(hS));
    expectClose('ce vs reference', read(lossA), crossEntropyRef(read(logits), targets, NR, V, -100).losses, { atol: 1e-5, rtol: 1e-5 });
  });

  test('adamwStepAsync / clipGradNormAsync / zeroAsync update in place like the sync ops', async () => {
    const mk = () => ({ p: f32(uniform(500, 1), [500]), g: f32(uniform(500, 2), [500]), m: Tensor.empty('f32', [500]), v: Tensor.empty('f32', [500]) });
    const s = mk();
    const a = mk();
    ops.clipGradNorm([s.g], 1);
    ops.adamwStep([s.p], [s.g], [s.m], [s.v], { lr: 0.01, step: 1 });
    const norm = await ops.clipGradNormAsync([a.g], 1);
    expect(norm).toBeGreaterThan(1);
    await ops.adamwStepAsync([a.p], [a.g], [a.m], [a.v], { lr: 0.01, step: 1 });
    expectEqual('params', read(a.p), read(s.p));
    expectEqual('m', read(a.m), read(s.m));
    await ops.zeroAsync([a.p]);
    expect(read(a.p).every((v) => v === 0)).toBe(true);
  });
});
