// The ops on Tensors: the addon's ops with Tensor handles unwrapped. Every op exists as `name` (runs
// now, on this thread) and `nameAsync` (runs on the libuv thread pool and returns a Promise, so the
// event loop stays free). Output tensors are passed explicitly (llm.c style); see native/ops/*.h for
// shapes and semantics (parameter gradients accumulate, activation gradients are written).
import { native } from './native.js';
import { Tensor } from './tensor.js';
import type { NativeOps, NativeTensor } from './types.js';

type ToTensor<X> = X extends NativeTensor
  ? Tensor
  : X extends NativeTensor[]
    ? Tensor[]
    : X extends NativeTensor | null | undefined
      ? Tensor | null | undefined
      : X;
type MapArgs<A extends unknown[]> = { [K in keyof A]: ToTensor<A[K]> };
type TensorOps = {
  [K in keyof NativeOps]: NativeOps[K] extends (...a: infer A) => infer R ? (...a: MapArgs<A>) => R : never;
};
type TensorOpsAsync = {
  [K in keyof NativeOps as `${K & string}Async`]: NativeOps[K] extends (...a: infer A) => infer R
    ? (...a: MapArgs<A>) => Promise<R>
    : never;
};

function unwrap(arg: unknown): unknown {
  if (arg instanceof Tensor) return arg.handle;
  if (Array.isArray(arg) && arg.length > 0 && arg[0] instanceof Tensor) return arg.map((t: Tensor) => t.handle);
  return arg;
}

const OP_NAMES: (keyof NativeOps)[] = [
  'matmul', 'linearForward', 'linearBackward', 'loraLinearForward', 'loraLinearBackward', 'loraScaling',
  'rmsnormForward', 'rmsnormBackward', 'ropeForward', 'ropeBackward', 'attentionForward', 'attentionBackward',
  'swigluForward', 'swigluBackward', 'embeddingForward', 'embeddingBackward', 'crossEntropyForward',
  'crossEntropyBackward', 'add', 'accumulate', 'dropoutForward', 'dropoutBackward', 'adamwStep', 'globalGradNorm',
  'clipGradNorm', 'zero',
];

function build(): TensorOps & TensorOpsAsync {
  const table: Record<string, (...args: unknown[]) => unknown> = {};
  for (const name of OP_NAMES) {
    table[name] = (...args: unknown[]) => (native()[name] as (...a: unknown[]) => unknown)(...args.map(unwrap));
    const asyncName = `${name}Async`;
    table[asyncName] = async (...args: unknown[]) =>
      (native() as unknown as Record<string, (...a: unknown[]) => Promise<unknown>>)[asyncName](...args.map(unwrap));
  }
  return table as unknown as TensorOps & TensorOpsAsync;
}

/** All ops, sync and async. */
export const ops = build();
