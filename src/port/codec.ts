// MessagePack as other languages read it (the Elixir client's own codec, Python's msgpack, ...).
//
// msgpackr is tuned for JS-to-JS by default: records (a private extension) are on, `undefined` becomes
// an extension, and integers beyond 32 bits are written as float64. Here: plain maps, undefined -> nil,
// str for strings, bin for Buffer/Uint8Array, float64 for non-integers, and every integer as an integer
// (safe integers beyond 32 bits are widened to int64/uint64 before packing). Decoding: int64/uint64
// become numbers inside +-2^53 and bigints beyond, so a 64-bit id from Elixir is never rounded.
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
export function widenIntegers(value: unknown): unknown {
  switch (typeof value) {
    case 'number':
      return Number.isInteger(value) && (value < INT32_MIN || value > UINT32_MAX) && Number.isSafeInteger(value) ? BigInt(value) : value;
    case 'object': {
      if (value === null || value instanceof Uint8Array) return value;
      if (Array.isArray(value)) {
        let out: unknown[] | undefined;
        for (let i = 0; i < value.length; i++) {
          const v = value[i];
          const w = widenIntegers(v);
          if (w !== v) (out ??= value.slice())[i] = w;
        }
        return out ?? value;
      }
      if (value instanceof Map) {
        const out = new Map();
        for (const [k, v] of value) out.set(widenIntegers(k), widenIntegers(v));
        return out;
      }
      if (typeof (value as { toJSON?: unknown }).toJSON === 'function') return widenIntegers((value as { toJSON: () => unknown }).toJSON());
      let out: Record<string, unknown> | undefined;
      for (const k of Object.keys(value)) {
        const v = (value as Record<string, unknown>)[k];
        const w = widenIntegers(v);
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
