// Helpers of the deploy tests: a tiny base model with a trained-looking (non-zero) LoRA adapter, logits of
// a model on a prompt, and the adapter merged by hand (W + scale * B @ A in f64) as an independent reference.
import { Tensor } from '../../bindings/index.js';
import { loadModelFiles } from '../../src/model/files.js';
import type { ModelFiles } from '../../src/model/files.js';
import { LlamaModel } from '../../src/model/native-model.js';
import type { LoraConfig } from '../../src/model/native-model.js';
import { generateTinyModel } from '../../src/model/tiny.js';
import type { TinyPresetName } from '../../src/model/tiny.js';
import { uniform } from '../helpers/numeric.js';

/** Logits [T, V] of every position of `ids` (batch 1), as f32 values. */
export function logitsOf(model: LlamaModel, ids: readonly number[]): Float32Array {
  const t = Tensor.fromArray(Int32Array.from(ids), [1, ids.length], 'i32');
  try {
    const out = model.native.logits(t);
    try {
      return out.toFloat32();
    } finally {
      out.release();
    }
  } finally {
    t.release();
  }
}

/** Gives every lora_A / lora_B of the model uniform values (lora_B starts at zero, which would hide mistakes). */
export function randomizeAdapter(model: LlamaModel, seed: number, amp = 0.05): void {
  const state = model.adapterState('param');
  let s = seed;
  for (const v of Object.values(state)) {
    const u = uniform(v.data.length, s++, -amp, amp);
    for (let i = 0; i < u.length; i++) v.data[i] = u[i];
  }
  model.loadAdapterState(state);
}

export interface AdaptedModel {
  dir: string;
  files: ModelFiles;
  model: LlamaModel;
  tokenizerSize: number;
  dispose(): void;
}

/** A tiny model on disk and, in memory, that model with a random LoRA adapter. */
export async function adaptedTinyModel(dir: string, preset: TinyPresetName, lora: LoraConfig, seed = 1): Promise<AdaptedModel> {
  const gen = await generateTinyModel(dir, preset, seed);
  const files = loadModelFiles(dir);
  const model = LlamaModel.fromFiles(files);
  model.addLora(lora);
  randomizeAdapter(model, 100 + seed);
  return {
    dir,
    files,
    model,
    tokenizerSize: gen.tokenizerSize,
    dispose() {
      model.dispose();
      files.release();
    },
  };
}

/** softmax of a row of logits, in f64 */
export function softmax(row: ArrayLike<number>): Float64Array {
  let m = -Infinity;
  for (let i = 0; i < row.length; i++) m = Math.max(m, row[i]);
  const out = new Float64Array(row.length);
  let s = 0;
  for (let i = 0; i < row.length; i++) s += out[i] = Math.exp(row[i] - m);
  for (let i = 0; i < row.length; i++) out[i] /= s;
  return out;
}

export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`lengths differ: ${a.length} vs ${b.length}`);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}
