// Generation and evaluation through the port, on a tiny generated model with a PEFT adapter written in
// the workspace: the streamed token events are the tokens the library's own generate() produces for the
// chat-template rendering of the messages; tokens wait for credits; cancel ends a paused generation;
// eval.run's report equals runEvaluation's in this process on the same model and adapter.
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadModelFiles } from '../../src/model/files.js';
import { LlamaModel } from '../../src/model/native-model.js';
import { generateTinyModel } from '../../src/model/tiny.js';
import { writeSafetensors } from '../../src/model/safetensors.js';
import { runEvaluation } from '../../src/eval/run-eval.js';
import { SidecarClient, type Msg } from './sidecar.js';

let ws: string;
const clients: SidecarClient[] = [];
const start = () => {
  const c = new SidecarClient(ws);
  clients.push(c);
  return c;
};
const LORA = { r: 4, lora_alpha: 8, target_modules: ['q_proj', 'v_proj', 'down_proj'] as ('q_proj' | 'v_proj' | 'down_proj')[], seed: 5 };

/** The model with the test's adapter (lora_B filled from a fixed generator) in this process. */
function adapted(): { model: LlamaModel; release: () => void; tok: NonNullable<ReturnType<typeof loadModelFiles>['tokenizer']> } {
  const files = loadModelFiles(join(ws, 'tiny'));
  const model = LlamaModel.fromFiles(files);
  model.addLora(LORA);
  let s = 11;
  const rnd = () => ((s = (s * 1103515245 + 12345) >>> 0) / 2 ** 32 - 0.5) * 0.4;
  const st = model.adapterState('param');
  model.loadAdapterState(Object.fromEntries(Object.entries(st).filter(([k]) => k.includes('lora_B')).map(([k, v]) => [k, { shape: v.shape, data: v.data.map(() => rnd()) }])));
  return { model, tok: files.tokenizer!, release: () => (model.dispose(), files.release()) };
}

const chat = (q: string) => [
  { role: 'system' as const, content: 'You answer questions about STARWEAVE.' },
  { role: 'user' as const, content: q },
];
const records = Array.from({ length: 6 }, (_, i) => ({
  category: i % 2 ? 'otp' : 'memory_context',
  messages: [
    { role: 'user' as const, content: `Which process restarts worker ${i}?` },
    { role: 'assistant' as const, content: `Its supervisor restarts worker ${i}.` },
  ],
}));

beforeAll(async () => {
  ws = mkdtempSync(join(tmpdir(), 'sw-port-gen-'));
  await generateTinyModel(join(ws, 'tiny'), 'tiny', 2);
  // a PEFT adapter folder as a training run writes it
  const { model, release } = adapted();
  try {
    mkdirSync(join(ws, 'adapter'));
    writeFileSync(join(ws, 'adapter', 'adapter_config.json'), JSON.stringify({ peft_type: 'LORA', task_type: 'CAUSAL_LM', r: LORA.r, lora_alpha: LORA.lora_alpha, target_modules: LORA.target_modules, seed: LORA.seed }));
    const st = model.adapterState('param');
    await writeSafetensors(join(ws, 'adapter', 'adapter_model.safetensors'), Object.fromEntries(Object.entries(st).map(([k, v]) => [k, { dtype: 'F32' as const, shape: v.shape, data: v.data }])));
  } finally {
    release();
  }
  writeFileSync(join(ws, 'heldout.jsonl'), records.map((r) => JSON.stringify(r)).join('\n') + '\n');
}, 60_000);
afterAll(() => {
  for (const c of clients) if (c.proc.exitCode === null) c.proc.kill('SIGKILL');
  rmSync(ws, { recursive: true, force: true });
});

const err = (m: Msg) => m.error as { code: string; message: string; details: Record<string, unknown> };

