// The README's main job, really started: `starweave-ft demo` builds the shipped corpus into a dataset
// version, generates the tiny model, trains a LoRA adapter, evaluates base vs tuned and writes the
// report, all under ./.starweave of the working directory. The bin is executed directly (shebang +
// executable bit), as `npx starweave-ft` does.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { packageRoot } from '../../bindings/index.js';

const root = packageRoot();

test('starweave-ft demo runs the whole pipeline on the embedded default', () => {
  const dir = mkdtempSync(join(tmpdir(), 'sw-main-'));
  try {
    const r = spawnSync(join(root, 'dist', 'src', 'cli', 'main.js'), ['demo'], { cwd: dir, encoding: 'utf8', timeout: 240_000 });
    expect(r.error).toBeUndefined();
    expect(r.status).toBe(0);
    const runs = readdirSync(join(dir, '.starweave', 'runs'));
    expect(runs).toHaveLength(1);
    const run = join(dir, '.starweave', 'runs', runs[0]);
    for (const f of ['adapter/adapter_model.safetensors', 'adapter/adapter_config.json', 'report.html', 'eval.json', 'metrics.jsonl']) {
      expect(existsSync(join(run, f))).toBe(true);
    }
    const evals = readFileSync(join(run, 'metrics.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>)
      .filter((m) => typeof m.eval_loss === 'number')
      .map((m) => m.eval_loss as number);
    expect(evals.length).toBeGreaterThan(2);
    expect(evals[evals.length - 1]).toBeLessThan(evals[0] - 0.05); // held-out loss clearly lower than before training
    const report = JSON.parse(readFileSync(join(run, 'eval.json'), 'utf8')) as Record<string, any>;
    expect(report.base).toBeTruthy(); // base vs tuned side by side
    expect(report.tuned ?? report.metrics).toBeTruthy();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
