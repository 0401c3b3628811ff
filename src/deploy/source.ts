// What an export starts from: a training run directory (RUN_DIR/config.json names the base model,
// RUN_DIR/adapter holds the PEFT adapter the runner wrote) or an adapter directory with its base model
// (--model, else adapter_config.json's base_model_name_or_path when that is a local directory), or a
// base model alone (the formats that need no adapter).
import { existsSync, readFileSync, statSync } from 'node:fs';
import { isAbsolute, join, resolve } from 'node:path';
import { loadModelFiles } from '../model/files.js';
import type { ModelFiles } from '../model/files.js';
import { ADAPTER_CONFIG_FILE, readPeftAdapter } from './peft.js';
import type { LoraAdapter } from './peft.js';

export interface ExportSourceInput {
  /** a training run directory */
  run?: string;
  /** a PEFT adapter directory */
  adapter?: string;
  /** the base model directory (overrides the run's or the adapter's) */
  model?: string;
}

export interface ExportSource {
  baseDir: string;
  adapterDir: string | null;
  runDir: string | null;
}

export class ExportError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ExportError';
  }
}

function isDir(p: string): boolean {
  return existsSync(p) && statSync(p).isDirectory();
}

/** Resolves the base model and adapter directories; throws ExportError saying what is missing. */
export function resolveExportSource(input: ExportSourceInput): ExportSource {
  if (input.run && input.adapter) throw new ExportError('give --run or --adapter, not both');
  if (input.run) {
    const runDir = resolve(input.run);
    const cfgFile = join(runDir, 'config.json');
    if (!existsSync(cfgFile)) throw new ExportError(`${runDir}: not a training run directory (no config.json; runs are written by starweave-ft train)`);
    let baseDir = input.model ? resolve(input.model) : null;
    if (!baseDir) {
      let cfg: { model?: { dir?: unknown } };
      try {
        cfg = JSON.parse(readFileSync(cfgFile, 'utf8'));
      } catch (e) {
        throw new ExportError(`${cfgFile}: cannot read the run config: ${(e as Error).message}`);
      }
      if (typeof cfg.model?.dir !== 'string') throw new ExportError(`${cfgFile} at model.dir: missing the base model directory (pass --model DIR)`);
      baseDir = isAbsolute(cfg.model.dir) ? cfg.model.dir : resolve(runDir, cfg.model.dir);
    }
    const adapterDir = join(runDir, 'adapter');
    if (!isDir(adapterDir)) throw new ExportError(`${runDir}: the run has no adapter/ directory (it was cancelled, failed, or is still running)`);
    if (!isDir(baseDir)) throw new ExportError(`${baseDir}: the run's base model directory does not exist (pass --model DIR)`);
    return { baseDir, adapterDir, runDir };
  }
  if (input.adapter) {
    const adapterDir = resolve(input.adapter);
    let baseDir = input.model ? resolve(input.model) : null;
    if (!baseDir) {
      const cfgFile = join(adapterDir, ADAPTER_CONFIG_FILE);
      let named: unknown = null;
      try {
        named = (JSON.parse(readFileSync(cfgFile, 'utf8')) as { base_model_name_or_path?: unknown }).base_model_name_or_path;
      } catch {
        // readPeftAdapter reports a bad adapter_config.json when the adapter is read
      }
      if (typeof named === 'string' && isDir(resolve(adapterDir, named))) baseDir = resolve(adapterDir, named);
      else throw new ExportError(`${adapterDir}: pass --model DIR, the base model directory (adapter_config.json's base_model_name_or_path ${JSON.stringify(named)} is not a local directory; nothing is downloaded)`);
    }
    if (!isDir(baseDir)) throw new ExportError(`${baseDir}: the base model directory does not exist`);
    return { baseDir, adapterDir, runDir: null };
  }
  if (input.model) {
    const baseDir = resolve(input.model);
    if (!isDir(baseDir)) throw new ExportError(`${baseDir}: the base model directory does not exist`);
    return { baseDir, adapterDir: null, runDir: null };
  }
  throw new ExportError('give --run RUN_DIR, --adapter DIR [--model BASE_DIR], or --model BASE_DIR');
}

export interface ExportInputs {
  source: ExportSource;
  files: ModelFiles;
  adapter: LoraAdapter | null;
  release(): void;
}

/** Loads the base model files and the adapter (validated against the base). */
export function loadExportInputs(source: ExportSource): ExportInputs {
  // f16 weights widened to f32 (not the runtime's default bf16), so an f16 checkpoint exports exactly
  const files = loadModelFiles(source.baseDir, { f16To: 'f32' });
  try {
    const adapter = source.adapterDir ? readPeftAdapter(source.adapterDir, { base: files.config }) : null;
    return { source, files, adapter, release: () => files.release() };
  } catch (e) {
    files.release();
    throw e;
  }
}
