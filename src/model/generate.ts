// Text generation over the native model's KV cache: batched prompts (right-padded into one prefill),
// then one decode step per new token for the sequences still running. The logits processing follows
// transformers' generate(): repetition penalty, then (when sampling) temperature, top-k, top-p, and a
// draw from the softmax; greedy takes the argmax. Stops on stop tokens, stop strings (with a decode
// function) or max new tokens; a callback sees every token as it is produced.
import { z } from 'zod';
import { Tensor } from '../../bindings/tensor.js';

export const GenerationConfigSchema = z.object({
  /** tokens to generate per prompt at most */
  maxNewTokens: z.number().int().min(0).default(64),
  /** false: greedy (argmax); true: sample with temperature / top-k / top-p */
  doSample: z.boolean().default(false),
  temperature: z.number().gt(0).default(1),
  /** 0 disables */
  topK: z.number().int().min(0).default(50),
  /** 1 disables */
  topP: z.number().gt(0).max(1).default(1),
  /** transformers' RepetitionPenaltyLogitsProcessor (1 disables) over prompt and generated tokens */
  repetitionPenalty: z.number().gt(0).default(1),
  /** e.g. the eos token(s); a stop token is kept as the last generated token */
  stopTokenIds: z.array(z.number().int().min(0)).default([]),
  /** generation of a sequence stops once its decoded new text contains one (needs `decode`) */
  stopStrings: z.array(z.string().min(1)).default([]),
  /** seed of the sampler (same seed, same prompts: same tokens) */
  seed: z.number().int().min(0).default(0),
  /** token used to right-pad shorter prompts (never attended to) */
  padTokenId: z.number().int().min(0).default(0),
});
export type GenerationConfig = z.input<typeof GenerationConfigSchema>;
export type ResolvedGenerationConfig = z.output<typeof GenerationConfigSchema>;

export type FinishReason = 'stop_token' | 'stop_string' | 'length';

export interface TokenEvent {
  /** index of the prompt */
  sequence: number;
  token: number;
  /** position of the token among the new ones (0-based) */
  step: number;
}

export interface GenerateHooks {
  /** called for every new token, in order, as soon as it is known */
  onToken?: (e: TokenEvent) => void;
  /** token ids -> text (the tokenizer's decode); needed for stop strings and `texts` */
  decode?: (ids: number[]) => string;
}

export interface GenerationResult {
  /** the new tokens of each prompt (a stop token included) */
  tokens: number[][];
  finishReasons: FinishReason[];
  /** decoded new text, cut before a stop string (when `decode` was given) */
  texts?: string[];
}

/** What generate() needs from a model: the native prefill / decode steps (see bindings/model.ts). */
export interface DecodingModel {
  readonly vocabSize: number;
  prefillAsync(ids: Tensor, lengths: Tensor, capacity: number): Promise<Tensor>;
  decodeStepAsync(ids: Tensor, slots: Tensor): Promise<Tensor>;
}

// ---- logits processors (in place on one row of logits)

/** transformers' RepetitionPenaltyLogitsProcessor: a seen token's logit l becomes l/p if l > 0 else l·p. */
export function applyRepetitionPenalty(logits: Float32Array, seen: Iterable<number>, penalty: number): void {
  if (penalty === 1) return;
  for (const t of new Set(seen)) {
    const l = logits[t];
    logits[t] = l > 0 ? l / penalty : l * penalty;
  }
}

/** Indices of the kept candidates after top-k and top-p (transformers' warpers; at least one is kept). */
export function candidates(logits: Float32Array, topK: number, topP: number): number[] {
  const V = logits.length;
  let idx: number[];
  if (topK > 0 && topK < V) {
    // the k largest (ties at the k-th value are kept, as TopKLogitsWarper's "< kth value" test does)
    const sorted = Float32Array.from(logits).sort();
    const kth = sorted[V - topK];
    idx = [];
    for (let i = 0; i < V; i++) if (logits[i] >= kth) idx.push(i);
  } else {
    idx = Array.from({ length: V }, (_, i) => i);
  }
  if (topP >= 1) return idx;
  // TopPLogitsWarper: sort ascending, drop the tokens whose cumulative probability is <= 1 - top_p
  idx.sort((a, b) => logits[a] - logits[b] || b - a);
  const mx = logits[idx[idx.length - 1]];
  const p = idx.map((i) => Math.exp(logits[i] - mx));
  const total = p.reduce((a, b) => a + b, 0);
  let cum = 0;
  let first = 0;
  for (let j = 0; j < idx.length - 1; j++) {
    cum += p[j] / total;
    if (cum <= 1 - topP) first = j + 1;
    else break;
  }
  return idx.slice(first);
}

export function argmax(logits: Float32Array): number {
  let best = 0;
  for (let i = 1; i < logits.length; i++) if (logits[i] > logits[best]) best = i;
  return best;
}