test('generate streams one token event per token: the library\'s greedy tokens for the chat-template prompt, with the adapter', async () => {
  const { model, tok, release } = adapted();
  let expected: number[];
  let expectedText: string;
  try {
    const ids = tok.encodeChat(chat('What restarts a crashed GenServer?'));
    const r = await model.generate([ids], { maxNewTokens: 24, stopTokenIds: [tok.eosTokenId!], padTokenId: tok.padTokenId ?? 0 }, { decode: (t) => tok.decode(t, { skipSpecialTokens: true }) });
    expected = r.tokens[0];
    expectedText = r.texts![0];
  } finally {
    release();
  }
  const c = start();
  const skipped: Msg[] = [];
  const reply = await c.call('generate', { job: 'g1', credits: 1000, model: 'tiny', adapter: 'adapter', messages: chat('What restarts a crashed GenServer?'), maxNewTokens: 24 }, skipped);
  expect(reply.result).toEqual({ job: 'g1', status: 'running' });
  const done = await c.nextWhere((m) => m.job === 'g1' && ['done', 'failed', 'cancelled'].includes(String(m.event)), 60_000, skipped);
  if (done.event !== 'done') throw new Error(JSON.stringify(done.data));
  const res = done.data as { text: string; tokens: number[]; finishReason: string; promptTokens: number; newTokens: number };
  expect(res.tokens).toEqual(expected);
  expect(res.text).toBe(expectedText);
  const events = [...skipped, done].filter((m) => m.job === 'g1');
  const tokens = events.filter((m) => m.event === 'token').map((m) => m.data as { token: number; text: string; step: number });
  expect(tokens.map((t) => t.token)).toEqual(expected);
  expect(tokens.map((t) => t.step)).toEqual(expected.map((_, i) => i));
  expect(tokens.map((t) => t.text).join('')).toBe(tok.decode(expected, { skipSpecialTokens: true }));
  expect(events[0].event).toBe('start');
  expect(events.map((m) => m.seq)).toEqual(events.map((_, i) => i + 1));
  // the same model without the adapter generates from its own (cached separately) weights
  const base = await c.call('generate', { job: 'g2', credits: 1000, model: 'tiny', prompt: 'GenServer', maxNewTokens: 4, doSample: true, seed: 3, topK: 5 }, skipped);
  expect(base.result).toMatchObject({ job: 'g2' });
  const d2 = await c.nextWhere((m) => m.job === 'g2' && ['done', 'failed'].includes(String(m.event)), 60_000, skipped);
  expect(d2.event).toBe('done');
  expect((d2.data as { newTokens: number }).newTokens).toBe(4);
  // both stay loaded for the next request
  const v = (await c.call('version', {}, skipped)).result as { models: { model: string; adapter: string | null; users: number }[] };
  expect(v.models).toEqual(expect.arrayContaining([{ model: 'tiny', adapter: 'adapter', users: 0 }, { model: 'tiny', adapter: null, users: 0 }]));
  expect(await c.close()).toBe(0);
}, 120_000);

test('tokens wait for credits; pings are answered meanwhile; cancel ends a paused generation; bad params name the field', async () => {
  const c = start();
  expect(err(await c.call('generate', { model: 'tiny', maxNewTokens: 4 }))).toMatchObject({ code: 'invalid_params', details: { path: 'params.messages' } });
  expect(err(await c.call('generate', { model: 'tiny', prompt: 'x', temperature: 0 }))).toMatchObject({ code: 'invalid_params', details: { path: 'params.temperature' } });
  expect(err(await c.call('generate', { model: '../elsewhere', prompt: 'x' }))).toMatchObject({ code: 'path_outside_workspace' });
  const missing = await c.call('generate', { job: 'gm', credits: 10, model: 'adapter', prompt: 'x' });
  expect(missing.result).toMatchObject({ job: 'gm' });
  const failed = await c.nextWhere((m) => m.job === 'gm' && m.event === 'failed');
  expect(failed.data).toMatchObject({ code: 'model_error' });
  expect(JSON.stringify(failed.data)).toMatch(/config\.json/);

  const skipped: Msg[] = [];
  await c.call('generate', { job: 'slow', credits: 0, model: 'tiny', prompt: 'The supervisor', maxNewTokens: 40, stopTokenIds: [] }, skipped);
  expect((await c.call('ping', {}, skipped)).result).toMatchObject({ pong: true });
  // start, 40 tokens and done are queued (under the queue bound) and wait: no credits were given
  let st = { queued: 0, eventsSent: -1 };
  for (let t = Date.now(); Date.now() - t < 30_000 && st.queued < 42; await new Promise((r) => setTimeout(r, 50)))
    st = (await c.call('jobs.status', { job: 'slow' }, skipped)).result as typeof st;
  expect(st).toMatchObject({ queued: 42, eventsSent: 0 });
  expect(skipped.filter((m) => m.job === 'slow')).toEqual([]);
  await c.call('events.ack', { job: 'slow', credits: 5 }, skipped);
  await c.nextWhere((m) => m.job === 'slow' && m.seq === 5, 10_000, skipped);
  await new Promise((r) => setTimeout(r, 200));
  // exactly the 5 events the credits allowed
  const sent = new Set([...skipped.filter((m) => m.job === 'slow').map((m) => m.seq), 5]);
  expect([...sent].sort()).toEqual([1, 2, 3, 4, 5]);

  // a generation longer than the event queue pauses decoding until credits come; cancel ends it
  await c.call('generate', { job: 'paused', credits: 0, model: 'tiny', prompt: 'The supervisor', maxNewTokens: 400, stopTokenIds: [] }, skipped);
  await new Promise((r) => setTimeout(r, 1500));
  const ps = (await c.call('jobs.status', { job: 'paused' }, skipped)).result as { queued: number; status: string };
  expect(ps.status).toBe('running');
  expect(ps.queued).toBeLessThanOrEqual(256);
  expect((await c.call('jobs.cancel', { job: 'paused' }, skipped)).result).toEqual({ cancelled: true });
  const end = await c.nextWhere((m) => m.job === 'paused' && m.event === 'cancelled', 10_000, skipped);
  expect(end.event).toBe('cancelled');
  // the model is free again (its lock was released by the cancelled job)
  await c.call('generate', { job: 'after', credits: 100, model: 'tiny', prompt: 'ok', maxNewTokens: 2 }, skipped);
  expect((await c.nextWhere((m) => m.job === 'after' && ['done', 'failed'].includes(String(m.event)), 20_000, skipped)).event).toBe('done');
  expect(await c.close()).toBe(0);
}, 120_000);

