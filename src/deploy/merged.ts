// A merged model: base + LoRA adapter folded into the weights (W' = W + scaling * B @ A, computed in f32 on
// the native core, then rounded to the output dtype as PEFT's merge_and_unload rounds into a bf16 model),
// written as a full Hugging Face directory that loadModelFiles and LlamaModel (and transformers) load:
// model.safetensors (or shards), config.json, generation_config.json and the tokenizer files, copied.
import { copyFileSync, existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { Tensor } from '../../bindings/tensor.js';
import { ops } from '../../bindings/ops.js';
import type { ModelFiles } from '../model/files.js';
import { writeFileAtomicSync } from '../model/atomic.js';
import { writeSafetensorsCheckpoint } from '../model/safetensors.js';
import type { RawTensor, SafetensorsDType } from '../model/safetensors.js';
import type { WeightDType } from '../model/config.js';
import { loraScale, parsePeftKey } from './peft.js';
import type { LoraAdapter } from './peft.js';
import { f32ToBf16, f32ToF16 } from './precision.js';

/** One tensor of the merged model: its f32 values on demand (one tensor in memory at a time). */
export interface MergedTensor {
  /** transformers' name */
  name: string;
  shape: number[];
  /** the dtype stored in the base checkpoint */
  baseDtype: SafetensorsDType;
  /** true when the adapter changed it */
  adapted: boolean;
  /** the base model's tensor (memory-mapped) */
  base: Tensor;
  values(): Float32Array;
}

/** The adapter's (A, B) per base weight name; throws when one of a pair is missing. */
export function adapterPairs(adapter: LoraAdapter): Map<string, { A: { shape: number[]; data: Float32Array }; B: { shape: number[]; data: Float32Array } }> {
  const pairs = new Map<string, { A?: { shape: number[]; data: Float32Array }; B?: { shape: number[]; data: Float32Array } }>();
  for (const [key, t] of adapter.tensors) {
    const k = parsePeftKey(key);
    if (!k) throw new Error(`adapter tensor '${key}' is not a LoRA projection tensor`);
    const p = pairs.get(k.baseName) ?? {};
    p[k.which] = t;
    pairs.set(k.baseName, p);
  }
  for (const [name, p] of pairs) if (!p.A || !p.B) throw new Error(`the adapter lacks lora_${p.A ? 'B' : 'A'} for ${name}`);
  return pairs as Map<string, { A: { shape: number[]; data: Float32Array }; B: { shape: number[]; data: Float32Array } }>;
}

/** W + scale * B @ A in f32 (the native matmul: C = alpha * B @ A + 1 * C). */
export function mergeWeight(w: Tensor, A: { shape: number[]; data: Float32Array }, B: { shape: number[]; data: Float32Array }, scale: number): Float32Array {
  const [out, inF] = w.shape;
  if (A.shape[1] !== inF || B.shape[0] !== out || A.shape[0] !== B.shape[1]) {
    throw new Error(`cannot merge lora_A [${A.shape.join(', ')}] and lora_B [${B.shape.join(', ')}] into a weight [${w.shape.join(', ')}]`);
  }
  const c = Tensor.fromArray(w.toFloat32(), [out, inF], 'f32');
  const a = Tensor.fromArray(A.data, A.shape, 'f32');
  const b = Tensor.fromArray(B.data, B.shape, 'f32');
  try {
    ops.matmul(b, a, c, false, false, scale, 1);
    return Float32Array.from(c.data<'f32'>());
  } finally {
    a.release();
    b.release();
    c.release();
  }
}

/**
 * Every weight of the model (transformers' names, checkpoint order) with the adapter merged in. Load the
 * files with `f16To: 'f32'` so that f16 checkpoints keep their exact values (the default widens to bf16).
 */
export function mergedTensors(files: ModelFiles, adapter: LoraAdapter | null): MergedTensor[] {
  const pairs = adapter ? adapterPairs(adapter) : new Map();
  const scale = adapter ? loraScale(adapter.config) : 0;
  for (const name of pairs.keys()) if (!files.weights.has(name)) throw new Error(`the adapter adapts ${name}, which the base model does not have`);
  return [...files.weights].map(([name, w]) => {
    const p = pairs.get(name);
    return {
      name,
      shape: [...w.shape],
      baseDtype: files.checkpoint.locate(name).entry.dtype,
      adapted: !!p,
      base: w,
      values: () => (p ? mergeWeight(w, p.A, p.B, scale) : w.toFloat32()),
    };
  });
}

const TORCH_DTYPE: Record<WeightDType, string> = { f32: 'float32', bf16: 'bfloat16', f16: 'float16' };
const ST_DTYPE: Record<WeightDType, SafetensorsDType> = { f32: 'F32', bf16: 'BF16', f16: 'F16' };
const FROM_ST: Partial<Record<SafetensorsDType, WeightDType>> = { F32: 'f32', BF16: 'bf16', F16: 'f16' };

/** Rounds f32 values to a dtype's bytes. */
export function encodeAs(values: Float32Array, dtype: WeightDType): ArrayBufferView {
  return dtype === 'f32' ? values : dtype === 'bf16' ? f32ToBf16(values) : f32ToF16(values);
}

/** The dtype of the base checkpoint's weights (config.json's torch_dtype, else the embedding's). */
export function baseWeightDtype(files: ModelFiles): WeightDType {
  return files.config.torchDtype ?? FROM_ST[files.checkpoint.locate('model.embed_tokens.weight').entry.dtype] ?? 'f32';
}

/** Files a Hugging Face directory carries beside the weights and config.json, copied as they are. */
export const TOKENIZER_FILES = [
  'tokenizer.json',
  'tokenizer_config.json',
  'special_tokens_map.json',
  'chat_template.jinja',
  'chat_template.json',
  'tokenizer.model',
  'vocab.json',
  'merges.txt',
  'added_tokens.json',
];

export interface MergedModelOptions {
  /** weight dtype (default: each tensor keeps the base checkpoint's dtype) */
  dtype?: WeightDType;
  /** shard size in bytes of tensor data (default 5 GB, as save_pretrained) */
  maxShardBytes?: number;
}

export interface MergedModelResult {
  dir: string;
  /** files written, relative to dir, with their role */
  files: { path: string; role: string; tensorTypes?: Record<string, number> }[];
  dtype: WeightDType;
  adaptedTensors: number;
}

/** Writes base + adapter merged into `outDir` as a Hugging Face model directory. */
export async function writeMergedModel(outDir: string, files: ModelFiles, adapter: LoraAdapter | null, opts: MergedModelOptions = {}): Promise<MergedModelResult> {
  mkdirSync(outDir, { recursive: true });
  const merged = mergedTensors(files, adapter);
  const tensors = new Map<string, RawTensor | Tensor>();
  const types: Record<string, number> = {};
  for (const t of merged) {
    const dtype = opts.dtype ?? FROM_ST[t.baseDtype] ?? 'f32';
    types[ST_DTYPE[dtype]] = (types[ST_DTYPE[dtype]] ?? 0) + 1;
    // an untouched tensor already in the output dtype is written from the mapping, without a copy
    if (!t.adapted && t.base.dtype === dtype) tensors.set(t.name, t.base);
    else tensors.set(t.name, { dtype: ST_DTYPE[dtype], shape: t.shape, data: () => encodeAs(t.values(), dtype) });
  }
  const weightFiles = await writeSafetensorsCheckpoint(outDir, tensors, { metadata: { format: 'pt' }, maxShardBytes: opts.maxShardBytes });
  const dtype = opts.dtype ?? baseWeightDtype(files);
  const config = { ...files.rawConfig };
  if (opts.dtype || 'torch_dtype' in config || 'dtype' in config) {
    if ('dtype' in config && !('torch_dtype' in config)) config.dtype = TORCH_DTYPE[dtype];
    else config.torch_dtype = TORCH_DTYPE[dtype];
  }
  writeFileAtomicSync(join(outDir, 'config.json'), JSON.stringify(config, null, 2) + '\n');
  const out: MergedModelResult['files'] = weightFiles.map((f) => ({ path: f, role: f.endsWith('.json') ? 'weights index' : 'weights', ...(f.endsWith('.json') ? {} : { tensorTypes: types }) }));
  out.push({ path: 'config.json', role: 'config' });
  for (const [name, role] of [['generation_config.json', 'generation config'], ...TOKENIZER_FILES.map((f) => [f, 'tokenizer'])]) {
    const src = join(files.dir, name);
    if (!existsSync(src)) continue;
    copyFileSync(src, join(outDir, name));
    out.push({ path: name, role });
  }
  return { dir: outDir, files: out, dtype, adaptedTensors: merged.filter((t) => t.adapted).length };
}
