// starweave-ft export: a run's (or an adapter's) model in the formats STARWEAVE serves. Thin: the work
// is src/deploy/export.ts; this parses flags and prints what was written, its precision and sizes.
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { EXPORT_DTYPES, EXPORT_FORMATS, exportModel, exportOnnxFrom } from '../deploy/export.js';
import type { ExportDType } from '../deploy/export.js';
import { EXPORT_MANIFEST, formatBytes } from '../deploy/manifest.js';
import type { ExportFormat, ExportManifest } from '../deploy/manifest.js';
import type { OnnxExportManifest } from '../deploy/onnx/manifest.js';

export const EXPORT_USAGE = `starweave-ft export (--run RUN_DIR | --adapter DIR [--model BASE_DIR] | --model BASE_DIR)
                    --format peft|merged|gguf|gguf-adapter|ollama|onnx --out DIR [--dtype f32|f16|bf16|q8_0|int8]

  --run RUN_DIR        a training run (its adapter/ and the base model its config names)
  --adapter DIR        a PEFT adapter directory (adapter_config.json + adapter_model.safetensors),
                       trained here or elsewhere; --model names its base model directory (default:
                       base_model_name_or_path when it is a local directory)
  --model BASE_DIR     the base model (Hugging Face directory); alone: export the base itself
  --format             peft          adapter_config.json + adapter_model.safetensors (f32, f16, bf16)
                       merged        Hugging Face directory with the adapter merged (default: base dtype)
                       gguf          model.gguf for llama.cpp, adapter merged (default: base dtype)
                       gguf-adapter  adapter.gguf for llama.cpp --lora / Ollama ADAPTER (default f32)
                       ollama        model.gguf + Modelfile (ollama create NAME -f DIR/Modelfile)
                       onnx          model.onnx with a KV cache for onnxruntime, adapter merged (f32, or
                                     int8: dynamic quantization, its accuracy cost in the manifest)
  --out DIR            the output directory (created; must be empty unless --force)
  --dtype              weight precision (q8_0: GGUF formats only; onnx: f32 or int8)
  --opset N            onnx: 17 (default) or 23 (RMSNormalization)
  --external-data      onnx: weights in model.onnx.data (default: only past 1.8 GB)
  --name NAME          general.name in GGUF files
  --base-name ID       peft: base_model_name_or_path (default: the base directory), e.g. its hub id
  --separate-adapter   ollama: base.gguf + adapter.gguf (FROM + ADAPTER) instead of a merged model
  --ollama-template F  ollama: an Ollama Go template file, for chat formats not recognised
  --system TEXT        ollama: a SYSTEM prompt in the Modelfile
  --json               print the manifest (${EXPORT_MANIFEST}) as JSON
  --force              write into a non-empty --out

Every export writes ${EXPORT_MANIFEST}: format, precision, files with sizes and sha256, base model, source.`;

const VALUE_FLAGS = ['--run', '--adapter', '--model', '--format', '--out', '--dtype', '--name', '--base-name', '--ollama-template', '--system', '--opset'];
const BOOL_FLAGS = ['--separate-adapter', '--external-data', '--json', '--force', '--help', '-h'];

function parse(args: string[]): Map<string, string | true> {
  const m = new Map<string, string | true>();
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    if (BOOL_FLAGS.includes(a)) m.set(a, true);
    else if (VALUE_FLAGS.includes(a)) {
      const v = args[i + 1];
      if (v === undefined || v.startsWith('--')) throw new Error(`export: ${a} needs a value`);
      m.set(a, v);
      i++;
    } else throw new Error(`export: unknown argument '${a}' (starweave-ft export --help)`);
  }
  return m;
}

export async function runExportCommand(args: string[]): Promise<number> {
  const f = parse(args);
  if (f.has('--help') || f.has('-h')) {
    console.log(EXPORT_USAGE);
    return 0;
  }
  const get = (k: string) => {
    const v = f.get(k);
    return typeof v === 'string' ? v : undefined;
  };
  const format = get('--format');
  const out = get('--out');
  if (!format || !out) {
    console.error(`export: --format and --out are required\n\n${EXPORT_USAGE}`);
    return 2;
  }
  const dtype = get('--dtype');
  if (format === 'onnx') {
    if (dtype && dtype !== 'f32' && dtype !== 'int8') throw new Error(`export: --dtype ${dtype} is not available for onnx; choose f32, int8`);
    const opset = get('--opset');
    if (opset !== undefined && opset !== '17' && opset !== '23') throw new Error(`export: --opset ${opset}: 17 or 23`);
    const manifest = await exportOnnxFrom({
      run: get('--run'),
      adapter: get('--adapter'),
      model: get('--model'),
      out,
      precision: (dtype ?? 'f32') as 'f32' | 'int8',
      opset: opset === undefined ? undefined : (Number(opset) as 17 | 23),
      externalData: f.has('--external-data') || undefined,
      force: f.has('--force'),
    });
    return report(manifest, out, f.has('--json'));
  }
  if (!EXPORT_FORMATS.includes(format as ExportFormat)) throw new Error(`export: unknown --format '${format}'; formats: ${[...EXPORT_FORMATS, 'onnx'].join(', ')}`);
  if (dtype && !EXPORT_DTYPES.includes(dtype as ExportDType)) throw new Error(`export: unknown --dtype '${dtype}'; dtypes: ${EXPORT_DTYPES.join(', ')}`);
  const templateFile = get('--ollama-template');
  const manifest = await exportModel({
    run: get('--run'),
    adapter: get('--adapter'),
    model: get('--model'),
    format: format as ExportFormat,
    out,
    dtype: dtype as ExportDType | undefined,
    name: get('--name'),
    baseModelName: get('--base-name'),
    ollamaTemplate: templateFile ? readFileSync(resolve(templateFile), 'utf8') : undefined,
    system: get('--system'),
    separateAdapter: f.has('--separate-adapter'),
    force: f.has('--force'),
  });
  return report(manifest, out, f.has('--json'));
}

/** Prints what an export wrote: precision, each file with its size (and tensor types), the total. */
function report(manifest: ExportManifest | OnnxExportManifest, out: string, json: boolean): number {
  if (json) {
    console.log(JSON.stringify(manifest));
    return 0;
  }
  const dir = resolve(out);
  console.log(`${manifest.export} export of ${manifest.baseModel.dir}${manifest.source.adapter ? ` + ${manifest.source.adapter}` : ''}`);
  console.log(`precision ${manifest.precision}  ->  ${dir}`);
  const w = Math.max(...manifest.files.map((x) => x.path.length));
  for (const file of manifest.files) {
    const types = file.tensorTypes ? '  ' + Object.entries(file.tensorTypes).map(([t, n]) => `${n} ${t}`).join(', ') : '';
    console.log(`  ${file.path.padEnd(w)}  ${formatBytes(file.bytes).padStart(10)}  ${file.role}${types}`);
  }
  console.log(`  total ${formatBytes(manifest.totalBytes)}; manifest ${EXPORT_MANIFEST} (sizes, sha256)`);
  if (manifest.export === 'ollama') console.log(`next: ollama create NAME -f ${dir}/Modelfile`);
  return 0;
}
