// The run config: one JSON file (or object) describing a fine-tuning run, validated with zod; every
// error names its field path (and the file). Relative paths resolve against the config file's folder.
import { existsSync, readFileSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import { z } from 'zod';
import { LORA_TARGET_MODULES } from '../model/native-model.js';
import type { LoraTargetModule } from '../../bindings/types.js';
import { EvalMetricsSpecSchema } from '../eval/config.js';

export class RunConfigError extends Error {
  constructor(
    message: string,
    readonly file?: string,
    readonly issues: { path: string; message: string }[] = [],
  ) {
    super(message);
    this.name = 'RunConfigError';
  }
}

const ChatMessage = z.strictObject({ role: z.enum(['system', 'user', 'assistant']), content: z.string() });
const InlineRecord = z.looseObject({ messages: z.array(ChatMessage).min(1), category: z.string().optional() });
export type InlineRecord = z.infer<typeof InlineRecord>;

const DatasetSpec = z.union([
  /** a version (id, id prefix, name or name~N) in a dataset store */
  z.strictObject({ store: z.string().min(1), version: z.string().min(1) }),
  /** a dataset pipeline config (docs/DATA.md) built into the store before training */
  z.strictObject({ store: z.string().min(1), build: z.string().min(1) }),
  /** records given inline (tests, quick experiments) */
  z.strictObject({ train: z.array(InlineRecord).min(1), heldout: z.array(InlineRecord).default([]) }),
]);

const ModelSpec = z.strictObject({
  /** a Hugging Face model directory (config.json, *.safetensors, tokenizer.json) */
  dir: z.string().min(1),
  /** generate a tiny model into `dir` when it holds no config.json (the embedded default) */
  generate: z.strictObject({ preset: z.enum(['tiny', 'tiny-qwen2']).default('tiny'), seed: z.number().int().min(0).default(0) }).optional(),
});

const LoraSpec = z.strictObject({
  r: z.number().int().min(1).default(8),
  lora_alpha: z.number().positive().default(16),
  lora_dropout: z.number().min(0).lt(1).default(0),
  target_modules: z
    .union([z.array(z.enum(LORA_TARGET_MODULES as [LoraTargetModule, ...LoraTargetModule[]])).min(1), z.literal('all-linear')])
    .default(['q_proj', 'v_proj']),
  use_rslora: z.boolean().default(false),
  /** seed of lora_A's initialization (default: training.seed) */
  init_seed: z.number().int().min(0).optional(),
});

const TrainingSpec = z
  .strictObject({
    epochs: z.number().positive().optional(),
    max_steps: z.number().int().min(1).optional(),
    micro_batch: z.number().int().min(1).default(4),
    grad_accum: z.number().int().min(1).default(1),
    max_seq_len: z.number().int().min(2).default(512),
    packing: z.boolean().default(true),
    lr: z.number().positive().default(2e-4),
    schedule: z.enum(['constant', 'linear', 'cosine']).default('cosine'),
    warmup_steps: z.number().int().min(0).default(0),
    /** final learning rate as a fraction of lr (linear / cosine) */
    min_lr_ratio: z.number().min(0).max(1).default(0),
    weight_decay: z.number().min(0).default(0),
    beta1: z.number().min(0).lt(1).default(0.9),
    beta2: z.number().min(0).lt(1).default(0.999),
    eps: z.number().positive().default(1e-8),
    /** 0: no clipping */
    max_grad_norm: z.number().min(0).default(1),
    seed: z.number().int().min(0).default(42),
    /** consecutive non-finite steps (skipped) before the run fails */
    max_nonfinite_steps: z.number().int().min(1).default(3),
    /** recompute activations in the backward (less memory, slower) */
    activation_checkpointing: z.boolean().default(false),
  })
  .refine((t) => t.epochs !== undefined || t.max_steps !== undefined, { message: 'give epochs or max_steps', path: ['epochs'] });

const EvalSpec = z.strictObject({
  /** held-out eval every N optimizer steps (0: only at the start and the end) */
  every_steps: z.number().int().min(0).default(50),
  at_start: z.boolean().default(true),
  /** stop when held-out loss has not improved by min_delta for `patience` evals (0: never) */
  early_stopping_patience: z.number().int().min(0).default(0),
  early_stopping_min_delta: z.number().min(0).default(0),
  micro_batch: z.number().int().min(1).optional(),
  /** end-of-run metrics (token accuracy, generations, base vs tuned, gate; docs/EVALUATION.md): eval.json and report.html */
  metrics: EvalMetricsSpecSchema.optional(),
});

const CheckpointSpec = z.strictObject({
  /** 0: only at the end (and on cancel) */
  every_steps: z.number().int().min(0).default(100),
  keep_last: z.number().int().min(1).default(3),
});

const OutputSpec = z.strictObject({
  /** the folder holding runs (one directory per run) */
  runs_dir: z.string().min(1).default('runs'),
  /** the run's directory name (default: <dataset-ish name>-<timestamp>) */
  name: z.string().regex(/^[A-Za-z0-9._-]+$/, 'letters, digits, . _ - only').optional(),
});

export const RunConfigSchema = z.strictObject({
  name: z.string().min(1).default('run'),
  model: ModelSpec,
  dataset: DatasetSpec,
  lora: LoraSpec.default(LoraSpec.parse({})),
  training: TrainingSpec,
  eval: EvalSpec.default(EvalSpec.parse({})),
  checkpoint: CheckpointSpec.default(CheckpointSpec.parse({})),
  output: OutputSpec.default(OutputSpec.parse({})),
});
export type RunConfigInput = z.input<typeof RunConfigSchema>;
export type RunConfig = z.output<typeof RunConfigSchema>;

function pathOf(p: readonly PropertyKey[]): string {
  let s = '';
  for (const k of p) s += typeof k === 'number' ? `[${k}]` : s ? `.${String(k)}` : String(k);
  return s || '(root)';
}

interface Issue {
  code: string;
  path: PropertyKey[];
  message: string;
  errors?: Issue[][];
}

/** A union's error becomes the errors of its closest branch (fewest issues, preferring ones past the union's own keys). */
function flattenIssues(issues: Issue[], prefix: PropertyKey[]): { path: PropertyKey[]; message: string }[] {
  const out: { path: PropertyKey[]; message: string }[] = [];
  for (const i of issues) {
    const path = [...prefix, ...i.path];
    if (i.code === 'invalid_union' && i.errors?.length) {
      const score = (b: Issue[]) => b.length - 0.5 * Math.max(0, ...b.map((x) => x.path.length));
      const best = [...i.errors].sort((a, b) => score(a) - score(b))[0];
      if (best.length && best.every((x) => x.path.length > 0 || x.code === 'invalid_union')) {
        out.push(...flattenIssues(best, path));
        continue;
      }
    }
    out.push({ path, message: i.message });
  }
  return out;
}

/** Validates and defaults a run config; relative paths resolve against baseDir. Throws RunConfigError naming each field path. */
export function parseRunConfig(input: unknown, opts: { file?: string; baseDir?: string } = {}): RunConfig {
  const r = RunConfigSchema.safeParse(input);
  if (!r.success) {
    const issues = flattenIssues(r.error.issues as Issue[], []).map((i) => ({ path: pathOf(i.path), message: i.message }));
    const where = opts.file ? `${opts.file}: ` : '';
    throw new RunConfigError(`invalid run config:\n${issues.map((i) => `  ${where}${i.path}: ${i.message}`).join('\n')}`, opts.file, issues);
  }
  const c = r.data;
  const base = opts.baseDir ?? (opts.file ? dirname(resolve(opts.file)) : process.cwd());
  const abs = (p: string) => (isAbsolute(p) ? p : resolve(base, p));
  c.model.dir = abs(c.model.dir);
  if ('store' in c.dataset) {
    c.dataset.store = abs(c.dataset.store);
    if ('build' in c.dataset) c.dataset.build = abs(c.dataset.build);
  }
  c.output.runs_dir = abs(c.output.runs_dir);
  return c;
}

/** Reads and validates a run config file (JSON). */
export function loadRunConfigFile(file: string): RunConfig {
  if (!existsSync(file)) throw new RunConfigError(`${file}: no such file`, file);
  let o: unknown;
  try {
    o = JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    throw new RunConfigError(`${file}: not valid JSON: ${(e as Error).message}`, file);
  }
  return parseRunConfig(o, { file });
}
