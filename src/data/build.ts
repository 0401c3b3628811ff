// The pipeline: sources -> clean -> validate -> tokens -> curation -> dedup -> split -> version.
// Streaming: records pass one at a time and go to a spool file; what stays in memory per kept record is
// a fixed-size summary (hash, category, split key, token count, the dedup index's entry), never the text.
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, copyFileSync, mkdtempSync, openSync, readSync, closeSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { inferCategory } from './categorize.js';
import { cleanMessages } from './clean.js';
import { emptyCuration, loadCuration, type Curation } from './curation.js';
import { DedupIndex } from './dedup.js';
import { DataError, describeZodError, formatWhere, parseOrThrow } from './errors.js';
import { canonicalJson, exampleCanonicalJson, messagesContentJson, sha256 } from './hash.js';
import { fsyncDir, LineWriter, writeFileAtomic } from './io.js';
import { createReader, type Candidate, type InputHash } from './readers/index.js';
import { addTokens, emptyReport, reportMarkdown, type BuildReport, type Stage } from './report.js';
import { CATEGORIES, Example, PipelineConfig, type Category, type DatasetRecord, type Origin, type PipelineConfigInput, type Reject, type RejectReason } from './schema.js';
import { assignSplits, HELDOUT, splitKey } from './split.js';
import { appendRef, Manifest, MANIFEST_FORMAT, readRef, versionDir } from './store.js';
import { approximateRenderer, type ChatRenderer } from './tokens.js';

export interface BuildProgress {
  stage: 'read' | 'split' | 'write' | 'done';
  records: number;
  source?: string;
}

export interface BuildOptions {
  /** the pipeline config (parsed and defaulted here) */
  config: PipelineConfigInput | PipelineConfig;
  /** the folder relative paths in the config are resolved against (the config file's folder) */
  baseDir: string;
  /** the dataset store folder (not needed with dryRun) */
  store?: string;
  /** validate only: run every stage but write no version */
  dryRun?: boolean;
  /** also copy the rejects here (useful with dryRun or when strict mode fails the build) */
  rejectsFile?: string;
  /** the model's tokenizer + chat template; the built-in approximation when absent */
  renderer?: ChatRenderer;
  onProgress?: (p: BuildProgress) => void;
  /** the clock (tests pin it) */
  now?: () => Date;
}

export interface BuildResult {
  report: BuildReport;
  versionId?: string;
  /** false when the store already held this exact content (the same version id) or with dryRun */
  created: boolean;
  dir?: string;
  manifest?: Manifest;
  /** the first rejects (up to 50 input rejects and 10 others), with where they came from, for a terminal */
  firstRejects: Reject[];
}

const INPUT_REJECTS: readonly RejectReason[] = ['parse_error', 'unknown_format', 'schema', 'too_short', 'too_long', 'too_many_tokens'];

/** Thrown by a strict build with input rejects; carries the report and the first rejects. */
export class StrictModeError extends DataError {
  constructor(
    readonly report: BuildReport,
    readonly firstRejects: Reject[],
  ) {
    const n = INPUT_REJECTS.reduce((s, r) => s + report.rejects[r], 0);
    const lines = firstRejects
      .filter((r) => INPUT_REJECTS.includes(r.reason))
      .slice(0, 10)
      .map((r) => `  ${formatWhere({ file: r.origin.file, line: r.origin.line, path: r.path })}: ${r.reason}: ${r.message}`);
    super(`strict mode: ${n} input record(s) rejected, no version written:\n${lines.join('\n')}`);
    this.name = 'StrictModeError';
  }
}

let projectCache: { name: string; version: string } | undefined;
/** This package's name and version, for the lineage. */
export function projectInfo(): { name: string; version: string } {
  if (projectCache) return projectCache;
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    const p = join(dir, 'package.json');
    if (existsSync(p)) {
      const o = JSON.parse(readFileSync(p, 'utf8')) as { name?: string; version?: string };
      if (o.name === 'starweave-finetune') return (projectCache = { name: o.name, version: o.version ?? '0.0.0' });
    }
    dir = dirname(dir);
  }
  return (projectCache = { name: 'starweave-finetune', version: 'unknown' });
}

