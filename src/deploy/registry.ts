// The model registry: a directory store of served artifacts (PEFT adapters, merged Hugging Face models,
// GGUF / ONNX exports), each a content-hashed version with its lineage (run, dataset version, base model,
// metrics), tags, and channels (`production`, `canary`, any name) whose promotions stack so that
// rollback(channel) goes back one version in one call.
//
//   STORE/index.json        versions, tags, channels: replaced atomically (temp, fsync, rename)
//   STORE/events.jsonl      the audit log: one JSON line per change
//   STORE/versions/ID/      the artifact's files (copied or hard-linked), read-only by convention
//   STORE/versions/ID/tests the integration-test results of the version (integration.ts)
//   STORE/registry.lock     held by a writer around each read-modify-write (registry-lock.ts)
//
// Files are copied into a staging folder and hashed before the lock is taken, so the lock is held for
// milliseconds even for a multi-GB merged model.
import { appendFileSync, copyFileSync, existsSync, linkSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { basename, dirname, join, relative, resolve, sep } from 'node:path';
import { z } from 'zod';
import { writeFileAtomicSync } from '../model/atomic.js';
import { sha256 } from '../data/hash.js';
import { readEvalReport } from '../eval/run-eval.js';
import { summarizeRun } from '../train/runs.js';
import { withLock } from './registry-lock.js';
import { EXPORT_MANIFEST, sha256File } from './manifest.js';
import type { LockOptions } from './registry-lock.js';

export const REGISTRY_FORMAT = 'starweave-registry/1';
export const ARTIFACT_KINDS = ['peft-adapter', 'merged-model', 'gguf', 'onnx'] as const;
export type ArtifactKind = (typeof ARTIFACT_KINDS)[number];

export class RegistryError extends Error {
  constructor(
    message: string,
    readonly code: 'not_found' | 'invalid' | 'refused' | 'conflict' = 'invalid',
  ) {
    super(message);
    this.name = 'RegistryError';
  }
}

const FileEntry = z.object({ path: z.string(), size: z.number().int().nonnegative(), sha256: z.string() });
export type FileEntry = z.infer<typeof FileEntry>;

const BaseModelRef = z.object({
  dir: z.string(),
  name: z.string(),
  /** content hash of the base model's files (see contentHash) */
  hash: z.string(),
  /** its files' names and sizes: a cheap check that the base is still the one registered */
  files: z.array(z.object({ path: z.string(), size: z.number().int().nonnegative() })),
});
export type BaseModelRef = z.infer<typeof BaseModelRef>;

const Metric = z.union([z.number(), z.string(), z.boolean(), z.null()]);

export const Lineage = z.object({
  run: z.object({ id: z.string(), dir: z.string(), status: z.string().nullable() }).nullable(),
  datasetVersion: z.string().nullable(),
  base: BaseModelRef.nullable(),
  metrics: z.record(z.string(), Metric),
});
export type Lineage = z.infer<typeof Lineage>;

const TestSummary = z.object({ at: z.string(), suite: z.string(), passed: z.boolean(), total: z.number().int(), failed: z.number().int(), file: z.string() });
export type TestSummary = z.infer<typeof TestSummary>;

export const VersionRecord = z.object({
  id: z.string(),
  seq: z.number().int().positive(),
  kind: z.enum(ARTIFACT_KINDS),
  /** sha256 over the sorted (path, size, sha256 of the file) list */
  contentHash: z.string(),
  files: z.array(FileEntry),
  bytes: z.number().int().nonnegative(),
  source: z.string(),
  createdAt: z.string(),
  notes: z.string(),
  lineage: Lineage,
  /** what the exporter's export.json says (format, precision), when the artifact has one */
  export: z.object({ format: z.string(), precision: z.string().nullable() }).nullable().default(null),
  tests: z.array(TestSummary),
});
export type VersionRecord = z.infer<typeof VersionRecord>;

const HistoryEntry = z.object({
  at: z.string(),
  action: z.enum(['promote', 'rollback']),
  /** the channel's version after the change (null: the channel is empty) */
  version: z.string().nullable(),
  previous: z.string().nullable(),
  reason: z.string().optional(),
});
export type HistoryEntry = z.infer<typeof HistoryEntry>;

const Channel = z.object({
  /** promotions in force, oldest first; the last is the version served (rollback pops it) */
  stack: z.array(z.string()),
  history: z.array(HistoryEntry),
});
export type Channel = z.infer<typeof Channel>;

export const RegistryIndex = z.object({
  format: z.literal(REGISTRY_FORMAT),
  nextSeq: z.number().int().positive(),
  versions: z.record(z.string(), VersionRecord),
  tags: z.record(z.string(), z.string()),
  channels: z.record(z.string(), Channel),
});
export type RegistryIndex = z.infer<typeof RegistryIndex>;

const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
const nameSchema = (what: string) => z.string().regex(NAME, `${what} must be 1-64 characters of letters, digits, '.', '_', '-' (starting with a letter or digit)`);

/** Parameters of register (the port validates its requests with this schema). */
export const RegisterParams = z.strictObject({
  /** an artifact directory, or a run directory (its adapter/ is registered and the run is the lineage) */
  source: z.string().min(1),
  /** the training run directory (lineage: id, dataset version, metrics, base model) */
  run: z.string().min(1).optional(),
  /** the base model directory a PEFT adapter applies to (default: the run's model.dir, else adapter_config.json's base_model_name_or_path) */
  base: z.string().min(1).optional(),
  datasetVersion: z.string().min(1).optional(),
  notes: z.string().default(''),
  tags: z.array(nameSchema('a tag')).default([]),
  /** 'copy' (default) or 'hardlink' (falls back to a copy across filesystems) */
  link: z.enum(['copy', 'hardlink']).default('copy'),
  /** extra metrics merged over the run's */
  metrics: z.record(z.string(), Metric).optional(),
});
export type RegisterParams = z.input<typeof RegisterParams>;

export const PromoteParams = z.strictObject({
  version: z.string().min(1),
  channel: nameSchema('a channel name'),
  reason: z.string().optional(),
  /** promote even when the version's last integration test failed */
  force: z.boolean().default(false),
});
export type PromoteParams = z.input<typeof PromoteParams>;

export interface RegisterResult {
  version: VersionRecord;
  /** true when the same content was already registered (that version is returned, nothing is added) */
  existing: boolean;
}

export interface RegistryEvent {
  at: string;
  type: string;
  [k: string]: unknown;
}

// ---- content hashing

/** Regular files under dir (relative paths, '/'-separated, sorted), leaving out our temp files. */
export function listFiles(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if ((e.isFile() || e.isSymbolicLink()) && !/^\..*\.tmp-/.test(e.name)) out.push(relative(dir, p).split(sep).join('/'));
    }
  };
  walk(dir);
  return out.sort();
}

