// The seed's "Evaluation -Fail-> Preprocessing" edge: a failed gate becomes a remediation plan. Each
// failed check is traced to the categories that fail it (a category's own metric against the same
// threshold; when none does alone, the categories below the overall figure), and the plan proposes
// what the next round does about them: a training mix that oversamples those categories
// (training.category_weights) and a review queue of their records (hash + origin, for `starweave-ft data
// curate`) and of the held-out answers the model got wrong. The run writes it as remediation.json; the
// pipeline (src/pipeline/) applies it and retrains.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomicSync } from '../model/atomic.js';
import { RemediationSpecSchema } from './config.js';
import type { RemediationSpec } from './config.js';
import type { CategoryMetrics } from './evaluate.js';
import type { GateCheck } from './gate.js';
import type { EvalReport } from './run-eval.js';

export const REMEDIATION_FILE = 'remediation.json';

export interface FailingCategory {
  category: string;
  /** the gate checks this category fails (or drags down) */
  checks: string[];
  tuned: CategoryMetrics;
  base: CategoryMetrics | null;
  trainRecords: number;
  heldoutRecords: number;
  /** training weight in the run that failed, and the one proposed for the next round */
  weight: number;
  nextWeight: number;
}

export interface ReviewItem {
  kind: 'train_record' | 'heldout_answer';
  category: string;
  /** the record's hash (dataset versions carry it; `starweave-ft data curate ... HASH` takes it) */
  hash?: string;
  origin?: unknown;
  /** for training records: the record's messages as the dataset holds them */
  messages?: readonly { role: string; content: string }[];
  /** for held-out answers: the prompt, the reference and what the tuned model said */
  prompt?: string;
  reference?: string;
  output?: string;
  rougeL?: number;
  reason: string;
}

export interface RemediationPlan {
  format: 'starweave-remediation/1';
  createdAt: string;
  runDir: string;
  step: number | null;
  /** the dataset the failing run trained on (kind, store, versionId, name) */
  dataset: unknown;
  spec: RemediationSpec;
  failedChecks: GateCheck[];
  failingCategories: FailingCategory[];
  /** failed checks no category explains (a metric that could not be computed, no categories) */
  unattributed: { check: string; reason: string; hint: string }[];
  /** the next round's training.category_weights (every category named; unchanged ones keep theirs) */
  categoryWeights: Record<string, number>;
  /** false when the plan changes nothing in the training mix (every failing category at max_category_weight, or none) */
  changesMix: boolean;
  review: ReviewItem[];
}

type MetricKey = 'tokenAccuracy' | 'exactMatch' | 'rougeL' | 'loss';
/** gate check name -> the metric it reads, and whether it is a gain over base */
const CHECK_METRIC: Record<string, { metric: MetricKey; gain: boolean }> = {
  min_token_accuracy: { metric: 'tokenAccuracy', gain: false },
  min_exact_match: { metric: 'exactMatch', gain: false },
  min_rouge_l: { metric: 'rougeL', gain: false },
  max_eval_loss: { metric: 'loss', gain: false },
  min_token_accuracy_gain: { metric: 'tokenAccuracy', gain: true },
  min_loss_improvement: { metric: 'loss', gain: true },
};

/** The value a check reads, for one category (or the whole set); null when it cannot be computed. */
function checkValue(metric: MetricKey, gain: boolean, tuned: CategoryMetrics | undefined, base: CategoryMetrics | undefined | null): number | null {
  const t = tuned?.[metric] ?? null;
  if (!gain) return t;
  const b = base?.[metric] ?? null;
  if (t === null || b === null) return null;
  return metric === 'loss' ? b - t : t - b;
}

const fails = (v: number | null, threshold: number, op: '>=' | '<=') => v === null || !Number.isFinite(v) || (op === '>=' ? v < threshold : v > threshold);
const worse = (v: number, than: number, op: '>=' | '<=') => (op === '>=' ? v < than : v > than);

/** Categories to blame for each failed check of the gate. */
export function attributeFailures(report: Pick<EvalReport, 'tuned' | 'base' | 'gate'>): { byCategory: Map<string, string[]>; unattributed: RemediationPlan['unattributed'] } {
  const byCategory = new Map<string, string[]>();
  const unattributed: RemediationPlan['unattributed'] = [];
  const blame = (c: string, check: string) => byCategory.set(c, [...(byCategory.get(c) ?? []), check]);
  const cats = Object.keys(report.tuned.categories);
  for (const ch of report.gate.checks.filter((x) => !x.passed)) {
    const perCat = /^min_category_token_accuracy\[(.+)\]$/.exec(ch.name);
    if (perCat) {
      blame(perCat[1], ch.name);
      continue;
    }
    const m = CHECK_METRIC[ch.name];
    if (!m || ch.value === null || !cats.length) {
      unattributed.push({
        check: ch.name,
        reason: ch.reason,
        hint:
          ch.value === null
            ? m?.gain
              ? 'the metric needs the base model: set eval.metrics.compare_base'
              : 'the metric could not be computed: check eval.metrics.generate_examples / max_examples and the held-out split'
            : 'the held-out records carry no categories to act on',
      });
      continue;
    }
    const values = cats.map((c) => ({ c, v: checkValue(m.metric, m.gain, report.tuned.categories[c], report.base?.categories[c]) }));
    let blamed = values.filter((x) => x.v !== null && fails(x.v, ch.threshold, ch.op));
    // no category fails alone (the mix does): those below the overall figure
    if (!blamed.length) blamed = values.filter((x) => x.v !== null && worse(x.v, ch.value!, ch.op));
    if (!blamed.length) unattributed.push({ check: ch.name, reason: ch.reason, hint: 'no category is below the overall figure' });
    for (const x of blamed) blame(x.c, ch.name);
  }
  return { byCategory, unattributed };
}

