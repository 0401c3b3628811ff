// A data-parallel run through the port: two real sidecars each run one worker of the same config
// (train.start with parallel {rank, workers}); the test is the all-reduce: it sums the workers' `gradients`
// events (f32 bin) and answers each with train.reduce. The losses are those of the same run in one process
// (within floating-point tolerance) and both workers write the same adapter; train.reduce refuses a job
// that does not wait, a wrong step and a wrong length.
import { createHash } from 'node:crypto';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startTraining } from '../../src/train/runner.js';
import { loadRunConfigFile } from '../../src/train/config.js';
import { exampleWorkspace, SidecarClient, type Msg } from './sidecar.js';

let ws: string;
beforeAll(() => {
  let cfg;
  ({ ws, cfg } = exampleWorkspace('sw-port-dp-'));
  cfg.training = { ...cfg.training, epochs: undefined, max_steps: 3, grad_accum: 2 };
  cfg.eval = { ...cfg.eval, every_steps: 0, at_start: false };
  cfg.checkpoint = { ...cfg.checkpoint, every_steps: 0 };
  writeFileSync(join(ws, 'examples', 'dp.json'), JSON.stringify(cfg));
});
afterAll(() => rmSync(ws, { recursive: true, force: true }));

const f32 = (b: Uint8Array) => new Float32Array(Uint8Array.from(b).buffer);

test('two sidecars, one run: the all-reduce through train.reduce gives the single-process losses and one adapter', async () => {
  const workers = [new SidecarClient(ws), new SidecarClient(ws)];
  try {
    for (let rank = 0; rank < 2; rank++) {
      const r = await workers[rank].call('train.start', { job: `w${rank}`, credits: 1000, config: 'examples/dp.json', runs_dir: `runs-${rank}`, parallel: { rank, workers: 2 } });
      expect(r.result).toEqual({ job: `w${rank}`, status: 'running' });
    }
    const isEnd = (rank: number) => (m: Msg) => m.job === `w${rank}` && (m.event === 'gradients' || m.event === 'done' || m.event === 'failed');
    const losses: number[][] = [[], []];
    const done: Msg[] = [];
    for (let step = 1; ; step++) {
      const ev = await Promise.all(workers.map((w, rank) => w.nextWhere(isEnd(rank), 120_000)));
      if (ev.every((m) => m.event === 'done' || m.event === 'failed')) {
        done.push(...ev);
        break;
      }
      for (const m of ev) if (m.event !== 'gradients') throw new Error(`a worker ended early: ${JSON.stringify(m.data)}`);
      const data = ev.map((m) => m.data as { step: number; grads: Uint8Array; stats: number[] });
      expect(data.map((d) => d.step)).toEqual([step, step]);
      const parts = data.map((d) => f32(d.grads));
      const sum = new Float32Array(parts[0].length);
      for (const p of parts) for (let i = 0; i < sum.length; i++) sum[i] += p[i];
      const stats = [0, 1, 2].map((i) => data[0].stats[i] + data[1].stats[i]);
      const bytes = new Uint8Array(sum.buffer);
      if (step === 1) {
        const wrongStep = await workers[0].call('train.reduce', { job: 'w0', step: 2, grads: bytes, stats });
        expect((wrongStep.error as { code: string }).code).toBe('invalid_params');
        const short = await workers[0].call('train.reduce', { job: 'w0', step: 1, grads: bytes.subarray(0, 8), stats });
        expect((short.error as { message: string }).message).toMatch(/params\.grads: 8 bytes/);
        const nobody = await workers[0].call('train.reduce', { job: 'w9', step: 1, grads: bytes, stats });
        expect((nobody.error as { code: string }).code).toBe('not_found');
      }
      for (let rank = 0; rank < 2; rank++) {
        const r = await workers[rank].call('train.reduce', { job: `w${rank}`, step, grads: bytes, stats });
        expect(r.result).toEqual({ ok: true });
        losses[rank].push(stats[0] / stats[1]);
      }
    }
    for (const m of done) expect(m.event).toBe('done');
    const results = done.map((m) => m.data as { status: string; steps: number; runDir: string; adapterDir: string });
    for (const r of results) expect(r).toMatchObject({ status: 'completed', steps: 3 });

    // the same run in this process, alone
    const cfg = loadRunConfigFile(join(ws, 'examples', 'dp.json'));
    cfg.output.runs_dir = join(ws, 'runs-single');
    const single = await startTraining(cfg).done;
    expect(single.losses).toHaveLength(3);
    for (let i = 0; i < 3; i++) expect(Math.abs(losses[0][i] - single.losses[i])).toBeLessThan(1e-5 * Math.abs(single.losses[i]));
    const sha = (dir: string) => createHash('sha256').update(readFileSync(join(ws, dir, 'adapter_model.safetensors'))).digest('hex');
    expect(sha(results[0].adapterDir)).toBe(sha(results[1].adapterDir));
  } finally {
    await Promise.all(workers.map((w) => w.close()));
  }
}, 240_000);

