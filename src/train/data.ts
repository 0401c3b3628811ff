// The training data loader: examples rendered by the model's chat template into token ids with an
// assistant-only loss mask (or every token: loss_on 'all'), turned into next-token targets (-100 where
// not learned), truncated to max_seq_len, optionally packed several to a row (segment ids keep attention
// inside each example, positions restart per example), mixed by category weights and shuffled per epoch
// from the seed. The plan of an epoch is a pure function of (examples, config, seed, epoch), so a
// position (epoch, index) is all a resume needs.
import type { ChatMessage } from '../model/tokenizer.js';
import type { TokenBatch } from '../model/native-model.js';

export interface Renderer {
  render(messages: readonly ChatMessage[]): { ids: number[]; lossMask: boolean[] };
}

export interface TokenizedExample {
  ids: Int32Array;
  targets: Int32Array;
  /** tokens whose target is not -100 */
  counted: number;
  /** tokens cut off by max_seq_len */
  truncated: number;
  /** the record's category, when it has one (category weights act on it) */
  category?: string;
}

/** Which tokens are learned: the assistant turns (the chat template's loss mask) or all of them. */
export type LossOn = 'assistant' | 'all';

export interface TokenizeStats {
  examples: number;
  kept: number;
  /** examples with nothing left to learn after truncation (reported, not silently lost) */
  droppedNoTargets: number;
  truncatedExamples: number;
  tokens: number;
  countedTokens: number;
}

/**
 * Renders each example and builds next-token targets: targets[i] = ids[i+1] where lossMask[i+1] (loss on
 * 'assistant'; with 'all' wherever ids[i+1] exists), else -100.
 */
export function tokenizeExamples(
  records: readonly { messages: readonly ChatMessage[]; category?: string }[],
  renderer: Renderer,
  maxSeqLen: number,
  opts: { lossOn?: LossOn } = {},
): { examples: TokenizedExample[]; stats: TokenizeStats } {
  const examples: TokenizedExample[] = [];
  const stats: TokenizeStats = { examples: records.length, kept: 0, droppedNoTargets: 0, truncatedExamples: 0, tokens: 0, countedTokens: 0 };
  const all = opts.lossOn === 'all';
  for (const rec of records) {
    const rendered = renderer.render(rec.messages);
    const ids = rendered.ids;
    const lossMask = all ? null : rendered.lossMask;
    const n = Math.min(ids.length, maxSeqLen);
    const out = new Int32Array(n);
    const targets = new Int32Array(n);
    let counted = 0;
    for (let i = 0; i < n; i++) {
      out[i] = ids[i];
      // the last kept token may still predict the first cut-off one
      const learn = i + 1 < ids.length && (lossMask === null || lossMask[i + 1]);
      targets[i] = learn ? ids[i + 1] : -100;
      if (learn) counted++;
    }
    const truncated = ids.length - n;
    if (truncated > 0) stats.truncatedExamples++;
    if (counted === 0) {
      stats.droppedNoTargets++;
      continue;
    }
    examples.push({ ids: out, targets, counted, truncated, ...(rec.category !== undefined ? { category: rec.category } : {}) });
    stats.kept++;
    stats.tokens += n;
    stats.countedTokens += counted;
  }
  return { examples, stats };
}

/** mulberry32: a small seeded PRNG (uint32 state). */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A seed for (seed, a, b): an integer mix, stable across processes. */
export function mixSeed(seed: number, a: number, b = 0): number {
  let h = (seed ^ 0x9e3779b9) >>> 0;
  for (const v of [a, b]) {
    h = Math.imul(h ^ (v >>> 0), 0x85ebca6b) >>> 0;
    h = (h ^ (h >>> 13)) >>> 0;
    h = Math.imul(h, 0xc2b2ae35) >>> 0;
    h = (h ^ (h >>> 16)) >>> 0;
  }
  return h & 0x7fffffff;
}

/** Fisher–Yates permutation of 0..n-1 from a seed. */
export function shuffledOrder(n: number, seed: number): number[] {
  const order = Array.from({ length: n }, (_, i) => i);
  const rnd = mulberry32(seed);
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(rnd() * (i + 1));
    [order[i], order[j]] = [order[j], order[i]];
  }
  return order;
}

/** One row of a batch: the examples (indices) it holds, in order. */
export type Row = number[];

/** Packs examples (in the given order) into rows of at most maxSeqLen tokens, next-fit; without packing one example per row. */
export function packRows(examples: readonly TokenizedExample[], order: readonly number[], maxSeqLen: number, packing: boolean): Row[] {
  const rows: Row[] = [];
  let cur: Row = [];
  let used = 0;
  for (const i of order) {
    const len = examples[i].ids.length;
    if (!packing) {
      rows.push([i]);
      continue;
    }
    if (cur.length && used + len > maxSeqLen) {
      rows.push(cur);
      cur = [];
      used = 0;
    }
    cur.push(i);
    used += len;
  }
  if (cur.length) rows.push(cur);
  return rows;
}