/** Parses a config (with defaults); errors name the field path. */
export function parseConfig(config: unknown, file = '<config>'): PipelineConfig {
  return parseOrThrow(PipelineConfig, config, file);
}

/** Reads a JSON config file; returns it parsed with the folder its relative paths start from. */
export function loadConfigFile(file: string): { config: PipelineConfig; baseDir: string } {
  let o: unknown;
  try {
    o = JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    throw new DataError(`cannot read the config: ${(e as Error).message}`, { file });
  }
  return { config: parseConfig(o, file), baseDir: dirname(resolve(file)) };
}

interface Kept {
  hash: string[];
  category: number[];
  tokens: number[];
  source: number[];
}

/** One pass over the sources through clean, validate, tokens and curation; `keep` sees each survivor. */
export async function processSources(
  cfg: PipelineConfig,
  baseDir: string,
  ctx: {
    renderer: ChatRenderer;
    curation: Curation;
    report: BuildReport;
    reject: (r: Reject) => void;
    /** a record of a review source with no decision yet */
    pending?: (rec: DatasetRecord) => void;
    /** contentJson: JSON.stringify of each message's content (computed once for the hash; recordJson reuses it) */
    keep: (rec: DatasetRecord, sourceIndex: number, contentJson: string[]) => void;
    inputs: InputHash[][];
    onProgress?: (p: BuildProgress) => void;
  },
): Promise<void> {
  const { report, renderer, curation } = ctx;
  const stage = report.stageMs;
  const clock = () => performance.now();
  for (let si = 0; si < cfg.sources.length; si++) {
    const reader = createReader(cfg.sources[si]);
    const src = (report.bySource[reader.name] ??= { read: 0, kept: 0, rejected: 0, pending: 0 });
    const inputs: InputHash[] = (ctx.inputs[si] = []);
    const reject = (origin: Origin, reason: RejectReason, message: string, raw: unknown, extra: { path?: string; duplicateOf?: string } = {}) => {
      report.rejects[reason]++;
      src.rejected++;
      ctx.reject({ reason, message, origin, ...extra, record: raw });
    };
    let t = clock();
    for await (const cand of reader.read({ baseDir, input: (h) => inputs.push(h) }) as AsyncIterable<Candidate>) {
      let t1 = clock();
      stage.read += t1 - t;
      report.read++;
      src.read++;
      if (report.read % 2000 === 0) ctx.onProgress?.({ stage: 'read', records: report.read, source: reader.name });
      t = t1;
      if (cand.error || !cand.value) {
        const e = cand.error ?? { reason: 'schema' as const, message: 'no record' };
        reject(cand.origin, e.reason, e.message, cand.raw, { path: e.path });
        continue;
      }
      const v = cand.value;
      // clean
      const cleanJson: (string | undefined)[] = [];
      const messages = Array.isArray(v.messages) ? cleanMessages(v.messages as { role: unknown; content: unknown }[], cfg.clean, report.scrubbed, cleanJson) : v.messages;
      t1 = clock();
      stage.clean += t1 - t;
      t = t1;
      // validate
      const metadata: Record<string, unknown> = { ...(v.metadata ?? {}) };
      let category = v.category;
      if (category === undefined && Array.isArray(messages) && messages.every((m) => typeof m?.content === 'string')) {
        category = inferCategory(messages as { role: string; content: string }[]);
        metadata.categoryInferred = true;
      }
      const parsed = Example.safeParse({ messages, category, metadata });
      if (!parsed.success) {
        const d = describeZodError(parsed.error);
        reject(cand.origin, 'schema', d.message, cand.raw, { path: d.path });
        stage.validate += clock() - t;
        t = clock();
        continue;
      }
      let ex: Example = parsed.data;
      const bound = checkBounds(ex, cfg);
      t1 = clock();
      stage.validate += t1 - t;
      t = t1;
      if (bound) {
        reject(cand.origin, bound.reason, bound.message, cand.raw, { path: bound.path });
        continue;
      }
      let contentJson = messagesContentJson(ex.messages, messages as { content?: unknown }[], cleanJson);
      let hash = sha256(exampleCanonicalJson(ex.category, ex.messages, contentJson));
      t1 = clock();
      stage.validate += t1 - t;
      t = t1;
      // curation
      const decision = curation.decisions.get(hash);
      if (decision) {
        if (decision.decision === 'reject') {
          report.curation.rejected++;
          reject(cand.origin, 'curation_rejected', `curation (${curation.file}:${decision.line}): ${decision.reason}`, cand.raw, { duplicateOf: undefined });
          t = clock();
          continue;
        }
        if (decision.decision === 'correct') {
          const fixed = Example.safeParse({ ...decision.record, messages: cleanMessages(decision.record.messages, cfg.clean, report.scrubbed), metadata: { ...ex.metadata, ...(decision.record.metadata ?? {}), curation: 'corrected' } });
          if (!fixed.success) {
            const d = describeZodError(fixed.error);
            reject(cand.origin, 'schema', `the correction at ${curation.file}:${decision.line} is invalid: ${d.message}`, decision.record, { path: d.path });
            t = clock();
            continue;
          }
          ex = fixed.data;
          contentJson = messagesContentJson(ex.messages);
          hash = sha256(exampleCanonicalJson(ex.category, ex.messages, contentJson));
          report.curation.corrected++;
        } else {
          ex.metadata.curation = 'approved';
          report.curation.approved++;
        }
      }
      t1 = clock();
      stage.curate += t1 - t;
      t = t1;
      // tokens
      const tokens = renderer.count(ex.messages);
      t1 = clock();
      stage.tokens += t1 - t;
      t = t1;
      if (tokens > cfg.tokens.maxTokens) {
        reject(cand.origin, 'too_many_tokens', `${tokens} tokens (${renderer.name}) > tokens.maxTokens ${cfg.tokens.maxTokens}`, cand.raw);
        continue;
      }
      if (ex.metadata.categoryInferred) report.categoryInferred++;
      const rec: DatasetRecord = { hash, category: ex.category, messages: ex.messages, metadata: ex.metadata, origin: cand.origin, tokens };
      if (!decision && reader.review) {
        report.curation.pending++;
        src.pending++;
        ctx.pending?.(rec);
        t = clock();
        continue;
      }
      ctx.keep(rec, si, contentJson);
      t = clock();
    }
  }
}

