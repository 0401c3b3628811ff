#!/usr/bin/env node
// Builds the native addon with cmake-js (Release). Runs on `npm install` / `npm ci` and from
// `npm run build:native`. Checks the toolchain first so that a missing compiler or cmake gives an
// error that says what to install, and stamps the build with a hash of native/ so that the bindings
// can tell a stale build from a current one.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';
const { nativeSourceHash } = createRequire(import.meta.url)('./native-hash.cjs');

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const force = process.argv.includes('--force');
const debug = process.argv.includes('--debug');

function have(cmd, args = ['--version']) {
  const r = spawnSync(cmd, args, { stdio: 'ignore' });
  return r.status === 0;
}

function fail(msg) {
  console.error(`\nstarweave-finetune: cannot build the native addon.\n${msg}\n`);
  process.exit(1);
}

const missing = [];
if (!have('cmake')) missing.push('cmake (>= 3.18)');
const cxx = process.env.CXX || 'c++';
if (!have(cxx) && !have('g++') && !have('clang++')) missing.push('a C++17 compiler (g++ or clang++)');
if (!have('make') && !have('ninja')) missing.push('make (or ninja)');
if (missing.length) {
  fail(
    `Missing: ${missing.join(', ')}.\n` +
      `Install them, e.g. on Debian/Ubuntu:  sudo apt-get install -y cmake g++ make\n` +
      `on Fedora:  sudo dnf install -y cmake gcc-c++ make     on macOS:  xcode-select --install && brew install cmake\n` +
      `then run:  npm run build:native`,
  );
}

const hash = nativeSourceHash(root);
const out = join(root, 'build', debug ? 'Debug' : 'Release');
const stamp = join(root, 'build', 'source-hash.txt');
if (!force && existsSync(join(out, 'starweave_native.node')) && existsSync(stamp)) {
  if (readFileSync(stamp, 'utf8').trim() === hash) {
    console.log('starweave-finetune: native addon is up to date');
    process.exit(0);
  }
}

const cmakeJs = join(dirname(fileURLToPath(import.meta.resolve('cmake-js/package.json'))), 'bin', 'cmake-js');
const generated = join(root, 'build', 'generated');
mkdirSync(generated, { recursive: true });
const hashHeader = join(generated, 'sw_source_hash.h');
const header = `#define SW_SOURCE_HASH "${hash}"\n`;
if (!existsSync(hashHeader) || readFileSync(hashHeader, 'utf8') !== header) writeFileSync(hashHeader, header);
const args = [cmakeJs, 'compile', '--directory', root, '--out', join(root, 'build')];
if (debug) args.push('--debug');
const jobs = process.env.CMAKE_BUILD_PARALLEL_LEVEL || String(Math.max(1, (await import('node:os')).availableParallelism()));
const r = spawnSync(process.execPath, args, {
  cwd: root,
  stdio: 'inherit',
  env: { ...process.env, CMAKE_BUILD_PARALLEL_LEVEL: jobs },
});
if (r.status !== 0) fail('cmake-js failed (see the compiler output above). Fix the error and run:  npm run build:native');
mkdirSync(join(root, 'build'), { recursive: true });
writeFileSync(stamp, hash + '\n');
console.log(`starweave-finetune: native addon built (${out})`);
