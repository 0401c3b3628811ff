// The sidecar as an OTP node starts it: a real process with frames on fds 3 and 4.
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { encodeFrame } from '../../src/port/codec.js';
import { SidecarClient, type Msg } from './sidecar.js';

let ws: string;
const clients: SidecarClient[] = [];
const start = (args: string[] = []) => {
  const c = new SidecarClient(ws, args);
  clients.push(c);
  return c;
};

beforeAll(() => {
  ws = mkdtempSync(join(tmpdir(), 'sw-port-'));
  mkdirSync(join(ws, 'data'));
  const outside = mkdtempSync(join(tmpdir(), 'sw-outside-'));
  writeFileSync(join(outside, 'secret.jsonl'), '{}\n');
  symlinkSync(outside, join(ws, 'data', 'escape'));
});
afterAll(async () => {
  for (const c of clients) if (c.proc.exitCode === null) c.proc.kill('SIGKILL');
  rmSync(ws, { recursive: true, force: true });
});

const err = (m: Msg) => m.error as { code: string; message: string; details: Record<string, unknown> };
const generated = (perCategory: number) => ({ name: 'gen', sources: [{ kind: 'generated', seed: 3, perCategory }] });

test('version, ping with a bin payload, and a log frame first', async () => {
  const c = start();
  const hello = await c.next();
  expect(hello).toMatchObject({ log: 'info', message: 'sidecar ready' });
  const v = (await c.call('version')).result as Record<string, unknown>;
  expect(v).toMatchObject({ name: 'starweave-finetune', protocol: 1 });
  // this test's fds 3/4 are socket pairs (Node's stdio 'pipe'), which have no pipe size: said, not fatal
  // (the ExUnit suite checks the sizing on a real Erlang port's pipes)
  expect(v.transport).toMatchObject({ pipeBytes: null, note: expect.stringMatching(/not sized: setPipeSize: fcntl\(3, F_SETPIPE_SZ, 1048576\)/) });
  expect((v.methods as Record<string, unknown>)['train.start']).toEqual({ kind: 'job' });
  // every method of the protocol has landed: none is pending
  expect(Object.values(v.methods as Record<string, { kind: string }>).filter((m) => m.kind === 'pending')).toEqual([]);
  for (const m of ['export', 'registry.list', 'registry.promote', 'registry.rollback', 'monitor.snapshot', 'serve.generate']) expect(Object.keys(v.methods as object)).toContain(m);
  const payload = Buffer.alloc(1 << 20, 0xab);
  const r = await c.call('ping', { data: payload });
  expect(Buffer.compare((r.result as { data: Buffer }).data, payload)).toBe(0);
  expect(await c.close()).toBe(0);
});

test('every kind of bad input gets an error reply and the sidecar keeps serving', async () => {
  const c = start(['--max-frame-bytes', '4096']);
  c.sendRaw(Buffer.from([0, 0, 0, 2, 0x93, 0x01])); // an array cut short
  expect(err(await c.nextWhere((m) => 'error' in m))).toMatchObject({ code: 'malformed_frame' });
  c.sendRaw(Buffer.from([0, 0, 0, 2, 0x01, 0x02])); // two values
  expect(err(await c.nextWhere((m) => 'error' in m)).code).toBe('malformed_frame');
  c.send([1, 2]);
  expect(err(await c.nextWhere((m) => 'error' in m)).code).toBe('invalid_request');
  c.send({ id: 99, method: 'ping', params: { data: Buffer.alloc(10_000) } }); // over the maximum
  const big = await c.nextWhere((m) => 'error' in m);
  expect(big.id).toBe(99);
  expect(err(big)).toMatchObject({ code: 'frame_too_large', details: { bytes: expect.any(Number), max: 4096 } });
  expect(err(await c.call('no.such'))).toMatchObject({ code: 'unknown_method' });
  expect(err(await c.call('ping', { data: 1, extra: 2 }))).toMatchObject({ code: 'invalid_params' });
  for (const m of ['train.start', 'train.status', 'train.cancel', 'generate', 'eval.run', 'export', 'registry.promote']) expect(err(await c.call(m, {})).code).toBe('invalid_params');
  expect((await c.call('ping')).result).toEqual({ pong: true, data: null });
  expect(await c.close()).toBe(0);
});

