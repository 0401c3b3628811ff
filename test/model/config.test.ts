// config.json: real configs of the supported families (as published with SmolLM2, Qwen2.5, Llama 3.1,
// Mistral and TinyLlama) normalize to the numbers transformers uses; transformers 5.x spellings read the
// same; anything the runtime would compute differently is refused with the file, the field and the list
// of what is supported.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { checkSequenceLength, loadModelConfig, maxSequenceLength, normalizeModelConfig, toHfConfig } from '../../src/model/config.js';
import type { ModelConfig } from '../../src/model/config.js';
import { ModelFileError } from '../../src/model/errors.js';
import { expectedTensors, parameterCount } from '../../src/model/layout.js';

const SMOLLM2_135M = {
  architectures: ['LlamaForCausalLM'],
  attention_bias: false,
  attention_dropout: 0.0,
  bos_token_id: 1,
  eos_token_id: 2,
  head_dim: 64,
  hidden_act: 'silu',
  hidden_size: 576,
  initializer_range: 0.041666666666666664,
  intermediate_size: 1536,
  is_llama_config: true,
  max_position_embeddings: 8192,
  mlp_bias: false,
  model_type: 'llama',
  num_attention_heads: 9,
  num_hidden_layers: 30,
  num_key_value_heads: 3,
  pad_token_id: 2,
  pretraining_tp: 1,
  rms_norm_eps: 1e-5,
  rope_interleaved: false,
  rope_scaling: null,
  rope_theta: 100000,
  tie_word_embeddings: true,
  torch_dtype: 'bfloat16',
  transformers_version: '4.42.3',
  use_cache: true,
  vocab_size: 49152,
};

const QWEN25_05B = {
  architectures: ['Qwen2ForCausalLM'],
  attention_dropout: 0.0,
  bos_token_id: 151643,
  eos_token_id: 151645,
  hidden_act: 'silu',
  hidden_size: 896,
  initializer_range: 0.02,
  intermediate_size: 4864,
  max_position_embeddings: 32768,
  max_window_layers: 21,
  model_type: 'qwen2',
  num_attention_heads: 14,
  num_hidden_layers: 24,
  num_key_value_heads: 2,
  rms_norm_eps: 1e-6,
  rope_theta: 1000000.0,
  sliding_window: 32768,
  tie_word_embeddings: true,
  torch_dtype: 'bfloat16',
  use_cache: true,
  use_sliding_window: false,
  vocab_size: 151936,
};

const LLAMA31_8B = {
  architectures: ['LlamaForCausalLM'],
  attention_bias: false,
  attention_dropout: 0.0,
  bos_token_id: 128000,
  eos_token_id: [128001, 128008, 128009],
  hidden_act: 'silu',
  hidden_size: 4096,
  initializer_range: 0.02,
  intermediate_size: 14336,
  max_position_embeddings: 131072,
  mlp_bias: false,
  model_type: 'llama',
  num_attention_heads: 32,
  num_hidden_layers: 32,
  num_key_value_heads: 8,
  pretraining_tp: 1,
  rms_norm_eps: 1e-5,
  rope_scaling: { factor: 8.0, low_freq_factor: 1.0, high_freq_factor: 4.0, original_max_position_embeddings: 8192, rope_type: 'llama3' },
  rope_theta: 500000.0,
  tie_word_embeddings: false,
  torch_dtype: 'bfloat16',
  use_cache: true,
  vocab_size: 128256,
};

const MISTRAL_7B_V01 = {
  architectures: ['MistralForCausalLM'],
  bos_token_id: 1,
  eos_token_id: 2,
  hidden_act: 'silu',
  hidden_size: 4096,
  initializer_range: 0.02,
  intermediate_size: 14336,
  max_position_embeddings: 32768,
  model_type: 'mistral',
  num_attention_heads: 32,
  num_hidden_layers: 32,
  num_key_value_heads: 8,
  rms_norm_eps: 1e-5,
  rope_theta: 10000.0,
  sliding_window: 4096,
  tie_word_embeddings: false,
  torch_dtype: 'bfloat16',
  use_cache: true,
  vocab_size: 32000,
};

