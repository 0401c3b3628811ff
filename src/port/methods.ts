// The method table: every method of the protocol, its params schema (the library's own zod schemas
// where the library has them) and what runs it. Three kinds:
//   call: the reply carries the result;
//   job:  the reply carries { job }, then events stream and a terminal event carries the result (jobs.ts);
//   pending: part of the protocol, waiting for its library part (the issue named); answers not_implemented.
// A later issue plugs its method in here: replace its `pending` entry with `run` or `job`.
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { z } from 'zod';
import { LoggedInteraction } from '../data/collect/log.js';
import { CollectionLog } from '../data/collect/log.js';
import { parseConfig, projectInfo } from '../data/build.js';
import { DataError } from '../data/errors.js';
import { PipelineConfig, type PipelineConfig as PipelineConfigT } from '../data/schema.js';
import { diffVersions, listVersions, readManifest, resolveVersion, versionDir } from '../data/store.js';
import { mkdirSync, readFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { invalidParams, PortError, runConfigErrorPayload, toErrorPayload } from './errors.js';
import type { DataJobInput, DataJobMessage } from './data-worker.js';
import type { Job } from './jobs.js';
import type { CheckpointEvent, StartEvent } from '../train/runner.js';
import { loadRunConfigFile, parseRunConfig, RunConfigError, type RunConfig } from '../train/config.js';
import type { Workspace } from './workspace.js';
import type { ModelCache, LoadedModel } from './models.js';
import { deployMethods } from './deploy.js';
import { Message } from '../data/schema.js';
import { GenerationConfigSchema } from '../model/generate.js';
import { EvalMetricsSpecSchema } from '../eval/config.js';
import type { EvalRecord } from '../eval/evaluate.js';
import type { LlamaModel } from '../model/native-model.js';
import type { NativeCausalLM } from '../../bindings/model.js';

import { transportInfo } from './transport.js';

export const PROTOCOL_VERSION = 1;

/** What a method sees besides its params. */
export interface CallContext {
  workspace: Workspace;
  /** aborted when the client cancels the request or the sidecar stops */
  signal: AbortSignal;
  log: (level: 'debug' | 'info' | 'warning' | 'error', message: string, data?: Record<string, unknown>) => void;
  collectionLog: (dir: string) => Promise<CollectionLog>;
  jobs: import('./jobs.js').JobRegistry;
  /** models loaded for generation and evaluation, by (dir, adapter) */
  models: ModelCache;
  grant: (job: string, credits: number) => void;
  cancelRequest: (id: string | number) => boolean;
  settings: { maxFrameBytes: number; maxInFlight: number; maxJobs: number; registry?: string };
}

interface Base<S extends z.ZodType> {
  summary: string;
  params: S;
}
export type MethodSpec<S extends z.ZodType = z.ZodType> =
  | (Base<S> & { kind: 'call'; run: (p: z.infer<S>, ctx: CallContext) => unknown })
  /** a job's run checks its params (errors become the start request's error reply) and returns what runs the job */
  | (Base<S> & { kind: 'job'; run: (p: z.infer<S>, ctx: CallContext) => (job: Job) => Promise<unknown> })
  | (Base<S> & { kind: 'pending'; issue: number; what: string });

const call = <S extends z.ZodType>(summary: string, params: S, run: (p: z.infer<S>, ctx: CallContext) => unknown): MethodSpec =>
  ({ kind: 'call', summary, params, run }) as MethodSpec;
const job = <S extends z.ZodType>(summary: string, params: S, run: (p: z.infer<S>, ctx: CallContext) => (job: Job) => Promise<unknown>): MethodSpec =>
  ({ kind: 'job', summary, params: params, run }) as MethodSpec;
const pending = (summary: string, issue: number, what: string): MethodSpec => ({ kind: 'pending', summary, params: z.unknown(), issue, what });

/** Params of every job start: an optional job id chosen by the client, and its initial event credits. */
const JobStart = { job: z.string().min(1).max(200).optional(), credits: z.number().int().min(0).max(100_000).default(0) };

const TrainStart = z.strictObject({
  ...JobStart,
  /** a run config file (JSON) inside the workspace; its relative paths resolve against its folder */
  config: z.string().min(1),
  /** overrides output.runs_dir */
  runs_dir: z.string().min(1).optional(),
  /**
   * one worker of a data-parallel run (docs/DISTRIBUTED.md): each step the job emits a `gradients` event
   * (its share's LoRA gradients as f32 little-endian bin, and [lossSum, tokens, rowTokens]) and waits for
   * `train.reduce` with the sums over all workers
   */
  parallel: z
    .strictObject({
      rank: z.number().int().min(0),
      workers: z.number().int().min(1).max(4096),
      /** the gradients event of steps 1, 1 + K, ... carries `paramHash`, the SHA-256 of the LoRA parameters (0: never) */
      hash_every: z.number().int().min(0).default(0),
      /**
       * the gradients stay in the sidecar: the event carries their `length`, not the values, and the
       * all-reduce works on them in place with `train.chunk` (get, add, set a range), then `train.reduce`
       * without `grads`
       */
      inplace: z.boolean().default(false),
    })
    .optional(),
});
type ParallelParams = { rank: number; workers: number; hash_every: number; inplace: boolean };

/** a + b over f32 little-endian values of one length */
function addF32(a: Uint8Array, b: Uint8Array): Buffer {
  const x = f32Of(a);
  const y = f32Of(b);
  const o = new Float32Array(x.length);
  for (let i = 0; i < o.length; i++) o[i] = x[i] + y[i];
  return Buffer.from(o.buffer, 0, o.byteLength);
}

/** Data-parallel jobs waiting for their step's reduced gradients (train.reduce), by job id. */
const awaitingReduce = new Map<
  string,
  { step: number; length: number; grads: Float32Array; resolve: (r: { grads: Float32Array; stats: Float64Array }) => void; reject: (e: Error) => void }
>();

/** The job's entry in awaitingReduce, checked against the request's step. */
function waiting(job: string, step: number) {
  const w = awaitingReduce.get(job);
  if (!w) throw new PortError('not_found', `job ${job} is not waiting for reduced gradients`, { path: 'params.job' });
  if (w.step !== step) throw new PortError('invalid_params', `job ${job} waits for step ${w.step}, not ${step}`, { path: 'params.step' });
  return w;
}

/** f32 values of a bin param (a copy when the frame's bytes are not 4-byte aligned). */
function f32Of(u: Uint8Array): Float32Array {
  return u.byteOffset % 4 === 0 ? new Float32Array(u.buffer, u.byteOffset, u.byteLength / 4) : new Float32Array(new Uint8Array(u).buffer);
}

/**
 * A training run inside the sidecar: the native core runs every step off the event loop (async ops), so
 * pings and other requests are served while it trains. Cancel (or the sidecar's input closing) stops it
 * at the next step boundary with a checkpoint, from which `starweave-ft train --resume RUN_DIR` continues.
 */
async function runTrainingJob(what: ({ config: RunConfig } | { resume: string }) & { parallel?: ParallelParams }, job: Job, ctx: CallContext): Promise<unknown> {
  const { startTraining, resumeTraining } = await import('../train/runner.js');
  const par = what.parallel;
  if (par && par.rank >= par.workers) throw new PortError('invalid_params', `params.parallel: rank ${par.rank} is not below workers ${par.workers}`, { path: 'params.parallel.rank' });
  const parallel = par && {
    rank: par.rank,
    workers: par.workers,
    hashEvery: par.hash_every,
    exchange: (step: number, grads: Float32Array, stats: Float64Array, info: { paramHash?: string }) =>
      new Promise<{ grads: Float32Array; stats: Float64Array }>((resolve, reject) => {
        if (job.abort.signal.aborted) return reject(new Error('the job was cancelled'));
        awaitingReduce.set(job.id, { step, length: grads.length, grads, resolve, reject });
        const values = par.inplace ? { length: grads.length } : { grads: Buffer.from(grads.buffer, grads.byteOffset, grads.byteLength) };
        job.emit('gradients', { step, ...values, stats: [...stats], ...info });
      }),
  };
  job.abort.signal.addEventListener(
    'abort',
    () => {
      awaitingReduce.get(job.id)?.reject(new Error('the job was cancelled while it waited for train.reduce'));
      awaitingReduce.delete(job.id);
    },
    { once: true },
  );
  const run = 'config' in what ? startTraining(what.config, parallel ? { parallel } : {}) : resumeTraining(what.resume, parallel ? { parallel } : {});
  job.abort.signal.addEventListener('abort', () => run.cancel(), { once: true });
  job.onCheckpoint = async () => {
    run.cancel();
    await run.done.catch(() => undefined);
  };
  run.on('start', (e: StartEvent) => job.emit('start', { runDir: ctx.workspace.relative(e.runDir), resumedFromStep: e.resumedFromStep }));
  run.on('step', (e: Record<string, unknown>) => {
    const { type: _t, ...data } = e;
    job.emit('step', data, { coalesce: true });
  });
  run.on('eval', (e: Record<string, unknown>) => {
    const { type: _t, ...data } = e;
    job.emit('eval', data);
  });
  run.on('checkpoint', (e: CheckpointEvent) => job.emit('checkpoint', { step: e.step, dir: ctx.workspace.relative(e.path) }));
  try {
    const r = await run.done;
    return {
      status: r.status, runDir: ctx.workspace.relative(r.runDir), steps: r.steps, totalSteps: r.totalSteps, lastLoss: r.lastLoss,
      bestEvalLoss: r.bestEvalLoss, evals: r.evals, adapterDir: r.adapterDir && ctx.workspace.relative(r.adapterDir),
      checkpoint: r.checkpoint && ctx.workspace.relative(r.checkpoint), gate: r.evaluation?.gate ?? null,
    };
  } catch (e) {
    if (e instanceof RunConfigError) {
      const p = runConfigErrorPayload(e, (f) => ctx.workspace.relative(f));
      throw new PortError(p.code, p.message, p.details);
    }
    if (e instanceof PortError) throw e;
    const p = toErrorPayload(e);
    // the library's own validation errors keep their code (model_error, data_error); the rest is the run's failure
    if (p.code !== 'internal') throw new PortError(p.code, p.message, p.details);
    throw new PortError('training_error', (e as Error).message, { method: 'train.start' });
  } finally {
    awaitingReduce.delete(job.id);
  }
}

const StoreParam = z.string().min(1).default(join('.starweave', 'datasets'));

const DatasetJob = z.strictObject({
  ...JobStart,
  /** a config file in the workspace, or the config itself (relative paths then start at baseDir) */
  config: z.union([z.string().min(1), z.looseObject({})]),
  baseDir: z.string().min(1).optional(),
  store: StoreParam,
  /** also write the rejects here (workspace path) */
  rejects: z.string().min(1).optional(),
  strict: z.boolean().optional(),
});

/** Resolves a dataset job's config and checks that every path it names stays in the workspace. */
function datasetInput(p: z.infer<typeof DatasetJob>, ctx: CallContext, dryRun: boolean): DataJobInput {
  const ws = ctx.workspace;
  let config: PipelineConfigT;
  let baseDir: string;
  if (typeof p.config === 'string') {
    const file = ws.resolve(p.config, 'params.config');
    let raw: unknown;
    try {
      raw = JSON.parse(readFileSync(file, 'utf8'));
    } catch (e) {
      throw new DataError(`cannot read the config: ${(e as Error).message}`, { file: ws.relative(file) });
    }
    config = parseConfig(raw, ws.relative(file));
    baseDir = dirname(file);
  } else {
    const r = PipelineConfig.safeParse(p.config);
    if (!r.success) throw invalidParams(r.error, 'params.config');
    config = r.data;
    baseDir = ws.resolve(p.baseDir ?? '.', 'params.baseDir');
  }
  if (p.strict !== undefined) config.strict = p.strict;
  config.sources.forEach((s, i) => {
    if ('path' in s) ws.resolve(s.path, `params.config.sources[${i}].path`, baseDir);
  });
  if (config.curation.file) ws.resolve(config.curation.file, 'params.config.curation.file', baseDir);
  return {
    config,
    baseDir,
    dryRun,
    store: dryRun ? undefined : ws.resolve(p.store, 'params.store'),
    rejectsFile: p.rejects ? ws.resolve(p.rejects, 'params.rejects') : undefined,
  };
}

/**
 * Runs a dataset job in a worker thread; progress events coalesce. Cancel or stop raises the worker's stop
 * flag (the build stops at its next progress report and removes its staging folder); a worker that does not
 * end within STOP_GRACE_MS is terminated.
 */
const STOP_GRACE_MS = 5000;
function runDataWorker(input: DataJobInput, job: Job, ctx: CallContext): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const stopFlag = new Int32Array(new SharedArrayBuffer(4));
    const worker = new Worker(new URL('./data-worker.js', import.meta.url), { workerData: { ...input, stop: stopFlag }, stdout: true, stderr: true });
    const forward = (level: 'info' | 'warning') => (chunk: Buffer) => ctx.log(level, chunk.toString('utf8').trimEnd(), { job: job.id });
    worker.stdout.on('data', forward('info'));
    worker.stderr.on('data', forward('warning'));
    let settled = false;
    let exited = false;
    const exit = new Promise<void>((r) => worker.once('exit', () => ((exited = true), r())));
    const stop = async () => {
      Atomics.store(stopFlag, 0, 1);
      const grace = new Promise<void>((r) => setTimeout(r, STOP_GRACE_MS).unref());
      await Promise.race([exit, grace]);
      if (!exited) await worker.terminate();
    };
    job.abort.signal.addEventListener('abort', () => void stop(), { once: true });
    // a build is staged and renamed into place: stopping it leaves no partial version to resume from
    job.onCheckpoint = stop;
    worker.on('message', (m: DataJobMessage) => {
      if (m.type === 'progress') job.emit('progress', m.progress, { coalesce: true });
      else if (m.type === 'done') {
        settled = true;
        const r = m.result;
        const firstRejects = r.firstRejects.slice(0, 20);
        const inputRejects = ['parse_error', 'unknown_format', 'schema', 'too_short', 'too_long', 'too_many_tokens'].reduce((s, k) => s + r.report.rejects[k as keyof typeof r.report.rejects], 0);
        resolve({
          versionId: r.versionId ?? null,
          created: r.created,
          dir: r.dir ? ctx.workspace.relative(r.dir) : null,
          ok: inputRejects === 0,
          inputRejects,
          report: r.report,
          firstRejects,
        });
      } else {
        settled = true;
        if (job.abort.signal.aborted) reject(job.abort.signal.reason);
        else reject(new PortError(m.error.code, m.error.message, m.error.details));
      }
    });
    worker.on('error', (e) => {
      settled = true;
      reject(e);
    });
    worker.on('exit', (code) => {
      if (!settled) reject(job.abort.signal.aborted ? job.abort.signal.reason : new PortError('internal', `the dataset worker exited with code ${code}`));
    });
  });
}

