// Deduplication. Exact: a hash of the normalized text (case, punctuation and whitespace folded), so
// copies that differ only in formatting collide. Near: MinHash signatures (one-permutation hashing) of word n-gram sets with
// locality-sensitive hashing in bands; a candidate pair is confirmed when the signatures' estimated
// Jaccard similarity reaches the threshold. Runs over the whole set before the split, so no copy or
// near-copy of a held-out record stays in train.
//
// Per kept record the index holds a fixed-size state (the exact key, the signature, one entry per band),
// never the text: memory grows with the number of records, not with their size. All of it lives in
// typed arrays (open-addressing tables, signature chunks), not in Maps of objects: a few dozen bytes per
// record and per band, nothing for the garbage collector to trace.
import { mix32 } from './hash.js';

// local bindings: a global lookup of Math.imul (or floor) is not inlined inside vm contexts (jest), 100x slower there
const imul = Math.imul;
const floor = Math.floor;

/** The text that dedup compares: all turns, role-tagged, lowercased, punctuation and whitespace folded. */
export function dedupText(messages: readonly { role: string; content: string }[]): string {
  let s = '';
  for (const m of messages) s += `${m.role}: ${m.content}\n`;
  return s.toLowerCase();
}

// ---------------------------------------------------------------------------------------------------
// Words: the maximal runs of [\p{L}\p{N}_] (by code point), each hashed by FNV-1a over its UTF-16 code
// units. A char-class scan with a lookup table (filled lazily from the Unicode regex for non-ASCII
// characters) instead of a global regex: the same words, several times faster, no match objects.