/** Builds a TokenBatch from rows, right-padded to the longest row (pad: id padId, target -100, its own segment). */
export function makeBatch(examples: readonly TokenizedExample[], rows: readonly Row[], padId: number, packing: boolean): TokenBatch & { counted: number } {
  const lens = rows.map((r) => r.reduce((s, i) => s + examples[i].ids.length, 0));
  const seqLen = Math.max(...lens);
  const n = rows.length * seqLen;
  const ids = new Int32Array(n).fill(padId);
  const targets = new Int32Array(n).fill(-100);
  const positions = new Int32Array(n);
  const segments = new Int32Array(n);
  let counted = 0;
  rows.forEach((row, b) => {
    let off = b * seqLen;
    let seg = 0;
    for (const i of row) {
      const e = examples[i];
      ids.set(e.ids, off);
      targets.set(e.targets, off);
      for (let k = 0; k < e.ids.length; k++) {
        positions[off + k] = k;
        segments[off + k] = seg;
      }
      counted += e.counted;
      off += e.ids.length;
      seg++;
    }
    // padding: a segment of its own so that no real token attends to it
    for (let k = 0; off < (b + 1) * seqLen; off++, k++) {
      positions[off] = k;
      segments[off] = seg;
    }
  });
  const batch = { ids, targets, batch: rows.length, seqLen, counted };
  return packing ? { ...batch, positions, segments } : batch;
}

export interface LoaderPosition {
  epoch: number;
  /** index of the next micro-batch within the epoch */
  index: number;
}

export interface LoaderOptions {
  microBatch: number;
  maxSeqLen: number;
  packing: boolean;
  seed: number;
  padId: number;
  /** shuffle each epoch (default true; eval loaders keep the order) */
  shuffle?: boolean;
  /** times per epoch each example of a category appears (training.category_weights); absent: 1 */
  categoryWeights?: Readonly<Record<string, number>>;
}

/**
 * The examples of one epoch with category weights applied: an example of weight w appears floor(w) times,
 * and once more with probability w - floor(w) (a draw seeded by (seed, epoch)); no weights: each once.
 */
export function weightedIndices(examples: readonly { category?: string }[], weights: Readonly<Record<string, number>> | undefined, seed: number): number[] {
  if (!weights || Object.keys(weights).length === 0) return examples.map((_, i) => i);
  const rnd = mulberry32(seed);
  const out: number[] = [];
  examples.forEach((e, i) => {
    const w = e.category !== undefined && weights[e.category] !== undefined ? weights[e.category] : 1;
    const whole = Math.floor(w);
    const extra = w - whole > 0 && rnd() < w - whole ? 1 : 0;
    for (let k = 0; k < whole + extra; k++) out.push(i);
  });
  return out;
}

/** An endless, resumable stream of micro-batches over the examples, epoch after epoch. */
export class DataLoader {
  private planEpoch = -1;
  private plan: Row[][] = [];
  position: LoaderPosition = { epoch: 0, index: 0 };

  constructor(
    readonly examples: readonly TokenizedExample[],
    readonly opts: LoaderOptions,
  ) {
    if (examples.length === 0) throw new Error('the data loader has no examples (every example was empty after rendering and truncation)');
  }

  /** The micro-batches of an epoch (rows of example indices). */
  epochPlan(epoch: number): Row[][] {
    if (epoch !== this.planEpoch) {
      const { seed, shuffle = true, maxSeqLen, packing, microBatch, categoryWeights } = this.opts;
      const pool = weightedIndices(this.examples, categoryWeights, mixSeed(seed, 0x3a1c, epoch));
      if (pool.length === 0) throw new Error(`epoch ${epoch} has no examples: training.category_weights leave none in (weights ${JSON.stringify(categoryWeights)})`);
      const order = shuffle ? shuffledOrder(pool.length, mixSeed(seed, 0x5eed, epoch)).map((k) => pool[k]) : pool;
      const rows = packRows(this.examples, order, maxSeqLen, packing);
      const batches: Row[][] = [];
      for (let i = 0; i < rows.length; i += microBatch) batches.push(rows.slice(i, i + microBatch));
      this.plan = batches;
      this.planEpoch = epoch;
    }
    return this.plan;
  }

  microBatchesPerEpoch(epoch = 0): number {
    return this.epochPlan(epoch).length;
  }

  /** The next micro-batch; advances the position (to the next epoch at the end of one). */
  next(): TokenBatch & { counted: number; epoch: number } {
    let plan = this.epochPlan(this.position.epoch);
    if (this.position.index >= plan.length) {
      this.position = { epoch: this.position.epoch + 1, index: 0 };
      plan = this.epochPlan(this.position.epoch);
    }
    const rows = plan[this.position.index];
    const epoch = this.position.epoch;
    this.position = { epoch, index: this.position.index + 1 };
    return { ...makeBatch(this.examples, rows, this.opts.padId, this.opts.packing), epoch };
  }

  /** Every micro-batch of one pass in order (for evaluation). */
  *all(): Generator<TokenBatch & { counted: number }> {
    for (const rows of this.epochPlan(0)) yield makeBatch(this.examples, rows, this.opts.padId, this.opts.packing);
  }
}
