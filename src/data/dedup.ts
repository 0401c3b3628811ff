// Deduplication. Exact: a hash of the normalized text (case, punctuation and whitespace folded), so
// copies that differ only in formatting collide. Near: MinHash signatures (one-permutation hashing) of word n-gram sets with
// locality-sensitive hashing in bands; a candidate pair is confirmed when the signatures' estimated
// Jaccard similarity reaches the threshold. Runs over the whole set before the split, so no copy or
// near-copy of a held-out record stays in train.
//
// Per kept record the index holds a fixed-size state (the exact key, the signature, one entry per band),
// never the text: memory grows with the number of records, not with their size.
import { createHash } from 'node:crypto';
import { mix32 } from './hash.js';

// a local binding: a global lookup of Math.imul is not inlined inside vm contexts (jest), 100x slower there
const imul = Math.imul;

/** The text that dedup compares: all turns, role-tagged, lowercased, punctuation and whitespace folded. */
export function dedupText(messages: readonly { role: string; content: string }[]): string {
  let s = '';
  for (const m of messages) s += `${m.role}: ${m.content}\n`;
  return s.toLowerCase();
}

const WORD = /[\p{L}\p{N}_]+/gu;

/** 32-bit hashes of the words of t (FNV-1a per word). */
function wordHashes(t: string): Uint32Array {
  const out: number[] = [];
  WORD.lastIndex = 0;
  for (let m = WORD.exec(t); m; m = WORD.exec(t)) {
    const w = m[0];
    let h = 0x811c9dc5;
    for (let i = 0; i < w.length; i++) h = imul(h ^ w.charCodeAt(i), 0x01000193);
    out.push(h >>> 0);
  }
  return Uint32Array.from(out);
}

/** The exact-duplicate key: a digest of the words in order (formatting and punctuation ignored). */
export function exactKey(text: string): string {
  const words = wordHashes(text);
  return createHash('sha1').update(words).digest('base64');
}

export interface MinHashOptions {
  numPerm: number;
  bands: number;
  shingleWords: number;
  threshold: number;
  seed?: number;
}

export class MinHasher {
  readonly a: Uint32Array;
  readonly b: Uint32Array;
  readonly rows: number;
  private readonly densifyScratch: Uint32Array;

  constructor(readonly opts: MinHashOptions) {
    if (opts.numPerm % opts.bands !== 0) throw new Error(`dedup.numPerm (${opts.numPerm}) must be a multiple of dedup.bands (${opts.bands})`);
    this.rows = opts.numPerm / opts.bands;
    this.a = new Uint32Array(opts.numPerm);
    this.b = new Uint32Array(opts.numPerm);
    this.densifyScratch = new Uint32Array(opts.numPerm);
    let s = (opts.seed ?? 0x5eed) >>> 0;
    for (let i = 0; i < opts.numPerm; i++) {
      s = mix32(s + 0x9e3779b9);
      this.a[i] = (s | 1) >>> 0; // odd multipliers
      s = mix32(s + 0x9e3779b9);
      this.b[i] = s;
    }
  }

  /** The shingles (hashes of consecutive word n-grams) of a text; short texts give one shingle of all words. */
  shingles(text: string): Uint32Array {
    const w = wordHashes(text);
    const k = this.opts.shingleWords;
    if (w.length === 0) return new Uint32Array(0);
    const n = Math.max(1, w.length - k + 1);
    const out = new Uint32Array(n);
    for (let i = 0; i < n; i++) {
      let h = 0x9747b28c;
      for (let j = i; j < Math.min(i + k, w.length); j++) h = mix32(h ^ w[j]) + j - i;
      out[i] = mix32(h);
    }
    return out;
  }

  /**
   * The signature of a shingle set by one-permutation hashing with optimal densification (Shrivastava,
   * ICML 2017): each shingle is hashed once into one of numPerm bins, each bin keeps its minimum, and an
   * empty bin borrows the value of a non-empty bin chosen by a seeded probe sequence. Same estimator as
   * k-permutation MinHash (equal positions / numPerm), O(shingles + numPerm) instead of O(shingles x numPerm).
   */
  signature(shingles: Uint32Array, out: Uint32Array = new Uint32Array(this.opts.numPerm)): Uint32Array {
    const K = this.opts.numPerm;
    const seed = this.b[0];
    out.fill(EMPTY);
    for (let s = 0; s < shingles.length; s++) {
      const h = mix32(shingles[s] ^ seed);
      const bin = Math.floor((h / 4294967296) * K);
      const v = mix32(h ^ this.a[bin]);
      if (v < out[bin]) out[bin] = v;
    }
    if (shingles.length === 0) return out;
    let empty = 0;
    for (let i = 0; i < K; i++) if (out[i] === EMPTY) empty++;
    if (empty === 0) return out;
    const filled = this.densifyScratch;
    filled.set(out.subarray(0, K));
    for (let i = 0; i < K; i++) {
      if (filled[i] !== EMPTY) continue;
      for (let attempt = 1; ; attempt++) {
        const j = Math.floor((mix32((i * 0x9e3779b1) ^ imul(attempt, 0x85ebca6b) ^ seed) / 4294967296) * K);
        if (filled[j] !== EMPTY) {
          out[i] = filled[j];
          break;
        }
      }
    }
    return out;
  }
}

