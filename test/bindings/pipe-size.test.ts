// setPipeSize: a real pipe (a FIFO opened read-write) gets the capacity asked for; a descriptor that is
// not a pipe is refused with the errno text naming the call; bad arguments are range errors.
import { spawnSync } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setPipeSize } from '../../bindings/index.js';

const linux = process.platform === 'linux';

(linux ? test : test.skip)('a pipe takes the capacity asked for; a regular file is refused', () => {
  const dir = mkdtempSync(join(tmpdir(), 'sw-pipe-'));
  try {
    const fifo = join(dir, 'fifo');
    expect(spawnSync('mkfifo', [fifo]).status).toBe(0);
    const fd = openSync(fifo, 'r+');
    try {
      expect(setPipeSize(fd, 1 << 20)).toBe(1 << 20);
      expect(setPipeSize(fd, 65536)).toBe(65536);
      expect(setPipeSize(fd, 5000)).toBe(8192);  // rounded up to whole pages, a power of two
    } finally {
      closeSync(fd);
    }
    writeFileSync(join(dir, 'file'), 'x');
    const f = openSync(join(dir, 'file'), 'r');
    try {
      expect(() => setPipeSize(f, 1 << 20)).toThrow(new RegExp(`setPipeSize: fcntl\\(${f}, F_SETPIPE_SZ, 1048576\\): Bad file descriptor`));
    } finally {
      closeSync(f);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('bad arguments are range errors', () => {
  expect(() => setPipeSize(-1, 1 << 20)).toThrow(/argument 'fd' must be a file descriptor/);
  expect(() => setPipeSize(3, 100)).toThrow(/argument 'bytes' must be in \[4096, 2\^30\], got 100/);
});
