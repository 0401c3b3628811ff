// Sweeps: the grid, validation before running, a two-run sweep through the CLI (sweep.json, compare.html).
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gridPoints, parseSetArg, sweepConfigs } from '../../src/eval/sweep.js';
import { runTrainCommand } from '../../src/cli/train.js';
import { baseConfig, tmp } from '../train/fixtures.js';

describe('sweep', () => {
  test('grid points, --set parsing, validation', async () => {
    expect(gridPoints({ a: [1, 2], b: ['x', 'y'] })).toEqual([
      { a: 1, b: 'x' },
      { a: 1, b: 'y' },
      { a: 2, b: 'x' },
      { a: 2, b: 'y' },
    ]);
    expect(() => gridPoints({ a: [] })).toThrow(/no values/);
    expect(parseSetArg('training.lr=1e-3,0.01')).toEqual(['training.lr', [0.001, 0.01]]);
    expect(parseSetArg('lora.target_modules=all-linear')).toEqual(['lora.target_modules', ['all-linear']]);
    expect(() => parseSetArg('nope')).toThrow(/PATH=/);
    const base = await baseConfig();
    const cs = sweepConfigs(base, { 'lora.r': [2, 4] });
    expect(cs.map((c) => c.config.lora.r)).toEqual([2, 4]);
    expect(() => sweepConfigs(base, { 'training.lr': [-1] })).toThrow(/training\.lr/);
    expect(() => sweepConfigs(base, { 'training.bogus': [1] })).toThrow(/bogus/);
  });

  test('a two-run sweep through the CLI', async () => {
    const cfg = await baseConfig({ training: { max_steps: 3 }, eval: { every_steps: 0, metrics: { generate_examples: 1, max_new_tokens: 4 } }, checkpoint: { every_steps: 0 } });
    const file = join(tmp('sw-sweep-cfg-'), 'run.json');
    writeFileSync(file, JSON.stringify(cfg));
    const dir = join(tmp('sw-sweep-'), 's');
    const logs: string[] = [];
    const orig = console.log;
    console.log = (...a: unknown[]) => logs.push(a.join(' '));
    try {
      expect(await runTrainCommand(['sweep', '--config', file, '--set', 'training.lr=0.0001,0.01', '--dir', dir])).toBe(0);
    } finally {
      console.log = orig;
    }
    const s = JSON.parse(readFileSync(join(dir, 'sweep.json'), 'utf8'));
    expect(s.runs.map((r: { params: unknown; status: string }) => [r.params, r.status])).toEqual([
      [{ 'training.lr': 0.0001 }, 'completed'],
      [{ 'training.lr': 0.01 }, 'completed'],
    ]);
    // the larger learning rate gets the lower held-out loss in 3 steps
    expect(s.best).toBe(1);
    expect(s.runs[1].bestEvalLoss).toBeLessThan(s.runs[0].bestEvalLoss);
    expect(s.runs[0].gatePassed).toBe(true);
    expect(existsSync(join(dir, 'compare.html'))).toBe(true);
    expect(existsSync(join(dir, 'run-001', 'report.html'))).toBe(true);
    expect(logs.some((l) => l.includes('<- best'))).toBe(true);
    const origErr = console.error;
    console.error = () => undefined;
    try {
      expect(await runTrainCommand(['sweep', '--config', file])).toBe(2);
    } finally {
      console.error = origErr;
    }
  });
});
