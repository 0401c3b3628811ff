// The dataset build renders and counts with a model's real tokenizer + chat template when the config
// (tokens.tokenizer) or the CLI (--tokenizer) names a model directory; the version's lineage records it.
import { spawnSync } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { packageRoot } from '../../bindings/index.js';
import { generateTinyModel } from '../../src/model/tiny.js';

const root = packageRoot();
const cli = join(root, 'dist', 'src', 'cli', 'main.js');

test('data build --tokenizer MODEL_DIR counts tokens with the model tokenizer', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'sw-tok-'));
  try {
    cpSync(join(root, 'examples'), join(dir, 'examples'), { recursive: true });
    await generateTinyModel(join(dir, 'model'), 'tiny', 0);
    const run = (extra: string[]) =>
      spawnSync(process.execPath, [cli, 'data', 'build', '--config', 'examples/dataset.json', '--store', 'store', '--json', ...extra], {
        cwd: dir,
        encoding: 'utf8',
      });
    const approx = run([]);
    expect(approx.status).toBe(0);
    const exact = run(['--tokenizer', 'model']);
    expect(exact.stderr).not.toMatch(/Error/);
    expect(exact.status).toBe(0);
    const a = JSON.parse(approx.stdout) as { versionId: string };
    const e = JSON.parse(exact.stdout) as { versionId: string };
    expect(e.versionId).not.toBe(a.versionId); // the tokenizer is part of the version's identity
    const manifest = readFileSync(join(dir, 'store', 'versions', e.versionId, 'manifest.json'), 'utf8');
    expect(manifest).toMatch(/"exact":\s*true/);
    const bad = run(['--tokenizer', 'no-such-model']);
    expect(bad.status).not.toBe(0);
    expect(bad.stderr).toMatch(/no-such-model/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
