// The training run: startTraining(config) -> TrainingJob. Loads the base model and the dataset, renders
// and packs the examples, adds the LoRA adapter and runs the loop (gradient accumulation, clipping, the
// schedule, non-finite detection, held-out evaluation, early stopping), writing metrics.jsonl, atomic
// checkpoints and the final PEFT adapter into the run directory. A run resumes from its latest
// checkpoint with exactly the losses the uninterrupted run would have had: the loader's plan and the
// dropout seeds are pure functions of (seed, epoch, step), and the checkpoint holds the adapter, AdamW's
// moments, the step counters and the loader position.
import { createHash } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { appendFileSync, existsSync, mkdirSync, readFileSync } from 'node:fs';
import { cpus, totalmem, freemem, platform, arch, hostname } from 'node:os';
import { join } from 'node:path';
import { loadModelFiles } from '../model/files.js';
import type { ModelFiles } from '../model/files.js';
import { LlamaModel } from '../model/native-model.js';
import { Tensor } from '../../bindings/tensor.js';
import { generateTinyModel } from '../model/tiny.js';
import { writeFileAtomicSync } from '../model/atomic.js';
import { writePeftAdapter } from '../deploy/peft.js';
import { buildDataset, loadConfigFile, projectInfo } from '../data/build.js';
import { readManifest, resolveVersion, versionDir } from '../data/store.js';
import { parseRunConfig } from './config.js';
import type { InlineRecord, RunConfig, RunConfigInput } from './config.js';
import { DataLoader, makeBatch, mixSeed, tokenizeExamples } from './data.js';
import type { TokenizeStats, TokenizedExample } from './data.js';
import { learningRate } from './schedule.js';
import { listCheckpoints, readCheckpoint, writeCheckpoint } from './checkpoint.js';
import type { TrainerState } from './checkpoint.js';
import { scoreTokens } from '../eval/evaluate.js';
import { runEvaluation, writeEvalReport } from '../eval/run-eval.js';
import type { EvalReport } from '../eval/run-eval.js';
import { writeRunReport } from '../eval/report-html.js';
import { planRemediation, REMEDIATION_FILE, writeRemediation } from '../eval/remediation.js';

export interface DatasetInfo {
  kind: 'store' | 'inline';
  store?: string;
  versionId?: string;
  name?: string;
  train: number;
  heldout: number;
}

export interface Preflight {
  trainableParameters: number;
  trainableBytes: number;
  baseWeightBytes: number;
  /** base weights (mapped or owned) + trainable tensors, gradients and AdamW moments + measured activations */
  peakMemoryEstimateBytes: number;
  availableMemoryBytes: number;
  train: TokenizeStats;
  heldout: TokenizeStats;
  /** tokens per epoch (all rows) and counted (learned) tokens per epoch */
  tokensPerEpoch: number;
  countedTokensPerEpoch: number;
  /** examples per category in the first epoch's plan (category weights applied; '(none)': no category) */
  categoryMix: Record<string, number>;
  microBatchesPerEpoch: number;
  totalSteps: number;
  /** one measured warm-up micro-batch (forward + backward) */
  warmupMicroBatchSeconds: number;
  estimatedSeconds: number;
  /** training.attention_precision resolved ('auto': the base weights' precision) */
  attentionPrecision: 'f32' | 'bf16';
}

