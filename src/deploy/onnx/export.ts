// exportOnnx(modelDir, outDir): a Hugging Face model directory (optionally with a PEFT LoRA adapter merged
// first) written as an ONNX decoder with a KV cache (decoder-graph.ts) that onnxruntime runs: model.onnx
// (weights inline, or in model.onnx.data as ONNX external data when they pass the 2 GB protobuf limit or
// when asked), the config and tokenizer files beside it (as optimum exports them), and export.json: format,
// precision, opset, inputs / outputs, every file's size and sha256, the source, and for int8 the measured
// accuracy cost against the f32 graph.
import { createHash } from 'node:crypto';
import { copyFileSync, existsSync, mkdirSync, readFileSync, statSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { replaceFileSync, writeAllSync, writeFileAtomicSync } from '../../model/atomic.js';
import { loadModelFiles } from '../../model/files.js';
import type { ModelConfig } from '../../model/config.js';
import { buildDecoderGraph, OPSET, OPSETS } from './decoder-graph.js';
import type { Opset, Precision, WeightSource } from './decoder-graph.js';
import { readPeftAdapter } from '../peft.js';
import { mergedTensors, TOKENIZER_FILES } from '../merged.js';
import { DataLocation, encodeModel } from './proto.js';
import type { ModelProto } from './proto.js';
import { measureInt8Accuracy } from './accuracy.js';
import type { Int8Accuracy } from './accuracy.js';
import { ioSpec, ONNX_DATA_FILE, ONNX_MANIFEST_FILE, ONNX_MODEL_FILE } from './manifest.js';
import type { OnnxExportManifest } from './manifest.js';

/** the IR version that goes with each opset (onnx/helper.py VERSION_TABLE) */
const IR_VERSION: Record<Opset, number> = { 17: 8, 23: 10 };
/** protobuf messages cannot exceed 2 GiB; keep headroom for the graph itself */
const INLINE_LIMIT = 1.8 * 1024 ** 3;
/** the files a runtime needs beside the graph to tokenize and stop */
const SIDE_FILES = ['config.json', 'generation_config.json', ...TOKENIZER_FILES];

export interface ExportOnnxOptions {
  /** f32 (default) or int8 (dynamic quantization of every linear layer's weight) */
  precision?: Precision;
  /** ONNX opset: 17 (default, onnxruntime >= 1.13) or 23 (RMSNormalization; onnxruntime >= 1.22) */
  opset?: Opset;
  /** a PEFT LoRA adapter directory merged into the weights before export */
  adapter?: string;
  /** weights in model.onnx.data (default: only when they pass 1.8 GB) */
  externalData?: boolean;
  /** int8 only: token sequences the accuracy cost is measured on (default: a fixed text, or seeded ids) */
  accuracyTokens?: number[][];
  /** int8 only: skip the accuracy measurement */
  skipAccuracy?: boolean;
}

function producerVersion(): string {
  try {
    const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version?: string };
    return pkg.version ?? '0';
  } catch {
    // dist/src/deploy/onnx has one more level
    try {
      const pkg = JSON.parse(readFileSync(new URL('../../../../package.json', import.meta.url), 'utf8')) as { version?: string };
      return pkg.version ?? '0';
    } catch {
      return '0';
    }
  }
}

/** The ModelProto of a model directory's weights (f32 or int8), with the adapter merged. */
export function buildOnnxModel(c: ModelConfig, weight: WeightSource, precision: Precision, opset: Opset = OPSET): ModelProto {
  const graph = buildDecoderGraph(c, weight, { precision, opset });
  return {
    ir_version: IR_VERSION[opset],
    opset_import: [{ domain: '', version: opset }],
    producer_name: 'starweave-finetune',
    producer_version: producerVersion(),
    doc_string: `${c.architecture} causal LM with KV cache (optimum-style inputs/outputs), ${precision}`,
    graph,
    metadata_props: [
      { key: 'architecture', value: c.architecture },
      { key: 'precision', value: precision },
      { key: 'num_layers', value: String(c.numLayers) },
      { key: 'num_key_value_heads', value: String(c.numKvHeads) },
      { key: 'head_dim', value: String(c.headDim) },
      { key: 'vocab_size', value: String(c.vocabSize) },
    ],
  };
}

function sha256File(path: string): string {
  const h = createHash('sha256');
  h.update(readFileSync(path));
  return h.digest('hex');
}

