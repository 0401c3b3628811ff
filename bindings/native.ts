// Loads the compiled addon (build/Release/starweave_native.node) and checks that it is the build this
// code expects. A missing, stale or incompatible build throws a NativeLoadError that says how to rebuild;
// nothing here can return undefined or segfault.
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { NativeAddon } from './types.js';

/** The ABI this TypeScript code was written against (native/addon/addon.cpp SW_ABI_VERSION). */
export const EXPECTED_ABI_VERSION = 2;

const REBUILD = 'Rebuild it with:  npm run build:native   (needs cmake and a C++17 compiler)';

export class NativeLoadError extends Error {
  readonly code: string;
  constructor(code: string, message: string) {
    super(message);
    this.name = 'NativeLoadError';
    this.code = code;
  }
}

/** The package root: the nearest folder above this file with our package.json. */
export function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const pkg = join(dir, 'package.json');
    if (existsSync(pkg)) {
      try {
        if (JSON.parse(readFileSync(pkg, 'utf8')).name === 'starweave-finetune') return dir;
      } catch {
        // not ours; keep climbing
      }
    }
    const up = dirname(dir);
    if (up === dir) throw new NativeLoadError('ENOPKG', 'cannot find the starweave-finetune package root above ' + fileURLToPath(import.meta.url));
    dir = up;
  }
}

/**
 * Loads the addon of the package at `root` (checking ABI and, where the sources are present, that the
 * build is not stale). STARWEAVE_NATIVE_PATH overrides the file (and skips the staleness check).
 */
export function loadNative(root: string = packageRoot()): NativeAddon {
  const override = process.env.STARWEAVE_NATIVE_PATH;
  const file = override ?? join(root, 'build', 'Release', 'starweave_native.node');
  if (!existsSync(file)) {
    throw new NativeLoadError('ENOTBUILT', `the native addon is not built (no ${file}). ${REBUILD}`);
  }
  const require = createRequire(import.meta.url);
  let addon: NativeAddon;
  try {
    addon = require(file) as NativeAddon;
  } catch (e) {
    throw new NativeLoadError('ELOAD', `the native addon at ${file} failed to load: ${(e as Error).message}. ${REBUILD}`);
  }
  if (typeof addon?.info !== 'function') {
    throw new NativeLoadError('ELOAD', `${file} is not the starweave native addon. ${REBUILD}`);
  }
  const info = addon.info();
  if (info.abiVersion !== EXPECTED_ABI_VERSION) {
    throw new NativeLoadError(
      'EABI',
      `the native addon has ABI ${info.abiVersion} but this code expects ${EXPECTED_ABI_VERSION}. ${REBUILD}`,
    );
  }
  if (process.env.STARWEAVE_SKIP_STALE_CHECK !== '1' && !override) {
    const { nativeSourceHash } = require(join(root, 'scripts', 'native-hash.cjs')) as {
      nativeSourceHash(root: string): string | null;
    };
    const current = nativeSourceHash(root);
    if (current !== null && current !== info.sourceHash) {
      throw new NativeLoadError(
        'ESTALE',
        `the native addon is stale: it was built from sources ${info.sourceHash}, the sources in ${join(root, 'native')} are now ${current}. ${REBUILD}`,
      );
    }
  }
  return addon;
}

let cached: NativeAddon | undefined;

/** The addon, loaded on first use. */
export function native(): NativeAddon {
  cached ??= loadNative();
  return cached;
}
