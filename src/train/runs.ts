// Reading run directories back: list the runs under a folder, show one (config, run.json, metrics).
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { listCheckpoints } from './checkpoint.js';

export interface RunSummary {
  dir: string;
  name: string;
  status: string;
  steps: number | null;
  totalSteps: number | null;
  lastLoss: number | null;
  bestEvalLoss: number | null;
  lastEvalLoss: number | null;
  checkpoints: number;
  updatedAt: string | null;
  datasetVersion: string | null;
}

export interface MetricsRow {
  type: 'train' | 'eval';
  step: number;
  [k: string]: unknown;
}

export function readMetrics(runDir: string): MetricsRow[] {
  const f = join(runDir, 'metrics.jsonl');
  if (!existsSync(f)) return [];
  const out: MetricsRow[] = [];
  for (const l of readFileSync(f, 'utf8').split('\n')) {
    if (!l.trim()) continue;
    try {
      out.push(JSON.parse(l) as MetricsRow);
    } catch {
      // a line cut by a kill
    }
  }
  return out;
}

export function summarizeRun(dir: string): RunSummary {
  const info = existsSync(join(dir, 'run.json')) ? (JSON.parse(readFileSync(join(dir, 'run.json'), 'utf8')) as Record<string, unknown>) : {};
  const metrics = readMetrics(dir);
  const trainRows = metrics.filter((m) => m.type === 'train');
  const evalRows = metrics.filter((m) => m.type === 'eval');
  const last = trainRows.at(-1);
  const dataset = info.dataset as { versionId?: string } | undefined;
  return {
    dir,
    name: String(info.name ?? dir.split('/').pop()),
    status: String(info.status ?? (existsSync(join(dir, 'config.json')) ? 'unknown' : 'not a run')),
    steps: last ? last.step : null,
    totalSteps: typeof info.totalSteps === 'number' ? info.totalSteps : ((info.preflight as { totalSteps?: number } | undefined)?.totalSteps ?? null),
    lastLoss: last && typeof last.loss === 'number' ? last.loss : null,
    bestEvalLoss: evalRows.length ? Math.min(...evalRows.map((r) => Number(r.eval_loss))) : null,
    lastEvalLoss: evalRows.length ? Number(evalRows.at(-1)!.eval_loss) : null,
    checkpoints: listCheckpoints(join(dir, 'checkpoints')).length,
    updatedAt: typeof info.updatedAt === 'string' ? info.updatedAt : null,
    datasetVersion: dataset?.versionId ?? null,
  };
}

/** The runs (directories with a config.json) under runsDir, newest first. */
export function listRuns(runsDir: string): RunSummary[] {
  if (!existsSync(runsDir)) return [];
  return readdirSync(runsDir)
    .map((d) => join(runsDir, d))
    .filter((d) => statSync(d).isDirectory() && existsSync(join(d, 'config.json')))
    .map(summarizeRun)
    .sort((a, b) => ((a.updatedAt ?? '') < (b.updatedAt ?? '') ? 1 : -1));
}
