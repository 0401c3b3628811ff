// The registry on real artifacts: a run's PEFT adapter and a second adapter registered with lineage and
// content hashes, tags, promote / history / rollback (stacked), refusal of a failed version, the audit
// log, atomic index, errors naming what is wrong.
import { existsSync, readFileSync, statSync, writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { createHash } from 'node:crypto';
import { Registry, RegistryError, hashFiles, listFiles } from '../../src/deploy/registry.js';
import { tinyBase, tmp, writeAdapter, writeRun } from './fixtures.js';

describe('registry', () => {
  test('register a run adapter with lineage; content hash; same content twice is one version', async () => {
    const base = await tinyBase();
    const run = await writeRun(join(tmp(), 'run-2026-a'), base, 1);
    const reg = new Registry(join(tmp(), 'store'));
    const r = await reg.register({ source: run, notes: 'first', tags: ['candidate'] });
    expect(r.existing).toBe(false);
    const v = r.version;
    expect(v.id).toBe('v1');
    expect(v.kind).toBe('peft-adapter');
    expect(v.files.map((f) => f.path)).toEqual(['adapter_config.json', 'adapter_model.safetensors']);
    // the file hashes are the sha256 of the stored bytes, and the content hash is over the (path, size, sha) lines
    for (const f of v.files) {
      const bytes = readFileSync(join(reg.versionDir('v1'), f.path));
      expect(f.sha256).toBe(createHash('sha256').update(bytes).digest('hex'));
      expect(f.size).toBe(bytes.length);
    }
    const lines = v.files.map((f) => `${f.path}\t${f.size}\t${f.sha256}\n`).join('');
    expect(v.contentHash).toBe(createHash('sha256').update(lines).digest('hex'));
    expect(v.lineage.run).toEqual({ id: 'run-2026-a', dir: run, status: 'completed' });
    expect(v.lineage.datasetVersion).toBe('ds-0123abcd');
    expect(v.lineage.base?.dir).toBe(base);
    expect(v.lineage.base?.name).toBe('tiny');
    expect(v.lineage.base?.hash).toMatch(/^[0-9a-f]{64}$/);
    expect(v.lineage.base?.files.map((f) => f.path)).toEqual(expect.arrayContaining(['config.json', 'model.safetensors', 'tokenizer.json']));
    expect(v.lineage.metrics).toMatchObject({ steps: 2, train_loss: 3.1, eval_loss: 3.25, tuned_loss: 3.25, tuned_rouge_l: 0.125, base_loss: 3.6, gate_passed: true });
    expect(reg.show('candidate').id).toBe('v1');
    expect(reg.show(v.contentHash.slice(0, 8)).id).toBe('v1');

    // the same bytes again (from the adapter dir itself): the existing version, nothing added
    const again = await reg.register({ source: join(run, 'adapter'), base });
    expect(again.existing).toBe(true);
    expect(again.version.id).toBe('v1');
    expect(reg.list()).toHaveLength(1);

    // hard-linked registration of another adapter shares the inode with its source
    const other = await writeAdapter(join(tmp(), 'adapter-b'), base, 2);
    const b = await reg.register({ source: other, base, link: 'hardlink', datasetVersion: 'ds-ffff', metrics: { note_score: 4 } });
    expect(b.version.id).toBe('v2');
    expect(b.version.contentHash).not.toBe(v.contentHash);
    expect(statSync(join(reg.versionDir('v2'), 'adapter_model.safetensors')).ino).toBe(statSync(join(other, 'adapter_model.safetensors')).ino);
    expect(b.version.lineage).toMatchObject({ run: null, datasetVersion: 'ds-ffff', metrics: { note_score: 4 } });
    expect((await reg.verify('v2')).ok).toBe(true);
    // a stored file changed behind the registry's back is caught by verify
    writeFileSync(join(reg.versionDir('v1'), 'adapter_config.json'), '{}');
    expect(await reg.verify('v1')).toEqual({ version: 'v1', ok: false, problems: ['adapter_config.json: content changed'] });

    // no staging folders are left behind
    expect(listFiles(join(reg.root, 'versions')).filter((f) => f.startsWith('.staging'))).toEqual([]);
  });

  test('promote, history, stacked rollback, tags; the audit log records each change', async () => {
    const base = await tinyBase();
    const reg = new Registry(join(tmp(), 'store'));
    const ids: string[] = [];
    for (let s = 1; s <= 3; s++) ids.push((await reg.register({ source: await writeAdapter(join(tmp(), `a${s}`), base, s), base })).version.id);
    expect(ids).toEqual(['v1', 'v2', 'v3']);
    await reg.promote({ version: 'v1', channel: 'production' });
    await reg.promote({ version: 'v2', channel: 'production', reason: 'better rouge' });
    await reg.promote({ version: 'v3', channel: 'production' });
    await reg.promote({ version: 'v3', channel: 'canary' });
    expect(reg.current('production')).toBe('v3');
    expect(reg.resolve('@production')).toBe('v3');
    await expect(reg.promote({ version: 'v3', channel: 'production' })).rejects.toThrow(/already the version of channel 'production'/);

    const rb = await reg.rollback('production', 'latency');
    expect(rb).toMatchObject({ action: 'rollback', version: 'v2', previous: 'v3', reason: 'latency' });
    expect(reg.current('production')).toBe('v2');
    expect((await reg.rollback('production')).version).toBe('v1');
    await expect(reg.rollback('production')).rejects.toThrow(/no previous version to roll back to \(only v1\)/);
    await expect(reg.rollback('staging')).rejects.toThrow(/channel 'staging' does not exist/);
    expect(reg.current('canary')).toBe('v3');
    expect(reg.history('production').map((h) => [h.action, h.version, h.previous])).toEqual([
      ['promote', 'v1', null],
      ['promote', 'v2', 'v1'],
      ['promote', 'v3', 'v2'],
      ['rollback', 'v2', 'v3'],
      ['rollback', 'v1', 'v2'],
    ]);
    // promote after a rollback stacks on the version served
    await reg.promote({ version: 'v2', channel: 'production' });
    expect((await reg.rollback('production')).version).toBe('v1');

    expect(await reg.tag('v2', 'stable')).toEqual({ version: 'v2', tag: 'stable', movedFrom: null });
    expect(await reg.tag('v3', 'stable')).toEqual({ version: 'v3', tag: 'stable', movedFrom: 'v2' });
    expect(reg.show('stable')).toMatchObject({ id: 'v3', tags: ['stable'], channels: ['canary'] });
    await expect(reg.tag('v3', 'bad tag!')).rejects.toThrow(/a tag must be 1-64 characters/);

    // a failed integration test refuses promotion unless forced
    await reg.recordTest('v3', { suite: 'smoke', passed: false, total: 3, failed: 1 }, { cases: [] });
    await expect(reg.promote({ version: 'v3', channel: 'staging' })).rejects.toThrow(/v3 failed its last integration test \(1 of 3 cases, suite smoke/);
    await reg.promote({ version: 'v3', channel: 'staging', force: true });
    expect(existsSync(reg.show('v3').tests[0].file)).toBe(true);

    const types = reg.events().map((e) => e.type);
    expect(types.filter((t) => t === 'register')).toHaveLength(3);
    expect(types.filter((t) => t === 'promote')).toHaveLength(6);
    expect(types.filter((t) => t === 'rollback')).toHaveLength(3);
    expect(reg.events().at(-1)).toMatchObject({ type: 'promote', channel: 'staging', version: 'v3', forced: true });
    expect(types).toContain('test');
    expect(types.filter((t) => t === 'tag')).toHaveLength(2);
    // the index on disk is whole JSON, with no temp files left beside it
    expect(JSON.parse(readFileSync(reg.indexFile, 'utf8')).format).toBe('starweave-registry/1');
    expect(listFiles(reg.root).filter((f) => f.includes('.tmp-') || f.endsWith('.lock'))).toEqual([]);
  });

  test('errors name what is wrong', async () => {
    const base = await tinyBase();
    const reg = new Registry(join(tmp(), 'store'));
    const empty = tmp();
    await expect(reg.register({ source: empty })).rejects.toThrow(/not an artifact the registry knows: a PEFT adapter \(adapter_config.json \+ adapter_model.safetensors\)/);
    const half = join(tmp(), 'half');
    mkdirSync(half);
    writeFileSync(join(half, 'adapter_config.json'), '{}');
    await expect(reg.register({ source: half, base })).rejects.toThrow(/adapter_config.json: a PEFT adapter needs adapter_model.safetensors/);
    const ad = await writeAdapter(join(tmp(), 'ad'), base, 1);
    writeFileSync(join(ad, 'adapter_config.json'), JSON.stringify({ peft_type: 'LORA', base_model_name_or_path: 'HuggingFaceTB/SmolLM2-135M' }));
    await expect(reg.register({ source: ad })).rejects.toThrow(/needs its base model/);
    await expect(reg.register({ source: ad, base: empty })).rejects.toThrow(/no config.json/);
    await expect(reg.register({ source: ad, base, tags: ['ok', ''] } as never)).rejects.toThrow();
    expect(() => reg.resolve('v9')).toThrow(RegistryError);
    expect(() => reg.resolve('@production')).toThrow(/channel 'production' does not exist/);
    mkdirSync(reg.root, { recursive: true });
    writeFileSync(join(reg.root, 'index.json'), JSON.stringify({ format: 'starweave-registry/1', nextSeq: 1, versions: { v1: { id: 'v1' } }, tags: {}, channels: {} }));
    expect(() => reg.list()).toThrow(/index.json at versions\.v1\.\w+: /);
  });

  test('a reader sees every change another writer makes (the parsed index is cached per file change, frozen)', async () => {
    const base = await tinyBase();
    const root = join(tmp(), 'store');
    const writer = new Registry(root);
    const reader = new Registry(root);
    for (let s = 1; s <= 2; s++) await writer.register({ source: await writeAdapter(join(tmp(), `a${s}`), base, s), base });
    expect(reader.current('production')).toBeNull();
    for (const v of ['v1', 'v2']) {
      await writer.promote({ version: v, channel: 'production' });
      expect(reader.current('production')).toBe(v);
    }
    await writer.rollback('production');
    expect(reader.current('production')).toBe('v1');
    expect(reader.read()).toBe(reader.read());
    expect(() => {
      (reader.read().tags as Record<string, string>).x = 'v1';
    }).toThrow(TypeError);
  });

  test('hashFiles is stable and sensitive to names and bytes', async () => {
    const d = tmp();
    writeFileSync(join(d, 'a'), 'x');
    writeFileSync(join(d, 'b'), 'y');
    const h1 = await hashFiles(d, ['a', 'b']);
    expect((await hashFiles(d, ['a', 'b'])).contentHash).toBe(h1.contentHash);
    writeFileSync(join(d, 'b'), 'z');
    expect((await hashFiles(d, ['a', 'b'])).contentHash).not.toBe(h1.contentHash);
    expect(h1.bytes).toBe(2);
  });
});
