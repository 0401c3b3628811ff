// Splitting: deterministic from a seed and stratified by category. Every record gets a key u in [0,1)
// from its content hash and the seed; within each category the records with the lowest keys form the
// held-out set (round(n * fraction) of them, at least one when the category has two or more records).
// A record's key never depends on the others, so a record keeps its side across versions unless the
// category's cut moves past it.
import { mix32 } from './hash.js';

export const TRAIN = 0;
export const HELDOUT = 1;
export type SplitName = 'train' | 'heldout';
export const SPLIT_NAMES: readonly SplitName[] = ['train', 'heldout'];

/** The record's position in the seeded order of its category, in [0, 1). */
export function splitKey(hash: string, seed: number): number {
  const s = mix32(seed ^ 0x7f4a7c15);
  const hi = mix32(Number.parseInt(hash.slice(0, 8), 16) ^ s);
  const lo = mix32(Number.parseInt(hash.slice(8, 16), 16) ^ hi);
  return (hi * 2 ** 21 + (lo >>> 11)) / 2 ** 53;
}

/** How many of n records a category holds out. */
export function heldOutCount(n: number, fraction: number): number {
  if (fraction <= 0 || n < 2) return 0;
  return Math.min(n - 1, Math.max(1, Math.round(n * fraction)));
}

/** Assigns TRAIN or HELDOUT to each record given its category index and key. */
export function assignSplits(categories: ArrayLike<number>, keys: ArrayLike<number>, fraction: number): Uint8Array {
  const out = new Uint8Array(categories.length);
  const byCat = new Map<number, number[]>();
  for (let i = 0; i < categories.length; i++) {
    const c = categories[i];
    let l = byCat.get(c);
    if (!l) byCat.set(c, (l = []));
    l.push(i);
  }
  for (const idx of byCat.values()) {
    idx.sort((x, y) => keys[x] - keys[y] || x - y);
    const k = heldOutCount(idx.length, fraction);
    for (let j = 0; j < k; j++) out[idx[j]] = HELDOUT;
  }
  return out;
}
