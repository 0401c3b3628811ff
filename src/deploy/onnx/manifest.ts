// The export directory's layout and export.json, the manifest every ONNX export writes beside model.onnx.
import type { ModelConfig } from '../../model/config.js';
import { DIM, pastKeyName, presentName } from './decoder-graph.js';
import type { Precision } from './decoder-graph.js';
import type { Int8Accuracy } from './accuracy.js';

export const ONNX_MODEL_FILE = 'model.onnx';
export const ONNX_DATA_FILE = 'model.onnx.data';
export const ONNX_MANIFEST_FILE = 'export.json';
export interface OnnxTensorSpec {
  name: string;
  dtype: 'int64' | 'float32';
  dims: (number | string)[];
}

export interface OnnxExportManifest {
  format: 'onnx';
  precision: Precision;
  opset: number;
  irVersion: number;
  producer: string;
  files: { name: string; bytes: number; sha256: string }[];
  inputs: OnnxTensorSpec[];
  outputs: OnnxTensorSpec[];
  model: {
    architecture: string;
    vocabSize: number;
    hiddenSize: number;
    numLayers: number;
    numHeads: number;
    numKvHeads: number;
    headDim: number;
    parameters: number;
    /** bytes of weights a decode step reads (every initializer) */
    weightBytes: number;
  };
  source: { modelDir: string; adapter: string | null; weightsDType: string | null; createdAt: string };
  /** int8 exports: the accuracy cost measured against the f32 export of the same weights */
  accuracy?: Int8Accuracy;
}

export function ioSpec(c: ModelConfig): { inputs: OnnxTensorSpec[]; outputs: OnnxTensorSpec[] } {
  const kv = (name: string, len: string): OnnxTensorSpec => ({ name, dtype: 'float32', dims: [DIM.batch, c.numKvHeads, len, c.headDim] });
  const inputs: OnnxTensorSpec[] = [
    { name: 'input_ids', dtype: 'int64', dims: [DIM.batch, DIM.seq] },
    { name: 'attention_mask', dtype: 'int64', dims: [DIM.batch, DIM.total] },
    { name: 'position_ids', dtype: 'int64', dims: [DIM.batch, DIM.seq] },
  ];
  const outputs: OnnxTensorSpec[] = [{ name: 'logits', dtype: 'float32', dims: [DIM.batch, DIM.seq, c.vocabSize] }];
  for (let l = 0; l < c.numLayers; l++)
    for (const k of ['key', 'value'] as const) {
      inputs.push(kv(pastKeyName(l, k), DIM.past));
      outputs.push(kv(presentName(l, k), DIM.total));
    }
  return { inputs, outputs };
}