/** Moves every initializer's raw_data into `dataPath` (4096-aligned offsets) and points the tensors there. */
function writeExternalData(model: ModelProto, dataPath: string): void {
  const location = basename(dataPath);
  replaceFileSync(dataPath, (fd) => {
    let offset = 0;
    for (const t of model.graph.initializer) {
      const raw = t.raw_data;
      if (!raw || raw.byteLength < 1024) continue;
      const pad = (4096 - (offset % 4096)) % 4096;
      if (pad) writeAllSync(fd, new Uint8Array(pad));
      offset += pad;
      writeAllSync(fd, raw);
      t.external_data = [
        { key: 'location', value: location },
        { key: 'offset', value: String(offset) },
        { key: 'length', value: String(raw.byteLength) },
      ];
      t.data_location = DataLocation.EXTERNAL;
      delete t.raw_data;
      offset += raw.byteLength;
    }
  });
}

/**
 * Exports the model directory `modelDir` (with `opts.adapter` merged) to `outDir` as an ONNX decoder with a
 * KV cache; returns the manifest also written as export.json.
 */
export async function exportOnnx(modelDir: string, outDir: string, opts: ExportOnnxOptions = {}): Promise<OnnxExportManifest> {
  const precision = opts.precision ?? 'f32';
  if (precision !== 'f32' && precision !== 'int8') throw new Error(`exportOnnx: precision '${String(precision)}' is not supported (f32 or int8)`);
  const opset = opts.opset ?? OPSET;
  if (!(OPSETS as readonly number[]).includes(opset)) throw new Error(`exportOnnx: opset ${String(opset)} is not supported (${OPSETS.join(' or ')})`);
  const files = loadModelFiles(modelDir, { tokenizer: false, f16To: 'f32' });
  try {
    const c = files.config;
    // the adapter (validated against the base: names, ranks, shapes) merged as the merged-model export does
    const adapter = opts.adapter ? readPeftAdapter(opts.adapter, { base: c }) : null;
    const merged = new Map(mergedTensors(files, adapter).map((t) => [t.name, t]));
    const weight: WeightSource = (name) => {
      const t = merged.get(name);
      if (!t) throw new Error(`exportOnnx: ${modelDir} has no tensor ${name}`);
      return t.values();
    };
    mkdirSync(outDir, { recursive: true });
    const model = buildOnnxModel(c, weight, precision, opset);
    let weightBytes = 0;
    for (const t of model.graph.initializer) weightBytes += t.raw_data?.byteLength ?? 0;
    const modelPath = join(outDir, ONNX_MODEL_FILE);
    const dataPath = join(outDir, ONNX_DATA_FILE);
    const external = opts.externalData ?? weightBytes > INLINE_LIMIT;
    if (external) writeExternalData(model, dataPath);
    writeFileAtomicSync(modelPath, encodeModel(model));
    const written = [ONNX_MODEL_FILE, ...(external ? [ONNX_DATA_FILE] : [])];
    for (const f of SIDE_FILES) {
      const src = join(modelDir, f);
      if (existsSync(src)) {
        copyFileSync(src, join(outDir, f));
        written.push(f);
      }
    }

    let accuracy: Int8Accuracy | undefined;
    if (precision === 'int8' && !opts.skipAccuracy) {
      const reference = encodeModel(buildOnnxModel(c, weight, 'f32', opset));
      accuracy = await measureInt8Accuracy({ f32: reference, int8: modelPath, config: c, modelDir, tokens: opts.accuracyTokens });
    }
    const manifest: OnnxExportManifest = {
      format: 'onnx',
      precision,
      opset,
      irVersion: IR_VERSION[opset],
      producer: `starweave-finetune ${producerVersion()}`,
      files: written.map((name) => ({ name, bytes: statSync(join(outDir, name)).size, sha256: sha256File(join(outDir, name)) })),
      ...ioSpec(c),
      model: {
        architecture: c.architecture,
        vocabSize: c.vocabSize,
        hiddenSize: c.hiddenSize,
        numLayers: c.numLayers,
        numHeads: c.numHeads,
        numKvHeads: c.numKvHeads,
        headDim: c.headDim,
        parameters: [...files.weights.values()].reduce((n, t) => n + t.numel, 0),
        weightBytes,
      },
      source: { modelDir: resolve(modelDir), adapter: opts.adapter ? resolve(opts.adapter) : null, weightsDType: c.torchDtype, createdAt: new Date().toISOString() },
      ...(accuracy ? { accuracy } : {}),
    };
    writeFileAtomicSync(join(outDir, ONNX_MANIFEST_FILE), JSON.stringify(manifest, null, 2) + '\n');
    return manifest;
  } finally {
    files.release();
  }
}
