// Automated metrics of a model on held-out records: loss and token accuracy (argmax of the logits vs the
// next-token targets on the assistant tokens), greedy generations scored by exact match and ROUGE-L
// against the reference answer, a per-category breakdown, and base-vs-tuned (the adapter's LoRA B
// zeroed makes the adapted model the base model exactly).
import { Tensor } from '../../bindings/tensor.js';
import type { LlamaModel } from '../model/native-model.js';
import type { ChatMessage, ModelTokenizer } from '../model/tokenizer.js';
import { tokenizeExamples } from '../train/data.js';
import { exactMatch, rougeL } from './rouge.js';

export interface EvalRecord {
  messages: readonly ChatMessage[];
  category?: string;
}

export interface EvalOptions {
  /** examples scored for loss / token accuracy (default 64) */
  maxExamples?: number;
  /** prompts generated from (default 8; 0: none) */
  generateExamples?: number;
  maxNewTokens?: number;
  maxSeqLen?: number;
}

export interface CategoryMetrics {
  examples: number;
  tokens: number;
  loss: number | null;
  tokenAccuracy: number | null;
  generated: number;
  exactMatch: number | null;
  rougeL: number | null;
}

export interface Sample {
  index: number;
  category: string;
  prompt: string;
  reference: string;
  output: string;
  exactMatch: boolean;
  rougeL: number;
}

export interface ModelMetrics extends CategoryMetrics {
  perplexity: number | null;
  categories: Record<string, CategoryMetrics>;
  samples: Sample[];
}

export interface TokenScore {
  examples: number;
  tokens: number;
  correct: number;
  lossSum: number;
  perExample: { category: string; tokens: number; correct: number; lossSum: number }[];
}

const UNCATEGORIZED = '(none)';

/** Scores each record's assistant tokens from the full logits: argmax == target, and -log p(target). */
export async function scoreTokens(model: LlamaModel, tok: ModelTokenizer, records: readonly EvalRecord[], opts: { maxExamples?: number; maxSeqLen?: number } = {}): Promise<TokenScore> {
  const take = records.slice(0, opts.maxExamples ?? 64);
  const maxSeqLen = opts.maxSeqLen ?? 512;
  const out: TokenScore = { examples: 0, tokens: 0, correct: 0, lossSum: 0, perExample: [] };
  const V = model.vocabSize;
  for (const rec of take) {
    const { examples } = tokenizeExamples([rec], tok, maxSeqLen);
    const ex = examples[0];
    if (!ex) continue;
    const T = ex.ids.length;
    const ids = Tensor.fromArray(ex.ids, [1, T], 'i32');
    let logits: Float32Array;
    try {
      const lt = await model.native.logitsAsync(ids);
      try {
        logits = lt.toFloat32();
      } finally {
        lt.release();
      }
    } finally {
      ids.release();
    }
    let tokens = 0;
    let correct = 0;
    let lossSum = 0;
    for (let t = 0; t < T; t++) {
      const target = ex.targets[t];
      if (target < 0) continue;
      const o = t * V;
      let best = 0;
      let max = -Infinity;
      for (let v = 0; v < V; v++) {
        const l = logits[o + v];
        if (l > max) {
          max = l;
          best = v;
        }
      }
      let s = 0;
      for (let v = 0; v < V; v++) s += Math.exp(logits[o + v] - max);
      lossSum += max + Math.log(s) - logits[o + target];
      tokens++;
      if (best === target) correct++;
    }
    out.examples++;
    out.tokens += tokens;
    out.correct += correct;
    out.lossSum += lossSum;
    out.perExample.push({ category: rec.category ?? UNCATEGORIZED, tokens, correct, lossSum });
  }
  return out;
}

/** The prompt (messages before the last assistant turn) and the reference (that turn's content). */
export function splitPrompt(rec: EvalRecord): { prompt: ChatMessage[]; reference: string } | null {
  let last = -1;
  for (let i = rec.messages.length - 1; i >= 0; i--)
    if (rec.messages[i].role === 'assistant') {
      last = i;
      break;
    }
  if (last <= 0) return null;
  return { prompt: rec.messages.slice(0, last).map((m) => ({ ...m })), reference: rec.messages[last].content };
}

/** The token ids that end a generated answer: eos and the chat templates' end-of-turn tokens the tokenizer knows. */
export function stopIds(tok: ModelTokenizer): number[] {
  const ids = new Set<number>();
  if (tok.eosTokenId !== null) ids.add(tok.eosTokenId);
  for (const s of ['<|im_end|>', '<|eot_id|>', '<|endoftext|>', '</s>']) {
    const id = tok.tokenToId(s);
    if (id !== undefined) ids.add(id);
  }
  return [...ids];
}

