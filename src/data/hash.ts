// Hashes used by the pipeline: sha256 for content addresses, 32-bit mixes for sketches and splits,
// and crc32 for the collection log's record checksums.
import * as crypto from 'node:crypto';
import { createHash } from 'node:crypto';

// a local binding: a global lookup of Math.imul is not inlined inside vm contexts (jest), 100x slower there
const imul = Math.imul;

// the one-shot crypto.hash (Node >= 20.12) is several times cheaper than createHash for small inputs
const oneShot = (crypto as { hash?: (alg: string, data: string | Uint8Array, enc: 'hex') => string }).hash;

export function sha256(data: string | Uint8Array): string {
  return oneShot ? oneShot('sha256', data, 'hex') : createHash('sha256').update(data).digest('hex');
}

/** JSON with object keys sorted, so that equal values have equal text (and equal hashes). */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== 'object') return JSON.stringify(value) ?? 'null';
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  const keys = Object.keys(value as object)
    .filter((k) => (value as Record<string, unknown>)[k] !== undefined)
    .sort();
  return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson((value as Record<string, unknown>)[k])}`).join(',')}}`;
}

// what JSON.stringify escapes in a string: '"', '\\', U+0000..U+001F and lone surrogates (here: any surrogate)
// eslint-disable-next-line no-control-regex
const JSON_ESCAPED = /["\\\u0000-\u001f\ud800-\udfff]/;

/** JSON.stringify(s), with a cheaper path for the common string that needs no escape. */
export function jsonString(s: string): string {
  return JSON_ESCAPED.test(s) ? JSON.stringify(s) : `"${s}"`;
}

/**
 * JSON.stringify of each message's content: the escaped strings that the record hash and the record line
 * share. `known` (from cleanMessages) gives them for `knownFor`'s contents: used where the content is
 * that very string.
 */
export function messagesContentJson(messages: readonly { content: string }[], knownFor?: readonly { content?: unknown }[], known?: readonly (string | undefined)[]): string[] {
  const out = new Array<string>(messages.length);
  for (let i = 0; i < messages.length; i++) {
    const c = messages[i].content;
    const k = known?.[i];
    out[i] = k !== undefined && knownFor?.[i]?.content === c ? k : jsonString(c);
  }
  return out;
}

/**
 * canonicalJson({ category, messages }) of a validated example (every message exactly { role, content },
 * both strings: what the Message schema lets through), built directly from the contents' JSON.
 * Equal to the generic canonicalJson, which the tests check.
 */
export function exampleCanonicalJson(category: string, messages: readonly { role: string; content: string }[], contentJson: readonly string[]): string {
  let s = `{"category":${JSON.stringify(category)},"messages":[`;
  for (let i = 0; i < messages.length; i++) s += `${i ? ',' : ''}{"content":${contentJson[i]},"role":${JSON.stringify(messages[i].role)}}`;
  return `${s}]}`;
}

/** murmur3's 32-bit finalizer: a bijection on 32-bit integers that mixes every bit. */
export function mix32(h: number): number {
  h ^= h >>> 16;
  h = imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** FNV-1a over the UTF-16 code units of s (fast, deterministic; not for security). */
export function fnv1a(s: string, seed = 0x811c9dc5): number {
  let h = seed >>> 0;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = imul(h, 0x01000193);
  }
  return h >>> 0;
}

const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

/** CRC-32 (IEEE, the one of zlib and PNG). */
export function crc32(buf: Uint8Array): number {
  let c = 0xffffffff;
  for (let i = 0; i < buf.length; i++) c = CRC_TABLE[(c ^ buf[i]) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}
