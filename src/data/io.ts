// File plumbing: streaming line reads with line numbers, buffered JSONL writers, atomic writes.
import { createReadStream, promises as fsp, openSync, writeSync, fsyncSync, closeSync, renameSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { dirname, join, relative, extname } from 'node:path';

/** Lines of a UTF-8 text file, 1-based line numbers, streamed (memory stays flat in the file size). */
export async function* readLines(file: string): AsyncGenerator<{ line: number; text: string }> {
  const rl = createInterface({ input: createReadStream(file, { encoding: 'utf8', highWaterMark: 1 << 20 }), crlfDelay: Infinity });
  let line = 0;
  for await (const text of rl) {
    line++;
    yield { line, text };
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
 * and no unbounded queue: a full buffer is written out at once). close() fsyncs.
 */
export class LineWriter {
  private fd: number;
  private chunks: string[] = [];
  private size = 0;
  bytes = 0;
  lines = 0;

  constructor(
    readonly file: string,
    private readonly flushAt = 1 << 20,
  ) {
    this.fd = openSync(file, 'w');
  }

  write(line: string): void {
    this.chunks.push(line, '\n');
    this.size += line.length + 1;
    this.lines++;
    if (this.size >= this.flushAt) this.flush();
  }

  flush(): void {
    if (!this.chunks.length) return;
    const buf = Buffer.from(this.chunks.join(''), 'utf8');
    let off = 0;
    while (off < buf.length) off += writeSync(this.fd, buf, off, buf.length - off);
    this.bytes += buf.length;
    this.chunks = [];
    this.size = 0;
  }

  close(): void {
    this.flush();
    fsyncSync(this.fd);
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
