// Tensor: a TypeScript handle on a tensor in native memory (64-byte aligned, or a memory-mapped file
// region). `data()` views CPU memory from JS without a copy; `toArray()` copies.
import { native } from './native.js';
import type { DType, DeviceName, NativeTensor } from './types.js';

export type TypedArrayFor<D extends DType> = D extends 'f32' ? Float32Array : D extends 'i32' ? Int32Array : Uint16Array;

const BYTES: Record<DType, number> = { f32: 4, bf16: 2, f16: 2, i32: 4 };

export class Tensor {
  /** @internal */
  constructor(readonly handle: NativeTensor) {}

  /** A zero-filled tensor. */
  static empty(dtype: DType, shape: readonly number[], device: DeviceName = 'cpu'): Tensor {
    return new Tensor(native().tensorEmpty(dtype, [...shape], device));
  }

  static zeros(shape: readonly number[], dtype: DType = 'f32'): Tensor {
    return Tensor.empty(dtype, shape);
  }

  /** A copy of `data` (Float32Array for f32, Int32Array for i32, Uint16Array of raw bits for bf16/f16). */
  static fromArray(data: Float32Array | Int32Array | Uint16Array | number[], shape: readonly number[], dtype?: DType): Tensor {
    let src: Float32Array | Int32Array | Uint16Array;
    if (Array.isArray(data)) {
      src = dtype === 'i32' ? Int32Array.from(data) : Float32Array.from(data);
    } else {
      src = data;
    }
    const dt: DType = dtype ?? (src instanceof Int32Array ? 'i32' : src instanceof Uint16Array ? 'bf16' : 'f32');
    if (Array.isArray(data) && dt === 'bf16') {
      // numbers given for bf16: go through f32 and round
      const f = Tensor.fromArray(Float32Array.from(data), shape, 'f32');
      try {
        return f.convert('bf16');
      } finally {
        f.release();
      }
    }
    if (Array.isArray(data) && dt === 'f16') throw new TypeError('Tensor.fromArray: give f16 data as a Uint16Array of raw bits');
    return new Tensor(native().tensorFromBytes(src, dt, [...shape]));
  }

  /** Random values (uniform in [lo, hi)) from a seeded generator; for tests and benchmarks. */
  static random(shape: readonly number[], seed: number, lo = -1, hi = 1): Tensor {
    const n = shape.reduce((a, b) => a * b, 1);
    const a = new Float32Array(n);
    let s = (seed >>> 0) || 1;
    for (let i = 0; i < n; i++) {
      // xorshift32: fast and reproducible across platforms
      s ^= s << 13;
      s >>>= 0;
      s ^= s >>> 17;
      s ^= s << 5;
      s >>>= 0;
      a[i] = lo + ((s >>> 8) / 16777216) * (hi - lo);
    }
    return Tensor.fromArray(a, shape, 'f32');
  }

  /**
   * Maps [offset, offset + bytes) of a file as a read-only tensor (no copy; ops refuse to write into it).
   * With `convertTo`, the mapped data (f16, bf16 or f32) is converted into a new owned tensor instead.
   */
  static mapFile(path: string, offset: number, dtype: DType, shape: readonly number[], convertTo?: 'f32' | 'bf16'): Tensor {
    const mapped = native().tensorMapFile(path, offset, dtype, [...shape]);
    if (!convertTo || convertTo === dtype) return new Tensor(mapped);
    try {
      return new Tensor(native().tensorConvert(mapped, convertTo));
    } finally {
      mapped.release();
    }
  }

  get dtype(): DType {
    return this.handle.dtype;
  }
  get shape(): number[] {
    return this.handle.shape;
  }
  get numel(): number {
    return this.handle.shape.reduce((a, b) => a * b, 1);
  }
  get device(): DeviceName {
    return this.handle.device;
  }
  get readonly(): boolean {
    return this.handle.readonly;
  }
  get released(): boolean {
    return this.handle.released;
  }
  get nbytes(): number {
    return this.handle.nbytes;
  }

  /** A view of the CPU memory without a copy: writes through it change the tensor. */
  data<D extends DType = 'f32'>(): TypedArrayFor<D> {
    const buf = this.handle.buffer();
    const n = this.numel;
    const off = this.handle.byteOffset;
    switch (this.dtype) {
      case 'f32':
        return new Float32Array(buf, off, n) as TypedArrayFor<D>;
      case 'i32':
        return new Int32Array(buf, off, n) as TypedArrayFor<D>;
      default:
        if (off % BYTES[this.dtype] !== 0) throw new Error(`tensor byte offset ${off} is not aligned for ${this.dtype}`);
        return new Uint16Array(buf, off, n) as TypedArrayFor<D>;
    }
  }

  /** The values as f32 (bf16/f16 widened), copied. */
  toFloat32(): Float32Array {
    if (this.dtype === 'f32') return Float32Array.from(this.data<'f32'>());
    if (this.dtype === 'i32') return Float32Array.from(this.data<'i32'>());
    const t = this.convert('f32');
    try {
      return Float32Array.from(t.data<'f32'>());
    } finally {
      t.release();
    }
  }

  /** A converted copy (f32 or bf16). */
  convert(dtype: 'f32' | 'bf16'): Tensor {
    return new Tensor(native().tensorConvert(this.handle, dtype));
  }

  /** Another view of the same memory with a new shape (same number of elements). */
  reshape(shape: readonly number[]): Tensor {
    return new Tensor(this.handle.reshape([...shape]));
  }

  to(device: DeviceName): Tensor {
    const h = this.handle.to(device);
    return h === this.handle ? this : new Tensor(h);
  }

  /** Frees the tensor's memory once no view uses it; the tensor can no longer be used. */
  release(): void {
    this.handle.release();
  }

  toString(): string {
    return `Tensor(${this.dtype}[${this.shape.join(', ')}]${this.device === 'cpu' ? '' : '@' + this.device})`;
  }
}