function checkBounds(ex: Example, cfg: PipelineConfig): { reason: RejectReason; message: string; path?: string } | undefined {
  let total = 0;
  for (let i = 0; i < ex.messages.length; i++) {
    const n = ex.messages[i].content.length;
    total += n;
    if (n > cfg.clean.maxMessageChars) return { reason: 'too_long', message: `${n} characters > clean.maxMessageChars ${cfg.clean.maxMessageChars}`, path: `messages[${i}].content` };
  }
  if (total > cfg.clean.maxChars) return { reason: 'too_long', message: `${total} characters > clean.maxChars ${cfg.clean.maxChars}` };
  if (total < cfg.clean.minChars) return { reason: 'too_short', message: `${total} characters < clean.minChars ${cfg.clean.minChars}` };
  return undefined;
}

/** Builds a dataset version from the config's sources into the store (or only validates, with dryRun). */
export async function buildDataset(opts: BuildOptions): Promise<BuildResult> {
  const t0 = performance.now();
  const cfg = parseConfig(opts.config);
  const renderer = opts.renderer ?? approximateRenderer;
  const report = emptyReport(cfg.name, renderer, cfg.dedup.threshold);
  const curation = cfg.curation.file ? loadCuration(resolve(opts.baseDir, cfg.curation.file), cfg.curation.file) : emptyCuration();
  if (!opts.dryRun && !opts.store) throw new DataError('a build needs a store folder (or dryRun)');
  const store = opts.store ? resolve(opts.store) : undefined;
  let staging: string;
  if (store && !opts.dryRun) {
    mkdirSync(join(store, 'tmp'), { recursive: true });
    staging = mkdtempSync(join(store, 'tmp', 'build-'));
  } else staging = mkdtempSync(join(tmpdir(), 'starweave-data-'));
  try {
    // the spool (kept records in arrival order) is scratch: read back into the split files, then deleted
    const spool = new LineWriter(join(staging, 'spool.jsonl'), 1 << 20, undefined, false);
    const rejects = new LineWriter(join(staging, 'rejects.jsonl'));
    const firstRejects: Reject[] = [];
    const kept: Kept = { hash: [], category: [], tokens: [], source: [] };
    const dedup = new DedupIndex({ ...cfg.dedup });
    const inputs: InputHash[][] = [];
    const catIndex = new Map<Category, number>(CATEGORIES.map((c, i) => [c, i]));
    const sourceNames: string[] = [];
    const firstCount = { input: 0, other: 0 };
    /** `line`: JSON.stringify(r) when the caller has it cheaper */
    const reject = (r: Reject, line?: string) => {
      rejects.write(line ?? JSON.stringify(r));
      // the first input rejects (what a person must fix) matter more than a long run of duplicates
      const input = INPUT_REJECTS.includes(r.reason);
      if (input ? firstCount.input < 50 : firstCount.other < 10) {
        firstRejects.push(r);
        if (input) firstCount.input++;
        else firstCount.other++;
      }
    };
    await processSources(cfg, opts.baseDir, {
      renderer,
      curation,
      report,
      reject,
      inputs,
      onProgress: opts.onProgress,
      keep: (rec, si, contentJson) => {
        const t = performance.now();
        const verdict = dedup.checkMessages(rec.messages, kept.hash.length);
        report.stageMs.dedup += performance.now() - t;
        const src = report.bySource[createReaderName(cfg, si, sourceNames)];
        if (verdict.kind !== 'unique') {
          const reason = verdict.kind === 'exact' ? 'exact_duplicate' : 'near_duplicate';
          report.rejects[reason]++;
          report.duplicates[verdict.kind]++;
          src.rejected++;
          const r: Reject = { reason, message: verdict.kind === 'exact' ? 'same text as a record kept earlier' : `estimated Jaccard ${verdict.similarity.toFixed(2)} >= ${cfg.dedup.threshold} with a record kept earlier`, origin: rec.origin, duplicateOf: kept.hash[verdict.of], record: rec };
          // JSON.stringify(r), with the record's JSON built from the contents' JSON already at hand
          reject(r, `{"reason":${JSON.stringify(r.reason)},"message":${JSON.stringify(r.message)},"origin":${JSON.stringify(r.origin)},"duplicateOf":${JSON.stringify(r.duplicateOf)},"record":${recordJson(rec, contentJson)}}`);
          return;
        }
        const tw = performance.now();
        spool.write(recordJson(rec, contentJson));
        report.stageMs.write += performance.now() - tw;
        kept.hash.push(rec.hash);
        kept.category.push(catIndex.get(rec.category)!);
        kept.tokens.push(rec.tokens);
        kept.source.push(si);
        src.kept++;
        addTokens(report, rec.tokens);
      },
    });
    spool.close();
    rejects.close();
    report.kept = kept.hash.length;
    if (opts.rejectsFile) copyFileSync(join(staging, 'rejects.jsonl'), opts.rejectsFile);
    if (cfg.strict && INPUT_REJECTS.some((r) => report.rejects[r] > 0)) throw new StrictModeError(report, firstRejects);

    // split
    opts.onProgress?.({ stage: 'split', records: report.kept });
    let t = performance.now();
    const keys = kept.hash.map((h) => splitKey(h, cfg.split.seed));
    const split = assignSplits(kept.category, keys, cfg.split.heldOutFraction);
    for (let i = 0; i < split.length; i++) {
      const c = CATEGORIES[kept.category[i]];
      if (split[i] === HELDOUT) report.byCategory[c].heldout++;
      else report.byCategory[c].train++;
    }
    report.bySplit.heldout = split.reduce((s, x) => s + x, 0);
    report.bySplit.train = report.kept - report.bySplit.heldout;
    const order = Array.from(kept.hash.keys()).sort((x, y) => (kept.hash[x] < kept.hash[y] ? -1 : kept.hash[x] > kept.hash[y] ? 1 : 0));
    const setHash = createHash('sha256');
    // token counts (and too_many_tokens rejects) depend on the tokenizer: a real one is part of the identity
    if (renderer.exact) setHash.update(`tokenizer\t${renderer.name}\n`);
    for (const i of order) setHash.update(`${kept.hash[i]}\t${split[i] === HELDOUT ? 'heldout' : 'train'}\n`);
    const setDigest = setHash.digest('hex');
    const versionId = setDigest.slice(0, 16);
    report.versionId = versionId;
    report.stageMs.split += performance.now() - t;

    if (opts.dryRun || !store) {
      report.wallMs = performance.now() - t0;
      return { report, created: false, firstRejects };
    }

    // write the version
    opts.onProgress?.({ stage: 'write', records: report.kept });
    t = performance.now();
    const target = versionDir(store, versionId);
    const names = cfg.sources.map((_, si) => createReaderName(cfg, si, sourceNames));
    const now = (opts.now ?? (() => new Date()))().toISOString();
    const parent = readRef(store, cfg.name)?.versions.at(-1)?.id ?? null;
    if (existsSync(target)) {
      report.stageMs.write += performance.now() - t;
      report.wallMs = performance.now() - t0;
      appendRef(store, cfg.name, versionId, now);
      const manifest = parseOrThrow(Manifest, JSON.parse(readFileSync(join(target, 'manifest.json'), 'utf8')), join(target, 'manifest.json'));
      return { report, versionId, created: false, dir: target, manifest, firstRejects };
    }
    const hashes = { train: createHash('sha256'), heldout: createHash('sha256') };
    const writers = { train: new LineWriter(join(staging, 'train.jsonl'), 1 << 20, hashes.train), heldout: new LineWriter(join(staging, 'heldout.jsonl'), 1 << 20, hashes.heldout) };
    const tokens = { train: 0, heldout: 0 };
    // the spool's lines go to their split's file as bytes (no decoding, parsing or serializing again)
    copyLines(join(staging, 'spool.jsonl'), (i, buf, start, end) => {
      const s = split[i] === HELDOUT ? 'heldout' : 'train';
      writers[s].writeBytes(buf, start, end);
      tokens[s] += kept.tokens[i];
    });
    writers.train.close();
    writers.heldout.close();
    rmSync(join(staging, 'spool.jsonl'));
    const index = new LineWriter(join(staging, 'records.tsv'));
    for (const j of order) index.write(`${kept.hash[j]}\t${split[j] === HELDOUT ? 'heldout' : 'train'}\t${CATEGORIES[kept.category[j]]}\t${kept.tokens[j]}\t${names[kept.source[j]]}`);
    index.close();
    report.stageMs.write += performance.now() - t;
    report.wallMs = performance.now() - t0;
    const manifest: Manifest = {
      format: MANIFEST_FORMAT,
      versionId,
      name: cfg.name,
      createdAt: now,
      parent,
      setHash: setDigest,
      records: report.kept,
      splits: {
        train: { file: 'train.jsonl', records: report.bySplit.train, tokens: tokens.train, sha256: hashes.train.digest('hex') },
        heldout: { file: 'heldout.jsonl', records: report.bySplit.heldout, tokens: tokens.heldout, sha256: hashes.heldout.digest('hex') },
      },
      byCategory: report.byCategory,
      files: { index: 'records.tsv', rejects: 'rejects.jsonl', report: 'report.json', reportMarkdown: 'report.md' },
      lineage: {
        sources: cfg.sources.map((s, si) => ({ name: names[si], kind: s.kind, review: s.review, inputs: inputs[si] ?? [] })),
        curation: curation.file ? { file: curation.file, sha256: curation.sha256 ?? null, decisions: curation.decisions.size } : null,
        config: cfg,
        configSha256: sha256(canonicalJson(cfg)),
        tokenizer: { name: renderer.name, exact: renderer.exact },
        project: projectInfo(),
      },
    };
    writeFileAtomic(join(staging, 'report.json'), `${JSON.stringify(report, null, 2)}\n`);
    writeFileAtomic(join(staging, 'report.md'), reportMarkdown(report));
    writeFileAtomic(join(staging, 'manifest.json'), `${JSON.stringify(manifest, null, 2)}\n`);
    mkdirSync(join(store, 'versions'), { recursive: true });
    if (commitVersion(staging, target) === 'exists') {
      appendRef(store, cfg.name, versionId, now);
      const existing = parseOrThrow(Manifest, JSON.parse(readFileSync(join(target, 'manifest.json'), 'utf8')), join(target, 'manifest.json'));
      return { report, versionId, created: false, dir: target, manifest: existing, firstRejects };
    }
    fsyncDir(join(store, 'versions'));
    appendRef(store, cfg.name, versionId, now);
    opts.onProgress?.({ stage: 'done', records: report.kept });
    return { report, versionId, created: true, dir: target, manifest, firstRejects };
  } finally {
    if (existsSync(staging)) rmSync(staging, { recursive: true, force: true });
  }
}

