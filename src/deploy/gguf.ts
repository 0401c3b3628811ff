// Llama-family models and LoRA adapters as GGUF files that llama.cpp (and so Ollama) loads, following
// llama.cpp's convert_hf_to_gguf.py (LlamaModel, Qwen2Model) and convert_lora_to_gguf.py:
//
//   architecture   LlamaForCausalLM / MistralForCausalLM -> "llama"; Qwen2ForCausalLM -> "qwen2"
//   tensor names   model.embed_tokens -> token_embd, layers.N.input_layernorm -> blk.N.attn_norm,
//                  self_attn.{q,k,v,o}_proj -> blk.N.attn_{q,k,v,output}, post_attention_layernorm ->
//                  blk.N.ffn_norm, mlp.{gate,up,down}_proj -> blk.N.ffn_{gate,up,down}, model.norm ->
//                  output_norm, lm_head -> output (absent when tied: llama.cpp reuses token_embd)
//   q/k rows       "llama" uses ggml's normal (adjacent-pair) RoPE while transformers rotates halves, so
//                  the rows of q_proj and k_proj (weights and biases; for k with the KV head count) are
//                  permuted per head: row h*D + 2j + s <- row h*D + s*D/2 + j. "qwen2" uses NeoX RoPE: no
//                  permutation. A LoRA adapter permutes lora_B's rows the same way (lora_A is untouched).
//   types          1-D tensors (norms, biases) F32; matrices F32 / F16 / BF16 / Q8_0 (F16 where a row is
//                  not a whole number of Q8_0 blocks, as convert_hf_to_gguf falls back)
//   tokenizer      "gpt2" (byte-level BPE): tokens (padded to vocab_size with [PADn], UNUSED), token types
//                  (NORMAL; added special tokens CONTROL, other added tokens USER_DEFINED), merges, the
//                  pre-tokenizer name llama.cpp selects its split regex by, bos/eos/padding ids,
//                  add_bos/add_eos, the chat template; SentencePiece-style BPE (byte_fallback) as "llama" with
//                  scores from the merge order, byte / unknown / control token types, add_space_prefix
//   adapter        general.type "adapter", adapter.type "lora", adapter.lora.alpha, tensors
//                  blk.N.attn_q.weight.lora_a [r, in] and .lora_b [out, r]. llama.cpp scales by alpha / r;
//                  an rsLoRA adapter (alpha / sqrt(r)) is written with alpha * sqrt(r) so the scale is kept.
import { existsSync, readFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import type { ModelConfig } from '../model/config.js';
import type { ModelFiles } from '../model/files.js';
import { ModelFileError } from '../model/errors.js';
import type { ModelTokenizer } from '../model/tokenizer.js';
import { encodeTensor, canEncode, gv, writeGguf } from './gguf-file.js';
import type { GgmlType, GgufTensor, GgufValue, GgufWriteResult } from './gguf-file.js';
import { adapterPairs, mergedTensors } from './merged.js';
import { loraScale } from './peft.js';
import type { LoraAdapter } from './peft.js';

export type GgufDType = 'f32' | 'f16' | 'bf16' | 'q8_0';

const MATRIX_TYPE: Record<GgufDType, GgmlType> = { f32: 'F32', f16: 'F16', bf16: 'BF16', q8_0: 'Q8_0' };
/** gguf-py LlamaFileType */
const FILE_TYPE: Record<GgufDType, number> = { f32: 0, f16: 1, q8_0: 7, bf16: 32 };
/** gguf-py TokenType */
export const TOKEN_TYPE = { NORMAL: 1, UNKNOWN: 2, CONTROL: 3, USER_DEFINED: 4, UNUSED: 5, BYTE: 6 } as const;

/** llama.cpp's architecture name for a model. */
export function ggufArchitecture(c: ModelConfig): 'llama' | 'qwen2' {
  switch (c.architecture) {
    case 'LlamaForCausalLM':
    case 'MistralForCausalLM':
      return 'llama';
    case 'Qwen2ForCausalLM':
      return 'qwen2';
  }
}

const LAYER_NAMES: Record<string, string> = {
  input_layernorm: 'attn_norm',
  'self_attn.q_proj': 'attn_q',
  'self_attn.k_proj': 'attn_k',
  'self_attn.v_proj': 'attn_v',
  'self_attn.o_proj': 'attn_output',
  post_attention_layernorm: 'ffn_norm',
  'mlp.gate_proj': 'ffn_gate',
  'mlp.up_proj': 'ffn_up',
  'mlp.down_proj': 'ffn_down',
};

/** GGUF tensor name of a transformers tensor name. */
export function ggufTensorName(hfName: string): string {
  if (hfName === 'model.embed_tokens.weight') return 'token_embd.weight';
  if (hfName === 'model.norm.weight') return 'output_norm.weight';
  if (hfName === 'lm_head.weight') return 'output.weight';
  const m = /^model\.layers\.(\d+)\.(.+)\.(weight|bias)$/.exec(hfName);
  const mapped = m && LAYER_NAMES[m[2]];
  if (!m || !mapped) throw new Error(`no GGUF name for tensor '${hfName}'`);
  return `blk.${m[1]}.${mapped}.${m[3]}`;
}

/**
 * convert_hf_to_gguf's LlamaModel.permute on the rows of a [rows, cols] tensor (cols 1 for a bias):
 * reshape(heads, 2, rows / heads / 2, cols).swapaxes(1, 2).
 */
export function permuteRows(values: Float32Array, rows: number, cols: number, heads: number): Float32Array {
  const d = rows / heads;
  if (!Number.isInteger(d) || d % 2) throw new Error(`cannot permute ${rows} rows into ${heads} heads of even size`);
  const half = d / 2;
  const out = new Float32Array(values.length);
  for (let h = 0; h < heads; h++)
    for (let j = 0; j < half; j++)
      for (let s = 0; s < 2; s++) {
        const to = (h * d + j * 2 + s) * cols;
        const from = (h * d + s * half + j) * cols;
        out.set(values.subarray(from, from + cols), to);
      }
  return out;
}

/** The head count whose rows a tensor's permutation groups (llama only; null: no permutation). */
function permuteHeads(arch: string, c: ModelConfig, hfName: string): number | null {
  if (arch !== 'llama') return null;
  if (/\.self_attn\.q_proj\.(weight|bias)$/.test(hfName)) return c.numHeads;
  if (/\.self_attn\.k_proj\.(weight|bias)$/.test(hfName)) return c.numKvHeads;
  return null;
}

function matrixType(shape: readonly number[], dtype: GgufDType): GgmlType {
  if (shape.length < 2) return 'F32';
  const t = MATRIX_TYPE[dtype];
  return canEncode(shape, t) ? t : 'F16';
}

/** convert_hf_to_gguf LlamaModel.generate_extra_tensors: llama3 RoPE frequency factors (rope_freqs.weight). */
export function llama3RopeFactors(c: ModelConfig): Float32Array | null {
  const rs = c.ropeScaling;
  if (rs.type !== 'llama3') return null;
  const dim = c.headDim;
  const out = new Float32Array(dim / 2);
  const lowWavelen = rs.originalMaxPositionEmbeddings / rs.lowFreqFactor;
  const highWavelen = rs.originalMaxPositionEmbeddings / rs.highFreqFactor;
  for (let i = 0; i < dim / 2; i++) {
    const freq = 1 / Math.pow(c.ropeTheta, Math.fround((2 * i) / dim));
    const wavelen = (2 * Math.PI) / freq;
    if (wavelen < highWavelen) out[i] = 1;
    else if (wavelen > lowWavelen) out[i] = rs.factor;
    else {
      const smooth = (rs.originalMaxPositionEmbeddings / wavelen - rs.lowFreqFactor) / (rs.highFreqFactor - rs.lowFreqFactor);
      out[i] = 1 / ((1 - smooth) / rs.factor + smooth);
    }
  }
  return out;
}

/** The hyperparameter keys (TextModel / LlamaModel set_gguf_parameters). */
export function hyperparameterMetadata(c: ModelConfig): [string, GgufValue][] {
  const arch = ggufArchitecture(c);
  const kv: [string, GgufValue][] = [
    [`${arch}.vocab_size`, gv.u32(c.vocabSize)],
    [`${arch}.context_length`, gv.u32(c.maxPositionEmbeddings)],
    [`${arch}.embedding_length`, gv.u32(c.hiddenSize)],
    [`${arch}.block_count`, gv.u32(c.numLayers)],
    [`${arch}.feed_forward_length`, gv.u32(c.intermediateSize)],
    [`${arch}.rope.dimension_count`, gv.u32(c.headDim)],
    [`${arch}.attention.head_count`, gv.u32(c.numHeads)],
    [`${arch}.attention.head_count_kv`, gv.u32(c.numKvHeads)],
    [`${arch}.attention.layer_norm_rms_epsilon`, gv.f32(c.rmsNormEps)],
    [`${arch}.rope.freq_base`, gv.f32(c.ropeTheta)],
  ];
  if (c.headDim * c.numHeads !== c.hiddenSize) kv.push([`${arch}.attention.key_length`, gv.u32(c.headDim)], [`${arch}.attention.value_length`, gv.u32(c.headDim)]);
  if (c.ropeScaling.type === 'linear') kv.push([`${arch}.rope.scaling.type`, gv.str('linear')], [`${arch}.rope.scaling.factor`, gv.f32(c.ropeScaling.factor)]);
  return kv;
}

// ---------------------------------------------------------------------------------------------------
// Tokenizer

/** The Split regexes of tokenizer.json that llama.cpp knows by a pre-tokenizer name. */
const LLAMA3_SPLIT = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
const QWEN2_SPLIT = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

interface TokenizerJson {
  model?: { type?: string; vocab?: Record<string, number>; merges?: (string | [string, string])[]; ignore_merges?: boolean; byte_fallback?: boolean };
  added_tokens?: { id: number; content: string; special?: boolean }[] | null;
  pre_tokenizer?: Record<string, unknown> | null;
}

type PreTok = { type?: string; pattern?: { Regex?: string; String?: string }; use_regex?: boolean; individual_digits?: boolean; pretokenizers?: PreTok[] };

/**
 * The tokenizer.ggml.pre name for a byte-level BPE tokenizer.json, found from its pre-tokenizer (llama.cpp's
 * converter finds it from a hash of sample tokenizations; the structure names the same regex).
 */
export function ggufPreTokenizer(tj: TokenizerJson, file = 'tokenizer.json'): string {
  const pre = (tj.pre_tokenizer ?? null) as PreTok | null;
  const seq = pre?.type === 'Sequence' ? (pre.pretokenizers ?? []) : pre ? [pre] : [];
  const split = seq.find((p) => p.type === 'Split');
  const byteLevel = seq.find((p) => p.type === 'ByteLevel');
  if (split && byteLevel && seq.length === 2 && byteLevel.use_regex === false) {
    const re = split.pattern?.Regex;
    if (re === LLAMA3_SPLIT) return tj.model?.ignore_merges ? 'llama-bpe' : 'smaug-bpe';
    if (re === QWEN2_SPLIT) return 'qwen2';
  }
  if (seq.length === 1 && byteLevel && byteLevel.use_regex !== false) return 'gpt-2';
  const digits = seq.find((p) => p.type === 'Digits');
  if (seq.length === 2 && digits?.individual_digits && byteLevel && byteLevel.use_regex !== false) return 'smollm';
  throw new ModelFileError(
    `the pre-tokenizer ${JSON.stringify(tj.pre_tokenizer)?.slice(0, 300)} is not one llama.cpp knows by name here (supported: the Llama 3 split regex -> llama-bpe / smaug-bpe, Qwen2's -> qwen2, GPT-2 byte-level -> gpt-2, digits + byte-level -> smollm)`,
    { file, path: 'pre_tokenizer' },
  );
}

/** `<|...|>`, `<｜...｜>`, `<s>`-style text: convert_hf_to_gguf's does_token_look_special. */
function looksSpecial(t: string): boolean {
  return (/^<\|.*\|>$/s.test(t) || /^<｜.*｜>$/s.test(t)) || ['<s>', '</s>', '<unk>', '<pad>', '<mask>', '<eos>', '<bos>'].includes(t);
}

export interface GgufTokenizerInfo {
  pre: string;
  tokens: number;
  merges: number;
}

/**
 * SentencePiece-style BPE (tokenizer.json BPE with byte_fallback, as transformers converts Llama 2 /
 * Mistral / TinyLlama tokenizer.model files) as GGUF tokenizer model "llama": llama.cpp merges adjacent
 * pieces whose concatenation is a token, highest score first. transformers' converter listed every split
 * of each piece as a merge, in the piece's score order, so the score of a piece is minus the rank of its
 * first merge (earlier merges win, as in the BPE). Pieces no merge produces (single characters, bytes,
 * specials) score 0: they are never the result of a merge.
 */
function spmScores(model: NonNullable<TokenizerJson['model']>, vocabSize: number): number[] {
  const scores = new Array<number>(vocabSize).fill(0);
  const seen = new Set<number>();
  (model.merges ?? []).forEach((m, rank) => {
    const [a, b] = Array.isArray(m) ? m : m.split(' ');
    const id = model.vocab?.[a + b];
    if (id !== undefined && id < vocabSize && !seen.has(id)) {
      seen.add(id);
      scores[id] = -(rank + 1);
    }
  });
  return scores;
}

type Normalizer = { type?: string; prepend?: string; normalizers?: Normalizer[] };

/** Whether a SentencePiece-style tokenizer.json puts '▁' before the text (llama.cpp's add_space_prefix). */
function spmAddsSpacePrefix(tj: TokenizerJson & { normalizer?: Normalizer | null }): boolean {
  const norms = tj.normalizer?.type === 'Sequence' ? (tj.normalizer.normalizers ?? []) : tj.normalizer ? [tj.normalizer] : [];
  if (norms.some((n) => n.type === 'Prepend' && n.prepend === '\u2581')) return true;
  const pre = tj.pre_tokenizer as { type?: string; prepend_scheme?: string; add_prefix_space?: boolean } | null | undefined;
  if (pre?.type === 'Metaspace') return pre.prepend_scheme ? pre.prepend_scheme !== 'never' : pre.add_prefix_space !== false;
  return false;
}

/** tokenizer.ggml.* and tokenizer.chat_template for a model directory's tokenizer. */
export function tokenizerMetadata(dir: string, tok: ModelTokenizer, vocabSize: number): { kv: [string, GgufValue][]; info: GgufTokenizerInfo } {
  const file = join(dir, 'tokenizer.json');
  if (!existsSync(file)) throw new ModelFileError('missing tokenizer.json (the GGUF tokenizer section is built from it)', { file });
  const tj = JSON.parse(readFileSync(file, 'utf8')) as TokenizerJson;
  const model = tj.model ?? {};
  if (model.type !== 'BPE') throw new ModelFileError(`tokenizer model type ${JSON.stringify(model.type)} is not supported for GGUF (BPE only: byte-level or SentencePiece-style)`, { file, path: 'model.type' });
  const spm = !!model.byte_fallback;
  const pre = spm ? 'llama (SentencePiece)' : ggufPreTokenizer(tj, file);
  const byId: (string | undefined)[] = new Array(vocabSize);
  const types = new Array<number>(vocabSize).fill(TOKEN_TYPE.UNUSED);
  for (const [t, id] of Object.entries(model.vocab ?? {})) {
    if (id >= vocabSize) throw new ModelFileError(`token id ${id} is beyond the model's vocab_size ${vocabSize}`, { file, path: `model.vocab.${t}` });
    byId[id] = t;
    types[id] = spm && /^<0x[0-9A-Fa-f]{2}>$/.test(t) ? TOKEN_TYPE.BYTE : TOKEN_TYPE.NORMAL;
  }
  for (const a of tj.added_tokens ?? []) {
    if (a.id >= vocabSize) throw new ModelFileError(`added token id ${a.id} is beyond the model's vocab_size ${vocabSize}`, { file, path: 'added_tokens' });
    byId[a.id] = a.content;
    types[a.id] = spm && a.content === (model as { unk_token?: string }).unk_token ? TOKEN_TYPE.UNKNOWN : a.special || looksSpecial(a.content) ? TOKEN_TYPE.CONTROL : TOKEN_TYPE.USER_DEFINED;
  }
  const tokens = Array.from(byId, (t, i) => t ?? `[PAD${i}]`);
  const merges = (model.merges ?? []).map((m) => (Array.isArray(m) ? `${m[0]} ${m[1]}` : m));
  const kv: [string, GgufValue][] = spm
    ? [
        ['tokenizer.ggml.model', gv.str('llama')],
        ['tokenizer.ggml.tokens', gv.arr('string', tokens)],
        ['tokenizer.ggml.scores', gv.arr('float32', spmScores(model, vocabSize))],
        ['tokenizer.ggml.token_type', gv.arr('int32', types)],
        ['tokenizer.ggml.add_space_prefix', gv.bool(spmAddsSpacePrefix(tj))],
      ]
    : [
        ['tokenizer.ggml.model', gv.str('gpt2')],
        ['tokenizer.ggml.pre', gv.str(pre)],
        ['tokenizer.ggml.tokens', gv.arr('string', tokens)],
        ['tokenizer.ggml.token_type', gv.arr('int32', types)],
        ['tokenizer.ggml.merges', gv.arr('string', merges)],
      ];
  if (tok.bosTokenId !== null) kv.push(['tokenizer.ggml.bos_token_id', gv.u32(tok.bosTokenId)]);
  if (tok.eosTokenId !== null) kv.push(['tokenizer.ggml.eos_token_id', gv.u32(tok.eosTokenId)]);
  const unk = spm ? (model as { unk_token?: string }).unk_token : undefined;
  if (unk !== undefined && model.vocab?.[unk] !== undefined) kv.push(['tokenizer.ggml.unknown_token_id', gv.u32(model.vocab[unk])]);
  if (tok.padTokenId !== null) kv.push(['tokenizer.ggml.padding_token_id', gv.u32(tok.padTokenId)]);
  kv.push(['tokenizer.ggml.add_bos_token', gv.bool(tok.addBos)], ['tokenizer.ggml.add_eos_token', gv.bool(tok.addEos)]);
  if (tok.chatTemplate) kv.push(['tokenizer.chat_template', gv.str(tok.chatTemplate)]);
  return { kv, info: { pre, tokens: tokens.length, merges: merges.length } };
}

// ---------------------------------------------------------------------------------------------------
// Writers

export interface GgufModelOptions {
  /** matrix precision (default: the base weights' dtype; f16 checkpoints stay f16) */
  dtype?: GgufDType;
  /** general.name (default: the base directory's name) */
  name?: string;
}

export interface GgufExportResult extends GgufWriteResult {
  path: string;
  architecture: string;
  dtype: GgufDType;
  tokenizer: GgufTokenizerInfo | null;
}

function baseGgufDtype(files: ModelFiles): GgufDType {
  const d = files.config.torchDtype ?? { F32: 'f32', BF16: 'bf16', F16: 'f16' }[files.checkpoint.locate('model.embed_tokens.weight').entry.dtype as 'F32'] ?? 'f32';
  return d as GgufDType;
}

/** A model file's metadata: general.*, the hyperparameters and the tokenizer of the model directory `dir`. */
export function ggufModelMetadata(c: ModelConfig, dir: string, tok: ModelTokenizer, opts: { dtype: GgufDType; name: string }): { kv: [string, GgufValue][]; tokenizer: GgufTokenizerInfo } {
  const t = tokenizerMetadata(dir, tok, c.vocabSize);
  const kv: [string, GgufValue][] = [
    ['general.architecture', gv.str(ggufArchitecture(c))],
    ['general.type', gv.str('model')],
    ['general.name', gv.str(opts.name)],
    ...hyperparameterMetadata(c),
    ['general.file_type', gv.u32(FILE_TYPE[opts.dtype])],
    ['general.quantization_version', gv.u32(2)],
    ...t.kv,
  ];
  return { kv, tokenizer: t.info };
}

/** Writes base + adapter (merged; no adapter: the base itself) as a GGUF model file. */
export async function writeGgufModel(path: string, files: ModelFiles, adapter: LoraAdapter | null, opts: GgufModelOptions = {}): Promise<GgufExportResult> {
  const c = files.config;
  const arch = ggufArchitecture(c);
  const dtype = opts.dtype ?? baseGgufDtype(files);
  if (!files.tokenizer) throw new Error('the model files were loaded without their tokenizer; GGUF needs it');
  const meta = ggufModelMetadata(c, files.dir, files.tokenizer, { dtype, name: opts.name ?? basename(files.dir) });
  const tensors: GgufTensor[] = [];
  const rope = llama3RopeFactors(c);
  if (rope) tensors.push({ name: 'rope_freqs.weight', shape: [rope.length], type: 'F32', data: () => encodeTensor(rope, 'F32') });
  for (const t of mergedTensors(files, adapter)) {
    const type = matrixType(t.shape, dtype);
    const heads = permuteHeads(arch, c, t.name);
    tensors.push({
      name: ggufTensorName(t.name),
      shape: t.shape,
      type,
      data: () => {
        const v = t.values();
        return encodeTensor(heads ? permuteRows(v, t.shape[0], t.shape[1] ?? 1, heads) : v, type);
      },
    });
  }
  const res = await writeGguf(path, meta.kv, tensors);
  return { ...res, path, architecture: arch, dtype, tokenizer: meta.tokenizer };
}

export interface GgufAdapterOptions {
  /** lora tensor precision (default f32, as convert_lora_to_gguf.py) */
  dtype?: GgufDType;
  name?: string;
}

/** Writes a LoRA adapter as a GGUF adapter file (llama.cpp --lora, Ollama ADAPTER) for the base `config`. */
export async function writeGgufAdapter(path: string, config: ModelConfig, adapter: LoraAdapter, opts: GgufAdapterOptions = {}): Promise<GgufExportResult> {
  const arch = ggufArchitecture(config);
  const dtype = opts.dtype ?? 'f32';
  const c = adapter.config;
  // llama.cpp scales by alpha / rank; keep PEFT's scale (alpha / r, or alpha / sqrt(r) with rsLoRA)
  const alpha = loraScale(c) * c.r;
  const kv: [string, GgufValue][] = [
    ['general.architecture', gv.str(arch)],
    ['general.type', gv.str('adapter')],
    ...(opts.name ? [['general.name', gv.str(opts.name)] as [string, GgufValue]] : []),
    ['adapter.type', gv.str('lora')],
    ['adapter.lora.alpha', gv.f32(alpha)],
    ['general.file_type', gv.u32(FILE_TYPE[dtype])],
    ['general.quantization_version', gv.u32(2)],
  ];
  const tensors: GgufTensor[] = [];
  for (const [baseName, { A, B }] of adapterPairs(adapter)) {
    const name = ggufTensorName(baseName);
    const heads = permuteHeads(arch, config, baseName);
    const ta = matrixType(A.shape, dtype);
    const tb = matrixType(B.shape, dtype);
    tensors.push(
      { name: `${name}.lora_a`, shape: A.shape, type: ta, data: () => encodeTensor(A.data, ta) },
      { name: `${name}.lora_b`, shape: B.shape, type: tb, data: () => encodeTensor(heads ? permuteRows(B.data, B.shape[0], B.shape[1], heads) : B.data, tb) },
    );
  }
  const res = await writeGguf(path, kv, tensors);
  return { ...res, path, architecture: arch, dtype, tokenizer: null };
}
