// Tiny models in the exact Hugging Face layout (config.json, model.safetensors, tokenizer.json,
// tokenizer_config.json with a ChatML chat template, generation_config.json), deterministic from a seed:
// the same preset and seed give byte-identical files on any machine. Tests train and generate with them;
// benchmarks use the SmolLM2-135M shape. Nothing is downloaded.
//
// Weights are initialized as transformers' _init_weights does (Linear and Embedding ~ N(0, 0.02), RMSNorm
// weights 1, biases 0), except in the test presets, whose norm weights and biases are perturbed
// (1 + N(0, 0.1) and N(0, 0.02)) so that a runtime ignoring them cannot pass a comparison by luck.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { ModelConfig, WeightDType } from './config.js';
import { toHfConfig } from './config.js';
import { expectedTensors } from './layout.js';
import type { ExpectedTensor } from './layout.js';
import { writeSafetensors } from './safetensors.js';
import type { RawTensor } from './safetensors.js';
import { writeFileAtomicSync } from './atomic.js';
import { buildTinyTokenizer } from './tiny-tokenizer.js';

export interface TinyPreset {
  architecture: 'LlamaForCausalLM' | 'Qwen2ForCausalLM';
  vocabSize: number;
  hiddenSize: number;
  intermediateSize: number;
  numLayers: number;
  numHeads: number;
  numKvHeads: number;
  headDim?: number;
  tieWordEmbeddings: boolean;
  ropeTheta: number;
  rmsNormEps: number;
  maxPositionEmbeddings: number;
  /** the dtype the weights are written in */
  dtype: 'f32' | 'bf16';
  /** 'hf': transformers' init; 'test': also perturb norm weights and biases */
  init: 'hf' | 'test';
}

export const TINY_PRESETS = {
  /** for unit tests: every code path, small enough for fp64 references */
  tiny: {
    architecture: 'LlamaForCausalLM',
    vocabSize: 512,
    hiddenSize: 64,
    intermediateSize: 128,
    numLayers: 2,
    numHeads: 4,
    numKvHeads: 2,
    tieWordEmbeddings: true,
    ropeTheta: 10000,
    rmsNormEps: 1e-5,
    maxPositionEmbeddings: 512,
    dtype: 'f32',
    init: 'test',
  },
  /** Qwen2: q/k/v biases, untied lm_head, bf16 weights */
  'tiny-qwen2': {
    architecture: 'Qwen2ForCausalLM',
    vocabSize: 512,
    hiddenSize: 64,
    intermediateSize: 128,
    numLayers: 2,
    numHeads: 4,
    numKvHeads: 2,
    tieWordEmbeddings: false,
    ropeTheta: 1000000,
    rmsNormEps: 1e-6,
    maxPositionEmbeddings: 512,
    dtype: 'bf16',
    init: 'test',
  },
  /** a few million parameters: training loops that must show learning in seconds */
  small: {
    architecture: 'LlamaForCausalLM',
    vocabSize: 2048,
    hiddenSize: 256,
    intermediateSize: 688,
    numLayers: 4,
    numHeads: 8,
    numKvHeads: 4,
    tieWordEmbeddings: true,
    ropeTheta: 10000,
    rmsNormEps: 1e-5,
    maxPositionEmbeddings: 2048,
    dtype: 'f32',
    init: 'hf',
  },
  /** HuggingFaceTB/SmolLM2-135M's shape, random weights: for benchmarks */
  'smollm2-135m': {
    architecture: 'LlamaForCausalLM',
    vocabSize: 49152,
    hiddenSize: 576,
    intermediateSize: 1536,
    numLayers: 30,
    numHeads: 9,
    numKvHeads: 3,
    headDim: 64,
    tieWordEmbeddings: true,
    ropeTheta: 100000,
    rmsNormEps: 1e-5,
    maxPositionEmbeddings: 8192,
    dtype: 'bf16',
    init: 'hf',
  },
} as const satisfies Record<string, TinyPreset>;
export type TinyPresetName = keyof typeof TINY_PRESETS;

/** ids of the tiny tokenizer's special tokens (tiny-tokenizer.ts) */
const IM_START = 1;
const IM_END = 2;
const ENDOFTEXT = 0;

export function tinyModelConfig(p: TinyPreset): ModelConfig {
  const qwen = p.architecture === 'Qwen2ForCausalLM';
  return {
    architecture: p.architecture,
    modelType: qwen ? 'qwen2' : 'llama',
    vocabSize: p.vocabSize,
    hiddenSize: p.hiddenSize,
    intermediateSize: p.intermediateSize,
    numLayers: p.numLayers,
    numHeads: p.numHeads,
    numKvHeads: p.numKvHeads,
    headDim: p.headDim ?? p.hiddenSize / p.numHeads,
    rmsNormEps: p.rmsNormEps,
    ropeTheta: p.ropeTheta,
    ropeScaling: { type: 'none' },
    tieWordEmbeddings: p.tieWordEmbeddings,
    maxPositionEmbeddings: p.maxPositionEmbeddings,
    attentionBias: qwen,
    oProjBias: false,
    slidingWindow: null,
    bosTokenId: IM_START,
    eosTokenIds: [IM_END],
    padTokenId: ENDOFTEXT,
    torchDtype: p.dtype as WeightDType,
  };
}

