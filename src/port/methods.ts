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
import { readFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { invalidParams, PortError } from './errors.js';
import type { DataJobInput, DataJobMessage } from './data-worker.js';
import type { Job } from './jobs.js';
import type { CheckpointEvent, StartEvent } from '../train/runner.js';
import { loadRunConfigFile, type RunConfig } from '../train/config.js';
import type { Workspace } from './workspace.js';

export const PROTOCOL_VERSION = 1;

/** What a method sees besides its params. */
export interface CallContext {
  workspace: Workspace;
  /** aborted when the client cancels the request or the sidecar stops */
  signal: AbortSignal;
  log: (level: 'debug' | 'info' | 'warning' | 'error', message: string, data?: Record<string, unknown>) => void;
  collectionLog: (dir: string) => Promise<CollectionLog>;
  jobs: import('./jobs.js').JobRegistry;
  grant: (job: string, credits: number) => void;
  cancelRequest: (id: string | number) => boolean;
  settings: { maxFrameBytes: number; maxInFlight: number; maxJobs: number };
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
});

/**
 * A training run inside the sidecar: the native core runs every step off the event loop (async ops), so
 * pings and other requests are served while it trains. Cancel (or the sidecar's input closing) stops it
 * at the next step boundary with a checkpoint, from which `starweave-ft train --resume RUN_DIR` continues.
 */
async function runTrainingJob(config: RunConfig, job: Job, ctx: CallContext): Promise<unknown> {
  const { startTraining } = await import('../train/runner.js');
  const run = startTraining(config);
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
    throw new PortError('training_error', (e as Error).message, { method: 'train.start' });
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

/** Runs a dataset job in a worker thread; progress events coalesce; cancel or stop terminates the worker. */
function runDataWorker(input: DataJobInput, job: Job, ctx: CallContext): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const worker = new Worker(new URL('./data-worker.js', import.meta.url), { workerData: input, stdout: true, stderr: true });
    const forward = (level: 'info' | 'warning') => (chunk: Buffer) => ctx.log(level, chunk.toString('utf8').trimEnd(), { job: job.id });
    worker.stdout.on('data', forward('info'));
    worker.stderr.on('data', forward('warning'));
    let settled = false;
    const stop = () => void worker.terminate();
    job.abort.signal.addEventListener('abort', stop, { once: true });
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
        reject(new PortError(m.error.code, m.error.message, m.error.details));
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
    const config = loadRunConfigFile(ctx.workspace.resolve(p.config, 'params.config'));
    if (p.runs_dir) config.output.runs_dir = ctx.workspace.resolve(p.runs_dir, 'params.runs_dir');
    ctx.workspace.resolve(config.model.dir, 'params.config: model.dir');
    ctx.workspace.resolve(config.output.runs_dir, 'params.config: output.runs_dir');
    if ('store' in config.dataset) ctx.workspace.resolve(config.dataset.store, 'params.config: dataset.store');
    return (j) => runTrainingJob(config, j, ctx);
  }),
  'train.status': call('a training run: status, steps, losses, held-out evaluation, checkpoints', z.strictObject({ run: z.string().min(1) }), async (p, ctx) => {
    const { summarizeRun } = await import('../train/runs.js');
    return summarizeRun(ctx.workspace.resolve(p.run, 'params.run'));
  }),
  'train.cancel': call('stops a running training job at the next step boundary, leaving a checkpoint', z.strictObject({ job: z.string().min(1) }), (p, ctx) => {
    const j = ctx.jobs.get(p.job);
    if (j.method !== 'train.start') throw new PortError('invalid_params', `job ${p.job} is a ${j.method} job, not a training run`, { path: 'params.job' });
    j.abort.abort();
    return { job: p.job, status: 'cancelling' };
  }),
  'train.list': call('the training runs in a runs directory, oldest first', z.strictObject({ runs_dir: z.string().min(1).default(join('.starweave', 'runs')) }).default({ runs_dir: join('.starweave', 'runs') }), async (p, ctx) => {
    const { listRuns } = await import('../train/runs.js');
    return listRuns(ctx.workspace.resolve(p.runs_dir, 'params.runs_dir'));
  }),
  'eval.run': pending('evaluates base vs tuned on held-out data (job)', 5, 'evaluation'),
  generate: pending('generates text (job: one token event per token)', 3, 'generation through the port'),
  export: pending('exports an adapter (PEFT safetensors, GGUF + Modelfile, ONNX)', 7, 'exports'),
  'registry.list': pending('the model registry', 7, 'the registry'),
  'registry.promote': pending('promotes a model version', 7, 'the registry'),
  'registry.rollback': pending('rolls back to the previous version', 7, 'the registry'),
};