test('reduce.add sums f32 vectors; parameter hashes ride on gradients events; a worker cancelled while it waits resumes as a parallel job from the previous step', async () => {
  const w = new SidecarClient(ws);
  try {
    // reduce.add: element-wise f32 sums (rounded to f32, as the ring all-reduce needs), and its errors
    const a = Float32Array.from([1, -2.5, 3e38, 1e-7, 0.1, Number.NaN, 7]);
    const b = Float32Array.from([2, 2.5, 3e38, 1, 0.2, 1, -7]);
    const r = await w.call('reduce.add', { a: new Uint8Array(a.buffer), b: new Uint8Array(b.buffer) });
    const sum = f32((r.result as { sum: Uint8Array }).sum);
    expect(Array.from(sum)).toEqual(Array.from(a, (x, i) => Math.fround(x + b[i])));
    expect(sum[2]).toBe(Infinity);
    const bad = await w.call('reduce.add', { a: new Uint8Array(8), b: new Uint8Array(12) });
    expect((bad.error as { message: string }).message).toMatch(/params\.b: 12 bytes, params\.a has 8/);
    const odd = await w.call('reduce.add', { a: new Uint8Array(6), b: new Uint8Array(6) });
    expect((odd.error as { message: string }).message).toMatch(/params\.a: 6 bytes is not a whole number of f32 values/);

    const parallel = { rank: 0, workers: 1, hash_every: 1 };
    const next = (job: string) => w.nextWhere((m) => m.job === job && ['gradients', 'done', 'failed', 'cancelled'].includes(m.event as string), 120_000);
    await w.call('train.start', { job: 'h1', credits: 1000, config: 'examples/dp.json', runs_dir: 'runs-hash', parallel });
    const g1 = (await next('h1')).data as { step: number; grads: Uint8Array; stats: number[]; paramHash: string };
    expect(g1.step).toBe(1);
    expect(g1.paramHash).toMatch(/^[0-9a-f]{64}$/);
    await w.call('train.reduce', { job: 'h1', step: 1, grads: g1.grads, stats: g1.stats });
    const g2 = (await next('h1')).data as { step: number; paramHash: string };
    expect(g2.step).toBe(2);
    expect(g2.paramHash).not.toBe(g1.paramHash);
    // cancelled while waiting for step 2's sums: step 2 never happened, the checkpoint is step 1's
    await w.call('train.cancel', { job: 'h1' });
    const end = await next('h1');
    expect(end.event).toBe('done');
    const stopped = end.data as { status: string; steps: number; runDir: string; checkpoint: string };
    expect(stopped).toMatchObject({ status: 'cancelled', steps: 1 });
    expect(stopped.checkpoint).toMatch(/step-00000001$/);

    await w.call('train.resume', { job: 'h2', credits: 1000, run: stopped.runDir, parallel });
    for (let step = 2; step <= 3; step++) {
      const g = (await next('h2')).data as { step: number; grads: Uint8Array; stats: number[]; paramHash: string };
      expect(g.step).toBe(step);
      if (step === 2) expect(g.paramHash).toBe(g2.paramHash);  // the checkpoint restored the parameters exactly
      await w.call('train.reduce', { job: 'h2', step, grads: g.grads, stats: g.stats });
    }
    const done = await next('h2');
    expect(done.data).toMatchObject({ status: 'completed', steps: 3 });
  } finally {
    await w.close();
  }
}, 240_000);

