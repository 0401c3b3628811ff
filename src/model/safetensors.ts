// safetensors files: read (single files and sharded checkpoints) and write.
//
// The format (huggingface/safetensors, README "Format" and safetensors/src/tensor.rs):
//   8 bytes   N, the header length, unsigned little-endian 64-bit
//   N bytes   a UTF-8 JSON object starting with '{', maybe padded with spaces:
//             {"__metadata__": {str: str}, "name": {"dtype": "F32", "shape": [2, 3], "data_offsets": [b, e]}, ...}
//   the rest  the byte buffer; data_offsets are relative to its start, END is one past the last byte
// The reference reader refuses headers over 100 MB, sizes that disagree with shape x dtype, holes or
// overlaps between tensors, and bytes left over after the last tensor; so do we, with messages that name
// the file, the tensor and the numbers. Tensors come back as read-only memory mappings (Tensor.mapFile),
// so a checkpoint is never copied into JS memory. The writer lays tensors out like the reference
// (descending dtype alignment, then name; header padded with spaces to a multiple of 8).
import { closeSync, existsSync, fstatSync, openSync, readdirSync, readFileSync, readSync, statSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { z } from 'zod';
import { Tensor } from '../../bindings/tensor.js';
import type { DType } from '../../bindings/types.js';
import { ModelFileError, parseModelFile } from './errors.js';
import { replaceFile, replaceFileSync, writeAll, writeAllSync, writeFileAtomicSync } from './atomic.js';

/** The reference's dtypes in its order (increasing alignment), with their sizes in bits. */
const DTYPE_BITS = {
  BOOL: 8,
  F4: 4,
  F6_E2M3: 6,
  F6_E3M2: 6,
  U8: 8,
  I8: 8,
  F8_E5M2: 8,
  F8_E4M3: 8,
  F8_E8M0: 8,
  F8_E4M3FNUZ: 8,
  F8_E5M2FNUZ: 8,
  I16: 16,
  U16: 16,
  F16: 16,
  BF16: 16,
  I32: 32,
  U32: 32,
  F32: 32,
  C64: 64,
  F64: 64,
  I64: 64,
  U64: 64,
} as const;
export type SafetensorsDType = keyof typeof DTYPE_BITS;
export const SAFETENSORS_DTYPES = Object.keys(DTYPE_BITS) as SafetensorsDType[];
const ALIGNMENT_RANK = new Map(SAFETENSORS_DTYPES.map((d, i) => [d, i]));

/** The dtypes that map onto native tensors. */
const TO_NATIVE: Partial<Record<SafetensorsDType, DType>> = { F32: 'f32', BF16: 'bf16', F16: 'f16', I32: 'i32' };
const FROM_NATIVE: Record<DType, SafetensorsDType> = { f32: 'F32', bf16: 'BF16', f16: 'F16', i32: 'I32' };

/** The reference implementation's limit on the header length. */
export const MAX_HEADER_BYTES = 100_000_000;

export interface SafetensorsEntry {
  name: string;
  dtype: SafetensorsDType;
  shape: number[];
  /** [begin, end) relative to the start of the byte buffer, as in the header */
  dataOffsets: [number, number];
  /** absolute position of the first byte in the file */
  fileOffset: number;
  nbytes: number;
}

export interface SafetensorsHeader {
  path: string;
  fileSize: number;
  /** N: the JSON header's length in bytes (padding included) */
  headerBytes: number;
  /** 8 + N: where the byte buffer starts */
  dataStart: number;
  metadata: Record<string, string> | null;
  /** the tensors in file order (increasing offsets) */
  entries: SafetensorsEntry[];
}

export interface LoadTensorOptions {
  /** f16 data is converted on load, to bf16 (default) or f32: the compute core has no f16 kernels */
  f16To?: 'bf16' | 'f32';
  /** convert any float tensor to this dtype (a new owned tensor instead of the mapping) */
  convertTo?: 'bf16' | 'f32';
}

const EntrySchema = z.looseObject({
  dtype: z.enum(SAFETENSORS_DTYPES as [SafetensorsDType, ...SafetensorsDType[]]),
  shape: z.array(z.int().nonnegative()),
  data_offsets: z.tuple([z.int().nonnegative(), z.int().nonnegative()]),
});
const MetadataSchema = z.record(z.string(), z.string({ error: 'values of __metadata__ must be strings' }));

const fmtShape = (s: readonly number[]) => `[${s.join(', ')}]`;

function readExactly(fd: number, length: number, position: number): Buffer {
  const buf = Buffer.alloc(length);
  for (let off = 0; off < length; ) {
    const n = readSync(fd, buf, off, length - off, position + off);
    if (n === 0) break;
    off += n;
  }
  return buf;
}

/** The first key that occurs twice at the top level of a valid JSON object text (JSON.parse keeps the last). */
function duplicateTopLevelKey(text: string): string | undefined {
  const seen = new Set<string>();
  let depth = 0;
  let expectKey = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x22) {
      let j = i + 1;
      while (j < text.length && text.charCodeAt(j) !== 0x22) j += text.charCodeAt(j) === 0x5c ? 2 : 1;
      if (depth === 1 && expectKey) {
        const key = JSON.parse(text.slice(i, j + 1)) as string;
        if (seen.has(key)) return key;
        seen.add(key);
        expectKey = false;
      }
      i = j;
    } else if (c === 0x7b || c === 0x5b) {
      depth++;
      if (depth === 1) expectKey = true;
    } else if (c === 0x7d || c === 0x5d) {
      depth--;
    } else if (c === 0x2c && depth === 1) {
      expectKey = true;
    }
  }
  return undefined;
}

