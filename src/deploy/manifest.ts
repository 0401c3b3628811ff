// export.json: what an export wrote, so a registry or a person can check it without opening the files:
// the format, the precision, every file with its size and sha256, the base model and the source run or
// adapter.
import { createHash } from 'node:crypto';
import { createReadStream, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomicSync } from '../model/atomic.js';
import type { ResolvedLoraConfig } from '../model/native-model.js';

export const EXPORT_MANIFEST = 'export.json';
export const EXPORT_MANIFEST_FORMAT = 'starweave-export/1';

export type ExportFormat = 'peft' | 'merged' | 'gguf' | 'gguf-adapter' | 'ollama';

export interface ExportFileEntry {
  /** relative to the export directory */
  path: string;
  bytes: number;
  sha256: string;
  /** what the file is (weights, config, tokenizer, Modelfile, ...) */
  role: string;
  /** the tensor types in it and how many tensors have each (weights files) */
  tensorTypes?: Record<string, number>;
}

export interface ExportManifest {
  format: typeof EXPORT_MANIFEST_FORMAT;
  export: ExportFormat;
  /** the weights' precision: f32, f16, bf16, q8_0 (mixed: the main type; 1-D tensors stay f32 in GGUF) */
  precision: string;
  createdAt: string;
  baseModel: { dir: string; architecture: string; dtype: string | null; parameters: number };
  source: { run: string | null; adapter: string | null };
  lora: { r: number; loraAlpha: number; useRslora: boolean; targetModules: string[]; layersToTransform: number[] | null } | null;
  files: ExportFileEntry[];
  totalBytes: number;
  /** format-specific notes (e.g. the GGUF architecture and tokenizer pre-type) */
  details?: Record<string, unknown>;
}

/** export.json's lora field from an adapter's LoraConfig (null: no adapter). */
export function loraSummary(lora: ResolvedLoraConfig | null | undefined): ExportManifest['lora'] {
  if (!lora) return null;
  const layers = lora.layers_to_transform;
  return {
    r: lora.r,
    loraAlpha: lora.lora_alpha,
    useRslora: lora.use_rslora,
    targetModules: lora.target_modules === 'all-linear' ? ['all-linear'] : [...lora.target_modules],
    layersToTransform: layers === undefined || layers === null ? null : Array.isArray(layers) ? layers : [layers],
  };
}

export async function sha256File(path: string): Promise<string> {
  const h = createHash('sha256');
  for await (const chunk of createReadStream(path, { highWaterMark: 1 << 20 })) h.update(chunk as Buffer);
  return h.digest('hex');
}

/** Describes files of `dir` (size and sha256). */
export async function describeFiles(dir: string, files: { path: string; role: string; tensorTypes?: Record<string, number> }[]): Promise<ExportFileEntry[]> {
  const out: ExportFileEntry[] = [];
  for (const f of files) {
    const p = join(dir, f.path);
    out.push({ path: f.path, bytes: statSync(p).size, sha256: await sha256File(p), role: f.role, ...(f.tensorTypes ? { tensorTypes: f.tensorTypes } : {}) });
  }
  return out;
}

export function writeExportManifest(dir: string, m: Omit<ExportManifest, 'format' | 'totalBytes' | 'createdAt'>): ExportManifest {
  const manifest: ExportManifest = {
    format: EXPORT_MANIFEST_FORMAT,
    ...m,
    createdAt: new Date().toISOString(),
    totalBytes: m.files.reduce((a, f) => a + f.bytes, 0),
  };
  writeFileAtomicSync(join(dir, EXPORT_MANIFEST), JSON.stringify(manifest, null, 2) + '\n');
  return manifest;
}

export function readExportManifest(dir: string): ExportManifest {
  return JSON.parse(readFileSync(join(dir, EXPORT_MANIFEST), 'utf8')) as ExportManifest;
}

/** Human-readable byte count (KiB / MiB / GiB). */
export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let v = n / 1024;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v.toFixed(v < 10 ? 2 : 1)} ${units[i]}`;
}