export interface StepEvent {
  type: 'step';
  step: number;
  totalSteps: number;
  epoch: number;
  loss: number;
  lr: number;
  gradNorm: number;
  tokens: number;
  tokensPerSec: number;
  skipped: boolean;
}
export interface EvalEvent {
  type: 'eval';
  step: number;
  loss: number;
  perplexity: number;
  tokens: number;
}
export interface CheckpointEvent {
  type: 'checkpoint';
  step: number;
  path: string;
}
export interface StartEvent {
  type: 'start';
  runDir: string;
  resumedFromStep: number | null;
  preflight: Preflight;
}
export type RunStatus = 'completed' | 'cancelled' | 'early_stopped';
export interface RunResult {
  status: RunStatus;
  runDir: string;
  steps: number;
  totalSteps: number;
  /** train losses by step of this process's steps (skipped steps: NaN) */
  losses: number[];
  lastLoss: number | null;
  evals: { step: number; loss: number; perplexity: number }[];
  bestEvalLoss: number | null;
  adapterDir: string | null;
  checkpoint: string | null;
  nonfiniteSteps: number[];
  /** the end-of-run evaluation (eval.json) when eval.metrics is set; null when it was not run or failed */
  evaluation?: EvalReport | null;
}
export interface DoneEvent {
  type: 'done';
  result: RunResult;
}
export interface FailedEvent {
  type: 'failed';
  error: Error;
}
export type TrainingEvent = StartEvent | StepEvent | EvalEvent | CheckpointEvent | DoneEvent | FailedEvent;

export interface TrainingHooks {
  /** called after the backward of each step, before clipping (tests poison gradients here) */
  afterBackward?: (model: LlamaModel, step: number) => void;
}

export interface StartOptions {
  /** the run directory (default: output.runs_dir / (output.name ?? name-timestamp)) */
  runDir?: string;
  /** continue the run in runDir from its latest checkpoint (the config comes from runDir/config.json when not given) */
  resume?: boolean;
  /** folder that relative paths of a config object resolve against (default: cwd) */
  baseDir?: string;
  /** refuse the run when the memory estimate exceeds this (default: total system memory) */
  memoryLimitBytes?: number;
  hooks?: TrainingHooks;
  /** synchronous data parallelism: this process is one of several workers training the same run */
  parallel?: DataParallel;
}

/**
 * One worker of a synchronous data-parallel run (docs/DISTRIBUTED.md). Every worker runs the same config
 * and seed, so each reads the same global batch; micro-batch k of a step is this worker's when
 * k % workers === rank (its dropout seed and the global loss denominator are the single-process run's).
 * After its share, the worker hands its summed LoRA gradients and [lossSum, tokens, rowTokens] to
 * `exchange`, which returns the sums over all workers (an all-reduce: over Erlang distribution for
 * STARWEAVE's nodes, in memory in the tests); every worker then clips and steps on the same sums, so
 * all hold the same parameters. Steps need grad_accum >= workers for every worker to have work.
 */
export interface DataParallel {
  rank: number;
  workers: number;
  /**
   * every this many steps (at steps 1, 1 + K, 1 + 2K, ...) `exchange` also gets the SHA-256 of the LoRA
   * parameters the step starts from, so that a coordinator can check that every worker holds the same
   * ones (0: never)
   */
  hashEvery?: number;
  /**
   * Returns the sums over all workers. A rejection while the job is cancelled ends the run at the
   * previous step's boundary (the step is dropped, the data position rewound, a checkpoint written);
   * any other rejection fails the run.
   */
  exchange(step: number, grads: Float32Array, stats: Float64Array, info: { paramHash?: string }): Promise<{ grads: Float32Array; stats: Float64Array }>;
}

/** SHA-256 (hex) of the LoRA parameters: names and f32 bytes in the model's order. */
export function parameterHash(model: LlamaModel): string {
  const h = createHash('sha256');
  const params = model.adapterState('param');
  for (const k of Object.keys(params)) {
    const v = params[k].data;
    h.update(k);
    h.update('\0');
    h.update(new Uint8Array(v.buffer, v.byteOffset, v.byteLength));
  }
  return h.digest('hex');
}

export class TrainingError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'TrainingError';
  }
}

/** A running training job: events (EventEmitter or `for await (const e of job)`), `done`, `cancel()`. */
export class TrainingJob extends EventEmitter {
  runDir: string | null = null;
  readonly done: Promise<RunResult>;
  private cancelled = false;
  private readonly history: TrainingEvent[] = [];
  private readonly waiters: (() => void)[] = [];
  private finished = false;

