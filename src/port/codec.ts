// MessagePack as other languages read it (the Elixir client's own codec, Python's msgpack, ...).
//
// msgpackr is tuned for JS-to-JS by default: records (a private extension) are on, `undefined` becomes
// an extension, and integers beyond 32 bits are written as float64. Here: plain maps, undefined -> nil,
// str for strings, bin for Buffer/Uint8Array, float64 for non-integers, and every integer as an integer
// (safe integers beyond 32 bits are widened to int64/uint64 before packing). Decoding: int64/uint64
// become numbers inside +-2^53 and bigints beyond, so a 64-bit id from Elixir is never rounded.
import { randomBytes } from 'node:crypto';
import { Packr, Unpackr, RESERVE_START_SPACE } from 'msgpackr';

const OPTIONS = {
  useRecords: false,
  structuredClone: false,
  moreTypes: false,
  mapsAsObjects: true,
  encodeUndefinedAsNil: true,
  /** fixmap/map16/map32 by size (msgpackr otherwise always writes map16): the same bytes as other encoders */
  variableMapSize: true,
  // 'auto' (numbers within +-2^53, bigints beyond) is supported at run time; the typings list only three
  int64AsType: 'auto' as 'bigint',
  useFloat32: 0,
} as const;

const packr = new Packr(OPTIONS);
const unpackr = new Unpackr(OPTIONS);

const INT32_MIN = -0x8000_0000;
const UINT32_MAX = 0xffff_ffff;

/**
 * A copy of `value` in which every integer outside [-2^31, 2^32) is a bigint, so msgpackr writes it
 * as int64/uint64 instead of float64, and objects with toJSON (Date) are replaced by its result.
 * Objects that need no change are returned as they are (no copy).
 */
export function widenIntegers(value: unknown, bigs?: Uint8Array[]): unknown {
  switch (typeof value) {
    case 'number':
      return Number.isInteger(value) && (value < INT32_MIN || value > UINT32_MAX) && Number.isSafeInteger(value) ? BigInt(value) : value;
    case 'object': {
      if (value === null) return value;
      if (value instanceof Uint8Array) return bigs && value.byteLength >= BIG_BIN_BYTES ? placeholder(value, bigs) : value;
      if (Array.isArray(value)) {
        let out: unknown[] | undefined;
        for (let i = 0; i < value.length; i++) {
          const v = value[i];
          const w = widenIntegers(v, bigs);
          if (w !== v) (out ??= value.slice())[i] = w;
        }
        return out ?? value;
      }
      if (value instanceof Map) {
        const out = new Map();
        for (const [k, v] of value) out.set(widenIntegers(k, bigs), widenIntegers(v, bigs));
        return out;
      }
      if (typeof (value as { toJSON?: unknown }).toJSON === 'function') return widenIntegers((value as { toJSON: () => unknown }).toJSON(), bigs);
      let out: Record<string, unknown> | undefined;
      // for-in over a plain object's own keys (no array of keys allocated per object)
      for (const k in value) {
        if (!Object.hasOwn(value, k)) continue;
        const v = (value as Record<string, unknown>)[k];
        const w = widenIntegers(v, bigs);
        if (w !== v) (out ??= { ...(value as Record<string, unknown>) })[k] = w;
      }
      return out ?? value;
    }
    default:
      return value;
  }
}

/** One MessagePack value's bytes (tests and the cross-language vectors). */
export function pack(value: unknown): Buffer {
  return Buffer.from(packr.pack(widenIntegers(value)));
}

/** Decodes exactly one MessagePack value; throws on truncated data or bytes left over. */
export function unpack(bytes: Uint8Array): unknown {
  return unpackr.unpack(bytes);
}

/**
 * A whole frame: 4-byte big-endian length then the packed value, in one buffer (msgpackr reserves the
 * header's room in front of the value, so the payload is not copied again).
 */
export function encodeFrame(value: unknown): Buffer {
  const buf = packr.pack(widenIntegers(value), RESERVE_START_SPACE | 4) as Buffer;
  buf.writeUInt32BE(buf.length - 4, 0);
  return buf;
}

/** bins at least this long are written by reference (encodeFrameChunks), not copied into the frame */
export const BIG_BIN_BYTES = 64 * 1024;

// A big bin is packed as a placeholder bin of 16 bytes: a random tag (fixed per process) and its index;
// the packed frame is then cut at each placeholder and the bin's own bytes go between the pieces.
const TAG = randomBytes(12);
const PLACEHOLDER_HEAD = Buffer.concat([Buffer.from([0xc4, 16]), TAG]);
const PLACEHOLDER_BYTES = 2 + 16;

function placeholder(bin: Uint8Array, bigs: Uint8Array[]): Buffer {
  const p = Buffer.allocUnsafe(16);
  TAG.copy(p, 0);
  p.writeUInt32BE(bigs.length, 12);
  bigs.push(bin);
  return p;
}

/**
 * A whole frame as buffers to write in order (one gathered write): the same bytes as encodeFrame, but
 * every bin of BIG_BIN_BYTES or more is referenced, not copied (its bytes must not change until written).
 */
export function encodeFrameChunks(value: unknown): Buffer[] {
  const bigs: Uint8Array[] = [];
  const widened = widenIntegers(value, bigs);
  const buf = packr.pack(widened, RESERVE_START_SPACE | 4) as Buffer;
  if (bigs.length === 0) {
    buf.writeUInt32BE(buf.length - 4, 0);
    return [buf];
  }
  const chunks: Buffer[] = [];
  let total = 0;
  let from = 0;
  let at = buf.indexOf(PLACEHOLDER_HEAD, 4);
  while (at >= 0) {
    const bin = bigs[buf.readUInt32BE(at + 14)];
    const head = Buffer.allocUnsafe(5);
    head[0] = 0xc6;
    head.writeUInt32BE(bin.byteLength, 1);
    const body = Buffer.isBuffer(bin) ? bin : Buffer.from(bin.buffer, bin.byteOffset, bin.byteLength);
    chunks.push(buf.subarray(from, at), head, body);
    total += at - from + 5 + body.length;
    from = at + PLACEHOLDER_BYTES;
    at = buf.indexOf(PLACEHOLDER_HEAD, from);
  }
  chunks.push(buf.subarray(from));
  total += buf.length - from;
  buf.writeUInt32BE(total - 4, 0);
  return chunks;
}