function byteSize(dtype: SafetensorsDType, shape: readonly number[]): bigint {
  let n = 1n;
  for (const s of shape) n *= BigInt(s);
  return (n * BigInt(DTYPE_BITS[dtype])) / 8n;
}

function sizeIsWholeBytes(dtype: SafetensorsDType, shape: readonly number[]): boolean {
  let n = 1n;
  for (const s of shape) n *= BigInt(s);
  return (n * BigInt(DTYPE_BITS[dtype])) % 8n === 0n;
}

/** Reads and validates the header of a .safetensors file; reads nothing past the header. */
export function readSafetensorsHeader(path: string): SafetensorsHeader {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch (e) {
    throw new ModelFileError(`cannot open: ${(e as Error).message}`, { file: path });
  }
  try {
    const st = fstatSync(fd);
    const fileSize = st.size;
    const fail = (msg: string, tensor?: string): never => {
      throw new ModelFileError(msg, { file: path, tensor });
    };
    if (!st.isFile()) fail('not a regular file');
    if (fileSize < 8) fail(`truncated: the file has ${fileSize} bytes, but a safetensors file starts with an 8-byte little-endian header length`);
    const n = readExactly(fd, 8, 0).readBigUInt64LE(0);
    if (n > BigInt(MAX_HEADER_BYTES)) fail(`header length ${n} is over the ${MAX_HEADER_BYTES}-byte limit of the format (a corrupt or hostile file)`);
    const headerBytes = Number(n);
    if (headerBytes < 2) fail(`header length ${headerBytes} is too small for a JSON object`);
    if (headerBytes > fileSize - 8) fail(`truncated: the header length says ${headerBytes} bytes of JSON follow, but the file has only ${fileSize - 8} bytes after it`);
    const raw = readExactly(fd, headerBytes, 8);
    let text: string;
    try {
      text = new TextDecoder('utf-8', { fatal: true }).decode(raw);
    } catch {
      return fail('the header is not valid UTF-8');
    }
    if (text[0] !== '{') fail(`the header must start with '{', found ${JSON.stringify(text.slice(0, 16))}`);
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch (e) {
      return fail(`the header is not valid JSON: ${(e as Error).message}`);
    }
    if (json === null || typeof json !== 'object' || Array.isArray(json)) fail('the header must be a JSON object');
    const dup = duplicateTopLevelKey(text);
    if (dup !== undefined) fail(`the header lists ${JSON.stringify(dup)} twice (duplicate keys are not allowed)`);

    const dataStart = 8 + headerBytes;
    let metadata: Record<string, string> | null = null;
    const entries: SafetensorsEntry[] = [];
    for (const [name, value] of Object.entries(json as Record<string, unknown>)) {
      if (name === '__metadata__') {
        metadata = parseModelFile(MetadataSchema, value, path, ['__metadata__']);
        continue;
      }
      const e = parseModelFile(EntrySchema, value, path, [name]);
      const [begin, end] = e.data_offsets;
      if (end < begin) fail(`data_offsets [${begin}, ${end}] end before they begin`, name);
      if (!sizeIsWholeBytes(e.dtype, e.shape)) fail(`shape ${fmtShape(e.shape)} of ${e.dtype} does not fill whole bytes`, name);
      const need = byteSize(e.dtype, e.shape);
      if (need !== BigInt(end - begin)) {
        fail(`shape ${fmtShape(e.shape)} of ${e.dtype} needs ${need} bytes, but data_offsets [${begin}, ${end}] hold ${end - begin}`, name);
      }
      entries.push({ name, dtype: e.dtype, shape: e.shape, dataOffsets: [begin, end], fileOffset: dataStart + begin, nbytes: end - begin });
    }
    entries.sort((a, b) => a.dataOffsets[0] - b.dataOffsets[0] || a.dataOffsets[1] - b.dataOffsets[1]);
    let pos = 0;
    let prev: SafetensorsEntry | undefined;
    for (const e of entries) {
      const [begin, end] = e.dataOffsets;
      if (begin < pos) {
        fail(`data_offsets [${begin}, ${end}) overlap tensor '${prev!.name}' at [${prev!.dataOffsets[0]}, ${prev!.dataOffsets[1]})`, e.name);
      }
      if (begin > pos) {
        fail(`data_offsets start at ${begin}, but ${prev ? `tensor '${prev.name}' ends at ${pos}` : 'the byte buffer starts at 0'}: ${begin - pos} bytes belong to no tensor (the format forbids holes)`, e.name);
      }
      pos = end;
      prev = e;
    }
    const available = fileSize - dataStart;
    if (pos > available) fail(`truncated: the tensors need ${pos} bytes of data after the header, but the file has only ${available}`, prev?.name);
    if (pos < available) fail(`${available - pos} bytes after the last tensor belong to no tensor (the format forbids trailing data)`);
    return { path, fileSize, headerBytes, dataStart, metadata, entries };
  } finally {
    closeSync(fd);
  }
}

