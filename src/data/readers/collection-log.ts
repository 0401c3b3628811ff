// The live collection log as a source: every whole record of every segment, with segment:line. A
// record being written at the end of the last segment (no newline yet, or checksum not matching) is
// not acknowledged yet and is left for the next build; a bad record anywhere else is a reject.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { relPath } from '../io.js';
import { decodeRecordLine, listSegments } from '../collect/log.js';
import type { Candidate, ReadContext, SourceReader } from './types.js';

export class CollectionLogReader implements SourceReader {
  constructor(
    readonly name: string,
    private readonly path: string,
    readonly review: boolean,
  ) {}

  async *read(ctx: ReadContext): AsyncIterable<Candidate> {
    const dir = resolve(ctx.baseDir, this.path);
    const segs = await listSegments(dir);
    for (let s = 0; s < segs.length; s++) {
      const file = join(dir, segs[s]);
      const rel = relPath(ctx.baseDir, file);
      const buf = readFileSync(file);
      const lastSegment = s === segs.length - 1;
      let start = 0;
      let line = 0;
      let whole = 0;
      while (start < buf.length) {
        let nl = buf.indexOf(0x0a, start);
        const torn = nl < 0;
        if (torn) nl = buf.length;
        line++;
        const text = buf.toString('utf8', start, nl);
        const json = torn ? undefined : decodeRecordLine(text);
        const origin = { source: this.name, file: rel, line };
        if (json === undefined) {
          const atEnd = lastSegment && buf.indexOf(0x0a, nl + 1) < 0;
          if (atEnd) break; // an unacknowledged tail still being written (or torn by a crash)
          yield { origin, raw: text, error: { reason: 'parse_error', message: 'collection log record with a bad checksum or no end of line' } };
        } else {
          const o = JSON.parse(json) as { messages: unknown; category?: unknown; metadata?: Record<string, unknown> };
          yield { origin, raw: o, value: { messages: o.messages, category: o.category, metadata: { ...(o.metadata ?? {}) } } };
        }
        start = nl + 1;
        whole = start;
      }
      ctx.input({ file: rel, sha256: createHash('sha256').update(buf.subarray(0, Math.min(whole, buf.length))).digest('hex') });
    }
  }
}
