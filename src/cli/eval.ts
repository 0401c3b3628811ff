// `starweave-ft eval perf --model DIR [--adapter DIR] [--prompts FILE] ...`: the performance benchmark of a
// model (src/eval/perf.ts): latency per request, prefill and decode tokens/s.
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { writeFileAtomicSync } from '../model/atomic.js';
import { benchmarkModelDir, readPromptsFile } from '../eval/perf.js';
import type { PerfReport } from '../eval/perf.js';
import { opt } from './args.js';

export const EVAL_USAGE = `usage:
  starweave-ft eval perf (--model DIR [--adapter DIR] | --run RUN_DIR) [--prompts FILE] [--max-new-tokens N]
                         [--runs N] [--warmup N] [--stop-at-eos] [--out FILE] [--json]
      latency per request (p50 / p95) and prefill / decode tokens/s of a Hugging Face model directory
      (with a PEFT adapter, or a training run's base model + adapter) over prompts served one at a time;
      --prompts: .jsonl ({"prompt": ...} or {"messages": [...]}) or text, one prompt per line`;


function intOpt(args: string[], name: string, min: number): number | undefined {
  const v = opt(args, name);
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < min) throw new Error(`${name} needs an integer >= ${min}, got '${v}'`);
  return n;
}

const ms = (s: number) => `${(s * 1000).toFixed(1)} ms`;

export function formatPerf(r: PerfReport): string {
  const l = r.latency;
  return [
    `model ${r.model ?? '—'}${r.adapter ? ` + adapter ${r.adapter}` : ''} (${r.machine.isa}, ${r.machine.threads} threads)`,
    `${r.requests.length} requests, ${r.settings.maxNewTokens} new tokens each${r.settings.stopAtEos ? ' at most' : ''}, ${r.settings.warmup} warm-up`,
    `latency per request: p50 ${ms(l.p50)}  p95 ${ms(l.p95)}  mean ${ms(l.mean)}  (min ${ms(l.min)}, max ${ms(l.max)})`,
    `prefill: ${r.prefill.tokens} prompt tokens in ${r.prefill.seconds.toFixed(3)} s = ${r.prefill.tokensPerSecond.toFixed(1)} tokens/s (per request p50 ${r.prefill.perRequestTokensPerSecond.p50.toFixed(1)})`,
    `decode:  ${r.decode.tokens} tokens in ${r.decode.seconds.toFixed(3)} s = ${r.decode.tokensPerSecond.toFixed(1)} tokens/s (per request p50 ${r.decode.perRequestTokensPerSecond.p50.toFixed(1)})`,
  ].join('\n');
}

export async function runEvalCommand(args: string[]): Promise<number> {
  const [sub, ...rest] = args;
  if (sub !== 'perf' || rest.includes('--help')) {
    console.error(EVAL_USAGE);
    return 2;
  }
  try {
    let model = opt(rest, '--model');
    let adapter = opt(rest, '--adapter');
    const run = opt(rest, '--run');
    if (run) {
      const cfg = join(resolve(run), 'config.json');
      if (!existsSync(cfg)) throw new Error(`${run}: not a run directory (no config.json)`);
      model ??= (JSON.parse(readFileSync(cfg, 'utf8')) as { model: { dir: string } }).model.dir;
      adapter ??= join(resolve(run), 'adapter');
      if (!existsSync(adapter)) throw new Error(`${run}: the run has no adapter/ (it did not complete)`);
    }
    if (!model) {
      console.error(EVAL_USAGE);
      return 2;
    }
    const promptsFile = opt(rest, '--prompts');
    const report = await benchmarkModelDir(resolve(model), {
      adapterDir: adapter ? resolve(adapter) : undefined,
      prompts: promptsFile ? readPromptsFile(resolve(promptsFile)) : undefined,
      maxNewTokens: intOpt(rest, '--max-new-tokens', 1),
      runs: intOpt(rest, '--runs', 1),
      warmup: intOpt(rest, '--warmup', 0),
      stopAtEos: rest.includes('--stop-at-eos'),
    });
    const out = opt(rest, '--out');
    if (out) writeFileAtomicSync(resolve(out), JSON.stringify(report, null, 2) + '\n');
    if (rest.includes('--json')) console.log(JSON.stringify(report));
    else console.log(formatPerf(report) + (out ? `\nwritten to ${resolve(out)}` : ''));
    return 0;
  } catch (e) {
    console.error(e instanceof Error ? e.message : String(e));
    return 1;
  }
}