// ---- generation and evaluation: models come from the sidecar's cache (models.ts), one job at a time each

const { stopTokenIds: _stopTokenIds, padTokenId: _padTokenId, ...SamplingShape } = GenerationConfigSchema.shape;
const Generate = z
  .strictObject({
    ...JobStart,
    /** a Hugging Face model folder in the workspace */
    model: z.string().min(1),
    /** a PEFT LoRA adapter folder (a run's adapter/) applied to the model */
    adapter: z.string().min(1).optional(),
    /** a conversation: rendered with the model's chat template, the reply is generated */
    messages: z.array(Message).min(1).optional(),
    /** plain text continued as it is (no chat template) */
    prompt: z.string().min(1).optional(),
    // the sampling options of src/model/generate.ts (maxNewTokens, doSample, temperature, topK, topP,
    // repetitionPenalty, stopStrings, seed)
    ...SamplingShape,
    /** default: the model's end tokens (tokenizer eos, generation_config.json eos_token_id) */
    stopTokenIds: z.array(z.number().int().min(0)).optional(),
  })
  .superRefine((p, c) => {
    if ((p.messages === undefined) === (p.prompt === undefined)) c.addIssue({ code: 'custom', path: ['messages'], message: 'give exactly one of messages or prompt' });
  });
type GenerateParams = z.infer<typeof Generate>;