/** mulberry32: a small seeded generator for the sampler */
export class SamplerRng {
  private s: number;
  constructor(seed: number) {
    this.s = seed >>> 0;
  }
  next(): number {
    let t = (this.s = (this.s + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
}

/** The next token from one row of logits (modified in place by the processors). */
export function pickToken(logits: Float32Array, seen: number[], cfg: ResolvedGenerationConfig, rng: SamplerRng): number {
  applyRepetitionPenalty(logits, seen, cfg.repetitionPenalty);
  if (!cfg.doSample) return argmax(logits);
  const t = cfg.temperature;
  if (t !== 1) for (let i = 0; i < logits.length; i++) logits[i] /= t;
  const cand = candidates(logits, cfg.topK, cfg.topP);
  let mx = -Infinity;
  for (const i of cand) mx = Math.max(mx, logits[i]);
  const w = cand.map((i) => Math.exp(logits[i] - mx));
  const total = w.reduce((a, b) => a + b, 0);
  let u = rng.next() * total;
  for (let j = 0; j < cand.length; j++) {
    u -= w[j];
    if (u < 0) return cand[j];
  }
  return cand[cand.length - 1];
}

// ---- the loop

export async function generate(
  model: DecodingModel,
  prompts: readonly (readonly number[])[],
  config: GenerationConfig = {},
  hooks: GenerateHooks = {},
): Promise<GenerationResult> {
  const cfg = GenerationConfigSchema.parse(config);
  if (prompts.length === 0) return { tokens: [], finishReasons: [], texts: hooks.decode ? [] : undefined };
  prompts.forEach((p, i) => {
    if (p.length === 0) throw new Error(`generate: prompt ${i} is empty`);
    for (const t of p)
      if (!Number.isInteger(t) || t < 0 || t >= model.vocabSize)
        throw new Error(`generate: prompt ${i} holds token ${t}, outside the vocabulary [0, ${model.vocabSize})`);
  });
  if (cfg.stopStrings.length > 0 && !hooks.decode) throw new Error('generate: stopStrings need a decode function');
  const B = prompts.length;
  const T = Math.max(...prompts.map((p) => p.length));
  const padded = new Int32Array(B * T).fill(cfg.padTokenId);
  prompts.forEach((p, b) => padded.set(p, b * T));
  const ids = Tensor.fromArray(padded, [B, T], 'i32');
  const lengths = Tensor.fromArray(Int32Array.from(prompts.map((p) => p.length)), [B], 'i32');
  const rng = new SamplerRng(cfg.seed);
  const out: number[][] = prompts.map(() => []);
  const seen: number[][] = prompts.map((p) => [...p]);
  const reasons: (FinishReason | undefined)[] = prompts.map(() => undefined);
  const texts: string[] = prompts.map(() => '');
  let running = prompts.map((_, i) => i);
  if (cfg.maxNewTokens === 0) running = [];

  let logits = running.length ? await model.prefillAsync(ids, lengths, T + cfg.maxNewTokens) : null;
  ids.release();
  lengths.release();
  for (let step = 0; logits && running.length > 0; step++) {
    const V = model.vocabSize;
    const all = logits.data<'f32'>();
    const next: number[] = [];
    for (let r = 0; r < running.length; r++) {
      const b = running[r];
      const row = Float32Array.from(all.subarray(r * V, (r + 1) * V));
      const tok = pickToken(row, seen[b], cfg, rng);
      out[b].push(tok);
      seen[b].push(tok);
      hooks.onToken?.({ sequence: b, token: tok, step });
      if (cfg.stopTokenIds.includes(tok)) reasons[b] = 'stop_token';
      else if (cfg.stopStrings.length > 0) {
        const text = hooks.decode!(out[b]);
        const hit = cfg.stopStrings.map((s) => text.indexOf(s)).filter((i) => i >= 0);
        if (hit.length > 0) {
          reasons[b] = 'stop_string';
          texts[b] = text.slice(0, Math.min(...hit));
        }
      }
      if (!reasons[b] && out[b].length >= cfg.maxNewTokens) reasons[b] = 'length';
      if (!reasons[b]) next.push(b);
    }
    logits.release();
    logits = null;
    running = next;
    if (running.length === 0) break;
    const stepIds = Tensor.fromArray(Int32Array.from(running.map((b) => out[b][out[b].length - 1])), [running.length], 'i32');
    const slots = Tensor.fromArray(Int32Array.from(running), [running.length], 'i32');
    try {
      logits = await model.decodeStepAsync(stepIds, slots);
    } finally {
      stepIds.release();
      slots.release();
    }
  }
  const result: GenerationResult = { tokens: out, finishReasons: reasons.map((r) => r ?? 'length') };
  if (hooks.decode) {
    result.texts = out.map((toks, b) => {
      if (reasons[b] === 'stop_string') return texts[b];
      const keep = reasons[b] === 'stop_token' ? toks.slice(0, -1) : toks;
      return hooks.decode!(keep);
    });
  }
  return result;
}