test('in place: gradients stay in the sidecar, train.chunk reads, adds and sets ranges, train.reduce without grads steps on them', async () => {
  const w = new SidecarClient(ws);
  try {
    const next = (job: string) => w.nextWhere((m) => m.job === job && ['gradients', 'done', 'failed', 'cancelled'].includes(m.event as string), 120_000);
    // A: in place, each step's vector doubled through train.chunk (set to zero, add the gradients twice)
    await w.call('train.start', { job: 'ip', credits: 1000, config: 'examples/dp.json', runs_dir: 'runs-inplace', parallel: { rank: 0, workers: 1, inplace: true } });
    // B: the same run, the doubled vector sent whole with train.reduce
    await w.call('train.start', { job: 'full', credits: 1000, config: 'examples/dp.json', runs_dir: 'runs-full', parallel: { rank: 0, workers: 1 } });
    for (let step = 1; step <= 3; step++) {
      const a = (await next('ip')).data as { step: number; length: number; grads?: Uint8Array; stats: number[] };
      expect(a.step).toBe(step);
      expect(a.grads).toBeUndefined();
      const n = a.length;
      const get = await w.call('train.chunk', { job: 'ip', step, from: 0, to: n });
      const g = f32((get.result as { chunk: Uint8Array }).chunk);
      expect(g.length).toBe(n);
      if (step === 1) {
        const e = async (params: object) => (await w.call('train.chunk', { job: 'ip', step, ...params })).error as { code: string; message: string };
        expect(await e({ from: 5, to: n + 1 })).toMatchObject({ code: 'invalid_params', message: expect.stringMatching(`\\[5, ${n + 1}\\) is not a range of the job's ${n} gradient values`) });
        expect((await e({ from: 0, to: 10, add: new Uint8Array(8) })).message).toMatch(/params\.add: 8 bytes for 10 f32 values \(40 bytes\)/);
        expect((await e({ from: 0, to: 2, add: new Uint8Array(8), set: new Uint8Array(8) })).message).toMatch(/add or set, not both/);
        expect((await w.call('train.chunk', { job: 'ip', step: 2, from: 0, to: 1 })).error).toMatchObject({ code: 'invalid_params' });
        expect((await w.call('train.chunk', { job: 'nobody', step: 1, from: 0, to: 1 })).error).toMatchObject({ code: 'not_found' });
      }
      const bytes = new Uint8Array(g.buffer);
      const half = Math.floor(n / 2);
      // two ranges, as a ring would cut them: zero each, add the gradients twice (the reply is the sum)
      for (const [from, to] of [[0, half], [half, n]]) {
        expect((await w.call('train.chunk', { job: 'ip', step, from, to, set: new Uint8Array((to - from) * 4) })).result).toEqual({ ok: true });
        await w.call('train.chunk', { job: 'ip', step, from, to, add: bytes.subarray(from * 4, to * 4) });
        const sum = f32(((await w.call('train.chunk', { job: 'ip', step, from, to, add: bytes.subarray(from * 4, to * 4) })).result as { chunk: Uint8Array }).chunk);
        expect(Array.from(sum.subarray(0, 5))).toEqual(Array.from(g.subarray(from, from + 5), (x) => Math.fround(x + x)));
      }
      expect((await w.call('train.reduce', { job: 'ip', step, stats: a.stats })).result).toEqual({ ok: true });

      const b = (await next('full')).data as { step: number; grads: Uint8Array; stats: number[] };
      const doubled = Float32Array.from(f32(b.grads), (x) => x + x);
      expect((await w.call('train.reduce', { job: 'full', step, grads: new Uint8Array(doubled.buffer), stats: b.stats })).result).toEqual({ ok: true });
    }
    const ends = [(await next('ip')).data, (await next('full')).data] as { status: string; adapterDir: string }[];
    for (const e of ends) expect(e.status).toBe('completed');
    const sha = (dir: string) => createHash('sha256').update(readFileSync(join(ws, dir, 'adapter_model.safetensors'))).digest('hex');
    expect(sha(ends[0].adapterDir)).toBe(sha(ends[1].adapterDir));
  } finally {
    await w.close();
  }
}, 240_000);
