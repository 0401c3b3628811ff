// Human review: a blind A/B sheet of base and tuned answers to the same held-out prompts (the order of
// the two answers drawn per item from a seed, so a reviewer cannot tell which is which), exported as
// JSONL and CSV with a separate key file; verdicts imported back give the tuned adapter's win rate with
// a Wilson 95% confidence interval (ties reported apart).
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { mulberry32 } from '../train/data.js';
import type { Sample } from './evaluate.js';

export interface ReviewItem {
  item: number;
  category: string;
  prompt: string;
  answer_a: string;
  answer_b: string;
  /** filled by the reviewer: "a", "b" or "tie" */
  verdict: string;
}

export interface ReviewKey {
  seed: number;
  /** per item: which answer is the tuned model's */
  tuned: Record<string, 'a' | 'b'>;
}

export interface ReviewOutcome {
  items: number;
  judged: number;
  tunedWins: number;
  baseWins: number;
  ties: number;
  /** tuned wins / (tuned wins + base wins) */
  winRate: number | null;
  /** Wilson score interval at 95% for winRate */
  ci95: [number, number] | null;
  byCategory: Record<string, { tunedWins: number; baseWins: number; ties: number }>;
}

function csvCell(s: string): string {
  return /[",\n\r]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

/** Pairs base and tuned samples by held-out index and writes review.jsonl, review.csv and review-key.json into outDir. */
export function exportReviewSheet(base: readonly Sample[], tuned: readonly Sample[], outDir: string, seed = 1): { items: number; files: string[] } {
  const byIndex = new Map(base.map((s) => [s.index, s]));
  const rand = mulberry32(seed);
  const items: ReviewItem[] = [];
  const key: ReviewKey = { seed, tuned: {} };
  for (const t of tuned) {
    const b = byIndex.get(t.index);
    if (!b) continue;
    const item = items.length + 1;
    const tunedFirst = rand() < 0.5;
    key.tuned[String(item)] = tunedFirst ? 'a' : 'b';
    items.push({ item, category: t.category, prompt: t.prompt, answer_a: tunedFirst ? t.output : b.output, answer_b: tunedFirst ? b.output : t.output, verdict: '' });
  }
  if (items.length === 0) throw new Error('review: no held-out prompt has both a base and a tuned answer (run the evaluation with compare_base and generate_examples > 0)');
  mkdirSync(outDir, { recursive: true });
  const files = [join(outDir, 'review.jsonl'), join(outDir, 'review.csv'), join(outDir, 'review-key.json')];
  writeFileSync(files[0], items.map((i) => JSON.stringify(i)).join('\n') + '\n');
  const cols: (keyof ReviewItem)[] = ['item', 'category', 'prompt', 'answer_a', 'answer_b', 'verdict'];
  writeFileSync(files[1], [cols.join(','), ...items.map((i) => cols.map((c) => csvCell(String(i[c]))).join(','))].join('\n') + '\n');
  writeFileSync(files[2], JSON.stringify(key, null, 2) + '\n');
  return { items: items.length, files };
}

/** Parses CSV with quoted cells (RFC 4180). */
export function parseCsv(text: string): string[][] {
  const rows: string[][] = [];
  let row: string[] = [];
  let cell = '';
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') (cell += '"'), i++;
      else if (c === '"') quoted = false;
      else cell += c;
    } else if (c === '"') quoted = true;
    else if (c === ',') row.push(cell), (cell = '');
    else if (c === '\n' || c === '\r') {
      if (c === '\r' && text[i + 1] === '\n') i++;
      row.push(cell), rows.push(row), (row = []), (cell = '');
    } else cell += c;
  }
  if (cell !== '' || row.length) row.push(cell), rows.push(row);
  return rows;
}

/** Reads verdicts ({item, verdict} from review.jsonl or review.csv); errors name the file and line. */
export function readVerdicts(file: string): Map<number, 'a' | 'b' | 'tie' | ''> {
  const text = readFileSync(file, 'utf8');
  const out = new Map<number, 'a' | 'b' | 'tie' | ''>();
  const put = (item: unknown, verdict: unknown, line: number) => {
    const v = String(verdict ?? '').trim().toLowerCase();
    if (!['a', 'b', 'tie', ''].includes(v)) throw new Error(`${file}:${line}: verdict must be a, b, tie or empty, got '${String(verdict)}'`);
    const n = Number(item);
    if (!Number.isInteger(n) || n < 1) throw new Error(`${file}:${line}: item must be a positive integer, got '${String(item)}'`);
    out.set(n, v as 'a' | 'b' | 'tie' | '');
  };
  if (file.endsWith('.csv')) {
    const rows = parseCsv(text).filter((r) => r.length > 1 || r[0] !== '');
    const header = rows[0] ?? [];
    const ii = header.indexOf('item');
    const vi = header.indexOf('verdict');
    if (ii < 0 || vi < 0) throw new Error(`${file}:1: the header needs 'item' and 'verdict' columns`);
    rows.slice(1).forEach((r, k) => put(r[ii], r[vi], k + 2));
  } else {
    text.split('\n').forEach((l, k) => {
      if (!l.trim()) return;
      let o: { item?: unknown; verdict?: unknown };
      try {
        o = JSON.parse(l);
      } catch (e) {
        throw new Error(`${file}:${k + 1}: invalid JSON: ${(e as Error).message}`);
      }
      put(o.item, o.verdict, k + 1);
    });
  }
  return out;
}

/** Wilson score interval (95%) for k successes in n trials. */
export function wilson95(k: number, n: number): [number, number] | null {
  if (n === 0) return null;
  const z = 1.959963984540054;
  const p = k / n;
  const den = 1 + (z * z) / n;
  const centre = (p + (z * z) / (2 * n)) / den;
  const half = (z * Math.sqrt((p * (1 - p)) / n + (z * z) / (4 * n * n))) / den;
  return [Math.max(0, centre - half), Math.min(1, centre + half)];
}

/** Unblinds verdicts with the key: the tuned adapter's wins, losses and ties, win rate and its CI. */
export function scoreReview(verdictsFile: string, keyFile: string, sheetFile?: string): ReviewOutcome {
  if (!existsSync(keyFile)) throw new Error(`review: key file ${keyFile} not found`);
  const key = JSON.parse(readFileSync(keyFile, 'utf8')) as ReviewKey;
  const verdicts = readVerdicts(verdictsFile);
  const categories = new Map<number, string>();
  if (sheetFile && existsSync(sheetFile))
    for (const l of readFileSync(sheetFile, 'utf8').split('\n'))
      if (l.trim()) {
        const o = JSON.parse(l) as ReviewItem;
        categories.set(o.item, o.category);
      }
  const res: ReviewOutcome = { items: Object.keys(key.tuned).length, judged: 0, tunedWins: 0, baseWins: 0, ties: 0, winRate: null, ci95: null, byCategory: {} };
  for (const [item, v] of verdicts) {
    const tunedSide = key.tuned[String(item)];
    if (!tunedSide) throw new Error(`${verdictsFile}: item ${item} is not in the review key`);
    if (v === '') continue;
    res.judged++;
    const cat = (res.byCategory[categories.get(item) ?? 'all'] ??= { tunedWins: 0, baseWins: 0, ties: 0 });
    if (v === 'tie') res.ties++, cat.ties++;
    else if (v === tunedSide) res.tunedWins++, cat.tunedWins++;
    else res.baseWins++, cat.baseWins++;
  }
  const decided = res.tunedWins + res.baseWins;
  res.winRate = decided ? res.tunedWins / decided : null;
  res.ci95 = wilson95(res.tunedWins, decided);
  return res;
}