// ------------------------------------------------------------------------------------------------
// Deterministic random numbers: each tensor has its own stream, seeded from (seed, tensor name), so a
// tensor's values do not depend on which other tensors exist or in which order they are generated.

// local bindings: global lookups of Math.* are not inlined inside vm contexts (jest), many times slower there
const { imul, sqrt, log, cos, sin, PI } = Math;

function fnv1a(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = imul(h, 0x01000193) >>> 0;
  }
  return h;
}

/** splitmix32 -> uniform in (0, 1) */
function uniformStream(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x9e3779b9) >>> 0;
    let z = s;
    z = imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
    z = imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
    z = (z ^ (z >>> 16)) >>> 0;
    return (z + 0.5) / 4294967296;
  };
}

/** n samples of N(mean, std) by Box-Muller */
function normals(n: number, seed: number, mean: number, std: number): Float32Array {
  const out = new Float32Array(n);
  const u = uniformStream(seed);
  for (let i = 0; i < n; i += 2) {
    const r = sqrt(-2 * log(u())) * std;
    const t = 2 * PI * u();
    out[i] = mean + r * cos(t);
    if (i + 1 < n) out[i + 1] = mean + r * sin(t);
  }
  return out;
}

/** f32 -> bf16 bits, round to nearest even (the values here are finite) */
export function f32ToBf16(a: Float32Array): Uint16Array {
  const u = new Uint32Array(a.buffer, a.byteOffset, a.length);
  const out = new Uint16Array(a.length);
  for (let i = 0; i < u.length; i++) {
    const x = u[i];
    out[i] = ((x + 0x7fff + ((x >>> 16) & 1)) >>> 16) & 0xffff;
  }
  return out;
}

function initValues(t: ExpectedTensor, seed: number, init: 'hf' | 'test'): Float32Array {
  const n = t.shape.reduce((a, b) => a * b, 1);
  const s = (imul(seed >>> 0, 0x9e3779b1) ^ fnv1a(t.name)) >>> 0;
  switch (t.role) {
    case 'embedding':
    case 'linear':
      return normals(n, s, 0, 0.02);
    case 'norm':
      return init === 'test' ? normals(n, s, 1, 0.1) : new Float32Array(n).fill(1);
    case 'bias':
      return init === 'test' ? normals(n, s, 0, 0.02) : new Float32Array(n);
  }
}

export interface GeneratedModel {
  dir: string;
  preset: TinyPreset;
  config: ModelConfig;
  /** number of ids the tokenizer uses (the embedding has config.vocabSize rows, at least this many) */
  tokenizerSize: number;
  files: string[];
}

export interface GenerateOptions {
  /** override the preset's weight dtype */
  dtype?: 'f32' | 'bf16';
}

/**
 * Writes a tiny model into `dir` (created if missing; our files in it are replaced atomically):
 * config.json, generation_config.json, model.safetensors, tokenizer.json, tokenizer_config.json.
 */
export async function generateTinyModel(dir: string, preset: TinyPresetName | TinyPreset = 'tiny', seed = 0, opts: GenerateOptions = {}): Promise<GeneratedModel> {
  const base: TinyPreset = typeof preset === 'string' ? TINY_PRESETS[preset] : preset;
  if (!base) throw new RangeError(`unknown tiny-model preset '${String(preset)}'; presets: ${Object.keys(TINY_PRESETS).join(', ')}`);
  const p: TinyPreset = { ...base, dtype: opts.dtype ?? base.dtype };
  const config = tinyModelConfig(p);
  mkdirSync(dir, { recursive: true });
  const tok = buildTinyTokenizer(Math.min(p.vocabSize, 4096), p.maxPositionEmbeddings);

  const tensors = new Map<string, RawTensor>();
  for (const t of expectedTensors(config)) {
    tensors.set(t.name, {
      dtype: p.dtype === 'bf16' ? 'BF16' : 'F32',
      shape: t.shape,
      // generated when written, so a large preset holds one tensor at a time
      data: () => {
        const v = initValues(t, seed, p.init);
        return p.dtype === 'bf16' ? f32ToBf16(v) : v;
      },
    });
  }
  await writeSafetensors(join(dir, 'model.safetensors'), tensors, { metadata: { format: 'pt' } });

  const json = (v: unknown) => JSON.stringify(v, null, 2) + '\n';
  writeFileAtomicSync(join(dir, 'config.json'), json(toHfConfig(config, { transformers_version: '4.46.0' })));
  writeFileAtomicSync(
    join(dir, 'generation_config.json'),
    json({ _from_model_config: true, bos_token_id: IM_START, eos_token_id: IM_END, pad_token_id: ENDOFTEXT, transformers_version: '4.46.0' }),
  );
  writeFileAtomicSync(join(dir, 'tokenizer.json'), JSON.stringify(tok.tokenizerJson));
  writeFileAtomicSync(join(dir, 'tokenizer_config.json'), json(tok.tokenizerConfig));
  return {
    dir,
    preset: p,
    config,
    tokenizerSize: tok.size,
    files: ['config.json', 'generation_config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json'],
  };
}
