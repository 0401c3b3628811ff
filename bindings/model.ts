// NativeCausalLM: the native model (native/model) with Tensor arguments and results. Heavy calls have an
// `...Async` form that runs on the libuv pool, so the event loop stays free during a training step or a
// decode step. Semantics and shapes: native/model/llama.h; the library face is src/model/native-model.ts.
import { native } from './native.js';
import { Tensor } from './tensor.js';
import type {
  AdamWHyper,
  NativeLoraConfig,
  NativeLossResult,
  NativeModel,
  NativeModelConfig,
  NativeModelInfo,
  NativeParameterKind,
  NativeStepOptions,
  NativeTensor,
} from './types.js';

/** Step options with Tensors (see NativeStepOptions). */
export interface StepOptions extends Omit<NativeStepOptions, 'positions' | 'segments'> {
  positions?: Tensor;
  segments?: Tensor;
}

function step(o?: StepOptions): NativeStepOptions | undefined {
  if (!o) return undefined;
  const { positions, segments, ...rest } = o;
  return { ...rest, positions: positions?.handle, segments: segments?.handle };
}

function tensorRecord(r: Record<string, NativeTensor>): Record<string, Tensor> {
  const out: Record<string, Tensor> = {};
  for (const [k, v] of Object.entries(r)) out[k] = new Tensor(v);
  return out;
}

export class NativeCausalLM {
  readonly handle: NativeModel;

  /** weights: Hugging Face names -> tensors (kept as given: no copy of f32/bf16 matrices). */
  constructor(config: NativeModelConfig, weights: Record<string, Tensor> | Map<string, Tensor>) {
    const handles: Record<string, NativeTensor> = {};
    const entries = weights instanceof Map ? [...weights.entries()] : Object.entries(weights);
    for (const [name, t] of entries) handles[name] = t.handle;
    this.handle = new (native().NativeModel)(config, handles);
  }

  addLora(config: NativeLoraConfig): void {
    this.handle.addLora(config);
  }
  enableFullFinetune(modules: string[], layers?: number[]): void {
    this.handle.enableFullFinetune(modules, layers);
  }

  trainStep(ids: Tensor, targets: Tensor, options?: StepOptions): NativeLossResult {
    return this.handle.trainStep(ids.handle, targets.handle, step(options));
  }
  trainStepAsync(ids: Tensor, targets: Tensor, options?: StepOptions): Promise<NativeLossResult> {
    return this.handle.trainStepAsync(ids.handle, targets.handle, step(options));
  }
  evalLoss(ids: Tensor, targets: Tensor, options?: StepOptions): NativeLossResult {
    return this.handle.evalLoss(ids.handle, targets.handle, step(options));
  }
  evalLossAsync(ids: Tensor, targets: Tensor, options?: StepOptions): Promise<NativeLossResult> {
    return this.handle.evalLossAsync(ids.handle, targets.handle, step(options));
  }
  /** logits [B, T, V] of every position (small inputs) */
  logits(ids: Tensor, options?: StepOptions): Tensor {
    return new Tensor(this.handle.logits(ids.handle, step(options)));
  }
  async logitsAsync(ids: Tensor, options?: StepOptions): Promise<Tensor> {
    return new Tensor(await this.handle.logitsAsync(ids.handle, step(options)));
  }

  zeroGrad(): void {
    this.handle.zeroGrad();
  }
  gradNorm(): number {
    return this.handle.gradNorm();
  }
  clipGradNorm(maxNorm: number): number {
    return this.handle.clipGradNorm(maxNorm);
  }
  optimizerStep(hyper: AdamWHyper): void {
    this.handle.optimizerStep(hyper);
  }
  optimizerStepAsync(hyper: AdamWHyper): Promise<void> {
    return this.handle.optimizerStepAsync(hyper);
  }

  /** trainable tensors (views of the model's memory, no copy) */
  parameters(kind: NativeParameterKind = 'param'): Record<string, Tensor> {
    return tensorRecord(this.handle.parameters(kind));
  }
  /** copies `value` into the trainable tensor `name` (f32, bf16 or f16 of the same shape) */
  setParameter(name: string, value: Tensor, kind: NativeParameterKind = 'param'): void {
    this.handle.setParameter(name, value.handle, kind);
  }

  prefill(ids: Tensor, lengths?: Tensor | null, capacity = 0): Tensor {
    return new Tensor(this.handle.prefill(ids.handle, lengths?.handle ?? null, capacity));
  }
  async prefillAsync(ids: Tensor, lengths?: Tensor | null, capacity = 0): Promise<Tensor> {
    return new Tensor(await this.handle.prefillAsync(ids.handle, lengths?.handle ?? null, capacity));
  }
  decodeStep(ids: Tensor, slots?: Tensor | null): Tensor {
    return new Tensor(this.handle.decodeStep(ids.handle, slots?.handle ?? null));
  }
  async decodeStepAsync(ids: Tensor, slots?: Tensor | null): Promise<Tensor> {
    return new Tensor(await this.handle.decodeStepAsync(ids.handle, slots?.handle ?? null));
  }
  resetCache(): void {
    this.handle.resetCache();
  }
  cacheLengths(): number[] {
    return this.handle.cacheLengths();
  }

  merge(): void {
    this.handle.merge();
  }
  unmerge(): void {
    this.handle.unmerge();
  }
  releaseBuffers(): void {
    this.handle.releaseBuffers();
  }
  info(): NativeModelInfo {
    return this.handle.info();
  }
  /** frees the model's memory once no async call uses it */
  release(): void {
    this.handle.release();
  }
  get released(): boolean {
    return this.handle.released();
  }
}