const TINYLLAMA_CHAT = {
  architectures: ['LlamaForCausalLM'],
  attention_bias: false,
  bos_token_id: 1,
  eos_token_id: 2,
  hidden_act: 'silu',
  hidden_size: 2048,
  initializer_range: 0.02,
  intermediate_size: 5632,
  max_position_embeddings: 2048,
  model_type: 'llama',
  num_attention_heads: 32,
  num_hidden_layers: 22,
  num_key_value_heads: 4,
  pretraining_tp: 1,
  rms_norm_eps: 1e-5,
  rope_scaling: null,
  rope_theta: 10000.0,
  tie_word_embeddings: false,
  torch_dtype: 'bfloat16',
  use_cache: true,
  vocab_size: 32000,
};

function expectConfigError(json: unknown, ...parts: (string | RegExp)[]): void {
  let err: unknown;
  try {
    normalizeModelConfig(json, 'some/config.json');
  } catch (e) {
    err = e;
  }
  expect(err).toBeInstanceOf(ModelFileError);
  expect((err as Error).message).toMatch(/^some\/config\.json/);
  for (const p of parts) expect((err as Error).message).toMatch(p);
}

describe('real configs', () => {
  test('SmolLM2-135M: tied, head_dim 64, rope_theta 1e5, 134.5M parameters', () => {
    const c = normalizeModelConfig(SMOLLM2_135M);
    expect(c).toEqual<ModelConfig>({
      architecture: 'LlamaForCausalLM',
      modelType: 'llama',
      vocabSize: 49152,
      hiddenSize: 576,
      intermediateSize: 1536,
      numLayers: 30,
      numHeads: 9,
      numKvHeads: 3,
      headDim: 64,
      rmsNormEps: 1e-5,
      ropeTheta: 100000,
      ropeScaling: { type: 'none' },
      tieWordEmbeddings: true,
      maxPositionEmbeddings: 8192,
      attentionBias: false,
      oProjBias: false,
      slidingWindow: null,
      bosTokenId: 1,
      eosTokenIds: [2],
      padTokenId: 2,
      torchDtype: 'bf16',
    });
    // the published parameter count of SmolLM2-135M
    expect(parameterCount(c)).toBe(134_515_008);
    expect(expectedTensors(c).some((t) => t.name === 'lm_head.weight')).toBe(false);
  });

  test('Qwen2.5-0.5B: q/k/v biases (o_proj none), head_dim from hidden/heads, unused sliding window ignored', () => {
    const c = normalizeModelConfig(QWEN25_05B);
    expect(c.architecture).toBe('Qwen2ForCausalLM');
    expect(c.headDim).toBe(64);
    expect(c.attentionBias).toBe(true);
    expect(c.oProjBias).toBe(false);
    expect(c.slidingWindow).toBeNull();
    expect(c.ropeTheta).toBe(1e6);
    expect(c.rmsNormEps).toBe(1e-6);
    const names = expectedTensors(c).map((t) => t.name);
    expect(names).toContain('model.layers.23.self_attn.k_proj.bias');
    expect(names).not.toContain('model.layers.0.self_attn.o_proj.bias');
    expect(expectedTensors(c).find((t) => t.name === 'model.layers.0.self_attn.k_proj.weight')!.shape).toEqual([128, 896]);
    expect(parameterCount(c)).toBe(494_032_768);
  });

  test('Llama-3.1-8B: llama3 rope scaling, several eos ids, untied', () => {
    const c = normalizeModelConfig(LLAMA31_8B);
    expect(c.ropeScaling).toEqual({ type: 'llama3', factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositionEmbeddings: 8192 });
    expect(c.ropeTheta).toBe(500000);
    expect(c.eosTokenIds).toEqual([128001, 128008, 128009]);
    expect(c.tieWordEmbeddings).toBe(false);
    expect(parameterCount(c)).toBe(8_030_261_248);
  });

  test('Mistral-7B-v0.1: the 4096-token sliding window limits sequences; v0.2 (null window) does not', () => {
    const c = normalizeModelConfig(MISTRAL_7B_V01);
    expect(c.slidingWindow).toBe(4096);
    expect(maxSequenceLength(c)).toBe(4096);
    expect(() => checkSequenceLength(c, 4096)).not.toThrow();
    expect(() => checkSequenceLength(c, 4097)).toThrow(/longer than the model's sliding attention window \(4096\)/);
    const v02 = normalizeModelConfig({ ...MISTRAL_7B_V01, sliding_window: null, rope_theta: 1e6 });
    expect(v02.slidingWindow).toBeNull();
    expect(maxSequenceLength(v02)).toBe(32768);
    expect(() => checkSequenceLength(v02, 32769)).toThrow(/max_position_embeddings \(32768\)/);
    // transformers' MistralConfig default when the field is absent
    const { sliding_window: _drop, ...noField } = MISTRAL_7B_V01;
    expect(normalizeModelConfig(noField).slidingWindow).toBe(4096);
  });

  test('Qwen2 with use_sliding_window: the window is enforced as for Mistral', () => {
    const c = normalizeModelConfig({ ...QWEN25_05B, use_sliding_window: true, sliding_window: 4096 });
    expect(c.slidingWindow).toBe(4096);
  });

  test('TinyLlama chat: GQA 32/4, head_dim 64', () => {
    const c = normalizeModelConfig(TINYLLAMA_CHAT);
    expect([c.numHeads, c.numKvHeads, c.headDim, c.maxPositionEmbeddings]).toEqual([32, 4, 64, 2048]);
  });

  test('transformers 5.x: rope_parameters and dtype', () => {
    const { rope_theta: _t, rope_scaling: _s, torch_dtype: _d, ...rest } = LLAMA31_8B;
    const c = normalizeModelConfig({ ...rest, dtype: 'bfloat16', rope_parameters: { ...LLAMA31_8B.rope_scaling, rope_theta: 500000.0 } });
    expect(c.ropeTheta).toBe(500000);
    expect(c.ropeScaling.type).toBe('llama3');
    expect(c.torchDtype).toBe('bf16');
    const d = normalizeModelConfig({ ...SMOLLM2_135M, rope_theta: undefined, rope_parameters: { rope_type: 'default', rope_theta: 100000 } });
    expect(d.ropeScaling).toEqual({ type: 'none' });
    expect(d.ropeTheta).toBe(100000);
  });

  test('defaults where fields are absent follow the architecture (transformers config classes)', () => {
    const minimal = { architectures: ['LlamaForCausalLM'], vocab_size: 100, hidden_size: 64, intermediate_size: 128, num_hidden_layers: 1, num_attention_heads: 4 };
    const c = normalizeModelConfig(minimal);
    expect([c.numKvHeads, c.headDim, c.rmsNormEps, c.ropeTheta, c.maxPositionEmbeddings, c.tieWordEmbeddings]).toEqual([4, 16, 1e-6, 10000, 2048, false]);
    expect(normalizeModelConfig({ ...minimal, architectures: undefined, model_type: 'qwen2', num_attention_heads: 32, hidden_size: 128 }).numKvHeads).toBe(32);
    expect(normalizeModelConfig({ ...minimal, num_key_value_heads: null }).numKvHeads).toBe(4);
    expect(normalizeModelConfig({ ...minimal, rope_scaling: { type: 'linear', factor: 2 } }).ropeScaling).toEqual({ type: 'linear', factor: 2 });
  });

  test('Llama with attention_bias: biases on q, k, v and o', () => {
    const c = normalizeModelConfig({ ...TINYLLAMA_CHAT, attention_bias: true });
    expect([c.attentionBias, c.oProjBias]).toEqual([true, true]);
    expect(expectedTensors(c).map((t) => t.name)).toContain('model.layers.0.self_attn.o_proj.bias');
  });

  test('toHfConfig is the inverse of normalizeModelConfig', () => {
    for (const raw of [SMOLLM2_135M, QWEN25_05B, LLAMA31_8B, MISTRAL_7B_V01, TINYLLAMA_CHAT, { ...QWEN25_05B, use_sliding_window: true, sliding_window: 4096 }, { ...TINYLLAMA_CHAT, attention_bias: true }]) {
      const c = normalizeModelConfig(raw);
      expect(normalizeModelConfig(JSON.parse(JSON.stringify(toHfConfig(c))))).toEqual(c);
    }
  });

  test('loadModelConfig reads a file and names it in errors', () => {
    const dir = mkdtempSync(join(tmpdir(), 'sw-config-'));
    try {
      const p = join(dir, 'config.json');
      writeFileSync(p, JSON.stringify(SMOLLM2_135M));
      expect(loadModelConfig(p).config.hiddenSize).toBe(576);
      expect(loadModelConfig(p).raw.is_llama_config).toBe(true);
      writeFileSync(p, '{"architectures": [');
      expect(() => loadModelConfig(p)).toThrow(new RegExp(`^${p.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: cannot read the model config`));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('refusals name the field and list what is supported', () => {
  test('another architecture', () => {
    expectConfigError({ ...SMOLLM2_135M, architectures: ['GemmaForCausalLM'] }, /at architectures\[0\]/, /'GemmaForCausalLM' is not supported/, /LlamaForCausalLM, Qwen2ForCausalLM, MistralForCausalLM/);
    expectConfigError({ ...SMOLLM2_135M, architectures: undefined, model_type: 'phi3' }, /at model_type/, /"phi3"/);
  });

  test('rope types other than default, linear, llama3; llama3 without its fields', () => {
    expectConfigError({ ...QWEN25_05B, rope_scaling: { factor: 4.0, original_max_position_embeddings: 32768, type: 'yarn' } }, /at rope_scaling\.type/, /'yarn' is not supported; supported: default, linear, llama3/);
    expectConfigError({ ...LLAMA31_8B, rope_scaling: { rope_type: 'dynamic', factor: 2 } }, /at rope_scaling\.rope_type/, /'dynamic'/);
    expectConfigError({ ...LLAMA31_8B, rope_parameters: { rope_type: 'longrope', rope_theta: 1e4 } }, /at rope_parameters\.rope_type/);
    const { low_freq_factor: _l, ...partial } = LLAMA31_8B.rope_scaling;
    expectConfigError({ ...LLAMA31_8B, rope_scaling: partial }, /at rope_scaling\.low_freq_factor/, /needs low_freq_factor/);
    expectConfigError({ ...LLAMA31_8B, rope_scaling: { ...LLAMA31_8B.rope_scaling, factor: -1 } }, /at rope_scaling\.factor/);
  });

  test('activation, MLP bias, attention dropout, partial rotary, quantization', () => {
    expectConfigError({ ...SMOLLM2_135M, hidden_act: 'gelu' }, /at hidden_act/, /'gelu' is not supported; supported: silu/);
    expectConfigError({ ...SMOLLM2_135M, mlp_bias: true }, /at mlp_bias/);
    expectConfigError({ ...SMOLLM2_135M, attention_dropout: 0.1 }, /at attention_dropout/);
    expectConfigError({ ...SMOLLM2_135M, partial_rotary_factor: 0.5 }, /at partial_rotary_factor/);
    expectConfigError({ ...LLAMA31_8B, quantization_config: { quant_method: 'gptq', bits: 4 } }, /at quantization_config/, /quant_method 'gptq'/);
  });

  test('inconsistent shapes and ids', () => {
    expectConfigError({ ...SMOLLM2_135M, num_key_value_heads: 4 }, /at num_key_value_heads/, /multiple of num_key_value_heads \(4\)/);
    expectConfigError({ ...TINYLLAMA_CHAT, hidden_size: 2050 }, /at hidden_size/, /not a multiple of num_attention_heads/);
    expectConfigError({ ...SMOLLM2_135M, head_dim: 63 }, /at head_dim/, /must be even/);
    expectConfigError({ ...SMOLLM2_135M, eos_token_id: [2, 49152] }, /at eos_token_id\[1\]/, /outside the vocabulary \(vocab_size 49152\)/);
    expectConfigError({ ...SMOLLM2_135M, torch_dtype: 'float64' }, /at torch_dtype/, /'float64' is not supported/);
  });

  test('schema errors carry the JSON path', () => {
    expectConfigError({ ...SMOLLM2_135M, hidden_size: '576' }, /at hidden_size/);
    expectConfigError({ ...SMOLLM2_135M, num_hidden_layers: 0 }, /at num_hidden_layers/);
    const { vocab_size: _v, ...noVocab } = SMOLLM2_135M;
    expectConfigError(noVocab, /at vocab_size/);
    expectConfigError({ ...LLAMA31_8B, rope_scaling: { ...LLAMA31_8B.rope_scaling, original_max_position_embeddings: 1.5 } }, /at rope_scaling\.original_max_position_embeddings/);
    expectConfigError([1, 2], /at \(root\)/);
  });
});