function mapEntry(path: string, fileSize: number, e: SafetensorsEntry, opts: LoadTensorOptions): Tensor {
  const dtype = TO_NATIVE[e.dtype];
  if (!dtype) {
    throw new ModelFileError(`dtype ${e.dtype} cannot be loaded as a tensor (supported: F32, BF16, F16, I32); readBytes() returns its raw bytes`, { file: path, tensor: e.name });
  }
  // the mapping must not reach past the end of the file: a file truncated since its header was read
  // would fault on access instead of failing here
  const now = statSync(path).size;
  if (now !== fileSize) throw new ModelFileError(`the file changed size since its header was read (${fileSize} -> ${now} bytes)`, { file: path, tensor: e.name });
  let convertTo = opts.convertTo;
  if (dtype === 'f16') convertTo ??= opts.f16To ?? 'bf16';
  if (dtype === 'i32' && convertTo) throw new ModelFileError(`an I32 tensor cannot be converted to ${convertTo}`, { file: path, tensor: e.name });
  try {
    return Tensor.mapFile(path, e.fileOffset, dtype, e.shape, convertTo);
  } catch (err) {
    throw new ModelFileError(`cannot map ${e.dtype}${fmtShape(e.shape)} at byte ${e.fileOffset}: ${(err as Error).message}`, { file: path, tensor: e.name });
  }
}

/** One .safetensors file with a validated header. */
export class SafetensorsFile {
  private readonly byName: Map<string, SafetensorsEntry>;

  private constructor(readonly header: SafetensorsHeader) {
    this.byName = new Map(header.entries.map((e) => [e.name, e]));
  }

  static open(path: string): SafetensorsFile {
    return new SafetensorsFile(readSafetensorsHeader(path));
  }

  get path(): string {
    return this.header.path;
  }
  get metadata(): Record<string, string> | null {
    return this.header.metadata;
  }
  /** tensor names in file order */
  get names(): string[] {
    return this.header.entries.map((e) => e.name);
  }
  has(name: string): boolean {
    return this.byName.has(name);
  }
  entry(name: string): SafetensorsEntry {
    const e = this.byName.get(name);
    if (!e) throw new ModelFileError(`no tensor '${name}' (the file has ${this.byName.size})`, { file: this.path });
    return e;
  }
  /** The tensor as a read-only mapping of the file (f16 converted, see LoadTensorOptions). */
  tensor(name: string, opts: LoadTensorOptions = {}): Tensor {
    return mapEntry(this.path, this.header.fileSize, this.entry(name), opts);
  }
  /** A copy of the tensor's raw little-endian bytes (any dtype; meant for small tensors). */
  readBytes(name: string): Buffer {
    const e = this.entry(name);
    const fd = openSync(this.path, 'r');
    try {
      return readExactly(fd, e.nbytes, e.fileOffset);
    } finally {
      closeSync(fd);
    }
  }
}

