// safetensors: the writer's bytes against the reference implementation's own test vectors, round trips
// of every dtype (raw data and native tensors, lazy data, __metadata__), tensors mapped without a copy
// (bf16 stays bf16, f16 converted on load), atomic replacement, sharded checkpoints, and hostile or
// truncated files, each failing with the file, the tensor and what is wrong.
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, truncateSync, writeFileSync, appendFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Tensor } from '../../bindings/index.js';
import {
  MAX_HEADER_BYTES,
  SafetensorsCheckpoint,
  SafetensorsFile,
  readSafetensorsHeader,
  writeSafetensors,
  writeSafetensorsCheckpoint,
  writeSafetensorsSync,
} from '../../src/model/safetensors.js';
import { ModelFileError } from '../../src/model/errors.js';
import { f16BitsToNumber, f32ToBf16Bits, bf16BitsToNumber, uniform } from '../helpers/numeric.js';

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'sw-safetensors-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

let n = 0;
const fresh = (name = 'f.safetensors') => join(dir, `${n++}-${name}`);

/** A file with this header text (or object) and data bytes; `length` overrides the 8-byte prefix. */
function craft(header: string | object, data: Uint8Array | number = 0, length?: bigint): string {
  const text = typeof header === 'string' ? header : JSON.stringify(header);
  const json = Buffer.from(text, 'utf8');
  const prefix = Buffer.alloc(8);
  prefix.writeBigUInt64LE(length ?? BigInt(json.length));
  const body = typeof data === 'number' ? Buffer.alloc(data) : Buffer.from(data);
  const p = fresh();
  writeFileSync(p, Buffer.concat([prefix, json, body]));
  return p;
}

function expectModelError(f: () => unknown, ...parts: (string | RegExp)[]): ModelFileError {
  let err: unknown;
  try {
    f();
  } catch (e) {
    err = e;
  }
  expect(err).toBeInstanceOf(ModelFileError);
  for (const p of parts) expect((err as Error).message).toMatch(p);
  return err as ModelFileError;
}

const f32Bytes = (v: number[]) => new Uint8Array(Float32Array.from(v).buffer);

describe('writer bytes match the reference implementation (safetensors/src/tensor.rs tests)', () => {
  test('one F32 tensor: header padded with spaces to a multiple of 8, data right after', () => {
    const p = fresh();
    writeSafetensorsSync(p, { attn0: { dtype: 'F32', shape: [1, 1, 2, 3], data: Float32Array.from([0, 1, 2, 3, 4, 5]) } });
    const json = '{"attn0":{"dtype":"F32","shape":[1,1,2,3],"data_offsets":[0,24]}}';
    const want = Buffer.concat([Buffer.from([72, 0, 0, 0, 0, 0, 0, 0]), Buffer.from(json + ' '.repeat(72 - json.length)), Buffer.from(f32Bytes([0, 1, 2, 3, 4, 5]))]);
    expect(readFileSync(p)).toEqual(want);
  });

  test('no tensors, with and without __metadata__', () => {
    const a = fresh();
    writeSafetensorsSync(a, {});
    expect([...readFileSync(a)]).toEqual([8, 0, 0, 0, 0, 0, 0, 0, 123, 125, 32, 32, 32, 32, 32, 32]);
    const b = fresh();
    writeSafetensorsSync(b, {}, { metadata: { framework: 'pt' } });
    expect(readFileSync(b)).toEqual(Buffer.concat([Buffer.from([40, 0, 0, 0, 0, 0, 0, 0]), Buffer.from('{"__metadata__":{"framework":"pt"}}' + '     ')]));
    expect(readSafetensorsHeader(b).metadata).toEqual({ framework: 'pt' });
  });

  test('layout: descending dtype alignment, then name; every tensor aligned to its element size', () => {
    const p = fresh();
    const tensors = {
      b_f16: { dtype: 'F16' as const, shape: [3], data: Uint16Array.from([1, 2, 3]) },
      a_bf16: { dtype: 'BF16' as const, shape: [1], data: Uint16Array.from([7]) },
      z_f32: { dtype: 'F32' as const, shape: [2], data: Float32Array.from([1, 2]) },
      y_i64: { dtype: 'I64' as const, shape: [1], data: BigInt64Array.from([-5n]) },
      c_i32: { dtype: 'I32' as const, shape: [1], data: Int32Array.from([9]) },
      a_f32: { dtype: 'F32' as const, shape: [1], data: Float32Array.from([3]) },
    };
    writeSafetensorsSync(p, tensors);
    const h = readSafetensorsHeader(p);
    expect(h.entries.map((e) => e.name)).toEqual(['y_i64', 'a_f32', 'z_f32', 'c_i32', 'a_bf16', 'b_f16']);
    expect(h.dataStart % 8).toBe(0);
    for (const e of h.entries) expect(e.fileOffset % Math.min(8, e.nbytes / e.shape.reduce((a, b) => a * b, 1))).toBe(0);
    const f = SafetensorsFile.open(p);
    expect(f.readBytes('y_i64').readBigInt64LE(0)).toBe(-5n);
    expect([...new Uint16Array(new Uint8Array(f.readBytes('b_f16')).buffer)]).toEqual([1, 2, 3]);
  });
});

