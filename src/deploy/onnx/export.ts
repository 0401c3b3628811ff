// exportOnnx(modelDir, outDir): a Hugging Face model directory (optionally with a PEFT LoRA adapter merged
// first) written as an ONNX decoder with a KV cache (decoder-graph.ts) that onnxruntime runs: model.onnx
// (weights inline, or in model.onnx.data as ONNX external data when they pass the 2 GB protobuf limit or
// when asked), the config and tokenizer files beside it (as optimum exports them), and export.json: format,
// precision, opset, inputs / outputs, every file's size and sha256, the source, and for int8 the measured
// accuracy cost against the f32 graph.
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { replaceFileSync, writeAllSync, writeFileAtomicSync } from '../../model/atomic.js';
import { packageRoot } from '../../../bindings/native.js';
import { loadModelFiles } from '../../model/files.js';
import type { ModelConfig } from '../../model/config.js';
import { buildDecoderGraph, OPSET, OPSETS } from './decoder-graph.js';
import type { Opset, Precision, WeightSource } from './decoder-graph.js';
import { readPeftAdapter } from '../peft.js';
import { mergedTensors, TOKENIZER_FILES } from '../merged.js';
import { encodeModel } from './proto.js';
import type { ExternalDataSink } from './graph-builder.js';
import { parameterCount } from '../../model/layout.js';
import type { ModelProto } from './proto.js';
import { measureInt8Accuracy } from './accuracy.js';
import type { Int8Accuracy } from './accuracy.js';
import { ioSpec, ONNX_DATA_FILE, ONNX_MANIFEST_FILE, ONNX_MODEL_FILE } from './manifest.js';
import { describeFiles, EXPORT_MANIFEST_FORMAT, loraSummary } from '../manifest.js';
import type { OnnxExportManifest } from './manifest.js';

/** the IR version that goes with each opset (onnx/helper.py VERSION_TABLE) */
const IR_VERSION: Record<Opset, number> = { 17: 8, 23: 10 };
/** protobuf messages cannot exceed 2 GiB; keep headroom for the graph itself */
const INLINE_LIMIT = 1.8 * 1024 ** 3;
/** the files a runtime needs beside the graph to tokenize and stop */
const SIDE_FILES: [file: string, role: string][] = [['config.json', 'config'], ['generation_config.json', 'generation config'], ...TOKENIZER_FILES.map((f): [string, string] => [f, 'tokenizer'])];

export interface ExportOnnxOptions {
  /** f32 (default) or int8 (dynamic quantization of every linear layer's weight) */
  precision?: Precision;
  /** ONNX opset: 17 (default, onnxruntime >= 1.13) or 23 (RMSNormalization; onnxruntime >= 1.22) */
  opset?: Opset;
  /** a PEFT LoRA adapter directory merged into the weights before export */
  adapter?: string;
  /** the training run the adapter comes from (recorded in export.json's source) */
  run?: string;
  /** weights in model.onnx.data (default: only when they pass 1.8 GB) */
  externalData?: boolean;
  /** int8 only: token sequences the accuracy cost is measured on (default: a fixed text, or seeded ids) */
  accuracyTokens?: number[][];
  /** int8 only: skip the accuracy measurement */
  skipAccuracy?: boolean;
}

function producerVersion(): string {
  try {
    return (JSON.parse(readFileSync(join(packageRoot(), 'package.json'), 'utf8')) as { version?: string }).version ?? '0';
  } catch {
    return '0';
  }
}

