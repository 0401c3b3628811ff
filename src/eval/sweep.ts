// A sweep: a grid of overrides (dotted paths of the run config -> values) over a base config, run one
// after another into one folder; sweep.json records each run's parameters and results (best held-out
// loss, evaluation, gate) and compare.html compares them.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomicSync } from '../model/atomic.js';
import { parseRunConfig } from '../train/config.js';
import type { RunConfig, RunConfigInput } from '../train/config.js';
import { startTraining } from '../train/runner.js';
import type { TrainingEvent } from '../train/runner.js';
import { renderComparison } from './report-html.js';

export type SweepGrid = Record<string, readonly unknown[]>;

export interface SweepRun {
  index: number;
  name: string;
  params: Record<string, unknown>;
  runDir: string | null;
  status: string;
  bestEvalLoss: number | null;
  tokenAccuracy: number | null;
  gatePassed: boolean | null;
  error?: string;
}

export interface SweepResult {
  format: 'starweave-sweep/1';
  dir: string;
  grid: SweepGrid;
  runs: SweepRun[];
  /** index of the best run: gate passed (when evaluated) first, then the lowest best held-out loss */
  best: number | null;
}

function setPath(obj: Record<string, unknown>, path: string, value: unknown): void {
  const keys = path.split('.');
  let o = obj;
  for (const k of keys.slice(0, -1)) {
    if (typeof o[k] !== 'object' || o[k] === null) o[k] = {};
    o = o[k] as Record<string, unknown>;
  }
  o[keys.at(-1)!] = value;
}

/** The cartesian product of the grid, in order (the last key varies fastest). */
export function gridPoints(grid: SweepGrid): Record<string, unknown>[] {
  let out: Record<string, unknown>[] = [{}];
  for (const [k, values] of Object.entries(grid)) {
    if (!values.length) throw new Error(`sweep: ${k} has no values`);
    out = out.flatMap((p) => values.map((v) => ({ ...p, [k]: v })));
  }
  return out;
}

/** Each grid point's config (validated: a bad path or value throws before anything runs). */
export function sweepConfigs(base: RunConfigInput | RunConfig, grid: SweepGrid, opts: { baseDir?: string } = {}): { params: Record<string, unknown>; config: RunConfig }[] {
  return gridPoints(grid).map((params) => {
    const c = structuredClone(base) as unknown as Record<string, unknown>;
    for (const [k, v] of Object.entries(params)) setPath(c, k, v);
    return { params, config: parseRunConfig(c, { baseDir: opts.baseDir }) };
  });
}

/** Runs the grid one run after another into dir (default: output.runs_dir / sweep-<name>-<time>). */
export async function runSweep(
  base: RunConfigInput | RunConfig,
  grid: SweepGrid,
  opts: { dir?: string; baseDir?: string; onEvent?: (run: number, e: TrainingEvent) => void } = {},
): Promise<SweepResult> {
  const points = sweepConfigs(base, grid, opts);
  const first = points[0].config;
  const dir = opts.dir ?? join(first.output.runs_dir, `sweep-${first.name}-${new Date().toISOString().replace(/[:.]/g, '-').slice(0, 19)}`);
  mkdirSync(dir, { recursive: true });
  const result: SweepResult = { format: 'starweave-sweep/1', dir, grid, runs: [], best: null };
  const save = () => {
    const ok = result.runs.filter((r) => r.runDir && r.bestEvalLoss !== null);
    const rank = (r: SweepRun) => [r.gatePassed === false ? 1 : 0, r.bestEvalLoss ?? Infinity];
    ok.sort((a, b) => {
      const [ga, la] = rank(a);
      const [gb, lb] = rank(b);
      return ga - gb || la - lb;
    });
    result.best = ok.length ? ok[0].index : null;
    writeFileAtomicSync(join(dir, 'sweep.json'), JSON.stringify(result, null, 2) + '\n');
    const dirs = result.runs.map((r) => r.runDir).filter((d): d is string => !!d);
    if (dirs.length) writeFileAtomicSync(join(dir, 'compare.html'), renderComparison(dirs));
  };
  for (const [index, { params, config }] of points.entries()) {
    const name = `run-${String(index).padStart(3, '0')}`;
    const row: SweepRun = { index, name, params, runDir: null, status: 'running', bestEvalLoss: null, tokenAccuracy: null, gatePassed: null };
    result.runs.push(row);
    try {
      const job = startTraining(config, { runDir: join(dir, name) });
      if (opts.onEvent) job.on('event', (e: TrainingEvent) => opts.onEvent!(index, e));
      const r = await job.done;
      row.runDir = r.runDir;
      row.status = r.status;
      row.bestEvalLoss = r.bestEvalLoss;
      row.tokenAccuracy = r.evaluation?.tuned.tokenAccuracy ?? null;
      row.gatePassed = r.evaluation ? r.evaluation.gate.passed : null;
    } catch (e) {
      row.runDir = join(dir, name);
      row.status = 'failed';
      row.error = e instanceof Error ? e.message : String(e);
    }
    save();
  }
  return result;
}

/** `--set training.lr=1e-3,5e-3` -> ['training.lr', [0.001, 0.005]] (JSON values where they parse, else strings). */
export function parseSetArg(arg: string): [string, unknown[]] {
  const i = arg.indexOf('=');
  if (i <= 0) throw new Error(`--set ${arg}: expected PATH=V1,V2,...`);
  const values = arg
    .slice(i + 1)
    .split(',')
    .map((v) => {
      try {
        return JSON.parse(v) as unknown;
      } catch {
        return v;
      }
    });
  return [arg.slice(0, i), values];
}
