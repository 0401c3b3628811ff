// scripts/build-native.mjs (npm install's build step) on a machine without cmake or a compiler: it stops
// before building, says what is missing and how to install it, and exits non-zero.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { packageRoot } from '../../bindings/index.js';

test('a missing cmake and compiler are named, with the command that installs them', () => {
  const bin = mkdtempSync(join(tmpdir(), 'sw-nobin-'));
  try {
    symlinkSync(process.execPath, join(bin, 'node')); // only node on the PATH
    const r = spawnSync(process.execPath, [join(packageRoot(), 'scripts', 'build-native.mjs'), '--force'], {
      encoding: 'utf8',
      env: { PATH: bin, HOME: process.env.HOME ?? '/tmp' },
    });
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/cannot build the native addon/);
    expect(r.stderr).toMatch(/Missing: cmake/);
    expect(r.stderr).toMatch(/C\+\+17 compiler/);
    expect(r.stderr).toMatch(/apt-get install -y cmake g\+\+ make/);
    expect(r.stderr).toMatch(/npm run build:native/);
  } finally {
    rmSync(bin, { recursive: true, force: true });
  }
});
