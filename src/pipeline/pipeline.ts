// The whole loop of the seed's diagram: preprocessing (the dataset build, with its curation file) ->
// training -> evaluation -> gate, and on Fail back to preprocessing with the failing categories acted on,
// up to max rounds. Each round is a training run in <dir>/round-N (the runner builds the dataset when the
// config names a pipeline config, so every round re-runs preprocessing and picks up curation decisions
// made since); a failed gate leaves remediation.json in the run (src/eval/remediation.ts), whose training
// mix the next round trains with. pipeline.json records each round's lineage: dataset version, run
// directory, training mix, gate result, failing categories. A pipeline cancelled (signal, Ctrl-C) or killed
// resumes: the interrupted round from its latest checkpoint (exactly), then the rounds after it.
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { writeFileAtomicSync } from '../model/atomic.js';
import { parseRunConfig } from '../train/config.js';
import type { RunConfig, RunConfigInput } from '../train/config.js';
import { resumeTraining, startTraining } from '../train/runner.js';
import type { RunResult, TrainingEvent } from '../train/runner.js';
import { readRemediation } from '../eval/remediation.js';
import type { RemediationPlan } from '../eval/remediation.js';
import { renderComparison } from '../eval/report-html.js';

export const PIPELINE_FILE = 'pipeline.json';
/** the pipeline's resolved base config, for a resume (not config.json: the folder is not a run) */
export const CONFIG_FILE = 'pipeline-config.json';

export type PipelineStatus = 'running' | 'passed' | 'failed' | 'stalled' | 'cancelled' | 'error';

export interface PipelineRound {
  round: number;
  runDir: string;
  /** the dataset the round trained on (kind, store, versionId, name), from its run.json */
  dataset: { kind: string; store?: string; versionId?: string; name?: string } | null;
  /** training.category_weights of the round */
  categoryWeights: Record<string, number>;
  status: RunResult['status'] | 'failed';
  steps: number | null;
  bestEvalLoss: number | null;
  gate: { passed: boolean; reasons: string[] } | null;
  failingCategories: string[];
  /** the round's remediation.json (a failed gate), else null */
  remediation: string | null;
  error?: string;
  seconds: number;
}

export interface PipelineReport {
  format: 'starweave-pipeline/1';
  name: string;
  dir: string;
  maxRounds: number;
  status: PipelineStatus;
  /** why it ended (for failed / stalled / cancelled / error) */
  reason: string | null;
  rounds: PipelineRound[];
  createdAt: string;
  updatedAt: string;
}

export type PipelineEvent =
  | { type: 'round'; round: number; runDir: string; categoryWeights: Record<string, number>; resumed: boolean }
  | { type: 'run'; round: number; event: TrainingEvent }
  | { type: 'gate'; round: number; passed: boolean; reasons: string[]; failingCategories: string[] }
  | { type: 'remediation'; round: number; plan: RemediationPlan }
  | { type: 'done'; report: PipelineReport };

export interface PipelineOptions {
  /** the pipeline's folder (default: output.runs_dir/pipeline-<name>-<time>) */
  dir?: string;
  /** rounds at most (default 3) */
  maxRounds?: number;
  /** folder that relative paths of a config object resolve against (default: cwd) */
  baseDir?: string;
  onEvent?: (e: PipelineEvent) => void;
  /** aborting cancels the current round at its next step boundary (a checkpoint is written): status 'cancelled' */
  signal?: AbortSignal;
  /**
   * called after a failed round with its plan, before the next round's preprocessing: a person (or a
   * tool) may record curation decisions for the review queue here. Return true when it changed the data,
   * so that a round whose mix cannot change still runs.
   */
  afterFailedRound?: (plan: RemediationPlan, round: number) => Promise<boolean | void> | boolean | void;
}

export class PipelineError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'PipelineError';
  }
}

function timestamp(): string {
  return new Date().toISOString().replace(/[:.]/g, '-').replace('T', '_').slice(0, 19);
}

function readRunJson(runDir: string): Record<string, any> | null {
  const f = join(runDir, 'run.json');
  return existsSync(f) ? (JSON.parse(readFileSync(f, 'utf8')) as Record<string, any>) : null;
}

/** Validated base config of a pipeline: it needs a gate. */
function checkBase(base: RunConfig): void {
  if (!base.eval.metrics) throw new PipelineError('the pipeline needs eval.metrics with gate thresholds (docs/EVALUATION.md): without a gate there is nothing to pass or fail');
  if (!Object.keys(base.eval.metrics.gate).length) throw new PipelineError('eval.metrics.gate has no thresholds: every round would pass; give at least one (e.g. min_loss_improvement)');
}

