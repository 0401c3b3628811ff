// config.json of the Llama family: LlamaForCausalLM, Qwen2ForCausalLM, MistralForCausalLM and the models
// that reuse them (SmolLM, TinyLlama, ...). A zod schema reads the raw file (transformers 4.x and 5.x
// spellings); `normalizeModelConfig` turns it into the ModelConfig the runtime uses, with transformers'
// per-architecture defaults, and refuses what the runtime would compute differently from transformers:
// another architecture, activation, RoPE type, partial rotary, MLP biases, attention dropout, quantized
// weights. Every refusal names the file, the JSON field and what is supported.
import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { ModelFileError, parseModelFile } from './errors.js';

export const SUPPORTED_ARCHITECTURES = ['LlamaForCausalLM', 'Qwen2ForCausalLM', 'MistralForCausalLM'] as const;
export type Architecture = (typeof SUPPORTED_ARCHITECTURES)[number];
const MODEL_TYPE_OF: Record<Architecture, 'llama' | 'qwen2' | 'mistral'> = {
  LlamaForCausalLM: 'llama',
  Qwen2ForCausalLM: 'qwen2',
  MistralForCausalLM: 'mistral',
};
const ARCH_OF_MODEL_TYPE: Record<string, Architecture> = { llama: 'LlamaForCausalLM', qwen2: 'Qwen2ForCausalLM', mistral: 'MistralForCausalLM' };
const SUPPORTED_TEXT = `${SUPPORTED_ARCHITECTURES.join(', ')} (and models that reuse them, such as SmolLM and TinyLlama)`;

export type RopeScaling =
  | { type: 'none' }
  | { type: 'linear'; factor: number }
  | { type: 'llama3'; factor: number; lowFreqFactor: number; highFreqFactor: number; originalMaxPositionEmbeddings: number };
export const SUPPORTED_ROPE_TYPES = ['default', 'linear', 'llama3'] as const;

export type WeightDType = 'f32' | 'bf16' | 'f16';

/** The normalized model configuration. Names follow transformers' fields in camelCase. */
export interface ModelConfig {
  architecture: Architecture;
  modelType: 'llama' | 'qwen2' | 'mistral';
  vocabSize: number;
  hiddenSize: number;
  intermediateSize: number;
  numLayers: number;
  numHeads: number;
  numKvHeads: number;
  /** head_dim, or hidden_size / num_attention_heads */
  headDim: number;
  rmsNormEps: number;
  ropeTheta: number;
  ropeScaling: RopeScaling;
  tieWordEmbeddings: boolean;
  maxPositionEmbeddings: number;
  /** q_proj, k_proj and v_proj have biases (Qwen2 always; Llama with attention_bias) */
  attentionBias: boolean;
  /** o_proj has a bias (Llama with attention_bias: transformers puts it on all four projections) */
  oProjBias: boolean;
  /**
   * Sliding-window attention width where the checkpoint asks for one that can matter (Mistral's
   * sliding_window, Qwen2 with use_sliding_window), else null. The runtime computes full causal attention,
   * which equals sliding-window attention for sequences of at most this many tokens; longer sequences
   * are refused (checkSequenceLength).
   */
  slidingWindow: number | null;
  bosTokenId: number | null;
  /** eos_token_id as a list (transformers allows one id or several) */
  eosTokenIds: number[];
  padTokenId: number | null;
  /** torch_dtype (4.x) or dtype (5.x): the dtype the weights were saved in, when stated */
  torchDtype: WeightDType | null;
}

const posInt = z.int().positive();
const tokenId = z.int().nonnegative();

const RawRope = z.looseObject({
  rope_type: z.string().optional(),
  type: z.string().optional(),
  rope_theta: z.number().positive().optional(),
  factor: z.number().positive().optional(),
  low_freq_factor: z.number().positive().optional(),
  high_freq_factor: z.number().positive().optional(),
  original_max_position_embeddings: posInt.optional(),
  partial_rotary_factor: z.number().optional(),
});