describe('round trips', () => {
  test('raw F32 / BF16 / F16 / I32 / U8 data, lazy data and metadata survive write and read', async () => {
    const v = uniform(6 * 5, 1);
    const bf = Uint16Array.from(v, f32ToBf16Bits);
    const f16 = Uint16Array.from([0x3c00, 0xc000, 0x3555, 0x7bff, 0x0001, 0x8000]);
    const p = fresh();
    let lazyCalls = 0;
    await writeSafetensors(
      p,
      new Map<string, import('../../src/model/safetensors.js').WritableTensor>([
        ['w.f32', { dtype: 'F32', shape: [6, 5], data: Float32Array.from(v) }],
        ['w.bf16', { dtype: 'BF16', shape: [5, 6], data: bf }],
        ['w.f16', { dtype: 'F16', shape: [2, 3], data: f16 }],
        ['ids', { dtype: 'I32', shape: [4], data: Int32Array.from([1, -2, 3, 2147483647]) }],
        ['mask', { dtype: 'U8', shape: [3], data: Uint8Array.from([0, 1, 255]) }],
        ['lazy', { dtype: 'F32', shape: [2], data: () => (lazyCalls++, Float32Array.from([0.5, -0.25])) }],
        ['scalar', { dtype: 'F32', shape: [], data: Float32Array.from([42]) }],
        ['empty', { dtype: 'F32', shape: [0, 4], data: new Float32Array(0) }],
      ]),
      { metadata: { format: 'pt', note: 'ünïcode ✓' } },
    );
    expect(lazyCalls).toBe(1);
    const f = SafetensorsFile.open(p);
    expect(f.metadata).toEqual({ format: 'pt', note: 'ünïcode ✓' });
    expect(new Set(f.names)).toEqual(new Set(['w.f32', 'w.bf16', 'w.f16', 'ids', 'mask', 'lazy', 'scalar', 'empty']));

    const t32 = f.tensor('w.f32');
    expect(t32.dtype).toBe('f32');
    expect(t32.shape).toEqual([6, 5]);
    expect(Array.from(t32.data())).toEqual(Array.from(v));

    const tb = f.tensor('w.bf16');
    expect(tb.dtype).toBe('bf16');
    expect(tb.handle.storageKind).toBe('mmap');
    expect(tb.readonly).toBe(true);
    expect(Array.from(tb.data<'bf16'>())).toEqual(Array.from(bf));

    const h16 = f.tensor('w.f16'); // f16 -> bf16 by default: the core has no f16 kernels
    expect(h16.dtype).toBe('bf16');
    expect(Array.from(h16.toFloat32())).toEqual(Array.from(f16, (b) => bf16BitsToNumber(f32ToBf16Bits(f16BitsToNumber(b)))));
    const h32 = f.tensor('w.f16', { f16To: 'f32' });
    expect(h32.dtype).toBe('f32');
    expect(Array.from(h32.data())).toEqual(Array.from(f16, f16BitsToNumber));

    expect(Array.from(f.tensor('ids').data<'i32'>())).toEqual([1, -2, 3, 2147483647]);
    expect([...f.readBytes('mask')]).toEqual([0, 1, 255]);
    expect(Array.from(f.tensor('lazy').data())).toEqual([0.5, -0.25]);
    const s = f.tensor('scalar');
    expect(s.shape).toEqual([]);
    expect(Array.from(s.data())).toEqual([42]);
    const e = f.tensor('empty');
    expect(e.shape).toEqual([0, 4]);
    expect(e.numel).toBe(0);
    expect(f.tensor('w.f32', { convertTo: 'bf16' }).dtype).toBe('bf16');
    expectModelError(() => f.tensor('mask'), 'mask', /dtype U8 cannot be loaded as a tensor/);
    expectModelError(() => f.tensor('nope'), /no tensor 'nope'/);
  });

  test('native tensors (f32, bf16, i32, and a mapped tensor at an unaligned offset) write back bit-exactly', () => {
    const v = uniform(12, 7);
    const a = Tensor.fromArray(Float32Array.from(v), [3, 4]);
    const b = Tensor.fromArray(Uint16Array.from(v, f32ToBf16Bits), [4, 3], 'bf16');
    const c = Tensor.fromArray(Int32Array.from([5, 6]), [2], 'i32');
    const p1 = fresh();
    writeSafetensorsSync(p1, { a, b, c });
    const f1 = SafetensorsFile.open(p1);
    expect(Array.from(f1.tensor('a').data())).toEqual(Array.from(v));
    expect(Array.from(f1.tensor('b').data<'bf16'>())).toEqual(Array.from(b.data<'bf16'>()));
    expect(Array.from(f1.tensor('c').data<'i32'>())).toEqual([5, 6]);

    // an f32 tensor mapped at an odd file offset: typed views cannot sit there, the writer copes
    const raw = fresh('raw.bin');
    const buf = Buffer.alloc(3 + 48);
    Float32Array.from(v).forEach((x, i) => buf.writeFloatLE(x, 3 + 4 * i));
    writeFileSync(raw, buf);
    const odd = Tensor.mapFile(raw, 3, 'f32', [12]);
    const p2 = fresh();
    writeSafetensorsSync(p2, { odd });
    expect(Array.from(SafetensorsFile.open(p2).tensor('odd').data())).toEqual(Array.from(v));
    for (const t of [a, b, c, odd]) t.release();
  });

  test('writer refuses bad input with the tensor named', () => {
    expectModelError(() => writeSafetensorsSync(fresh('bad.safetensors'), { w: { dtype: 'F32', shape: [2, 2], data: new Float32Array(3) } }), /bad.safetensors tensor 'w'/, "tensor 'w'", /needs 16 bytes, but the data has 12/);
    expectModelError(() => writeSafetensorsSync(fresh(), { __metadata__: { dtype: 'F32', shape: [1], data: new Float32Array(1) } }), /reserved/);
    expectModelError(() => writeSafetensorsSync(fresh(), { w: { dtype: 'F99' as 'F32', shape: [1], data: new Float32Array(1) } }), /unknown dtype 'F99'/);
    expectModelError(() => writeSafetensorsSync(fresh(), { w: { dtype: 'F32', shape: [-1], data: new Float32Array(1) } }), /bad shape/);
    expectModelError(
      () => writeSafetensorsSync(fresh(), [['w', { dtype: 'F32', shape: [1], data: new Float32Array(1) }], ['w', { dtype: 'F32', shape: [1], data: new Float32Array(1) }]]),
      /two tensors have this name/,
    );
  });
});

