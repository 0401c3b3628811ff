// The GGUF container, version 3, as llama.cpp's gguf-py (gguf_writer.py, constants.py) writes it,
// little-endian:
//   u32 magic "GGUF", u32 version 3, u64 tensor count, u64 metadata count
//   metadata: string key (u64 length + UTF-8), u32 value type, value (arrays: u32 item type, u64 count, items)
//   tensor infos: string name, u32 n_dims, u64 ne[n_dims] (innermost dimension first: the reverse of the
//                 numpy / PyTorch shape), u32 ggml type, u64 offset into the data section
//   padding to general.alignment (32 unless the key says otherwise), then each tensor's data at its
//   offset, every offset a multiple of the alignment.
// Tensor encodings: F32, F16, BF16 and Q8_0 (blocks of 32 values: an f16 scale d = max|x| / 127, then
// 32 int8 round(x / d), rounding half away from zero as gguf-py's quants.py).
import { replaceFile, writeAll } from '../model/atomic.js';
import { f32ToBf16, f32ToF16, f32ToF16Bits } from './precision.js';

export const GGUF_MAGIC = 0x46554747; // "GGUF" read as a little-endian u32
export const GGUF_VERSION = 3;
export const GGUF_DEFAULT_ALIGNMENT = 32;

/** gguf-py GGUFValueType */
const VALUE_TYPE = {
  uint8: 0,
  int8: 1,
  uint16: 2,
  int16: 3,
  uint32: 4,
  int32: 5,
  float32: 6,
  bool: 7,
  string: 8,
  array: 9,
  uint64: 10,
  int64: 11,
  float64: 12,
} as const;
export type GgufScalarType = Exclude<keyof typeof VALUE_TYPE, 'array'>;
type Scalar = number | bigint | boolean | string;

export type GgufValue =
  | { type: GgufScalarType; value: Scalar }
  | { type: 'array'; itemType: GgufScalarType; value: readonly Scalar[] };

/** Typed metadata values. */
export const gv = {
  u32: (value: number): GgufValue => ({ type: 'uint32', value }),
  i32: (value: number): GgufValue => ({ type: 'int32', value }),
  f32: (value: number): GgufValue => ({ type: 'float32', value }),
  bool: (value: boolean): GgufValue => ({ type: 'bool', value }),
  str: (value: string): GgufValue => ({ type: 'string', value }),
  arr: (itemType: GgufScalarType, value: readonly Scalar[]): GgufValue => ({ type: 'array', itemType, value }),
};

/** ggml tensor types written here (ggml.h enum ggml_type) and their block sizes. */
export const GGML_TYPES = {
  F32: { id: 0, blockSize: 1, blockBytes: 4 },
  F16: { id: 1, blockSize: 1, blockBytes: 2 },
  Q8_0: { id: 8, blockSize: 32, blockBytes: 34 },
  BF16: { id: 30, blockSize: 1, blockBytes: 2 },
} as const;
export type GgmlType = keyof typeof GGML_TYPES;

export interface GgufTensor {
  name: string;
  /** numpy / PyTorch order (outermost first); written reversed as ggml's ne */
  shape: readonly number[];
  type: GgmlType;
  /** the encoded bytes (encodeTensor), produced when written: one tensor in memory at a time */
  data: () => Uint8Array;
}

export class GgufError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'GgufError';
  }
}

/** Bytes of a tensor of `shape` in `type`; Q8_0 needs the innermost dimension to be a multiple of 32. */
export function tensorBytes(shape: readonly number[], type: GgmlType, name = 'tensor'): number {
  const t = GGML_TYPES[type];
  const inner = shape.length ? shape[shape.length - 1] : 1;
  if (inner % t.blockSize !== 0) throw new GgufError(`${name}: ${type} needs the row length (${inner}) to be a multiple of ${t.blockSize}`);
  const n = shape.reduce((a, b) => a * b, 1);
  return (n / t.blockSize) * t.blockBytes;
}

/** Whether a tensor of this shape can be stored as `type` (Q8_0 needs rows of whole blocks). */
export function canEncode(shape: readonly number[], type: GgmlType): boolean {
  const inner = shape.length ? shape[shape.length - 1] : 1;
  return inner % GGML_TYPES[type].blockSize === 0;
}

