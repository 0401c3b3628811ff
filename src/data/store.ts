// The dataset store: content-addressed versions in one folder.
//
//   <store>/versions/<id>/manifest.json   what the version is: counts, hashes, lineage
//                         train.jsonl, heldout.jsonl   the records (DatasetRecord per line)
//                         records.tsv      hash, split, category, tokens, source; sorted by hash
//                         rejects.jsonl    every record left out, with its reason and origin
//                         report.json, report.md
//   <store>/refs/<name>.json                the versions built under a dataset name, oldest first
//
// A version's id is derived from its content (the record hashes and their split), so building the same
// data twice gives the same version. Versions are staged in <store>/tmp and renamed into place.
import { existsSync, mkdirSync, readdirSync, readFileSync, createReadStream } from 'node:fs';
import { createInterface } from 'node:readline';
import { join } from 'node:path';
import { z } from 'zod';
import { DataError, parseOrThrow } from './errors.js';
import { writeFileAtomic } from './io.js';
import { CATEGORIES, Category, type Category as CategoryT } from './schema.js';

export const MANIFEST_FORMAT = 'starweave-dataset/1';

const SplitInfo = z.strictObject({ file: z.string(), records: z.number().int(), tokens: z.number().int(), sha256: z.string() });

export const Manifest = z.strictObject({
  format: z.literal(MANIFEST_FORMAT),
  versionId: z.string(),
  name: z.string(),
  createdAt: z.string(),
  /** the latest version of the same name when this one was built */
  parent: z.string().nullable(),
  /** sha256 over records.tsv's `hash\tsplit` lines: the identity of the content */
  setHash: z.string(),
  records: z.number().int(),
  splits: z.strictObject({ train: SplitInfo, heldout: SplitInfo }),
  byCategory: z.record(Category, z.strictObject({ train: z.number().int(), heldout: z.number().int() })),
  files: z.strictObject({ index: z.string(), rejects: z.string(), report: z.string(), reportMarkdown: z.string() }),
  lineage: z.strictObject({
    sources: z.array(z.strictObject({ name: z.string(), kind: z.string(), review: z.boolean(), inputs: z.array(z.strictObject({ file: z.string(), sha256: z.string() })) })),
    curation: z.strictObject({ file: z.string(), sha256: z.string().nullable(), decisions: z.number().int() }).nullable(),
    config: z.unknown(),
    configSha256: z.string(),
    tokenizer: z.strictObject({ name: z.string(), exact: z.boolean() }),
    project: z.strictObject({ name: z.string(), version: z.string() }),
  }),
});
export type Manifest = z.infer<typeof Manifest>;

const Ref = z.strictObject({ name: z.string(), versions: z.array(z.strictObject({ id: z.string(), createdAt: z.string() })) });
type Ref = z.infer<typeof Ref>;

export const versionsDir = (store: string) => join(store, 'versions');
export const versionDir = (store: string, id: string) => join(store, 'versions', id);

export function readManifest(store: string, id: string): Manifest {
  const file = join(versionDir(store, id), 'manifest.json');
  let o: unknown;
  try {
    o = JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    throw new DataError(`cannot read the manifest: ${(e as Error).message}`, { file });
  }
  return parseOrThrow(Manifest, o, file);
}

export function readRef(store: string, name: string): Ref | undefined {
  const file = join(store, 'refs', `${name}.json`);
  if (!existsSync(file)) return undefined;
  return parseOrThrow(Ref, JSON.parse(readFileSync(file, 'utf8')), file);
}

export function appendRef(store: string, name: string, id: string, createdAt: string): void {
  const ref = readRef(store, name) ?? { name, versions: [] };
  if (ref.versions[ref.versions.length - 1]?.id !== id) ref.versions.push({ id, createdAt });
  mkdirSync(join(store, 'refs'), { recursive: true });
  writeFileAtomic(join(store, 'refs', `${name}.json`), `${JSON.stringify(ref, null, 2)}\n`);
}

/** Every version in the store, oldest first. */
export function listVersions(store: string): Manifest[] {
  const dir = versionsDir(store);
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .filter((d) => existsSync(join(dir, d, 'manifest.json')))
    .map((d) => readManifest(store, d))
    .sort((a, b) => (a.createdAt < b.createdAt ? -1 : a.createdAt > b.createdAt ? 1 : 0));
}

/**
 * Resolves what a user typed to a version id: a full id, a unique id prefix, a dataset name (its
 * latest version), or `name~N` (N versions before the latest).
 */