describe('atomic replacement', () => {
  test('an existing file is replaced whole, and no temp file is left behind', async () => {
    const sub = mkdtempSync(join(dir, 'atomic-'));
    const p = join(sub, 'model.safetensors');
    writeSafetensorsSync(p, { a: { dtype: 'F32', shape: [1], data: Float32Array.from([1]) } });
    await writeSafetensors(p, { b: { dtype: 'F32', shape: [2], data: Float32Array.from([2, 3]) } });
    expect(SafetensorsFile.open(p).names).toEqual(['b']);
    expect(readdirSync(sub)).toEqual(['model.safetensors']);
  });

  test('a failure while writing keeps the old file intact and removes the temp file', async () => {
    const sub = mkdtempSync(join(dir, 'atomic-'));
    const p = join(sub, 'model.safetensors');
    writeSafetensorsSync(p, { a: { dtype: 'F32', shape: [1], data: Float32Array.from([1]) } });
    const before = readFileSync(p);
    const boom = () => {
      throw new Error('generator failed');
    };
    await expect(writeSafetensors(p, { a: { dtype: 'F32', shape: [1], data: Float32Array.from([1]) }, b: { dtype: 'F32', shape: [1], data: boom } })).rejects.toThrow('generator failed');
    expect(() => writeSafetensorsSync(p, { b: { dtype: 'F32', shape: [1], data: () => new Float32Array(2) } })).toThrow(/needs 4 bytes, but the data has 8/);
    expect(readFileSync(p)).toEqual(before);
    expect(readdirSync(sub)).toEqual(['model.safetensors']);
  });
});