/** config.json as transformers writes it for these architectures (other fields are kept and ignored). */
export const RawModelConfig = z.looseObject({
  architectures: z.array(z.string()).min(1).nullish(),
  model_type: z.string().optional(),
  vocab_size: posInt,
  hidden_size: posInt,
  intermediate_size: posInt,
  num_hidden_layers: posInt,
  num_attention_heads: posInt,
  num_key_value_heads: posInt.nullish(),
  head_dim: posInt.nullish(),
  hidden_act: z.string().optional(),
  rms_norm_eps: z.number().positive().optional(),
  rope_theta: z.number().positive().optional(),
  rope_scaling: RawRope.nullish(),
  /** transformers 5.x: rope_theta and the scaling together */
  rope_parameters: RawRope.nullish(),
  partial_rotary_factor: z.number().optional(),
  tie_word_embeddings: z.boolean().optional(),
  max_position_embeddings: posInt.optional(),
  attention_bias: z.boolean().optional(),
  mlp_bias: z.boolean().optional(),
  attention_dropout: z.number().min(0).optional(),
  sliding_window: posInt.nullish(),
  use_sliding_window: z.boolean().optional(),
  bos_token_id: tokenId.nullish(),
  eos_token_id: z.union([tokenId, z.array(tokenId)]).nullish(),
  pad_token_id: tokenId.nullish(),
  torch_dtype: z.string().nullish(),
  dtype: z.string().nullish(),
  quantization_config: z.unknown().optional(),
});
export type RawModelConfig = z.infer<typeof RawModelConfig>;

/** transformers' defaults where config.json leaves a field out (configuration_{llama,qwen2,mistral}.py) */
const DEFAULTS = {
  llama: { rmsNormEps: 1e-6, ropeTheta: 10000, maxPositionEmbeddings: 2048, slidingWindow: null, kvHeads: null },
  qwen2: { rmsNormEps: 1e-6, ropeTheta: 10000, maxPositionEmbeddings: 32768, slidingWindow: 4096, kvHeads: 32 },
  mistral: { rmsNormEps: 1e-6, ropeTheta: 10000, maxPositionEmbeddings: 4096 * 32, slidingWindow: 4096, kvHeads: 8 },
} as const;

const DTYPES: Record<string, WeightDType> = { float32: 'f32', bfloat16: 'bf16', float16: 'f16' };

/** Reads and normalizes a config.json file. */
export function loadModelConfig(file: string): { config: ModelConfig; raw: Record<string, unknown> } {
  let json: unknown;
  try {
    json = JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    throw new ModelFileError(`cannot read the model config: ${(e as Error).message}`, { file });
  }
  return { config: normalizeModelConfig(json, file), raw: json as Record<string, unknown> };
}