function checkMaxRounds(maxRounds: number): void {
  if (!Number.isInteger(maxRounds) || maxRounds < 1) throw new PipelineError(`max rounds must be a positive integer, got ${maxRounds}`);
}

/** Runs rounds of build -> train -> evaluate -> gate until the gate passes or maxRounds; see the file's head. */
export async function runPipeline(input: RunConfigInput | RunConfig, opts: PipelineOptions = {}): Promise<PipelineReport> {
  const base = parseRunConfig(input, { baseDir: opts.baseDir });
  checkBase(base);
  const maxRounds = opts.maxRounds ?? 3;
  checkMaxRounds(maxRounds);
  const dir = resolve(opts.dir ?? join(base.output.runs_dir, `pipeline-${base.name}-${timestamp()}`));
  if (existsSync(join(dir, PIPELINE_FILE))) throw new PipelineError(`${dir} already holds a pipeline (${PIPELINE_FILE}); resume it or choose another folder`);
  mkdirSync(dir, { recursive: true });
  // the base config (resolved), for a resume
  writeFileAtomicSync(join(dir, CONFIG_FILE), JSON.stringify(base, null, 2) + '\n');
  const now = new Date().toISOString();
  const report: PipelineReport = { format: 'starweave-pipeline/1', name: base.name, dir, maxRounds, status: 'running', reason: null, rounds: [], createdAt: now, updatedAt: now };
  return runRounds(base, report, 1, { ...base.training.category_weights }, opts);
}

/**
 * Continues the pipeline in dir: after a cancel (Ctrl-C), a kill, a failure or the last round (give a larger
 * maxRounds). A round whose run directory exists but is not recorded resumes from its latest checkpoint
 * with exactly the losses it would have had; otherwise the next round starts with the last plan's mix.
 */
export async function resumePipeline(dir: string, opts: Omit<PipelineOptions, 'dir' | 'baseDir'> = {}): Promise<PipelineReport> {
  dir = resolve(dir);
  const report = readPipelineReport(dir);
  const cfgFile = join(dir, CONFIG_FILE);
  if (!existsSync(cfgFile)) throw new PipelineError(`${dir}: no ${CONFIG_FILE} (a pipeline folder from before resume existed cannot be resumed)`);
  const base = parseRunConfig(JSON.parse(readFileSync(cfgFile, 'utf8')), { file: cfgFile, baseDir: dir });
  checkBase(base);
  if (report.status === 'passed') {
    opts.onEvent?.({ type: 'done', report });
    return report;
  }
  const maxRounds = opts.maxRounds ?? report.maxRounds;
  checkMaxRounds(maxRounds);
  report.maxRounds = maxRounds;
  const last = report.rounds.at(-1);
  const plan = last?.remediation ? readRemediation(last.runDir) : null;
  const weights = plan ? plan.categoryWeights : last ? last.categoryWeights : { ...base.training.category_weights };
  const next = report.rounds.length + 1;
  if (next > maxRounds) throw new PipelineError(`${dir} already ran ${report.rounds.length} round(s) (status ${report.status}); give a larger max rounds to go on`);
  report.status = 'running';
  report.reason = null;
  return runRounds(base, report, next, weights, opts);
}