/** Q8_0 blocks of f32 values (gguf-py quants.py Q8_0.quantize_blocks). */
export function quantizeQ8_0(values: Float32Array): Uint8Array {
  if (values.length % 32 !== 0) throw new GgufError(`Q8_0 needs a multiple of 32 values, got ${values.length}`);
  const nb = values.length / 32;
  const out = new Uint8Array(nb * 34);
  const dv = new DataView(out.buffer);
  for (let b = 0; b < nb; b++) {
    let amax = 0;
    for (let i = 0; i < 32; i++) amax = Math.max(amax, Math.abs(values[b * 32 + i]));
    const d = Math.fround(amax / 127);
    dv.setUint16(b * 34, f32ToF16Bits(d), true);
    for (let i = 0; i < 32; i++) {
      const x = d === 0 ? 0 : Math.fround(values[b * 32 + i] / d);
      const q = Math.sign(x) * Math.floor(Math.abs(x) + 0.5); // roundf: half away from zero
      out[b * 34 + 2 + i] = q & 0xff;
    }
  }
  return out;
}

/** Encodes f32 values as a tensor type. */
export function encodeTensor(values: Float32Array, type: GgmlType): Uint8Array {
  const bytes = (v: ArrayBufferView) => new Uint8Array(v.buffer, v.byteOffset, v.byteLength);
  switch (type) {
    case 'F32':
      return bytes(values);
    case 'F16':
      return bytes(f32ToF16(values));
    case 'BF16':
      return bytes(f32ToBf16(values));
    case 'Q8_0':
      return quantizeQ8_0(values);
  }
}

type Writer = (b: Buffer, v: number | bigint, at: number) => void;
/** Size and little-endian writer of each numeric metadata type. */
const FIXED: Record<Exclude<GgufScalarType, 'string' | 'bool'>, [number, Writer]> = {
  uint8: [1, (b, v, at) => b.writeUInt8(Number(v), at)],
  int8: [1, (b, v, at) => b.writeInt8(Number(v), at)],
  uint16: [2, (b, v, at) => b.writeUInt16LE(Number(v), at)],
  int16: [2, (b, v, at) => b.writeInt16LE(Number(v), at)],
  uint32: [4, (b, v, at) => b.writeUInt32LE(Number(v), at)],
  int32: [4, (b, v, at) => b.writeInt32LE(Number(v), at)],
  float32: [4, (b, v, at) => b.writeFloatLE(Number(v), at)],
  uint64: [8, (b, v, at) => b.writeBigUInt64LE(BigInt(v), at)],
  int64: [8, (b, v, at) => b.writeBigInt64LE(BigInt(v), at)],
  float64: [8, (b, v, at) => b.writeDoubleLE(Number(v), at)],
};

/** Little-endian byte builder for the header: one growing buffer (tokenizer arrays hold 100k+ strings). */
class Bytes {
  private buf = Buffer.alloc(1 << 16);
  length = 0;
  private room(n: number): number {
    if (this.length + n > this.buf.length) {
      const next = Buffer.alloc(Math.max(this.buf.length * 2, this.length + n));
      this.buf.copy(next, 0, 0, this.length);
      this.buf = next;
    }
    const at = this.length;
    this.length += n;
    return at;
  }
  // room() may replace this.buf: always reserve before touching the buffer
  u8(v: number) {
    const at = this.room(1);
    this.buf.writeUInt8(v, at);
  }
  u32(v: number) {
    const at = this.room(4);
    this.buf.writeUInt32LE(v, at);
  }
  u64(v: number | bigint) {
    const at = this.room(8);
    this.buf.writeBigUInt64LE(BigInt(v), at);
  }
  str(s: string) {
    const n = Buffer.byteLength(s, 'utf8');
    this.u64(n);
    const at = this.room(n);
    this.buf.write(s, at, n, 'utf8');
  }
  scalar(type: GgufScalarType, v: Scalar, key: string) {
    if (type === 'string') {
      if (typeof v !== 'string') throw new GgufError(`metadata ${key}: string needs a string`);
      return this.str(v);
    }
    if (type === 'bool') return this.u8(v ? 1 : 0);
    if (typeof v !== 'number' && typeof v !== 'bigint') throw new GgufError(`metadata ${key}: ${type} needs a number, got ${typeof v}`);
    const [size, write] = FIXED[type];
    const at = this.room(size);
    write(this.buf, v, at);
  }
  pad(alignment: number) {
    const n = (alignment - (this.length % alignment)) % alignment;
    if (n) {
      const at = this.room(n);
      this.buf.fill(0, at, this.length);
    }
  }
  concat(): Buffer {
    return this.buf.subarray(0, this.length);
  }
}