test('eval.run: the report equals runEvaluation on the same model and adapter, with progress events; eval.json written', async () => {
  const spec = { max_examples: 4, generate_examples: 2, max_new_tokens: 6, compare_base: true };
  const { model, tok, release } = adapted();
  let expected: Awaited<ReturnType<typeof runEvaluation>>;
  try {
    expected = await runEvaluation(model, tok, records, spec, { maxSeqLen: 128 });
  } finally {
    release();
  }
  const c = start();
  const skipped: Msg[] = [];
  await c.call('eval.run', { job: 'e1', credits: 100, model: 'tiny', adapter: 'adapter', data: { file: 'heldout.jsonl' }, metrics: spec, max_seq_len: 128, output: 'evals/e1' }, skipped);
  const done = await c.nextWhere((m) => m.job === 'e1' && ['done', 'failed', 'cancelled'].includes(String(m.event)), 120_000, skipped);
  if (done.event !== 'done') throw new Error(JSON.stringify(done.data));
  const r = done.data as typeof expected & { file: string };
  expect(r.format).toBe('starweave-eval/1');
  expect(r.tuned.tokens).toBe(expected.tuned.tokens);
  expect(r.tuned.loss).toBeCloseTo(expected.tuned.loss!, 6);
  expect(r.tuned.tokenAccuracy).toBeCloseTo(expected.tuned.tokenAccuracy!, 12);
  expect(r.base!.loss).toBeCloseTo(expected.base!.loss!, 6);
  expect(r.delta!.loss).toBeCloseTo(expected.delta!.loss!, 6);
  expect(r.tuned.samples.map((s) => s.output)).toEqual(expected.tuned.samples.map((s) => s.output));
  expect(Object.keys(r.tuned.categories).sort()).toEqual(['memory_context', 'otp']);
  expect(r.gate).toEqual(expected.gate);
  expect(r.file).toBe(join('evals', 'e1', 'eval.json'));
  expect(JSON.parse(readFileSync(join(ws, r.file), 'utf8')).tuned.tokens).toBe(expected.tuned.tokens);
  const progress = skipped.filter((m) => m.job === 'e1' && m.event === 'progress').map((m) => m.data as { phase: string; scored: number; total: number });
  expect(progress.length).toBeGreaterThan(0);
  expect(progress.at(-1)).toMatchObject({ scored: 8, total: 8, phase: 'base' });

  const bad = await c.call('eval.run', { model: 'tiny', data: { records: [{ messages: [] }] } });
  expect(err(bad)).toMatchObject({ code: 'invalid_params' });
  expect(String(err(bad).details.path)).toMatch(/^params\.data/);
  writeFileSync(join(ws, 'broken.jsonl'), JSON.stringify(records[0]) + '\n{"messages": 3}\n');
  expect(err(await c.call('eval.run', { model: 'tiny', data: { file: 'broken.jsonl' } }))).toMatchObject({ code: 'data_error', details: { file: 'broken.jsonl', line: 2 } });
  expect(await c.close()).toBe(0);
}, 180_000);

