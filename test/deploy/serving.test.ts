// The serving engine on real tiny models: a registered adapter answers exactly what the native engine
// gives for base + that adapter (two adapters answer differently), a full model directory serves too,
// concurrent requests are batched with the same answers, the cache keeps the most recent versions, and
// the failures are clear errors (an export this engine does not serve, a base model gone, a prompt too long).
import { renameSync, writeFileSync, mkdirSync, cpSync } from 'node:fs';
import { join } from 'node:path';
import { loadModelFiles } from '../../src/model/files.js';
import { LlamaModel } from '../../src/model/native-model.js';
import { stopIds } from '../../src/eval/evaluate.js';
import { applyLoraAdapter, readPeftAdapter } from '../../src/deploy/peft.js';
import { Registry } from '../../src/deploy/registry.js';
import { ServingEngine } from '../../src/deploy/serving.js';
import { tinyBase, tmp, writeAdapter } from './fixtures.js';

const chat = (content: string) => [{ role: 'user' as const, content }];

async function reference(baseDir: string, adapterDir: string | null, content: string, maxNewTokens: number): Promise<string> {
  const files = loadModelFiles(baseDir);
  const model = LlamaModel.fromFiles(files);
  try {
    if (adapterDir) applyLoraAdapter(model, readPeftAdapter(adapterDir, { base: files.config }));
    const tok = files.tokenizer!;
    const r = await model.generate([tok.encodeChat(chat(content))], { maxNewTokens, stopTokenIds: stopIds(tok), padTokenId: tok.padTokenId ?? 0 }, { decode: (ids) => tok.decode(ids, { skipSpecialTokens: true }) });
    return r.texts![0].trim();
  } finally {
    model.dispose();
    files.release();
  }
}

describe('serving engine', () => {
  test('answers as the native engine does for base + adapter; versions differ; batching keeps the answers', async () => {
    const base = await tinyBase();
    const reg = new Registry(join(tmp(), 'store'));
    const a1 = await writeAdapter(join(tmp(), 'a1'), base, 1);
    const a2 = await writeAdapter(join(tmp(), 'a2'), base, 2);
    await reg.register({ source: a1, base });
    await reg.register({ source: a2, base });
    const full = await reg.register({ source: base });
    expect(full.version.kind).toBe('merged-model');
    const engine = new ServingEngine(reg, { maxLoaded: 2 });
    try {
      const prompt = 'How does a Supervisor restart a GenServer?';
      const r1 = await engine.generate('v1', { messages: chat(prompt), maxNewTokens: 12 });
      const r2 = await engine.generate('v2', { messages: chat(prompt), maxNewTokens: 12 });
      const r3 = await engine.generate('v3', { messages: chat(prompt), maxNewTokens: 12 });
      expect(r1.text).toBe(await reference(base, a1, prompt, 12));
      expect(r2.text).toBe(await reference(base, a2, prompt, 12));
      expect(r3.text).toBe(await reference(base, null, prompt, 12));
      expect(r1.text).not.toBe(r2.text);
      expect(r1.text).not.toBe(r3.text);
      expect(r1).toMatchObject({ version: 'v1', batchSize: 1 });
      expect(r1.promptTokens).toBeGreaterThan(5);
      expect(r1.completionTokens).toBeGreaterThan(0);
      expect(r1.completionTokens).toBeLessThanOrEqual(12);
      expect(r1.prefillTokensPerSec).toBeGreaterThan(0);
      if (r1.completionTokens > 1) expect(r1.decodeTokensPerSec).toBeGreaterThan(0);
      expect(r1.latencyMs).toBeGreaterThanOrEqual(r1.prefillMs + r1.decodeMs - 0.01);
      // at most two versions stay loaded, the most recent ones
      expect(engine.loaded().sort()).toEqual(['v2', 'v3']);

      // concurrent requests to one version: batched, each answer as if alone
      const prompts = ['What is ETS?', 'Explain :pg groups.', 'What does Registry do?', 'Why use Task.async?'];
      const alone: string[] = [];
      for (const p of prompts) alone.push((await engine.generate('v1', { messages: chat(p), maxNewTokens: 10 })).text);
      const together = await Promise.all(prompts.map((p) => engine.generate('v1', { messages: chat(p), maxNewTokens: 10 })));
      expect(together.map((r) => r.text)).toEqual(alone);
      expect(Math.max(...together.map((r) => r.batchSize))).toBeGreaterThan(1);
      // a channel reference serves its current version
      await reg.promote({ version: 'v2', channel: 'production' });
      expect((await engine.generate('@production', { messages: chat(prompt), maxNewTokens: 12 })).text).toBe(r2.text);
    } finally {
      await engine.close();
    }
  });

  test('one version loaded at a time under concurrent requests for two: every request is answered correctly', async () => {
    const base = await tinyBase();
    const reg = new Registry(join(tmp(), 'store'));
    await reg.register({ source: await writeAdapter(join(tmp(), 'a1'), base, 5), base });
    await reg.register({ source: await writeAdapter(join(tmp(), 'a2'), base, 6), base });
    const engine = new ServingEngine(reg, { maxLoaded: 1 });
    try {
      const req = { messages: chat('What is a Port?'), maxNewTokens: 5 };
      const want = { v1: (await engine.generate('v1', req)).text, v2: (await engine.generate('v2', req)).text };
      expect(want.v1).not.toBe(want.v2);
      const ids = Array.from({ length: 12 }, (_, i) => (i % 3 === 0 ? 'v2' : 'v1') as 'v1' | 'v2');
      const rs = await Promise.all(ids.map((id) => engine.generate(id, req)));
      rs.forEach((r, i) => expect([r.version, r.text]).toEqual([ids[i], want[ids[i]]]));
      expect(engine.loaded()).toHaveLength(1);
    } finally {
      await engine.close();
    }
  });

  test('clear errors: an export it does not serve, a base model that moved, a prompt too long, a bad request', async () => {
    const base = join(tmp(), 'base');
    cpSync(await tinyBase(), base, { recursive: true });
    const reg = new Registry(join(tmp(), 'store'));
    await reg.register({ source: await writeAdapter(join(tmp(), 'a1'), base, 1), base });
    const gg = join(tmp(), 'gguf');
    mkdirSync(gg);
    writeFileSync(join(gg, 'model.gguf'), 'GGUF');
    writeFileSync(join(gg, 'export.json'), '{}');
    expect((await reg.register({ source: gg })).version.kind).toBe('gguf');
    const engine = new ServingEngine(reg);
    try {
      await expect(engine.generate('v2', { messages: chat('hi') })).rejects.toThrow(/v2 is a gguf export: it is served by llama.cpp/);
      await expect(engine.generate('v1', { messages: [] })).rejects.toThrow(/give at least one message/);
      await expect(engine.generate('v1', { messages: chat('word '.repeat(400)), maxNewTokens: 200 })).rejects.toThrow(/512/);
      renameSync(join(base, 'model.safetensors'), join(base, 'moved.safetensors'));
      await engine.unload('v1');
      await expect(engine.generate('v1', { messages: chat('hi') })).rejects.toThrow(/v1: its base model base \(.*\) is not the one registered: .*model.safetensors is missing/);
      // the failed load is not cached: once the base is back, the version serves again
      renameSync(join(base, 'moved.safetensors'), join(base, 'model.safetensors'));
      expect((await engine.generate('v1', { messages: chat('hi'), maxNewTokens: 4 })).version).toBe('v1');
    } finally {
      await engine.close();
    }
  });
});
