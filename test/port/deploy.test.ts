// Exports, the registry, serving, A/B and monitoring through the port (src/port/deploy.ts over
// src/deploy/): an adapter exported as PEFT comes back tensor for tensor, a merged export is a model
// folder the loader reads; the exported adapter registered, promoted to a channel, served through it,
// counted by the channel's monitor, rolled back; bad params and escaping paths name the field.
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadModelFiles } from '../../src/model/files.js';
import { LlamaModel } from '../../src/model/native-model.js';
import { generateTinyModel } from '../../src/model/tiny.js';
import { writeSafetensors } from '../../src/model/safetensors.js';
import { readPeftAdapter } from '../../src/deploy/peft.js';
import { SidecarClient, type Msg } from './sidecar.js';

let ws: string;
const clients: SidecarClient[] = [];
const start = () => {
  const c = new SidecarClient(ws);
  clients.push(c);
  return c;
};
const err = (m: Msg) => m.error as { code: string; message: string; details: Record<string, unknown> };

/** Writes a PEFT adapter folder for the tiny model with lora_B filled from a fixed generator. */
async function writeAdapter(dir: string, seed: number): Promise<void> {
  const files = loadModelFiles(join(ws, 'tiny'));
  const model = LlamaModel.fromFiles(files);
  try {
    model.addLora({ r: 4, lora_alpha: 8, target_modules: ['q_proj', 'v_proj'], seed });
    let s = seed;
    const rnd = () => ((s = (s * 1103515245 + 12345) >>> 0) / 2 ** 32 - 0.5) * 0.4;
    const st = model.adapterState('param');
    for (const v of Object.values(st)) v.data.forEach((_, i) => (v.data[i] = rnd()));
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'adapter_config.json'), JSON.stringify({ peft_type: 'LORA', task_type: 'CAUSAL_LM', r: 4, lora_alpha: 8, target_modules: ['q_proj', 'v_proj'], base_model_name_or_path: join(ws, 'tiny') }));
    await writeSafetensors(join(dir, 'adapter_model.safetensors'), Object.fromEntries(Object.entries(st).map(([k, v]) => [k, { dtype: 'F32' as const, shape: v.shape, data: v.data }])));
  } finally {
    model.dispose();
    files.release();
  }
}

beforeAll(async () => {
  ws = mkdtempSync(join(tmpdir(), 'sw-port-deploy-'));
  await generateTinyModel(join(ws, 'tiny'), 'tiny', 4);
  await writeAdapter(join(ws, 'adapters', 'a1'), 1);
  await writeAdapter(join(ws, 'adapters', 'a2'), 2);
}, 60_000);
afterAll(() => {
  for (const c of clients) if (c.proc.exitCode === null) c.proc.kill('SIGKILL');
  rmSync(ws, { recursive: true, force: true });
});

async function job(c: SidecarClient, method: string, params: Record<string, unknown>, skipped: Msg[] = []): Promise<Msg> {
  const r = await c.call(method, { credits: 100, ...params }, skipped);
  if (r.error) return r;
  const id = (r.result as { job: string }).job;
  return c.nextWhere((m) => m.job === id && ['done', 'failed', 'cancelled'].includes(String(m.event)), 120_000, skipped);
}

