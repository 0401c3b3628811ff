// Atomic file replacement: write a temp file in the same directory, fsync it, rename it over the target,
// fsync the directory. A reader sees the old file or the new one, never half of one; a crash leaves at
// most a stray `.name.tmp-*` file beside it.
import { closeSync, fsyncSync, openSync, renameSync, rmSync, writeSync } from 'node:fs';
import { open } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { basename, dirname, join } from 'node:path';

export function tempPathFor(path: string): string {
  return join(dirname(path), `.${basename(path)}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`);
}

function fsyncDir(dir: string): void {
  let fd: number | undefined;
  try {
    fd = openSync(dir, 'r');
    fsyncSync(fd);
  } catch {
    // some filesystems refuse fsync on a directory; the rename itself is still atomic
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

// writeSync/FileHandle.write take at most 2 GiB at once; larger views go in pieces
const CHUNK = 1 << 30;

export function writeAllSync(fd: number, bytes: Uint8Array): void {
  for (let off = 0; off < bytes.byteLength; ) {
    const n = writeSync(fd, bytes, off, Math.min(CHUNK, bytes.byteLength - off));
    off += n;
  }
}

export async function writeAll(fh: FileHandle, bytes: Uint8Array): Promise<void> {
  for (let off = 0; off < bytes.byteLength; ) {
    const { bytesWritten } = await fh.write(bytes, off, Math.min(CHUNK, bytes.byteLength - off));
    off += bytesWritten;
  }
}

/** Runs `fill(fd)` on a temp file, then atomically replaces `path` with it. */
export function replaceFileSync(path: string, fill: (fd: number) => void): void {
  const tmp = tempPathFor(path);
  const fd = openSync(tmp, 'wx', 0o644);
  try {
    fill(fd);
    fsyncSync(fd);
  } catch (e) {
    closeSync(fd);
    rmSync(tmp, { force: true });
    throw e;
  }
  closeSync(fd);
  try {
    renameSync(tmp, path);
  } catch (e) {
    rmSync(tmp, { force: true });
    throw e;
  }
  fsyncDir(dirname(path));
}

/** The async form of replaceFileSync: the writes run on the libuv pool, not the event loop. */
export async function replaceFile(path: string, fill: (fh: FileHandle) => Promise<void>): Promise<void> {
  const tmp = tempPathFor(path);
  const fh = await open(tmp, 'wx', 0o644);
  try {
    await fill(fh);
    await fh.sync();
  } catch (e) {
    await fh.close();
    rmSync(tmp, { force: true });
    throw e;
  }
  await fh.close();
  try {
    renameSync(tmp, path);
  } catch (e) {
    rmSync(tmp, { force: true });
    throw e;
  }
  fsyncDir(dirname(path));
}

/** Atomically writes a small text or binary file. */
export function writeFileAtomicSync(path: string, data: string | Uint8Array): void {
  const bytes = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
  replaceFileSync(path, (fd) => writeAllSync(fd, bytes));
}
