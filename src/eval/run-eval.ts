// The end-of-run evaluation: tuned (and base) metrics on the held-out records, the gate, written as
// eval.json into the run directory.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomicSync } from '../model/atomic.js';
import type { LlamaModel } from '../model/native-model.js';
import type { ModelTokenizer } from '../model/tokenizer.js';
import { EvalMetricsSpecSchema } from './config.js';
import type { EvalMetricsSpec, EvalMetricsSpecInput } from './config.js';
import { evaluateModel, splitPrompt, withAdapterOff } from './evaluate.js';
import { benchmarkModel } from './perf.js';
import type { PerfReport } from './perf.js';
import type { EvalRecord, ModelMetrics } from './evaluate.js';
import { checkGate } from './gate.js';
import type { GateResult } from './gate.js';

export interface EvalReport {
  format: 'starweave-eval/1';
  step: number | null;
  createdAt: string;
  spec: EvalMetricsSpec;
  tuned: ModelMetrics;
  base: ModelMetrics | null;
  /** tuned − base of the headline metrics (null where either is missing) */
  delta: { loss: number | null; tokenAccuracy: number | null; exactMatch: number | null; rougeL: number | null } | null;
  gate: GateResult;
  /** the performance benchmark of the tuned model (eval.metrics.perf), null when not asked for */
  perf?: PerfReport | null;
  seconds: number;
}

const diff = (a: number | null, b: number | null) => (a === null || b === null ? null : a - b);

/** Evaluates the model as it is (tuned) and, when spec.compare_base, with the adapter off; applies the gate. */
export async function runEvaluation(
  model: LlamaModel,
  tok: ModelTokenizer,
  records: readonly EvalRecord[],
  specInput: EvalMetricsSpecInput | EvalMetricsSpec = {},
  opts: { maxSeqLen?: number; step?: number | null } = {},
): Promise<EvalReport> {
  const t0 = performance.now();
  const spec = EvalMetricsSpecSchema.parse(specInput);
  const eo = { maxExamples: spec.max_examples, generateExamples: spec.generate_examples, maxNewTokens: spec.max_new_tokens, maxSeqLen: opts.maxSeqLen };
  const tuned = await evaluateModel(model, tok, records, eo);
  const base = spec.compare_base ? await withAdapterOff(model, () => evaluateModel(model, tok, records, eo)) : null;
  let perf: PerfReport | null = null;
  if (spec.perf) {
    const prompts = records
      .map(splitPrompt)
      .filter((x): x is NonNullable<typeof x> => x !== null)
      .map((x) => x.prompt)
      .filter((p) => opts.maxSeqLen === undefined || tok.encodeChat(p).length + spec.perf!.max_new_tokens <= opts.maxSeqLen)
      .slice(0, spec.perf.requests);
    if (prompts.length) perf = await benchmarkModel(model, tok, { prompts, maxNewTokens: spec.perf.max_new_tokens, warmup: spec.perf.warmup });
  }
  return {
    format: 'starweave-eval/1',
    step: opts.step ?? null,
    createdAt: new Date().toISOString(),
    spec,
    tuned,
    base,
    delta: base
      ? { loss: diff(tuned.loss, base.loss), tokenAccuracy: diff(tuned.tokenAccuracy, base.tokenAccuracy), exactMatch: diff(tuned.exactMatch, base.exactMatch), rougeL: diff(tuned.rougeL, base.rougeL) }
      : null,
    gate: checkGate(spec.gate, tuned, base),
    ...(spec.perf ? { perf } : {}),
    seconds: (performance.now() - t0) / 1000,
  };
}

export function writeEvalReport(runDir: string, report: EvalReport): string {
  const file = join(runDir, 'eval.json');
  writeFileAtomicSync(file, JSON.stringify(report, null, 2) + '\n');
  return file;
}

export function readEvalReport(runDir: string): EvalReport | null {
  const file = join(runDir, 'eval.json');
  if (!existsSync(file)) return null;
  try {
    const r = JSON.parse(readFileSync(file, 'utf8')) as EvalReport;
    return r.format === 'starweave-eval/1' && r.tuned ? r : null;
  } catch {
    return null;
  }
}
