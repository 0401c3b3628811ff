// The serving engine: loads registered versions into the native engine (a PEFT adapter over its base
// model, or a merged model directory), keeps the most recently used ones loaded, and answers generate
// requests (chat messages -> text) with their timings. Requests for one version that arrive while it is
// busy are batched into one generate call (same sampling settings), so concurrent callers share the
// prefill and the decode steps; each request still gets its own text, tokens and timings. Greedy
// requests are batched; sampled ones run alone so that their tokens depend on their seed only.
import { z } from 'zod';
import { checkSequenceLength } from '../model/config.js';
import { loadModelFiles } from '../model/files.js';
import type { ModelFiles } from '../model/files.js';
import { LlamaModel } from '../model/native-model.js';
import type { ModelTokenizer } from '../model/tokenizer.js';
import type { FinishReason } from '../model/generate.js';
import { stopIds } from '../eval/evaluate.js';
import { applyLoraAdapter, readPeftAdapter } from './peft.js';
import { baseModelMismatch, Registry, RegistryError } from './registry.js';
import type { ArtifactKind } from './registry.js';

export const ServeMessage = z.looseObject({ role: z.enum(['system', 'user', 'assistant', 'tool']), content: z.string() });

/** A generate request (the port validates its params with this schema). */
export const ServeRequest = z.strictObject({
  messages: z.array(ServeMessage).min(1, 'give at least one message'),
  maxNewTokens: z.number().int().min(1).max(8192).default(64),
  /** 0: greedy (the default); > 0: sampling at this temperature */
  temperature: z.number().min(0).default(0),
  topK: z.number().int().min(0).default(50),
  topP: z.number().gt(0).max(1).default(1),
  repetitionPenalty: z.number().gt(0).default(1),
  seed: z.number().int().min(0).default(0),
  stop: z.array(z.string().min(1)).default([]),
});
export type ServeRequest = z.input<typeof ServeRequest>;
type ResolvedRequest = z.output<typeof ServeRequest>;

export interface ServeResponse {
  version: string;
  text: string;
  finishReason: FinishReason;
  promptTokens: number;
  completionTokens: number;
  /** from the call to the response, queueing and loading included */
  latencyMs: number;
  /** waiting for the version to load or to finish the batch before */
  queueMs: number;
  /** the prefill (prompt through the model, first token out) */
  prefillMs: number;
  /** from the first new token to the last */
  decodeMs: number;
  prefillTokensPerSec: number | null;
  /** new tokens after the first per second of decodeMs */
  decodeTokensPerSec: number | null;
  /** requests served by the same generate call */
  batchSize: number;
}

export interface ServingOptions {
  /** versions kept loaded at once (least recently used unloaded first; default 4) */
  maxLoaded?: number;
  /** requests of one version generated together at most (default 8) */
  maxBatch?: number;
}

interface Pending {
  req: ResolvedRequest;
  ids: number[];
  t0: number;
  resolve: (r: ServeResponse) => void;
  reject: (e: unknown) => void;
}

interface Loaded {
  id: string;
  kind: ArtifactKind;
  model: LlamaModel;
  files: ModelFiles;
  tok: ModelTokenizer;
  stop: number[];
  pending: Pending[];
  running: boolean;
  /** unloaded: a request that got it from the cache just before must load the version again */
  disposed: boolean;
  lastUsed: number;
}

const round = (x: number) => Math.round(x * 1000) / 1000;

export class ServingEngine {
  private readonly cache = new Map<string, Promise<Loaded>>();
  private readonly maxLoaded: number;
  private readonly maxBatch: number;

  constructor(
    readonly registry: Registry,
    opts: ServingOptions = {},
  ) {
    this.maxLoaded = opts.maxLoaded ?? 4;
    this.maxBatch = opts.maxBatch ?? 8;
  }

  /** Loads a version (or returns the loaded one): id, tag, hash prefix or @channel. */
  async load(spec: string): Promise<{ version: string; kind: ArtifactKind }> {
    const l = await this.get(this.registry.resolve(spec));
    return { version: l.id, kind: l.kind };
  }

  /** The versions loaded now. */
  loaded(): string[] {
    return [...this.cache.keys()];
  }

  /** Generates the answer to a conversation with a version. */
  async generate(spec: string, request: ServeRequest): Promise<ServeResponse> {
    const t0 = performance.now();
    const req = ServeRequest.parse(request);
    const id = this.registry.resolve(spec);
    let l = await this.get(id);
    while (l.disposed) l = await this.get(id);
    l.lastUsed = Date.now();
    const ids = l.tok.encodeChat(req.messages);
    if (l.files.config) checkSequenceLength(l.files.config, ids.length + req.maxNewTokens);
    return new Promise<ServeResponse>((resolve, reject) => {
      l.pending.push({ req, ids, t0, resolve, reject });
      void this.drain(l);
    });
  }

  /** Unloads a version (after the requests it is serving). */
  async unload(id: string): Promise<void> {
    const p = this.cache.get(id);
    if (!p) return;
    this.cache.delete(id);
    const l = await p.catch(() => null);
    if (l) this.disposeWhenIdle(l);
  }

  async close(): Promise<void> {
    await Promise.all([...this.cache.keys()].map((id) => this.unload(id)));
  }

