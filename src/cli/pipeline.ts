// `starweave-ft pipeline --config FILE [--max-rounds N] [--dir DIR] [--json]`: build -> train -> evaluate ->
// gate, and on Fail back to preprocessing with the failing categories oversampled, up to N rounds
// (src/pipeline/pipeline.ts); `starweave-ft pipeline show DIR` prints a pipeline's rounds.
import { dirname, resolve } from 'node:path';
import { loadRunConfigFile } from '../train/config.js';
import { readPipelineReport, resumePipeline, runPipeline } from '../pipeline/pipeline.js';
import type { PipelineEvent, PipelineReport } from '../pipeline/pipeline.js';
import { ProgressLine } from './progress.js';
import { opt } from './args.js';

export const PIPELINE_USAGE = `usage:
  starweave-ft pipeline --config RUN.(json|yaml) [--max-rounds N] [--dir DIR] [--json]
      dataset build -> train -> evaluate -> gate; on Fail, back to preprocessing with the failing
      categories oversampled (and listed for review), up to N rounds (default 3); exit 0 when the gate passes
  starweave-ft pipeline --resume DIR [--max-rounds N] [--json]
      continues a pipeline after Ctrl-C (the round resumes from its checkpoint), a kill, or its last round
  starweave-ft pipeline show DIR [--json]     the rounds of a pipeline: dataset version, run, gate`;


const f4 = (v: number | null | undefined) => (typeof v === 'number' && Number.isFinite(v) ? v.toFixed(4) : '—');

function printRounds(r: PipelineReport): void {
  for (const x of r.rounds) {
    const w = Object.entries(x.categoryWeights);
    console.log(
      `round ${x.round}: dataset ${x.dataset?.versionId ?? x.dataset?.kind ?? '—'}, mix ${w.length ? w.map(([k, v]) => `${k}×${v}`).join(' ') : 'as built'}, ` +
        `${x.status}, best held-out loss ${f4(x.bestEvalLoss)}, gate ${x.gate ? (x.gate.passed ? 'PASS' : 'FAIL') : '—'}` +
        `${x.failingCategories.length ? ` (failing: ${x.failingCategories.join(', ')})` : ''}${x.error ? `: ${x.error}` : ''}`,
    );
    console.log(`  run ${x.runDir}${x.remediation ? `\n  remediation ${x.remediation}` : ''}`);
  }
  console.log(`pipeline ${r.status}${r.reason ? `: ${r.reason}` : ''}\n  ${r.dir}/pipeline.json, compare.html`);
}

export async function runPipelineCommand(args: string[]): Promise<number> {
  const json = args.includes('--json');
  try {
    if (args[0] === 'show') {
      if (!args[1] || args[1].startsWith('--')) {
        console.error(PIPELINE_USAGE);
        return 2;
      }
      const r = readPipelineReport(resolve(args[1]));
      if (json) console.log(JSON.stringify(r));
      else printRounds(r);
      return r.status === 'passed' ? 0 : 1;
    }
    const configFile = opt(args, '--config');
    const resumeDir = opt(args, '--resume');
    if (!configFile === !resumeDir) {
      console.error(PIPELINE_USAGE);
      return 2;
    }
    const mr = opt(args, '--max-rounds');
    const maxRounds = mr === undefined ? undefined : Number(mr);
    if (maxRounds !== undefined && (!Number.isInteger(maxRounds) || maxRounds < 1)) throw new Error(`--max-rounds needs a positive integer, got '${mr}'`);
    const dir = opt(args, '--dir');
    const progress = new ProgressLine(process.stderr);
    const out = (line: string) => progress.log(line, process.stdout);
    const abort = new AbortController();
    const onSigint = () => {
      progress.end();
      console.error('cancelling at the next step boundary (a checkpoint will be written; resume with pipeline --resume)...');
      abort.abort();
    };
    process.on('SIGINT', onSigint);
    const common = {
      maxRounds,
      signal: abort.signal,
      onEvent: (e: PipelineEvent) => {
        if (json) {
          if (e.type === 'run' && e.event.type !== 'start' && e.event.type !== 'done' && e.event.type !== 'failed') return;
          const ev = e.type === 'run' ? { type: 'run', round: e.round, event: e.event.type === 'failed' ? { type: 'failed', message: e.event.error.message } : e.event.type === 'done' ? { type: 'done', status: e.event.result.status, runDir: e.event.result.runDir } : e.event } : e;
          console.log(JSON.stringify(ev));
          return;
        }
        if (e.type === 'round') {
          const w = Object.entries(e.categoryWeights);
          out(`== round ${e.round}${e.resumed ? ' (resumed from its checkpoint)' : ''}: ${e.runDir}${w.length ? ` (mix ${w.map(([k, v]) => `${k}×${v}`).join(' ')})` : ''}`);
        } else if (e.type === 'run') {
          const ev = e.event;
          if (ev.type === 'step') progress.step(ev);
          else if (ev.type === 'start') out(`dataset ready; ${ev.preflight.train.kept} train / ${ev.preflight.heldout.kept} held-out examples, ${ev.preflight.totalSteps} steps`);
          else if (ev.type === 'eval') out(`eval @${ev.step}: held-out loss ${f4(ev.loss)}`);
          else if (ev.type === 'done' || ev.type === 'failed') progress.end();
        } else if (e.type === 'gate') {
          out(`gate ${e.passed ? 'PASS' : 'FAIL'}${e.reasons.length ? `: ${e.reasons.join('; ')}` : ''}`);
        } else if (e.type === 'remediation') {
          const p = e.plan;
          for (const c of p.failingCategories) out(`  failing ${c.category} (${c.checks.join(', ')}): weight ${c.weight} -> ${c.nextWeight}`);
          for (const u of p.unattributed) out(`  ${u.check}: ${u.hint}`);
          out(`  ${p.review.length} item(s) for review in ${p.runDir}/review-queue.jsonl`);
        }
      },
    };
    let report: PipelineReport;
    try {
      report = resumeDir
        ? await resumePipeline(resolve(resumeDir), common)
        : await runPipeline(loadRunConfigFile(configFile!), { ...common, dir: dir ? resolve(dir) : undefined, baseDir: dirname(resolve(configFile!)) });
    } finally {
      process.off('SIGINT', onSigint);
    }
    if (json) console.log(JSON.stringify({ type: 'pipeline', ...report }));
    else printRounds(report);
    return report.status === 'passed' ? 0 : 1;
  } catch (e) {
    console.error(e instanceof Error ? e.message : String(e));
    return 1;
  }
}