/** sha256 of each file and the content hash of the set: sha256 of the canonical lines `path\tsize\tsha256`. */
export async function hashFiles(dir: string, paths: readonly string[]): Promise<{ files: FileEntry[]; contentHash: string; bytes: number }> {
  const files: FileEntry[] = [];
  for (const p of paths) {
    const abs = join(dir, p);
    files.push({ path: p, size: statSync(abs).size, sha256: await sha256File(abs) });
  }
  const contentHash = sha256(files.map((f) => `${f.path}\t${f.size}\t${f.sha256}\n`).join(''));
  return { files, contentHash, bytes: files.reduce((s, f) => s + f.size, 0) };
}

// ---- artifact kinds

const MODEL_FILE = /^(config\.json|generation_config\.json|.*\.safetensors|model\.safetensors\.index\.json|tokenizer\.json|tokenizer_config\.json|special_tokens_map\.json|tokenizer\.model|vocab\.json|merges\.txt)$/;

/** What kind of artifact a directory holds, or an error saying what each kind needs. */
export function detectKind(dir: string): ArtifactKind {
  if (!existsSync(dir) || !statSync(dir).isDirectory()) throw new RegistryError(`${dir}: not a directory`, 'not_found');
  const files = listFiles(dir);
  const has = (f: string) => files.includes(f);
  // an export.json (written by the exporters) may sit beside any kind: the files decide
  if (files.some((f) => f.endsWith('.gguf'))) return 'gguf';
  if (files.some((f) => f.endsWith('.onnx'))) return 'onnx';
  if (has('adapter_config.json')) {
    if (!has('adapter_model.safetensors')) throw new RegistryError(`${join(dir, 'adapter_config.json')}: a PEFT adapter needs adapter_model.safetensors beside it`);
    return 'peft-adapter';
  }
  if (has('config.json') && files.some((f) => f.endsWith('.safetensors'))) return 'merged-model';
  throw new RegistryError(
    `${dir}: not an artifact the registry knows: a PEFT adapter (adapter_config.json + adapter_model.safetensors), a Hugging Face model (config.json + *.safetensors), or an export holding a .gguf or .onnx file`,
  );
}