/**
 * The new text each generated token completes, for streaming: the tokens since the last line break are
 * decoded again with each new one (decoding from a line start is exact, as transformers' TextStreamer
 * does it, and a long generation is not decoded whole per token); a character whose bytes are split across
 * tokens (U+FFFD at the end) waits for the rest.
 */
export class TokenText {
  private tokens: number[] = [];
  private lineStart = 0;
  private sent = 0;

  constructor(private readonly decode: (ids: readonly number[]) => string) {}

  push(token: number): string {
    this.tokens.push(token);
    const full = this.decode(this.tokens.slice(this.lineStart));
    if (full.endsWith('\uFFFD') || full.length < this.sent) return '';
    const text = full.slice(this.sent);
    this.sent = full.length;
    if (text.endsWith('\n')) {
      this.lineStart = this.tokens.length;
      this.sent = 0;
    }
    return text;
  }
}

/**
 * One generation as a job: a token event per new token ({ token, text, step }: `text` is the new text
 * that token completes; bytes of a character split across tokens wait for the rest), in order and never
 * dropped: while the job has no credits and its queue is full, decoding waits (the credits pace it).
 */
async function runGenerateJob(p: GenerateParams, dir: string, adapter: string | null, job: Job, ctx: CallContext): Promise<unknown> {
  const { checkSequenceLength } = await import('../model/config.js');
  const { generate } = await import('../model/generate.js');
  return ctx.models.use(dir, adapter, async (m: LoadedModel) => {
    const tok = m.tokenizer;
    let ids: number[];
    try {
      ids = p.messages ? tok.encodeChat(p.messages) : tok.encode(p.prompt!);
    } catch (e) {
      throw new PortError('model_error', `the prompt could not be rendered: ${(e as Error).message}`, { path: p.messages ? 'params.messages' : 'params.prompt' });
    }
    const { job: _j, credits: _c, model: _m, adapter: _a, messages: _ms, prompt: _p, ...sampling } = p;
    const config = { ...sampling, stopTokenIds: p.stopTokenIds ?? m.stopTokenIds, padTokenId: tok.padTokenId ?? tok.eosTokenId ?? 0 };
    const maxNew = config.maxNewTokens ?? 64;
    if (m.model.modelConfig) {
      try {
        checkSequenceLength(m.model.modelConfig, ids.length + maxNew);
      } catch (e) {
        throw new PortError('invalid_params', `params.maxNewTokens: the prompt's ${ids.length} tokens and ${maxNew} new ones do not fit the model: ${(e as Error).message}`, { path: 'params.maxNewTokens', promptTokens: ids.length });
      }
    }
    job.emit('start', { promptTokens: ids.length, model: ctx.workspace.relative(dir), adapter: adapter && ctx.workspace.relative(adapter) });
    const decode = (t: readonly number[]) => tok.decode(t, { skipSpecialTokens: true });
    const stream = new TokenText(decode);
    const native = m.model.native;
    const signal = job.abort.signal;
    const t0 = performance.now();
    signal.throwIfAborted();
    const r = await generate(
      {
        vocabSize: m.model.vocabSize,
        prefillAsync: (a, b, cap) => native.prefillAsync(a, b, cap),
        decodeStepAsync: async (a, b) => {
          await job.room();
          signal.throwIfAborted();
          return native.decodeStepAsync(a, b);
        },
      },
      [ids],
      config,
      {
        decode,
        onToken: (e) => job.emit('token', { token: e.token, text: stream.push(e.token), step: e.step }),
      },
    );
    const seconds = (performance.now() - t0) / 1000;
    return { text: r.texts![0], tokens: r.tokens[0], finishReason: r.finishReasons[0], promptTokens: ids.length, newTokens: r.tokens[0].length, seconds, tokensPerSec: seconds > 0 ? r.tokens[0].length / seconds : null };
  }, job.abort.signal);
}