  private get(id: string): Promise<Loaded> {
    let p = this.cache.get(id);
    if (!p) {
      p = this.open(id);
      this.cache.set(id, p);
      // a failed load is not cached: the next request tries again (and reports the error again)
      p.catch(() => {
        if (this.cache.get(id) === p) this.cache.delete(id);
      });
      void this.evict(id);
    } else {
      // most recently used last
      this.cache.delete(id);
      this.cache.set(id, p);
    }
    return p;
  }

  private async evict(keep: string): Promise<void> {
    for (const id of [...this.cache.keys()]) {
      if (this.cache.size <= this.maxLoaded) return;
      if (id !== keep) await this.unload(id);
    }
  }

  private async open(id: string): Promise<Loaded> {
    await Promise.resolve();
    const v = this.registry.read().versions[id];
    if (!v) throw new RegistryError(`no version '${id}'`, 'not_found');
    const dir = this.registry.versionDir(id);
    let files: ModelFiles;
    let adapterDir: string | null = null;
    if (v.kind === 'peft-adapter') {
      const base = v.lineage.base;
      if (!base) throw new RegistryError(`${id}: a PEFT adapter without a base model in its lineage`, 'invalid');
      const bad = baseModelMismatch(base);
      if (bad) throw new RegistryError(`${id}: its base model ${base.name} (${base.dir}) is not the one registered: ${bad}`, 'invalid');
      files = loadModelFiles(base.dir);
      adapterDir = dir;
    } else if (v.kind === 'merged-model') {
      files = loadModelFiles(dir);
    } else {
      throw new RegistryError(`${id} is a ${v.kind} export: it is served by ${v.kind === 'gguf' ? 'llama.cpp / Ollama (see its Modelfile)' : 'onnxruntime'}, not by this engine; register the PEFT adapter or the merged model to serve it here`, 'refused');
    }
    let model: LlamaModel | null = null;
    try {
      if (!files.tokenizer) throw new RegistryError(`${id}: ${files.dir} has no tokenizer`, 'invalid');
      model = LlamaModel.fromFiles(files);
      if (adapterDir) applyLoraAdapter(model, readPeftAdapter(adapterDir, { base: files.config }));
      return { id, kind: v.kind, model, files, tok: files.tokenizer, stop: stopIds(files.tokenizer), pending: [], running: false, disposed: false, lastUsed: Date.now() };
    } catch (e) {
      model?.dispose();
      files.release();
      throw e;
    }
  }

  private disposeWhenIdle(l: Loaded): void {
    if (l.running || l.pending.length) {
      setTimeout(() => this.disposeWhenIdle(l), 5);
      return;
    }
    l.disposed = true;
    l.model.dispose();
    l.files.release();
  }

  /** Runs the version's pending requests, a batch of compatible ones per generate call. */
  private async drain(l: Loaded): Promise<void> {
    if (l.running) return;
    l.running = true;
    try {
      while (l.pending.length) {
        const first = l.pending[0];
        const key = JSON.stringify({ ...first.req, messages: null });
        const batch: Pending[] = [];
        // sampled requests run alone: their tokens then depend on their seed only, not on the batch
        const limit = first.req.temperature > 0 ? 1 : this.maxBatch;
        for (let i = 0; i < l.pending.length && batch.length < limit; ) {
          if (JSON.stringify({ ...l.pending[i].req, messages: null }) === key) batch.push(...l.pending.splice(i, 1));
          else i++;
        }
        await this.runBatch(l, batch);
      }
    } finally {
      l.running = false;
    }
  }

  private async runBatch(l: Loaded, batch: Pending[]): Promise<void> {
    const r = batch[0].req;
    const tStart = performance.now();
    const first = new Array<number>(batch.length).fill(NaN);
    const last = new Array<number>(batch.length).fill(NaN);
    try {
      const out = await l.model.generate(
        batch.map((p) => p.ids),
        {
          maxNewTokens: r.maxNewTokens,
          doSample: r.temperature > 0,
          temperature: r.temperature > 0 ? r.temperature : 1,
          topK: r.topK,
          topP: r.topP,
          repetitionPenalty: r.repetitionPenalty,
          seed: r.seed,
          stopTokenIds: l.stop,
          stopStrings: r.stop,
          padTokenId: l.tok.padTokenId ?? l.tok.eosTokenId ?? 0,
        },
        {
          decode: (ids) => l.tok.decode(ids, { skipSpecialTokens: true }),
          onToken: (e) => {
            const now = performance.now();
            if (e.step === 0) first[e.sequence] = now;
            last[e.sequence] = now;
          },
        },
      );
      const end = performance.now();
      batch.forEach((p, k) => {
        const n = out.tokens[k].length;
        const f = Number.isNaN(first[k]) ? end : first[k];
        const prefillMs = f - tStart;
        const decodeMs = (Number.isNaN(last[k]) ? end : last[k]) - f;
        p.resolve({
          version: l.id,
          text: (out.texts?.[k] ?? '').trim(),
          finishReason: out.finishReasons[k],
          promptTokens: p.ids.length,
          completionTokens: n,
          latencyMs: round(end - p.t0),
          queueMs: round(tStart - p.t0),
          prefillMs: round(prefillMs),
          decodeMs: round(decodeMs),
          prefillTokensPerSec: prefillMs > 0 ? round((p.ids.length * 1000) / prefillMs) : null,
          decodeTokensPerSec: n > 1 && decodeMs > 0 ? round(((n - 1) * 1000) / decodeMs) : null,
          batchSize: batch.length,
        });
      });
    } catch (e) {
      for (const p of batch) p.reject(e);
    }
  }
}
