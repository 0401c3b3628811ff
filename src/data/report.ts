// The report of a build: counts per category, source and split, the token-length histogram, rejects by
// reason, duplicates removed, what was scrubbed, curation, and the time each stage took.
import { CATEGORIES, REJECT_REASONS, type Category, type RejectReason } from './schema.js';
import { emptyScrubCounts, type ScrubCounts } from './clean.js';

export const STAGES = ['read', 'clean', 'validate', 'tokens', 'curate', 'dedup', 'split', 'write'] as const;
export type Stage = (typeof STAGES)[number];

/** Upper bounds of the token histogram's buckets (the last bucket is open). */
export const TOKEN_BUCKETS = [64, 128, 256, 512, 1024, 2048, 4096, 8192] as const;

export interface BuildReport {
  name: string;
  versionId?: string;
  read: number;
  kept: number;
  bySplit: { train: number; heldout: number };
  byCategory: Record<Category, { train: number; heldout: number }>;
  bySource: Record<string, { read: number; kept: number; rejected: number; pending: number }>;
  rejects: Record<RejectReason, number>;
  duplicates: { exact: number; near: number; threshold: number };
  scrubbed: ScrubCounts;
  categoryInferred: number;
  curation: { approved: number; corrected: number; rejected: number; pending: number };
  tokens: { counter: string; exact: boolean; total: number; max: number; histogram: { upTo: number | null; count: number }[] };
  /** milliseconds spent per stage (inputs read and parsed, cleaned, validated, ...) */
  stageMs: Record<Stage, number>;
  wallMs: number;
}

export function emptyReport(name: string, counter: { name: string; exact: boolean }, threshold: number): BuildReport {
  return {
    name,
    read: 0,
    kept: 0,
    bySplit: { train: 0, heldout: 0 },
    byCategory: Object.fromEntries(CATEGORIES.map((c) => [c, { train: 0, heldout: 0 }])) as BuildReport['byCategory'],
    bySource: {},
    rejects: Object.fromEntries(REJECT_REASONS.map((r) => [r, 0])) as BuildReport['rejects'],
    duplicates: { exact: 0, near: 0, threshold },
    scrubbed: emptyScrubCounts(),
    categoryInferred: 0,
    curation: { approved: 0, corrected: 0, rejected: 0, pending: 0 },
    tokens: { counter: counter.name, exact: counter.exact, total: 0, max: 0, histogram: [...TOKEN_BUCKETS.map((b) => ({ upTo: b as number | null, count: 0 })), { upTo: null, count: 0 }] },
    stageMs: { read: 0, clean: 0, validate: 0, tokens: 0, curate: 0, dedup: 0, split: 0, write: 0 },
    wallMs: 0,
  };
}

export function addTokens(r: BuildReport, n: number): void {
  r.tokens.total += n;
  if (n > r.tokens.max) r.tokens.max = n;
  const i = TOKEN_BUCKETS.findIndex((b) => n <= b);
  r.tokens.histogram[i < 0 ? TOKEN_BUCKETS.length : i].count++;
}

const bar = (n: number, max: number, width = 30) => '█'.repeat(max ? Math.round((n / max) * width) : 0);

/** The report as Markdown (report.md beside the dataset). */
export function reportMarkdown(r: BuildReport): string {
  const L: string[] = [];
  L.push(`# Dataset ${r.name}${r.versionId ? ` — ${r.versionId}` : ''}`, '');
  L.push(`${r.read} records read, ${r.kept} kept (${r.bySplit.train} train, ${r.bySplit.heldout} held out), built in ${(r.wallMs / 1000).toFixed(2)} s.`, '');
  L.push('## By category', '', '| category | train | held out |', '|---|---:|---:|');
  for (const c of CATEGORIES) L.push(`| ${c} | ${r.byCategory[c].train} | ${r.byCategory[c].heldout} |`);
  L.push('', `${r.categoryInferred} records had no category and were labelled by the keyword classifier (metadata.categoryInferred).`, '');
  L.push('## By source', '', '| source | read | kept | rejected | awaiting curation |', '|---|---:|---:|---:|---:|');
  for (const [s, v] of Object.entries(r.bySource)) L.push(`| ${s} | ${v.read} | ${v.kept} | ${v.rejected} | ${v.pending} |`);
  L.push('', '## Rejects by reason', '', '| reason | records |', '|---|---:|');
  for (const [k, v] of Object.entries(r.rejects)) if (v) L.push(`| ${k} | ${v} |`);
  L.push('', `Duplicates removed: ${r.duplicates.exact} exact, ${r.duplicates.near} near (MinHash estimated Jaccard >= ${r.duplicates.threshold}). Every reject is in rejects.jsonl with its origin.`, '');
  L.push('## Scrubbed', '', '| kind | replacements |', '|---|---:|');
  for (const [k, v] of Object.entries(r.scrubbed)) if (v) L.push(`| ${k} | ${v} |`);
  L.push('', '## Curation', '', `approved ${r.curation.approved}, corrected ${r.curation.corrected}, rejected ${r.curation.rejected}, awaiting a decision ${r.curation.pending} (not in this version).`, '');
  const max = Math.max(...r.tokens.histogram.map((h) => h.count));
  L.push(`## Token lengths (${r.tokens.counter}${r.tokens.exact ? '' : ', approximate'})`, '', `total ${r.tokens.total}, longest ${r.tokens.max}`, '', '```');
  let lo = 0;
  for (const h of r.tokens.histogram) {
    L.push(`${(h.upTo === null ? `> ${lo}` : `${lo + 1}-${h.upTo}`).padStart(11)} ${String(h.count).padStart(7)} ${bar(h.count, max)}`);
    lo = h.upTo ?? lo;
  }
  L.push('```', '', '## Stages', '', '| stage | ms | records/s |', '|---|---:|---:|');
  for (const [k, v] of Object.entries(r.stageMs)) L.push(`| ${k} | ${v.toFixed(1)} | ${v > 0 ? Math.round((r.read / v) * 1000) : '—'} |`);
  return `${L.join('\n')}\n`;
}