const EvalRecordSchema = z.looseObject({ messages: z.array(Message).min(1), category: z.string().optional() });
const EvalRun = z.strictObject({
  ...JobStart,
  /** a Hugging Face model folder in the workspace */
  model: z.string().min(1),
  /** a PEFT LoRA adapter folder: the tuned model; without it the model is evaluated as it is */
  adapter: z.string().min(1).optional(),
  /** the records: a dataset version's split, a JSONL file of { messages, category }, or the records */
  data: z.union([
    z.strictObject({ store: StoreParam, version: z.string().min(1), split: z.enum(['heldout', 'train']).default('heldout') }),
    z.strictObject({ file: z.string().min(1) }),
    z.strictObject({ records: z.array(EvalRecordSchema).min(1).max(100_000) }),
  ]),
  /** the run config's eval.metrics section (max_examples, generate_examples, max_new_tokens, compare_base, gate) */
  metrics: EvalMetricsSpecSchema.optional(),
  max_seq_len: z.number().int().min(2).max(1 << 20).default(512),
  /** a folder in the workspace to write eval.json into */
  output: z.string().min(1).optional(),
});
type EvalRunParams = z.infer<typeof EvalRun>;

function readRecordsJsonl(file: string, shown: string): EvalRecord[] {
  const out: EvalRecord[] = [];
  readFileSync(file, 'utf8')
    .split('\n')
    .forEach((line, i) => {
      if (!line.trim()) return;
      let v: unknown;
      try {
        v = JSON.parse(line);
      } catch (e) {
        throw new DataError(`not valid JSON: ${(e as Error).message}`, { file: shown, line: i + 1 });
      }
      const r = EvalRecordSchema.safeParse(v);
      if (!r.success) throw new DataError(`not a record of { messages, category }: ${r.error.issues[0].path.join('.')}: ${r.error.issues[0].message}`, { file: shown, line: i + 1 });
      out.push(r.data);
    });
  return out;
}

