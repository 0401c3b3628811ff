// Manual curation: a JSONL file of decisions keyed by record hash (the hash of the cleaned record
// before curation): approve, reject with a reason, or a corrected version of the record. The build
// applies the latest decision per hash; the file's hash is part of the dataset's lineage.
import { existsSync, readFileSync } from 'node:fs';
import { z } from 'zod';
import { DataError, describeZodError } from './errors.js';
import { sha256 } from './hash.js';
import { writeFileAtomic } from './io.js';
import { Category, Message } from './schema.js';

const Common = { hash: z.string().regex(/^[0-9a-f]{64}$/, 'a record hash: 64 hex digits'), by: z.string().optional(), at: z.string().optional(), note: z.string().optional() };

export const CurationDecision = z.discriminatedUnion('decision', [
  z.strictObject({ ...Common, decision: z.literal('approve') }),
  z.strictObject({ ...Common, decision: z.literal('reject'), reason: z.string().min(1, 'a rejection needs a reason') }),
  z.strictObject({
    ...Common,
    decision: z.literal('correct'),
    record: z.strictObject({ messages: z.array(Message).min(2), category: Category, metadata: z.record(z.string(), z.unknown()).optional() }),
  }),
]);
export type CurationDecision = z.infer<typeof CurationDecision>;

export interface Curation {
  file: string | undefined;
  sha256: string | undefined;
  /** the latest decision per record hash, with the line it came from */
  decisions: Map<string, CurationDecision & { line: number }>;
}

export const emptyCuration = (): Curation => ({ file: undefined, sha256: undefined, decisions: new Map() });

/** Loads a curation file (a missing file is an empty curation); a bad line is an error with file:line. */
export function loadCuration(file: string, displayName = file): Curation {
  if (!existsSync(file)) return { file: displayName, sha256: undefined, decisions: new Map() };
  const text = readFileSync(file, 'utf8');
  const decisions = new Map<string, CurationDecision & { line: number }>();
  text.split('\n').forEach((l, i) => {
    if (!l.trim()) return;
    let o: unknown;
    try {
      o = JSON.parse(l);
    } catch (e) {
      throw new DataError(`invalid JSON: ${(e as Error).message}`, { file: displayName, line: i + 1 });
    }
    const r = CurationDecision.safeParse(o);
    if (!r.success) {
      const d = describeZodError(r.error);
      throw new DataError(d.message, { file: displayName, line: i + 1, path: d.path });
    }
    decisions.set(r.data.hash, { ...r.data, line: i + 1 });
  });
  return { file: displayName, sha256: sha256(text), decisions };
}

/** Appends a decision (checked first), rewriting the file atomically. */
export function recordDecision(file: string, decision: unknown): CurationDecision {
  const r = CurationDecision.safeParse(decision);
  if (!r.success) {
    const d = describeZodError(r.error);
    throw new DataError(`invalid curation decision: ${d.message}`, { file, path: d.path });
  }
  const d = { ...r.data, at: r.data.at ?? new Date().toISOString() };
  const prev = existsSync(file) ? readFileSync(file, 'utf8') : '';
  writeFileAtomic(file, `${prev}${prev && !prev.endsWith('\n') ? '\n' : ''}${JSON.stringify(d)}\n`);
  return d;
}
