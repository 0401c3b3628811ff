// The addon in worker_threads: it loads (context-aware: one instance per environment) and computes
// correctly inside a Worker, sync and async, in one worker and in two workers at once, and the workers
// exit cleanly (their environment teardown frees the tensors they made).
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { EXPECTED_ABI_VERSION, Tensor, ops, packageRoot } from '../../bindings/index.js';
import { expectClose, expectEqual, uniform } from '../helpers/numeric.js';
import { linearRef, linearAbsRef } from '../helpers/reference.js';
import { f32, read } from '../helpers/tensors.js';

const WORKER_SRC = `
import { parentPort, workerData } from 'node:worker_threads';
import { createRequire } from 'node:module';
const addon = createRequire(import.meta.url)(workerData.addonPath);
const { M, K, N } = workerData;
const x = addon.tensorFromBytes(new Float32Array(workerData.x), 'f32', [M, K]);
const w = addon.tensorFromBytes(new Float32Array(workerData.w), 'f32', [N, K]);
const results = [];
for (let rep = 0; rep < workerData.reps; rep++) {
  const y = addon.tensorEmpty('f32', [M, N]);
  if (rep % 2 === 0) addon.linearForward(x, w, y);
  else await addon.linearForwardAsync(x, w, y);
  results.push(Array.from(new Float32Array(y.buffer(), y.byteOffset, M * N)));
}
let err = null;
try { addon.linearForward(x, x, addon.tensorEmpty('f32', [M, N])); } catch (e) { err = e.message; }
parentPort.postMessage({ results, info: addon.info(), err });
`;

interface WorkerResult {
  results: number[][];
  info: { abiVersion: number; isa: { active: string } };
  err: string | null;
}

let dir: string;
let script: string;
const addonPath = process.env.STARWEAVE_NATIVE_PATH ?? join(packageRoot(), 'build', 'Release', 'starweave_native.node');

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'sw-worker-'));
  script = join(dir, 'linear-worker.mjs');
  writeFileSync(script, WORKER_SRC);
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function runWorker(data: { M: number; K: number; N: number; x: Float64Array; w: Float64Array; reps: number }): Promise<{ msg: WorkerResult; exitCode: number }> {
  return new Promise((resolve, reject) => {
    const worker = new Worker(script, {
      workerData: { ...data, x: Array.from(data.x), w: Array.from(data.w), addonPath },
    });
    let msg: WorkerResult | undefined;
    worker.on('message', (m: WorkerResult) => (msg = m));
    worker.on('error', reject);
    worker.on('exit', (exitCode) => (msg ? resolve({ msg, exitCode }) : reject(new Error(`worker exited (${exitCode}) without a result`))));
  });
}

function mainThread(M: number, K: number, N: number, x: Float64Array, w: Float64Array): Float64Array {
  const y = Tensor.empty('f32', [M, N]);
  ops.linearForward(f32(x, [M, K]), f32(w, [N, K]), y);
  return read(y);
}

test('linearForward inside a worker matches the main thread and the reference; the worker exits cleanly', async () => {
  const [M, K, N] = [33, 70, 47];
  const x = uniform(M * K, 1);
  const w = uniform(N * K, 2);
  const { msg, exitCode } = await runWorker({ M, K, N, x, w, reps: 2 });
  expect(exitCode).toBe(0);
  expect(msg.info.abiVersion).toBe(EXPECTED_ABI_VERSION);
  const main = mainThread(M, K, N, x, w);
  expectClose('worker vs reference', msg.results[0], linearRef(x, w, M, K, N), { rtol: 1e-5, scale: linearAbsRef(x, w, M, K, N) });
  expectEqual('worker (sync) vs main thread', msg.results[0], main);
  expectEqual('worker (async) vs main thread', msg.results[1], main);
  // errors inside a worker are JS errors of that worker, with the same text
  expect(msg.err).toMatch(/^linear_forward: argument 'y' must have shape \[33, 33\], got f32\[33, 47\]$/);
});

test('two workers at once, each with its own data, while the main thread computes too', async () => {
  const shapes: [number, number, number][] = [
    [40, 96, 64],
    [65, 33, 17],
  ];
  const inputs = shapes.map(([M, K, N], i) => ({ M, K, N, x: uniform(M * K, 10 + i), w: uniform(N * K, 20 + i), reps: 4 }));
  const running = inputs.map(runWorker);
  // the main thread keeps using the addon meanwhile
  const mains = inputs.map(({ M, K, N, x, w }) => mainThread(M, K, N, x, w));
  const big = Tensor.random([400, 400], 3);
  const out = Tensor.empty('f32', [400, 400]);
  await ops.matmulAsync(big, big, out, false, true, 1, 0);
  const done = await Promise.all(running);
  done.forEach(({ msg, exitCode }, i) => {
    expect(exitCode).toBe(0);
    expect(msg.results).toHaveLength(4);
    msg.results.forEach((r, rep) => expectEqual(`worker ${i} rep ${rep}`, r, mains[i]));
  });
  expect(read(out).some((v) => v !== 0)).toBe(true);
});
