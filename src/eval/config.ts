// The `eval.metrics` section of a run config: what the end-of-run evaluation computes and the gate's
// thresholds. Only zod here, so src/train/config.ts can import it without a cycle.
import { z } from 'zod';

export const GateSpecSchema = z.strictObject({
  /** tuned token accuracy on held-out assistant tokens at least this (0..1) */
  min_token_accuracy: z.number().min(0).max(1).optional(),
  /** tuned exact-match rate of generations at least this (0..1) */
  min_exact_match: z.number().min(0).max(1).optional(),
  /** tuned mean ROUGE-L F1 of generations at least this (0..1) */
  min_rouge_l: z.number().min(0).max(1).optional(),
  /** tuned held-out loss at most this */
  max_eval_loss: z.number().positive().optional(),
  /** tuned − base token accuracy at least this (needs compare_base) */
  min_token_accuracy_gain: z.number().optional(),
  /** base − tuned held-out loss at least this (needs compare_base) */
  min_loss_improvement: z.number().optional(),
  /** every category's tuned token accuracy at least this */
  min_category_token_accuracy: z.number().min(0).max(1).optional(),
});
export type GateSpec = z.output<typeof GateSpecSchema>;

/** What a failed gate proposes for the next round (docs/EVALUATION.md, "The Fail loop"). */
export const RemediationSpecSchema = z.strictObject({
  /** a failing category's training weight is multiplied by this for the next round */
  oversample_factor: z.number().gt(1).max(100).default(2),
  /** no category weight goes above this */
  max_category_weight: z.number().min(1).max(100).default(8),
  /** training records of each failing category listed for human review (review-queue.jsonl) */
  review_examples: z.number().int().min(0).default(20),
});
export type RemediationSpec = z.output<typeof RemediationSpecSchema>;

/** The performance benchmark at the end of a run (src/eval/perf.ts) on held-out prompts: eval.json's `perf`. */
export const PerfSpecSchema = z.strictObject({
  /** held-out prompts served (the first N with an assistant turn) */
  requests: z.number().int().min(1).default(4),
  max_new_tokens: z.number().int().min(1).default(16),
  warmup: z.number().int().min(0).default(1),
});
export type PerfSpec = z.output<typeof PerfSpecSchema>;

export const EvalMetricsSpecSchema = z.strictObject({
  /** held-out examples scored for token accuracy / loss (the first N) */
  max_examples: z.number().int().min(1).default(64),
  /** held-out prompts generated from (greedy) for exact match and ROUGE-L (0: none) */
  generate_examples: z.number().int().min(0).default(8),
  max_new_tokens: z.number().int().min(1).default(64),
  /** also evaluate with the adapter off (LoRA B zeroed) for the base-vs-tuned table */
  compare_base: z.boolean().default(true),
  /** add eval_token_accuracy to each periodic held-out eval row of metrics.jsonl */
  token_accuracy_every_eval: z.boolean().default(true),
  /** write report.html into the run directory at the end */
  report: z.boolean().default(true),
  gate: GateSpecSchema.default(GateSpecSchema.parse({})),
  /** latency and prefill / decode tokens/s of the tuned model (off when absent) */
  perf: PerfSpecSchema.optional(),
  /** on a failed gate: remediation.json with the failing categories and the next round's training mix */
  remediation: RemediationSpecSchema.default(RemediationSpecSchema.parse({})),
});
export type EvalMetricsSpecInput = z.input<typeof EvalMetricsSpecSchema>;
export type EvalMetricsSpec = z.output<typeof EvalMetricsSpecSchema>;
