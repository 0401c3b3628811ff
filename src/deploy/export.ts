// One call per export format, from a training run or an adapter directory (src/deploy/source.ts) into an
// output directory, ending with its export.json manifest (format, precision, files with sizes and sha256,
// base model, source). The CLI (`starweave-ft export`) and the library call this.
//
//   peft          adapter_config.json + adapter_model.safetensors (f32 / f16 / bf16)
//   merged        a Hugging Face directory with the adapter merged (the base dtype, or f32 / f16 / bf16)
//   gguf          model.gguf: the merged model for llama.cpp (f32 / f16 / bf16 / q8_0; default the base dtype)
//   gguf-adapter  adapter.gguf: the LoRA adapter for llama.cpp --lora / Ollama ADAPTER (default f32)
//   ollama        model.gguf + Modelfile; with separateAdapter: base.gguf + adapter.gguf + Modelfile
//   onnx          model.onnx (KV cache, optimum's layout) for onnxruntime, adapter merged: exportOnnxFrom (f32 / int8)
import { existsSync, mkdirSync, readdirSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parameterCount } from '../model/layout.js';
import { writeGgufAdapter, writeGgufModel } from './gguf.js';
import type { GgufDType } from './gguf.js';
import { describeFiles, loraSummary, writeExportManifest } from './manifest.js';
import type { ExportFormat, ExportManifest } from './manifest.js';
import { baseWeightDtype, writeMergedModel } from './merged.js';
import { writeOllamaModelfile } from './modelfile.js';
import { writeLoraAdapter } from './peft.js';
import { ExportError, loadExportInputs, resolveExportSource } from './source.js';
import type { ExportSourceInput } from './source.js';
import type { ExportOnnxOptions } from './onnx/export.js';
import type { OnnxExportManifest } from './onnx/manifest.js';

export const EXPORT_FORMATS: readonly ExportFormat[] = ['peft', 'merged', 'gguf', 'gguf-adapter', 'ollama'];
export type ExportDType = 'f32' | 'f16' | 'bf16' | 'q8_0';
export const EXPORT_DTYPES: readonly ExportDType[] = ['f32', 'f16', 'bf16', 'q8_0'];

export interface ExportOptions extends ExportSourceInput {
  format: ExportFormat;
  /** the output directory (created; must be empty unless `force`) */
  out: string;
  dtype?: ExportDType;
  /** general.name of GGUF files (default: the base directory's name) */
  name?: string;
  /** peft: base_model_name_or_path to write (default: the base model directory), e.g. the hub id it came from */
  baseModelName?: string;
  /** ollama: an Ollama Go template instead of the one recognised from the chat template */
  ollamaTemplate?: string;
  /** ollama: SYSTEM text */
  system?: string;
  /** ollama: base.gguf + adapter.gguf (FROM + ADAPTER) instead of the merged model.gguf */
  separateAdapter?: boolean;
  /** write into a non-empty directory */
  force?: boolean;
}

const DTYPES_OF: Record<ExportFormat, readonly ExportDType[]> = {
  peft: ['f32', 'f16', 'bf16'],
  merged: ['f32', 'f16', 'bf16'],
  gguf: EXPORT_DTYPES,
  'gguf-adapter': EXPORT_DTYPES,
  ollama: EXPORT_DTYPES,
};

/** The output directory, resolved: a directory, empty unless force. */
function outputDir(dir: string, force?: boolean): string {
  const out = resolve(dir);
  if (existsSync(out)) {
    if (!statSync(out).isDirectory()) throw new ExportError(`${out}: --out must be a directory`);
    if (readdirSync(out).length && !force) throw new ExportError(`${out}: the output directory is not empty (use --force to write into it)`);
  }
  return out;
}

export interface OnnxExportFromOptions extends ExportSourceInput, Omit<ExportOnnxOptions, 'adapter' | 'run'> {
  out: string;
  force?: boolean;
}

/** The ONNX export (src/deploy/onnx) from the same sources as the other formats: a run, an adapter and its base, or a base alone. */
export async function exportOnnxFrom(opts: OnnxExportFromOptions): Promise<OnnxExportManifest> {
  const out = outputDir(opts.out, opts.force);
  const source = resolveExportSource(opts);
  const { exportOnnx } = await import('./onnx/export.js');  // protobufjs only when an ONNX export runs
  const { out: _o, force: _f, run: _r, adapter: _a, model: _m, ...onnx } = opts;
  return exportOnnx(source.baseDir, out, { ...onnx, adapter: source.adapterDir ?? undefined, run: source.runDir ?? undefined });
}

