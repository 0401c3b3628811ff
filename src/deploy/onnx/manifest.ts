// The export directory's layout and its export.json: the manifest every export of this library writes
// (src/deploy/manifest.ts: format starweave-export/1, precision, files with sizes and sha256, base model,
// source, LoRA), with `export: 'onnx'` and the ONNX specifics under `details`: opset, IR version, the
// graph's inputs and outputs, the model's shapes, and for int8 the measured accuracy cost.
import type { ModelConfig } from '../../model/config.js';
import { EXPORT_MANIFEST } from '../manifest.js';
import type { ExportManifest } from '../manifest.js';
import { DIM, pastKeyName, presentName } from './decoder-graph.js';
import type { Precision } from './decoder-graph.js';
import type { Int8Accuracy } from './accuracy.js';

export const ONNX_MODEL_FILE = 'model.onnx';
export const ONNX_DATA_FILE = 'model.onnx.data';
export const ONNX_MANIFEST_FILE = EXPORT_MANIFEST;

export interface OnnxTensorSpec {
  name: string;
  dtype: 'int64' | 'float32';
  dims: (number | string)[];
}

export interface OnnxExportDetails {
  opset: number;
  irVersion: number;
  producer: string;
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
    /** bytes of every initializer (weights, scales, constants) */
    weightBytes: number;
  };
  /** int8 exports: the accuracy cost measured against the f32 export of the same weights */
  accuracy?: Int8Accuracy;
}

/** export.json of an ONNX export: the shared export manifest with the ONNX details. */
export type OnnxExportManifest = Omit<ExportManifest, 'export' | 'precision' | 'details'> & {
  export: 'onnx';
  precision: Precision;
  details: OnnxExportDetails;
};

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

