// The gate: thresholds from the run config (eval.metrics.gate) checked against an evaluation -> pass/fail
// with a reason for each check.
import type { GateSpec } from './config.js';
import type { ModelMetrics } from './evaluate.js';

export interface GateCheck {
  name: string;
  value: number | null;
  threshold: number;
  op: '>=' | '<=';
  passed: boolean;
  reason: string;
}
export interface GateResult {
  passed: boolean;
  checks: GateCheck[];
  /** the reasons of the failed checks */
  reasons: string[];
}

const f = (v: number | null) => (v === null ? 'n/a' : Number.isInteger(v) ? String(v) : v.toFixed(4));

/** Checks each threshold given; a metric that could not be computed fails its check. No thresholds: passed. */
export function checkGate(gate: GateSpec, tuned: ModelMetrics, base: ModelMetrics | null): GateResult {
  const checks: GateCheck[] = [];
  const add = (name: string, value: number | null, threshold: number | undefined, op: '>=' | '<=', label: string) => {
    if (threshold === undefined) return;
    const passed = value !== null && Number.isFinite(value) && (op === '>=' ? value >= threshold : value <= threshold);
    checks.push({ name, value, threshold, op, passed, reason: `${label} ${f(value)} ${passed ? '' : 'not '}${op} ${f(threshold)}` });
  };
  add('min_token_accuracy', tuned.tokenAccuracy, gate.min_token_accuracy, '>=', 'token accuracy');
  add('min_exact_match', tuned.exactMatch, gate.min_exact_match, '>=', 'exact match');
  add('min_rouge_l', tuned.rougeL, gate.min_rouge_l, '>=', 'ROUGE-L F1');
  add('max_eval_loss', tuned.loss, gate.max_eval_loss, '<=', 'held-out loss');
  const gain = base && tuned.tokenAccuracy !== null && base.tokenAccuracy !== null ? tuned.tokenAccuracy - base.tokenAccuracy : null;
  add('min_token_accuracy_gain', gain, gate.min_token_accuracy_gain, '>=', 'token accuracy gain over base');
  const impr = base && tuned.loss !== null && base.loss !== null ? base.loss - tuned.loss : null;
  add('min_loss_improvement', impr, gate.min_loss_improvement, '>=', 'held-out loss improvement over base');
  if (gate.min_category_token_accuracy !== undefined)
    for (const [c, m] of Object.entries(tuned.categories)) add(`min_category_token_accuracy[${c}]`, m.tokenAccuracy, gate.min_category_token_accuracy, '>=', `token accuracy of category ${c}`);
  const failed = checks.filter((c) => !c.passed);
  return { passed: failed.length === 0, checks, reasons: failed.map((c) => c.reason) };
}