/** Name, hash and file list of a base model directory (its config, weights and tokenizer files). */
export async function describeBaseModel(dir: string): Promise<BaseModelRef> {
  const abs = resolve(dir);
  if (!existsSync(join(abs, 'config.json'))) throw new RegistryError(`base model ${abs}: no config.json (a Hugging Face model directory is expected)`, 'not_found');
  const paths = listFiles(abs).filter((f) => !f.includes('/') && MODEL_FILE.test(f));
  const { files, contentHash } = await hashFiles(abs, paths);
  let name = basename(abs);
  try {
    const raw = JSON.parse(readFileSync(join(abs, 'config.json'), 'utf8')) as { _name_or_path?: unknown };
    if (typeof raw._name_or_path === 'string' && raw._name_or_path) name = raw._name_or_path;
  } catch (e) {
    throw new RegistryError(`base model ${join(abs, 'config.json')}: not valid JSON: ${(e as Error).message}`);
  }
  return { dir: abs, name, hash: contentHash, files: files.map((f) => ({ path: f.path, size: f.size })) };
}

/** Why the base model directory no longer matches the registered one (files gone or resized), or null. */
export function baseModelMismatch(base: BaseModelRef): string | null {
  for (const f of base.files) {
    const p = join(base.dir, f.path);
    if (!existsSync(p)) return `${p} is missing`;
    const size = statSync(p).size;
    if (size !== f.size) return `${p} has ${size} bytes, ${f.size} when registered`;
  }
  return null;
}

function readJsonLoose(file: string): Record<string, unknown> | null {
  if (!existsSync(file)) return null;
  try {
    const v = JSON.parse(readFileSync(file, 'utf8')) as unknown;
    return v && typeof v === 'object' ? (v as Record<string, unknown>) : null;
  } catch (e) {
    throw new RegistryError(`${file}: not valid JSON: ${(e as Error).message}`);
  }
}

interface ExportInfo {
  format: string;
  precision: string | null;
  baseDir: string | null;
  runDir: string | null;
  /** the files export.json lists with their sha256, checked against the staged copies */
  files: { path: string; bytes: number; sha256: string }[];
}

/** export.json as the exporters write it: starweave-export/1 (export.ts) or the ONNX exporter's (format 'onnx'). */
function readExportInfo(dir: string): ExportInfo | null {
  const file = join(dir, EXPORT_MANIFEST);
  const j = readJsonLoose(file);
  if (!j) return null;
  const at = (o: unknown, ...keys: string[]): unknown => keys.reduce<unknown>((v, k) => (v && typeof v === 'object' ? (v as Record<string, unknown>)[k] : undefined), o);
  const str = (v: unknown) => (typeof v === 'string' && v ? v : null);
  const files = (list: unknown, key: 'path' | 'name') =>
    Array.isArray(list)
      ? list
          .filter((f) => typeof at(f, key) === 'string' && typeof at(f, 'sha256') === 'string')
          .map((f) => ({ path: String(at(f, key)), bytes: Number(at(f, 'bytes')), sha256: String(at(f, 'sha256')) }))
      : [];
  if (j.format === 'starweave-export/1')
    return { format: str(j.export) ?? 'export', precision: str(j.precision), baseDir: str(at(j, 'baseModel', 'dir')), runDir: str(at(j, 'source', 'run')), files: files(j.files, 'path') };
  if (j.format === 'onnx') return { format: 'onnx', precision: str(j.precision), baseDir: str(at(j, 'source', 'modelDir')), runDir: null, files: files(j.files, 'name') };
  return { format: str(j.format) ?? 'unknown', precision: str(j.precision), baseDir: null, runDir: null, files: [] };
}

