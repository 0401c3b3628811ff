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
});
export type EvalMetricsSpecInput = z.input<typeof EvalMetricsSpecSchema>;
export type EvalMetricsSpec = z.output<typeof EvalMetricsSpecSchema>;