export const INDEX_FILE = 'model.safetensors.index.json';
export const SINGLE_FILE = 'model.safetensors';

const IndexSchema = z.looseObject({
  metadata: z.looseObject({}).nullish(),
  weight_map: z.record(z.string(), z.string()),
});

/**
 * A checkpoint: one .safetensors file, or the shards named by a model.safetensors.index.json. Opened
 * from the file, the index, or a model directory (where model.safetensors wins over the index, in the
 * order transformers' from_pretrained looks for them).
 */
export class SafetensorsCheckpoint {
  private constructor(
    readonly files: SafetensorsFile[],
    private readonly where: Map<string, SafetensorsFile>,
    /** the index file of a sharded checkpoint */
    readonly indexPath: string | null,
    /** the index's `metadata`, or the single file's `__metadata__` */
    readonly metadata: Record<string, unknown> | null,
  ) {}

  static open(path: string): SafetensorsCheckpoint {
    let target = path;
    if (existsSync(path) && statSync(path).isDirectory()) {
      if (existsSync(join(path, SINGLE_FILE))) target = join(path, SINGLE_FILE);
      else if (existsSync(join(path, INDEX_FILE))) target = join(path, INDEX_FILE);
      else throw new ModelFileError(`no ${SINGLE_FILE} or ${INDEX_FILE} in this directory${describeOtherWeights(path)}`, { file: path });
    }
    if (target.endsWith('.index.json')) return SafetensorsCheckpoint.openIndex(target);
    const f = SafetensorsFile.open(target);
    return new SafetensorsCheckpoint([f], new Map(f.names.map((n) => [n, f])), null, f.metadata);
  }

  private static openIndex(indexPath: string): SafetensorsCheckpoint {
    let json: unknown;
    try {
      json = JSON.parse(readFileSync(indexPath, 'utf8'));
    } catch (e) {
      throw new ModelFileError(`cannot read the index: ${(e as Error).message}`, { file: indexPath });
    }
    const index = parseModelFile(IndexSchema, json, indexPath);
    const dir = dirname(indexPath);
    const shards = new Map<string, SafetensorsFile>();
    const where = new Map<string, SafetensorsFile>();
    for (const [name, shard] of Object.entries(index.weight_map)) {
      if (!shard || shard !== basename(shard) || shard === '..' || shard === '.' || shard.includes('\\')) {
        throw new ModelFileError(`shard '${shard}' must be a file name in the index's directory`, { file: indexPath, path: `weight_map.${name}` });
      }
      let f = shards.get(shard);
      if (!f) {
        const p = join(dir, shard);
        if (!existsSync(p)) throw new ModelFileError(`shard '${shard}' does not exist`, { file: indexPath, path: `weight_map.${name}` });
        f = SafetensorsFile.open(p);
        shards.set(shard, f);
      }
      if (!f.has(name)) throw new ModelFileError(`the index puts this tensor in '${shard}', but that shard does not hold it`, { file: indexPath, tensor: name });
      where.set(name, f);
    }
    // tensors a shard holds beyond the index are loaded too (as transformers does), unless ambiguous
    for (const f of shards.values()) {
      for (const name of f.names) {
        const other = where.get(name);
        if (other && other !== f) {
          throw new ModelFileError(`tensor is stored in two shards, '${basename(other.path)}' and '${basename(f.path)}'`, { file: indexPath, tensor: name });
        }
        where.set(name, f);
      }
    }
    return new SafetensorsCheckpoint([...shards.values()], where, indexPath, (index.metadata as Record<string, unknown> | null | undefined) ?? null);
  }

  get names(): string[] {
    return [...this.where.keys()];
  }
  has(name: string): boolean {
    return this.where.has(name);
  }
  /** the file holding `name` and its header entry */
  locate(name: string): { file: SafetensorsFile; entry: SafetensorsEntry } {
    const file = this.where.get(name);
    if (!file) throw new ModelFileError('the checkpoint has no such tensor', { file: this.indexPath ?? this.files[0]?.path, tensor: name });
    return { file, entry: file.entry(name) };
  }
  tensor(name: string, opts: LoadTensorOptions = {}): Tensor {
    return this.locate(name).file.tensor(name, opts);
  }
  readBytes(name: string): Buffer {
    return this.locate(name).file.readBytes(name);
  }
}