/** The lineage a run directory gives: its id, dataset version, base model dir and metrics (eval.json, run.json, metrics.jsonl). */
function runLineage(runDir: string): { run: NonNullable<Lineage['run']>; datasetVersion: string | null; baseDir: string | null; metrics: Lineage['metrics'] } {
  const dir = resolve(runDir);
  if (!existsSync(join(dir, 'config.json')) && !existsSync(join(dir, 'run.json'))) throw new RegistryError(`run ${dir}: not a run directory (no config.json or run.json)`, 'not_found');
  const s = summarizeRun(dir);
  const config = readJsonLoose(join(dir, 'config.json'));
  const model = config?.model as { dir?: unknown } | undefined;
  const metrics: Lineage['metrics'] = {};
  if (s.steps !== null) metrics.steps = s.steps;
  if (s.lastLoss !== null) metrics.train_loss = s.lastLoss;
  if (s.lastEvalLoss !== null) metrics.eval_loss = s.lastEvalLoss;
  if (s.bestEvalLoss !== null) metrics.best_eval_loss = s.bestEvalLoss;
  const ev = readEvalReport(dir);
  if (ev) {
    const t = ev.tuned;
    for (const [k, v] of Object.entries({ loss: t.loss, perplexity: t.perplexity, token_accuracy: t.tokenAccuracy, exact_match: t.exactMatch, rouge_l: t.rougeL })) metrics[`tuned_${k}`] = v;
    if (ev.base) {
      metrics.base_loss = ev.base.loss;
      metrics.base_rouge_l = ev.base.rougeL;
    }
    metrics.gate_passed = ev.gate.passed;
  }
  return {
    run: { id: basename(dir), dir, status: s.status === 'unknown' ? null : s.status },
    datasetVersion: s.datasetVersion,
    baseDir: typeof model?.dir === 'string' ? model.dir : null,
    metrics,
  };
}

function deepFreeze<T>(v: T): T {
  if (v && typeof v === 'object' && !Object.isFrozen(v)) {
    Object.freeze(v);
    for (const x of Object.values(v)) deepFreeze(x);
  }
  return v;
}

const channelRef = (spec: string) => (spec.startsWith('channel:') ? spec.slice(8) : spec.startsWith('@') ? spec.slice(1) : null);

// ---- the registry

export interface RegistryOptions {
  lock?: LockOptions;
}

export class Registry {
  readonly root: string;
  private readonly lockOpts: LockOptions;

  constructor(root: string, opts: RegistryOptions = {}) {
    this.root = resolve(root);
    this.lockOpts = opts.lock ?? {};
  }

  get indexFile(): string {
    return join(this.root, 'index.json');
  }
  get eventsFile(): string {
    return join(this.root, 'events.jsonl');
  }
  get lockFile(): string {
    return join(this.root, 'registry.lock');
  }
  versionDir(id: string): string {
    return join(this.root, 'versions', id);
  }

  private cached: { key: string; index: RegistryIndex } | null = null;

  /**
   * The index as it is on disk now (an empty registry when the store does not exist yet). Parsed once
   * per change of index.json (its inode, size and mtime: every write renames a new file over it) and
   * frozen, since callers share it.
   */
  read(): RegistryIndex {
    let key: string;
    try {
      const st = statSync(this.indexFile);
      key = `${st.ino}:${st.size}:${st.mtimeMs}`;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return { format: REGISTRY_FORMAT, nextSeq: 1, versions: {}, tags: {}, channels: {} };
      throw e;
    }
    if (this.cached?.key === key) return this.cached.index;
    const index = deepFreeze(this.parseIndex());
    this.cached = { key, index };
    return index;
  }

  /** A fresh, mutable parse of index.json (what a writer modifies under the lock). */
  private parseIndex(): RegistryIndex {
    if (!existsSync(this.indexFile)) return { format: REGISTRY_FORMAT, nextSeq: 1, versions: {}, tags: {}, channels: {} };
    let json: unknown;
    try {
      json = JSON.parse(readFileSync(this.indexFile, 'utf8'));
    } catch (e) {
      throw new RegistryError(`${this.indexFile}: not valid JSON: ${(e as Error).message}`);
    }
    const r = RegistryIndex.safeParse(json);
    if (!r.success) {
      const i = r.error.issues[0];
      throw new RegistryError(`${this.indexFile} at ${i.path.join('.') || '(root)'}: ${i.message}`);
    }
    return r.data;
  }