/** Validates a parsed config.json and normalizes it; `file` names it in errors. */
export function normalizeModelConfig(json: unknown, file = 'config.json'): ModelConfig {
  const raw = parseModelFile(RawModelConfig, json, file);
  const fail = (path: string, msg: string): never => {
    throw new ModelFileError(msg, { file, path });
  };

  let architecture: Architecture;
  if (raw.architectures) {
    const a = raw.architectures[0];
    if (!(SUPPORTED_ARCHITECTURES as readonly string[]).includes(a)) fail('architectures[0]', `architecture '${a}' is not supported; supported: ${SUPPORTED_TEXT}`);
    architecture = a as Architecture;
  } else {
    const a = raw.model_type ? ARCH_OF_MODEL_TYPE[raw.model_type] : undefined;
    if (!a) fail(raw.model_type ? 'model_type' : 'architectures', `no supported architecture: model_type is ${JSON.stringify(raw.model_type ?? null)} and architectures is missing; supported: ${SUPPORTED_TEXT}`);
    architecture = a!;
  }
  const modelType = MODEL_TYPE_OF[architecture];
  const d = DEFAULTS[modelType];

  if (raw.quantization_config !== undefined && raw.quantization_config !== null) {
    const method = (raw.quantization_config as { quant_method?: unknown }).quant_method;
    fail('quantization_config', `quantized checkpoints${method ? ` (quant_method '${String(method)}')` : ''} are not supported; use the unquantized model (f32, bf16 or f16 weights)`);
  }
  const act = raw.hidden_act ?? 'silu';
  if (act !== 'silu' && act !== 'swish') fail('hidden_act', `activation '${act}' is not supported; supported: silu`);
  if (raw.mlp_bias) fail('mlp_bias', 'MLP biases (mlp_bias: true) are not supported; supported: mlp_bias false');
  if (raw.attention_dropout) fail('attention_dropout', `attention dropout ${raw.attention_dropout} is not supported; supported: 0 (LoRA dropout is configured on the adapters)`);

  const numHeads = raw.num_attention_heads;
  // absent: the config class's default; null: transformers' `if num_key_value_heads is None` (= heads)
  const numKvHeads = raw.num_key_value_heads === undefined ? (d.kvHeads ?? numHeads) : (raw.num_key_value_heads ?? numHeads);
  if (numHeads % numKvHeads !== 0) fail('num_key_value_heads', `num_attention_heads (${numHeads}) must be a multiple of num_key_value_heads (${numKvHeads})`);
  let headDim: number;
  if (raw.head_dim) headDim = raw.head_dim;
  else {
    if (raw.hidden_size % numHeads !== 0) fail('hidden_size', `hidden_size (${raw.hidden_size}) is not a multiple of num_attention_heads (${numHeads}) and head_dim is not given`);
    headDim = raw.hidden_size / numHeads;
  }
  if (headDim % 2 !== 0) fail(raw.head_dim ? 'head_dim' : 'hidden_size', `the head dimension ${headDim} must be even for rotary embeddings`);

  // RoPE: transformers 5.x keeps theta and scaling in rope_parameters, 4.x in rope_theta + rope_scaling
  const ropeField = raw.rope_parameters ? 'rope_parameters' : 'rope_scaling';
  const rope = raw.rope_parameters ?? raw.rope_scaling ?? null;
  const ropeTheta = raw.rope_parameters?.rope_theta ?? raw.rope_theta ?? d.ropeTheta;
  const partial = rope?.partial_rotary_factor ?? raw.partial_rotary_factor;
  if (partial !== undefined && partial !== 1) {
    fail(rope?.partial_rotary_factor !== undefined ? `${ropeField}.partial_rotary_factor` : 'partial_rotary_factor', `partial rotary embeddings (factor ${partial}) are not supported; supported: 1`);
  }
  let ropeScaling: RopeScaling = { type: 'none' };
  if (rope) {
    const typeKey = rope.rope_type !== undefined ? 'rope_type' : 'type';
    const type = rope.rope_type ?? rope.type ?? 'default';
    const need = (k: 'factor' | 'low_freq_factor' | 'high_freq_factor' | 'original_max_position_embeddings'): number =>
      rope[k] ?? fail(`${ropeField}.${k}`, `rope type '${type}' needs ${k}`);
    if (type === 'default') ropeScaling = { type: 'none' };
    else if (type === 'linear') ropeScaling = { type: 'linear', factor: need('factor') };
    else if (type === 'llama3') {
      ropeScaling = {
        type: 'llama3',
        factor: need('factor'),
        lowFreqFactor: need('low_freq_factor'),
        highFreqFactor: need('high_freq_factor'),
        originalMaxPositionEmbeddings: need('original_max_position_embeddings'),
      };
      if (ropeScaling.highFreqFactor <= ropeScaling.lowFreqFactor) fail(`${ropeField}.high_freq_factor`, 'high_freq_factor must be greater than low_freq_factor');
    } else {
      fail(`${ropeField}.${typeKey}`, `rope type '${type}' is not supported; supported: ${SUPPORTED_ROPE_TYPES.join(', ')}`);
    }
  }

  const maxPositionEmbeddings = raw.max_position_embeddings ?? d.maxPositionEmbeddings;
  let slidingWindow: number | null = null;
  if (modelType === 'mistral') slidingWindow = raw.sliding_window === undefined ? d.slidingWindow : raw.sliding_window;
  else if (modelType === 'qwen2' && raw.use_sliding_window) slidingWindow = raw.sliding_window ?? d.slidingWindow;
  if (slidingWindow !== null && slidingWindow >= maxPositionEmbeddings) slidingWindow = null;

  const eos = raw.eos_token_id;
  const eosTokenIds = eos === null || eos === undefined ? [] : Array.isArray(eos) ? eos : [eos];
  const ids: [string, number | null | undefined][] = [
    ['bos_token_id', raw.bos_token_id],
    ['pad_token_id', raw.pad_token_id],
    ...eosTokenIds.map((id, i): [string, number] => [Array.isArray(eos) ? `eos_token_id[${i}]` : 'eos_token_id', id]),
  ];
  for (const [field, id] of ids) {
    if (id !== null && id !== undefined && id >= raw.vocab_size) fail(field, `token id ${id} is outside the vocabulary (vocab_size ${raw.vocab_size})`);
  }

  const dtypeField = raw.dtype !== undefined && raw.dtype !== null ? 'dtype' : 'torch_dtype';
  const dtypeName = raw.dtype ?? raw.torch_dtype ?? null;
  let torchDtype: WeightDType | null = null;
  if (dtypeName !== null && dtypeName !== 'auto') {
    torchDtype = DTYPES[dtypeName] ?? fail(dtypeField, `dtype '${dtypeName}' is not supported; supported: ${Object.keys(DTYPES).join(', ')}`);
  }

  return {
    architecture,
    modelType,
    vocabSize: raw.vocab_size,
    hiddenSize: raw.hidden_size,
    intermediateSize: raw.intermediate_size,
    numLayers: raw.num_hidden_layers,
    numHeads,
    numKvHeads,
    headDim,
    rmsNormEps: raw.rms_norm_eps ?? d.rmsNormEps,
    ropeTheta,
    ropeScaling,
    tieWordEmbeddings: raw.tie_word_embeddings ?? false,
    maxPositionEmbeddings,
    attentionBias: modelType === 'qwen2' || (modelType === 'llama' && raw.attention_bias === true),
    oProjBias: modelType === 'llama' && raw.attention_bias === true,
    slidingWindow,
    bosTokenId: raw.bos_token_id ?? null,
    eosTokenIds,
    padTokenId: raw.pad_token_id ?? null,
    torchDtype,
  };
}

