// Type declarations of the raw addon surface (native/addon). Library code uses the Tensor class and the
// ops in this folder, which wrap these.

export type DType = 'f32' | 'bf16' | 'f16' | 'i32';
export type DeviceName = 'cpu' | 'cuda';
export type IsaName = 'scalar' | 'avx2' | 'avx512';

/** A tensor in native memory (a handle: the data stays in the addon). */
export interface NativeTensor {
  readonly dtype: DType;
  readonly shape: number[];
  readonly device: DeviceName;
  readonly readonly: boolean;
  readonly released: boolean;
  readonly nbytes: number;
  readonly byteOffset: number;
  readonly storageKind: 'aligned' | 'mmap' | 'cuda' | 'none';
  /** The whole storage's memory as an ArrayBuffer, without a copy (CPU tensors only). */
  buffer(): ArrayBuffer;
  release(): void;
  reshape(shape: number[]): NativeTensor;
  to(device: DeviceName): NativeTensor;
}

export interface NativeInfo {
  abiVersion: number;
  sourceHash: string;
  isa: { detected: IsaName; active: IsaName; avx512bf16: boolean; bf16Dot: boolean };
  threads: number;
  cuda: {
    built: boolean;
    runtime?: string;
    driver?: string;
    devices: { index: number; name: string; totalMemory: number; computeCapability: string }[];
  };
}

export interface LoraOpConfig {
  /** lora_alpha / r (or / sqrt(r) with rsLoRA) */
  scale: number;
  /** lora_dropout in [0, 1) */
  dropout?: number;
  /** dropout mask seed (the same in forward and backward) */
  seed?: number;
}

export interface RopeConfig {
  headDim: number;
  theta: number;
  /** rope_scaling with rope_type "llama3" */
  llama3?: { factor: number; lowFreqFactor: number; highFreqFactor: number; originalMaxPositionEmbeddings: number };
  /** rope_scaling with rope_type "linear" */
  linearFactor?: number;
}

export interface AdamWHyper {
  lr: number;
  beta1?: number;
  beta2?: number;
  eps?: number;
  weightDecay?: number;
  /** step number after increment (>= 1) */
  step: number;
}

type T = NativeTensor;
type Opt = NativeTensor | null | undefined;

/** Each op exists as `name` (runs now) and `nameAsync` (runs on the libuv pool, returns a Promise). */
export interface NativeOps {
  matmul(a: T, b: T, c: T, transA: boolean, transB: boolean, alpha: number, beta: number): void;
  linearForward(x: T, w: T, y: T): void;
  linearBackward(dy: T, x: T, w: T, dx: Opt, dw: Opt): void;
  loraLinearForward(x: T, w: T, a: T, b: T, cfg: LoraOpConfig, y: T, u: T): void;
  loraLinearBackward(dy: T, x: T, w: T, a: T, b: T, u: T, cfg: LoraOpConfig, dx: Opt, da: T, db: T, dw: Opt): void;
  loraScaling(loraAlpha: number, r: number, useRslora: boolean): number;
  rmsnormForward(x: T, w: T, eps: number, y: T, rstd: T): void;
  rmsnormBackward(dy: T, x: T, w: T, rstd: T, dx: T, dw: Opt): void;
  ropeForward(x: T, positions: T, rope: RopeConfig, y: T): void;
  ropeBackward(dy: T, positions: T, rope: RopeConfig, dx: T): void;
  attentionForward(q: T, k: T, v: T, segment: Opt, scale: number, causal: boolean, out: T, lse: T): void;
  attentionBackward(q: T, k: T, v: T, segment: Opt, scale: number, causal: boolean, out: T, lse: T, dout: T, dq: T, dk: T, dv: T): void;
  swigluForward(gate: T, up: T, h: T): void;
  swigluBackward(dh: T, gate: T, up: T, dgate: T, dup: T): void;
  embeddingForward(ids: T, table: T, out: T): void;
  embeddingBackward(ids: T, dout: T, dtable: T): void;
  crossEntropyForward(logits: T, targets: T, ignoreIndex: number, losses: T, lse: T): number;
  crossEntropyBackward(logits: T, targets: T, lse: T, ignoreIndex: number, gradScale: number, dlogits: T): void;
  add(a: T, b: T, out: T): void;
  accumulate(x: T, alpha: number, y: T): void;
  dropoutForward(x: T, p: number, seed: number | bigint, out: T): void;
  dropoutBackward(dy: T, p: number, seed: number | bigint, dx: T): void;
  adamwStep(params: T[], grads: T[], m: T[], v: T[], hyper: AdamWHyper): void;
  globalGradNorm(grads: T[]): number;
  clipGradNorm(grads: T[], maxNorm: number): number;
  zero(tensors: T[]): void;
}

type Asyncify<O> = {
  [K in keyof O as K extends string ? `${K}Async` : never]: O[K] extends (...a: infer A) => infer R ? (...a: A) => Promise<R> : never;
};

export interface NativeAddon extends NativeOps, Asyncify<NativeOps> {
  NativeTensor: new (...args: never[]) => NativeTensor;
  tensorEmpty(dtype: DType, shape: number[], device?: DeviceName): NativeTensor;
  tensorFromBytes(data: ArrayBufferView | ArrayBuffer, dtype: DType, shape: number[]): NativeTensor;
  tensorMapFile(path: string, offset: number, dtype: DType, shape: number[]): NativeTensor;
  tensorConvert(t: NativeTensor, dtype: DType): NativeTensor;
  info(): NativeInfo;
  setIsa(isa: IsaName): void;
  setBf16Dot(enabled: boolean): void;
  setNumThreads(n: number): void;
}