  /** Runs a read-modify-write of the index under the lock; events are appended once the index is written. */
  private async mutate<R>(fn: (ix: RegistryIndex, emit: (type: string, fields: Record<string, unknown>) => void) => R): Promise<R> {
    mkdirSync(this.root, { recursive: true });
    return withLock(
      this.lockFile,
      () => {
        const ix = this.parseIndex();
        const events: RegistryEvent[] = [];
        const result = fn(ix, (type, fields) => events.push({ at: new Date().toISOString(), type, ...fields }));
        if (events.length) {
          writeFileAtomicSync(this.indexFile, JSON.stringify(ix, null, 1) + '\n');
          appendFileSync(this.eventsFile, events.map((e) => JSON.stringify(e) + '\n').join(''));
        }
        return result;
      },
      this.lockOpts,
    );
  }

  /** Appends an event to the audit log (monitoring alarms, test runs) under the lock. */
  async recordEvent(type: string, fields: Record<string, unknown>): Promise<void> {
    mkdirSync(this.root, { recursive: true });
    await withLock(this.lockFile, () => appendFileSync(this.eventsFile, JSON.stringify({ at: new Date().toISOString(), type, ...fields }) + '\n'), this.lockOpts);
  }

  /** The audit log, oldest first (a line cut by a crash is skipped). */
  events(): RegistryEvent[] {
    if (!existsSync(this.eventsFile)) return [];
    const out: RegistryEvent[] = [];
    for (const l of readFileSync(this.eventsFile, 'utf8').split('\n')) {
      if (!l.trim()) continue;
      try {
        out.push(JSON.parse(l) as RegistryEvent);
      } catch {
        // a partial last line
      }
    }
    return out;
  }

  /**
   * Resolves a version spec to its id: an id (`v3`), a content-hash prefix (6+ hex digits), a tag, or a
   * channel's current version (`@production` or `channel:production`).
   */
  resolve(spec: string, ix: RegistryIndex = this.read()): string {
    if (ix.versions[spec]) return spec;
    const ch = channelRef(spec);
    if (ch !== null) {
      const c = ix.channels[ch];
      const cur = c?.stack.at(-1);
      if (!cur) throw new RegistryError(`channel '${ch}' ${c ? 'is empty' : 'does not exist'} (channels: ${Object.keys(ix.channels).join(', ') || 'none'})`, 'not_found');
      return cur;
    }
    if (ix.tags[spec]) return ix.tags[spec];
    if (/^[0-9a-f]{6,64}$/.test(spec)) {
      const hits = Object.values(ix.versions).filter((v) => v.contentHash.startsWith(spec));
      if (hits.length === 1) return hits[0].id;
      if (hits.length > 1) throw new RegistryError(`content hash prefix ${spec} is ambiguous: ${hits.map((v) => v.id).join(', ')}`, 'conflict');
    }
    const ids = Object.keys(ix.versions);
    throw new RegistryError(
      `no version '${spec}' (a version id${ids.length ? ` such as ${ids.slice(-3).join(', ')}` : ''}, a tag, a content-hash prefix, or @channel)`,
      'not_found',
    );
  }

  list(): VersionRecord[] {
    return Object.values(this.read().versions).sort((a, b) => a.seq - b.seq);
  }

  /** A version with its tags and the channels that serve it now. */
  show(spec: string): VersionRecord & { tags: string[]; channels: string[]; dir: string } {
    const ix = this.read();
    const id = this.resolve(spec, ix);
    const v = ix.versions[id];
    return {
      ...v,
      tags: Object.entries(ix.tags)
        .filter(([, t]) => t === id)
        .map(([n]) => n),
      channels: Object.entries(ix.channels)
        .filter(([, c]) => c.stack.at(-1) === id)
        .map(([n]) => n),
      dir: this.versionDir(id),
    } as VersionRecord & { tags: string[]; channels: string[]; dir: string };
  }

  /** The version a channel serves now, or null. */
  current(channel: string): string | null {
    return this.read().channels[channel]?.stack.at(-1) ?? null;
  }

  channels(): Record<string, { current: string | null; depth: number }> {
    return Object.fromEntries(Object.entries(this.read().channels).map(([n, c]) => [n, { current: c.stack.at(-1) ?? null, depth: c.stack.length }]));
  }

  history(channel: string): HistoryEntry[] {
    const c = this.read().channels[channel];
    if (!c) throw new RegistryError(`channel '${channel}' does not exist`, 'not_found');
    return c.history;
  }