export interface PlanContext {
  runDir: string;
  dataset: unknown;
  /** the run's training.category_weights */
  categoryWeights: Readonly<Record<string, number>>;
  train: readonly { category?: string; hash?: string; origin?: unknown; messages?: readonly { role: string; content: string }[] }[];
  heldout: readonly { category?: string }[];
}

/** The remediation plan for a failed gate (a passed gate gives a plan with nothing failing). */
export function planRemediation(report: EvalReport, ctx: PlanContext, specInput: Partial<RemediationSpec> = report.spec.remediation ?? {}): RemediationPlan {
  const spec = RemediationSpecSchema.parse(specInput);
  const { byCategory, unattributed } = attributeFailures(report);
  const count = (rs: readonly { category?: string }[], c: string) => rs.filter((r) => (r.category ?? '(none)') === c).length;
  const weights: Record<string, number> = { ...ctx.categoryWeights };
  const failing: FailingCategory[] = [];
  let changesMix = false;
  for (const [category, checks] of [...byCategory].sort((a, b) => a[0].localeCompare(b[0]))) {
    const weight = ctx.categoryWeights[category] ?? 1;
    // a category with no training records cannot be oversampled: it needs data (the review queue says so);
    // records without a category cannot be weighted at all
    const trainRecords = count(ctx.train, category);
    const nextWeight = trainRecords && category !== '(none)' ? Math.min(spec.max_category_weight, Math.max(weight, 1) * spec.oversample_factor) : weight;
    if (nextWeight !== weight) changesMix = true;
    if (category !== '(none)') weights[category] = nextWeight;
    failing.push({
      category,
      checks,
      tuned: report.tuned.categories[category],
      base: report.base?.categories[category] ?? null,
      trainRecords,
      heldoutRecords: count(ctx.heldout, category),
      weight,
      nextWeight,
    });
  }
  const review: ReviewItem[] = [];
  for (const f of failing) {
    for (const s of report.tuned.samples.filter((x) => x.category === f.category && !x.exactMatch))
      review.push({ kind: 'heldout_answer', category: f.category, prompt: s.prompt, reference: s.reference, output: s.output, rougeL: s.rougeL, reason: `held-out answer of failing category ${f.category} (ROUGE-L ${s.rougeL.toFixed(3)})` });
    if (!f.trainRecords) {
      review.push({ kind: 'train_record', category: f.category, reason: `category ${f.category} has no training records: add data for it (a source, or generated examples)` });
      continue;
    }
    for (const r of ctx.train.filter((x) => (x.category ?? '(none)') === f.category).slice(0, spec.review_examples))
      review.push({ kind: 'train_record', category: f.category, ...(r.hash ? { hash: r.hash } : {}), ...(r.origin ? { origin: r.origin } : {}), messages: r.messages, reason: `training record of failing category ${f.category}: check it is right (approve / correct / reject)` });
  }
  return {
    format: 'starweave-remediation/1',
    createdAt: new Date().toISOString(),
    runDir: ctx.runDir,
    step: report.step,
    dataset: ctx.dataset,
    spec,
    failedChecks: report.gate.checks.filter((c) => !c.passed),
    failingCategories: failing,
    unattributed,
    categoryWeights: weights,
    changesMix,
    review,
  };
}

/** Writes remediation.json and review-queue.jsonl into the run directory. */
export function writeRemediation(runDir: string, plan: RemediationPlan): string {
  const file = join(runDir, REMEDIATION_FILE);
  writeFileAtomicSync(join(runDir, 'review-queue.jsonl'), plan.review.map((r) => JSON.stringify(r) + '\n').join(''));
  writeFileAtomicSync(file, JSON.stringify(plan, null, 2) + '\n');
  return file;
}

export function readRemediation(runDir: string): RemediationPlan | null {
  const file = join(runDir, REMEDIATION_FILE);
  if (!existsSync(file)) return null;
  const p = JSON.parse(readFileSync(file, 'utf8')) as RemediationPlan;
  return p.format === 'starweave-remediation/1' ? p : null;
}