describe('hostile and truncated files', () => {
  const good = { a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] }, b: { dtype: 'BF16', shape: [2, 2], data_offsets: [8, 16] } };

  test('the well-formed control file opens (so each case below fails for its own reason)', () => {
    const p = craft(good, 16);
    expect(SafetensorsFile.open(p).names).toEqual(['a', 'b']);
  });

  test('shorter than the 8-byte length', () => {
    const p = fresh();
    writeFileSync(p, Buffer.from([1, 2, 3, 4, 5]));
    expectModelError(() => readSafetensorsHeader(p), p, /truncated: the file has 5 bytes/);
    const empty = fresh();
    writeFileSync(empty, Buffer.alloc(0));
    expectModelError(() => readSafetensorsHeader(empty), /truncated: the file has 0 bytes/);
  });

  test('huge header lengths (u64 max, just over the limit) are refused before any allocation', () => {
    expectModelError(() => readSafetensorsHeader(craft(good, 16, 0xffffffffffffffffn)), /header length 18446744073709551615 is over the 100000000-byte limit/);
    expectModelError(() => readSafetensorsHeader(craft(good, 16, BigInt(MAX_HEADER_BYTES + 1))), /over the 100000000-byte limit/);
  });

  test('a header length past the end of the file', () => {
    const p = craft(good, 0, 5000n);
    expectModelError(() => readSafetensorsHeader(p), p, /truncated: the header length says 5000 bytes of JSON follow, but the file has only \d+ bytes after it/);
  });

  test('a file cut inside the header or inside the data', () => {
    const p = craft(good, 16);
    const size = readFileSync(p).length;
    truncateSync(p, size - 3);
    expectModelError(() => readSafetensorsHeader(p), "tensor 'b'", /truncated: the tensors need 16 bytes of data after the header, but the file has only 13/);
    truncateSync(p, 30);
    expectModelError(() => readSafetensorsHeader(p), /truncated: the header length says \d+ bytes/);
  });

  test('bytes after the last tensor', () => {
    const p = craft(good, 16);
    appendFileSync(p, Buffer.alloc(4));
    expectModelError(() => readSafetensorsHeader(p), /4 bytes after the last tensor belong to no tensor/);
  });

  test('offsets past the end of the data', () => {
    const p = craft({ a: { dtype: 'F32', shape: [1024], data_offsets: [0, 4096] } }, 64);
    expectModelError(() => readSafetensorsHeader(p), "tensor 'a'", /need 4096 bytes of data after the header, but the file has only 64/);
  });

  test('overlapping ranges', () => {
    const p = craft({ a: { dtype: 'F32', shape: [4], data_offsets: [0, 16] }, b: { dtype: 'F32', shape: [2], data_offsets: [8, 16] } }, 16);
    expectModelError(() => readSafetensorsHeader(p), "tensor 'b'", /overlap tensor 'a' at \[0, 16\)/);
    const same = craft({ a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] }, b: { dtype: 'F32', shape: [2], data_offsets: [0, 8] } }, 8);
    expectModelError(() => readSafetensorsHeader(same), /overlap tensor/);
  });

  test('a hole between tensors, or before the first', () => {
    const p = craft({ a: { dtype: 'F32', shape: [1], data_offsets: [0, 4] }, b: { dtype: 'F32', shape: [1], data_offsets: [8, 12] } }, 12);
    expectModelError(() => readSafetensorsHeader(p), "tensor 'b'", /tensor 'a' ends at 4: 4 bytes belong to no tensor/);
    const first = craft({ a: { dtype: 'F32', shape: [1], data_offsets: [4, 8] } }, 8);
    expectModelError(() => readSafetensorsHeader(first), /the byte buffer starts at 0: 4 bytes belong to no tensor/);
  });

  test('shape x dtype disagreeing with the byte range', () => {
    const p = craft({ w: { dtype: 'F32', shape: [2, 3], data_offsets: [0, 20] } }, 20);
    expectModelError(() => readSafetensorsHeader(p), "tensor 'w'", /shape \[2, 3\] of F32 needs 24 bytes, but data_offsets \[0, 20\] hold 20/);
    const big = craft({ w: { dtype: 'F64', shape: [4294967296, 4294967296, 4096], data_offsets: [0, 8] } }, 8);
    expectModelError(() => readSafetensorsHeader(big), /needs 604462909807314587353088 bytes/);
    const f4 = craft({ w: { dtype: 'F4', shape: [3], data_offsets: [0, 2] } }, 2);
    expectModelError(() => readSafetensorsHeader(f4), /does not fill whole bytes/);
  });

  test('malformed entries name the JSON field', () => {
    expectModelError(() => readSafetensorsHeader(craft({ w: { dtype: 'Q4', shape: [1], data_offsets: [0, 1] } }, 1)), /at w\.dtype/);
    expectModelError(() => readSafetensorsHeader(craft({ w: { dtype: 'F32', shape: [-1], data_offsets: [0, 4] } }, 4)), /at w\.shape\[0\]/);
    expectModelError(() => readSafetensorsHeader(craft({ w: { dtype: 'F32', shape: [1.5], data_offsets: [0, 4] } }, 4)), /at w\.shape\[0\]/);
    expectModelError(() => readSafetensorsHeader(craft({ w: { dtype: 'F32', shape: [1], data_offsets: [0] } }, 4)), /at w\.data_offsets/);
    expectModelError(() => readSafetensorsHeader(craft({ w: { dtype: 'F32', shape: [1], data_offsets: [8, 4] } }, 8)), /end before they begin/);
    expectModelError(() => readSafetensorsHeader(craft({ w: { dtype: 'F32', shape: [1], data_offsets: [0, 1e300] } }, 4)), /at w\.data_offsets\[1\]/);
    expectModelError(() => readSafetensorsHeader(craft({ w: 'F32' }, 0)), /at w/);
    expectModelError(() => readSafetensorsHeader(craft({ __metadata__: { n: 1 } }, 0)), /at __metadata__\.n/, /must be strings/);
  });

  test('header text that is not a JSON object, or lists a name twice', () => {
    expectModelError(() => readSafetensorsHeader(craft('[1, 2]', 0)), /must start with '\{'/);
    expectModelError(() => readSafetensorsHeader(craft('{"a": ', 0)), /not valid JSON/);
    expectModelError(() => readSafetensorsHeader(craft(Buffer.from([0x7b, 0xff, 0xfe, 0x7d]).toString('latin1'), 0)), /not valid JSON|UTF-8/);
    const bad = fresh();
    const hdr = Buffer.from([0x7b, 0x22, 0xc3, 0x28, 0x22, 0x3a, 0x31, 0x7d]); // {"\xc3(":1}
    const pre = Buffer.alloc(8);
    pre.writeBigUInt64LE(BigInt(hdr.length));
    writeFileSync(bad, Buffer.concat([pre, hdr]));
    expectModelError(() => readSafetensorsHeader(bad), /not valid UTF-8/);
    const dup = '{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}';
    expectModelError(() => readSafetensorsHeader(craft(dup, 4)), /lists "a" twice/);
    // the same key nested inside entries is fine
    expect(readSafetensorsHeader(craft('{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}', 8)).entries).toHaveLength(2);
  });

  test('random corruption: every mutated or cut file either reads and maps within bounds or fails as a ModelFileError', () => {
    const src = fresh();
    writeSafetensorsSync(src, {
      a: { dtype: 'F32', shape: [3, 2], data: Float32Array.from([1, 2, 3, 4, 5, 6]) },
      b: { dtype: 'BF16', shape: [5], data: new Uint16Array(5) },
      c: { dtype: 'I32', shape: [2], data: Int32Array.from([7, 8]) },
    });
    const bytes = readFileSync(src);
    let seed = 12345;
    const rand = (n: number) => {
      seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
      return seed % n;
    };
    const digits = '0123456789';
    let ok = 0;
    let refused = 0;
    for (let iter = 0; iter < 300; iter++) {
      const m = Buffer.from(bytes);
      const kind = iter % 3;
      if (kind === 0) m[rand(m.length)] = rand(256); // any byte
      if (kind === 1) {
        // a digit of the header changed to another digit: offsets and shapes that still parse
        const at = [...m.subarray(0, 8 + Number(m.readBigUInt64LE(0)))].flatMap((c, i) => (c >= 48 && c <= 57 ? [i] : []));
        m[at[rand(at.length)]] = digits.charCodeAt(rand(10));
      }
      const p = join(dir, `fuzz-${iter}.safetensors`);
      writeFileSync(p, kind === 2 ? m.subarray(0, rand(m.length)) : m);
      try {
        const f = SafetensorsFile.open(p);
        for (const name of f.names) {
          const e = f.entry(name);
          expect(e.fileOffset + e.nbytes).toBeLessThanOrEqual(f.header.fileSize);
          if (e.dtype === 'F32' || e.dtype === 'BF16' || e.dtype === 'I32' || e.dtype === 'F16') f.tensor(name).release();
        }
        ok++;
      } catch (e) {
        expect(e).toBeInstanceOf(ModelFileError);
        refused++;
      }
      rmSync(p);
    }
    // both outcomes happen, so the loop exercised the checks and the mapping
    expect(ok).toBeGreaterThan(10);
    expect(refused).toBeGreaterThan(100);
  });

  test('a file truncated after its header was read is refused before mapping', () => {
    const p = craft(good, 16);
    const f = SafetensorsFile.open(p);
    truncateSync(p, readFileSync(p).length - 8);
    expectModelError(() => f.tensor('b'), "tensor 'b'", /changed size since its header was read/);
  });
});

