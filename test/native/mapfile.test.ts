// Tensor.mapFile: f32, bf16 and f16 data at odd offsets of a temp file, mapped without a copy (read-
// only: ops refuse to write into it, JS writes never reach the file), f16 -> f32 / bf16 conversion on
// load (subnormals, ±0, ±inf, NaN, the largest half), a mapped bf16 weight used by an op, and regions
// past the end of the file or missing files giving clear errors.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Tensor, ops, setBf16Dot } from '../../bindings/index.js';
import { expectClose, expectCloseToEither, expectEqual, uniform, f32ToBf16Bits, bf16BitsToNumber, f16BitsToNumber } from '../helpers/numeric.js';
import { linearRef, linearAbsRef } from '../helpers/reference.js';
import { f32, read, bf16DotActive, restoreDefaults } from '../helpers/tensors.js';

// f16 bit patterns with their meaning
const F16: [number, string][] = [
  [0x0000, '+0'],
  [0x8000, '-0'],
  [0x0001, 'smallest subnormal 2^-24'],
  [0x8001, '-smallest subnormal'],
  [0x0155, 'subnormal 341·2^-24'],
  [0x03ff, 'largest subnormal 1023·2^-24'],
  [0x0400, 'smallest normal 2^-14'],
  [0x3c00, '1'],
  [0xbc00, '-1'],
  [0x3555, '0.333'],
  [0x4248, '3.140625'],
  [0x7bff, 'largest half 65504'],
  [0xfbff, '-65504'],
  [0x7c00, '+inf'],
  [0xfc00, '-inf'],
  [0x7e00, 'quiet NaN'],
  [0x7c01, 'signalling NaN'],
  [0xfe00, '-NaN'],
  [0x1234, 'normal 0x1234'],
];

const N32 = 37;
const NB16 = 25;
const OFF32 = 13; // odd
const OFF_B16 = OFF32 + N32 * 4; // 161, odd
const OFF_F16 = OFF_B16 + NB16 * 2; // 211, odd
const W = { N: 9, K: 11 }; // a bf16 weight [9, 11] at another odd offset
const OFF_W = OFF_F16 + F16.length * 2 + 3;

let dir: string;
let file: string;
let fileBytes: Buffer;
const v32 = uniform(N32, 1, -100, 100);
const bitsB16 = Array.from(uniform(NB16, 2, -10, 10), f32ToBf16Bits);
const wVals = uniform(W.N * W.K, 3);
const wBits = Array.from(wVals, f32ToBf16Bits);

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'sw-mapfile-'));
  file = join(dir, 'tensors.bin');
  const buf = Buffer.alloc(OFF_W + wBits.length * 2 + 5, 0xa5);
  v32.forEach((v, i) => buf.writeFloatLE(v, OFF32 + 4 * i));
  bitsB16.forEach((b, i) => buf.writeUInt16LE(b, OFF_B16 + 2 * i));
  F16.forEach(([b], i) => buf.writeUInt16LE(b, OFF_F16 + 2 * i));
  wBits.forEach((b, i) => buf.writeUInt16LE(b, OFF_W + 2 * i));
  writeFileSync(file, buf);
  fileBytes = buf;
});

afterAll(() => {
  restoreDefaults();
  rmSync(dir, { recursive: true, force: true });
});

