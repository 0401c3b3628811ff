// The run config: one JSON or YAML file (or object) describing a fine-tuning run, validated with zod;
// every error names its field path (and the file, and for YAML the line). Relative paths resolve against
// the config file's folder.
import { existsSync, readFileSync } from 'node:fs';
import { dirname, extname, isAbsolute, resolve } from 'node:path';
import { isNode, LineCounter, parseDocument } from 'yaml';
import { z } from 'zod';
import { LORA_TARGET_MODULES } from '../model/native-model.js';
import type { LoraTargetModule } from '../../bindings/types.js';
import { EvalMetricsSpecSchema } from '../eval/config.js';

export interface RunConfigIssue {
  path: string;
  message: string;
  /** the 1-based line (and column) of the field in a YAML file, where it exists there */
  line?: number;
  col?: number;
}

export class RunConfigError extends Error {
  constructor(
    message: string,
    readonly file?: string,
    readonly issues: RunConfigIssue[] = [],
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
    /**
     * attention's matrix products: 'bf16' (bf16 operands, f32 accumulation and softmax, as flash-attention
     * and PyTorch's bf16 models compute; ~1.5x faster attention on CPUs with AVX512-BF16), 'f32', or
     * 'auto' (bf16 when the base weights are bf16, like torch autocast; f32 otherwise)
     */
    attention_precision: z.enum(['auto', 'f32', 'bf16']).default('auto'),
    /**
     * which tokens the loss learns: 'assistant' (the assistant turns and their end-of-turn token; TRL's
     * assistant_only_loss, axolotl's train_on_inputs: false) or 'all' (every token after the first;
     * axolotl's train_on_inputs: true). Held-out loss follows the same choice.
     */
    loss_on: z.enum(['assistant', 'all']).default('assistant'),
    /**
     * the training mix: examples of a category appear this many times per epoch (1: as in the dataset;
     * 2.5: twice, and a third time with probability 0.5, seeded per epoch; 0: left out). Categories not
     * named keep 1. The pipeline's remediation raises the failing categories' weights.
     */
    category_weights: z.record(z.string().min(1), z.number().min(0).max(100)).default({}),
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

/** Where a field path sits in the source file (YAML), for error messages: the closest existing node. */
export type LocateField = (path: PropertyKey[]) => { line: number; col: number } | undefined;

/** Validates and defaults a run config; relative paths resolve against baseDir. Throws RunConfigError naming each field path. */
export function parseRunConfig(input: unknown, opts: { file?: string; baseDir?: string; locate?: LocateField } = {}): RunConfig {
  const r = RunConfigSchema.safeParse(input);
  if (!r.success) {
    const issues: RunConfigIssue[] = flattenIssues(r.error.issues as Issue[], []).map((i) => ({ path: pathOf(i.path), message: i.message, ...opts.locate?.(i.path) }));
    const where = (i: RunConfigIssue) => (opts.file ? `${opts.file}${i.line ? `:${i.line}` : ''}: ` : '');
    throw new RunConfigError(`invalid run config:\n${issues.map((i) => `  ${where(i)}${i.path}: ${i.message}`).join('\n')}`, opts.file, issues);
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

/** True for a .yaml / .yml file name. */
export const isYamlFile = (file: string) => /^\.ya?ml$/i.test(extname(file));

/**
 * Reads a JSON or YAML config file (by extension: .yaml / .yml are YAML, anything else JSON) into a plain
 * object, and a locator from field paths to YAML lines. Syntax errors name the file (and line).
 */
export function readConfigObject(file: string): { value: unknown; locate?: LocateField } {
  if (!existsSync(file)) throw new RunConfigError(`${file}: no such file`, file);
  const text = readFileSync(file, 'utf8');
  if (!isYamlFile(file)) {
    try {
      return { value: JSON.parse(text) };
    } catch (e) {
      throw new RunConfigError(`${file}: not valid JSON: ${(e as Error).message}`, file);
    }
  }
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false, uniqueKeys: true });
  if (doc.errors.length) {
    const e = doc.errors[0];
    const pos = lines.linePos(e.pos[0]);
    throw new RunConfigError(`${file}:${pos.line}:${pos.col}: not valid YAML: ${e.message.split('\n')[0]}`, file, [{ path: '(root)', message: e.message, line: pos.line, col: pos.col }]);
  }
  const locate: LocateField = (path) => {
    // the deepest node on the path that exists (a missing field is reported at its parent)
    for (let n = path.length; n >= 0; n--) {
      const node = n === 0 ? doc.contents : doc.getIn(path.slice(0, n) as unknown[], true);
      if (isNode(node) && node.range) return lines.linePos(node.range[0]);
    }
    return undefined;
  };
  return { value: doc.toJS({ maxAliasCount: 100 }), locate };
}

/** Reads and validates a run config file (JSON, or YAML for .yaml / .yml). */
export function loadRunConfigFile(file: string): RunConfig {
  const { value, locate } = readConfigObject(file);
  return parseRunConfig(value, { file, locate });
}
