// One reader per source kind, built from the source's config.
import type { SourceConfig } from '../schema.js';
import { CollectionLogReader } from './collection-log.js';
import { DocumentsReader } from './documents.js';
import { ElixirReader } from './elixir.js';
import { GeneratedReader } from './generated.js';
import { InteractionsReader } from './interactions.js';
import type { SourceReader } from './types.js';

export function sourceName(s: SourceConfig): string {
  if (s.name) return s.name;
  return s.kind === 'generated' ? `generated:seed=${s.seed}` : `${s.kind}:${s.path}`;
}

export function createReader(s: SourceConfig): SourceReader {
  const name = sourceName(s);
  switch (s.kind) {
    case 'interactions':
      return new InteractionsReader(name, s.path, s.format, s.category, s.review);
    case 'documents':
      return new DocumentsReader(name, s.path, s, s.review);
    case 'elixir':
      return new ElixirReader(name, s.path, s.review);
    case 'generated':
      return new GeneratedReader(name, s, s.review);
    case 'collection-log':
      return new CollectionLogReader(name, s.path, s.review);
  }
}

export type { Candidate, SourceReader, ReadContext, InputHash } from './types.js';
