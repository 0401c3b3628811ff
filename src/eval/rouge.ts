// Text-overlap metrics of generations against references: exact match (after whitespace normalization)
// and ROUGE-L F1 (longest common subsequence over word tokens, Lin 2004 with beta = 1).

/** Lower-cased word tokens: runs of letters/digits/underscore, and each other non-space character alone. */
export function wordTokens(text: string): string[] {
  return text.toLowerCase().match(/[\p{L}\p{N}_]+|[^\s\p{L}\p{N}_]/gu) ?? [];
}

/** Length of the longest common subsequence of a and b (O(|a|·|b|) time, O(|b|) memory). */
export function lcsLength<T>(a: readonly T[], b: readonly T[]): number {
  if (!a.length || !b.length) return 0;
  let prev = new Array<number>(b.length + 1).fill(0);
  let cur = new Array<number>(b.length + 1).fill(0);
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) cur[j] = a[i - 1] === b[j - 1] ? prev[j - 1] + 1 : Math.max(prev[j], cur[j - 1]);
    [prev, cur] = [cur, prev];
  }
  return prev[b.length];
}

export interface RougeL {
  precision: number;
  recall: number;
  f1: number;
}

/** ROUGE-L of a candidate against a reference over token arrays: P = LCS/|cand|, R = LCS/|ref|, F1 = 2PR/(P+R). */
export function rougeLTokens<T>(candidate: readonly T[], reference: readonly T[]): RougeL {
  if (!candidate.length && !reference.length) return { precision: 1, recall: 1, f1: 1 };
  const l = lcsLength(candidate, reference);
  const precision = candidate.length ? l / candidate.length : 0;
  const recall = reference.length ? l / reference.length : 0;
  const f1 = precision + recall > 0 ? (2 * precision * recall) / (precision + recall) : 0;
  return { precision, recall, f1 };
}

/** ROUGE-L over wordTokens of two strings. */
export function rougeL(candidate: string, reference: string): RougeL {
  return rougeLTokens(wordTokens(candidate), wordTokens(reference));
}

/** Whitespace-normalized, trimmed string equality. */
export function exactMatch(candidate: string, reference: string): boolean {
  const n = (s: string) => s.trim().replace(/\s+/g, ' ');
  return n(candidate) === n(reference);
}
