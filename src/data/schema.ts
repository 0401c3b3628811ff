// The shapes of the data pipeline: one zod schema per record or config shape, types via z.infer.
// A record of the dataset is one chat example in the canonical `messages` form plus its category.
import { z } from 'zod';

/** The four kinds of example the seed strategy asks for. */
export const CATEGORIES = ['pattern_recognition', 'system_interaction', 'code_understanding', 'memory_context'] as const;
export const Category = z.enum(CATEGORIES);
export type Category = z.infer<typeof Category>;

export const Role = z.enum(['system', 'user', 'assistant']);
export type Role = z.infer<typeof Role>;

export const Message = z.strictObject({
  role: Role,
  content: z.string().min(1, 'message content is empty'),
});
export type Message = z.infer<typeof Message>;

export const Metadata = z.looseObject({
  rating: z.number().min(1).max(5).optional(),
  createdAt: z.string().optional(),
  tags: z.array(z.string()).optional(),
  /** true when the category was inferred by the keyword classifier, not given by the source. */
  categoryInferred: z.boolean().optional(),
  /** set by the build when a curation decision approved or corrected the record. */
  curation: z.enum(['approved', 'corrected']).optional(),
});
export type Metadata = z.infer<typeof Metadata>;

/**
 * One chat example. Turns: an optional leading system message, then user and assistant alternating,
 * starting with user and ending with assistant (the assistant turns are what training learns).
 */
export const Example = z
  .strictObject({
    messages: z.array(Message).min(2, 'an example needs at least a user and an assistant message'),
    category: Category,
    metadata: Metadata.default({}),
  })
  .superRefine((ex, ctx) => {
    const start = ex.messages[0]?.role === 'system' ? 1 : 0;
    for (let i = start; i < ex.messages.length; i++) {
      const want = (i - start) % 2 === 0 ? 'user' : 'assistant';
      if (ex.messages[i].role !== want) {
        ctx.addIssue({ code: 'custom', path: ['messages', i, 'role'], message: `expected '${want}' (turns alternate user/assistant after an optional system message), got '${ex.messages[i].role}'` });
        return;
      }
    }
    if (ex.messages.length - start < 2 || ex.messages[ex.messages.length - 1].role !== 'assistant') {
      ctx.addIssue({ code: 'custom', path: ['messages', ex.messages.length - 1, 'role'], message: 'the last message must be an assistant turn' });
    }
  });
export type Example = z.infer<typeof Example>;

/** Where a record came from: the source's name, the file relative to the config, 1-based line (0: whole file). */
export const Origin = z.strictObject({ source: z.string(), file: z.string(), line: z.number().int().min(0) });
export type Origin = z.infer<typeof Origin>;

/** A record as the dataset stores it (train.jsonl / heldout.jsonl). */
export const DatasetRecord = z.strictObject({
  hash: z.string().regex(/^[0-9a-f]{64}$/),
  category: Category,
  messages: z.array(Message),
  metadata: Metadata,
  origin: Origin,
  tokens: z.number().int().min(0),
});
export type DatasetRecord = z.infer<typeof DatasetRecord>;

export const REJECT_REASONS = [
  'parse_error',
  'unknown_format',
  'schema',
  'too_short',
  'too_long',
  'too_many_tokens',
  'exact_duplicate',
  'near_duplicate',
  'curation_rejected',
] as const;
export const RejectReason = z.enum(REJECT_REASONS);
export type RejectReason = z.infer<typeof RejectReason>;

/** One line of rejects.jsonl: why, where, and the record itself (nothing is silently dropped). */
export const Reject = z.strictObject({
  reason: RejectReason,
  message: z.string(),
  origin: Origin,
  path: z.string().optional(),
  duplicateOf: z.string().optional(),
  record: z.unknown(),
});
export type Reject = z.infer<typeof Reject>;

// ---------------------------------------------------------------------------------------------------
// Pipeline configuration (a JSON file; relative paths are relative to that file)

const SourceBase = {
  /** unique within a config; defaults to `<kind>:<path>` */
  name: z.string().min(1).optional(),
  /** records of this source wait for a curation decision before they enter a build */
  review: z.boolean().default(false),
};

