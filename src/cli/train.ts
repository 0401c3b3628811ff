// `starweave-ft train --config FILE [--resume RUN_DIR] [--run-dir DIR]` and `starweave-ft runs list|show`.
import { join, resolve } from 'node:path';
import { existsSync, readFileSync } from 'node:fs';
import { loadRunConfigFile, RunConfigError } from '../train/config.js';
import { startTraining, resumeTraining } from '../train/runner.js';
import { listRuns, readMetrics, summarizeRun } from '../train/runs.js';

const USAGE = `usage:
  starweave-ft train --config FILE [--run-dir DIR] [--json]   start a run
  starweave-ft train --resume RUN_DIR [--json]               resume a run from its latest checkpoint
  starweave-ft runs list [--runs-dir DIR] [--json]
  starweave-ft runs show RUN_DIR [--json]`;

function flag(args: string[], name: string): string | undefined {
  const i = args.indexOf(name);
  if (i < 0) return undefined;
  const v = args[i + 1];
  if (v === undefined || v.startsWith('--')) throw new RunConfigError(`${name} needs a value`);
  return v;
}

const mib = (b: number) => `${(b / 2 ** 20).toFixed(1)} MiB`;
const fmt = (v: unknown, d = 4) => (typeof v === 'number' ? (Number.isFinite(v) ? v.toFixed(d) : String(v)) : v === null || v === undefined ? '—' : String(v));

/** args: the words after `starweave-ft` (`train ...` or `runs ...`). Returns the exit code. */
export async function runTrainCommand(args: string[]): Promise<number> {
  const [cmd, ...rest] = args;
  const json = rest.includes('--json');
  try {
    if (cmd === 'train') return await train(rest, json);
    if (cmd === 'runs') return runs(rest, json);
    console.error(USAGE);
    return 2;
  } catch (e) {
    console.error(e instanceof Error ? e.message : String(e));
    return 1;
  }
}

async function train(args: string[], json: boolean): Promise<number> {
  const resumeDir = flag(args, '--resume');
  const configFile = flag(args, '--config');
  if (!resumeDir && !configFile) {
    console.error(USAGE);
    return 2;
  }
  const job = resumeDir ? resumeTraining(resolve(resumeDir)) : startTraining(loadRunConfigFile(configFile!), { runDir: flag(args, '--run-dir') });
  const onSigint = () => {
    console.error('\ncancelling at the next step boundary (a checkpoint will be written)...');
    job.cancel();
  };
  process.on('SIGINT', onSigint);
  const t0 = Date.now();
  try {
    for await (const e of job) {
      if (json) {
        console.log(JSON.stringify(e.type === 'failed' ? { type: 'failed', message: e.error.message } : e));
        continue;
      }
      switch (e.type) {
        case 'start': {
          const p = e.preflight;
          console.log(`run ${e.runDir}${e.resumedFromStep !== null ? ` (resumed at step ${e.resumedFromStep})` : ''}`);
          console.log(
            `preflight: ${p.trainableParameters.toLocaleString()} trainable parameters, peak memory ~${mib(p.peakMemoryEstimateBytes)}, ` +
              `${p.train.kept} train examples (${p.tokensPerEpoch} tokens/epoch, ${p.countedTokensPerEpoch} learned), ${p.heldout.kept} held-out, ` +
              `${p.totalSteps} steps, ~${p.estimatedSeconds.toFixed(1)} s`,
          );
          if (p.train.droppedNoTargets) console.log(`  ${p.train.droppedNoTargets} train examples had no assistant tokens left after truncation`);
          break;
        }
        case 'step': {
          const el = (Date.now() - t0) / 1000;
          const eta = (el / e.step) * (e.totalSteps - e.step);
          process.stderr.write(
            `step ${e.step}/${e.totalSteps} loss ${fmt(e.loss)} lr ${e.lr.toExponential(2)} |g| ${fmt(e.gradNorm, 3)} ${e.tokensPerSec.toFixed(0)} tok/s ETA ${eta.toFixed(0)}s${e.skipped ? ' (skipped: non-finite)' : ''}\n`,
          );
          break;
        }
        case 'eval':
          console.log(`eval @${e.step}: held-out loss ${fmt(e.loss)} perplexity ${fmt(e.perplexity, 2)}`);
          break;
        case 'checkpoint':
          console.log(`checkpoint ${e.path}`);
          break;
        case 'done':
          console.log(`${e.result.status} after ${e.result.steps} steps; best held-out loss ${fmt(e.result.bestEvalLoss)}`);
          if (e.result.adapterDir) console.log(`adapter: ${e.result.adapterDir}`);
          break;
        case 'failed':
          console.error(`failed: ${e.error.message}`);
          return 1;
      }
    }
    return 0;
  } finally {
    process.off('SIGINT', onSigint);
  }
}

function runs(args: string[], json: boolean): number {
  const [sub, target] = args;
  if (sub === 'list') {
    const dir = resolve(flag(args, '--runs-dir') ?? 'runs');
    const all = listRuns(dir);
    if (json) {
      for (const r of all) console.log(JSON.stringify(r));
      return 0;
    }
    if (!all.length) {
      console.log(`no runs in ${dir}`);
      return 0;
    }
    for (const r of all)
      console.log(`${r.dir.split('/').pop()!.padEnd(36)} ${r.status.padEnd(13)} step ${fmt(r.steps, 0)}/${fmt(r.totalSteps, 0)} loss ${fmt(r.lastLoss)} best eval ${fmt(r.bestEvalLoss)}`);
    return 0;
  }
  if (sub === 'show' && target && !target.startsWith('--')) {
    const dir = resolve(target);
    if (!existsSync(join(dir, 'config.json'))) throw new RunConfigError(`${dir}: not a run directory (no config.json)`);
    const s = summarizeRun(dir);
    const run = existsSync(join(dir, 'run.json')) ? JSON.parse(readFileSync(join(dir, 'run.json'), 'utf8')) : null;
    const config = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'));
    if (json) {
      console.log(JSON.stringify({ summary: s, run, config, metrics: readMetrics(dir) }));
      return 0;
    }
    console.log(`run ${dir}\n  status ${s.status}, step ${fmt(s.steps, 0)}/${fmt(s.totalSteps, 0)}, ${s.checkpoints} checkpoint(s)`);
    console.log(`  dataset ${s.datasetVersion ?? run?.dataset?.kind ?? '—'}, model ${config.model.dir}`);
    console.log(`  last train loss ${fmt(s.lastLoss)}, held-out loss last ${fmt(s.lastEvalLoss)} best ${fmt(s.bestEvalLoss)}`);
    for (const m of readMetrics(dir).filter((r) => r.type === 'eval')) console.log(`  eval @${m.step}: loss ${fmt(m.eval_loss)} ppl ${fmt(m.eval_perplexity, 2)}`);
    return 0;
  }
  console.error(USAGE);
  return 2;
}
