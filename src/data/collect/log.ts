// The live collection log: an append-only interaction log that a running STARWEAVE node feeds as
// conversations happen. Records are checked, batched (group commit), written and fsync'd before their
// append() promise resolves: an acknowledged record is on disk. Segments rotate by size. After a crash,
// open() cuts a torn tail of the last segment at the last whole record.
//
// On disk: <dir>/seg-000001.log, seg-000002.log, ...; one record per line: `<crc32 hex8> <json>\n`
// (JSON.stringify never emits a raw newline, so a line is a record, and a record without its newline
// or with a wrong checksum is torn).
import { promises as fsp, openSync, readSync, fstatSync, closeSync, ftruncateSync, fsyncSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { DataError, describeZodError } from '../errors.js';
import { crc32 } from '../hash.js';
import { fsyncDir } from '../io.js';
import { Category, Message } from '../schema.js';

/** What a node logs: a conversation, its category when known, and free metadata. */
export const LoggedInteraction = z.strictObject({
  messages: z.array(Message).min(2),
  category: Category.optional(),
  metadata: z.record(z.string(), z.unknown()).optional(),
});
export type LoggedInteraction = z.infer<typeof LoggedInteraction>;

export interface CollectionLogOptions {
  /** rotate to a new segment when the current one would pass this size (bytes) */
  segmentBytes?: number;
  /** write a batch at once when this many records wait */
  maxBatch?: number;
  /** otherwise write after this delay from the first waiting record (ms) */
  maxDelayMs?: number;
}

export interface Ack {
  segment: string;
  line: number;
}

export interface Recovery {
  segment: string;
  /** bytes cut from the segment's end (0: it ended on a whole record) */
  cutBytes: number;
  /** whole records kept in that segment */
  records: number;
}

const SEGMENT_RE = /^seg-(\d{6,})\.log$/;
export const segmentName = (n: number) => `seg-${String(n).padStart(6, '0')}.log`;

export async function listSegments(dir: string): Promise<string[]> {
  const names = await fsp.readdir(dir).catch((e: NodeJS.ErrnoException) => {
    if (e.code === 'ENOENT') return [] as string[];
    throw e;
  });
  return names.filter((n) => SEGMENT_RE.test(n)).sort();
}

export function encodeRecord(value: unknown): string {
  const json = JSON.stringify(value);
  return `${crc32(Buffer.from(json, 'utf8')).toString(16).padStart(8, '0')} ${json}\n`;
}

/** The JSON text of a record line, or undefined when the line is not a whole record (bad checksum). */
export function decodeRecordLine(line: string): string | undefined {
  if (line.length < 10 || line[8] !== ' ') return undefined;
  const crc = Number.parseInt(line.slice(0, 8), 16);
  const json = line.slice(9);
  if (!Number.isFinite(crc) || crc32(Buffer.from(json, 'utf8')) !== crc) return undefined;
  return json;
}

/** Scans a segment: the byte length of its whole-record prefix and the number of records in it. */
function scanSegment(file: string): { valid: number; size: number; records: number } {
  const fd = openSync(file, 'r');
  try {
    const size = fstatSync(fd).size;
    const buf = Buffer.alloc(size);
    let off = 0;
    while (off < size) {
      const n = readSync(fd, buf, off, size - off, off);
      if (n === 0) break;
      off += n;
    }
    // the torn part is at the end: walk whole lines from the start, stop at the first bad one
    let valid = 0;
    let records = 0;
    let start = 0;
    while (start < size) {
      const nl = buf.indexOf(0x0a, start);
      if (nl < 0) break;
      if (decodeRecordLine(buf.toString('utf8', start, nl)) === undefined) break;
      records++;
      start = nl + 1;
      valid = start;
    }
    return { valid, size, records };
  } finally {
    closeSync(fd);
  }
}

interface Pending {
  line: string;
  resolve: (a: Ack) => void;
  reject: (e: Error) => void;
}

export class CollectionLog {
  private fh!: fsp.FileHandle;
  private segNo = 0;
  private segBytes = 0;
  private segLines = 0;
  private queue: Pending[] = [];
  private timer: NodeJS.Timeout | undefined;
  private writing: Promise<void> = Promise.resolve();
  private closed = false;
  private failed: Error | undefined;
  /** what open() found and cut, for the operator's log */
  recovery: Recovery | undefined;

  private constructor(
    readonly dir: string,
    private readonly opts: Required<CollectionLogOptions>,
  ) {}

  static async open(dir: string, options: CollectionLogOptions = {}): Promise<CollectionLog> {
    const log = new CollectionLog(dir, { segmentBytes: 16 << 20, maxBatch: 512, maxDelayMs: 2, ...options });
    await fsp.mkdir(dir, { recursive: true });
    const segs = await listSegments(dir);
    if (segs.length) {
      const last = segs[segs.length - 1];
      const file = join(dir, last);
      const s = scanSegment(file);
      if (s.valid < s.size) {
        const fd = openSync(file, 'r+');
        try {
          ftruncateSync(fd, s.valid);
          fsyncSync(fd);
        } finally {
          closeSync(fd);
        }
      }
      log.recovery = { segment: last, cutBytes: s.size - s.valid, records: s.records };
      log.segNo = Number(SEGMENT_RE.exec(last)![1]);
      log.segBytes = s.valid;
      log.segLines = s.records;
      log.fh = await fsp.open(file, 'a');
    } else {
      log.segNo = 1;
      log.fh = await fsp.open(join(dir, segmentName(1)), 'a');
      fsyncDir(dir);
    }
    return log;
  }

  /** Checks and queues one interaction; resolves once it is written and fsync'd (acknowledged). */
  append(interaction: unknown): Promise<Ack> {
    if (this.closed) return Promise.reject(new DataError('the collection log is closed', { file: this.dir }));
    if (this.failed) return Promise.reject(this.failed);
    const r = LoggedInteraction.safeParse(interaction);
    if (!r.success) {
      const d = describeZodError(r.error);
      return Promise.reject(new DataError(`invalid interaction: ${d.message}`, { file: this.dir, path: d.path }));
    }
    return new Promise<Ack>((resolve, reject) => {
      this.queue.push({ line: encodeRecord(r.data), resolve, reject });
      if (this.queue.length >= this.opts.maxBatch) this.kick();
      else if (!this.timer) this.timer = setTimeout(() => this.kick(), this.opts.maxDelayMs);
    });
  }

  /** Writes everything queued so far (awaits the fsync). */
  flush(): Promise<void> {
    this.kick();
    return this.writing;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    await this.flush();
    this.closed = true;
    await this.fh.close();
  }

  private kick(): void {
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
    if (!this.queue.length) return;
    const batch = this.queue;
    this.queue = [];
    this.writing = this.writing.then(() => this.writeBatch(batch));
  }

  private async writeBatch(batch: Pending[]): Promise<void> {
    try {
      if (this.failed) throw this.failed;
      const acks: Ack[] = [];
      let parts: string[] = [];
      let bytes = 0;
      const commit = async () => {
        if (!parts.length) return;
        const buf = Buffer.from(parts.join(''), 'utf8');
        let off = 0;
        while (off < buf.length) off += (await this.fh.write(buf, off, buf.length - off)).bytesWritten;
        this.segBytes += buf.length;
        parts = [];
        bytes = 0;
      };
      for (const p of batch) {
        const len = Buffer.byteLength(p.line);
        if (this.segBytes + bytes > 0 && this.segBytes + bytes + len > this.opts.segmentBytes) {
          await commit();
          await this.fh.sync();
          await this.fh.close();
          this.segNo++;
          this.segBytes = 0;
          this.segLines = 0;
          this.fh = await fsp.open(join(this.dir, segmentName(this.segNo)), 'a');
          fsyncDir(this.dir);
        }
        parts.push(p.line);
        bytes += len;
        acks.push({ segment: segmentName(this.segNo), line: ++this.segLines });
      }
      await commit();
      await this.fh.sync();
      batch.forEach((p, i) => p.resolve(acks[i]));
    } catch (e) {
      // a failed write leaves the file in an unknown state: refuse further appends, the node restarts us
      this.failed = e instanceof Error ? e : new Error(String(e));
      for (const p of batch) p.reject(this.failed);
    }
  }
}
