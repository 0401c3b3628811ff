// Dedup (exact, MinHash/LSH, across splits), the tokenizer seam, the split, the versioned store
// (manifest, list, show, diff, content addressing) and curation, on real files.
import { readFileSync, existsSync, readdirSync, cpSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import {
  ApproximateChatRenderer,
  assignSplits,
  buildDataset,
  commitVersion,
  DatasetRecord,
  diffVersions,
  estimateJaccard,
  jaccard,
  listVersions,
  loadCuration,
  MinHasher,
  readManifest,
  recordDecision,
  resolveVersion,
  splitKey,
  type ChatRenderer,
  type Message,
} from '../../src/data/index.js';
import { rng } from '../../src/data/readers/generated.js';
import { chat, jsonl, tempDir, write } from './helpers.js';

const WORDS = 'node cluster pattern window matcher detector memory episode supervisor restart genserver registry signal threshold latency consolidate ingest planner session context budget tick cookie'.split(' ');
function sentence(r: () => number, n: number): string {
  return Array.from({ length: n }, () => WORDS[Math.floor(r() * WORDS.length)]).join(' ');
}
/** A copy of `s` with a fraction of its words replaced. */
function mutate(s: string, frac: number, r: () => number): string {
  return s
    .split(' ')
    .map((w) => (r() < frac ? `zz${Math.floor(r() * 1e6)}` : w))
    .join(' ');
}
/** A copy of `s` with exactly k distinct words replaced. */
function mutateN(s: string, k: number, r: () => number): string {
  const w = s.split(' ');
  const done = new Set<number>();
  while (done.size < k) {
    const i = Math.floor(r() * w.length);
    if (done.has(i)) continue;
    done.add(i);
    w[i] = `zz${i}q${Math.floor(r() * 1e6)}`;
  }
  return w.join(' ');
}
const records = (file: string) => readFileSync(file, 'utf8').trim().split('\n').filter(Boolean).map((l) => DatasetRecord.parse(JSON.parse(l)));

describe('dedup', () => {
  test('MinHash estimates track the true Jaccard of shingle sets', () => {
    const h = new MinHasher({ numPerm: 256, bands: 32, shingleWords: 3, threshold: 0.8 });
    const r = rng(1);
    for (const frac of [0.02, 0.1, 0.3, 0.6]) {
      const a = sentence(r, 300);
      const b = mutate(a, frac, r);
      const sa = h.shingles(a);
      const sb = h.shingles(b);
      expect(Math.abs(estimateJaccard(h.signature(sa), h.signature(sb)) - jaccard(sa, sb))).toBeLessThan(0.08);
    }
  });

  test('exact copies (formatting aside) and near copies are removed, distinct records kept, across both splits', async () => {
    const dir = tempDir();
    const r = rng(7);
    const rows: unknown[] = [];
    const bases: string[] = [];
    for (let i = 0; i < 200; i++) {
      const q = `Question ${i}: ${sentence(r, 12)}?`;
      const a = sentence(r, 120);
      bases.push(a);
      rows.push(chat(q, a, ['pattern_recognition', 'system_interaction', 'code_understanding', 'memory_context'][i % 4]));
    }
    // 30 formatting-only copies, 30 near copies (3 of 120 words changed), 30 far copies (~50% changed)
    for (let i = 0; i < 30; i++) {
      const o = rows[i] as ReturnType<typeof chat>;
      rows.push({ ...o, messages: o.messages.map((m) => ({ ...m, content: `  ${m.content.toUpperCase()}!! ` })) });
    }
    for (let i = 30; i < 60; i++) {
      const o = rows[i] as ReturnType<typeof chat>;
      rows.push({ ...o, messages: [o.messages[0], { role: 'assistant', content: mutateN(bases[i], 3, r) }] });
    }
    for (let i = 60; i < 90; i++) {
      const o = rows[i] as ReturnType<typeof chat>;
      rows.push({ ...o, messages: [o.messages[0], { role: 'assistant', content: mutate(bases[i], 0.5, r) }] });
    }
    write(dir, 'a.jsonl', jsonl(rows));
    const res = await buildDataset({ config: { sources: [{ kind: 'interactions', path: 'a.jsonl' }], split: { heldOutFraction: 0.3 } }, baseDir: dir, store: join(dir, 'store') });
    expect(res.report.duplicates.exact).toBe(30);
    expect(res.report.duplicates.near).toBeGreaterThanOrEqual(28); // J ~0.86: LSH recall ~0.99; allow a miss or two
    expect(res.report.kept).toBe(290 - 30 - res.report.duplicates.near);
    const train = records(join(res.dir!, 'train.jsonl'));
    const held = records(join(res.dir!, 'heldout.jsonl'));
    // no held-out record has a near copy in train (true Jaccard of shingle sets, computed exactly)
    const h = new MinHasher({ numPerm: 128, bands: 16, shingleWords: 3, threshold: 0.8 });
    const sh = (x: DatasetRecord) => h.shingles(x.messages.map((m) => `${m.role}: ${m.content}`).join('\n').toLowerCase());
    const trainSh = train.map(sh);
    let worst = 0;
    for (const x of held) {
      const hx = sh(x);
      for (const t of trainSh) worst = Math.max(worst, jaccard(hx, t));
    }
    expect(worst).toBeLessThan(0.8);
    // every removed duplicate is in rejects.jsonl with the hash of what it duplicates
    const rej = readFileSync(join(res.dir!, 'rejects.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    const kept = new Set([...train, ...held].map((x) => x.hash));
    expect(rej.filter((x) => x.reason.endsWith('duplicate')).every((x) => kept.has(x.duplicateOf))).toBe(true);
  });
});

describe('tokenizer seam', () => {
  const msgs: Message[] = [
    { role: 'system', content: 'You are the STARWEAVE assistant.' },
    { role: 'user', content: 'Why did the supervisor give up?' },
    { role: 'assistant', content: 'It passed max_restarts (3 in 5 seconds).' },
  ];

  test('the approximate renderer masks exactly the assistant turn (and its end token); count equals render length', () => {
    const r = new ApproximateChatRenderer();
    const { ids, lossMask } = r.render(msgs);
    expect(ids.length).toBe(lossMask.length);
    expect(r.count(msgs)).toBe(ids.length);
    const assistantBody = r.countText(msgs[2].content);
    expect(lossMask.filter(Boolean).length).toBe(assistantBody + 1);
    // the learned span is contiguous and at the end (followed only by the final newline)
    const first = lossMask.indexOf(true);
    expect(lossMask.slice(first, first + assistantBody + 1).every(Boolean)).toBe(true);
    expect(lossMask.slice(first + assistantBody + 1)).toEqual([false]);
  });

  test('a model renderer plugs in: its counts go into records, manifest and bounds', async () => {
    const dir = tempDir();
    write(dir, 'a.jsonl', jsonl([chat('Short question about the pattern engine?', 'A short answer about windows.'), chat('Another question about memory consolidation?', 'word '.repeat(60))]));
    const charRenderer: ChatRenderer = {
      name: 'test-chars',
      exact: true,
      render: (m) => {
        const ids = [...m.map((x) => x.content).join('')].map((c) => c.charCodeAt(0));
        return { ids, lossMask: ids.map(() => true) };
      },
      count: (m) => m.reduce((s, x) => s + x.content.length, 0),
    };
    const res = await buildDataset({ config: { sources: [{ kind: 'interactions', path: 'a.jsonl' }], tokens: { maxTokens: 200 } }, baseDir: dir, store: join(dir, 's'), renderer: charRenderer });
    expect(res.report.rejects.too_many_tokens).toBe(1);
    expect(res.manifest!.lineage.tokenizer).toEqual({ name: 'test-chars', exact: true });
    const [rec] = records(join(res.dir!, 'train.jsonl')).concat(records(join(res.dir!, 'heldout.jsonl')));
    expect(rec.tokens).toBe(rec.messages.reduce((s, m) => s + m.content.length, 0));
  });
});

describe('split', () => {
  test('stratified per category, deterministic from the seed, and a different seed gives a different split', () => {
    const cats = Array.from({ length: 1000 }, (_, i) => (i < 700 ? 0 : i < 950 ? 1 : 2));
    const hashes = cats.map((_, i) => `${(i * 2654435761 >>> 0).toString(16).padStart(8, '0')}${'0'.repeat(56)}`);
    const s1 = assignSplits(cats, hashes.map((h) => splitKey(h, 1)), 0.1);
    const s1b = assignSplits(cats, hashes.map((h) => splitKey(h, 1)), 0.1);
    const s2 = assignSplits(cats, hashes.map((h) => splitKey(h, 2)), 0.1);
    expect(Array.from(s1)).toEqual(Array.from(s1b));
    expect(Array.from(s1)).not.toEqual(Array.from(s2));
    const held = (c: number) => cats.filter((x, i) => x === c && s1[i] === 1).length;
    expect([held(0), held(1), held(2)]).toEqual([70, 25, 5]);
  });
});

describe('versioned store', () => {
  test('build, rebuild (same id), change inputs, list/show/diff with lineage', async () => {
    const dir = tempDir();
    const store = join(dir, 'store');
    const rows = Array.from({ length: 40 }, (_, i) => chat(`How does detector ${i} choose its threshold for signal s${i}?`, `Detector ${i} replays ${i + 3} days of s${i} in shadow mode and takes the 99th percentile of normal windows number ${i * 7}.`, ['pattern_recognition', 'system_interaction'][i % 2]));
    write(dir, 'a.jsonl', jsonl(rows));
    const config = { name: 'demo', sources: [{ kind: 'interactions' as const, path: 'a.jsonl' }], dedup: { near: false } };
    const v1 = await buildDataset({ config, baseDir: dir, store });
    expect(v1.created).toBe(true);
    const m1 = readManifest(store, v1.versionId!);
    expect(m1.records).toBe(40);
    expect(m1.splits.train.records + m1.splits.heldout.records).toBe(40);
    expect(m1.lineage.sources[0].inputs[0]).toEqual({ file: 'a.jsonl', sha256: expect.stringMatching(/^[0-9a-f]{64}$/) });
    expect(m1.lineage.project.name).toBe('starweave-finetune');
    // the files' hashes in the manifest are the files' hashes
    const { createHash } = await import('node:crypto');
    expect(createHash('sha256').update(readFileSync(join(v1.dir!, 'train.jsonl'))).digest('hex')).toBe(m1.splits.train.sha256);
    // same content: same version, nothing new
    const again = await buildDataset({ config, baseDir: dir, store });
    expect(again).toMatchObject({ versionId: v1.versionId, created: false });
    // a build that loses the race to another build of the same records (the workers of a distributed run
    // on one store): the version that landed stands; a target that is not a version is still an error
    const staging = join(dir, 'staging');
    cpSync(v1.dir!, staging, { recursive: true });
    expect(commitVersion(staging, v1.dir!)).toBe('exists');
    const bogus = join(dir, 'bogus');
    mkdirSync(join(bogus, 'x'), { recursive: true });
    expect(() => commitVersion(staging, bogus)).toThrow(/ENOTEMPTY|EEXIST/);
    expect(commitVersion(staging, join(dir, 'fresh'))).toBe('created');
    // change: drop 5 records, add 3
    write(dir, 'a.jsonl', jsonl([...rows.slice(5), ...Array.from({ length: 3 }, (_, i) => chat(`New question ${i} about the consolidator?`, `New answer ${i}: the consolidator runs every ${i + 1} minutes.`))]));
    const v2 = await buildDataset({ config, baseDir: dir, store });
    expect(v2.created).toBe(true);
    expect(v2.manifest!.parent).toBe(v1.versionId);
    expect(listVersions(store).map((m) => m.versionId)).toEqual([v1.versionId, v2.versionId]);
    expect(resolveVersion(store, 'demo')).toBe(v2.versionId);
    expect(resolveVersion(store, 'demo~1')).toBe(v1.versionId);
    expect(resolveVersion(store, v1.versionId!.slice(0, 6))).toBe(v1.versionId);
    const d = await diffVersions(store, 'demo~1', 'demo');
    expect(d).toMatchObject({ added: 3, removed: 5 });
    expect(d.unchanged + d.moved).toBe(35);
    expect(d.lineage.inputsChanged).toEqual([{ source: 'interactions:a.jsonl', file: 'a.jsonl', change: 'modified' }]);
    expect(d.lineage.configChanged).toBe(false);
    expect(readdirSync(join(store, 'tmp'))).toEqual([]); // staging cleaned up
  });
});

describe('curation', () => {
  test('reject, correct and approve by record hash; review sources wait for a decision', async () => {
    const dir = tempDir();
    const rows = [
      chat('What does the consolidator keep from an episode?', 'The summary and its links to patterns and entities.', 'memory_context'),
      chat('How do I restart the matcher pool?', 'Run rm -rf on the data folder.'),
      chat('Which port does EPMD listen on?', 'Port 4369 on every host of the cluster.'),
    ];
    write(dir, 'a.jsonl', jsonl(rows));
    write(dir, 'review.jsonl', jsonl([chat('Is a sawtooth in queue length a pattern?', 'Yes: a periodic fill and drain cycle, for example a batch consumer.', 'pattern_recognition')]));
    const config = {
      name: 'cur',
      sources: [
        { kind: 'interactions' as const, path: 'a.jsonl' },
        { kind: 'interactions' as const, path: 'review.jsonl', review: true },
      ],
      curation: { file: 'curation.jsonl' },
      dedup: { near: false },
      split: { heldOutFraction: 0 },
    };
    const first = await buildDataset({ config, baseDir: dir, dryRun: true });
    expect(first.report.curation.pending).toBe(1);
    expect(first.report.kept).toBe(3);
    // hashes of the records, as a pending listing would show them
    const store = join(dir, 'store');
    const v = await buildDataset({ config, baseDir: dir, store });
    const recs = records(join(v.dir!, 'train.jsonl'));
    const bad = recs.find((r) => r.messages[1].content.includes('rm -rf'))!;
    const epmd = recs.find((r) => r.messages[0].content.includes('EPMD'))!;
    const file = join(dir, 'curation.jsonl');
    recordDecision(file, { hash: bad.hash, decision: 'reject', reason: 'destructive advice', by: 'ada' });
    recordDecision(file, { hash: epmd.hash, decision: 'correct', record: { category: 'system_interaction', messages: [epmd.messages[0], { role: 'assistant', content: 'EPMD listens on port 4369; the distribution ports are separate.' }] } });
    expect(() => recordDecision(file, { hash: 'abc', decision: 'approve' })).toThrow(/hash/);
    // approve the pending one: its hash is the hash of its cleaned record
    const { processSources, parseConfig, approximateRenderer } = await import('../../src/data/index.js');
    const { emptyReport } = await import('../../src/data/report.js');
    const pending: DatasetRecord[] = [];
    const cfg = parseConfig(config);
    await processSources(cfg, dir, { renderer: approximateRenderer, curation: loadCuration(file), report: emptyReport('x', approximateRenderer, 0.8), reject: () => {}, keep: () => {}, pending: (r) => pending.push(r), inputs: [] });
    expect(pending).toHaveLength(1);
    recordDecision(file, { hash: pending[0].hash, decision: 'approve' });
    const v2 = await buildDataset({ config, baseDir: dir, store });
    expect(v2.report.curation).toEqual({ approved: 1, corrected: 1, rejected: 1, pending: 0 });
    const after = records(join(v2.dir!, 'train.jsonl'));
    expect(after.some((r) => r.messages[1].content.includes('rm -rf'))).toBe(false);
    expect(after.find((r) => r.messages[0].content.includes('EPMD'))!.metadata.curation).toBe('corrected');
    expect(after.find((r) => r.category === 'pattern_recognition')!.metadata.curation).toBe('approved');
    expect(v2.manifest!.lineage.curation).toMatchObject({ file: 'curation.jsonl', decisions: 3 });
    const rej = readFileSync(join(v2.dir!, 'rejects.jsonl'), 'utf8');
    expect(rej).toMatch(/curation_rejected.*destructive advice/);
    expect(existsSync(file)).toBe(true);
  });
});