  constructor(run: (job: TrainingJob) => Promise<RunResult>) {
    super();
    this.done = Promise.resolve()
      .then(() => run(this))
      .then(
        (result) => {
          this.push({ type: 'done', result });
          return result;
        },
        (e: unknown) => {
          const error = e instanceof Error ? e : new Error(String(e));
          this.push({ type: 'failed', error });
          throw error;
        },
      );
    // a caller listening to events only must not see an unhandled rejection
    this.done.catch(() => undefined);
  }

  /** Stops at the next step boundary, leaving a checkpoint; `done` resolves with status 'cancelled'. */
  cancel(): void {
    this.cancelled = true;
  }
  get isCancelled(): boolean {
    return this.cancelled;
  }

  /** @internal */
  push(e: TrainingEvent): void {
    this.history.push(e);
    if (e.type === 'done' || e.type === 'failed') this.finished = true;
    this.emit(e.type, e);
    this.emit('event', e);
    for (const w of this.waiters.splice(0)) w();
  }

  /** Every event from the start of the job, in order, ending with done or failed. */
  async *[Symbol.asyncIterator](): AsyncGenerator<TrainingEvent> {
    let i = 0;
    for (;;) {
      while (i < this.history.length) yield this.history[i++];
      if (this.finished) return;
      await new Promise<void>((r) => this.waiters.push(r));
    }
  }
}

/** Starts a training run (see StartOptions); returns at once. */
export function startTraining(config: RunConfigInput | RunConfig | null, opts: StartOptions = {}): TrainingJob {
  return new TrainingJob((job) => runTraining(job, config, opts));
}

/** Resumes the run in runDir from its latest checkpoint (its own config.json). */
export function resumeTraining(runDir: string, opts: Omit<StartOptions, 'runDir' | 'resume'> = {}): TrainingJob {
  return startTraining(null, { ...opts, runDir, resume: true });
}

function machineInfo() {
  const c = cpus();
  return {
    hostname: hostname(),
    platform: platform(),
    arch: arch(),
    cpuModel: c[0]?.model ?? 'unknown',
    cpus: c.length,
    totalMemoryBytes: totalmem(),
    node: process.version,
  };
}

function readJsonl<T>(file: string): T[] {
  const out: T[] = [];
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    if (!line.trim()) continue;
    out.push(JSON.parse(line) as T);
  }
  return out;
}

async function ensureModel(c: RunConfig): Promise<void> {
  if (existsSync(join(c.model.dir, 'config.json'))) return;
  if (!c.model.generate) throw new TrainingError(`model.dir: ${c.model.dir} holds no config.json (give a Hugging Face model directory, or model.generate to make a tiny one)`);
  await generateTinyModel(c.model.dir, c.model.generate.preset, c.model.generate.seed);
}

async function loadDataset(c: RunConfig, renderer: ModelFiles['tokenizer']): Promise<{ train: InlineRecord[]; heldout: InlineRecord[]; info: DatasetInfo }> {
  const d = c.dataset;
  if ('train' in d) return { train: d.train, heldout: d.heldout, info: { kind: 'inline', train: d.train.length, heldout: d.heldout.length } };
  let versionId: string;
  if ('build' in d) {
    const { config, baseDir } = loadConfigFile(d.build);
    const r = await buildDataset({ config, baseDir, store: d.store, renderer: renderer ?? undefined });
    if (!r.versionId) throw new TrainingError(`dataset.build: building ${d.build} gave no version`);
    versionId = r.versionId;
  } else {
    versionId = resolveVersion(d.store, d.version);
  }
  const m = readManifest(d.store, versionId);
  const vdir = versionDir(d.store, versionId);
  const train = readJsonl<InlineRecord>(join(vdir, m.splits.train.file));
  const heldout = readJsonl<InlineRecord>(join(vdir, m.splits.heldout.file));
  return { train, heldout, info: { kind: 'store', store: d.store, versionId, name: m.name, train: train.length, heldout: heldout.length } };
}

function timestamp(): string {
  return new Date().toISOString().replace(/[:.]/g, '-').replace('T', '_').slice(0, 19);
}

