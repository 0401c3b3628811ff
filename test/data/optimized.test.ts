// The pipeline's fast paths against straightforward references: the word scan, MinHash signature and
// typed-array LSH index against the original regex + Map implementation (same verdicts, same record
// named as the original), the index against exact Jaccard on a sample, the single-scan cleaning against
// normalizeText + scrub, the record serializations against JSON.stringify / canonicalJson, the byte line
// reader against node:readline, and a whole build against the version ids of the original pipeline.
import { createReadStream, readFileSync, writeFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { createInterface } from 'node:readline';
import { join } from 'node:path';
import { approximateRenderer, buildDataset, cleanMessages, DedupIndex, dedupText, emptyScrubCounts, jaccard, MinHasher, normalizeText, scrub, type DedupVerdict } from '../../src/data/index.js';
import { recordJson } from '../../src/data/build.js';
import { canonicalJson, exampleCanonicalJson, jsonString, messagesContentJson, mix32 } from '../../src/data/hash.js';
import { readLineBatches } from '../../src/data/io.js';
import { rng } from '../../src/data/readers/generated.js';
import type { DatasetRecord } from '../../src/data/schema.js';
import { stressCorpus, tempDir, write } from './helpers.js';

// local bindings: global Math lookups are slow inside jest's vm contexts
const imul = Math.imul;
const floor = Math.floor;
const min = Math.min;

// ---------------------------------------------------------------------------------------------------
// The original implementation (regex words, materialized shingles, Map-based LSH), kept as the reference.

const WORD = /[\p{L}\p{N}_]+/gu;
function refWordHashes(t: string): Uint32Array {
  const out: number[] = [];
  WORD.lastIndex = 0;
  for (let m = WORD.exec(t); m; m = WORD.exec(t)) {
    let h = 0x811c9dc5;
    for (let i = 0; i < m[0].length; i++) h = imul(h ^ m[0].charCodeAt(i), 0x01000193);
    out.push(h >>> 0);
  }
  return Uint32Array.from(out);
}

function refShingles(text: string, k: number): Uint32Array {
  const w = refWordHashes(text);
  if (w.length === 0) return new Uint32Array(0);
  const n = Math.max(1, w.length - k + 1);
  const out = new Uint32Array(n);
  for (let i = 0; i < n; i++) {
    let h = 0x9747b28c;
    for (let j = i; j < min(i + k, w.length); j++) h = mix32(h ^ w[j]) + j - i;
    out[i] = mix32(h);
  }
  return out;
}

function refSignature(h: MinHasher, shingles: Uint32Array): Uint32Array {
  const K = h.opts.numPerm;
  const seed = h.b[0];
  const out = new Uint32Array(K).fill(0xffffffff);
  for (let s = 0; s < shingles.length; s++) {
    const x = mix32(shingles[s] ^ seed);
    const bin = floor((x / 4294967296) * K);
    const v = mix32(x ^ h.a[bin]);
    if (v < out[bin]) out[bin] = v;
  }
  if (shingles.length === 0) return out;
  const filled = out.slice();
  for (let i = 0; i < K; i++) {
    if (filled[i] !== 0xffffffff) continue;
    for (let attempt = 1; ; attempt++) {
      const j = floor((mix32((i * 0x9e3779b1) ^ imul(attempt, 0x85ebca6b) ^ seed) / 4294967296) * K);
      if (filled[j] !== 0xffffffff) {
        out[i] = filled[j];
        break;
      }
    }
  }
  return out;
}

class RefIndex {
  private exact = new Map<string, number>();
  private bands: Map<number, number[]>[];
  private sigs: Uint32Array[] = [];
  private ids: number[] = [];
  private h: MinHasher;
  constructor(private o: { numPerm: number; bands: number; shingleWords: number; threshold: number; exact: boolean; near: boolean }) {
    this.h = new MinHasher(o);
    this.bands = Array.from({ length: o.bands }, () => new Map());
  }
  check(text: string, id: number): DedupVerdict {
    const key = this.o.exact ? refWordHashes(text).join(',') : undefined;
    if (key !== undefined && this.exact.has(key)) return { kind: 'exact', of: this.exact.get(key)!, similarity: 1 };
    let sig: Uint32Array | undefined;
    const keys: number[] = [];
    if (this.o.near) {
      sig = refSignature(this.h, refShingles(text, this.o.shingleWords));
      const r = this.h.rows;
      const seen = new Set<number>();
      for (let b = 0; b < this.o.bands; b++) {
        let x = b * 0x27d4eb2d;
        for (let i = b * r; i < (b + 1) * r; i++) x = mix32(x ^ sig[i]);
        keys.push(x);
        for (const slot of this.bands[b].get(x) ?? []) {
          if (seen.has(slot)) continue;
          seen.add(slot);
          let eq = 0;
          for (let i = 0; i < sig.length; i++) if (sig[i] === this.sigs[slot][i]) eq++;
          if (eq / sig.length >= this.o.threshold) return { kind: 'near', of: this.ids[slot], similarity: eq / sig.length };
        }
      }
    }
    if (key !== undefined) this.exact.set(key, id);
    if (sig) {
      const slot = this.sigs.length;
      this.sigs.push(sig);
      this.ids.push(id);
      keys.forEach((x, b) => (this.bands[b].get(x) ?? this.bands[b].set(x, []).get(x)!).push(slot));
    }
    return { kind: 'unique' };
  }
}

const ODD = ['ΣΊΣΥΦΟΣ', 'ὈΔΥΣΣΕΎΣ', 'İstanbul', 'straße', 'naïve', 'Café', 'Ǆemal', '日本語', 'テスト', '𝐀𝐁𝐂', '𝒳yz', '😀', 'e\u0301', 'ﬁle', 'Ⅻ', '٣٤٥', 'x²', 'aΣ', 'aΣb', 'Σ.', 'K', '\u0130', 'ẞ', '\ud800x', 'y\udc00', '𐐀', 'foo_bar', '{:ok,', 'HELLO', "it's", 'a-b', '42'];
const PLAIN = 'the supervisor restarts the child when it crashes and the registry tracks names of processes'.split(' ');

/** A stream of conversations, a third of them copies of earlier ones with a few words changed (some uppercased). */
function stream(seed: number, n: number): { role: string; content: string }[][] {
  const r = rng(seed);
  const pick = <T>(xs: readonly T[]) => xs[Math.floor(r() * xs.length)];
  const text = (k: number) => Array.from({ length: k }, () => (r() < 0.4 ? pick(ODD) : pick(PLAIN))).join(r() < 0.2 ? '\n' : ' ');
  const out: { role: string; content: string }[][] = [];
  const bases: { role: string; content: string }[][] = [];
  for (let i = 0; i < n; i++) {
    if (r() < 0.35 && bases.length) {
      const msgs = pick(bases).map((m) => ({ ...m }));
      const last = msgs[msgs.length - 1];
      const w = last.content.split(' ');
      for (let k = Math.floor(r() * 4); k > 0; k--) w[Math.floor(r() * w.length)] = pick([...ODD, ...PLAIN]);
      last.content = r() < 0.3 ? w.join('  ').toUpperCase() : w.join(' ');
      out.push(msgs);
    } else {
      const msgs = [
        { role: 'user', content: text(1 + Math.floor(r() * 6)) },
        { role: 'assistant', content: text(Math.floor(r() * 50)) },
      ];
      bases.push(msgs);
      out.push(msgs);
    }
  }
  return out;
}

describe('dedup fast paths', () => {
  test('word scan, shingles and signatures equal the regex reference on Unicode text', () => {
    const h = new MinHasher({ numPerm: 128, bands: 16, shingleWords: 3, threshold: 0.8 });
    const h2 = new MinHasher({ numPerm: 100, bands: 20, shingleWords: 2, threshold: 0.8 }); // not a power of two
    const r = rng(3);
    for (let i = 0; i < 3000; i++) {
      const t = Array.from({ length: Math.floor(r() * 12) }, () => (r() < 0.5 ? ODD : PLAIN)[Math.floor(r() * 8)]).join(r() < 0.5 ? ' ' : '');
      for (const [m, k] of [[h, 3], [h2, 2]] as const) {
        const sh = m.shingles(t);
        expect(Array.from(sh)).toEqual(Array.from(refShingles(t, k)));
        expect(Array.from(m.signature(sh))).toEqual(Array.from(refSignature(m, sh)));
      }
    }
  });

  test('the typed-array index gives the reference verdicts (kind, record, similarity), from messages or from text', () => {
    const configs = [
      { numPerm: 128, bands: 16, shingleWords: 3, threshold: 0.8 },
      { numPerm: 96, bands: 12, shingleWords: 1, threshold: 0.5 },
      { numPerm: 100, bands: 25, shingleWords: 2, threshold: 0.3 },
    ];
    const data = stream(11, 2500);
    for (const c of configs) {
      for (const [exact, near] of [[true, true], [true, false], [false, true]]) {
        const ref = new RefIndex({ ...c, exact, near });
        const fromMessages = new DedupIndex({ ...c, exact, near });
        const fromText = new DedupIndex({ ...c, exact, near });
        const got: DedupVerdict[] = [];
        const want: DedupVerdict[] = [];
        data.forEach((msgs, i) => {
          want.push(ref.check(dedupText(msgs), i));
          const v = fromMessages.checkMessages(msgs, i);
          expect(fromText.check(dedupText(msgs), i)).toEqual(v);
          got.push(v);
        });
        expect(got).toEqual(want);
        expect(got.filter((v) => v.kind !== 'unique').length).toBeGreaterThan(150);
      }
    }
  });

  test('on a sample, MinHash/LSH finds the pairs that exact Jaccard finds, and nothing far', () => {
    const opts = { numPerm: 128, bands: 16, shingleWords: 3, threshold: 0.8 };
    const h = new MinHasher(opts);
    const r = rng(5);
    const words = Array.from({ length: 400 }, (_, i) => `w${i}`);
    const texts: string[] = [];
    // 150 originals; 150 copies with 0..5.4% of their words replaced (true Jaccard from 1 down to ~0.7)
    for (let i = 0; i < 150; i++) texts.push(Array.from({ length: 60 + Math.floor(r() * 60) }, () => words[Math.floor(r() * words.length)]).join(' '));
    for (let i = 0; i < 150; i++) {
      const frac = (i % 10) * 0.006;
      texts.push(texts[i].split(' ').map((w) => (r() < frac ? `z${Math.floor(r() * 1e6)}` : w)).join(' '));
    }
    const sh = texts.map((t) => h.shingles(t));
    const idx = new DedupIndex({ ...opts, exact: false, near: true });
    const kept: number[] = [];
    let recalled = 0;
    let shouldRecall = 0;
    texts.forEach((t, i) => {
      const v = idx.check(t, i);
      const best = Math.max(0, ...kept.map((k) => jaccard(sh[i], sh[k])));
      if (v.kind === 'near') expect(jaccard(sh[i], sh[v.of])).toBeGreaterThan(0.65); // estimate >= 0.8, SE ~0.035
      if (best >= 0.9) {
        shouldRecall++;
        if (v.kind === 'near') recalled++;
      }
      if (best < 0.6) expect(v.kind).toBe('unique');
      if (v.kind === 'unique') kept.push(i);
    });
    expect(shouldRecall).toBeGreaterThan(40);
    expect(recalled).toBe(shouldRecall); // LSH recall at J >= 0.9 is ~100%
  });
});

describe('cleaning fast path', () => {
  const atoms = ['-', '--', '-----BEGIN RSA PRIVATE KEY-----\nabc\n-----END RSA PRIVATE KEY-----', 'sk-', 'sk-abcdefghijklmnopqrstuvwxyz', 'SK-', 'ghp_', 'ghs_abcdefghijklmnopqrstuvwxyz0123456789', 'github_pat_', 'AKIA', 'AKIAABCDEFGHIJKLMNOP', 'AKIa', 'xoxb-', 'xoxb-1234567890ab', 'xoxc-', 'AIza', 'glpat-', 'hf_', 'hf_abcdefghijklmnopqrstuvwxyz01234567', 'eyJ', 'eYJ', 'eyJabcdefghij.eyJabcdefghij.abcdefghij', 'Bearer ', 'bEaReR abcdefghijklmnopqrstu', 'password', 'PassWD=', 'secret', 'SECRET=', 'token: abcdefghij', 'api_key=', 'ApI-KeY:', 'apikey', 'Cookie: abcdefghij', 'look', '@', 'me@example.com', 'a@b.c', 'n@h-1.', '%@a.bc', '@doc', '1.2', '10.0.0.1', '127.0.0.1', '::', 'fe80::1', 'dead:beef:cafe:', '/home/', '/home/bob', '/Users/x', 'C:\\Users\\bob', ' ', '\t', '\n', '\n\n\n', '\r', '\r\n', '\u0000', '\u007f', '\u0085', '\u200b', '\u202e', '\ufeff', '\u00a0', 'é', 'e\u0301', 'ﬁ', 'Ｋ', '𝐀', '\ud800', '"', '\\', 'x', 'A', 'J', 'k', 'w', 'c', 'b', ':', '.', '/', '_', '0', 'f', '=', 'abcdefghijklmnopqrstuvwxyz0123456789'];

  test('cleanMessages equals normalizeText then scrub, and its content JSON equals JSON.stringify', () => {
    const r = rng(17);
    for (let i = 0; i < 15000; i++) {
      let s = '';
      for (let j = Math.floor(r() * 12); j > 0; j--) s += atoms[Math.floor(r() * atoms.length)];
      for (const normalization of ['NFC', 'NFKC'] as const) {
        const doScrub = i % 5 !== 0;
        const want = emptyScrubCounts();
        let expected = normalizeText(s, normalization);
        if (doScrub) expected = scrub(expected, want);
        const got = emptyScrubCounts();
        const json: (string | undefined)[] = [];
        const [m] = cleanMessages([{ role: 'user', content: s }], { normalization, scrub: doScrub }, got, json);
        expect(m.content).toBe(expected);
        expect(got).toEqual(want);
        expect(json[0]).toBe(JSON.stringify(expected));
      }
    }
  });
});

describe('serialization fast paths', () => {
  test('jsonString, exampleCanonicalJson and recordJson equal JSON.stringify / canonicalJson', () => {
    const parts = ['a', '"', '\\', '\n', '\t', '\u0000', '\u001f', '\u007f', '\u2028', '\ud800', '\udc00', '😀', 'é', ' ', 'plain text'];
    const r = rng(23);
    const str = () => Array.from({ length: Math.floor(r() * 8) }, () => parts[Math.floor(r() * parts.length)]).join('');
    for (let i = 0; i < 3000; i++) {
      const s = str();
      expect(jsonString(s)).toBe(JSON.stringify(s));
      const messages = Array.from({ length: 2 + Math.floor(r() * 3) }, (_, j) => ({ role: j % 2 ? 'assistant' : 'user', content: str() || 'x' }));
      const cj = messagesContentJson(messages);
      expect(exampleCanonicalJson('memory_context', messages, cj)).toBe(canonicalJson({ category: 'memory_context', messages }));
      const rec: DatasetRecord = { hash: 'ab'.repeat(32), category: 'memory_context', messages: messages as DatasetRecord['messages'], metadata: { rating: 3, tag: str(), gone: undefined }, origin: { source: `s${str()}`, file: 'a.jsonl', line: i }, tokens: i * 7 };
      expect(recordJson(rec, cj)).toBe(JSON.stringify(rec));
    }
  });

  test('the approximate token count is the count of the regex pieces', () => {
    const PIECE = /'(?:[sdmt]|ll|ve|re)| ?\p{L}+| ?\p{N}{1,3}| ?[^\s\p{L}\p{N}]+|\s+/gu;
    const ref = (t: string) => {
      let n = 0;
      PIECE.lastIndex = 0;
      for (let m = PIECE.exec(t); m; m = PIECE.exec(t)) n += m[0].length <= 5 ? 1 : Math.ceil(m[0].length / 4.5);
      return n;
    };
    const parts = ["'s", "'ll", "'", 'abc', ' abcdefghij', '1234567', ' 12', '!!', ' !?', '  ', '\n', 'é', '😀', '\ud800', 'ΣΣΣΣΣΣΣΣΣ', '\u00a0'];
    const r = rng(29);
    for (let i = 0; i < 5000; i++) {
      const s = Array.from({ length: Math.floor(r() * 10) }, () => parts[Math.floor(r() * parts.length)]).join('');
      expect(approximateRenderer.countText(s)).toBe(ref(s));
    }
  });
});

describe('line reader', () => {
  test('splits like node:readline (\\n, \\r\\n, lone \\r, last line, BOM kept) across any block boundary', async () => {
    const dir = tempDir();
    const parts = ['a', 'bc', '\n', '\r', '\r\n', '\n\r', 'é', '😀', '\ufeff', ' ', '{"x":1}', 'x'.repeat(40)];
    const r = rng(31);
    for (let it = 0; it < 60; it++) {
      const text = Array.from({ length: Math.floor(r() * 60) }, () => parts[Math.floor(r() * parts.length)]).join('');
      const file = write(dir, `t${it}.txt`, text);
      const want: string[] = [];
      for await (const l of createInterface({ input: createReadStream(file, { encoding: 'utf8' }), crlfDelay: Infinity })) want.push(l);
      for (const block of [1, 2, 3, 7, 1 << 20]) {
        const got: string[] = [];
        const hash = createHash('sha256');
        for await (const batch of readLineBatches(file, (b) => hash.update(b), block)) got.push(...batch);
        expect(got).toEqual(want);
        expect(hash.digest('hex')).toBe(createHash('sha256').update(readFileSync(file)).digest('hex'));
      }
    }
  });
});

describe('same input, same version', () => {
  // These ids and hashes were produced by the pipeline before its optimization (commit 90f1cdf, regex
  // words, Map-based LSH, readline, JSON.stringify twice): the optimized build must reproduce them.
  test('a stress corpus builds to the versions and files of the original pipeline', async () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'a.jsonl'), stressCorpus(7, 1500, rng));
    const now = () => new Date('2025-01-01T00:00:00Z');
    const short = (f: string) => createHash('sha256').update(readFileSync(f)).digest('hex').slice(0, 16);
    const a = await buildDataset({ config: { name: 'g', sources: [{ kind: 'interactions', path: 'a.jsonl' }] }, baseDir: dir, store: join(dir, 'store-a'), now });
    expect(a.versionId).toBe('e8992b3ffa4d1d6f');
    expect(a.manifest!.splits.train.sha256.slice(0, 16)).toBe('0795a17e0df5ddc0');
    expect(a.manifest!.splits.heldout.sha256.slice(0, 16)).toBe('90c783b2f18fbebb');
    expect(short(join(a.dir!, 'rejects.jsonl'))).toBe('e21ca9e2fb657d2d');
    expect(short(join(a.dir!, 'records.tsv'))).toBe('8e4a5b017b5e7fef');
    expect(a.report.duplicates).toEqual({ exact: 87, near: 138, threshold: 0.8 });
    expect(a.report.scrubbed).toEqual({ private_key: 0, api_key: 1012, jwt: 346, bearer_token: 314, secret_assignment: 681, email: 335, ipv4: 305, ipv6: 365, home_path: 312 });
    const b = await buildDataset({
      config: { name: 'g', sources: [{ kind: 'interactions', path: 'a.jsonl' }], clean: { normalization: 'NFKC' }, dedup: { numPerm: 96, bands: 12, shingleWords: 2, threshold: 0.7 } },
      baseDir: dir,
      store: join(dir, 'store-b'),
      now,
    });
    expect(b.versionId).toBe('f1947c9dc1035558');
    expect(b.manifest!.splits.train.sha256.slice(0, 16)).toBe('6551e076bdc10b7e');
    expect(short(join(b.dir!, 'rejects.jsonl'))).toBe('4ba9b522cce484bd');
    expect(b.report.duplicates).toEqual({ exact: 90, near: 156, threshold: 0.7 });
  });
});
