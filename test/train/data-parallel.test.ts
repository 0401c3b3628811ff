// Synchronous data parallelism in the training loop (StartOptions.parallel): N workers of the same run in
// one process, their gradients summed by an in-memory all-reduce, give the single-process run's losses
// within floating-point tolerance (the sums are only ordered differently), with dropout on; every worker
// ends with the same adapter, bit for bit; a bad rank is refused.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { resumeTraining, startTraining, type DataParallel } from '../../src/train/runner.js';
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

  test('parameter hashes every K steps: equal on every worker, changed by training, different for a different init', async () => {
    const cfg = await baseConfig({ training: { max_steps: 4, grad_accum: 2, micro_batch: 1 }, eval: { every_steps: 0 }, checkpoint: { every_steps: 0 } });
    const seen: { rank: number; step: number; hash: string }[] = [];
    const workers = inMemoryAllReduce(2).map((w) => ({
      ...w,
      hashEvery: 2,
      exchange: (step: number, g: Float32Array, st: Float64Array, info: { paramHash?: string }) => {
        if (info.paramHash) seen.push({ rank: w.rank, step, hash: info.paramHash });
        return w.exchange(step, g, st, info);
      },
    }));
    await Promise.all(workers.map((parallel) => startTraining(cfg, { parallel }).done));
    expect([...new Set(seen.map((x) => x.step))].sort()).toEqual([1, 3]);
    for (const step of [1, 3]) expect(new Set(seen.filter((x) => x.step === step).map((x) => x.hash)).size).toBe(1);
    const at = (step: number) => seen.find((x) => x.step === step)!.hash;
    expect(at(1)).toMatch(/^[0-9a-f]{64}$/);
    expect(at(3)).not.toBe(at(1));
    // a worker started with another LoRA init: its first hash differs (what the coordinator checks)
    let other = '';
    const odd = { rank: 0, workers: 1, hashEvery: 1, exchange: async (_s: number, grads: Float32Array, stats: Float64Array, info: { paramHash?: string }) => ((other ||= info.paramHash ?? ''), { grads, stats }) };
    await startTraining({ ...cfg, lora: { ...(cfg.lora as object), init_seed: 99 } } as typeof cfg, { parallel: odd }).done;
    expect(other).toMatch(/^[0-9a-f]{64}$/);
    expect(other).not.toBe(at(1));
  }, 120_000);

  test('a worker lost mid-step: the others, cancelled while they wait, checkpoint the previous step and go on as 2 workers with the single-process losses', async () => {
    const cfg = await baseConfig({ training: { max_steps: 5, grad_accum: 3, micro_batch: 1 }, eval: { every_steps: 0 }, checkpoint: { every_steps: 0, keep_last: 3 } });
    const single = await startTraining(cfg).done;
    // three workers; at step 3 rank 2 never sends its share, so ranks 0 and 1 wait until cancelled
    const three = inMemoryAllReduce(3);
    const waiting: number[] = [];
    const stuck: ((e: Error) => void)[] = [];
    const runs = [0, 1].map((rank) =>
      startTraining(cfg, {
        parallel: { ...three[rank], exchange: (step, g, st, info) => (step === 3 ? new Promise((_res, rej) => (waiting.push(rank), (stuck[rank] = rej))) : three[rank].exchange(step, g, st, info)) },
      }),
    );
    const lost = startTraining(cfg, { parallel: { ...three[2], exchange: (step, g, st, info) => (step === 3 ? new Promise(() => undefined) : three[2].exchange(step, g, st, info)) } });
    while (waiting.length < 2) await new Promise((r) => setTimeout(r, 20));
    for (const [rank, run] of runs.entries()) {
      run.cancel();
      stuck[rank](new Error('worker 2 lost'));
    }
    const stopped = await Promise.all(runs.map((r) => r.done));
    lost.cancel();
    for (const r of stopped) {
      expect(r.status).toBe('cancelled');
      expect(r.steps).toBe(2);
      expect(r.checkpoint).toMatch(/step-00000002$/);
    }
    // the survivors go on as ranks 0 and 1 of 2 from that checkpoint
    const two = inMemoryAllReduce(2);
    const resumed = await Promise.all(stopped.map((r, rank) => resumeTraining(r.runDir, { parallel: two[rank] }).done));
    for (const r of resumed) {
      expect(r.status).toBe('completed');
      expect(r.steps).toBe(5);
      const tail = single.losses.slice(2);
      expect(r.losses.slice(-tail.length)).toHaveLength(3);
      r.losses.slice(-tail.length).forEach((l, i) => expect(Math.abs(l - tail[i])).toBeLessThan(1e-5 * Math.abs(tail[i])));
    }
    expect(sha(join(resumed[0].runDir, 'adapter', 'adapter_model.safetensors'))).toBe(sha(join(resumed[1].runDir, 'adapter', 'adapter_model.safetensors')));
  }, 120_000);

  test('a rank outside [0, workers) is refused', async () => {
    const cfg = await baseConfig({ training: { max_steps: 1 } });
    await expect(startTraining(cfg, { parallel: { rank: 2, workers: 2, exchange: async (_s, grads, stats) => ({ grads, stats }) } }).done).rejects.toThrow(
      /rank 2 of 2 workers/,
    );
  });
});
