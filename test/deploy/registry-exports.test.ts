// Registering what the exporters write (src/deploy/export.ts): export.json's format and precision are
// recorded, its run and base model become the lineage, its sha256 of each file is checked against the
// copy (a file changed after the export is refused), and a merged export serves what base + adapter serve.
import { appendFileSync } from 'node:fs';
import { join } from 'node:path';
import { exportModel } from '../../src/deploy/export.js';
import { Registry } from '../../src/deploy/registry.js';
import { ServingEngine } from '../../src/deploy/serving.js';
import { tinyBase, tmp, writeRun } from './fixtures.js';

describe('registry: exports', () => {
  test('merged, PEFT and GGUF exports of a run: lineage from export.json, checked hashes, the merged one serves like the adapter', async () => {
    const base = await tinyBase();
    const run = await writeRun(join(tmp(), 'run-x'), base, 91);
    const reg = new Registry(join(tmp(), 'store'));
    const merged = join(tmp(), 'merged');
    await exportModel({ format: 'merged', run, out: merged });
    const peft = join(tmp(), 'peft');
    await exportModel({ format: 'peft', run, out: peft, dtype: 'bf16' });
    const gguf = join(tmp(), 'gguf');
    await exportModel({ format: 'gguf', run, out: gguf, dtype: 'q8_0' });

    const m = (await reg.register({ source: merged })).version;
    expect(m).toMatchObject({ kind: 'merged-model', export: { format: 'merged', precision: 'f32' }, lineage: { run: { id: 'run-x' }, datasetVersion: 'ds-0123abcd', base: { dir: base } } });
    const p = (await reg.register({ source: peft })).version;
    expect(p).toMatchObject({ kind: 'peft-adapter', export: { format: 'peft', precision: 'bf16' }, lineage: { run: { id: 'run-x' }, base: { dir: base } } });
    const g = (await reg.register({ source: gguf })).version;
    expect(g).toMatchObject({ kind: 'gguf', export: { format: 'gguf', precision: 'q8_0' }, lineage: { run: { id: 'run-x' } } });
    expect(g.files.map((f) => f.path)).toContain('export.json');

    // the merged model and the run's adapter (f32) answer alike
    const a = (await reg.register({ source: run })).version;
    const engine = new ServingEngine(reg);
    try {
      const req = { messages: [{ role: 'user' as const, content: 'What restarts a crashed worker?' }], maxNewTokens: 8 };
      expect((await engine.generate(m.id, req)).text).toBe((await engine.generate(a.id, req)).text);
    } finally {
      await engine.close();
    }

    // a file changed after the export is refused
    const peft2 = join(tmp(), 'peft2');
    await exportModel({ format: 'peft', run, out: peft2, dtype: 'f16' });
    appendFileSync(join(peft2, 'adapter_config.json'), ' ');
    await expect(reg.register({ source: peft2 })).rejects.toThrow(/adapter_config.json: sha256 .* differs from .* in export.json \(the file changed after the export\)/);
  });
});
