// The CLI really started as a process: `starweave-ft demo` fits a LoRA adapter and the loss falls.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { EXPECTED_ABI_VERSION, packageRoot } from '../../bindings/index.js';

const root = packageRoot();
const cli = join(root, 'dist', 'src', 'cli', 'main.js');

describe('starweave-ft CLI', () => {
  beforeAll(() => {
    if (!existsSync(cli)) throw new Error(`${cli} is missing: npm ci (or npm run build:ts) builds it`);
  });

  test('layer-demo fits a LoRA adapter on one layer and the loss falls', () => {
    const r = spawnSync(process.execPath, [cli, 'layer-demo', '--steps', '30'], { encoding: 'utf8' });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    const m = /loss ([0-9.e+-]+) -> ([0-9.e+-]+)/.exec(r.stdout);
    expect(m).not.toBeNull();
    const [first, last] = [Number(m![1]), Number(m![2])];
    expect(last).toBeLessThan(first / 5);
  });

  test('info prints the native core as JSON', () => {
    const r = spawnSync(process.execPath, [cli, 'info'], { encoding: 'utf8' });
    expect(r.status).toBe(0);
    const info = JSON.parse(r.stdout);
    expect(info.abiVersion).toBe(EXPECTED_ABI_VERSION);
    expect(typeof info.isa.active).toBe('string');
  });

  test('an unknown command exits 2 with the usage', () => {
    const r = spawnSync(process.execPath, [cli, 'frobnicate'], { encoding: 'utf8' });
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/unknown command 'frobnicate'/);
    expect(r.stderr).toMatch(/commands:/);
  });
});