function evalRecords(d: EvalRunParams['data'], ctx: CallContext): EvalRecord[] {
  const ws = ctx.workspace;
  let records: EvalRecord[];
  if ('records' in d) records = d.records;
  else if ('file' in d) {
    const file = ws.resolve(d.file, 'params.data.file');
    records = readRecordsJsonl(file, ws.relative(file));
  } else {
    const store = ws.resolve(d.store, 'params.data.store');
    const id = resolveVersion(store, d.version);
    const m = readManifest(store, id);
    const file = join(versionDir(store, id), m.splits[d.split].file);
    records = readRecordsJsonl(file, ws.relative(file));
  }
  if (!records.length) throw new PortError('invalid_params', 'params.data: no records to evaluate on', { path: 'params.data' });
  return records;
}

/** The model seen through a counter of scored examples (progress events); everything else is the model's own. */
function countingModel(model: LlamaModel, signal: AbortSignal, scored: () => void): LlamaModel {
  const native = Object.create(model.native) as NativeCausalLM;
  native.logitsAsync = async (ids, o) => {
    signal.throwIfAborted();
    const r = await model.native.logitsAsync(ids, o);
    scored();
    return r;
  };
  const w = Object.create(model) as LlamaModel;
  Object.defineProperty(w, 'native', { value: native });
  return w;
}

async function runEvalJob(
  a: { dir: string; adapter: string | null; records: EvalRecord[]; spec: z.input<typeof EvalMetricsSpecSchema>; maxSeqLen: number; output: string | null },
  job: Job,
  ctx: CallContext,
): Promise<unknown> {
  const { runEvaluation, writeEvalReport } = await import('../eval/run-eval.js');
  const spec = EvalMetricsSpecSchema.parse(a.spec);
  return ctx.models.use(a.dir, a.adapter, async (m: LoadedModel) => {
    const compareBase = spec.compare_base && a.adapter !== null;
    const perModel = Math.min(a.records.length, spec.max_examples);
    const total = perModel * (compareBase ? 2 : 1);
    job.emit('start', { records: a.records.length, examples: perModel, generateExamples: spec.generate_examples, compareBase });
    let scored = 0;
    const model = countingModel(m.model, job.abort.signal, () => {
      scored++;
      job.emit('progress', { phase: scored <= perModel ? 'tuned' : 'base', scored, total }, { coalesce: true });
    });
    const report = await runEvaluation(model, m.tokenizer, a.records, { ...spec, compare_base: compareBase }, { maxSeqLen: a.maxSeqLen });
    if (a.output) mkdirSync(a.output, { recursive: true });
    const file = a.output ? ctx.workspace.relative(writeEvalReport(a.output, report)) : null;
    return { ...report, file };
  }, job.abort.signal);
}