  /** Registers an artifact directory (or a run's adapter/) as a new version; the same content twice gives the existing version. */
  async register(params: RegisterParams): Promise<RegisterResult> {
    const p = RegisterParams.parse(params);
    let source = resolve(p.source);
    let runDir = p.run ? resolve(p.run) : null;
    if (!runDir && existsSync(join(source, 'run.json')) && existsSync(join(source, 'adapter', 'adapter_config.json'))) {
      runDir = source;
      source = join(source, 'adapter');
    }
    const kind = detectKind(source);
    const exp = readExportInfo(source);
    if (!runDir && exp?.runDir && existsSync(exp.runDir)) runDir = resolve(exp.runDir);
    const run = runDir ? runLineage(runDir) : null;
    let baseDir = p.base ? resolve(p.base) : (run?.baseDir ?? (exp?.baseDir && existsSync(join(exp.baseDir, 'config.json')) ? exp.baseDir : null));
    if (!baseDir && kind === 'peft-adapter') {
      const ac = readJsonLoose(join(source, 'adapter_config.json'));
      const b = ac?.base_model_name_or_path;
      if (typeof b === 'string' && existsSync(join(b, 'config.json'))) baseDir = resolve(b);
    }
    if (kind === 'peft-adapter' && !baseDir)
      throw new RegistryError(`${source}: a PEFT adapter needs its base model: give base (a model directory) or run (the training run), or an adapter_config.json whose base_model_name_or_path is a local model directory`);
    const base = baseDir ? await describeBaseModel(baseDir) : null;

    // stage the files (outside the lock): copy or hard-link, then hash what was staged
    mkdirSync(join(this.root, 'versions'), { recursive: true });
    const staging = join(this.root, 'versions', `.staging-${process.pid}-${randomBytes(4).toString('hex')}`);
    const paths = listFiles(source);
    try {
      for (const rel of paths) {
        const to = join(staging, rel);
        mkdirSync(dirname(to), { recursive: true });
        if (p.link === 'hardlink') {
          try {
            linkSync(join(source, rel), to);
            continue;
          } catch (e) {
            if (!['EXDEV', 'EPERM', 'EMLINK'].includes((e as NodeJS.ErrnoException).code ?? '')) throw e;
          }
        }
        copyFileSync(join(source, rel), to);
      }
      const { files, contentHash, bytes } = await hashFiles(staging, paths);
      for (const f of exp?.files ?? []) {
        const got = files.find((x) => x.path === f.path);
        if (!got) throw new RegistryError(`${join(source, EXPORT_MANIFEST)} lists ${f.path}, which the directory does not hold`);
        if (got.sha256 !== f.sha256) throw new RegistryError(`${join(source, f.path)}: sha256 ${got.sha256.slice(0, 12)}… differs from ${f.sha256.slice(0, 12)}… in ${EXPORT_MANIFEST} (the file changed after the export)`);
      }
      const lineage: Lineage = {
        run: run?.run ?? null,
        datasetVersion: p.datasetVersion ?? run?.datasetVersion ?? null,
        base,
        metrics: { ...(run?.metrics ?? {}), ...(p.metrics ?? {}) },
      };
      return await this.mutate((ix, emit) => {
        const same = Object.values(ix.versions).find((v) => v.contentHash === contentHash);
        if (same) return { version: same, existing: true };
        const seq = ix.nextSeq++;
        const id = `v${seq}`;
        renameSync(staging, this.versionDir(id));
        const version: VersionRecord = { id, seq, kind, contentHash, files, bytes, source, createdAt: new Date().toISOString(), notes: p.notes, lineage, export: exp ? { format: exp.format, precision: exp.precision } : null, tests: [] };
        ix.versions[id] = version;
        emit('register', { version: id, kind, contentHash, source, run: lineage.run?.id ?? null, base: base?.name ?? null });
        for (const t of p.tags) {
          ix.tags[t] = id;
          emit('tag', { version: id, tag: t });
        }
        return { version, existing: false };
      });
    } finally {
      rmSync(staging, { recursive: true, force: true });
    }
  }

  /** Points a tag at a version (a tag names one version; tagging another moves it). */
  async tag(spec: string, tag: string): Promise<{ version: string; tag: string; movedFrom: string | null }> {
    const t = nameSchema('a tag').parse(tag);
    return this.mutate((ix, emit) => {
      const id = this.resolve(spec, ix);
      const movedFrom = ix.tags[t] && ix.tags[t] !== id ? ix.tags[t] : null;
      ix.tags[t] = id;
      emit('tag', { version: id, tag: t, movedFrom });
      return { version: id, tag: t, movedFrom };
    });
  }