/** Steps for the config: max_steps, else ceil(epochs × micro-batches / grad_accum) over the actual epoch plans. */
function countSteps(c: RunConfig, loader: DataLoader): number {
  const t = c.training;
  if (t.max_steps !== undefined) return t.max_steps;
  const epochs = t.epochs!;
  let micro = 0;
  const full = Math.floor(epochs);
  for (let e = 0; e < full; e++) micro += loader.microBatchesPerEpoch(e);
  if (epochs > full) micro += Math.ceil((epochs - full) * loader.microBatchesPerEpoch(full));
  return Math.max(1, Math.ceil(micro / t.grad_accum));
}

/**
 * Sums the workers' gradients and step statistics (DataParallel.exchange) and writes the summed
 * gradients back into the model; returns the summed statistics. The gradients travel as one f32 vector
 * over the trainable tensors in the model's order.
 */
async function allReduceGradients(model: LlamaModel, par: DataParallel, step: number, stats: number[]): Promise<number[]> {
  const grads = model.native.parameters('grad');
  const names = Object.keys(grads);
  const total = names.reduce((n, k) => n + grads[k].numel, 0);
  const flat = new Float32Array(total);
  let o = 0;
  for (const k of names) {
    const v = grads[k].data();
    flat.set(v, o);
    o += v.length;
  }
  const he = par.hashEvery ?? 0;
  const info = he > 0 && (step - 1) % he === 0 ? { paramHash: parameterHash(model) } : {};
  const r = await par.exchange(step, flat, Float64Array.from(stats), info);
  if (r.grads.length !== total) throw new TrainingError(`parallel: the exchange returned ${r.grads.length} gradient values for ${total}`);
  o = 0;
  for (const k of names) {
    const t = grads[k];
    const part = Tensor.fromArray(r.grads.subarray(o, o + t.numel), t.shape, 'f32');
    try {
      model.native.setParameter(k, part, 'grad');
    } finally {
      part.release();
    }
    o += t.numel;
  }
  return [...r.stats];
}

async function evaluate(model: LlamaModel, loader: DataLoader | null, attentionPrecision: 'f32' | 'bf16'): Promise<{ loss: number; perplexity: number; tokens: number } | null> {
  if (!loader) return null;
  let sum = 0;
  let tokens = 0;
  for (const b of loader.all()) {
    const r = await model.evalLoss(b, { attentionPrecision });
    sum += r.lossSum;
    tokens += r.tokens;
  }
  const loss = tokens ? sum / tokens : NaN;
  return { loss, perplexity: Math.exp(loss), tokens };
}

interface MetricRow {
  type: 'train' | 'eval';
  step: number;
  [k: string]: unknown;
}