export interface WriteGgufOptions {
  alignment?: number;
}

export interface GgufWriteResult {
  bytes: number;
  tensorTypes: Record<string, number>;
}

const align = (n: number, a: number) => Math.ceil(n / a) * a;

/**
 * Writes a GGUF v3 file atomically (temp file, fsync, rename). Metadata keys keep the given order;
 * tensors are laid out in the given order.
 */
export async function writeGguf(path: string, metadata: Iterable<readonly [string, GgufValue]>, tensors: readonly GgufTensor[], opts: WriteGgufOptions = {}): Promise<GgufWriteResult> {
  const alignment = opts.alignment ?? GGUF_DEFAULT_ALIGNMENT;
  const kv = [...metadata];
  if (alignment !== GGUF_DEFAULT_ALIGNMENT && !kv.some(([k]) => k === 'general.alignment')) kv.push(['general.alignment', gv.u32(alignment)]);
  const seenKeys = new Set<string>();
  const h = new Bytes();
  h.u32(GGUF_MAGIC);
  h.u32(GGUF_VERSION);
  h.u64(tensors.length);
  h.u64(kv.length);
  for (const [key, v] of kv) {
    if (seenKeys.has(key)) throw new GgufError(`metadata key ${key} is given twice`);
    seenKeys.add(key);
    h.str(key);
    h.u32(VALUE_TYPE[v.type]);
    if (v.type === 'array') {
      h.u32(VALUE_TYPE[v.itemType]);
      h.u64(v.value.length);
      for (const item of v.value) h.scalar(v.itemType, item, key);
    } else {
      h.scalar(v.type, v.value, key);
    }
  }
  const sizes: number[] = [];
  const offsets: number[] = [];
  const names = new Set<string>();
  const tensorTypes: Record<string, number> = {};
  let offset = 0;
  for (const t of tensors) {
    if (names.has(t.name)) throw new GgufError(`two tensors are named ${t.name}`);
    names.add(t.name);
    if (Buffer.byteLength(t.name) >= 64) throw new GgufError(`tensor name ${t.name} is longer than ggml's 63 bytes`);
    const size = tensorBytes(t.shape, t.type, t.name);
    h.str(t.name);
    h.u32(t.shape.length);
    for (let i = t.shape.length - 1; i >= 0; i--) h.u64(t.shape[i]);
    h.u32(GGML_TYPES[t.type].id);
    h.u64(offset);
    sizes.push(size);
    offsets.push(offset);
    offset = align(offset + size, alignment);
    tensorTypes[t.type] = (tensorTypes[t.type] ?? 0) + 1;
  }
  h.pad(alignment);
  const header = h.concat();
  let total = header.length;
  await replaceFile(path, async (fh) => {
    await writeAll(fh, header);
    for (let i = 0; i < tensors.length; i++) {
      const bytes = tensors[i].data();
      if (bytes.byteLength !== sizes[i]) throw new GgufError(`${tensors[i].name}: ${bytes.byteLength} bytes of data for a ${tensors[i].type} tensor of shape [${tensors[i].shape.join(', ')}] (${sizes[i]} expected)`);
      await writeAll(fh, bytes);
      const end = offsets[i] + sizes[i];
      const pad = (i + 1 < tensors.length ? offsets[i + 1] : align(end, alignment)) - end;
      if (pad) await writeAll(fh, new Uint8Array(pad));
      total += sizes[i] + pad;
    }
  });
  return { bytes: total, tensorTypes };
}