test('paths are confined to the workspace: .., absolute and symlink escapes are refused', async () => {
  const c = start();
  for (const store of ['../x', '/etc', 'data/escape', 'data/escape/sub/dir']) {
    const e = err(await c.call('dataset.list', { store }));
    expect(e).toMatchObject({ code: 'path_outside_workspace', details: { path: 'params.store' } });
  }
  const inner = await c.call('dataset.list', { store: join(ws, 'data', 'store') });
  expect(inner.result).toEqual([]);
  const e = err(await c.call('dataset.validate', { config: { sources: [{ kind: 'interactions', path: 'data/escape/secret.jsonl' }] } }));
  expect(e).toMatchObject({ code: 'path_outside_workspace', details: { path: 'params.config.sources[0].path' } });
  await c.close();
});

test('collect appends to the collection log and acknowledges after fsync; invalid records name the field', async () => {
  const c = start();
  const interaction = { messages: [{ role: 'user', content: 'How does the PatternDetector restart?' }, { role: 'assistant', content: 'Its supervisor restarts it (one_for_one).' }], category: 'system_interaction' };
  const r = await c.call('collect', { log: 'logs/live', interactions: [interaction, interaction] });
  expect(r.result).toEqual({ acks: [{ segment: 'seg-000001.log', line: 1 }, { segment: 'seg-000001.log', line: 2 }] });
  expect(readFileSync(join(ws, 'logs', 'live', 'seg-000001.log'), 'utf8').split('\n')).toHaveLength(3);
  const bad = err(await c.call('collect', { interactions: [{ messages: [{ role: 'user', content: '' }] }] }));
  expect(bad).toMatchObject({ code: 'invalid_params', details: { path: expect.stringContaining('params.interactions[0].messages') } });
  await c.close();
});

test('dataset build as a job: events under credits, ping answered during it, list/show/diff after', async () => {
  const c = start();
  const skipped: Msg[] = [];
  const r = await c.call('dataset.build', { job: 'b1', credits: 1, config: generated(400), store: 'store' }, skipped);
  expect(r.result).toEqual({ job: 'b1', status: 'running' });
  // while it runs, pings come back fast (the pipeline runs in a worker thread)
  const t0 = performance.now();
  await c.call('ping', {}, skipped);
  expect(performance.now() - t0).toBeLessThan(500);
  const done = await c.nextWhere((m) => m.job === 'b1' && m.event === 'done', 60_000, skipped);
  const events = [...skipped, done].filter((m) => m.job === 'b1');
  // one credit: at most one progress event before the terminal one
  expect(events.filter((m) => m.event === 'progress').length).toBeLessThanOrEqual(1);
  expect(events.map((m) => m.seq)).toEqual(events.map((_, i) => i + 1));
  const res = done.data as { versionId: string; created: boolean; dir: string; ok: boolean };
  expect(res).toMatchObject({ created: true, ok: true, dir: `store/versions/${res.versionId}` });
  const list = (await c.call('dataset.list', { store: 'store' })).result as { versionId: string }[];
  expect(list.map((v) => v.versionId)).toEqual([res.versionId]);
  const show = (await c.call('dataset.show', { store: 'store', version: 'gen' })).result as { manifest: { versionId: string }; reportMarkdown: string };
  expect(show.manifest.versionId).toBe(res.versionId);
  const diff = (await c.call('dataset.diff', { store: 'store', from: 'gen', to: res.versionId })).result as { unchanged: number };
  expect(diff.unchanged).toBeGreaterThan(0);
  expect((await c.call('jobs.status', { job: 'b1' })).result).toMatchObject({ status: 'done' });
  await c.close();
});

test('validate reports rejects as a result; an invalid config is an invalid_params reply', async () => {
  const c = start();
  writeFileSync(join(ws, 'data', 'bad.jsonl'), '{"messages": [{"role": "user", "content": "hi there, what is a GenServer?"}]}\nnot json\n');
  const r = await c.call('dataset.validate', { job: 'v1', config: { name: 'bad', sources: [{ kind: 'interactions', path: 'data/bad.jsonl' }] } });
  expect(r.result).toMatchObject({ job: 'v1' });
  const done = await c.nextWhere((m) => m.job === 'v1' && (m.event === 'done' || m.event === 'failed'), 30_000);
  expect(done.event).toBe('done');
  expect(done.data).toMatchObject({ ok: false, inputRejects: 2 });
  const e = err(await c.call('dataset.validate', { config: { sources: [] } }));
  expect(e).toMatchObject({ code: 'invalid_params', details: { path: 'params.config.sources' } });
  await c.close();
});