/** Greedy generations from the first `n` records with a prompt, scored against their references. */
/** Prompts longer than maxPromptTokens are skipped (they would not fit the model with the new tokens). */
export async function generateSamples(
  model: LlamaModel,
  tok: ModelTokenizer,
  records: readonly EvalRecord[],
  opts: { n?: number; maxNewTokens?: number; maxPromptTokens?: number } = {},
): Promise<Sample[]> {
  const items: { index: number; category: string; prompt: ChatMessage[]; reference: string; ids: number[] }[] = [];
  const n = opts.n ?? 8;
  for (let i = 0; i < records.length && items.length < n; i++) {
    const s = splitPrompt(records[i]);
    if (!s) continue;
    const ids = tok.encodeChat(s.prompt);
    if (opts.maxPromptTokens !== undefined && ids.length > opts.maxPromptTokens) continue;
    items.push({ index: i, category: records[i].category ?? UNCATEGORIZED, ...s, ids });
  }
  if (!items.length) return [];
  const r = await model.generate(
    items.map((x) => x.ids),
    { maxNewTokens: opts.maxNewTokens ?? 64, stopTokenIds: stopIds(tok), padTokenId: tok.padTokenId ?? tok.eosTokenId ?? 0 },
    { decode: (ids) => tok.decode(ids, { skipSpecialTokens: true }) },
  );
  return items.map((x, k) => {
    const output = (r.texts?.[k] ?? tok.decode(r.tokens[k], { skipSpecialTokens: true })).trim();
    return {
      index: x.index,
      category: x.category,
      prompt: x.prompt.map((m) => `${m.role}: ${m.content}`).join('\n'),
      reference: x.reference,
      output,
      exactMatch: exactMatch(output, x.reference),
      rougeL: rougeL(output, x.reference).f1,
    };
  });
}

function categoryMetrics(scores: TokenScore['perExample'], samples: Sample[]): CategoryMetrics {
  const tokens = scores.reduce((s, x) => s + x.tokens, 0);
  const correct = scores.reduce((s, x) => s + x.correct, 0);
  const lossSum = scores.reduce((s, x) => s + x.lossSum, 0);
  return {
    examples: scores.length,
    tokens,
    loss: tokens ? lossSum / tokens : null,
    tokenAccuracy: tokens ? correct / tokens : null,
    generated: samples.length,
    exactMatch: samples.length ? samples.filter((s) => s.exactMatch).length / samples.length : null,
    rougeL: samples.length ? samples.reduce((s, x) => s + x.rougeL, 0) / samples.length : null,
  };
}

/** Every metric of the model (as it is now: adapter applied) on the records. */
export async function evaluateModel(model: LlamaModel, tok: ModelTokenizer, records: readonly EvalRecord[], opts: EvalOptions = {}): Promise<ModelMetrics> {
  const score = await scoreTokens(model, tok, records, opts);
  const samples = opts.generateExamples === 0 ? [] : await generateSamples(model, tok, records, { n: opts.generateExamples, maxNewTokens: opts.maxNewTokens, maxPromptTokens: opts.maxSeqLen });
  const all = categoryMetrics(score.perExample, samples);
  const names = [...new Set([...score.perExample.map((x) => x.category), ...samples.map((s) => s.category)])].sort();
  const categories: Record<string, CategoryMetrics> = {};
  for (const c of names)
    categories[c] = categoryMetrics(
      score.perExample.filter((x) => x.category === c),
      samples.filter((s) => s.category === c),
    );
  return { ...all, perplexity: all.loss === null ? null : Math.exp(all.loss), categories, samples };
}

/** Runs fn with the LoRA adapter switched off (every lora_B zeroed), restoring it afterwards. Null when the model has no LoRA B. */
export async function withAdapterOff<R>(model: LlamaModel, fn: () => Promise<R>): Promise<R | null> {
  const state = model.adapterState('param');
  const bs = Object.entries(state).filter(([k]) => k.includes('lora_B'));
  if (!bs.length) return null;
  model.loadAdapterState(Object.fromEntries(bs.map(([k, v]) => [k, { shape: v.shape, data: new Float32Array(v.data.length) }])));
  try {
    return await fn();
  } finally {
    model.loadAdapterState(Object.fromEntries(bs));
  }
}