test('export: PEFT comes back tensor for tensor; merged is a model folder the loader reads; bad params and paths are refused', async () => {
  const c = start();
  const peft = await job(c, 'export', { format: 'peft', adapter: 'adapters/a1', model: 'tiny', out: 'exports/peft', baseModelName: 'starweave/tiny' });
  if (peft.event !== 'done') throw new Error(JSON.stringify(peft));
  const m = peft.data as { export: string; dir: string; files: { path: string; sha256: string }[] };
  expect(m).toMatchObject({ export: 'peft', dir: join('exports', 'peft') });
  expect(m.files.map((f) => f.path).sort()).toEqual(['adapter_config.json', 'adapter_model.safetensors']);
  const a = readPeftAdapter(join(ws, 'adapters', 'a1'));
  const b = readPeftAdapter(join(ws, 'exports', 'peft'));
  expect([...b.tensors.keys()].sort()).toEqual([...a.tensors.keys()].sort());
  expect(JSON.parse(readFileSync(join(ws, 'exports', 'peft', 'adapter_config.json'), 'utf8')).base_model_name_or_path).toBe('starweave/tiny');
  for (const [k, t] of a.tensors) expect(Buffer.compare(Buffer.from(b.tensors.get(k)!.data.buffer), Buffer.from(t.data.buffer))).toBe(0);

  const merged = await job(c, 'export', { format: 'merged', adapter: 'adapters/a1', model: 'tiny', out: 'exports/merged', dtype: 'f32' });
  if (merged.event !== 'done') throw new Error(JSON.stringify(merged));
  const files = loadModelFiles(join(ws, 'exports', 'merged'));
  expect(files.config.numLayers).toBeGreaterThan(0);
  files.release();
  expect((await c.call('model.info', { path: 'exports/merged' })).result).toMatchObject({ tokenizer: { chatTemplate: true } });

  // ONNX: the adapter merged, model.onnx and export.json
  const onnx = await job(c, 'export', { format: 'onnx', adapter: 'adapters/a1', model: 'tiny', out: 'exports/onnx' });
  if (onnx.event !== 'done') throw new Error(JSON.stringify(onnx));
  expect(onnx.data).toMatchObject({ dir: join('exports', 'onnx') });
  expect(existsSync(join(ws, 'exports', 'onnx', 'model.onnx'))).toBe(true);
  expect(existsSync(join(ws, 'exports', 'onnx', 'export.json'))).toBe(true);

  // a non-empty output folder without force: the export's own refusal
  const again = await job(c, 'export', { format: 'peft', adapter: 'adapters/a1', model: 'tiny', out: 'exports/peft' });
  expect(again.event).toBe('failed');
  expect(again.data).toMatchObject({ code: 'export_error' });
  expect(err(await c.call('export', { format: 'zip', out: 'x' }))).toMatchObject({ code: 'invalid_params', details: { path: 'params.format' } });
  expect(err(await c.call('export', { format: 'peft', out: 'x', precision: 'int8', adapter: 'adapters/a1' }))).toMatchObject({ code: 'invalid_params', details: { path: 'params.precision' } });
  expect(err(await c.call('export', { format: 'peft', out: '../outside', adapter: 'adapters/a1' }))).toMatchObject({ code: 'path_outside_workspace', details: { path: 'params.out' } });
  expect(existsSync(join(ws, 'exports', 'merged', 'export.json'))).toBe(true);
  expect(await c.close()).toBe(0);
}, 180_000);

test('registry: register, promote, serve through the channel, monitor snapshot, promote another, roll back', async () => {
  const c = start();
  const r1 = await c.call('registry.register', { source: 'adapters/a1', base: 'tiny', tags: ['first'] });
  if (r1.error) throw new Error(JSON.stringify(r1.error));
  const v1 = (r1.result as { version: { id: string } }).version.id;
  const r2 = await c.call('registry.register', { source: 'adapters/a2', base: 'tiny' });
  const v2 = (r2.result as { version: { id: string } }).version.id;
  expect(v2).not.toBe(v1);
  const list = (await c.call('registry.list')).result as { versions: { id: string; tags: string[] }[] };
  expect(list.versions.map((v) => v.id).sort()).toEqual([v1, v2].sort());
  expect(list.versions.find((v) => v.id === v1)!.tags).toEqual(['first']);
  // no host paths in replies: paths inside the workspace come back relative to it
  const show = (await c.call('registry.show', { version: v1 })).result;
  expect(JSON.stringify(show)).not.toContain(ws);
  expect(JSON.stringify(show)).toContain('.starweave/registry');

  expect((await c.call('registry.promote', { version: 'first', channel: 'prod' })).result).toMatchObject({ promoted: true });
  const served = (await c.call('serve.generate', { channel: 'prod', messages: [{ role: 'user', content: 'What restarts a GenServer?' }], maxNewTokens: 4 })).result as { version: string; text: string };
  expect(served.version).toBe(v1);
  expect(typeof served.text).toBe('string');
  const snap = (await c.call('monitor.snapshot', { channel: 'prod' })).result as { versions: Record<string, { requests: number }> | { version: string; requests: number }[] };
  expect(JSON.stringify(snap)).toContain(v1);
  expect(JSON.stringify(snap)).toMatch(/"requests":1\b/);

  await c.call('registry.promote', { version: v2, channel: 'prod' });
  const rb = await c.call('registry.rollback', { channel: 'prod', reason: 'test' });
  if (rb.error) throw new Error(JSON.stringify(rb.error));
  const history = (await c.call('registry.history', { channel: 'prod' })).result as unknown[];
  expect(history.length).toBeGreaterThanOrEqual(3);
  const after = (await c.call('serve.generate', { channel: 'prod', messages: [{ role: 'user', content: 'x' }], maxNewTokens: 2 })).result as { version: string };
  expect(after.version).toBe(v1);

  expect(err(await c.call('registry.promote', { version: v1, channel: 'bad name!' }))).toMatchObject({ code: 'invalid_params', details: { path: 'params.channel' } });
  expect(err(await c.call('registry.show', { version: 'no-such-version' }))).toMatchObject({ code: 'registry_error' });
  expect(err(await c.call('registry.register', { source: '../elsewhere' }))).toMatchObject({ code: 'path_outside_workspace' });
  expect(await c.close()).toBe(0);
}, 180_000);
