// The README's main job, really started: `starweave-ft train --config examples/run.json` builds the
// shipped corpus into a dataset version, generates the tiny model, trains a LoRA adapter and writes the
// run. The bin is executed directly (shebang + executable bit), as `npx starweave-ft` does.
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { packageRoot } from '../../bindings/index.js';

const root = packageRoot();

test('starweave-ft train --config examples/run.json trains on the embedded default', () => {
  const dir = mkdtempSync(join(tmpdir(), 'sw-main-'));
  try {
    cpSync(join(root, 'examples'), join(dir, 'examples'), { recursive: true });
    const r = spawnSync(join(root, 'dist', 'src', 'cli', 'main.js'), ['train', '--config', 'examples/run.json'], {
      cwd: dir,
      encoding: 'utf8',
      timeout: 240_000,
    });
    expect(r.error).toBeUndefined();
    expect(r.status).toBe(0);
    const runs = readdirSync(join(dir, '.starweave', 'runs'));
    expect(runs).toHaveLength(1);
    const run = join(dir, '.starweave', 'runs', runs[0]);
    expect(existsSync(join(run, 'adapter', 'adapter_model.safetensors'))).toBe(true);
    expect(existsSync(join(run, 'adapter', 'adapter_config.json'))).toBe(true);
    const evals = readFileSync(join(run, 'metrics.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>)
      .filter((m) => typeof m.eval_loss === 'number')
      .map((m) => m.eval_loss as number);
    expect(evals.length).toBeGreaterThan(2);
    expect(Math.min(...evals.slice(1))).toBeLessThan(evals[0]); // held-out loss falls
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
