// The training progress line: redrawn in place on a terminal (\r + erase), one line per step elsewhere;
// other output never lands inside the bar. The real CLI is run under a pseudo-terminal (util-linux
// `script`) and through a pipe.
import { execFile } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { formatDuration, ProgressLine } from '../../src/cli/progress.js';
import type { StepEvent } from '../../src/train/runner.js';
import { baseConfig, tmp } from '../train/fixtures.js';

const run = promisify(execFile);

class Sink {
  chunks: string[] = [];
  constructor(
    readonly isTTY: boolean,
    readonly columns = 200,
  ) {}
  write(s: string) {
    this.chunks.push(s);
    return true;
  }
  get text() {
    return this.chunks.join('');
  }
}

const step = (n: number, total = 10): StepEvent => ({ type: 'step', step: n, totalSteps: total, epoch: 0, loss: 2.5 - n * 0.1, lr: 1e-3, gradNorm: 0.5, tokens: 100, tokensPerSec: 1234.4, skipped: false });

describe('progress line', () => {
  test('on a terminal: one line redrawn with \\r and erase, bar, step/total, loss, lr, tokens/s, ETA', () => {
    const out = new Sink(true);
    let t = 100;
    const p = new ProgressLine(out, { now: () => t });
    for (let i = 1; i <= 4; i++) {
      p.step(step(i));
      t += 2; // 2 s per step
    }
    p.end();
    expect(out.text.split('\n')).toHaveLength(2); // one line, then the final newline
    expect(out.chunks.slice(0, 4).every((c) => c.startsWith('\r') && c.endsWith('\x1b[K'))).toBe(true);
    const last = out.chunks[3];
    expect(last).toContain('[########------------] step 4/10 loss 2.1000 lr 1.00e-3');
    expect(last).toContain('1234 tok/s');
    // 3 steps took 6 s after the first: 2 s/step, 6 steps left
    expect(last).toMatch(/ETA 12s/);
    expect(out.chunks[0]).toMatch(/ETA \?/);
  });

  test('log() clears the bar, writes the line, redraws the bar', () => {
    const out = new Sink(true);
    const other = new Sink(false);
    const p = new ProgressLine(out, { now: () => 0 });
    p.step(step(1));
    p.log('eval @1: held-out loss 2.0', other);
    expect(out.chunks.slice(1)).toEqual(['\r\x1b[K', out.chunks[0].slice(1, -3)]);
    expect(other.text).toBe('eval @1: held-out loss 2.0\n');
  });

  test('not a terminal: one plain line per step, no control characters', () => {
    const out = new Sink(false);
    let t = 0;
    const p = new ProgressLine(out, { now: () => t });
    for (let i = 1; i <= 3; i++) {
      p.step(step(i, 3));
      t += 1;
    }
    p.end();
    const lines = out.text.trimEnd().split('\n');
    expect(lines).toHaveLength(3);
    expect(out.text).not.toMatch(/[\r\x1b]/);
    expect(lines[2]).toMatch(/^step 3\/3 loss 2\.2000 .* ETA 0s$/);
  });

  test('durations and a narrow terminal', () => {
    expect([formatDuration(5), formatDuration(125), formatDuration(3725), formatDuration(NaN)]).toEqual(['5s', '2m05s', '1h02m', '?']);
    const out = new Sink(true, 40);
    new ProgressLine(out).step(step(1));
    expect(out.chunks[0].length).toBeLessThanOrEqual(1 + 39 + 3);
  });

  const script = '/usr/bin/script';
  test('the train command under a pseudo-terminal redraws, through a pipe prints lines', async () => {
    const c = await baseConfig({ training: { max_steps: 4 }, eval: { every_steps: 2 }, checkpoint: { every_steps: 0 } });
    const file = join(tmp(), 'run.json');
    writeFileSync(file, JSON.stringify(c));
    const main = join(process.cwd(), 'dist', 'src', 'cli', 'main.js');
    const piped = await run(process.execPath, [main, 'train', '--config', file, '--run-dir', join(tmp(), 'r')]);
    expect(piped.stderr.trimEnd().split('\n').filter((l) => /^step \d+\/4 /.test(l))).toHaveLength(4);
    expect(piped.stderr).not.toContain('\r');
    const tty = await run(script, ['-qec', `${process.execPath} ${main} train --config ${file} --run-dir ${join(tmp(), 'r')}`, '/dev/null']);
    const text = tty.stdout;
    expect((text.match(/\r\[[#-]{20}\] step \d\/4 /g) ?? []).length).toBe(4);
    expect(text).toContain('\x1b[K');
    expect(text).toMatch(/eval @2: held-out loss/);
    expect(text).toMatch(/completed after 4 steps/);
  }, 60_000);
});