const WORD_CHAR = /^[\p{L}\p{N}_]$/u;
/** per BMP code unit: 0 not yet known, 1 word character, 2 not */
const BMP_CLASS = new Uint8Array(65536);
for (let c = 0; c < 128; c++) BMP_CLASS[c] = (c >= 48 && c <= 57) || (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || c === 95 ? 1 : 2;
// lone surrogates are code points of their own (category Cs) for a /u regex: never word characters
for (let c = 0xd800; c < 0xe000; c++) BMP_CLASS[c] = 2;
const ASTRAL_CLASS = new Map<number, boolean>();

function bmpIsWord(c: number): boolean {
  let v = BMP_CLASS[c];
  if (v === 0) BMP_CLASS[c] = v = WORD_CHAR.test(String.fromCharCode(c)) ? 1 : 2;
  return v === 1;
}

function astralIsWord(cp: number): boolean {
  let v = ASTRAL_CLASS.get(cp);
  if (v === undefined) ASTRAL_CLASS.set(cp, (v = WORD_CHAR.test(String.fromCodePoint(cp))));
  return v;
}

const FNV_OFFSET = 0x811c9dc5;
const FNV_PRIME = 0x01000193;

/** A growable buffer of 32-bit word hashes (reused across records). */
export class WordBuffer {
  a = new Uint32Array(1024);
  n = 0;

  push(h: number): void {
    if (this.n === this.a.length) {
      const g = new Uint32Array(this.a.length * 2);
      g.set(this.a);
      this.a = g;
    }
    this.a[this.n++] = h;
  }

  /** the hashes as a fresh array */
  toArray(): Uint32Array {
    return this.a.slice(0, this.n);
  }
}

/**
 * Appends the word hashes of `s` to `out`. With `lower`, the words of `s.toLowerCase()`: ASCII letters
 * are folded in the scan; a string with any non-ASCII character is lowercased by toLowerCase() first
 * (full Unicode case mapping, as dedupText does).
 */
export function scanWords(s: string, out: WordBuffer, lower: boolean): void {
  const start = out.n;
  const len = s.length;
  let h = 0;
  let inWord = false;
  for (let i = 0; i < len; i++) {
    let c = s.charCodeAt(i);
    let word: boolean;
    if (c < 128) {
      word = BMP_CLASS[c] === 1;
      if (word && lower && c <= 90 && c >= 65) c |= 32;
    } else if (lower) {
      out.n = start;
      scanWords(s.toLowerCase(), out, false);
      return;
    } else if ((c & 0xfc00) === 0xd800 && i + 1 < len && (s.charCodeAt(i + 1) & 0xfc00) === 0xdc00) {
      // a surrogate pair: one code point, two code units in the hash
      const d = s.charCodeAt(i + 1);
      i++;
      if (astralIsWord(((c - 0xd800) << 10) + (d - 0xdc00) + 0x10000)) {
        if (!inWord) {
          h = FNV_OFFSET;
          inWord = true;
        }
        h = imul(imul(h ^ c, FNV_PRIME) ^ d, FNV_PRIME);
        continue;
      }
      word = false;
    } else word = bmpIsWord(c);
    if (word) {
      if (!inWord) {
        h = FNV_OFFSET;
        inWord = true;
      }
      h = imul(h ^ c, FNV_PRIME);
    } else if (inWord) {
      out.push(h >>> 0);
      inWord = false;
    }
  }
  if (inWord) out.push(h >>> 0);
}

/** per ASCII byte: 0 when not a word character, else the character lowercased */
const ASCII_FOLD = new Uint8Array(256);
for (let c = 0; c < 128; c++) if (BMP_CLASS[c] === 1) ASCII_FOLD[c] = c >= 65 && c <= 90 ? c | 32 : c;
let scratch = Buffer.allocUnsafe(1 << 16);

/**
 * scanWords(s, out, true) for an ASCII string, over its bytes (a typed-array loop is faster than
 * charCodeAt); false, with nothing appended, when s is not ASCII.
 */
function scanAsciiLower(s: string, out: WordBuffer): boolean {
  const need = s.length * 3;
  // the scratch buffer grows to 1 MiB at most; a longer text gets a buffer of its own
  if (need > scratch.length && need <= 1 << 20) scratch = Buffer.allocUnsafe(need);
  const b = need <= scratch.length ? scratch : Buffer.allocUnsafe(need);
  const n = b.write(s, 0, 'utf8');
  if (n !== s.length) return false;
  let h = FNV_OFFSET;
  let inWord = false;
  for (let i = 0; i < n; i++) {
    const c = ASCII_FOLD[b[i]];
    if (c !== 0) {
      h = imul(h ^ c, FNV_PRIME);
      inWord = true;
    } else if (inWord) {
      out.push(h >>> 0);
      h = FNV_OFFSET;
      inWord = false;
    }
  }
  if (inWord) out.push(h >>> 0);
  return true;
}

/** The words of dedupText(messages) into `out` (cleared first), without building the text. */
export function scanMessages(messages: readonly { role: string; content: string }[], out: WordBuffer): void {
  out.n = 0;
  // `${role}: ${content}\n`: the separators are not word characters, so the words are those of each
  // part in turn, and lowercasing each part equals lowercasing the whole (no case mapping looks across
  // a space or a line end)
  for (let i = 0; i < messages.length; i++) {
    const { role, content } = messages[i];
    // the three roles are one word each: their hashes are known
    if (role === 'user') out.push(USER_HASH);
    else if (role === 'assistant') out.push(ASSISTANT_HASH);
    else if (!scanAsciiLower(role, out)) scanWords(role, out, true);
    if (!scanAsciiLower(content, out)) scanWords(content, out, true);
  }
}

function oneWordHash(w: string): number {
  const b = new WordBuffer();
  scanWords(w, b, false);
  return b.a[0];
}
const USER_HASH = oneWordHash('user');
const ASSISTANT_HASH = oneWordHash('assistant');

/** 32-bit hashes of the words of t (FNV-1a per word). */
function wordHashes(t: string): Uint32Array {
  const b = new WordBuffer();
  scanWords(t, b, false);
  return b.toArray();
}

/** The exact-duplicate key of a word sequence: two different 32-bit chains (a mixing one and an FNV-style one), 64 bits in all. */
function exactKeyOf(w: Uint32Array, n: number, out: Uint32Array): void {
  let a = 0x2545f491;
  let b = 0x6a09e667;
  for (let i = 0; i < n; i++) {
    a = mix32(a ^ w[i]);
    b = imul(b ^ w[i], 0x01000193) + 0x27d4eb2f;
  }
  out[0] = mix32(a ^ n);
  out[1] = mix32(b ^ imul(n, 0x9e3779b1));
}

/** The exact-duplicate key: a 64-bit digest (16 hex digits) of the words in order (formatting and punctuation ignored). */
export function exactKey(text: string): string {
  const w = wordHashes(text);
  const k = new Uint32Array(2);
  exactKeyOf(w, w.length, k);
  return k[0].toString(16).padStart(8, '0') + k[1].toString(16).padStart(8, '0');
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
  private readonly probes: Uint16Array;

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
    this.probes = new Uint16Array(opts.numPerm * PROBES);
    for (let i = 0; i < opts.numPerm; i++) for (let a = 1; a <= PROBES; a++) this.probes[i * PROBES + a - 1] = this.probe(i, a);
  }

  /** The shingles (hashes of consecutive word n-grams) of a text; short texts give one shingle of all words. */
  shingles(text: string): Uint32Array {
    const w = wordHashes(text);
    if (w.length === 0) return new Uint32Array(0);
    const k = this.opts.shingleWords;
    const n = Math.max(1, w.length - k + 1);
    const out = new Uint32Array(n);
    for (let i = 0; i < n; i++) out[i] = shingle(w, w.length, i, k);
    return out;
  }

  /**
   * The signature of a shingle set by one-permutation hashing with optimal densification (Shrivastava,
   * ICML 2017): each shingle is hashed once into one of numPerm bins, each bin keeps its minimum, and an
   * empty bin borrows the value of a non-empty bin chosen by a seeded probe sequence. Same estimator as
   * k-permutation MinHash (equal positions / numPerm), O(shingles + numPerm) instead of O(shingles x numPerm).
   */
  signature(shingles: Uint32Array, out: Uint32Array = new Uint32Array(this.opts.numPerm)): Uint32Array {
    out.fill(EMPTY);
    for (let s = 0; s < shingles.length; s++) this.add(shingles[s], out);
    if (shingles.length === 0) return out;
    this.densify(out);
    return out;
  }

  /**
   * signature(shingles(text)) from the word hashes, without materializing the shingles. The hot loop of
   * near-dedup: mix32 written out inline (same arithmetic) and two shingles per iteration, whose hash
   * chains are independent, so the CPU overlaps them.
   */
  signatureOfWords(w: Uint32Array, nw: number, out: Uint32Array): Uint32Array {
    out.fill(EMPTY);
    if (nw === 0) return out;
    const k = this.opts.shingleWords;
    const K = this.opts.numPerm;
    const n = Math.max(1, nw - k + 1);
    const seed = this.b[0];
    const A = this.a;
    // floor(h / 2^32 * K) is h >>> (32 - log2 K) when K is a power of two
    const shift = (K & (K - 1)) === 0 ? 32 - Math.log2(K) : -1;
    let i = 0;
    if (nw >= k) {
      // full windows: i and i + 1 (both end inside the words)
      for (; i + 1 < n; i += 2) {
        let x = 0x9747b28c;
        let y = 0x9747b28c;
        for (let j = 0; j < k; j++) {
          x ^= w[i + j];
          x ^= x >>> 16;
          x = imul(x, 0x85ebca6b);
          x ^= x >>> 13;
          x = imul(x, 0xc2b2ae35);
          x ^= x >>> 16;
          x = ((x >>> 0) + j) | 0;
          y ^= w[i + 1 + j];
          y ^= y >>> 16;
          y = imul(y, 0x85ebca6b);
          y ^= y >>> 13;
          y = imul(y, 0xc2b2ae35);
          y ^= y >>> 16;
          y = ((y >>> 0) + j) | 0;
        }
        // the shingle's hash, then mixed with the seed
        x ^= x >>> 16;
        x = imul(x, 0x85ebca6b);
        x ^= x >>> 13;
        x = imul(x, 0xc2b2ae35);
        x ^= x >>> 16;
        y ^= y >>> 16;
        y = imul(y, 0x85ebca6b);
        y ^= y >>> 13;
        y = imul(y, 0xc2b2ae35);
        y ^= y >>> 16;
        x ^= seed;
        y ^= seed;
        x ^= x >>> 16;
        x = imul(x, 0x85ebca6b);
        x ^= x >>> 13;
        x = imul(x, 0xc2b2ae35);
        x ^= x >>> 16;
        y ^= y >>> 16;
        y = imul(y, 0x85ebca6b);
        y ^= y >>> 13;
        y = imul(y, 0xc2b2ae35);
        y ^= y >>> 16;
        const bx = shift >= 0 ? x >>> shift : floor(((x >>> 0) / 4294967296) * K);
        const by = shift >= 0 ? y >>> shift : floor(((y >>> 0) / 4294967296) * K);
        let u = x ^ A[bx];
        let v = y ^ A[by];
        u ^= u >>> 16;
        u = imul(u, 0x85ebca6b);
        u ^= u >>> 13;
        u = imul(u, 0xc2b2ae35);
        u ^= u >>> 16;
        v ^= v >>> 16;
        v = imul(v, 0x85ebca6b);
        v ^= v >>> 13;
        v = imul(v, 0xc2b2ae35);
        v ^= v >>> 16;
        u >>>= 0;
        v >>>= 0;
        if (u < out[bx]) out[bx] = u;
        if (v < out[by]) out[by] = v;
      }
    }
    for (; i < n; i++) this.add(shingle(w, nw, i, k), out);
    this.densify(out);
    return out;
  }

  private add(shingleHash: number, out: Uint32Array): void {
    const h = mix32(shingleHash ^ this.b[0]);
    // floor(h / 2^32 * K): exact in doubles (the same bin as h * (K / 2^32))
    const bin = floor((h / 4294967296) * this.opts.numPerm);
    const v = mix32(h ^ this.a[bin]);
    if (v < out[bin]) out[bin] = v;
  }

  /** The bin that an empty bin i borrows from at the given attempt (1, 2, ...) of its probe sequence. */
  private probe(i: number, attempt: number): number {
    return floor((mix32(imul(i, 0x9e3779b1) ^ imul(attempt, 0x85ebca6b) ^ this.b[0]) / 4294967296) * this.opts.numPerm);
  }

  private densify(out: Uint32Array): void {
    const K = this.opts.numPerm;
    const filled = this.densifyScratch;
    let empty = 0;
    for (let i = 0; i < K; i++) {
      const v = out[i];
      filled[i] = v;
      if (v === EMPTY) empty++;
    }
    if (empty === 0) return;
    // the probe sequences do not depend on the record: their first PROBES steps come from a table
    const table = this.probes;
    for (let i = 0; i < K; i++) {
      if (filled[i] !== EMPTY) continue;
      let found = false;
      for (let a = 0, p = i * PROBES; a < PROBES; a++, p++) {
        const j = table[p];
        if (filled[j] !== EMPTY) {
          out[i] = filled[j];
          found = true;
          break;
        }
      }
      for (let attempt = PROBES + 1; !found; attempt++) {
        const j = this.probe(i, attempt);
        if (filled[j] !== EMPTY) {
          out[i] = filled[j];
          found = true;
        }
      }
    }
  }
}