  async untag(tag: string): Promise<void> {
    await this.mutate((ix, emit) => {
      if (!ix.tags[tag]) throw new RegistryError(`no tag '${tag}'`, 'not_found');
      emit('untag', { version: ix.tags[tag], tag });
      delete ix.tags[tag];
    });
  }

  /**
   * Makes a version the one a channel serves. Refused when the version's last integration test failed
   * (unless force); use integration.ts's promoteWithTests to test and promote in one step.
   */
  async promote(params: PromoteParams): Promise<HistoryEntry> {
    const p = PromoteParams.parse(params);
    return this.mutate((ix, emit) => {
      const id = this.resolve(p.version, ix);
      const last = ix.versions[id].tests.at(-1);
      if (last && !last.passed && !p.force)
        throw new RegistryError(`${id} failed its last integration test (${last.failed} of ${last.total} cases, suite ${last.suite}, ${last.file}); fix it, test again, or promote with force`, 'refused');
      const c = (ix.channels[p.channel] ??= { stack: [], history: [] });
      const previous = c.stack.at(-1) ?? null;
      if (previous === id) throw new RegistryError(`${id} is already the version of channel '${p.channel}'`, 'conflict');
      c.stack.push(id);
      const entry: HistoryEntry = { at: new Date().toISOString(), action: 'promote', version: id, previous, ...(p.reason ? { reason: p.reason } : {}) };
      c.history.push(entry);
      emit('promote', { channel: p.channel, version: id, previous, reason: p.reason ?? null, forced: p.force && !!last && !last.passed });
      return entry;
    });
  }

  /** Takes a channel back to the version it served before the current one was promoted. */
  async rollback(channel: string, reason?: string): Promise<HistoryEntry> {
    return this.mutate((ix, emit) => {
      const c = ix.channels[channel];
      if (!c) throw new RegistryError(`channel '${channel}' does not exist`, 'not_found');
      if (c.stack.length < 2) throw new RegistryError(`channel '${channel}' has no previous version to roll back to (${c.stack.length ? `only ${c.stack[0]}` : 'empty'})`, 'refused');
      const previous = c.stack.pop()!;
      const version = c.stack.at(-1)!;
      const entry: HistoryEntry = { at: new Date().toISOString(), action: 'rollback', version, previous, ...(reason ? { reason } : {}) };
      c.history.push(entry);
      emit('rollback', { channel, version, previous, reason: reason ?? null });
      return entry;
    });
  }

  /** Stores an integration-test result with the version (versions/ID/tests/*.json) and its summary in the index. */
  async recordTest(spec: string, result: { suite: string; passed: boolean; total: number; failed: number }, detail: unknown): Promise<TestSummary> {
    return this.mutate((ix, emit) => {
      const id = this.resolve(spec, ix);
      const at = new Date().toISOString();
      const dir = join(this.versionDir(id), 'tests');
      mkdirSync(dir, { recursive: true });
      const file = join(dir, `${at.replace(/[:.]/g, '-')}-${randomBytes(2).toString('hex')}.json`);
      writeFileAtomicSync(file, JSON.stringify(detail, null, 2) + '\n');
      const summary: TestSummary = { at, suite: result.suite, passed: result.passed, total: result.total, failed: result.failed, file };
      ix.versions[id].tests.push(summary);
      emit('test', { version: id, suite: result.suite, passed: result.passed, total: result.total, failed: result.failed });
      return summary;
    });
  }

  /** Recomputes the hashes of a version's stored files: the names of files that changed or went missing. */
  async verify(spec: string): Promise<{ version: string; ok: boolean; problems: string[] }> {
    const ix = this.read();
    const id = this.resolve(spec, ix);
    const v = ix.versions[id];
    const dir = this.versionDir(id);
    const problems: string[] = [];
    for (const f of v.files) {
      const p = join(dir, f.path);
      if (!existsSync(p)) problems.push(`${f.path}: missing`);
      else if ((await sha256File(p)) !== f.sha256) problems.push(`${f.path}: content changed`);
    }
    return { version: id, ok: problems.length === 0, problems };
  }
}
