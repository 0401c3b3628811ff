// Tensors and their memory: zero-copy views (JS writes are seen by ops, op outputs are seen through
// views taken before the op), release (later use names the op and the argument, code ERELEASED; a
// view taken before release stays valid), reshape shares memory, fromArray / empty / convert checks.
import v8 from 'node:v8';
import vm from 'node:vm';
import { Tensor, ops, native } from '../../bindings/index.js';
import { expectEqual, uniform, roundBf16Array, f32ToBf16Bits } from '../helpers/numeric.js';
import { f32, read, filled } from '../helpers/tensors.js';

v8.setFlagsFromString('--expose-gc');
const gc = vm.runInNewContext('gc') as () => void;

function caught(fn: () => unknown): Error & { code?: string } {
  try {
    fn();
  } catch (e) {
    return e as Error & { code?: string };
  }
  throw new Error('expected an error, none was thrown');
}

describe('zero-copy views', () => {
  test('a write through .data() is seen by an op', () => {
    const a = Tensor.empty('f32', [4]);
    a.data().set([1, 2, 3, 4]);
    const out = Tensor.empty('f32', [4]);
    ops.add(a, a, out);
    expect(Array.from(out.data())).toEqual([2, 4, 6, 8]);
  });

  test("an op's output is seen through a view taken before the op", () => {
    const out = Tensor.empty('f32', [3]);
    const view = out.data();
    expect(Array.from(view)).toEqual([0, 0, 0]);
    ops.add(f32([1, 2, 3], [3]), f32([10, 20, 30], [3]), out);
    expect(Array.from(view)).toEqual([11, 22, 33]);
  });

  test('views of one tensor share one buffer; toFloat32 is a copy', () => {
    const t = f32([1, 2, 3], [3]);
    const v1 = t.data();
    const v2 = t.data();
    expect(v1.buffer).toBe(v2.buffer);
    v1[0] = 42;
    expect(v2[0]).toBe(42);
    const copy = t.toFloat32();
    copy[1] = -1;
    expect(t.data()[1]).toBe(2);
  });

  test('i32 and bf16 views have the right element types', () => {
    const i = Tensor.fromArray([1, -2, 3], [3], 'i32');
    expect(i.data<'i32'>()).toBeInstanceOf(Int32Array);
    expect(Array.from(i.data<'i32'>())).toEqual([1, -2, 3]);
    const b = Tensor.fromArray([1.5, -2, 1 / 3], [3], 'bf16');
    expect(b.data<'bf16'>()).toBeInstanceOf(Uint16Array);
    expect(Array.from(b.data<'bf16'>())).toEqual([1.5, -2, 1 / 3].map(f32ToBf16Bits));
  });

  test('Tensor.empty is zero-filled', () => {
    expect(read(Tensor.empty('f32', [1000])).every((v) => v === 0)).toBe(true);
    expect(Array.from(Tensor.empty('i32', [5]).data<'i32'>())).toEqual([0, 0, 0, 0, 0]);
  });
});

describe('release', () => {
  test('using a released tensor in an op throws ERELEASED naming the op and the argument', () => {
    const a = f32([1, 2], [2]);
    const b = f32([3, 4], [2]);
    const out = Tensor.empty('f32', [2]);
    b.release();
    expect(b.released).toBe(true);
    const e = caught(() => ops.add(a, b, out));
    expect(e.code).toBe('ERELEASED');
    expect(e.message).toBe("add: argument 'b' is a released tensor");
    const e2 = caught(() => ops.linearForward(a.reshape([1, 2]), f32([1, 2, 3, 4], [2, 2]), b));
    expect(e2.code).toBe('ERELEASED');
    expect(e2.message).toMatch(/^linear_forward: argument 'y' is a released tensor/);
  });

  test('a released tensor inside a list names the list element', () => {
    const t = [filled([2], 1), filled([2], 1)];
    t[1].release();
    const e = caught(() => ops.zero(t));
    expect(e.code).toBe('ERELEASED');
    expect(e.message).toBe("zero: argument 'tensors[1]' is a released tensor");
  });

  test('the async variant rejects the same way', async () => {
    const a = f32([1, 2], [2]);
    a.release();
    await expect(ops.addAsync(a, a, Tensor.empty('f32', [2]))).rejects.toMatchObject({
      code: 'ERELEASED',
      message: "add: argument 'a' is a released tensor",
    });
  });

  test('release is idempotent; data() and reshape() of a released tensor throw', () => {
    const t = f32([1, 2, 3, 4], [4]);
    t.release();
    expect(() => t.release()).not.toThrow();
    expect(() => t.data()).toThrow(/released/);
    expect(() => t.reshape([2, 2])).toThrow(/released/);
  });

  test('a view taken before release stays readable (after GC and reuse of memory)', () => {
    const n = 1 << 16;
    const vals = uniform(n, 3);
    const t = f32(vals, [n]);
    const view = t.data();
    t.release();
    gc();
    // allocate and fill tensors of the same size: freed memory would be handed out again
    const others = Array.from({ length: 8 }, () => filled([n], -7));
    gc();
    expectEqual('view after release', view, vals);
    expect(others[7].data()[0]).toBe(-7);
  });

  test('a reshaped view keeps the storage alive after the original is released', () => {
    const t = f32([1, 2, 3, 4, 5, 6], [6]);
    const r = t.reshape([2, 3]);
    t.release();
    gc();
    expect(Array.from(r.data())).toEqual([1, 2, 3, 4, 5, 6]);
    const out = Tensor.empty('f32', [2, 3]);
    ops.add(r, r, out);
    expect(Array.from(out.data())).toEqual([2, 4, 6, 8, 10, 12]);
  });
});