test('eval.run on a dataset version\'s held-out split built through the port', async () => {
  const c = start();
  const skipped: Msg[] = [];
  await c.call('dataset.build', { job: 'b', credits: 100, config: { name: 'gen', sources: [{ kind: 'generated', seed: 3, perCategory: 20 }] }, store: 'store' }, skipped);
  const built = await c.nextWhere((m) => m.job === 'b' && ['done', 'failed'].includes(String(m.event)), 60_000, skipped);
  expect(built.event).toBe('done');
  const show = (await c.call('dataset.show', { store: 'store', version: 'gen' }, skipped)).result as { manifest: { splits: { heldout: { records: number } } } };
  const heldout = show.manifest.splits.heldout.records;
  expect(heldout).toBeGreaterThan(0);
  await c.call('eval.run', { job: 'e2', credits: 100, model: 'tiny', data: { store: 'store', version: 'gen' }, metrics: { max_examples: 50, generate_examples: 1, max_new_tokens: 2 } }, skipped);
  const done = await c.nextWhere((m) => m.job === 'e2' && ['done', 'failed'].includes(String(m.event)), 120_000, skipped);
  if (done.event !== 'done') throw new Error(JSON.stringify(done.data));
  const r = done.data as { tuned: { examples: number }; base: unknown; file: unknown };
  expect(r.tuned.examples).toBe(Math.min(heldout, 50));
  expect(r.base).toBeNull(); // no adapter: nothing to compare with
  expect(r.file).toBeNull();
  expect(err(await c.call('eval.run', { model: 'tiny', data: { store: 'store', version: 'nope' } }))).toMatchObject({ code: 'data_error' });
  expect(await c.close()).toBe(0);
}, 180_000);

test('generations on one model take turns (its KV cache is one job\'s at a time): concurrent results equal sequential ones', async () => {
  const c = start();
  const skipped: Msg[] = [];
  const prompts = ['The supervisor restarts', 'A GenServer holds', 'ETS tables are'];
  const run = async (job: string, prompt: string) => {
    await c.call('generate', { job, credits: 1000, model: 'tiny', adapter: 'adapter', prompt, maxNewTokens: 12, stopTokenIds: [] }, skipped);
  };
  const result = async (job: string) => {
    const d = await c.nextWhere((m) => m.job === job && ['done', 'failed'].includes(String(m.event)), 60_000, skipped);
    if (d.event !== 'done') throw new Error(JSON.stringify(d.data));
    return (d.data as { tokens: number[] }).tokens;
  };
  const sequential: number[][] = [];
  for (const [i, p] of prompts.entries()) {
    await run(`s${i}`, p);
    sequential.push(await result(`s${i}`));
  }
  // the three start at once (each start is answered at once; the test client reads one frame at a time)
  for (const [i, p] of prompts.entries()) await run(`c${i}`, p);
  const concurrent: number[][] = [];
  for (const i of prompts.keys()) concurrent.push(await result(`c${i}`));
  expect(concurrent).toEqual(sequential);
  expect(new Set(sequential.map((t) => t.join(','))).size).toBe(3);
  expect(await c.close()).toBe(0);
}, 120_000);

test('a model whose adapter files change on disk is loaded again (not served stale from the cache)', async () => {
  const live = join(ws, 'adapter-live');
  cpSync(join(ws, 'adapter'), live, { recursive: true });
  const c = start();
  const skipped: Msg[] = [];
  const gen = async (job: string, adapter?: string) => {
    await c.call('generate', { job, credits: 1000, model: 'tiny', ...(adapter ? { adapter } : {}), prompt: 'The supervisor restarts', maxNewTokens: 10, stopTokenIds: [] }, skipped);
    const d = await c.nextWhere((m) => m.job === job && ['done', 'failed'].includes(String(m.event)), 60_000, skipped);
    if (d.event !== 'done') throw new Error(JSON.stringify(d.data));
    return (d.data as { tokens: number[] }).tokens;
  };
  const base = await gen('base');
  const tuned = await gen('t1', 'adapter-live');
  expect(tuned).not.toEqual(base);
  // the adapter is retrained into the same folder: here, its lora_B zeroed (the adapter then changes nothing)
  const { model, release } = adapted();
  try {
    const st = model.adapterState('param');
    await writeSafetensors(join(live, 'adapter_model.safetensors'), Object.fromEntries(Object.entries(st).map(([k, v]) => [k, { dtype: 'F32' as const, shape: v.shape, data: k.includes('lora_B') ? new Float32Array(v.data.length) : v.data }])));
  } finally {
    release();
  }
  expect(await gen('t2', 'adapter-live')).toEqual(base);
  expect(await c.close()).toBe(0);
}, 120_000);
