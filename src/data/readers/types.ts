// What every reader yields: a candidate record with its origin, or the error that stopped it.
import type { Origin, RejectReason } from '../schema.js';

export interface Candidate {
  origin: Origin;
  /** an example-shaped value ({ messages, category?, metadata? }) still to be cleaned and validated */
  value?: { messages: unknown; category?: unknown; metadata?: Record<string, unknown> };
  /** set when the reader could not turn the input into a value */
  error?: { reason: Extract<RejectReason, 'parse_error' | 'unknown_format' | 'schema'>; message: string; path?: string };
  /** the input as read (kept in the rejects file when the record is rejected) */
  raw: unknown;
}

/** The hash of one input of a source, for the lineage. */
export interface InputHash {
  file: string;
  sha256: string;
}

export interface ReadContext {
  /** the folder relative paths are resolved against (the config's folder) */
  baseDir: string;
  /** records an input and its sha256 for the lineage */
  input(h: InputHash): void;
}

export interface SourceReader {
  readonly name: string;
  /** records of this source wait for a curation decision */
  readonly review: boolean;
  read(ctx: ReadContext): AsyncIterable<Candidate>;
}
