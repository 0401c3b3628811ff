// Models held by the sidecar for generation and evaluation: loaded once per (model dir, adapter dir) and
// kept (least recently used dropped past a small bound), each with a lock: a model's KV cache and its
// adapter state belong to one job at a time (generate prefills the cache, evaluation zeroes LoRA B for the
// base run), so jobs on the same model take turns while jobs on different models run side by side.
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { loadModelFiles, type ModelFiles } from '../model/files.js';
import { LlamaModel } from '../model/native-model.js';
import { ModelFileError } from '../model/errors.js';
import type { ModelTokenizer } from '../model/tokenizer.js';
import { applyLoraAdapter, readPeftAdapter } from '../deploy/peft.js';
import { stopIds } from '../eval/evaluate.js';

export interface LoadedModel {
  key: string;
  dir: string;
  adapter: string | null;
  files: ModelFiles;
  model: LlamaModel;
  tokenizer: ModelTokenizer;
  /** token ids that end a reply (stopTokens) */
  stopTokenIds: number[];
  loadedAt: string;
}

/** The evaluation's end tokens (the tokenizer's eos and the usual end-of-turn tokens) and generation_config.json's eos_token_id(s). */
function stopTokens(files: ModelFiles, tok: ModelTokenizer): number[] {
  const ids = new Set(stopIds(tok));
  const g = files.generationConfig?.eos_token_id;
  for (const id of g === undefined || g === null ? [] : Array.isArray(g) ? g : [g]) ids.add(id);
  return [...ids];
}

/** Size and modification time of the files a model (and adapter) is loaded from: a change means reload. */
function stamp(dir: string, adapter: string | null): string {
  const files = [join(dir, 'config.json'), join(dir, 'model.safetensors'), join(dir, 'model.safetensors.index.json'), join(dir, 'tokenizer.json')];
  if (adapter) files.push(join(adapter, 'adapter_config.json'), join(adapter, 'adapter_model.safetensors'));
  return files
    .map((f) => {
      try {
        const st = statSync(f);
        return `${st.size}:${st.mtimeMs}:${st.ino}`;
      } catch {
        return '-';
      }
    })
    .join('|');
}

interface Entry {
  /** the files' stamp when loaded */
  stamp: string;
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
    const now = stamp(dir, adapter);
    let e = this.entries.get(key);
    if (e && e.stamp !== now) {
      // the files changed since it was loaded (a retrained adapter, a re-exported model): load them again;
      // jobs still using the old one keep it until they end
      this.entries.delete(key);
      if (e.users === 0) void dispose(e);
      e = undefined;
    }
    if (!e) {
      const loaded = Promise.resolve().then(() => this.load(key, dir, adapter));
      e = { stamp: now, loaded, tail: Promise.resolve(), users: 0, lastUsed: Date.now() };
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
      if (entry.users === 0 && this.entries.get(key) !== entry) void dispose(entry);
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
        // a PEFT adapter folder (what a training run writes), its shapes checked against this model
        if (adapter) applyLoraAdapter(model, readPeftAdapter(adapter, { base: files.config }));
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