describe('reshape', () => {
  test('shares memory in both directions and keeps the dtype', () => {
    const t = f32(uniform(12, 1), [12]);
    const r = t.reshape([3, 4]);
    expect(r.shape).toEqual([3, 4]);
    expect(r.dtype).toBe('f32');
    r.data()[5] = 123;
    expect(t.data()[5]).toBe(123);
    t.data()[11] = -5;
    expect(r.data()[11]).toBe(-5);
    // an op writing into the reshaped tensor writes the original's memory
    ops.zero([r]);
    expect(read(t).every((v) => v === 0)).toBe(true);
  });

  test('a different element count is refused with both shapes in the message', () => {
    const t = Tensor.empty('f32', [4]);
    expect(() => t.reshape([3])).toThrow('reshape: cannot view f32[4] as [3] (4 vs 3 elements)');
    expect(() => t.reshape([-1, 4])).toThrow(/reshape: argument 'shape' must hold non-negative integers/);
  });
});

describe('construction', () => {
  test('fromArray with the wrong number of bytes throws, naming both sizes', () => {
    expect(() => Tensor.fromArray(new Float32Array(5), [2, 3])).toThrow('Tensor.fromBytes: data has 20 bytes but f32[2, 3] needs 24');
    expect(() => Tensor.fromArray(new Uint16Array(4), [4], 'f32')).toThrow(/data has 8 bytes but f32\[4\] needs 16/);
  });

  test('fromArray copies (later writes to the source do not reach the tensor)', () => {
    const src = new Float32Array([1, 2, 3]);
    const t = Tensor.fromArray(src, [3]);
    src[0] = 100;
    expect(t.data()[0]).toBe(1);
  });

  test('bad shapes and dtypes are refused with a clear message', () => {
    expect(() => Tensor.empty('f32', [2, -1])).toThrow(/Tensor.empty: argument 'shape' must hold non-negative integers, element 1 is -1/);
    expect(() => Tensor.empty('f32', [1.5])).toThrow(/non-negative integers/);
    expect(() => Tensor.empty('f64' as 'f32', [2])).toThrow(/unknown dtype 'f64'/);
    expect(() => Tensor.empty('f32', [1 << 30, 1 << 30, 1 << 30])).toThrow(/too large/);
  });

  test('the native tensor class cannot be constructed from JS', () => {
    const Ctor = native().NativeTensor as unknown as new (...a: unknown[]) => unknown;
    expect(() => new Ctor()).toThrow(/cannot be constructed directly/);
    expect(() => new Ctor(1)).toThrow(/cannot be constructed directly/);
  });

  test('convert: f32 -> bf16 rounds to nearest even, bf16 -> f32 widens exactly; i32 cannot convert', () => {
    const x = uniform(1000, 5, -1e4, 1e4);
    const b = f32(x, [1000]).convert('bf16');
    expect(b.dtype).toBe('bf16');
    expectEqual('bf16 bits', b.data<'bf16'>(), Array.from(x, f32ToBf16Bits));
    expectEqual('widened', b.convert('f32').data(), roundBf16Array(x));
    expect(() => Tensor.empty('i32', [2]).convert('f32')).toThrow(/convert: cannot convert an i32 tensor/);
  });
});
