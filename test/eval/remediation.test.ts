// From a failed gate to a remediation plan: which categories each failed check is traced to, the next
// training mix (oversampled, capped), the review queue, and what cannot be attributed.
import { checkGate } from '../../src/eval/gate.js';
import { attributeFailures, planRemediation } from '../../src/eval/remediation.js';
import { EvalMetricsSpecSchema } from '../../src/eval/config.js';
import type { CategoryMetrics, ModelMetrics } from '../../src/eval/evaluate.js';
import type { EvalReport } from '../../src/eval/run-eval.js';

const cat = (tokenAccuracy: number | null, loss: number | null, rougeL: number | null = null): CategoryMetrics => ({ examples: 2, tokens: 10, loss, tokenAccuracy, generated: rougeL === null ? 0 : 1, exactMatch: rougeL === null ? null : 0, rougeL });
function metrics(cats: Record<string, CategoryMetrics>, all: CategoryMetrics): ModelMetrics {
  return { ...all, perplexity: all.loss === null ? null : Math.exp(all.loss), categories: cats, samples: [] };
}
function report(gate: Record<string, number>, tuned: ModelMetrics, base: ModelMetrics | null): EvalReport {
  const spec = EvalMetricsSpecSchema.parse({ gate, remediation: { oversample_factor: 3, max_category_weight: 4, review_examples: 1 } });
  return { format: 'starweave-eval/1', step: 10, createdAt: '', spec, tuned, base, delta: null, gate: checkGate(spec.gate, tuned, base), seconds: 0 };
}

describe('remediation', () => {
  const tuned = metrics({ a: cat(0.9, 1.0), b: cat(0.4, 2.5), c: cat(0.55, 1.9) }, cat(0.6, 1.8));
  const base = metrics({ a: cat(0.5, 2.0), b: cat(0.39, 2.6), c: cat(0.3, 2.0) }, cat(0.4, 2.2));

  test('a failing category is the one whose own metric fails the threshold', () => {
    const r = report({ min_token_accuracy: 0.7 }, tuned, base);
    expect(r.gate.passed).toBe(false);
    // b (0.4) and c (0.55) fail 0.7 alone; a (0.9) does not
    expect([...attributeFailures(r).byCategory.keys()].sort()).toEqual(['b', 'c']);
  });

  test('when no category fails alone, those below the overall figure are blamed; gains use base per category', () => {
    // overall loss 1.8 > 1.7 fails, but every category... a 1.0, b 2.5, c 1.9: b and c fail 1.7 themselves
    expect([...attributeFailures(report({ max_eval_loss: 1.7 }, tuned, base)).byCategory.keys()].sort()).toEqual(['b', 'c']);
    // a gate on the whole set's accuracy 0.65 where each category passes 0.3 but the mix falls short: below-overall ones
    const t2 = metrics({ a: cat(0.9, 1), b: cat(0.5, 1) }, cat(0.6, 1));
    const r2 = report({ min_token_accuracy: 0.65 }, t2, null);
    expect(r2.gate.passed).toBe(false);
    expect([...attributeFailures(r2).byCategory.keys()]).toEqual(['b']);
    // gain over base: a +0.4, b +0.01, c +0.25; threshold 0.2 -> b
    expect([...attributeFailures(report({ min_token_accuracy_gain: 0.25 }, tuned, base)).byCategory.keys()]).toEqual(['b']);
  });

  test('the plan: weights multiplied and capped, unchanged mix flagged, review queue, per-category check names', () => {
    const r = report({ min_category_token_accuracy: 0.5, min_rouge_l: 0.3 }, tuned, base);
    const train = [
      { category: 'b', hash: 'h1', messages: [{ role: 'user', content: 'q' }] },
      { category: 'b', hash: 'h2' },
      { category: 'a', hash: 'h3' },
    ];
    const plan = planRemediation(r, { runDir: '/r', dataset: { kind: 'store', versionId: 'v1' }, categoryWeights: { b: 2, a: 1.5 }, train, heldout: [{ category: 'b' }] });
    expect(plan.failedChecks.map((c) => c.name)).toEqual(['min_rouge_l', 'min_category_token_accuracy[b]']);
    // ROUGE-L has no generations: not attributable, with a hint
    expect(plan.unattributed).toEqual([expect.objectContaining({ check: 'min_rouge_l', hint: expect.stringMatching(/generate_examples/) })]);
    expect(plan.failingCategories).toEqual([expect.objectContaining({ category: 'b', checks: ['min_category_token_accuracy[b]'], weight: 2, nextWeight: 4, trainRecords: 2, heldoutRecords: 1 })]);
    expect(plan.categoryWeights).toEqual({ a: 1.5, b: 4 });
    expect(plan.changesMix).toBe(true);
    expect(plan.review).toEqual([expect.objectContaining({ kind: 'train_record', category: 'b', hash: 'h1', messages: [{ role: 'user', content: 'q' }] })]);
    expect(plan.dataset).toEqual({ kind: 'store', versionId: 'v1' });
    // at the cap the mix does not change
    const capped = planRemediation(r, { runDir: '/r', dataset: null, categoryWeights: { b: 4 }, train, heldout: [] });
    expect(capped.changesMix).toBe(false);
    // a failing category without training records: weight unchanged, a review item asks for data
    const none = planRemediation(r, { runDir: '/r', dataset: null, categoryWeights: {}, train: [{ category: 'a' }], heldout: [] });
    expect(none.failingCategories[0]).toMatchObject({ category: 'b', trainRecords: 0, nextWeight: 1 });
    expect(none.review[0].reason).toMatch(/no training records/);
    expect(none.changesMix).toBe(false);
    // uncategorized records cannot be weighted: the mix does not change (the pipeline stalls instead of looping)
    const unc = report({ min_token_accuracy: 0.99 }, metrics({ '(none)': cat(0.5, 1) }, cat(0.5, 1)), null);
    const p3 = planRemediation(unc, { runDir: '/r', dataset: null, categoryWeights: {}, train: [{}, {}], heldout: [{}] });
    expect(p3.failingCategories[0]).toMatchObject({ category: '(none)', trainRecords: 2, weight: 1, nextWeight: 1 });
    expect(p3.categoryWeights).toEqual({});
    expect(p3.changesMix).toBe(false);
  });
});
