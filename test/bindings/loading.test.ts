// The addon loader: a missing, stale or foreign build gives a NativeLoadError that says how to rebuild.
import { copyFileSync, cpSync, mkdirSync, mkdtempSync, rmSync, writeFileSync, appendFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EXPECTED_ABI_VERSION, loadNative, NativeLoadError, nativeInfo, packageRoot } from '../../bindings/index.js';

const root = packageRoot();

function fakePackage(): string {
  const dir = mkdtempSync(join(tmpdir(), 'sw-load-'));
  writeFileSync(join(dir, 'package.json'), JSON.stringify({ name: 'starweave-finetune' }));
  mkdirSync(join(dir, 'scripts'));
  copyFileSync(join(root, 'scripts', 'native-hash.cjs'), join(dir, 'scripts', 'native-hash.cjs'));
  cpSync(join(root, 'native'), join(dir, 'native'), { recursive: true });
  copyFileSync(join(root, 'CMakeLists.txt'), join(dir, 'CMakeLists.txt'));
  return dir;
}

function expectLoadError(fn: () => unknown, code: string, text: RegExp): void {
  let err: unknown;
  try {
    fn();
  } catch (e) {
    err = e;
  }
  expect(err).toBeInstanceOf(NativeLoadError);
  expect((err as NativeLoadError).code).toBe(code);
  expect((err as Error).message).toMatch(text);
  expect((err as Error).message).toMatch(/npm run build:native/);
}

describe('native addon loading', () => {
  const dirs: string[] = [];
  afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

  test('the built addon loads and reports its ABI and ISA', () => {
    const info = nativeInfo();
    expect(info.abiVersion).toBe(EXPECTED_ABI_VERSION);
    expect(['scalar', 'avx2', 'avx512']).toContain(info.isa.active);
    expect(info.threads).toBeGreaterThanOrEqual(1);
    expect(info.sourceHash).toMatch(/^[0-9a-f]{16}$/);
  });

  test('a missing build says it is not built and how to build it', () => {
    const dir = fakePackage();
    dirs.push(dir);
    expectLoadError(() => loadNative(dir), 'ENOTBUILT', /not built/);
  });

  test('a build older than the sources is refused as stale', () => {
    const dir = fakePackage();
    dirs.push(dir);
    mkdirSync(join(dir, 'build', 'Release'), { recursive: true });
    copyFileSync(join(root, 'build', 'Release', 'starweave_native.node'), join(dir, 'build', 'Release', 'starweave_native.node'));
    // the copy is current: it loads
    expect(loadNative(dir).info().abiVersion).toBe(EXPECTED_ABI_VERSION);
    // now edit a source file: the same binary is stale
    appendFileSync(join(dir, 'native', 'cpu', 'kernels.h'), '\n// edited\n');
    expectLoadError(() => loadNative(dir), 'ESTALE', /stale/);
  });

  test('a file that is not the addon is refused', () => {
    const dir = fakePackage();
    dirs.push(dir);
    mkdirSync(join(dir, 'build', 'Release'), { recursive: true });
    writeFileSync(join(dir, 'build', 'Release', 'starweave_native.node'), 'not a shared object');
    expectLoadError(() => loadNative(dir), 'ELOAD', /failed to load/);
  });
});