describe('mapping', () => {
  test('f32 at an odd offset: exact values, read-only, no copy (mmap storage)', () => {
    const t = Tensor.mapFile(file, OFF32, 'f32', [N32]);
    expect(t.dtype).toBe('f32');
    expect(t.shape).toEqual([N32]);
    expect(t.readonly).toBe(true);
    expect(t.handle.storageKind).toBe('mmap');
    expectEqual('mapped f32', t.data(), v32);
  });

  test('bf16 at an odd offset: raw bits, and converted to f32 on load', () => {
    const t = Tensor.mapFile(file, OFF_B16, 'bf16', [5, 5]);
    expect(Array.from(t.data<'bf16'>())).toEqual(bitsB16);
    const c = Tensor.mapFile(file, OFF_B16, 'bf16', [5, 5], 'f32');
    expect(c.dtype).toBe('f32');
    expect(c.readonly).toBe(false);
    expectEqual('bf16 -> f32', c.data(), bitsB16.map(bf16BitsToNumber));
  });

  test('f16 -> f32 on load: subnormals, ±0, ±inf, NaN and the largest half are exact', () => {
    const t = Tensor.mapFile(file, OFF_F16, 'f16', [F16.length], 'f32');
    const got = t.data();
    F16.forEach(([bits, what], i) => {
      const want = f16BitsToNumber(bits);
      if (Number.isNaN(want)) expect([what, got[i]]).toEqual([what, NaN]);
      else expect([what, Object.is(got[i], want) ? 'same' : got[i]]).toEqual([what, 'same']);
    });
    expect(got[11]).toBe(65504);
    expect(got[2]).toBe(2 ** -24);
  });

  test('f16 -> bf16 on load: rounded to nearest even from the exact value (65504 -> 65536, NaN stays NaN)', () => {
    const t = Tensor.mapFile(file, OFF_F16, 'f16', [F16.length], 'bf16');
    expect(t.dtype).toBe('bf16');
    const bits = t.data<'bf16'>();
    F16.forEach(([b, what], i) => {
      const v = f16BitsToNumber(b);
      if (Number.isNaN(v)) expect([what, Number.isNaN(bf16BitsToNumber(bits[i]))]).toEqual([what, true]);
      else expect([what, bits[i]]).toEqual([what, f32ToBf16Bits(v)]);
    });
    expect(bf16BitsToNumber(bits[11])).toBe(65536);
  });

  test('f16 mapped as is stays f16 (raw bits) and widens through toFloat32', () => {
    const t = Tensor.mapFile(file, OFF_F16, 'f16', [F16.length]);
    expect(t.dtype).toBe('f16');
    expect(Array.from(t.data<'f16'>())).toEqual(F16.map(([b]) => b));
    const f = t.toFloat32();
    expect(f[7]).toBe(1);
    expect(f[13]).toBe(Infinity);
  });

  test.each([true, false])('a mapped bf16 weight at an odd offset feeds linearForward (bf16 dot %s)', (dot) => {
    setBf16Dot(dot);
    try {
      const w = Tensor.mapFile(file, OFF_W, 'bf16', [W.N, W.K]);
      const M = 7;
      const x = uniform(M * W.K, 4);
      const y = Tensor.empty('f32', [M, W.N]);
      ops.linearForward(f32(x, [M, W.K]), w, y);
      const wv = wBits.map(bf16BitsToNumber);
      const refs: [string, ArrayLike<number>][] = [['exact x', linearRef(x, wv, M, W.K, W.N)]];
      if (bf16DotActive()) refs.unshift(['x rounded to bf16', linearRef(Array.from(x, (v) => bf16BitsToNumber(f32ToBf16Bits(v))), wv, M, W.K, W.N)]);
      expectCloseToEither('linear with mapped W', read(y), refs, { rtol: 1e-5, scale: linearAbsRef(x, wv, M, W.K, W.N) });
    } finally {
      setBf16Dot(true);
    }
  });

  test('a mapped f32 B at an odd offset read in place by the GEMM (small M, plain B)', () => {
    const b = Tensor.mapFile(file, OFF32, 'f32', [1, N32]);
    const x = uniform(5, 7);
    const c = Tensor.empty('f32', [5, N32]);
    ops.matmul(f32(x, [5, 1]), b, c, false, false, 1, 0);
    const want = new Float64Array(5 * N32);
    for (let i = 0; i < 5; i++) for (let j = 0; j < N32; j++) want[i * N32 + j] = x[i] * v32[j];
    expectClose('x · mapped B', read(c), want, { rtol: 1e-6 });
  });

  test('a view of a mapped tensor stays readable after release', () => {
    const t = Tensor.mapFile(file, OFF32, 'f32', [N32]);
    const v = t.data();
    t.release();
    expectEqual('view after release', v, v32);
  });
});

