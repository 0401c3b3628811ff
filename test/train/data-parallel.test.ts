// Synchronous data parallelism in the training loop (StartOptions.parallel): N workers of the same run in
// one process, their gradients summed by an in-memory all-reduce, give the single-process run's losses
// within floating-point tolerance (the sums are only ordered differently), with dropout on; every worker
// ends with the same adapter, bit for bit; a bad rank is refused.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { startTraining, type DataParallel } from '../../src/train/runner.js';
import { baseConfig } from './fixtures.js';

/** N workers' exchange: each step's contributions summed in rank order once all have arrived. */
function inMemoryAllReduce(workers: number): DataParallel[] {
  const pending = new Map<number, { grads: Float32Array[]; stats: Float64Array[]; done: ((r: { grads: Float32Array; stats: Float64Array }) => void)[] }>();
  return Array.from({ length: workers }, (_, rank) => ({
    rank,
    workers,
    exchange: (step, grads, stats) =>
      new Promise((resolve) => {
        let e = pending.get(step);
        if (!e) pending.set(step, (e = { grads: [], stats: [], done: [] }));
        e.grads[rank] = grads;
        e.stats[rank] = stats;
        e.done[rank] = resolve;
        if (e.done.filter(Boolean).length < workers) return;
        pending.delete(step);
        const g = new Float32Array(grads.length);
        const s = new Float64Array(stats.length);
        for (let w = 0; w < workers; w++) {
          for (let i = 0; i < g.length; i++) g[i] += e.grads[w][i];
          for (let i = 0; i < s.length; i++) s[i] += e.stats[w][i];
        }
        for (const d of e.done) d({ grads: g.slice(), stats: s.slice() });
      }),
  }));
}

const sha = (file: string) => createHash('sha256').update(readFileSync(file)).digest('hex');

describe('data-parallel training', () => {
  test.each([1, 2, 3])('%i worker(s): the single-process losses, the same adapter on every worker', async (workers) => {
    const cfg = await baseConfig({ training: { max_steps: 4, grad_accum: 3, micro_batch: 1 }, eval: { every_steps: 0 }, checkpoint: { every_steps: 0 } });
    const single = await startTraining(cfg).done;
    const results = await Promise.all(inMemoryAllReduce(workers).map((parallel) => startTraining(cfg, { parallel }).done));
    for (const r of results) {
      expect(r.status).toBe('completed');
      expect(r.losses).toHaveLength(single.losses.length);
      for (let i = 0; i < single.losses.length; i++) expect(Math.abs(r.losses[i] - single.losses[i])).toBeLessThan(1e-5 * Math.abs(single.losses[i]));
      for (let i = 0; i < single.evals.length; i++) expect(Math.abs(r.evals[i].loss - single.evals[i].loss)).toBeLessThan(1e-4 * Math.abs(single.evals[i].loss));
    }
    const adapters = results.map((r) => sha(join(r.runDir, 'adapter', 'adapter_model.safetensors')));
    expect(new Set(adapters).size).toBe(1);
  }, 120_000);

  test('a rank outside [0, workers) is refused', async () => {
    const cfg = await baseConfig({ training: { max_steps: 1 } });
    await expect(startTraining(cfg, { parallel: { rank: 2, workers: 2, exchange: async (_s, grads, stats) => ({ grads, stats }) } }).done).rejects.toThrow(
      /rank 2 of 2 workers/,
    );
  });
});
