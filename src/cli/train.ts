// `starweave-ft train --config FILE [--resume RUN_DIR] [--run-dir DIR]` and `starweave-ft runs list|show`.
import { join, resolve } from 'node:path';
import { existsSync, readFileSync } from 'node:fs';
import { loadRunConfigFile, RunConfigError } from '../train/config.js';
import { startTraining, resumeTraining } from '../train/runner.js';
import { listRuns, readMetrics, summarizeRun } from '../train/runs.js';
import { readEvalReport } from '../eval/run-eval.js';
import { compareRuns, renderComparison, writeRunReport } from '../eval/report-html.js';
import { writeFileAtomicSync } from '../model/atomic.js';
import { parseSetArg, runSweep } from '../eval/sweep.js';
import { dirname } from 'node:path';
import { ProgressLine } from './progress.js';
import { runDistributedTrain } from './distributed.js';

const USAGE = `usage:
  starweave-ft train --config FILE [--run-dir DIR] [--json]   start a run
  starweave-ft train --resume RUN_DIR [--json]               resume a run from its latest checkpoint
  starweave-ft train --nodes a@host,b@host --config FILE [--runs-dir DIR] [--resume]
                                                            one run over several BEAM nodes (mix starweave.train)
  starweave-ft runs list [--runs-dir DIR] [--json]
  starweave-ft runs show RUN_DIR [--json] [--html OUT.html]
  starweave-ft runs compare RUN_DIR RUN_DIR... [--json] [--html OUT.html]
  starweave-ft sweep --config FILE --set PATH=V1,V2 [--set ...] [--dir DIR] [--json]   a grid of runs`;

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
    if (cmd === 'train' && rest.includes('--nodes')) return runDistributedTrain(rest);
    if (cmd === 'train') return await train(rest, json);
    if (cmd === 'runs') return runs(rest, json);
    if (cmd === 'sweep') return await sweep(rest, json);
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
  const progress = new ProgressLine(process.stderr);
  const out = (line: string) => progress.log(line, process.stdout);
  try {
    for await (const e of job) {
      if (json) {
        console.log(JSON.stringify(e.type === 'failed' ? { type: 'failed', message: e.error.message } : e));
        continue;
      }
      if (e.type === 'done' || e.type === 'failed') progress.end();
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
          const mix = Object.entries(p.categoryMix ?? {});
          if (mix.length > 1) console.log(`  examples per epoch by category: ${mix.map(([k, v]) => `${k} ${v}`).join(', ')}`);
          break;
        }
        case 'step':
          progress.step(e);
          break;
        case 'eval':
          out(`eval @${e.step}: held-out loss ${fmt(e.loss)} perplexity ${fmt(e.perplexity, 2)}`);
          break;
        case 'checkpoint':
          out(`checkpoint ${e.path}`);
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

async function sweep(args: string[], json: boolean): Promise<number> {
  const configFile = flag(args, '--config');
  const sets = args.flatMap((a, i) => (a === '--set' ? [args[i + 1]] : []));
  if (!configFile || !sets.length || sets.some((s) => s === undefined)) {
    console.error(USAGE);
    return 2;
  }
  const grid = Object.fromEntries(sets.map(parseSetArg));
  const dir = flag(args, '--dir');
  const r = await runSweep(loadRunConfigFile(configFile), grid, {
    dir: dir ? resolve(dir) : undefined,
    baseDir: dirname(resolve(configFile)),
    onEvent: (k, e) => {
      if (json) console.log(JSON.stringify({ run: k, ...(e.type === 'failed' ? { type: 'failed', message: e.error.message } : e.type === 'done' ? { type: 'done', status: e.result.status, bestEvalLoss: e.result.bestEvalLoss } : e) }));
      else if (e.type === 'done') console.log(`run ${k}: ${e.result.status}, best held-out loss ${fmt(e.result.bestEvalLoss)}`);
    },
  });
  if (json) console.log(JSON.stringify({ type: 'sweep', dir: r.dir, best: r.best, runs: r.runs }));
  else {
    for (const x of r.runs) console.log(`${x.name} ${JSON.stringify(x.params)} ${x.status} best eval ${fmt(x.bestEvalLoss)}${x.gatePassed === null ? '' : x.gatePassed ? ' PASS' : ' FAIL'}${x.index === r.best ? '  <- best' : ''}`);
    console.log(`sweep: ${r.dir} (sweep.json, compare.html)`);
  }
  return r.runs.every((x) => x.status !== 'failed') ? 0 : 1;
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
    for (const m of readMetrics(dir).filter((r) => r.type === 'eval'))
      console.log(`  eval @${m.step}: loss ${fmt(m.eval_loss)} ppl ${fmt(m.eval_perplexity, 2)}${typeof m.eval_token_accuracy === 'number' ? ` token acc ${fmt(m.eval_token_accuracy)}` : ''}`);
    const ev = readEvalReport(dir);
    if (ev) {
      const b = ev.base;
      console.log(`  evaluation @${ev.step ?? '—'}: token acc ${fmt(ev.tuned.tokenAccuracy)} (base ${fmt(b?.tokenAccuracy)}), exact match ${fmt(ev.tuned.exactMatch)} (base ${fmt(b?.exactMatch)}), ROUGE-L ${fmt(ev.tuned.rougeL)} (base ${fmt(b?.rougeL)})`);
      console.log(`  gate ${ev.gate.passed ? 'PASS' : 'FAIL'}${ev.gate.reasons.length ? `: ${ev.gate.reasons.join('; ')}` : ''}`);
    }
    const html = flag(args, '--html');
    if (html) console.log(`report: ${writeRunReport(dir, resolve(html))}`);
    return 0;
  }
  if (sub === 'compare') {
    const html = flag(args, '--html');
    const dirs = args.slice(1).filter((a, i, all) => !a.startsWith('--') && all[i] !== html).map((d) => resolve(d));
    if (!dirs.length) {
      console.error(USAGE);
      return 2;
    }
    for (const d of dirs) if (!existsSync(join(d, 'config.json'))) throw new RunConfigError(`${d}: not a run directory (no config.json)`);
    const rows = compareRuns(dirs);
    if (json) {
      for (const r of rows) console.log(JSON.stringify({ dir: r.dir, summary: r.summary, eval: r.eval ? { tuned: r.eval.tuned, base: r.eval.base, delta: r.eval.delta, gate: r.eval.gate } : null }));
    } else {
      console.log(`${'run'.padEnd(36)} ${'status'.padEnd(13)} ${'steps'.padStart(6)} ${'lr'.padStart(9)} ${'train'.padStart(8)} ${'best eval'.padStart(9)} ${'tok acc'.padStart(8)} ${'Δ base'.padStart(8)} ${'ROUGE-L'.padStart(8)} gate`);
      for (const r of rows) {
        const t = (r.config?.training ?? {}) as Record<string, unknown>;
        const e = r.eval;
        console.log(
          `${r.dir.split('/').pop()!.padEnd(36)} ${r.summary.status.padEnd(13)} ${fmt(r.summary.steps, 0).padStart(6)} ${fmt(t.lr).padStart(9)} ${fmt(r.summary.lastLoss).padStart(8)} ${fmt(r.summary.bestEvalLoss).padStart(9)} ` +
            `${fmt(e?.tuned.tokenAccuracy).padStart(8)} ${fmt(e?.delta?.tokenAccuracy).padStart(8)} ${fmt(e?.tuned.rougeL).padStart(8)} ${e ? (e.gate.passed ? 'PASS' : 'FAIL') : '—'}`,
        );
      }
    }
    if (html) {
      const out = resolve(html);
      writeFileAtomicSync(out, renderComparison(dirs));
      if (!json) console.log(`comparison: ${out}`);
    }
    return 0;
  }
  console.error(USAGE);
  return 2;
}