/** Runs one export and returns its manifest (also written to OUT/export.json). */
export async function exportModel(opts: ExportOptions): Promise<ExportManifest> {
  if (!EXPORT_FORMATS.includes(opts.format)) throw new ExportError(`unknown format '${opts.format}'; formats: ${EXPORT_FORMATS.join(', ')}`);
  if (opts.dtype && !DTYPES_OF[opts.format].includes(opts.dtype)) {
    throw new ExportError(`--dtype ${opts.dtype} is not available for ${opts.format}; choose ${DTYPES_OF[opts.format].join(', ')}`);
  }
  const out = outputDir(opts.out, opts.force);
  const source = resolveExportSource(opts);
  const needsAdapter = opts.format === 'peft' || opts.format === 'gguf-adapter' || (opts.format === 'ollama' && opts.separateAdapter);
  if (needsAdapter && !source.adapterDir) throw new ExportError(`${opts.format}${opts.separateAdapter ? ' --separate-adapter' : ''} needs an adapter: give --run RUN_DIR or --adapter DIR`);
  const inputs = loadExportInputs(source);
  try {
    mkdirSync(out, { recursive: true });
    const { files, adapter } = inputs;
    const written: { path: string; role: string; tensorTypes?: Record<string, number> }[] = [];
    let precision: string;
    const details: Record<string, unknown> = {};
    switch (opts.format) {
      case 'peft': {
        const dtype = (opts.dtype ?? 'f32') as 'f32' | 'f16' | 'bf16';
        const names = await writeLoraAdapter(out, adapter!, { baseModel: opts.baseModelName ?? source.baseDir, dtype });
        written.push({ path: names[0], role: 'adapter config' }, { path: names[1], role: 'adapter weights', tensorTypes: { [dtype.toUpperCase()]: adapter!.tensors.size } });
        precision = dtype;
        break;
      }
      case 'merged': {
        const r = await writeMergedModel(out, files, adapter, { dtype: opts.dtype as 'f32' | 'f16' | 'bf16' | undefined });
        written.push(...r.files);
        precision = r.dtype;
        details.adaptedTensors = r.adaptedTensors;
        break;
      }
      case 'gguf': {
        const r = await writeGgufModel(join(out, 'model.gguf'), files, adapter, { dtype: opts.dtype as GgufDType | undefined, name: opts.name });
        written.push({ path: 'model.gguf', role: adapter ? 'GGUF model (adapter merged)' : 'GGUF model', tensorTypes: r.tensorTypes });
        precision = r.dtype;
        Object.assign(details, { architecture: r.architecture, tokenizerPre: r.tokenizer?.pre });
        break;
      }
      case 'gguf-adapter': {
        const r = await writeGgufAdapter(join(out, 'adapter.gguf'), files.config, adapter!, { dtype: opts.dtype as GgufDType | undefined, name: opts.name });
        written.push({ path: 'adapter.gguf', role: 'GGUF LoRA adapter', tensorTypes: r.tensorTypes });
        precision = r.dtype;
        details.architecture = r.architecture;
        break;
      }
      case 'ollama': {
        if (!files.tokenizer) throw new ExportError('the base model has no tokenizer');
        const modelFile = opts.separateAdapter ? 'base.gguf' : 'model.gguf';
        const r = await writeGgufModel(join(out, modelFile), files, opts.separateAdapter ? null : adapter, { dtype: opts.dtype as GgufDType | undefined, name: opts.name });
        written.push({ path: modelFile, role: opts.separateAdapter ? 'GGUF base model' : adapter ? 'GGUF model (adapter merged)' : 'GGUF model', tensorTypes: r.tensorTypes });
        precision = r.dtype;
        let adapterFile: string | undefined;
        if (opts.separateAdapter) {
          // the adapter in f32 unless asked otherwise: it is small, and llama.cpp applies it at f32
          const a = await writeGgufAdapter(join(out, 'adapter.gguf'), files.config, adapter!, { dtype: opts.dtype === 'q8_0' ? 'f16' : (opts.dtype ?? 'f32') });
          adapterFile = 'adapter.gguf';
          written.push({ path: adapterFile, role: 'GGUF LoRA adapter', tensorTypes: a.tensorTypes });
        }
        const mf = writeOllamaModelfile(out, files.tokenizer, { from: modelFile, adapter: adapterFile }, { template: opts.ollamaTemplate, system: opts.system });
        written.push({ path: 'Modelfile', role: 'Ollama Modelfile' });
        Object.assign(details, { architecture: r.architecture, tokenizerPre: r.tokenizer?.pre, chatFamily: mf.family, stops: mf.stops, ...(mf.preamble ? { templatePreambleNotReproduced: mf.preamble } : {}) });
        break;
      }
    }
    return writeExportManifest(out, {
      export: opts.format,
      precision,
      baseModel: { dir: source.baseDir, architecture: files.config.architecture, dtype: baseWeightDtype(files), parameters: parameterCount(files.config) },
      source: { run: source.runDir, adapter: source.adapterDir },
      lora: loraSummary(adapter?.config),
      files: await describeFiles(out, written),
      ...(Object.keys(details).length ? { details } : {}),
    });
  } finally {
    inputs.release();
  }
}