describe('sharded checkpoints', () => {
  const values = (k: number) => Float32Array.from({ length: 16 }, (_, i) => k * 100 + i);
  const tensors = () =>
    new Map(Array.from({ length: 5 }, (_, k) => [`layer.${k}.weight`, { dtype: 'F32' as const, shape: [4, 4], data: values(k) }] as const));

  test('writeSafetensorsCheckpoint splits at maxShardBytes with an index, and the checkpoint reads back', async () => {
    const sub = mkdtempSync(join(dir, 'shards-'));
    const files = await writeSafetensorsCheckpoint(sub, tensors(), { maxShardBytes: 140, metadata: { format: 'pt' } });
    expect(files).toEqual(['model-00001-of-00003.safetensors', 'model-00002-of-00003.safetensors', 'model-00003-of-00003.safetensors', 'model.safetensors.index.json']);
    const index = JSON.parse(readFileSync(join(sub, 'model.safetensors.index.json'), 'utf8'));
    expect(index.metadata.total_size).toBe(5 * 64);
    expect(index.weight_map['layer.4.weight']).toBe('model-00003-of-00003.safetensors');
    const ck = SafetensorsCheckpoint.open(sub);
    expect(ck.indexPath).toBe(join(sub, 'model.safetensors.index.json'));
    expect(ck.files).toHaveLength(3);
    for (let k = 0; k < 5; k++) expect(Array.from(ck.tensor(`layer.${k}.weight`).data())).toEqual(Array.from(values(k)));
    // beside the index, a model.safetensors is what transformers' from_pretrained picks first
    writeSafetensorsSync(join(sub, 'model.safetensors'), { only: { dtype: 'F32', shape: [1], data: Float32Array.from([1]) } });
    expect(SafetensorsCheckpoint.open(sub).names).toEqual(['only']);
    expect(SafetensorsCheckpoint.open(join(sub, 'model.safetensors.index.json')).files).toHaveLength(3);
    // fits in one shard: a single model.safetensors, no index
    const one = mkdtempSync(join(dir, 'single-'));
    expect(await writeSafetensorsCheckpoint(one, tensors())).toEqual(['model.safetensors']);
    expect(SafetensorsCheckpoint.open(one).indexPath).toBeNull();
  });

  async function sharded(): Promise<string> {
    const sub = mkdtempSync(join(dir, 'shards-'));
    await writeSafetensorsCheckpoint(sub, tensors(), { maxShardBytes: 140 });
    return sub;
  }
  const editIndex = (sub: string, edit: (ix: { weight_map: Record<string, string> }) => void) => {
    const p = join(sub, 'model.safetensors.index.json');
    const ix = JSON.parse(readFileSync(p, 'utf8'));
    edit(ix);
    writeFileSync(p, JSON.stringify(ix));
    return p;
  };

  test('an index naming a missing shard, a shard outside the directory, or a tensor its shard lacks', async () => {
    const a = await sharded();
    editIndex(a, (ix) => (ix.weight_map['layer.0.weight'] = 'model-00009-of-00009.safetensors'));
    expectModelError(() => SafetensorsCheckpoint.open(a), /at weight_map\.layer\.0\.weight/, /shard 'model-00009-of-00009.safetensors' does not exist/);
    const b = await sharded();
    editIndex(b, (ix) => (ix.weight_map['layer.0.weight'] = '../../etc/passwd'));
    expectModelError(() => SafetensorsCheckpoint.open(b), /must be a file name in the index's directory/);
    editIndex(b, (ix) => (ix.weight_map['layer.0.weight'] = ''));
    expectModelError(() => SafetensorsCheckpoint.open(b), /shard '' must be a file name/);
    expectModelError(() => SafetensorsFile.open(b), /not a regular file/);
    const c = await sharded();
    editIndex(c, (ix) => (ix.weight_map['layer.0.weight'] = 'model-00002-of-00003.safetensors'));
    expectModelError(() => SafetensorsCheckpoint.open(c), "tensor 'layer.0.weight'", /puts this tensor in 'model-00002-of-00003.safetensors', but that shard does not hold it/);
    const d = await sharded();
    writeSafetensorsSync(join(d, 'model-00003-of-00003.safetensors'), { 'layer.4.weight': { dtype: 'F32', shape: [4, 4], data: values(4) }, 'layer.0.weight': { dtype: 'F32', shape: [4, 4], data: values(0) } });
    expectModelError(() => SafetensorsCheckpoint.open(d), "tensor 'layer.0.weight'", /stored in two shards/);
    const e = await sharded();
    writeFileSync(join(e, 'model.safetensors.index.json'), '{"weight_map": 3}');
    expectModelError(() => SafetensorsCheckpoint.open(e), /at weight_map/);
  });

  test('a directory without safetensors weights says what it found', () => {
    const sub = mkdtempSync(join(dir, 'none-'));
    writeFileSync(join(sub, 'pytorch_model.bin'), 'x');
    expectModelError(() => SafetensorsCheckpoint.open(sub), /no model.safetensors or model.safetensors.index.json/, /found pytorch_model.bin/);
    expect(existsSync(join(sub, 'model.safetensors'))).toBe(false);
  });
});