export const InteractionsSource = z.strictObject({
  ...SourceBase,
  kind: z.literal('interactions'),
  /** a .jsonl file or a folder of them */
  path: z.string().min(1),
  /** auto: detect per line among starweave (role/content messages), openai, sharegpt, alpaca */
  format: z.enum(['auto', 'starweave', 'openai', 'sharegpt', 'alpaca']).default('auto'),
  /** category for records that carry none (otherwise inferred from keywords) */
  category: Category.optional(),
});

export const DocumentsSource = z.strictObject({
  ...SourceBase,
  kind: z.literal('documents'),
  /** a .md/.markdown/.txt file or a folder of them */
  path: z.string().min(1),
  category: Category.optional(),
  /** passage-grounded Q&A, continued-pretraining text, or both */
  produce: z.array(z.enum(['qa', 'continuation'])).min(1).default(['qa', 'continuation']),
  minPassageChars: z.number().int().min(1).default(200),
  maxPassageChars: z.number().int().min(100).default(4000),
});

export const ElixirSource = z.strictObject({
  ...SourceBase,
  kind: z.literal('elixir'),
  /** a .ex/.exs file or a folder of them */
  path: z.string().min(1),
});

export const GeneratedSource = z.strictObject({
  ...SourceBase,
  kind: z.literal('generated'),
  seed: z.number().int().default(1),
  /** examples per category */
  perCategory: z.number().int().min(0).max(100_000).default(25),
  categories: z.array(Category).min(1).default([...CATEGORIES]),
});

export const CollectionLogSource = z.strictObject({
  ...SourceBase,
  kind: z.literal('collection-log'),
  /** the log's folder (segments *.log) */
  path: z.string().min(1),
  review: z.boolean().default(true),
});

export const SourceConfig = z.discriminatedUnion('kind', [InteractionsSource, DocumentsSource, ElixirSource, GeneratedSource, CollectionLogSource]);
export type SourceConfig = z.infer<typeof SourceConfig>;

export const CleanConfig = z.strictObject({
  normalization: z.enum(['NFC', 'NFKC']).default('NFC'),
  scrub: z.boolean().default(true),
  /** bounds on the whole example (all messages), in characters */
  minChars: z.number().int().min(0).default(20),
  maxChars: z.number().int().min(1).default(64_000),
  /** bound on one message, in characters */
  maxMessageChars: z.number().int().min(1).default(32_000),
});

export const DedupConfig = z.strictObject({
  exact: z.boolean().default(true),
  near: z.boolean().default(true),
  /** estimated Jaccard similarity of word 3-gram sets at or above which a record is a near-duplicate */
  threshold: z.number().gt(0).max(1).default(0.8),
  numPerm: z.number().int().min(16).max(512).default(128),
  bands: z.number().int().min(1).default(16),
  shingleWords: z.number().int().min(1).max(8).default(3),
});

export const SplitConfig = z.strictObject({
  seed: z.number().int().default(42),
  heldOutFraction: z.number().min(0).max(0.9).default(0.1),
});

export const TokensConfig = z.strictObject({
  /** examples whose rendered length exceeds this are rejected (too_many_tokens) */
  maxTokens: z.number().int().min(1).default(4096),
  /**
   * a Hugging Face model directory (relative to the config) whose tokenizer.json + chat template render
   * the examples and count their tokens; the built-in approximation when absent
   */
  tokenizer: z.string().min(1).optional(),
});

export const CurationConfig = z.strictObject({
  /** the curation decisions file (JSONL), relative to the config */
  file: z.string().min(1).optional(),
});

export const PipelineConfig = z.strictObject({
  name: z.string().regex(/^[A-Za-z0-9._-]+$/, 'letters, digits, dot, dash, underscore').default('dataset'),
  sources: z.array(SourceConfig).min(1, 'a dataset needs at least one source'),
  clean: CleanConfig.default(CleanConfig.parse({})),
  dedup: DedupConfig.default(DedupConfig.parse({})),
  split: SplitConfig.default(SplitConfig.parse({})),
  tokens: TokensConfig.default(TokensConfig.parse({})),
  curation: CurationConfig.default({}),
  /** strict: any input reject (parse, schema, bounds) fails the build and writes no version */
  strict: z.boolean().default(false),
});
export type PipelineConfig = z.infer<typeof PipelineConfig>;
export type PipelineConfigInput = z.input<typeof PipelineConfig>;