const Empty = z.strictObject({}).default({});

let nativeCache: unknown;
async function nativeFacts(): Promise<unknown> {
  if (nativeCache === undefined) {
    try {
      const b = await import('../../bindings/index.js');
      nativeCache = b.nativeInfo();
    } catch (e) {
      nativeCache = { error: (e as Error).message };
    }
  }
  return nativeCache;
}

export const METHODS: Record<string, MethodSpec> = {
  version: call('the sidecar: package version, protocol, Node, native core facts, the method table', Empty, async (_p, ctx) => ({
    name: projectInfo().name,
    version: projectInfo().version,
    protocol: PROTOCOL_VERSION,
    node: process.version,
    pid: process.pid,
    workspace: ctx.workspace.root,
    limits: ctx.settings,
    /** the capacity of the pipes on fds 3 and 4 (`--pipe-bytes`, default 1 MiB; null when not sized, with `note`) */
    transport: await transportInfo(),
    /** models held for generate / eval.run (by model and adapter folder) and the jobs using them */
    models: ctx.models.list().map((m) => ({ model: ctx.workspace.relative(m.dir), adapter: m.adapter && ctx.workspace.relative(m.adapter), users: m.users })),
    native: await nativeFacts(),
    methods: Object.fromEntries(Object.entries(METHODS).map(([name, m]) => [name, m.kind === 'pending' ? { kind: 'pending', issue: m.issue } : { kind: m.kind }])),
  })),
  ping: call('a round trip; `data` (any value, bin included) comes back as it was', z.strictObject({ data: z.unknown().optional() }).default({}), (p) => ({ pong: true, data: p.data ?? null })),
  cancel: call('cancels an in-flight request by id (its reply is then not sent)', z.strictObject({ id: z.union([z.number().int(), z.string(), z.bigint()]) }), (p, ctx) => ({
    cancelled: ctx.cancelRequest(typeof p.id === 'bigint' ? p.id.toString() : p.id),
  })),

  collect: call(
    'appends live interactions to a collection log (acknowledged = fsync\'d)',
    z.strictObject({ log: z.string().min(1).default('collection-log'), interactions: z.array(LoggedInteraction).min(1).max(10_000) }),
    async (p, ctx) => {
      const log = await ctx.collectionLog(ctx.workspace.resolve(p.log, 'params.log'));
      const acks = await Promise.all(p.interactions.map((i) => log.append(i)));
      return { acks };
    },
  ),

  'dataset.validate': job('runs every pipeline stage without writing a version; result: report and first rejects', DatasetJob, (p, ctx) => {
    const input = datasetInput(p, ctx, true);
    return (j) => runDataWorker(input, j, ctx);
  }),
  'dataset.build': job('builds a content-addressed dataset version into the store', DatasetJob, (p, ctx) => {
    const input = datasetInput(p, ctx, false);
    return (j) => runDataWorker(input, j, ctx);
  }),
  'dataset.list': call('the versions in a store, oldest first', z.strictObject({ store: StoreParam }).default({ store: join('.starweave', 'datasets') }), (p, ctx) =>
    listVersions(ctx.workspace.resolve(p.store, 'params.store')).map((m) => ({ versionId: m.versionId, name: m.name, createdAt: m.createdAt, records: m.records, parent: m.parent, splits: { train: m.splits.train.records, heldout: m.splits.heldout.records } })),
  ),
  'dataset.show': call('a version\'s manifest and report', z.strictObject({ store: StoreParam, version: z.string().min(1) }), (p, ctx) => {
    const store = ctx.workspace.resolve(p.store, 'params.store');
    const id = resolveVersion(store, p.version);
    const manifest = readManifest(store, id);
    const reportMarkdown = readFileSync(join(versionDir(store, id), manifest.files.reportMarkdown), 'utf8');
    return { manifest, reportMarkdown };
  }),
  'dataset.diff': call('records added, removed and moved between two versions', z.strictObject({ store: StoreParam, from: z.string().min(1), to: z.string().min(1), sample: z.number().int().min(0).max(1000).default(10) }), (p, ctx) =>
    diffVersions(ctx.workspace.resolve(p.store, 'params.store'), p.from, p.to, p.sample),
  ),

  'model.info': call('a Hugging Face model directory: normalized config, parameter count, tokenizer facts', z.strictObject({ path: z.string().min(1) }), async (p, ctx) => {
    const dir = ctx.workspace.resolve(p.path, 'params.path');
    const { loadModelConfig } = await import('../model/config.js');
    const { parameterCount } = await import('../model/layout.js');
    const { loadTokenizer } = await import('../model/tokenizer.js');
    const { config } = loadModelConfig(join(dir, 'config.json'));
    const tok = loadTokenizer(dir);
    return {
      config,
      parameters: parameterCount(config),
      tokenizer: { name: tok.name, vocabSize: tok.vocabSize, chatTemplate: tok.chatTemplate !== null, bos: tok.bosTokenId ?? null, eos: tok.eosTokenId ?? null },
    };
  }),

  'jobs.list': call('every job the sidecar knows (running and the last finished)', Empty, (_p, ctx) => ctx.jobs.list().map((j) => j.summary())),
  'jobs.status': call('one job: status, result or error', z.strictObject({ job: z.string().min(1) }), (p, ctx) => {
    const j = ctx.jobs.get(p.job);
    return { ...j.summary(), result: j.result ?? null, error: j.error };
  }),
  'jobs.cancel': call('cancels a running job (a cancelled event ends its stream)', z.strictObject({ job: z.string().min(1) }), (p, ctx) => ({ cancelled: ctx.jobs.get(p.job).cancel() })),
  'events.ack': call('returns event credits to a job (the client consumed its events)', z.strictObject({ job: z.string().min(1), credits: z.number().int().min(1).max(1_000_000) }), (p, ctx) => {
    ctx.grant(p.job, p.credits);
    return { ok: true };
  }),

  'train.start': job('starts a LoRA training run (events: start, step, eval, checkpoint; result: the run summary)', TrainStart, (p, ctx) => {
    // the config is read and its paths checked here, so that a bad one is the start request's error reply
    let config: RunConfig;
    try {
      config = loadRunConfigFile(ctx.workspace.resolve(p.config, 'params.config'));
    } catch (e) {
      if (!(e instanceof RunConfigError)) throw e;
      const payload = runConfigErrorPayload(e, (f) => ctx.workspace.relative(f));
      throw new PortError(payload.code, payload.message, payload.details);
    }
    if (p.runs_dir) config.output.runs_dir = ctx.workspace.resolve(p.runs_dir, 'params.runs_dir');
    ctx.workspace.resolve(config.model.dir, 'params.config: model.dir');
    ctx.workspace.resolve(config.output.runs_dir, 'params.config: output.runs_dir');
    if ('store' in config.dataset) ctx.workspace.resolve(config.dataset.store, 'params.config: dataset.store');
    return (j) => runTrainingJob({ config, parallel: p.parallel }, j, ctx);
  }),
  'train.reduce': call(
    "a data-parallel worker's step: the gradients and statistics summed over all workers (the all-reduce of its `gradients` event), after which it clips, steps and goes on",
    z.strictObject({
      job: z.string().min(1),
      step: z.number().int().min(1),
      /** the summed gradients; absent: the job's own vector as `train.chunk` left it (an in-place all-reduce) */
      grads: z.instanceof(Uint8Array, { message: 'expected bin: f32 little-endian values' }).optional(),
      stats: z.array(z.number()).length(3),
    }),
    (p) => {
      const w = waiting(p.job, p.step);
      let grads = w.grads;
      if (p.grads) {
        if (p.grads.byteLength !== w.length * 4)
          throw new PortError('invalid_params', `params.grads: ${p.grads.byteLength} bytes, the job's gradients are ${w.length} f32 values (${w.length * 4} bytes)`, { path: 'params.grads' });
        grads = new Float32Array(w.length);
        new Uint8Array(grads.buffer).set(p.grads);  // a copy: the frame's bytes need not be 4-byte aligned
      }
      awaitingReduce.delete(p.job);
      w.resolve({ grads, stats: Float64Array.from(p.stats) });
      return { ok: true };
    },
  ),
  'train.chunk': call(
    "a range [from, to) of a data-parallel job's gradients while it waits for its step's sums: read it, add a vector into it (returning the sum) or overwrite it; the in-place all-reduce's steps",
    z.strictObject({
      job: z.string().min(1),
      step: z.number().int().min(1),
      from: z.number().int().min(0),
      to: z.number().int().min(0),
      add: z.instanceof(Uint8Array, { message: 'expected bin: f32 little-endian values' }).optional(),
      set: z.instanceof(Uint8Array, { message: 'expected bin: f32 little-endian values' }).optional(),
    }),
    (p) => {
      const w = waiting(p.job, p.step);
      if (p.from > p.to || p.to > w.length)
        throw new PortError('invalid_params', `params.from/to: [${p.from}, ${p.to}) is not a range of the job's ${w.length} gradient values`, { path: 'params.to' });
      if (p.add && p.set) throw new PortError('invalid_params', 'params: add or set, not both', { path: 'params.set' });
      const range = w.grads.subarray(p.from, p.to);
      const given = p.add ?? p.set;
      const name = p.add ? 'add' : 'set';
      if (given && given.byteLength !== range.length * 4)
        throw new PortError('invalid_params', `params.${name}: ${given.byteLength} bytes for ${range.length} f32 values (${range.length * 4} bytes)`, { path: `params.${name}` });
      if (p.set) {
        range.set(f32Of(p.set));
        return { ok: true };
      }
      if (p.add) {
        const x = f32Of(p.add);
        for (let i = 0; i < range.length; i++) range[i] += x[i];
      }
      const out = range.slice();  // a copy: the vector changes again before the reply may be written
      return { chunk: Buffer.from(out.buffer, 0, out.byteLength) };
    },
  ),
  'reduce.add': call(
    "element-wise sum of two f32 little-endian vectors of one length, in the sidecar (f32 arithmetic in the BEAM is slow; the ring all-reduce itself adds in place with train.chunk; bench:distributed times the port with this call)",
    z.strictObject({
      a: z.instanceof(Uint8Array, { message: 'expected bin: f32 little-endian values' }),
      b: z.instanceof(Uint8Array, { message: 'expected bin: f32 little-endian values' }),
    }),
    (p) => {
      if (p.a.byteLength % 4 !== 0) throw new PortError('invalid_params', `params.a: ${p.a.byteLength} bytes is not a whole number of f32 values`, { path: 'params.a' });
      if (p.a.byteLength !== p.b.byteLength)
        throw new PortError('invalid_params', `params.b: ${p.b.byteLength} bytes, params.a has ${p.a.byteLength}: the vectors must have one length`, { path: 'params.b' });
      return { sum: addF32(p.a, p.b) };
    },
  ),
  'train.resume': job(
    'continues a training run from its latest checkpoint (a run the sidecar stopped when its input closed, or cancelled); the same events and result as train.start',
    z.strictObject({ ...JobStart, run: z.string().min(1), parallel: TrainStart.shape.parallel }),
    (p, ctx) => {
      const runDir = ctx.workspace.resolve(p.run, 'params.run');
      const file = join(runDir, 'config.json');
      let config: RunConfig;
      try {
        config = parseRunConfig(JSON.parse(readFileSync(file, 'utf8')), { file, baseDir: runDir });
      } catch (e) {
        if (e instanceof RunConfigError) {
          const payload = runConfigErrorPayload(e, (f) => ctx.workspace.relative(f), 'params.run');
          throw new PortError(payload.code, payload.message, payload.details);
        }
        throw new PortError('not_found', `params.run: ${p.run} is not a training run folder (no readable config.json)`, { path: 'params.run', value: p.run });
      }
      // the run's own paths stay confined too
      ctx.workspace.resolve(config.model.dir, 'params.run: config.json model.dir');
      if ('store' in config.dataset) ctx.workspace.resolve(config.dataset.store, 'params.run: config.json dataset.store');
      return (j) => runTrainingJob({ resume: runDir, parallel: p.parallel }, j, ctx);
    },
  ),
  'train.status': call('a training run: status, steps, losses, held-out evaluation, checkpoints', z.strictObject({ run: z.string().min(1) }), async (p, ctx) => {
    const { summarizeRun } = await import('../train/runs.js');
    const r = summarizeRun(ctx.workspace.resolve(p.run, 'params.run'));
    return { ...r, dir: ctx.workspace.relative(r.dir) };
  }),
  'train.cancel': call('stops a running training job at the next step boundary, leaving a checkpoint', z.strictObject({ job: z.string().min(1) }), (p, ctx) => {
    const j = ctx.jobs.get(p.job);
    if (j.method !== 'train.start' && j.method !== 'train.resume') throw new PortError('invalid_params', `job ${p.job} is a ${j.method} job, not a training run`, { path: 'params.job' });
    j.abort.abort();
    return { job: p.job, status: 'cancelling' };
  }),
  'train.list': call('the training runs in a runs directory, the most recently updated first (`dir` relative to the workspace)', z.strictObject({ runs_dir: z.string().min(1).default(join('.starweave', 'runs')) }).default({ runs_dir: join('.starweave', 'runs') }), async (p, ctx) => {
    const { listRuns } = await import('../train/runs.js');
    return listRuns(ctx.workspace.resolve(p.runs_dir, 'params.runs_dir')).map((r) => ({ ...r, dir: ctx.workspace.relative(r.dir) }));
  }),
  'eval.run': job('evaluates a model (and adapter) on held-out records: loss, token accuracy, exact match, ROUGE-L, per category, base vs tuned, the gate (events: start, progress; result: the eval report)', EvalRun, (p, ctx) => {
    const dir = ctx.workspace.resolve(p.model, 'params.model');
    const adapter = p.adapter ? ctx.workspace.resolve(p.adapter, 'params.adapter') : null;
    const records = evalRecords(p.data, ctx);
    const output = p.output ? ctx.workspace.resolve(p.output, 'params.output') : null;
    return (j) => runEvalJob({ dir, adapter, records, spec: p.metrics ?? {}, maxSeqLen: p.max_seq_len, output }, j, ctx);
  }),
  generate: job('generates a reply (messages, rendered with the model\'s chat template) or a continuation (prompt); events: one token event per new token; result: text, token ids, finish reason', Generate, (p, ctx) => {
    const dir = ctx.workspace.resolve(p.model, 'params.model');
    const adapter = p.adapter ? ctx.workspace.resolve(p.adapter, 'params.adapter') : null;
    return (j) => runGenerateJob(p, dir, adapter, j, ctx);
  }),
  // export, the registry, serving, A/B and monitoring (issue 7): src/port/deploy.ts
  ...deployMethods(),
};