/** The longest sequence the runtime computes exactly like transformers for this model. */
export function maxSequenceLength(config: ModelConfig): number {
  return Math.min(config.maxPositionEmbeddings, config.slidingWindow ?? Infinity);
}

/** Throws when a sequence of `length` tokens is longer than maxSequenceLength(config). */
export function checkSequenceLength(config: ModelConfig, length: number): void {
  if (config.slidingWindow !== null && length > config.slidingWindow) {
    throw new RangeError(
      `a sequence of ${length} tokens is longer than the model's sliding attention window (${config.slidingWindow}); full attention would differ from the model's own, so sequences are limited to ${config.slidingWindow} tokens`,
    );
  }
  if (length > config.maxPositionEmbeddings) {
    throw new RangeError(`a sequence of ${length} tokens is longer than the model's max_position_embeddings (${config.maxPositionEmbeddings})`);
  }
}

const DTYPE_NAMES: Record<WeightDType, string> = { f32: 'float32', bf16: 'bfloat16', f16: 'float16' };

/** config.json text fields for a ModelConfig, as transformers 4.x writes them (the inverse of normalizeModelConfig). */
export function toHfConfig(c: ModelConfig, extra: Record<string, unknown> = {}): Record<string, unknown> {
  const out: Record<string, unknown> = {
    architectures: [c.architecture],
    model_type: c.modelType,
    vocab_size: c.vocabSize,
    hidden_size: c.hiddenSize,
    intermediate_size: c.intermediateSize,
    num_hidden_layers: c.numLayers,
    num_attention_heads: c.numHeads,
    num_key_value_heads: c.numKvHeads,
    head_dim: c.headDim,
    hidden_act: 'silu',
    rms_norm_eps: c.rmsNormEps,
    rope_theta: c.ropeTheta,
    rope_scaling:
      c.ropeScaling.type === 'none'
        ? null
        : c.ropeScaling.type === 'linear'
          ? { rope_type: 'linear', factor: c.ropeScaling.factor }
          : {
              rope_type: 'llama3',
              factor: c.ropeScaling.factor,
              low_freq_factor: c.ropeScaling.lowFreqFactor,
              high_freq_factor: c.ropeScaling.highFreqFactor,
              original_max_position_embeddings: c.ropeScaling.originalMaxPositionEmbeddings,
            },
    tie_word_embeddings: c.tieWordEmbeddings,
    max_position_embeddings: c.maxPositionEmbeddings,
    initializer_range: 0.02,
    attention_dropout: 0.0,
    use_cache: true,
    bos_token_id: c.bosTokenId,
    eos_token_id: c.eosTokenIds.length === 1 ? c.eosTokenIds[0] : c.eosTokenIds,
    pad_token_id: c.padTokenId,
    torch_dtype: c.torchDtype ? DTYPE_NAMES[c.torchDtype] : null,
  };
  if (c.modelType === 'llama') {
    out.attention_bias = c.attentionBias;
    out.mlp_bias = false;
  }
  if (c.modelType === 'qwen2') {
    out.use_sliding_window = c.slidingWindow !== null;
    out.sliding_window = c.slidingWindow ?? c.maxPositionEmbeddings;
  }
  if (c.modelType === 'mistral') out.sliding_window = c.slidingWindow;
  return { ...out, ...extra };
}
