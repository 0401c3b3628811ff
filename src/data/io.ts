// File plumbing: streaming line reads with line numbers, buffered JSONL writers, atomic writes.
import { promises as fsp, openSync, writeSync, fsyncSync, closeSync, renameSync } from 'node:fs';
import type { Hash } from 'node:crypto';
import { dirname, join, relative, extname } from 'node:path';

/** Lines of a UTF-8 text file, 1-based line numbers, streamed (memory stays flat in the file size). */
export async function* readLines(file: string): AsyncGenerator<{ line: number; text: string }> {
  let line = 0;
  for await (const batch of readLineBatches(file)) for (const text of batch) yield { line: ++line, text };
}

/**
 * The lines of a UTF-8 text file, a batch per block read (1 MiB), split as node:readline splits them
 * with crlfDelay: Infinity: at \n, \r\n and a lone \r; a last line without a line end counts, an empty
 * one after the last line end does not; nothing is stripped (a BOM stays). `onBytes` sees every byte of
 * the file once, in order (for its hash). Splitting bytes before decoding each line is several times
 * faster than readline over a decoded stream.
 */
export async function* readLineBatches(file: string, onBytes?: (b: Uint8Array) => void, blockSize = 1 << 20): AsyncGenerator<string[]> {
  const fh = await fsp.open(file, 'r');
  try {
    let buf = Buffer.allocUnsafe(blockSize);
    let have = 0; // bytes of an unfinished line at the front of buf
    for (;;) {
      if (have === buf.length) {
        const g = Buffer.allocUnsafe(buf.length * 2);
        buf.copy(g, 0, 0, have);
        buf = g;
      }
      const { bytesRead } = await fh.read(buf, have, buf.length - have, null);
      const eof = bytesRead === 0;
      if (!eof) onBytes?.(buf.subarray(have, have + bytesRead));
      const end = have + bytesRead;
      const data = buf.subarray(0, end);
      const lines: string[] = [];
      let pos = 0;
      let cr = data.indexOf(13);
      for (;;) {
        if (cr >= 0 && cr < pos) cr = data.indexOf(13, pos);
        const nl = data.indexOf(10, pos);
        let e: number;
        let next: number;
        if (cr >= 0 && (nl < 0 || cr < nl)) {
          if (cr + 1 < end) {
            e = cr;
            next = data[cr + 1] === 10 ? cr + 2 : cr + 1;
          } else if (eof) {
            e = cr;
            next = cr + 1;
          } else break; // a \r at the end of what was read: is a \n next?
        } else if (nl >= 0) {
          e = nl;
          next = nl + 1;
        } else break;
        lines.push(buf.toString('utf8', pos, e));
        pos = next;
      }
      if (eof) {
        if (pos < end) lines.push(buf.toString('utf8', pos, end));
        if (lines.length) yield lines;
        return;
      }
      buf.copy(buf, 0, pos, end);
      have = end - pos;
      if (lines.length) yield lines;
    }
  } finally {
    await fh.close();
  }
}

/** Files under `path` (itself if a file) whose extension is one of `exts`, sorted, recursively. */
export async function listFiles(path: string, exts: readonly string[]): Promise<string[]> {
  const st = await fsp.stat(path);
  if (st.isFile()) return [path];
  const out: string[] = [];
  const walk = async (dir: string) => {
    const entries = await fsp.readdir(dir, { withFileTypes: true });
    entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    for (const e of entries) {
      if (e.name.startsWith('.')) continue;
      const p = join(dir, e.name);
      if (e.isDirectory()) await walk(p);
      else if (e.isFile() && exts.includes(extname(e.name).toLowerCase())) out.push(p);
    }
  };
  await walk(path);
  return out;
}

/** `file` relative to `base`, with forward slashes (what records and manifests carry). */
export function relPath(base: string, file: string): string {
  return relative(base, file).split('\\').join('/') || '.';
}

/**
 * Writes lines to a file through a large buffer with synchronous writes (no backpressure bookkeeping,
 * and no unbounded queue: a full buffer is written out at once). Strings are encoded straight into the
 * buffer. With `hash`, every byte written also goes into it (the file's digest without reading it back).
 * close() fsyncs (unless `durable` is false).
 */
export class LineWriter {
  private fd: number;
  private buf: Buffer;
  private off = 0;
  bytes = 0;
  lines = 0;

  constructor(
    readonly file: string,
    flushAt = 1 << 20,
    private readonly hash?: Hash,
    /** fsync on close (false for scratch files that are deleted after the build) */
    private readonly durable = true,
  ) {
    this.fd = openSync(file, 'w');
    this.buf = Buffer.allocUnsafe(Math.max(flushAt, 64));
  }

  write(line: string): void {
    this.lines++;
    // at most 3 bytes per UTF-16 code unit
    const worst = line.length * 3 + 1;
    if (this.off + worst > this.buf.length) {
      this.flush();
      if (worst > this.buf.length) {
        this.out(Buffer.from(`${line}\n`, 'utf8'));
        return;
      }
    }
    this.off += this.buf.write(line, this.off, 'utf8');
    this.buf[this.off++] = 10;
  }

  /** Writes bytes as they are (a whole line with its newline, counted as one line). */
  writeBytes(src: Uint8Array, start: number, end: number): void {
    this.lines++;
    const n = end - start;
    if (this.off + n > this.buf.length) {
      this.flush();
      if (n > this.buf.length) {
        this.out(src.subarray(start, end));
        return;
      }
    }
    this.buf.set(src.subarray(start, end), this.off);
    this.off += n;
  }

  flush(): void {
    if (this.off === 0) return;
    this.out(this.buf.subarray(0, this.off));
    this.off = 0;
  }

  private out(b: Uint8Array): void {
    let off = 0;
    while (off < b.length) off += writeSync(this.fd, b, off, b.length - off);
    this.hash?.update(b);
    this.bytes += b.length;
  }

  close(): void {
    this.flush();
    if (this.durable) fsyncSync(this.fd);
    closeSync(this.fd);
  }
}

/** fsync a directory so that a rename or a new file in it survives a crash. */
export function fsyncDir(dir: string): void {
  try {
    const fd = openSync(dir, 'r');
    try {
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
  } catch {
    // some platforms (Windows) cannot open a directory; the rename is still atomic there
  }
}

/** Writes `data` to `file` atomically: a temp file beside it, fsync, rename, fsync of the folder. */
export function writeFileAtomic(file: string, data: string | Uint8Array): void {
  const tmp = `${file}.tmp-${process.pid}-${Math.random().toString(36).slice(2, 10)}`;
  const fd = openSync(tmp, 'w');
  try {
    const buf = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
    let off = 0;
    while (off < buf.length) off += writeSync(fd, buf, off, buf.length - off);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, file);
  fsyncDir(dirname(file));
}
