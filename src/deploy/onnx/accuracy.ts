// The accuracy cost of the int8 export, measured against the f32 export of the same (merged) weights, both
// run by onnxruntime on the same held-out token sequences: the largest |Δlogit|, the share of positions
// whose top-1 token agrees, and the perplexity of each next token under both graphs.
import { existsSync } from 'node:fs';
import type { ModelConfig } from '../../model/config.js';
import { loadTokenizer } from '../../model/tokenizer.js';
import { OnnxCausalLM } from './runtime.js';
import { argmax } from '../../model/generate.js';

export interface Int8Accuracy {
  /** what the int8 graph is compared with */
  reference: 'f32 ONNX export of the same weights';
  sequences: number;
  /** positions compared (logits) and next tokens scored (perplexity) */
  positions: number;
  maxAbsLogitDelta: number;
  meanAbsLogitDelta: number;
  /** share of positions whose argmax agrees */
  top1Agreement: number;
  perplexityF32: number;
  perplexityInt8: number;
  /** (int8 − f32) / f32 */
  perplexityRelDelta: number;
  /** where the tokens came from */
  tokens: 'given' | 'held-out text' | 'seeded random ids';
}

/** Held-out English text (not in the training examples) for the default measurement. */
export const HELD_OUT_TEXT = [
  'The lighthouse keeper wrote down the weather every morning: wind from the west, a low grey sky, and the sea calm enough for the ferry to cross before noon.',
  'A supervisor restarts a crashed worker with the same arguments it started with, so the state the worker needs must come from somewhere it can read again.',
  'Measure twice and cut once; then measure the cut, because the saw drifts a little to the left on long boards.',
];

function seededIds(n: number, vocab: number, seed: number): number[] {
  let s = seed >>> 0;
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out.push(s % vocab);
  }
  return out;
}

/** Default sequences: the held-out text through the model's tokenizer, or seeded ids without one. */
export function defaultAccuracyTokens(modelDir: string, c: ModelConfig, maxLen = 96): { tokens: number[][]; source: Int8Accuracy['tokens'] } {
  const limit = Math.min(maxLen, c.maxPositionEmbeddings);
  if (existsSync(`${modelDir}/tokenizer.json`)) {
    try {
      const tok = loadTokenizer(modelDir);
      const seqs = HELD_OUT_TEXT.map((t) => tok.encode(t).slice(0, limit)).filter((s) => s.length >= 2);
      if (seqs.length) return { tokens: seqs, source: 'held-out text' };
    } catch {
      // fall through to seeded ids (a tokenizer this runtime cannot load)
    }
  }
  return { tokens: [0, 1, 2].map((i) => seededIds(Math.min(64, limit), c.vocabSize, 17 + i)), source: 'seeded random ids' };
}

function logSoftmaxAt(row: Float32Array, target: number): number {
  let mx = -Infinity;
  for (const v of row) mx = Math.max(mx, v);
  let s = 0;
  for (const v of row) s += Math.exp(v - mx);
  return row[target] - mx - Math.log(s);
}

export async function measureInt8Accuracy(args: { f32: string | Uint8Array; int8: string | Uint8Array; config: ModelConfig; modelDir: string; tokens?: number[][] }): Promise<Int8Accuracy> {
  const c = args.config;
  const shape = { numLayers: c.numLayers, numKvHeads: c.numKvHeads, headDim: c.headDim, vocabSize: c.vocabSize };
  const given = args.tokens && args.tokens.length ? { tokens: args.tokens, source: 'given' as const } : defaultAccuracyTokens(args.modelDir, c);
  const ref = await OnnxCausalLM.create(args.f32, shape);
  const q = await OnnxCausalLM.create(args.int8, shape);
  const V = c.vocabSize;
  let maxAbs = 0;
  let sumAbs = 0;
  let agree = 0;
  let positions = 0;
  let nllRef = 0;
  let nllQ = 0;
  let scored = 0;
  try {
    for (const seq of given.tokens) {
      const a = (await ref.forward({ ids: [seq] })).logits;
      const b = (await q.forward({ ids: [seq] })).logits;
      for (let t = 0; t < seq.length; t++) {
        const ra = a.subarray(t * V, (t + 1) * V);
        const rb = b.subarray(t * V, (t + 1) * V);
        for (let i = 0; i < V; i++) {
          const d = Math.abs(ra[i] - rb[i]);
          sumAbs += d;
          if (d > maxAbs) maxAbs = d;
        }
        if (argmax(ra) === argmax(rb)) agree++;
        positions++;
        if (t + 1 < seq.length) {
          nllRef -= logSoftmaxAt(ra, seq[t + 1]);
          nllQ -= logSoftmaxAt(rb, seq[t + 1]);
          scored++;
        }
      }
    }
  } finally {
    await ref.release();
    await q.release();
  }
  const pplRef = Math.exp(nllRef / Math.max(1, scored));
  const pplQ = Math.exp(nllQ / Math.max(1, scored));
  return {
    reference: 'f32 ONNX export of the same weights',
    sequences: given.tokens.length,
    positions,
    maxAbsLogitDelta: maxAbs,
    meanAbsLogitDelta: sumAbs / Math.max(1, positions * V),
    top1Agreement: agree / Math.max(1, positions),
    perplexityF32: pplRef,
    perplexityInt8: pplQ,
    perplexityRelDelta: (pplQ - pplRef) / pplRef,
    tokens: given.source,
  };
}