describe('read-only', () => {
  test('ops refuse to write into a mapped tensor, naming the op and the argument', () => {
    const m = Tensor.mapFile(file, OFF32, 'f32', [N32]);
    const a = f32(uniform(N32, 5), [N32]);
    expect(() => ops.add(a, a, m)).toThrow(/^add: argument 'out' is read-only \(a memory-mapped file region\) and cannot be written: f32\[37\]$/);
    expect(() => ops.zero([a, m])).toThrow(/zero: argument 'tensors\[1\]' is read-only/);
    expect(() => ops.accumulate(a, 1, m)).toThrow(/accumulate: argument 'y' is read-only/);
    expect(() => ops.adamwStep([m], [a], [Tensor.empty('f32', [N32])], [Tensor.empty('f32', [N32])], { lr: 1e-3, step: 1 })).toThrow(
      /adamw_step: argument 'params\[0\]' is read-only/,
    );
    expect(() => ops.clipGradNorm([m], 1e-3)).toThrow(/clip_grad_norm: argument 'grads\[0\]' is read-only/);
    const table = Tensor.mapFile(file, OFF32, 'f32', [1, N32]);
    expect(() => ops.embeddingBackward(Tensor.fromArray([0], [1], 'i32'), f32(uniform(N32, 6), [1, N32]), table)).toThrow(
      /embedding_backward: argument 'dtable' is read-only/,
    );
    expectEqual('mapped values untouched', m.data(), v32);
  });

  test('as an input it is fine (add reads it)', () => {
    const m = Tensor.mapFile(file, OFF32, 'f32', [N32]);
    const out = Tensor.empty('f32', [N32]);
    ops.add(m, m, out);
    expectEqual('2·mapped', out.data(), Array.from(v32, (v) => 2 * v));
  });

  test('a write through a JS view never reaches the file (private mapping)', () => {
    const m = Tensor.mapFile(file, OFF32, 'f32', [N32]);
    m.data()[0] = 12345;
    expect(m.data()[0]).toBe(12345);
    expect(readFileSync(file).equals(fileBytes)).toBe(true);
    expect(Tensor.mapFile(file, OFF32, 'f32', [N32]).data()[0]).toBe(Math.fround(v32[0]));
  });
});

describe('bad regions', () => {
  test('a region past the end of the file throws a clear error (ERANGE), no crash', () => {
    const size = fileBytes.length;
    let err: (Error & { code?: string }) | undefined;
    try {
      Tensor.mapFile(file, size - 6, 'f32', [2]);
    } catch (e) {
      err = e as Error & { code?: string };
    }
    expect(err).toBeDefined();
    expect(err!.code).toBe('ERANGE');
    expect(err!.message).toBe(`region [${size - 6}, ${size + 2}) is outside '${file}' (${size} bytes)`);
    expect(() => Tensor.mapFile(file, size + 100, 'bf16', [1])).toThrow(/is outside/);
    expect(() => Tensor.mapFile(file, 0, 'f32', [size])).toThrow(/is outside/);
  });

  test('the last element exactly at the end of the file is fine', () => {
    const size = fileBytes.length;
    const t = Tensor.mapFile(file, size - 4, 'f32', [1]);
    expect(t.shape).toEqual([1]);
    expect(t.data()[0]).toBe(fileBytes.readFloatLE(size - 4));
  });

  test('a missing file (ENOENT) and a negative offset are errors', () => {
    const missing = join(dir, 'nope.bin');
    expect(() => Tensor.mapFile(missing, 0, 'f32', [1])).toThrow(new RegExp(`cannot open '${missing}'`));
    expect(() => Tensor.mapFile(file, -1, 'f32', [1])).toThrow(/Tensor.mapFile: argument 'offset' must be >= 0/);
  });
});
