// Interaction logs: JSONL conversations. STARWEAVE's own export (role/content messages with optional
// category, rating, timestamps) and the common public formats: OpenAI chat `messages`, ShareGPT
// `conversations`, Alpaca `instruction/input/output`.
import { createHash } from 'node:crypto';
import { resolve } from 'node:path';
import { listFiles, readLineBatches, relPath } from '../io.js';
import type { Candidate, ReadContext, SourceReader } from './types.js';

export type InteractionFormat = 'starweave' | 'openai' | 'sharegpt' | 'alpaca';

export function detectFormat(o: Record<string, unknown>): InteractionFormat | undefined {
  if (Array.isArray(o.messages)) return 'messages' in o && ('category' in o || 'node' in o || 'rating' in o) ? 'starweave' : 'openai';
  if (Array.isArray(o.conversations)) return 'sharegpt';
  if (typeof o.instruction === 'string' && 'output' in o) return 'alpaca';
  return undefined;
}

const SHAREGPT_ROLES: Record<string, string> = { human: 'user', user: 'user', gpt: 'assistant', assistant: 'assistant', chatgpt: 'assistant', bing: 'assistant', bard: 'assistant', system: 'system' };

/** Converts one parsed line of a known format into an example-shaped value (or an error). */
export function convertInteraction(o: Record<string, unknown>, format: InteractionFormat, fallbackCategory?: string): Pick<Candidate, 'value' | 'error'> {
  const found = detectFormat(o);
  const same = found === format || (found !== undefined && ['starweave', 'openai'].includes(found) && ['starweave', 'openai'].includes(format));
  if (!same) return { error: { reason: 'unknown_format', message: `not a ${format} record${found ? ` (looks like ${found})` : ''}` } };
  const meta: Record<string, unknown> = {};
  let messages: unknown;
  switch (format) {
    case 'starweave':
    case 'openai': {
      const msgs = o.messages as unknown[];
      const out: unknown[] = [];
      for (let i = 0; i < msgs.length; i++) {
        const m = msgs[i];
        if (m === null || typeof m !== 'object') return { error: { reason: 'schema', message: 'a message must be an object', path: `messages[${i}]` } };
        const mm = m as Record<string, unknown>;
        const ts = mm.timestamp ?? mm.ts;
        if (typeof ts === 'string' && meta.createdAt === undefined) meta.createdAt = ts;
        out.push({ role: mm.role, content: mm.content });
      }
      messages = out;
      if (typeof o.rating === 'number') meta.rating = o.rating;
      if (typeof o.node === 'string') meta.node = o.node;
      if (typeof o.id === 'string') meta.sourceId = o.id;
      if (typeof o.createdAt === 'string') meta.createdAt = o.createdAt;
      if (o.metadata && typeof o.metadata === 'object') Object.assign(meta, o.metadata);
      break;
    }
    case 'sharegpt': {
      const conv = o.conversations as unknown[];
      const out: unknown[] = [];
      for (let i = 0; i < conv.length; i++) {
        const t = conv[i] as Record<string, unknown> | null;
        if (t === null || typeof t !== 'object') return { error: { reason: 'schema', message: 'a turn must be an object', path: `conversations[${i}]` } };
        const role = typeof t.from === 'string' ? SHAREGPT_ROLES[t.from.toLowerCase()] : undefined;
        if (!role) return { error: { reason: 'schema', message: `unknown ShareGPT speaker '${String(t.from)}' (human, gpt, system)`, path: `conversations[${i}].from` } };
        out.push({ role, content: t.value });
      }
      messages = out;
      if (typeof o.id === 'string') meta.sourceId = o.id;
      break;
    }
    case 'alpaca': {
      if (typeof o.output !== 'string') return { error: { reason: 'schema', message: 'expected a string', path: 'output' } };
      const input = typeof o.input === 'string' && o.input.trim() ? `\n\n${o.input}` : '';
      messages = [
        { role: 'user', content: `${o.instruction as string}${input}` },
        { role: 'assistant', content: o.output },
      ];
      break;
    }
  }
  const category = o.category ?? fallbackCategory;
  return { value: { messages, category, metadata: meta } };
}

export class InteractionsReader implements SourceReader {
  constructor(
    readonly name: string,
    private readonly path: string,
    private readonly format: 'auto' | InteractionFormat,
    private readonly category: string | undefined,
    readonly review: boolean,
  ) {}

  async *read(ctx: ReadContext): AsyncIterable<Candidate> {
    const root = resolve(ctx.baseDir, this.path);
    for (const file of await listFiles(root, ['.jsonl', '.json', '.ndjson'])) {
      const rel = relPath(ctx.baseDir, file);
      const hash = createHash('sha256');
      let line = 0;
      for await (const batch of readLineBatches(file, (b) => hash.update(b))) {
        for (const text of batch) {
          line++;
          if (!text.trim()) continue;
          const origin = { source: this.name, file: rel, line };
          let o: unknown;
          try {
            o = JSON.parse(text);
          } catch (e) {
            yield { origin, raw: text, error: { reason: 'parse_error', message: `invalid JSON: ${(e as Error).message}` } };
            continue;
          }
          if (o === null || typeof o !== 'object' || Array.isArray(o)) {
            yield { origin, raw: o, error: { reason: 'schema', message: 'a line must hold one JSON object' } };
            continue;
          }
          const rec = o as Record<string, unknown>;
          const fmt = this.format === 'auto' ? detectFormat(rec) : this.format;
          if (!fmt) {
            yield { origin, raw: o, error: { reason: 'unknown_format', message: 'not a known conversation format (messages, conversations, or instruction/output)' } };
            continue;
          }
          yield { origin, raw: o, ...convertInteraction(rec, fmt, this.category) };
        }
      }
      ctx.input({ file: rel, sha256: hash.digest('hex') });
    }
  }
}
