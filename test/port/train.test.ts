// Training through the port: train.start runs a LoRA run as a job inside the sidecar (events under
// credits, a ping answered while it trains), train.list/status see it, train.cancel stops a run at a
// step boundary with a checkpoint, and run configs whose paths leave the workspace are refused.
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { exampleWorkspace, SidecarClient, type Msg } from './sidecar.js';

let ws: string;
beforeAll(() => {
  let cfg;
  ({ ws, cfg } = exampleWorkspace('sw-port-train-'));
  cfg.training = { ...cfg.training, epochs: undefined, max_steps: 12 };
  cfg.eval.every_steps = 4;
  cfg.checkpoint.every_steps = 4;
  writeFileSync(join(ws, 'examples', 'short.json'), JSON.stringify(cfg));
  writeFileSync(join(ws, 'examples', 'escape.json'), JSON.stringify({ ...cfg, output: { runs_dir: '/tmp' } }));
  const long = { ...cfg, name: 'long', training: { ...cfg.training, max_steps: 100000 } };
  writeFileSync(join(ws, 'examples', 'long.json'), JSON.stringify(long));
  writeFileSync(join(ws, 'examples', 'bad.json'), JSON.stringify({ ...cfg, training: { ...cfg.training, lr: -1, micro_batch: 0 } }));
});
afterAll(() => rmSync(ws, { recursive: true, force: true }));

const err = (m: Msg) => m.error as { code: string; message: string; details?: Record<string, unknown> };

test('train.start runs a training job with events; ping is answered meanwhile; list and status see the run', async () => {
  const c = new SidecarClient(ws);
  const skipped: Msg[] = [];
  const r = await c.call('train.start', { job: 't1', credits: 100, config: 'examples/short.json' }, skipped);
  expect(r.result).toEqual({ job: 't1', status: 'running' });
  const t0 = performance.now();
  await c.call('ping', {}, skipped);
  expect(performance.now() - t0).toBeLessThan(1000);
  const done = await c.nextWhere((m) => m.job === 't1' && (m.event === 'done' || m.event === 'failed'), 120_000, skipped);
  if (done.event !== 'done') throw new Error(JSON.stringify(done.data)); // the failure's reason, in full
  const res = done.data as { status: string; steps: number; runDir: string; evals: { loss: number }[] };
  expect(res).toMatchObject({ status: 'completed', steps: 12 });
  expect(res.runDir.startsWith('.starweave/runs/')).toBe(true);
  const names = new Set([...skipped, done].filter((m) => m.job === 't1').map((m) => m.event));
  for (const e of ['start', 'step', 'eval', 'checkpoint', 'done']) expect(names.has(e)).toBe(true);
  const list = (await c.call('train.list', {})).result as { dir?: string; status?: string }[];
  expect(list).toHaveLength(1);
  // paths in replies are relative to the workspace, as in requests
  expect(list[0].dir).toBe(res.runDir);
  const status = (await c.call('train.status', { run: res.runDir })).result as Record<string, unknown>;
  expect(status).toMatchObject({ dir: res.runDir, status: 'completed' });
  expect(await c.close()).toBe(0);
}, 180_000);

test('train.cancel stops a run at a step boundary with a checkpoint; escaping paths are refused', async () => {
  const c = new SidecarClient(ws);
  const skipped: Msg[] = [];
  const e = err(await c.call('train.start', { config: 'examples/escape.json' }));
  expect(e).toMatchObject({ code: 'path_outside_workspace' });
  // a run config that fails its schema: invalid_params naming every bad field, the file workspace-relative
  const bad = err(await c.call('train.start', { config: 'examples/bad.json' }));
  expect(bad).toMatchObject({ code: 'invalid_params', details: { param: 'params.config', file: 'examples/bad.json' } });
  expect((bad.details!.issues as { path: string }[]).map((i) => i.path).sort()).toEqual(['training.lr', 'training.micro_batch']);
  expect(bad.details!.path).toMatch(/^training\.(lr|micro_batch)$/);
  expect(bad.message).not.toContain(ws);
  expect(err(await c.call('train.start', { config: 'examples/none.json' }))).toMatchObject({ code: 'not_found', details: { file: 'examples/none.json' } });
  await c.call('train.start', { job: 't2', credits: 1000, config: 'examples/long.json' }, skipped);
  await c.nextWhere((m) => m.job === 't2' && m.event === 'step', 120_000, skipped);
  expect((await c.call('train.cancel', { job: 't2' }, skipped)).result).toEqual({ job: 't2', status: 'cancelling' });
  const end = await c.nextWhere((m) => m.job === 't2' && ['done', 'failed', 'cancelled'].includes(String(m.event)), 60_000, skipped);
  const events = [...skipped, end].filter((m) => m.job === 't2');
  expect(events.some((m) => m.event === 'checkpoint')).toBe(true);
  const runDir = (events.find((m) => m.event === 'start')!.data as { runDir: string }).runDir;
  expect(await c.close()).toBe(0);

  // a new sidecar (the supervisor restarted it) resumes the run from its last checkpoint
  const d = new SidecarClient(ws);
  const s2: Msg[] = [];
  expect(err(await d.call('train.resume', { run: 'examples' }))).toMatchObject({ code: 'not_found', details: { path: 'params.run' } });
  expect((await d.call('train.resume', { job: 't3', credits: 1000, run: runDir }, s2)).result).toEqual({ job: 't3', status: 'running' });
  const started = await d.nextWhere((m) => m.job === 't3' && ['start', 'failed'].includes(String(m.event)), 120_000, s2);
  if (started.event !== 'start') throw new Error(JSON.stringify(started.data));
  expect(started.data).toMatchObject({ runDir });
  expect((started.data as { resumedFromStep: number }).resumedFromStep).toBeGreaterThanOrEqual(1);
  await d.nextWhere((m) => m.job === 't3' && m.event === 'step', 120_000, s2);
  expect((await d.call('train.cancel', { job: 't3' }, s2)).result).toEqual({ job: 't3', status: 'cancelling' });
  await d.nextWhere((m) => m.job === 't3' && ['done', 'failed', 'cancelled'].includes(String(m.event)), 60_000, s2);
  expect(await d.close()).toBe(0);
}, 180_000);
