// The tokenizer seam. The pipeline needs token counts (length bounds, the report's histogram) and
// training needs rendered examples (token ids and a loss mask over the assistant turns). Both come from
// the model: the model runtime supplies a ChatRenderer built from tokenizer.json and the model's chat
// template. Until then, and for every build that names no model, the built-in approximate renderer
// stands in: deterministic, ChatML-shaped, with a token estimate close to a BPE tokenizer's on English
// prose and code (not equal to it).
import type { Message } from './schema.js';
import { fnv1a } from './hash.js';

export interface RenderedExample {
  ids: number[];
  /** true where training computes the loss (assistant turns and their end-of-turn token) */
  lossMask: boolean[];
}

/** Renders chat messages into token ids with a loss mask, through a model's chat template. */
export interface ChatRenderer {
  /** identifies tokenizer + template; recorded in the dataset's lineage next to token counts */
  readonly name: string;
  /** false for the built-in approximation */
  readonly exact: boolean;
  render(messages: readonly Message[]): RenderedExample;
  /** the rendered length; renderers may answer faster than render(...).ids.length */
  count(messages: readonly Message[]): number;
}

/** A token counter for plain text (documents, scrub reports). */
export interface TokenCounter {
  readonly name: string;
  countText(text: string): number;
}

// pieces the way GPT-2/Llama-3 style pre-tokenizers cut text: contractions, letter runs with an optional
// leading space, digit groups of up to 3, punctuation runs, whitespace
const PIECE = /'(?:[sdmt]|ll|ve|re)| ?\p{L}+| ?\p{N}{1,3}| ?[^\s\p{L}\p{N}]+|\s+/gu;

/** Approximate BPE: a letter run of n characters costs about ceil(n / 4) tokens (one for short words). */
function pieceTokens(p: string): number {
  return lengthTokens(p.length);
}

// a local binding: a global Math lookup is not inlined inside vm contexts (jest)
const ceil = Math.ceil;

function lengthTokens(n: number): number {
  if (n <= 5) return 1;
  return ceil(n / 4.5);
}

const VOCAB = 32_000;
const SPECIAL = { imStart: 1, imEnd: 2, newline: 3 } as const;
const ROLE_IDS: Record<string, number> = { system: 4, user: 5, assistant: 6 };
const FIRST_ORDINARY = 16;

/**
 * The built-in renderer: ChatML layout (`<|im_start|>role\n...<|im_end|>\n`) with approximate ids
 * (hashes of the pieces). The counts are estimates; the ids are only good for tests of the seam.
 */
export class ApproximateChatRenderer implements ChatRenderer, TokenCounter {
  readonly name = 'approximate-chatml-v1';
  readonly exact = false;

  countText(text: string): number {
    // every character starts a piece (the alternatives cover \s, \p{L}, \p{N} and the rest, none matches
    // empty), so the pieces are contiguous and each one's length is the step of lastIndex: test() gives
    // the same count as exec() without allocating a match per piece
    let n = 0;
    let prev = 0;
    PIECE.lastIndex = 0;
    while (PIECE.test(text)) {
      n += lengthTokens(PIECE.lastIndex - prev);
      prev = PIECE.lastIndex;
    }
    return n;
  }

  count(messages: readonly Message[]): number {
    let n = 0;
    for (const m of messages) n += 5 + this.countText(m.content); // im_start, role, newline ... im_end, newline
    return n;
  }

  private textIds(text: string, out: number[]): void {
    PIECE.lastIndex = 0;
    for (let m = PIECE.exec(text); m; m = PIECE.exec(text)) {
      const p = m[0];
      const k = pieceTokens(p);
      const step = Math.ceil(p.length / k);
      for (let i = 0; i < k; i++) out.push(FIRST_ORDINARY + (fnv1a(p.slice(i * step, (i + 1) * step)) % (VOCAB - FIRST_ORDINARY)));
    }
  }

  render(messages: readonly Message[]): RenderedExample {
    const ids: number[] = [];
    const lossMask: boolean[] = [];
    for (const m of messages) {
      const learn = m.role === 'assistant';
      const head = [SPECIAL.imStart, ROLE_IDS[m.role], SPECIAL.newline];
      for (const id of head) {
        ids.push(id);
        lossMask.push(false);
      }
      const body: number[] = [];
      this.textIds(m.content, body);
      for (const id of body) {
        ids.push(id);
        lossMask.push(learn);
      }
      // the end-of-turn token is learned on assistant turns: it is how the model learns to stop
      ids.push(SPECIAL.imEnd, SPECIAL.newline);
      lossMask.push(learn, false);
    }
    return { ids, lossMask };
  }
}

export const approximateRenderer = new ApproximateChatRenderer();
