// The typed face of the native addon: Tensor, the ops, and runtime controls.
import { native } from './native.js';
import type { IsaName, NativeInfo } from './types.js';

export { Tensor } from './tensor.js';
export type { TypedArrayFor } from './tensor.js';
export { ops } from './ops.js';
export { NativeCausalLM, type StepOptions } from './model.js';
export { NativeLoadError, EXPECTED_ABI_VERSION, loadNative, native, packageRoot } from './native.js';
export type * from './types.js';

/** Build and runtime facts: ABI, ISA in use, threads, CUDA devices. */
export function nativeInfo(): NativeInfo {
  return native().info();
}

/** Force the kernels' instruction set (tests compare the paths); throws if this CPU lacks it. */
export function setIsa(isa: IsaName): void {
  native().setIsa(isa);
}

/** Allow or forbid the AVX512-BF16 dot-product path for bf16 weights (forbidden: widen to f32). */
export function setBf16Dot(enabled: boolean): void {
  native().setBf16Dot(enabled);
}

/**
 * Sets the capacity of the pipe behind a file descriptor (Linux F_SETPIPE_SZ; at most
 * /proc/sys/fs/pipe-max-size, 1 MiB by default, without privilege). Returns the capacity now in force,
 * or -1 where the platform has no such setting; throws with the errno text when the kernel refuses.
 */
export function setPipeSize(fd: number, bytes: number): number {
  return native().setPipeSize(fd, bytes);
}

/** Threads of the native pool (default: the number of cores, or STARWEAVE_NUM_THREADS). */
export function setNumThreads(n: number): void {
  native().setNumThreads(n);
}
