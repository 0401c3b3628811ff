// Hash of the native sources (native/**, CMakeLists.txt). The build stamps it into the addon
// (scripts/build-native.mjs) and the bindings compare it at load time to detect a stale build.
// CommonJS so that both the build script and the bindings load this one copy synchronously.
'use strict';
const { createHash } = require('node:crypto');
const { existsSync, readdirSync, readFileSync, statSync } = require('node:fs');
const { join, relative } = require('node:path');

function nativeSourceFiles(root) {
  const files = [];
  const walk = (dir) => {
    for (const name of readdirSync(dir).sort()) {
      const p = join(dir, name);
      if (statSync(p).isDirectory()) walk(p);
      else if (/\.(h|hpp|c|cc|cpp|cu|cuh|inc)$/.test(name)) files.push(p);
    }
  };
  if (existsSync(join(root, 'native'))) walk(join(root, 'native'));
  if (existsSync(join(root, 'CMakeLists.txt'))) files.push(join(root, 'CMakeLists.txt'));
  return files;
}

/** @returns {string | null} 16 hex digits, or null when the sources are not there (a binary-only install) */
function nativeSourceHash(root) {
  const files = nativeSourceFiles(root);
  if (files.length === 0) return null;
  const h = createHash('sha256');
  for (const f of files) {
    h.update(relative(root, f).split('\\').join('/'));
    h.update('\0');
    h.update(readFileSync(f));
    h.update('\0');
  }
  return h.digest('hex').slice(0, 16);
}

module.exports = { nativeSourceHash };
