// Tensor helpers of the native tests: building tensors from f64 reference data, reading them back, and
// running code under each instruction set this CPU supports.
import { Tensor, nativeInfo, setIsa, setBf16Dot } from '../../bindings/index.js';
import type { IsaName } from '../../bindings/index.js';
import { f32ToBf16Bits, bf16BitsToNumber, prod } from './numeric.js';

/** f32 tensor holding `data` (rounded to f32) */
export function f32(data: ArrayLike<number>, shape: readonly number[]): Tensor {
  if (data.length !== prod(shape)) throw new Error(`f32(): ${data.length} values for shape [${shape.join(', ')}]`);
  return Tensor.fromArray(Float32Array.from(data as ArrayLike<number>), shape, 'f32');
}

/** bf16 tensor of `data` rounded to nearest even (bits computed here, not by the addon), and its values */
export function bf16(data: ArrayLike<number>, shape: readonly number[]): { t: Tensor; values: Float64Array } {
  const bits = new Uint16Array(data.length);
  const values = new Float64Array(data.length);
  for (let i = 0; i < data.length; i++) {
    bits[i] = f32ToBf16Bits(data[i]);
    values[i] = bf16BitsToNumber(bits[i]);
  }
  return { t: Tensor.fromArray(bits, shape, 'bf16'), values };
}

export function i32(data: ArrayLike<number>, shape: readonly number[]): Tensor {
  return Tensor.fromArray(Int32Array.from(data as ArrayLike<number>), shape, 'i32');
}

/** f32 tensor filled with NaN: an output that an op must overwrite (not read or accumulate into) */
export function nanTensor(shape: readonly number[]): Tensor {
  const t = Tensor.empty('f32', shape);
  t.data<'f32'>().fill(NaN);
  return t;
}

export function filled(shape: readonly number[], value: number): Tensor {
  const t = Tensor.empty('f32', shape);
  t.data<'f32'>().fill(value);
  return t;
}

/** the tensor's values as f64 (copied) */
export function read(t: Tensor): Float64Array {
  return Float64Array.from(t.toFloat32());
}

const ORDER: IsaName[] = ['scalar', 'avx2', 'avx512'];

/** ISAs this CPU and build can run (up to the detected one) */
export function availableIsas(): IsaName[] {
  const best = nativeInfo().isa.detected;
  return ORDER.slice(0, ORDER.indexOf(best) + 1);
}

/** Runs fn with the given ISA active, then restores the ISA that was active before. */
export function withIsa<T>(isa: IsaName, fn: () => T): T {
  const before = nativeInfo().isa.active;
  setIsa(isa);
  try {
    return fn();
  } finally {
    setIsa(before);
  }
}

/** Restores the detected ISA and the default bf16-dot setting (for afterAll). */
export function restoreDefaults(): void {
  setIsa(nativeInfo().isa.detected);
  setBf16Dot(true);
}

/** Whether the AVX512-BF16 dot path (activations rounded to bf16) is what a bf16 GEMM uses now. */
export function bf16DotActive(): boolean {
  return nativeInfo().isa.bf16Dot;
}