/**
 * Renames a staged version into place. 'exists' when another build of the same records (content-addressed:
 * the same version) got there first, as when the workers of a distributed run build one dataset on a
 * shared store at once: that version stands, the staging folder is left to the caller's cleanup.
 */
export function commitVersion(staging: string, target: string): 'created' | 'exists' {
  try {
    renameSync(staging, target);
    return 'created';
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if ((code === 'ENOTEMPTY' || code === 'EEXIST') && existsSync(join(target, 'manifest.json'))) return 'exists';
    throw e;
  }
}

/**
 * JSON.stringify(rec) for a record built by processSources (keys hash, category, messages of { role,
 * content }, metadata, origin, tokens, in that order), reusing the contents' JSON computed for the hash.
 * The tests check it against JSON.stringify.
 */
export function recordJson(rec: DatasetRecord, contentJson: readonly string[]): string {
  let s = `{"hash":${JSON.stringify(rec.hash)},"category":${JSON.stringify(rec.category)},"messages":[`;
  for (let i = 0; i < rec.messages.length; i++) s += `${i ? ',' : ''}{"role":${JSON.stringify(rec.messages[i].role)},"content":${contentJson[i]}}`;
  return `${s}],"metadata":${JSON.stringify(rec.metadata)},"origin":${JSON.stringify(rec.origin)},"tokens":${JSON.stringify(rec.tokens)}}`;
}

/** Calls `line(i, buf, start, end)` for the i-th line of a file (the bytes start..end include its newline). */
function copyLines(file: string, line: (i: number, buf: Buffer, start: number, end: number) => void): void {
  const fd = openSync(file, 'r');
  try {
    const chunk = Buffer.allocUnsafe(1 << 20);
    let carry: Buffer | undefined;
    let i = 0;
    for (;;) {
      const n = readSync(fd, chunk, 0, chunk.length, null);
      if (n === 0) break;
      const data = carry ? Buffer.concat([carry, chunk.subarray(0, n)]) : chunk.subarray(0, n);
      let pos = 0;
      for (let nl = data.indexOf(10, pos); nl >= 0; nl = data.indexOf(10, pos)) {
        line(i++, data, pos, nl + 1);
        pos = nl + 1;
      }
      carry = pos < data.length ? Buffer.from(data.subarray(pos)) : undefined;
    }
    if (carry) throw new DataError('the spool file ends inside a line', { file });
  } finally {
    closeSync(fd);
  }
}

function createReaderName(cfg: PipelineConfig, si: number, cache: string[]): string {
  return (cache[si] ??= createReader(cfg.sources[si]).name);
}