test('a cancelled job ends with a cancelled event; many requests in flight all get their replies', async () => {
  const c = start();
  await c.call('dataset.validate', { job: 'slow', credits: 100, config: generated(20_000) });
  const ids = Array.from({ length: 200 }, (_, i) => 1000 + i);
  for (const id of ids) c.send({ id, method: 'ping', params: { data: id } });
  const seen = new Set<unknown>();
  const others: Msg[] = [];
  while (seen.size < ids.length) {
    const m = await c.nextWhere((x) => typeof x.id === 'number' && (x.id as number) >= 1000, 10_000, others);
    expect((m.result as { data: number }).data).toBe(m.id);
    seen.add(m.id);
  }
  expect((await c.call('jobs.cancel', { job: 'slow' })).result).toEqual({ cancelled: true });
  const end = await c.nextWhere((m) => m.job === 'slow' && ['done', 'failed', 'cancelled'].includes(m.event as string), 10_000);
  expect(end.event).toBe('cancelled');
  await c.close();
});

test('a cancelled dataset build leaves no staging folder in the store', async () => {
  const c = start();
  const skipped: Msg[] = [];
  await c.call('dataset.build', { job: 'big', credits: 100, config: generated(20_000), store: 'cancelstore' }, skipped);
  await c.nextWhere((m) => m.job === 'big' && m.event === 'progress', 30_000, skipped);
  expect(readdirSync(join(ws, 'cancelstore', 'tmp'))).toHaveLength(1); // the build's staging folder
  expect((await c.call('jobs.cancel', { job: 'big' }, skipped)).result).toEqual({ cancelled: true });
  let left = ['?'];
  for (const t = Date.now(); Date.now() - t < 10_000 && left.length; await new Promise((r) => setTimeout(r, 50))) left = readdirSync(join(ws, 'cancelstore', 'tmp'));
  expect(left).toEqual([]);
  expect(existsSync(join(ws, 'cancelstore', 'versions'))).toBe(false);
  expect((await c.call('ping')).result).toMatchObject({ pong: true });
  await c.close();
});

test('EOF on fd 3 stops the sidecar within seconds, even with a job running', async () => {
  const c = start();
  await c.call('dataset.validate', { job: 'long', config: generated(20_000) });
  const t0 = Date.now();
  c.in.end();
  expect(await c.exited).toBe(0);
  expect(Date.now() - t0).toBeLessThan(5000);
});

test('a reader gone away (EPIPE on fd 4) stops the sidecar; a reader that stops reading bounds its memory', async () => {
  const c = start();
  await c.next();
  c.out.destroy(); // our end of fd 4 closes: the next write fails
  for (let i = 0; i < 5; i++) c.send({ id: i, method: 'ping', params: { data: Buffer.alloc(1 << 16) } });
  expect(await c.exited).toBe(0);

  const d = start();
  await d.next();
  d.out.pause(); // nobody reads fd 4
  let written = 0;
  const chunk = encodeFrame({ id: 1, method: 'ping', params: { data: Buffer.alloc(1 << 20) } });
  // the sidecar stops reading once its output holds its high-water mark: our writes stop draining
  for (let i = 0; i < 400 && d.in.writableLength < 64 << 20; i++) {
    d.in.write(chunk);
    written++;
    if (d.in.writableLength > 32 << 20) break;
    await new Promise((r) => setImmediate(r));
  }
  await new Promise((r) => setTimeout(r, 500));
  const rss = Number(readFileSync(`/proc/${d.proc.pid}/status`, 'utf8').match(/VmRSS:\s+(\d+)/)![1]) * 1024;
  expect(d.in.writableLength).toBeGreaterThan(0); // backpressure reached us
  expect(rss).toBeLessThan(400 << 20);
  expect(written).toBeGreaterThan(8);
  d.proc.kill('SIGKILL');
});