const EMPTY = 0xffffffff;

/** Estimated Jaccard similarity: the fraction of equal signature positions. */
export function estimateJaccard(x: Uint32Array, y: Uint32Array): number {
  let eq = 0;
  for (let i = 0; i < x.length; i++) if (x[i] === y[i]) eq++;
  return eq / x.length;
}

/** Exact Jaccard of two shingle sets (the reference the estimate is tested against). */
export function jaccard(x: Uint32Array, y: Uint32Array): number {
  const a = new Set(x);
  const b = new Set(y);
  let inter = 0;
  for (const v of a) if (b.has(v)) inter++;
  return inter / (a.size + b.size - inter || 1);
}

export type DedupVerdict = { kind: 'unique' } | { kind: 'exact' | 'near'; of: number; similarity: number };

/**
 * The index over kept records. check() answers whether a record duplicates one already kept and, when
 * it does not, keeps it under the given id (ids are the caller's record numbers).
 */
export class DedupIndex {
  private readonly exact = new Map<string, number>();
  private readonly bandMaps: Map<number, number | number[]>[];
  private sigs: Uint32Array;
  private sigIds: Int32Array;
  private count = 0;
  private readonly hasher: MinHasher;
  private readonly scratch: Uint32Array;
  exactHits = 0;
  nearHits = 0;

  constructor(readonly opts: MinHashOptions & { exact: boolean; near: boolean }) {
    this.hasher = new MinHasher(opts);
    this.bandMaps = Array.from({ length: opts.bands }, () => new Map());
    this.sigs = new Uint32Array(opts.numPerm * 1024);
    this.sigIds = new Int32Array(1024);
    this.scratch = new Uint32Array(opts.numPerm);
  }

  /** Number of records kept in the index. */
  get size(): number {
    return this.count;
  }

  check(text: string, id: number): DedupVerdict {
    let key: string | undefined;
    if (this.opts.exact) {
      key = exactKey(text);
      const of = this.exact.get(key);
      if (of !== undefined) {
        this.exactHits++;
        return { kind: 'exact', of, similarity: 1 };
      }
    }
    let sig: Uint32Array | undefined;
    const bandKeys: number[] = [];
    if (this.opts.near) {
      const sh = this.hasher.shingles(text);
      sig = this.hasher.signature(sh, this.scratch);
      const r = this.hasher.rows;
      const seen = new Set<number>();
      for (let band = 0; band < this.opts.bands; band++) {
        let h = band * 0x27d4eb2d;
        for (let i = band * r; i < (band + 1) * r; i++) h = mix32(h ^ sig[i]);
        bandKeys.push(h);
        const hit = this.bandMaps[band].get(h);
        if (hit === undefined) continue;
        for (const slot of typeof hit === 'number' ? [hit] : hit) {
          if (seen.has(slot)) continue;
          seen.add(slot);
          const sim = estimateJaccard(sig, this.sigs.subarray(slot * this.opts.numPerm, (slot + 1) * this.opts.numPerm));
          if (sim >= this.opts.threshold) {
            this.nearHits++;
            return { kind: 'near', of: this.sigIds[slot], similarity: sim };
          }
        }
      }
    }
    // keep it
    if (key !== undefined) this.exact.set(key, id);
    if (sig) {
      const slot = this.count;
      const P = this.opts.numPerm;
      if ((slot + 1) * P > this.sigs.length) {
        const grown = new Uint32Array(this.sigs.length * 2);
        grown.set(this.sigs);
        this.sigs = grown;
        const ids = new Int32Array(this.sigIds.length * 2);
        ids.set(this.sigIds);
        this.sigIds = ids;
      }
      this.sigs.set(sig, slot * P);
      this.sigIds[slot] = id;
      for (let band = 0; band < bandKeys.length; band++) {
        const m = this.bandMaps[band];
        const prev = m.get(bandKeys[band]);
        if (prev === undefined) m.set(bandKeys[band], slot);
        else if (typeof prev === 'number') m.set(bandKeys[band], [prev, slot]);
        else prev.push(slot);
      }
    }
    this.count++;
    return { kind: 'unique' };
  }
}