async function runRounds(base: RunConfig, report: PipelineReport, firstRound: number, startWeights: Record<string, number>, opts: Omit<PipelineOptions, 'dir' | 'baseDir'>): Promise<PipelineReport> {
  const dir = report.dir;
  const maxRounds = report.maxRounds;
  const save = () => {
    report.updatedAt = new Date().toISOString();
    writeFileAtomicSync(join(dir, PIPELINE_FILE), JSON.stringify(report, null, 2) + '\n');
    const runs = report.rounds.filter((r) => existsSync(join(r.runDir, 'config.json'))).map((r) => r.runDir);
    if (runs.length) {
      try {
        writeFileAtomicSync(join(dir, 'compare.html'), renderComparison(runs));
      } catch {
        // the comparison page is a convenience; pipeline.json is the record
      }
    }
  };
  const finish = (status: PipelineStatus, reason: string | null) => {
    report.status = status;
    report.reason = reason;
    save();
    opts.onEvent?.({ type: 'done', report });
    return report;
  };
  save();

  let weights = startWeights;
  for (let round = firstRound; round <= maxRounds; round++) {
    if (opts.signal?.aborted) return finish('cancelled', `cancelled before round ${round}; resume with starweave-ft pipeline --resume ${dir}`);
    const runDir = join(dir, `round-${round}`);
    // a round interrupted earlier (cancel, kill) resumes from its checkpoint with its own config
    const interrupted = existsSync(join(runDir, 'config.json'));
    if (interrupted) weights = (JSON.parse(readFileSync(join(runDir, 'config.json'), 'utf8')) as RunConfig).training.category_weights ?? {};
    const config: RunConfig = {
      ...base,
      training: { ...base.training, category_weights: { ...weights } },
      output: { ...base.output, runs_dir: dir, name: `round-${round}` },
    };
    opts.onEvent?.({ type: 'round', round, runDir, categoryWeights: { ...weights }, resumed: interrupted });
    const t0 = performance.now();
    const job = interrupted ? resumeTraining(runDir) : startTraining(config, { runDir });
    const onAbort = () => job.cancel();
    opts.signal?.addEventListener('abort', onAbort);
    job.on('event', (event: TrainingEvent) => opts.onEvent?.({ type: 'run', round, event }));
    let result: RunResult;
    try {
      result = await job.done;
    } catch (e) {
      const message = e instanceof Error ? e.message : String(e);
      report.rounds.push({
        round, runDir, dataset: readRunJson(runDir)?.dataset ?? null, categoryWeights: { ...weights }, status: 'failed', steps: null,
        bestEvalLoss: null, gate: null, failingCategories: [], remediation: null, error: message, seconds: (performance.now() - t0) / 1000,
      });
      return finish('error', `round ${round}: the run failed: ${message}`);
    } finally {
      opts.signal?.removeEventListener('abort', onAbort);
    }
    if (result.status === 'cancelled')
      return finish('cancelled', `round ${round} cancelled at step ${result.steps} (checkpoint ${result.checkpoint}); resume with starweave-ft pipeline --resume ${dir}`);
    const ev = result.evaluation ?? null;
    const plan = ev && !ev.gate.passed ? readRemediation(runDir) : null;
    const entry: PipelineRound = {
      round,
      runDir,
      dataset: readRunJson(runDir)?.dataset ?? null,
      categoryWeights: { ...weights },
      status: result.status,
      steps: result.steps,
      bestEvalLoss: result.bestEvalLoss,
      gate: ev ? { passed: ev.gate.passed, reasons: ev.gate.reasons } : null,
      failingCategories: plan ? plan.failingCategories.map((f) => f.category) : [],
      remediation: plan ? join(runDir, 'remediation.json') : null,
      seconds: (performance.now() - t0) / 1000,
    };
    report.rounds.push(entry);
    save();
    if (!ev) return finish('error', `round ${round}: the evaluation did not run or failed (see ${join(runDir, 'eval.json')})`);
    opts.onEvent?.({ type: 'gate', round, passed: ev.gate.passed, reasons: ev.gate.reasons, failingCategories: entry.failingCategories });
    if (ev.gate.passed) return finish('passed', null);
    if (!plan) return finish('error', `round ${round}: the gate failed but the run wrote no remediation.json`);
    opts.onEvent?.({ type: 'remediation', round, plan });
    if (round === maxRounds) return finish('failed', `the gate still fails after ${maxRounds} round(s): ${ev.gate.reasons.join('; ')}`);
    const dataChanged = (await opts.afterFailedRound?.(plan, round)) === true;
    if (!plan.changesMix && !dataChanged)
      return finish(
        'stalled',
        `round ${round}: nothing left to change: ${plan.failingCategories.length ? `the failing categories (${plan.failingCategories.map((f) => f.category).join(', ')}) are at eval.metrics.remediation.max_category_weight or have no training records` : 'no failing check could be traced to a category'}` +
          `${plan.unattributed.length ? ` (${plan.unattributed.map((u) => `${u.check}: ${u.hint}`).join('; ')})` : ''}; review ${join(runDir, 'review-queue.jsonl')} and curate the data`,
      );
    weights = plan.categoryWeights;
  }
  return finish('failed', 'no round ran');
}

export function readPipelineReport(dir: string): PipelineReport {
  const f = join(dir, PIPELINE_FILE);
  if (!existsSync(f)) throw new PipelineError(`${dir}: not a pipeline folder (no ${PIPELINE_FILE})`);
  return JSON.parse(readFileSync(f, 'utf8')) as PipelineReport;
}
