// The live collection log: acknowledged means on disk, segments rotate, a torn tail (a segment really
// truncated mid-record, or a process killed mid-write) is cut at the last whole record on open.
import { spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync, truncateSync, appendFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { buildDataset, CollectionLog } from '../../src/data/index.js';
import { tempDir } from './helpers.js';

const interaction = (n: number) => ({
  category: 'memory_context' as const,
  messages: [
    { role: 'user' as const, content: `Session ${n}: remind me which consolidation interval we deployed on node ${n % 7}?` },
    { role: 'assistant' as const, content: `You deployed consolidate_every: ${600000 + n} on node ${n % 7}, about ten minutes. Record ${n}.` },
  ],
  metadata: { seq: n },
});

async function readSeqs(dir: string, logDir: string): Promise<{ seqs: number[]; rejects: number }> {
  const seqs: number[] = [];
  const res = await buildDataset({ config: { sources: [{ kind: 'collection-log', path: logDir, review: false }], dedup: { exact: false, near: false }, split: { heldOutFraction: 0 } }, baseDir: dir, store: join(dir, 'store') });
  for (const f of ['train.jsonl', 'heldout.jsonl']) {
    const p = join(res.dir!, f);
    const text = readFileSync(p, 'utf8').trim();
    if (text) for (const l of text.split('\n')) seqs.push(JSON.parse(l).metadata.seq);
  }
  return { seqs: seqs.sort((a, b) => a - b), rejects: res.report.read - res.report.kept };
}

describe('collection log', () => {
  test('appends are acknowledged after fsync, batched, rotated by size, and read back in order', async () => {
    const dir = tempDir();
    const log = await CollectionLog.open(join(dir, 'log'), { segmentBytes: 4096 });
    const acks = await Promise.all(Array.from({ length: 120 }, (_, i) => log.append(interaction(i))));
    await log.close();
    const segs = readdirSync(join(dir, 'log')).sort();
    expect(segs.length).toBeGreaterThan(3);
    for (const s of segs) expect(statSync(join(dir, 'log', s)).size).toBeLessThanOrEqual(4096);
    expect(acks[0]).toEqual({ segment: 'seg-000001.log', line: 1 });
    expect(new Set(acks.map((a) => `${a.segment}:${a.line}`)).size).toBe(120);
    const { seqs } = await readSeqs(dir, 'log');
    expect(seqs).toEqual(Array.from({ length: 120 }, (_, i) => i));
  });

  test('an invalid interaction is refused with its field path, and nothing is written for it', async () => {
    const dir = tempDir();
    const log = await CollectionLog.open(join(dir, 'log'));
    await expect(log.append({ messages: [{ role: 'user', content: 'hi' }, { role: 'assistant', content: '' }] })).rejects.toThrow(/at messages\[1\]\.content/);
    await log.append(interaction(1));
    await log.close();
    expect(readFileSync(join(dir, 'log', 'seg-000001.log'), 'utf8').trim().split('\n')).toHaveLength(1);
  });

  test('a segment truncated mid-record: readers skip the torn tail, open() cuts it, appends continue', async () => {
    const dir = tempDir();
    const logDir = join(dir, 'log');
    let log = await CollectionLog.open(logDir, { segmentBytes: 1 << 20 });
    for (let i = 0; i < 10; i++) await log.append(interaction(i));
    await log.close();
    const seg = join(logDir, 'seg-000001.log');
    const text = readFileSync(seg, 'utf8');
    const lastStart = text.lastIndexOf('\n', text.length - 2) + 1;
    truncateSync(seg, lastStart + 25); // really cut inside record 9
    expect((await readSeqs(dir, 'log')).seqs).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8]);
    log = await CollectionLog.open(logDir);
    expect(log.recovery).toEqual({ segment: 'seg-000001.log', cutBytes: 25, records: 9 });
    expect(statSync(seg).size).toBe(lastStart);
    await log.append(interaction(100));
    await log.close();
    expect((await readSeqs(dir, 'log')).seqs).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 100]);
    // a complete-looking last line with a bad checksum is torn too
    appendFileSync(seg, '00000000 {"messages":[]}\n');
    log = await CollectionLog.open(logDir);
    expect(log.recovery!.cutBytes).toBe(25);
    await log.close();
  });

  test('kill -9 while appending: every acknowledged record survives, the torn tail is cut', async () => {
    const dist = resolve('dist/src/data/collect/log.js');
    if (!existsSync(dist)) throw new Error(`${dist} is missing: npm run build:ts builds it`);
    const dir = tempDir();
    const logDir = join(dir, 'log');
    const child = spawn(
      process.execPath,
      [
        '--input-type=module',
        '-e',
        `import { CollectionLog } from ${JSON.stringify(dist)};
         const log = await CollectionLog.open(${JSON.stringify(logDir)}, { segmentBytes: 16384, maxBatch: 32, maxDelayMs: 1 });
         let n = 0;
         const big = 'x'.repeat(300);
         for (;;) {
           const batch = [];
           for (let i = 0; i < 16; i++, n++) {
             const k = n;
             batch.push(log.append({ messages: [{ role: 'user', content: 'q' + k + ' ' + big }, { role: 'assistant', content: 'a' + k + ' ' + big }], metadata: { seq: k } }).then(() => process.stdout.write('ACK ' + k + '\\n')));
           }
           await Promise.race(batch);
         }`,
      ],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    const acked = new Set<number>();
    await new Promise<void>((done) => {
      let buf = '';
      child.stdout!.on('data', (d: Buffer) => {
        buf += d.toString();
        const lines = buf.split('\n');
        buf = lines.pop()!;
        for (const l of lines) if (l.startsWith('ACK ')) acked.add(Number(l.slice(4)));
        if (acked.size >= 1500 && !child.killed) {
          child.kill('SIGKILL');
        }
      });
      child.on('exit', () => done());
    });
    expect(acked.size).toBeGreaterThanOrEqual(1500);
    const log = await CollectionLog.open(logDir); // recovery
    await log.close();
    const { seqs } = await readSeqs(dir, 'log');
    const have = new Set(seqs);
    const lost = [...acked].filter((k) => !have.has(k));
    expect(lost).toEqual([]);
    expect(readdirSync(logDir).length).toBeGreaterThan(5); // it rotated while being killed
  });
});
