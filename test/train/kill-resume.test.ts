// A run killed with SIGKILL after its first checkpoint resumes and continues with exactly the losses of
// the uninterrupted run. The run is a child process of the compiled script dist/src/train/child-run.js
// (npm run build:ts builds it; the test builds it when missing).
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { readMetrics } from '../../src/train/runs.js';
import { baseConfig, tmp } from './fixtures.js';

const SCRIPT = join(process.cwd(), 'dist/src/train/child-run.js');

interface Line {
  type: string;
  step?: number;
  loss?: number;
  [k: string]: unknown;
}

function run(args: string[], killAfterCheckpoint = false): Promise<{ lines: Line[]; signal: NodeJS.Signals | null; code: number | null }> {
  return new Promise((res, rej) => {
    const child = spawn(process.execPath, [SCRIPT, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    const lines: Line[] = [];
    let buf = '';
    let err = '';
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.stdout.on('data', (d: Buffer) => {
      buf += d.toString();
      let i;
      while ((i = buf.indexOf('\n')) >= 0) {
        const l = JSON.parse(buf.slice(0, i)) as Line;
        buf = buf.slice(i + 1);
        lines.push(l);
        if (killAfterCheckpoint && l.type === 'checkpoint') child.kill('SIGKILL');
      }
    });
    child.on('error', rej);
    child.on('close', (code, signal) => (code && code !== 0 ? rej(new Error(`child exited ${code}: ${err}`)) : res({ lines, signal, code })));
  });
}

beforeAll(() => {
  if (!existsSync(SCRIPT)) {
    const r = spawnSync('npm', ['run', 'build:ts', '--silent'], { stdio: 'inherit' });
    if (r.status !== 0) throw new Error('npm run build:ts failed');
  }
});

test('SIGKILL after the first checkpoint, then resume: the same losses as the uninterrupted run', async () => {
  const cfg = await baseConfig({ training: { max_steps: 8 }, checkpoint: { every_steps: 3, keep_last: 2 }, eval: { every_steps: 4 } });
  const dir = tmp('sw-kill-');
  const file = join(dir, 'run.json');
  writeFileSync(file, JSON.stringify(cfg));

  const full = await run([file, join(dir, 'full')]);
  const fullLosses = full.lines.filter((l) => l.type === 'step').map((l) => l.loss);
  expect(fullLosses).toHaveLength(8);

  const killed = await run([file, join(dir, 'killed')], true);
  expect(killed.signal).toBe('SIGKILL');
  expect(killed.lines.find((l) => l.type === 'checkpoint')!.step).toBe(3);
  expect(killed.lines.some((l) => l.type === 'done')).toBe(false);

  const resumed = await run(['-', join(dir, 'killed'), '--resume']);
  // the kill lands right after the first checkpoint (step 3); a slow signal could let step 6's be written
  const from = resumed.lines[0].resumedFromStep as number;
  expect(resumed.lines[0].type).toBe('start');
  expect([3, 6]).toContain(from);
  const after = resumed.lines.filter((l) => l.type === 'step');
  expect(after.map((l) => l.step)).toEqual([4, 5, 6, 7, 8].filter((s) => s > from));
  expect(after.map((l) => l.loss)).toEqual(fullLosses.slice(from));
  expect(resumed.lines.at(-1)).toMatchObject({ type: 'done', status: 'completed', steps: 8 });
  // eval losses too, and metrics.jsonl of the resumed run equals the full run's (apart from timings)
  const strip = (d: string) => readMetrics(d).map(({ tokens_per_s: _t, ...r }) => r);
  expect(strip(join(dir, 'killed'))).toEqual(strip(join(dir, 'full')));
});
