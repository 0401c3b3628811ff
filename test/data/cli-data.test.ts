// `starweave-ft data ...` in process (runDataCommand) on the embedded default corpus in examples/.
import { join } from 'node:path';
import { copyFileSync, mkdirSync, cpSync, readFileSync, writeFileSync } from 'node:fs';
import { jest } from '@jest/globals';
import { runDataCommand } from '../../src/cli/data.js';
import { tempDir } from './helpers.js';

async function run(args: string[]): Promise<{ code: number; out: string; err: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const log = jest.spyOn(console, 'log').mockImplementation((s: unknown) => void out.push(String(s)));
  const error = jest.spyOn(console, 'error').mockImplementation((s: unknown) => void err.push(String(s)));
  try {
    const code = await runDataCommand(args);
    return { code, out: out.join('\n'), err: err.join('\n') };
  } finally {
    log.mockRestore();
    error.mockRestore();
  }
}

describe('starweave-ft data on examples/', () => {
  const dir = tempDir();
  const ex = join(dir, 'examples');
  const store = join(dir, 'store');
  beforeAll(() => {
    cpSync('examples', ex, { recursive: true });
  });

  test('build: the default corpus gives >= 300 examples in all four categories, rejects with file:line', async () => {
    const r = await run(['build', '--config', join(ex, 'dataset.json'), '--store', store, '--json']);
    expect(r.code).toBe(0);
    const res = JSON.parse(r.out);
    expect(res.created).toBe(true);
    expect(res.report.kept).toBeGreaterThanOrEqual(300);
    for (const c of Object.values(res.report.byCategory) as { train: number; heldout: number }[]) {
      expect(c.train).toBeGreaterThan(20);
      expect(c.heldout).toBeGreaterThan(0);
    }
    expect(res.report.rejects.parse_error).toBe(1);
    expect(res.report.rejects.schema).toBe(2);
    expect(res.report.scrubbed.api_key).toBe(1);
    expect(Object.keys(res.report.bySource)).toEqual(['node-export', 'handwritten', 'legacy-export', 'public-formats', 'docs', 'elixir', 'generated']);
    for (const s of ['docs', 'elixir', 'public-formats']) expect(res.report.bySource[s].kept).toBeGreaterThan(5);
  });

  test('validate exits 1 and names the bad lines; list, show, diff', async () => {
    const v = await run(['validate', '--config', join(ex, 'dataset.json')]);
    expect(v.code).toBe(1);
    expect(v.out).toMatch(/interactions\/legacy-export\.jsonl:2: parse_error/);
    expect(v.out).toMatch(/interactions\/legacy-export\.jsonl:3 at messages\[1\]\.role: schema/);
    // a second version: one more handwritten conversation
    const hw = join(ex, 'interactions', 'handwritten.jsonl');
    writeFileSync(hw, readFileSync(hw, 'utf8') + JSON.stringify({ category: 'system_interaction', messages: [{ role: 'user', content: 'How do I see which node owns a :global name in the cluster?' }, { role: 'assistant', content: 'Call :global.whereis_name(name) and then node/1 on the pid it returns.' }] }) + '\n');
    expect((await run(['build', '--config', join(ex, 'dataset.json'), '--store', store])).code).toBe(0);
    const l = await run(['list', '--store', store]);
    expect(l.out.split('\n')).toHaveLength(3);
    const s = await run(['show', 'starweave-default', '--store', store]);
    expect(s.code).toBe(0);
    expect(s.out).toMatch(/sources:\n {2}node-export \(interactions\): 1 input/);
    expect(s.out).toMatch(/## Token lengths/);
    const d = await run(['diff', 'starweave-default~1', 'starweave-default', '--store', store]);
    expect(d.out).toMatch(/\+1 added, -0 removed/);
    expect(d.out).toMatch(/input modified: handwritten: interactions\/handwritten\.jsonl/);
    const bad = await run(['show', 'nope', '--store', store]);
    expect(bad.code).toBe(1);
    expect(bad.err).toMatch(/no version or dataset named 'nope'/);
  });

  test('curate lists records of a review source and records decisions', async () => {
    mkdirSync(join(ex, 'live'), { recursive: true });
    copyFileSync(join(ex, 'interactions', 'handwritten.jsonl'), join(ex, 'live', 'today.jsonl'));
    const cfg = JSON.parse(readFileSync(join(ex, 'dataset.json'), 'utf8'));
    cfg.sources = [{ name: 'live', kind: 'interactions', path: 'live', review: true }];
    writeFileSync(join(ex, 'review.json'), JSON.stringify(cfg));
    const n = readFileSync(join(ex, 'live', 'today.jsonl'), 'utf8').trim().split('\n').length;
    const l = await run(['curate', '--config', join(ex, 'review.json')]);
    expect(l.out).toMatch(new RegExp(`^${n} record\\(s\\) awaiting a decision`));
    const hash = /([0-9a-f]{64})/.exec(l.out)![1];
    expect((await run(['curate', '--config', join(ex, 'review.json'), 'reject', hash, '--reason', 'off topic'])).code).toBe(0);
    const l2 = await run(['curate', '--config', join(ex, 'review.json')]);
    expect(l2.out).toMatch(new RegExp(`^${n - 1} record\\(s\\) awaiting`));
    expect((await run(['curate', '--config', join(ex, 'review.json'), 'reject', hash])).err).toMatch(/--reason is required/);
  });
});
