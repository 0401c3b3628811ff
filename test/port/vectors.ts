// The cross-language MessagePack vectors (test/vectors/msgpack.json): tagged JSON values -> JS values.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

export interface Vector {
  name: string;
  value: unknown;
  hex: string | (string | [string, number])[];
  encoders?: string[];
  decoders?: string[];
}

export function loadVectors(): Vector[] {
  return (JSON.parse(readFileSync(join(process.cwd(), 'test', 'vectors', 'msgpack.json'), 'utf8')) as { vectors: Vector[] }).vectors;
}

export function vectorBytes(v: Vector): Buffer {
  const parts = typeof v.hex === 'string' ? [v.hex] : v.hex;
  return Buffer.concat(parts.map((p) => (typeof p === 'string' ? Buffer.from(p, 'hex') : Buffer.alloc(p[1], Number.parseInt(p[0], 16)))));
}

/** The JS value a tagged JSON value stands for. */
export function jsValue(t: unknown): unknown {
  if (Array.isArray(t)) return t.map(jsValue);
  if (t === null || typeof t !== 'object') return t;
  const o = t as Record<string, unknown>;
  if ('$int' in o) {
    const b = BigInt(o.$int as string);
    return b >= BigInt(Number.MIN_SAFE_INTEGER) && b <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(b) : b;
  }
  if ('$f64' in o) return typeof o.$f64 === 'string' ? Number(o.$f64) : o.$f64;
  if ('$bin' in o) return Buffer.from(o.$bin as string, 'hex');
  if ('$binrepeat' in o) {
    const [byte, n] = o.$binrepeat as [string, number];
    return Buffer.alloc(n, Number.parseInt(byte, 16));
  }
  if ('$repeat' in o) {
    const [ch, n] = o.$repeat as [string, number];
    return ch.repeat(n);
  }
  if ('$ext' in o) throw new Error('ext vectors are Elixir-only');
  return Object.fromEntries(Object.entries(o).map(([k, v]) => [k, jsValue(v)]));
}