function describeOtherWeights(dir: string): string {
  let others: string[] = [];
  try {
    others = readdirSync(dir).filter((n) => /\.(bin|pt|pth|ckpt|gguf|safetensors)$/.test(n));
  } catch {
    return '';
  }
  if (!others.length) return '';
  return ` (found ${others.slice(0, 5).join(', ')}${others.length > 5 ? ', ...' : ''}; only safetensors checkpoints named like transformers saves them are read)`;
}

// ---------------------------------------------------------------------------------------------------
// Writing

/** Raw tensor data for the writer: bytes in little-endian order, or a function producing them when written. */
export interface RawTensor {
  dtype: SafetensorsDType;
  shape: readonly number[];
  data: ArrayBufferView | (() => ArrayBufferView);
}
export type WritableTensor = Tensor | RawTensor;
export type TensorSource = Record<string, WritableTensor> | Map<string, WritableTensor> | Iterable<readonly [string, WritableTensor]>;

export interface WriteOptions {
  /** the free-form string map stored under __metadata__ (e.g. {format: 'pt'}) */
  metadata?: Record<string, string>;
}

interface Planned {
  name: string;
  dtype: SafetensorsDType;
  shape: number[];
  nbytes: number;
  bytes(): Uint8Array;
  done(): void;
}

function entriesOf(src: TensorSource): [string, WritableTensor][] {
  if (src instanceof Map) return [...src.entries()];
  if (Symbol.iterator in (src as object)) return [...(src as Iterable<readonly [string, WritableTensor]>)].map(([k, v]) => [k, v]);
  return Object.entries(src as Record<string, WritableTensor>);
}

function asBytes(v: ArrayBufferView): Uint8Array {
  return new Uint8Array(v.buffer, v.byteOffset, v.byteLength);
}

function plan(file: string, name: string, t: WritableTensor): Planned {
  if (t instanceof Tensor) {
    let cpu: Tensor = t;
    const owned = t.device !== 'cpu';
    return {
      name,
      dtype: FROM_NATIVE[t.dtype],
      shape: [...t.shape],
      nbytes: t.nbytes,
      bytes() {
        if (owned) cpu = t.to('cpu');
        // the storage's bytes directly: typed views would need the offset aligned to the element size
        return new Uint8Array(cpu.handle.buffer(), cpu.handle.byteOffset, cpu.handle.nbytes);
      },
      done() {
        if (owned && cpu !== t) cpu.release();
      },
    };
  }
  if (!(t.dtype in DTYPE_BITS)) throw new ModelFileError(`unknown dtype '${String(t.dtype)}' (known: ${SAFETENSORS_DTYPES.join(', ')})`, { file, tensor: name });
  for (const s of t.shape) {
    if (!Number.isSafeInteger(s) || s < 0) throw new ModelFileError(`bad shape ${fmtShape(t.shape)}`, { file, tensor: name });
  }
  if (!sizeIsWholeBytes(t.dtype, t.shape)) throw new ModelFileError(`shape ${fmtShape(t.shape)} of ${t.dtype} does not fill whole bytes`, { file, tensor: name });
  const nbytes = Number(byteSize(t.dtype, t.shape));
  const check = (b: Uint8Array) => {
    if (b.byteLength !== nbytes) {
      throw new ModelFileError(`shape ${fmtShape(t.shape)} of ${t.dtype} needs ${nbytes} bytes, but the data has ${b.byteLength}`, { file, tensor: name });
    }
    return b;
  };
  const data = t.data;
  if (typeof data !== 'function') check(asBytes(data));
  return {
    name,
    dtype: t.dtype,
    shape: [...t.shape],
    nbytes,
    bytes: () => check(asBytes(typeof data === 'function' ? data() : data)),
    done() {},
  };
}

function compareUtf8(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}