async function runTraining(job: TrainingJob, input: RunConfigInput | RunConfig | null, opts: StartOptions): Promise<RunResult> {
  // ---- the run directory and its config
  let c: RunConfig;
  let runDir: string;
  if (opts.resume) {
    if (!opts.runDir) throw new TrainingError('resume needs the run directory (runDir)');
    runDir = opts.runDir;
    const file = join(runDir, 'config.json');
    if (!existsSync(file)) throw new TrainingError(`${runDir}: not a run directory (no config.json)`);
    c = parseRunConfig(input ?? JSON.parse(readFileSync(file, 'utf8')), { file, baseDir: opts.baseDir ?? runDir });
  } else {
    if (input === null) throw new TrainingError('no run config given');
    c = parseRunConfig(input, { baseDir: opts.baseDir });
    runDir = opts.runDir ?? join(c.output.runs_dir, c.output.name ?? `${c.name}-${timestamp()}`);
    if (!opts.runDir && !c.output.name) {
      // a default name is made unique
      const base = runDir;
      for (let k = 2; existsSync(runDir); k++) runDir = `${base}-${k}`;
    }
    if (existsSync(join(runDir, 'config.json'))) throw new TrainingError(`${runDir} already holds a run; resume it or choose another output.name`);
  }
  job.runDir = runDir;
  mkdirSync(runDir, { recursive: true });
  if (!opts.resume) writeFileAtomicSync(join(runDir, 'config.json'), JSON.stringify(c, null, 2) + '\n');
  const ckptDir = join(runDir, 'checkpoints');
  const metricsFile = join(runDir, 'metrics.jsonl');
  const t = c.training;

  // ---- model and data
  await ensureModel(c);
  const files = loadModelFiles(c.model.dir);
  const tok = files.tokenizer;
  if (!tok) throw new TrainingError(`model.dir: ${c.model.dir} has no tokenizer.json`);
  const data = await loadDataset(c, tok);
  const train = tokenizeExamples(data.train, tok, t.max_seq_len, { lossOn: t.loss_on });
  const held = tokenizeExamples(data.heldout, tok, t.max_seq_len, { lossOn: t.loss_on });
  const padId = tok.padTokenId ?? tok.eosTokenId ?? 0;
  const loader = new DataLoader(train.examples, { microBatch: t.micro_batch, maxSeqLen: t.max_seq_len, packing: t.packing, seed: t.seed, padId, categoryWeights: t.category_weights });
  const evalLoader = held.examples.length
    ? new DataLoader(held.examples, { microBatch: c.eval.micro_batch ?? t.micro_batch, maxSeqLen: t.max_seq_len, packing: t.packing, seed: t.seed, padId, shuffle: false })
    : null;
  const totalSteps = countSteps(c, loader);

  const par = opts.parallel;
  if (par && !(Number.isInteger(par.workers) && par.workers >= 1 && Number.isInteger(par.rank) && par.rank >= 0 && par.rank < par.workers))
    throw new TrainingError(`parallel: rank ${par.rank} of ${par.workers} workers: rank must be an integer in [0, workers)`);
  const model = LlamaModel.fromFiles(files);
  // 'auto': the base's precision (any bf16 matrix weight)
  const attentionPrecision: 'f32' | 'bf16' =
    t.attention_precision !== 'auto' ? t.attention_precision : [...files.weights.values()].some((w) => w.dtype === 'bf16' && w.shape.length === 2) ? 'bf16' : 'f32';
  try {
    model.addLora({
      r: c.lora.r,
      lora_alpha: c.lora.lora_alpha,
      lora_dropout: c.lora.lora_dropout,
      target_modules: c.lora.target_modules,
      use_rslora: c.lora.use_rslora,
      seed: c.lora.init_seed ?? t.seed,
    });

    // ---- the state, fresh or from the latest checkpoint
    let state: TrainerState = {
      format: 'starweave-checkpoint/1',
      step: 0,
      optimizerSteps: 0,
      totalSteps,
      loader: { epoch: 0, index: 0 },
      seed: t.seed,
      rng: { kind: 'stateless-mix', seed: t.seed },
      scheduler: { name: t.schedule, lr: t.lr, warmupSteps: t.warmup_steps, totalSteps, minLrRatio: t.min_lr_ratio, lastLr: 0 },
      nonfinite: { consecutive: 0, total: 0, steps: [] },
      earlyStopping: { best: null, bestStep: null, badEvals: 0 },
      tokensSeen: 0,
      createdAt: new Date().toISOString(),
    };
    let resumedFromStep: number | null = null;
    if (opts.resume) {
      const last = listCheckpoints(ckptDir).at(-1);
      const keepUpTo = last ? readCheckpoint(last.path).state.step : -1;
      // metrics written after that checkpoint are replayed: drop them
      if (existsSync(metricsFile)) {
        const keep = readFileSync(metricsFile, 'utf8')
          .split('\n')
          .filter((l) => {
            if (!l.trim()) return false;
            try {
              return (JSON.parse(l) as MetricRow).step <= keepUpTo;
            } catch {
              return false; // a line cut by the kill
            }
          });
        writeFileAtomicSync(metricsFile, keep.map((l) => l + '\n').join(''));
      }
      if (last) {
        const ck = readCheckpoint(last.path);
        model.loadAdapterState(ck.params, 'param');
        model.loadAdapterState(ck.expAvg, 'exp_avg');
        model.loadAdapterState(ck.expAvgSq, 'exp_avg_sq');
        state = ck.state;
        resumedFromStep = state.step;
      }
    }
    loader.position = { ...state.loader };

    // ---- preflight: figures, and a measured warm-up micro-batch (forward + backward, then discarded)
    const trainable = Object.values(model.adapterState('param')).reduce((s, v) => s + v.data.length, 0);
    const first = makeBatch(train.examples, loader.epochPlan(0)[0], padId, t.packing);
    const w0 = performance.now();
    await model.trainStep(first, { seed: 0, checkpointing: t.activation_checkpointing, attentionPrecision });
    const warm = (performance.now() - w0) / 1000;
    model.zeroGrad();
    const mem = model.memory();
    const peak = mem.baseWeightBytes + mem.ownedWeightBytes + mem.trainableBytes * 4 + mem.activationBytes;
    const plan0 = loader.epochPlan(0);
    const tokensPerEpoch = plan0.reduce((s, rows) => s + rows.reduce((a, r) => a + r.reduce((b, i) => b + train.examples[i].ids.length, 0), 0), 0);
    const countedPerEpoch = plan0.reduce((s, rows) => s + rows.reduce((a, r) => a + r.reduce((b, i) => b + train.examples[i].counted, 0), 0), 0);
    const categoryMix: Record<string, number> = {};
    for (const rows of plan0) for (const r of rows) for (const i of r) categoryMix[train.examples[i].category ?? '(none)'] = (categoryMix[train.examples[i].category ?? '(none)'] ?? 0) + 1;
    const preflight: Preflight = {
      attentionPrecision,
      trainableParameters: trainable,
      trainableBytes: mem.trainableBytes,
      baseWeightBytes: mem.baseWeightBytes,
      peakMemoryEstimateBytes: peak,
      availableMemoryBytes: Math.max(freemem(), 0),
      train: train.stats,
      heldout: held.stats,
      tokensPerEpoch,
      countedTokensPerEpoch: countedPerEpoch,
      categoryMix,
      microBatchesPerEpoch: plan0.length,
      totalSteps,
      warmupMicroBatchSeconds: warm,
      estimatedSeconds: warm * t.grad_accum * Math.max(0, totalSteps - state.step),
    };
    const limit = opts.memoryLimitBytes ?? totalmem();
    if (peak > limit)
      throw new TrainingError(
        `the run needs about ${(peak / 2 ** 20).toFixed(0)} MiB (base ${(mem.baseWeightBytes / 2 ** 20).toFixed(0)} MiB, activations ${(mem.activationBytes / 2 ** 20).toFixed(0)} MiB) but the limit is ${(limit / 2 ** 20).toFixed(0)} MiB: lower training.micro_batch or max_seq_len, or enable activation_checkpointing`,
      );

    // ---- the run's record
    const runInfo = (status: string, extra: Record<string, unknown> = {}) =>
      writeFileAtomicSync(
        join(runDir, 'run.json'),
        JSON.stringify({ name: c.name, status, dataset: data.info, project: projectInfo(), machine: machineInfo(), preflight, updatedAt: new Date().toISOString(), ...extra }, null, 2) + '\n',
      );
    runInfo('running', { resumedFromStep });
    job.push({ type: 'start', runDir, resumedFromStep, preflight });
    const metric = (row: MetricRow) => appendFileSync(metricsFile, JSON.stringify(row) + '\n');

    const evals: RunResult['evals'] = [];
    const losses: number[] = [];
    let lastCheckpoint: string | null = null;
    const checkpoint = async () => {
      state.loader = { ...loader.position };
      state.totalSteps = totalSteps;
      state.createdAt = new Date().toISOString();
      const path = await writeCheckpoint(
        ckptDir,
        state,
        { params: model.adapterState('param'), expAvg: model.adapterState('exp_avg'), expAvgSq: model.adapterState('exp_avg_sq') },
        c.checkpoint.keep_last,
      );
      lastCheckpoint = path;
      job.push({ type: 'checkpoint', step: state.step, path });
    };
    // returns true when early stopping says stop
    const doEval = async (): Promise<boolean> => {
      const r = await evaluate(model, evalLoader, attentionPrecision);
      if (!r) return false;
      evals.push({ step: state.step, loss: r.loss, perplexity: r.perplexity });
      let extra: Record<string, number> = {};
      if (c.eval.metrics?.token_accuracy_every_eval) {
        const sc = await scoreTokens(model, tok, data.heldout, { maxExamples: c.eval.metrics.max_examples, maxSeqLen: t.max_seq_len });
        if (sc.tokens) extra = { eval_token_accuracy: sc.correct / sc.tokens };
      }
      metric({ type: 'eval', step: state.step, eval_loss: r.loss, eval_perplexity: r.perplexity, eval_tokens: r.tokens, ...extra });
      job.push({ type: 'eval', step: state.step, ...r });
      const es = state.earlyStopping;
      if (es.best === null || r.loss < es.best - c.eval.early_stopping_min_delta) {
        es.best = r.loss;
        es.bestStep = state.step;
        es.badEvals = 0;
      } else {
        es.badEvals++;
      }
      return c.eval.early_stopping_patience > 0 && es.badEvals >= c.eval.early_stopping_patience;
    };

    let status: RunStatus = 'completed';
    if (resumedFromStep === null && c.eval.at_start && state.step === 0) await doEval();

    let lastEvalStep = -1;
    while (state.step < totalSteps) {
      if (job.isCancelled) {
        status = 'cancelled';
        break;
      }
      const t0 = performance.now();
      const step = state.step + 1;
      const stepStart = { ...loader.position };
      model.zeroGrad();
      const micro = Array.from({ length: t.grad_accum }, () => loader.next());
      const denom = micro.reduce((s, b) => s + b.counted, 0);
      let lossSum = 0;
      let tokens = 0;
      let rowsTokens = 0;
      for (let k = 0; k < micro.length; k++) {
        if (par && k % par.workers !== par.rank) continue;  // another worker's share
        const r = await model.trainStep(micro[k], { seed: mixSeed(t.seed, step, k), lossDenominator: Math.max(1, denom), checkpointing: t.activation_checkpointing, attentionPrecision });
        lossSum += r.lossSum;
        tokens += r.tokens;
        rowsTokens += micro[k].batch * micro[k].seqLen;
      }
      if (par) {
        try {
          [lossSum, tokens, rowsTokens] = await allReduceGradients(model, par, step, [lossSum, tokens, rowsTokens]);
        } catch (e) {
          if (!job.isCancelled) throw e;
          // cancelled while the other workers' sums were awaited (a worker lost, the coordinator gone): this
          // step never happened; the checkpoint below is the previous step's, from which the run continues
          loader.position = stepStart;
          model.zeroGrad();
          status = 'cancelled';
          break;
        }
      }
      opts.hooks?.afterBackward?.(model, step);
      const loss = tokens ? lossSum / tokens : NaN;
      const gradNorm = t.max_grad_norm > 0 ? model.clipGradNorm(t.max_grad_norm) : model.gradNorm();
      const lr = learningRate({ lr: t.lr, schedule: t.schedule, warmupSteps: t.warmup_steps, totalSteps, minLrRatio: t.min_lr_ratio }, step);
      const skipped = !Number.isFinite(loss) || !Number.isFinite(gradNorm) || tokens === 0;
      if (skipped) {
        model.zeroGrad();
        state.nonfinite.consecutive++;
        state.nonfinite.total++;
        state.nonfinite.steps.push(step);
      } else {
        state.optimizerSteps++;
        await model.optimizerStep({ lr, beta1: t.beta1, beta2: t.beta2, eps: t.eps, weightDecay: t.weight_decay, step: state.optimizerSteps });
        state.nonfinite.consecutive = 0;
      }
      state.step = step;
      state.tokensSeen += rowsTokens;
      state.scheduler.lastLr = lr;
      const secs = (performance.now() - t0) / 1000;
      const ev: StepEvent = {
        type: 'step',
        step,
        totalSteps,
        epoch: micro[micro.length - 1].epoch,
        loss,
        lr,
        gradNorm,
        tokens,
        tokensPerSec: rowsTokens / Math.max(secs, 1e-9),
        skipped,
      };
      losses.push(skipped ? NaN : loss);
      metric({
        type: 'train',
        step,
        epoch: ev.epoch,
        loss: Number.isFinite(loss) ? loss : String(loss),
        lr,
        grad_norm: Number.isFinite(gradNorm) ? gradNorm : String(gradNorm),
        tokens,
        tokens_per_s: ev.tokensPerSec,
        ...(skipped ? { skipped: true } : {}),
      });
      job.push(ev);
      if (state.nonfinite.consecutive >= t.max_nonfinite_steps) {
        runInfo('failed', { resumedFromStep, nonfiniteSteps: state.nonfinite.steps });
        throw new TrainingError(
          `${state.nonfinite.consecutive} consecutive steps had a non-finite loss or gradient norm (steps ${state.nonfinite.steps.slice(-t.max_nonfinite_steps).join(', ')}); lower training.lr or check the data`,
        );
      }
      let stop = false;
      if (c.eval.every_steps > 0 && step % c.eval.every_steps === 0 && step < totalSteps) {
        stop = await doEval();
        lastEvalStep = step;
      }
      if ((c.checkpoint.every_steps > 0 && step % c.checkpoint.every_steps === 0) || stop) await checkpoint();
      if (stop) {
        status = 'early_stopped';
        break;
      }
    }

    if (status !== 'early_stopped' && lastEvalStep !== state.step && status !== 'cancelled') await doEval();
    if (!lastCheckpoint || !(lastCheckpoint as string).endsWith(`step-${String(state.step).padStart(8, '0')}`)) await checkpoint();
    let evaluation: EvalReport | null = null;
    if (c.eval.metrics && status !== 'cancelled') {
      try {
        evaluation = await runEvaluation(model, tok, data.heldout, c.eval.metrics, { maxSeqLen: t.max_seq_len, step: state.step });
        writeEvalReport(runDir, evaluation);
      } catch (e) {
        writeFileAtomicSync(join(runDir, 'eval.json'), JSON.stringify({ format: 'starweave-eval-error/1', error: e instanceof Error ? e.message : String(e) }, null, 2) + '\n');
      }
      // the gate failed: say what the next round should do (the pipeline applies it)
      if (evaluation && !evaluation.gate.passed) {
        try {
          writeRemediation(runDir, planRemediation(evaluation, { runDir, dataset: data.info, categoryWeights: t.category_weights, train: data.train, heldout: data.heldout }));
        } catch (e) {
          writeFileAtomicSync(join(runDir, REMEDIATION_FILE), JSON.stringify({ format: 'starweave-remediation-error/1', error: e instanceof Error ? e.message : String(e) }, null, 2) + '\n');
        }
      }
    }
    let adapterDir: string | null = null;
    if (status !== 'cancelled') {
      adapterDir = join(runDir, 'adapter');
      await writePeftAdapter(adapterDir, model, { baseModel: c.model.dir });
    }
    const result: RunResult = {
      status,
      runDir,
      steps: state.step,
      totalSteps,
      losses,
      lastLoss: losses.length ? losses[losses.length - 1] : null,
      evals,
      bestEvalLoss: state.earlyStopping.best,
      adapterDir,
      checkpoint: lastCheckpoint,
      nonfiniteSteps: state.nonfinite.steps,
      ...(c.eval.metrics ? { evaluation } : {}),
    };
    runInfo(status, {
      resumedFromStep,
      steps: state.step,
      totalSteps,
      bestEvalLoss: result.bestEvalLoss,
      bestEvalStep: state.earlyStopping.bestStep,
      nonfiniteSteps: state.nonfinite.steps,
      ...(evaluation ? { gate: { passed: evaluation.gate.passed, reasons: evaluation.gate.reasons, ...(evaluation.gate.passed ? {} : { remediation: REMEDIATION_FILE }) } } : {}),
    });
    if (c.eval.metrics?.report) {
      try {
        writeRunReport(runDir);
      } catch {
        // the report is a convenience: `starweave-ft runs show RUN_DIR --html OUT` writes it again
      }
    }
    return result;
  } finally {
    model.dispose();
    files.release();
  }
}
