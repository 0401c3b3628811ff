// Models held by the sidecar for generation and evaluation: loaded once per (model dir, adapter dir) and
// kept (least recently used dropped past a small bound), each with a lock: a model's KV cache and its
// adapter state belong to one job at a time (generate prefills the cache, evaluation zeroes LoRA B for the
// base run), so jobs on the same model take turns while jobs on different models run side by side.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadModelFiles, type ModelFiles } from '../model/files.js';
import { LlamaModel, LoraConfigSchema } from '../model/native-model.js';
import { ModelFileError, parseModelFile } from '../model/errors.js';
import { SafetensorsFile } from '../model/safetensors.js';
import type { ModelTokenizer } from '../model/tokenizer.js';

export interface LoadedModel {
  key: string;
  dir: string;
  adapter: string | null;
  files: ModelFiles;
  model: LlamaModel;
  tokenizer: ModelTokenizer;
  /** token ids that end a reply: the tokenizer's eos and generation_config.json's eos_token_id(s) */
  stopTokenIds: number[];
  loadedAt: string;
}

/**
 * Adds a PEFT LoRA adapter folder (adapter_config.json + adapter_model.safetensors, what a training run
 * writes) to a model: its LoraConfig, then every tensor by its PEFT key.
 */
export function loadPeftAdapter(model: LlamaModel, dir: string): void {
  const cfgFile = join(dir, 'adapter_config.json');
  const weightsFile = join(dir, 'adapter_model.safetensors');
  for (const f of [cfgFile, weightsFile]) if (!existsSync(f)) throw new ModelFileError('missing: a PEFT adapter folder holds adapter_config.json and adapter_model.safetensors', { file: f });
  let json: unknown;
  try {
    json = JSON.parse(readFileSync(cfgFile, 'utf8'));
  } catch (e) {
    throw new ModelFileError(`not valid JSON: ${(e as Error).message}`, { file: cfgFile });
  }
  const peftType = (json as { peft_type?: unknown }).peft_type;
  if (peftType !== undefined && peftType !== 'LORA') throw new ModelFileError(`peft_type ${JSON.stringify(peftType)}: only LORA adapters are supported`, { file: cfgFile, path: 'peft_type' });
  model.addLora(parseModelFile(LoraConfigSchema, json, cfgFile));
  const expected = new Set(Object.keys(model.adapterState('param')));
  const file = SafetensorsFile.open(weightsFile);
  const missing = [...expected].filter((n) => !file.has(n));
  if (missing.length) throw new ModelFileError(`lacks ${missing.length} tensor(s) the adapter config implies: ${missing.slice(0, 4).join(', ')}${missing.length > 4 ? ', ...' : ''}`, { file: weightsFile });
  for (const name of file.names) {
    if (!expected.has(name)) throw new ModelFileError(`a tensor this model's adapter does not have (another base model or adapter config?)`, { file: weightsFile, tensor: name });
    const t = file.tensor(name, { convertTo: 'f32' });
    try {
      model.loadAdapterState({ [name]: t });
    } finally {
      t.release();
    }
  }
}

function stopTokens(files: ModelFiles, tok: ModelTokenizer): number[] {
  const ids = new Set<number>();
  if (tok.eosTokenId !== null && tok.eosTokenId !== undefined) ids.add(tok.eosTokenId);
  const g = files.generationConfig?.eos_token_id;
  for (const id of g === undefined || g === null ? [] : Array.isArray(g) ? g : [g]) ids.add(id);
  return [...ids];
}

interface Entry {
  loaded: Promise<LoadedModel>;
  /** the tail of the lock's queue */
  tail: Promise<void>;
  users: number;
  lastUsed: number;
}

export class ModelCache {
  private entries = new Map<string, Entry>();

  constructor(private readonly maxModels = 2) {}

  /**
   * Runs fn with the model (loaded on first use) while holding its lock. `dir` and `adapter` are real
   * absolute paths (the workspace resolved them).
   */
  async use<R>(dir: string, adapter: string | null, fn: (m: LoadedModel) => Promise<R>, signal?: AbortSignal): Promise<R> {
    const key = `${dir}\0${adapter ?? ''}`;
    let e = this.entries.get(key);
    if (!e) {
      const loaded = Promise.resolve().then(() => this.load(key, dir, adapter));
      e = { loaded, tail: Promise.resolve(), users: 0, lastUsed: Date.now() };
      this.entries.set(key, e);
      loaded.catch(() => this.entries.get(key) === e && this.entries.delete(key));
    }
    const entry = e;
    entry.users++;
    entry.lastUsed = Date.now();
    let release!: () => void;
    const prev = entry.tail;
    entry.tail = new Promise<void>((r) => (release = r));
    try {
      await prev;
      signal?.throwIfAborted();
      const m = await entry.loaded;
      return await fn(m);
    } finally {
      release();
      entry.users--;
      entry.lastUsed = Date.now();
      this.evict();
    }
  }

  /** What is loaded (version / jobs listing). */
  list(): { dir: string; adapter: string | null; users: number }[] {
    return [...this.entries.entries()].map(([k, e]) => {
      const [dir, adapter] = k.split('\0');
      return { dir, adapter: adapter || null, users: e.users };
    });
  }

  /** Releases every model no job uses. */
  async clear(): Promise<void> {
    for (const [k, e] of [...this.entries]) {
      if (e.users > 0) continue;
      this.entries.delete(k);
      await dispose(e);
    }
  }

  private load(key: string, dir: string, adapter: string | null): LoadedModel {
    const files = loadModelFiles(dir);
    try {
      if (!files.tokenizer) throw new ModelFileError('no tokenizer.json: generation and evaluation need the model\'s tokenizer', { file: dir });
      const model = LlamaModel.fromFiles(files);
      try {
        if (adapter) loadPeftAdapter(model, adapter);
      } catch (e) {
        model.dispose();
        throw e;
      }
      return { key, dir, adapter, files, model, tokenizer: files.tokenizer, stopTokenIds: stopTokens(files, files.tokenizer), loadedAt: new Date().toISOString() };
    } catch (e) {
      files.release();
      throw e;
    }
  }

  private evict(): void {
    if (this.entries.size <= this.maxModels) return;
    const idle = [...this.entries.entries()].filter(([, e]) => e.users === 0).sort((a, b) => a[1].lastUsed - b[1].lastUsed);
    for (const [k, e] of idle.slice(0, this.entries.size - this.maxModels)) {
      this.entries.delete(k);
      void dispose(e);
    }
  }
}

async function dispose(e: Entry): Promise<void> {
  try {
    const m = await e.loaded;
    m.model.dispose();
    m.files.release();
  } catch {
    // it never loaded
  }
}