/** The header bytes (length prefix included) and the tensors in the order their data follows. */
function prepare(file: string, src: TensorSource, opts: WriteOptions): { head: Buffer; order: Planned[] } {
  const seen = new Set<string>();
  const order: Planned[] = [];
  for (const [name, t] of entriesOf(src)) {
    if (!name) throw new ModelFileError('a tensor name is empty', { file });
    if (name === '__metadata__') throw new ModelFileError("'__metadata__' is reserved and cannot name a tensor", { file });
    if (seen.has(name)) throw new ModelFileError('two tensors have this name', { file, tensor: name });
    seen.add(name);
    order.push(plan(file, name, t));
  }
  // as the reference: descending dtype alignment, then name (byte order)
  order.sort((a, b) => ALIGNMENT_RANK.get(b.dtype)! - ALIGNMENT_RANK.get(a.dtype)! || compareUtf8(a.name, b.name));
  const parts: string[] = [];
  if (opts.metadata) {
    const keys = Object.keys(opts.metadata).sort(compareUtf8);
    for (const k of keys) {
      if (typeof opts.metadata[k] !== 'string') throw new ModelFileError('must be a string', { file, path: `__metadata__.${k}` });
    }
    parts.push(`"__metadata__":{${keys.map((k) => `${JSON.stringify(k)}:${JSON.stringify(opts.metadata![k])}`).join(',')}}`);
  }
  let offset = 0;
  for (const p of order) {
    parts.push(`${JSON.stringify(p.name)}:{"dtype":"${p.dtype}","shape":[${p.shape.join(',')}],"data_offsets":[${offset},${offset + p.nbytes}]}`);
    offset += p.nbytes;
  }
  const json = Buffer.from(`{${parts.join(',')}}`, 'utf8');
  const n = Math.ceil(json.length / 8) * 8;
  if (n > MAX_HEADER_BYTES) throw new ModelFileError(`the header would be ${n} bytes, over the format's ${MAX_HEADER_BYTES}-byte limit`, { file });
  const head = Buffer.alloc(8 + n, 0x20);
  head.writeBigUInt64LE(BigInt(n), 0);
  json.copy(head, 8);
  return { head, order };
}

/** Writes a .safetensors file atomically (temp file, fsync, rename) without blocking the event loop. */
export async function writeSafetensors(path: string, tensors: TensorSource, opts: WriteOptions = {}): Promise<void> {
  const { head, order } = prepare(path, tensors, opts);
  await replaceFile(path, async (fh) => {
    await writeAll(fh, head);
    for (const p of order) {
      try {
        await writeAll(fh, p.bytes());
      } finally {
        p.done();
      }
    }
  });
}

/** The synchronous form of writeSafetensors. */
export function writeSafetensorsSync(path: string, tensors: TensorSource, opts: WriteOptions = {}): void {
  const { head, order } = prepare(path, tensors, opts);
  replaceFileSync(path, (fd) => {
    writeAllSync(fd, head);
    for (const p of order) {
      try {
        writeAllSync(fd, p.bytes());
      } finally {
        p.done();
      }
    }
  });
}

export interface ShardOptions extends WriteOptions {
  /** the largest shard in bytes of tensor data (default 5 GB, transformers' save_pretrained default) */
  maxShardBytes?: number;
}

/**
 * Writes a checkpoint into `dir` as transformers' save_pretrained does: model.safetensors when it fits in
 * one shard, else model-00001-of-0000N.safetensors and model.safetensors.index.json. Tensors are placed
 * into shards in the order given; a tensor bigger than a shard gets a shard of its own. Returns the
 * files written (names relative to `dir`).
 */
export async function writeSafetensorsCheckpoint(dir: string, tensors: TensorSource, opts: ShardOptions = {}): Promise<string[]> {
  const max = opts.maxShardBytes ?? 5_000_000_000;
  const items = entriesOf(tensors);
  const sizes = items.map(([name, t]) => plan(dir, name, t).nbytes);
  const shards: [string, WritableTensor][][] = [];
  let cur: [string, WritableTensor][] = [];
  let curBytes = 0;
  items.forEach((item, i) => {
    if (cur.length && curBytes + sizes[i] > max) {
      shards.push(cur);
      cur = [];
      curBytes = 0;
    }
    cur.push(item);
    curBytes += sizes[i];
  });
  if (cur.length || !shards.length) shards.push(cur);
  if (shards.length === 1) {
    await writeSafetensors(join(dir, SINGLE_FILE), shards[0], { metadata: opts.metadata });
    return [SINGLE_FILE];
  }
  const total = sizes.reduce((a, b) => a + b, 0);
  const pad = (i: number) => String(i).padStart(5, '0');
  const weightMap: Record<string, string> = {};
  const names: string[] = [];
  for (let s = 0; s < shards.length; s++) {
    const file = `model-${pad(s + 1)}-of-${pad(shards.length)}.safetensors`;
    await writeSafetensors(join(dir, file), shards[s], { metadata: opts.metadata });
    for (const [name] of shards[s]) weightMap[name] = file;
    names.push(file);
  }
  const sorted = Object.fromEntries(Object.keys(weightMap).sort().map((k) => [k, weightMap[k]]));
  writeFileAtomicSync(join(dir, INDEX_FILE), JSON.stringify({ metadata: { total_size: total }, weight_map: sorted }, null, 2) + '\n');
  return [...names, INDEX_FILE];
}
