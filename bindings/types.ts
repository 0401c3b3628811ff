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
  /** bf16: tile products on bf16-rounded operands with f32 accumulation (AVX512-BF16 CPUs; f32 elsewhere) */
  attentionForward(q: T, k: T, v: T, segment: Opt, scale: number, causal: boolean, out: T, lse: T, bf16?: boolean): void;
  attentionBackward(q: T, k: T, v: T, segment: Opt, scale: number, causal: boolean, out: T, lse: T, dout: T, dq: T, dk: T, dv: T, bf16?: boolean): void;
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
  setPipeSize(fd: number, bytes: number): number;
}

// ---- the native model (native/model, native/addon/model_glue.cpp)

/** rope_scaling of config.json: rope_type "llama3" or "linear" (or "default": none). */
export type NativeRopeScaling =
  | { type: 'llama3'; factor: number; lowFreqFactor: number; highFreqFactor: number; originalMaxPositionEmbeddings: number }
  | { type: 'linear'; factor: number }
  | { type: 'default' };

/** The fields of a Llama-family config.json the native model reads (camelCase). */
export interface NativeModelConfig {
  vocabSize: number;
  hiddenSize: number;
  intermediateSize: number;
  numHiddenLayers: number;
  numAttentionHeads: number;
  /** default: numAttentionHeads (no grouped-query attention) */
  numKeyValueHeads?: number;
  /** default: hiddenSize / numAttentionHeads */
  headDim?: number;
  /** default 1e-6 */
  rmsNormEps?: number;
  /** default 10000 */
  ropeTheta?: number;
  ropeScaling?: NativeRopeScaling | null;
  tieWordEmbeddings?: boolean;
  /** q_proj, k_proj and v_proj have biases (Qwen2; Llama with attention_bias) */
  attentionBias?: boolean;
  /** o_proj has a bias (Llama with attention_bias) */
  oProjBias?: boolean;
  maxPositionEmbeddings?: number;
}

/** PEFT's names for the projections an adapter can target. */
export type LoraTargetModule = 'q_proj' | 'k_proj' | 'v_proj' | 'o_proj' | 'gate_proj' | 'up_proj' | 'down_proj';

export interface NativeLoraConfig {
  r: number;
  /** default r (scaling 1) */
  loraAlpha?: number;
  loraDropout?: number;
  /** scaling = loraAlpha / sqrt(r) instead of loraAlpha / r */
  useRslora?: boolean;
  targetModules: LoraTargetModule[];
  /** default: every layer */
  layersToTransform?: number[];
  /** seed of lora_A's Kaiming-uniform initialization (and of the default dropout seeds) */
  seed?: number | bigint;
}

export interface NativeStepOptions {
  /** i32 [B, T]; default 0..T-1, restarting where the segment id changes */
  positions?: NativeTensor;
  /** i32 [B, T]: packed sequences; attention stays inside a segment */
  segments?: NativeTensor;
  /** dropout seed of this step (default: the model's step counter) */
  seed?: number | bigint;
  /** keep only each layer's input and recompute the layer in the backward */
  checkpointing?: boolean;
  /** gradients of lossSum / lossDenominator (default: the counted tokens, i.e. of the mean loss) */
  lossDenominator?: number;
  /** tokens per chunk of the vocabulary projection (default: about 100 MiB of f32 logits, a multiple of 64 in [64, 1024]: 512 for a 49k vocabulary) */
  chunkTokens?: number;
  /** attention's tile products in bf16 with f32 accumulation (AVX512-BF16 CPUs; f32 elsewhere). Default 'f32'. */
  attentionPrecision?: 'f32' | 'bf16';
}

export interface NativeLossResult {
  /** mean loss over the counted tokens (0 when none count) */
  loss: number;
  lossSum: number;
  /** tokens whose target is not -100 */
  tokens: number;
}

export type NativeParameterKind = 'param' | 'grad' | 'exp_avg' | 'exp_avg_sq';

export interface NativeModelMemory {
  baseWeightBytes: number;
  mappedWeightBytes: number;
  ownedWeightBytes: number;
  trainableBytes: number;
  activationBytes: number;
  kvCacheBytes: number;
  mergedBytes: number;
}

export interface NativeModelInfo {
  config: Required<Omit<NativeModelConfig, 'ropeScaling'>> & { ropeScaling: NativeRopeScaling | null };
  merged: boolean;
  memory: NativeModelMemory;
}

export interface NativeModelMethods {
  addLora(config: NativeLoraConfig): void;
  /** q_proj ... down_proj (with their biases), input_layernorm, post_attention_layernorm, norm */
  enableFullFinetune(modules: string[], layers?: number[]): void;
  /** forward, loss, backward; gradients accumulate */
  trainStep(ids: T, targets: T, options?: NativeStepOptions): NativeLossResult;
  evalLoss(ids: T, targets: T, options?: NativeStepOptions): NativeLossResult;
  /** full logits [B, T, V] (small inputs: tests, scoring) */
  logits(ids: T, options?: NativeStepOptions): NativeTensor;
  zeroGrad(): void;
  gradNorm(): number;
  clipGradNorm(maxNorm: number): number;
  /** AdamW over every trainable tensor (weightDecay default 0; never on biases and norm weights) */
  optimizerStep(hyper: AdamWHyper): void;
  /** trainable tensors by name (PEFT names for adapters, HF names for fully tuned modules): views, no copy */
  parameters(kind?: NativeParameterKind): Record<string, NativeTensor>;
  setParameter(name: string, value: T, kind?: NativeParameterKind): void;
  /** resets the KV cache to these right-padded prompts; logits [B, V] at each prompt's last token */
  prefill(ids: T, lengths?: Opt, capacity?: number): NativeTensor;
  /** one token per sequence: ids i32 [n], slots i32 [n] (default 0..n-1); logits [n, V] */
  decodeStep(ids: T, slots?: Opt): NativeTensor;
  resetCache(): void;
  cacheLengths(): number[];
  merge(): void;
  unmerge(): void;
  releaseBuffers(): void;
  info(): NativeModelInfo;
}

/** The native model object: every method also exists as `nameAsync` (libuv pool, Promise). */
export interface NativeModel extends NativeModelMethods, Asyncify<NativeModelMethods> {
  release(): void;
  released(): boolean;
}

export interface NativeAddon {
  NativeModel: new (config: NativeModelConfig, weights: Record<string, NativeTensor>) => NativeModel;
}