/** Densification probes precomputed per bin (an empty bin looks further only when all of these are empty too). */
const PROBES = 32;

/** The hash of the shingle of words i .. i+k-1 (fewer at the end when there are fewer than k words). */
function shingle(w: Uint32Array, nw: number, i: number, k: number): number {
  let h = 0x9747b28c;
  const end = i + k < nw ? i + k : nw;
  for (let j = i; j < end; j++) h = (mix32(h ^ w[j]) + j - i) | 0;
  return mix32(h);
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

const UNIQUE: DedupVerdict = Object.freeze({ kind: 'unique' });

/** Open addressing (linear probing, load <= 1/2) from a 64-bit key (two well-mixed 32-bit halves) to an int >= 0. */
class KeyTable {
  /** [k1, k2, value + 1, unused] per entry (one cache line per probe); value + 1 === 0: empty */
  private t = new Int32Array(4096);
  private size = 0;

  get(a: number, b: number): number {
    const t = this.t;
    const mask = (t.length >> 2) - 1;
    a |= 0;
    b |= 0;
    for (let i = a & mask; ; i = (i + 1) & mask) {
      const v = t[4 * i + 2];
      if (v === 0) return -1;
      if (t[4 * i] === a && t[4 * i + 1] === b) return v - 1;
    }
  }

  /** adds a key that is not in the table */
  add(a: number, b: number, value: number): void {
    if ((this.size + 1) * 8 > this.t.length) this.grow();
    this.size++;
    this.put(this.t, a | 0, b | 0, value + 1);
  }

  private put(t: Int32Array, a: number, b: number, v1: number): void {
    const mask = (t.length >> 2) - 1;
    let i = a & mask;
    while (t[4 * i + 2] !== 0) i = (i + 1) & mask;
    t[4 * i] = a;
    t[4 * i + 1] = b;
    t[4 * i + 2] = v1;
  }

  private grow(): void {
    const old = this.t;
    this.t = new Int32Array(old.length * 2);
    for (let j = 0; j < old.length; j += 4) if (old[j + 2] !== 0) this.put(this.t, old[j], old[j + 1], old[j + 2]);
  }
}

/**
 * One LSH band: open addressing from a 32-bit band key (already mixed) to the first slot stored under it;
 * the slots under one key are chained in insertion order through `next`. Key and slot sit side by side
 * (one cache line per probe).
 */
class BandTable {
  /** [key, slot + 1] pairs; slot + 1 === 0: empty */
  private t = new Int32Array(2048);
  private size = 0;
  next = new Int32Array(1024);

  /** the first slot under key, or -1 */
  first(key: number): number {
    const t = this.t;
    const mask = (t.length >> 1) - 1;
    key |= 0;
    for (let i = key & mask; ; i = (i + 1) & mask) {
      const s = t[2 * i + 1];
      if (s === 0 || t[2 * i] === key) return s - 1;
    }
  }

  /** appends slot (the largest so far) under key */
  add(key: number, slot: number): void {
    if (slot >= this.next.length) {
      const g = new Int32Array(this.next.length * 2);
      g.set(this.next);
      this.next = g;
    }
    this.next[slot] = -1;
    key |= 0;
    if ((this.size + 1) * 4 > this.t.length) this.grow();
    const t = this.t;
    const mask = (t.length >> 1) - 1;
    let i = key & mask;
    for (; ; i = (i + 1) & mask) {
      const s = t[2 * i + 1];
      if (s === 0) break;
      if (t[2 * i] === key) {
        let last = s - 1;
        while (this.next[last] >= 0) last = this.next[last];
        this.next[last] = slot;
        return;
      }
    }
    this.size++;
    t[2 * i] = key;
    t[2 * i + 1] = slot + 1;
  }

  private grow(): void {
    const old = this.t;
    const t = (this.t = new Int32Array(old.length * 2));
    const mask = (t.length >> 1) - 1;
    for (let j = 0; j < old.length; j += 2) {
      if (old[j + 1] === 0) continue;
      let i = old[j] & mask;
      while (t[2 * i + 1] !== 0) i = (i + 1) & mask;
      t[2 * i] = old[j];
      t[2 * i + 1] = old[j + 1];
    }
  }
}

/** Signatures are stored in chunks of this many records (no copy of everything when the index grows). */
const SIG_CHUNK = 4096;

/**
 * The index over kept records. check() answers whether a record duplicates one already kept and, when
 * it does not, keeps it under the given id (ids are the caller's record numbers).
 */
export class DedupIndex {
  private readonly exactTable = new KeyTable();
  private readonly bandTables: BandTable[];
  private readonly sigChunks: Uint32Array[] = [];
  private sigIds = new Int32Array(1024);
  /** per slot, the number of the last check that compared it (a candidate is compared once per check) */
  private seen = new Int32Array(1024);
  private stamp = 0;
  private count = 0;
  private slots = 0;
  private readonly hasher: MinHasher;
  private readonly sig: Uint32Array;
  private readonly bandKeys: Uint32Array;
  private readonly bandHeads: Int32Array;
  private readonly key = new Uint32Array(2);
  private readonly words = new WordBuffer();
  exactHits = 0;
  nearHits = 0;

  constructor(readonly opts: MinHashOptions & { exact: boolean; near: boolean }) {
    this.hasher = new MinHasher(opts);
    this.bandTables = Array.from({ length: opts.bands }, () => new BandTable());
    this.sig = new Uint32Array(opts.numPerm);
    this.bandKeys = new Uint32Array(opts.bands);
    this.bandHeads = new Int32Array(opts.bands);
  }

  /** Number of records kept in the index. */
  get size(): number {
    return this.count;
  }

  /** check() of a text as given (dedupText's output: already lowercased). */
  check(text: string, id: number): DedupVerdict {
    this.words.n = 0;
    scanWords(text, this.words, false);
    return this.checkWords(id);
  }

  /** The same verdict as check(dedupText(messages), id), without building the text. */
  checkMessages(messages: readonly { role: string; content: string }[], id: number): DedupVerdict {
    scanMessages(messages, this.words);
    return this.checkWords(id);
  }

  private checkWords(id: number): DedupVerdict {
    const w = this.words.a;
    const nw = this.words.n;
    const { key } = this;
    if (this.opts.exact) {
      exactKeyOf(w, nw, key);
      const of = this.exactTable.get(key[0], key[1]);
      if (of >= 0) {
        this.exactHits++;
        return { kind: 'exact', of, similarity: 1 };
      }
    }
    const P = this.opts.numPerm;
    if (this.opts.near) {
      const sig = this.hasher.signatureOfWords(w, nw, this.sig);
      const r = this.hasher.rows;
      const stamp = ++this.stamp;
      const seen = this.seen;
      const threshold = this.opts.threshold;
      const B = this.opts.bands;
      const keys = this.bandKeys;
      const heads = this.bandHeads;
      // all band keys first, then all lookups: independent loads whose cache misses overlap
      for (let band = 0; band < B; band++) {
        let h = imul(band, 0x27d4eb2d);
        for (let i = band * r; i < (band + 1) * r; i++) {
          h ^= sig[i];
          h ^= h >>> 16;
          h = imul(h, 0x85ebca6b);
          h ^= h >>> 13;
          h = imul(h, 0xc2b2ae35);
          h ^= h >>> 16;
        }
        keys[band] = h >>> 0;
      }
      for (let band = 0; band < B; band++) heads[band] = this.bandTables[band].first(keys[band]);
      for (let band = 0; band < B; band++) {
        const table = this.bandTables[band];
        for (let slot = heads[band]; slot >= 0; slot = table.next[slot]) {
          if (seen[slot] === stamp) continue;
          seen[slot] = stamp;
          const chunk = this.sigChunks[(slot / SIG_CHUNK) | 0];
          const off = (slot % SIG_CHUNK) * P;
          let eq = 0;
          for (let i = 0; i < P; i++) if (sig[i] === chunk[off + i]) eq++;
          const sim = eq / P;
          if (sim >= threshold) {
            this.nearHits++;
            return { kind: 'near', of: this.sigIds[slot], similarity: sim };
          }
        }
      }
    }
    // keep it
    if (this.opts.exact) this.exactTable.add(key[0], key[1], id);
    if (this.opts.near) {
      const slot = this.slots++;
      if (slot % SIG_CHUNK === 0) this.sigChunks.push(new Uint32Array(SIG_CHUNK * P));
      this.sigChunks[(slot / SIG_CHUNK) | 0].set(this.sig, (slot % SIG_CHUNK) * P);
      if (slot >= this.sigIds.length) {
        const ids = new Int32Array(this.sigIds.length * 2);
        ids.set(this.sigIds);
        this.sigIds = ids;
        const seen = new Int32Array(this.seen.length * 2);
        seen.set(this.seen);
        this.seen = seen;
      }
      this.sigIds[slot] = id;
      for (let band = 0; band < this.opts.bands; band++) this.bandTables[band].add(this.bandKeys[band], slot);
    }
    this.count++;
    return UNIQUE;
  }
}