/** The ModelProto of a model's weights (f32 or int8); with `external`, the weights go to that sink as they are made. */
export function buildOnnxModel(c: ModelConfig, weight: WeightSource, precision: Precision, opset: Opset = OPSET, external?: ExternalDataSink): { model: ModelProto; dataBytes: number } {
  const { graph, dataBytes } = buildDecoderGraph(c, weight, { precision, opset, external });
  const model: ModelProto = {
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
  return { model, dataBytes };
}

/**
 * Writes model.onnx into `dir`: weights inline, or (external) streamed into model.onnx.data one tensor at a
 * time, 4096-aligned, so only the tensor being written is in memory. Both files are replaced atomically.
 */
export function writeOnnxModel(dir: string, c: ModelConfig, weight: WeightSource, precision: Precision, opset: Opset, external: boolean): { files: string[]; dataBytes: number } {
  const modelPath = join(dir, ONNX_MODEL_FILE);
  const dataPath = join(dir, ONNX_DATA_FILE);
  let built: { model: ModelProto; dataBytes: number } | undefined;
  if (external) {
    replaceFileSync(dataPath, (fd) => {
      let offset = 0;
      built = buildOnnxModel(c, weight, precision, opset, {
        location: ONNX_DATA_FILE,
        write(bytes) {
          const pad = (4096 - (offset % 4096)) % 4096;
          if (pad) writeAllSync(fd, new Uint8Array(pad));
          offset += pad;
          const at = offset;
          writeAllSync(fd, bytes);
          offset += bytes.byteLength;
          return at;
        },
      });
    });
  } else {
    built = buildOnnxModel(c, weight, precision, opset);
    rmSync(dataPath, { force: true }); // a stale data file of an earlier export
  }
  writeFileAtomicSync(modelPath, encodeModel(built!.model));
  return { files: [ONNX_MODEL_FILE, ...(external ? [ONNX_DATA_FILE] : [])], dataBytes: built!.dataBytes };
}

/** Bytes of weights the export will hold (decides inline or external data before anything is built). */
export function estimateWeightBytes(c: ModelConfig, precision: Precision): number {
  const params = parameterCount(c);
  if (precision === 'f32') return params * 4;
  return c.vocabSize * c.hiddenSize * 4 + (params - c.vocabSize * c.hiddenSize) + (c.tieWordEmbeddings ? c.vocabSize * c.hiddenSize : 0);
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
    const external = opts.externalData ?? estimateWeightBytes(c, precision) > INLINE_LIMIT;
    const { files: written, dataBytes: weightBytes } = writeOnnxModel(outDir, c, weight, precision, opset, external);
    const modelPath = join(outDir, ONNX_MODEL_FILE);
    const roles: { path: string; role: string }[] = written.map((path) => ({ path, role: path === ONNX_DATA_FILE ? 'weights (ONNX external data)' : external ? 'graph' : 'graph and weights' }));
    for (const [f, role] of SIDE_FILES) {
      const src = join(modelDir, f);
      if (existsSync(src)) {
        copyFileSync(src, join(outDir, f));
        roles.push({ path: f, role });
      }
    }

    let accuracy: Int8Accuracy | undefined;
    if (precision === 'int8' && !opts.skipAccuracy) {
      // the f32 reference: in memory, or for exports with external data a scratch export (external too) beside the output
      if (!external && estimateWeightBytes(c, 'f32') <= INLINE_LIMIT) {
        const reference = encodeModel(buildOnnxModel(c, weight, 'f32', opset).model);
        accuracy = await measureInt8Accuracy({ f32: reference, int8: modelPath, config: c, modelDir, tokens: opts.accuracyTokens });
      } else {
        const scratch = mkdtempSync(join(outDir, '.f32-reference-'));
        try {
          writeOnnxModel(scratch, c, weight, 'f32', opset, true);
          accuracy = await measureInt8Accuracy({ f32: join(scratch, ONNX_MODEL_FILE), int8: modelPath, config: c, modelDir, tokens: opts.accuracyTokens });
        } finally {
          rmSync(scratch, { recursive: true, force: true });
        }
      }
    }
    const described = await describeFiles(outDir, roles);
    const lora = adapter?.config;
    const manifest: OnnxExportManifest = {
      format: EXPORT_MANIFEST_FORMAT,
      export: 'onnx',
      precision,
      createdAt: new Date().toISOString(),
      baseModel: { dir: resolve(modelDir), architecture: c.architecture, dtype: c.torchDtype, parameters: parameterCount(c) },
      source: { run: opts.run ? resolve(opts.run) : null, adapter: opts.adapter ? resolve(opts.adapter) : null },
      lora: loraSummary(lora),
      files: described,
      totalBytes: described.reduce((n, f) => n + f.bytes, 0),
      details: {
        opset,
        irVersion: IR_VERSION[opset],
        producer: `starweave-finetune ${producerVersion()}`,
        ...ioSpec(c),
        model: {
          architecture: c.architecture,
          vocabSize: c.vocabSize,
          hiddenSize: c.hiddenSize,
          numLayers: c.numLayers,
          numHeads: c.numHeads,
          numKvHeads: c.numKvHeads,
          headDim: c.headDim,
          weightBytes,
        },
        ...(accuracy ? { accuracy } : {}),
      },
    };
    writeFileAtomicSync(join(outDir, ONNX_MANIFEST_FILE), JSON.stringify(manifest, null, 2) + '\n');
    return manifest;
  } finally {
    files.release();
  }
}