export function resolveVersion(store: string, spec: string): string {
  const m = /^(.+?)(?:~(\d+))?$/.exec(spec)!;
  const ref = readRef(store, m[1]);
  if (ref) {
    const back = Number(m[2] ?? 0);
    const v = ref.versions[ref.versions.length - 1 - back];
    if (!v) throw new DataError(`dataset '${m[1]}' has ${ref.versions.length} version(s); ~${back} goes past the first`, { file: store });
    return v.id;
  }
  const dir = versionsDir(store);
  const ids = existsSync(dir) ? readdirSync(dir).filter((d) => d.startsWith(spec)) : [];
  if (ids.length === 1) return ids[0];
  if (ids.length > 1) throw new DataError(`'${spec}' matches ${ids.length} versions (${ids.slice(0, 5).join(', ')}): give more of the id`, { file: store });
  throw new DataError(`no version or dataset named '${spec}' in the store`, { file: store });
}

/** One line of records.tsv. */
export interface IndexRow {
  hash: string;
  split: 'train' | 'heldout';
  category: CategoryT;
  tokens: number;
  source: string;
}

async function* readIndex(store: string, id: string): AsyncGenerator<IndexRow> {
  const file = join(versionDir(store, id), 'records.tsv');
  const rl = createInterface({ input: createReadStream(file, { encoding: 'utf8' }), crlfDelay: Infinity });
  for await (const l of rl) {
    if (!l) continue;
    const [hash, split, category, tokens, source] = l.split('\t');
    yield { hash, split: split as IndexRow['split'], category: category as CategoryT, tokens: Number(tokens), source };
  }
}

export interface VersionDiff {
  from: string;
  to: string;
  added: number;
  removed: number;
  unchanged: number;
  /** records in both versions whose split changed (train <-> held out) */
  moved: number;
  byCategory: Record<CategoryT, { added: number; removed: number }>;
  /** up to `sample` hashes of each kind, for a closer look */
  samples: { added: IndexRow[]; removed: IndexRow[]; moved: IndexRow[] };
  lineage: { sourcesChanged: string[]; inputsChanged: { source: string; file: string; change: 'added' | 'removed' | 'modified' }[]; configChanged: boolean; curationChanged: boolean; tokenizerChanged: boolean };
}

/** Compares two versions record by record (a streaming merge of their sorted indexes) and by lineage. */
export async function diffVersions(store: string, fromSpec: string, toSpec: string, sample = 10): Promise<VersionDiff> {
  const from = resolveVersion(store, fromSpec);
  const to = resolveVersion(store, toSpec);
  const d: VersionDiff = {
    from,
    to,
    added: 0,
    removed: 0,
    unchanged: 0,
    moved: 0,
    byCategory: Object.fromEntries(CATEGORIES.map((c) => [c, { added: 0, removed: 0 }])) as VersionDiff['byCategory'],
    samples: { added: [], removed: [], moved: [] },
    lineage: { sourcesChanged: [], inputsChanged: [], configChanged: false, curationChanged: false, tokenizerChanged: false },
  };
  const a = readIndex(store, from);
  const b = readIndex(store, to);
  let x = await a.next();
  let y = await b.next();
  const take = (l: IndexRow[], r: IndexRow) => l.length < sample && l.push(r);
  while (!x.done || !y.done) {
    if (!x.done && (y.done || x.value.hash < y.value.hash)) {
      d.removed++;
      d.byCategory[x.value.category].removed++;
      take(d.samples.removed, x.value);
      x = await a.next();
    } else if (!y.done && (x.done || y.value.hash < x.value.hash)) {
      d.added++;
      d.byCategory[y.value.category].added++;
      take(d.samples.added, y.value);
      y = await b.next();
    } else {
      if (x.value!.split !== y.value!.split) {
        d.moved++;
        take(d.samples.moved, y.value!);
      } else d.unchanged++;
      x = await a.next();
      y = await b.next();
    }
  }
  const ma = readManifest(store, from);
  const mb = readManifest(store, to);
  const sa = new Map(ma.lineage.sources.map((s) => [s.name, s]));
  const sb = new Map(mb.lineage.sources.map((s) => [s.name, s]));
  for (const name of new Set([...sa.keys(), ...sb.keys()])) {
    const ia = new Map((sa.get(name)?.inputs ?? []).map((i) => [i.file, i.sha256]));
    const ib = new Map((sb.get(name)?.inputs ?? []).map((i) => [i.file, i.sha256]));
    let changed = !sa.has(name) || !sb.has(name);
    for (const f of new Set([...ia.keys(), ...ib.keys()])) {
      const change = !ia.has(f) ? 'added' : !ib.has(f) ? 'removed' : ia.get(f) !== ib.get(f) ? 'modified' : undefined;
      if (change) {
        d.lineage.inputsChanged.push({ source: name, file: f, change });
        changed = true;
      }
    }
    if (changed) d.lineage.sourcesChanged.push(name);
  }
  d.lineage.configChanged = ma.lineage.configSha256 !== mb.lineage.configSha256;
  d.lineage.curationChanged = (ma.lineage.curation?.sha256 ?? null) !== (mb.lineage.curation?.sha256 ?? null);
  d.lineage.tokenizerChanged = ma.lineage.tokenizer.name !== mb.lineage.tokenizer.name;
  return d;
}
