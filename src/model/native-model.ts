// LlamaModel: the library's face of the native causal LM (Llama, Qwen2, Mistral, SmolLM, TinyLlama).
// Built from loadModelFiles(dir) (src/model/files.ts): the normalized config and the base weights as
// Tensors by their Hugging Face names, memory-mapped, never copied. Adapters follow PEFT (LoraConfig fields and names, adapter state by PEFT key);
// training steps, evaluation and generation run in the native core off the event loop (the async
// methods), one call per step.
import { z } from 'zod';
import { Tensor } from '../../bindings/tensor.js';
import { NativeCausalLM } from '../../bindings/model.js';
import type {
  AdamWHyper,
  LoraTargetModule,
  NativeLossResult,
  NativeModelConfig,
  NativeModelMemory,
} from '../../bindings/types.js';
import { checkSequenceLength } from './config.js';
import type { ModelConfig } from './config.js';
import { generate } from './generate.js';
import type { GenerateHooks, GenerationConfig, GenerationResult } from './generate.js';

export const LORA_TARGET_MODULES: readonly LoraTargetModule[] = [
  'q_proj',
  'k_proj',
  'v_proj',
  'o_proj',
  'gate_proj',
  'up_proj',
  'down_proj',
];

/**
 * PEFT's LoraConfig (adapter_config.json) as far as this runtime implements it; unknown keys (peft_type,
 * task_type, base_model_name_or_path, ...) are ignored, unsupported values are errors.
 */
export const LoraConfigSchema = z.object({
  r: z.number().int().min(1).default(8),
  lora_alpha: z.number().positive().default(8),
  lora_dropout: z.number().min(0).lt(1).default(0),
  /** PEFT's default for Llama-family models is q_proj, v_proj; "all-linear": the seven projections */
  target_modules: z
    .union([z.array(z.enum(LORA_TARGET_MODULES as [LoraTargetModule, ...LoraTargetModule[]])).min(1), z.literal('all-linear')])
    .default(['q_proj', 'v_proj']),
  use_rslora: z.boolean().default(false),
  layers_to_transform: z.union([z.number().int().min(0), z.array(z.number().int().min(0))]).nullish(),
  bias: z.literal('none', { message: "only bias: 'none' is supported" }).default('none'),
  use_dora: z.literal(false, { message: 'DoRA is not supported' }).optional(),
  fan_in_fan_out: z.literal(false, { message: 'fan_in_fan_out is for GPT-2 style Conv1D layers; Llama uses nn.Linear' }).optional(),
  /** seed of lora_A's initialization (not a PEFT field) */
  seed: z.number().int().min(0).default(0),
});
export type LoraConfig = z.input<typeof LoraConfigSchema>;
export type ResolvedLoraConfig = z.output<typeof LoraConfigSchema>;

/** The native model's config from the normalized config.json (src/model/config.ts). */
export function nativeModelConfig(c: ModelConfig): NativeModelConfig {
  const rs = c.ropeScaling;
  return {
    vocabSize: c.vocabSize,
    hiddenSize: c.hiddenSize,
    intermediateSize: c.intermediateSize,
    numHiddenLayers: c.numLayers,
    numAttentionHeads: c.numHeads,
    numKeyValueHeads: c.numKvHeads,
    headDim: c.headDim,
    rmsNormEps: c.rmsNormEps,
    ropeTheta: c.ropeTheta,
    ropeScaling: rs.type === 'none' ? null : rs,
    tieWordEmbeddings: c.tieWordEmbeddings,
    attentionBias: c.attentionBias,
    oProjBias: c.oProjBias,
    maxPositionEmbeddings: c.maxPositionEmbeddings,
  };
}

/** One micro-batch of token ids [batch, seqLen] (row-major) with next-token targets (-100: not in the loss). */
export interface TokenBatch {
  ids: Int32Array | readonly number[];
  targets: Int32Array | readonly number[];
  batch: number;
  seqLen: number;
  /** positions per token (default 0.., restarting per segment) */
  positions?: Int32Array | readonly number[];
  /** segment id per token for packed sequences: attention stays inside a segment */
  segments?: Int32Array | readonly number[];
}

export interface StepConfig {
  /** recompute each layer in the backward instead of keeping its activations (less memory) */
  checkpointing?: boolean;
  /** dropout seed of this step */
  seed?: number;
  /** gradients of lossSum / lossDenominator (gradient accumulation over micro-batches of a batch) */
  lossDenominator?: number;
  /** tokens per chunk of the vocabulary projection (default: about 100 MiB of f32 logits, a multiple of 64 in [64, 1024]: 512 for a 49k vocabulary) */
  chunkTokens?: number;
  /**
   * attention's tile products: 'f32' (default) or 'bf16' (bf16-rounded operands, f32 accumulation and
   * softmax: the precision of flash-attention and of PyTorch's bf16 models; ~1.5x faster attention on
   * CPUs with AVX512-BF16, f32 elsewhere)
   */
  attentionPrecision?: 'f32' | 'bf16';
}

export class LlamaModel {
  readonly native: NativeCausalLM;
  /** the normalized config.json (when the model was built from one) */
  readonly modelConfig?: ModelConfig;
  readonly config: NativeModelConfig;
  private lora?: ResolvedLoraConfig;

  /**
   * config: the normalized config.json (loadModelFiles(dir).config) or the native config itself;
   * weights: tensors by Hugging Face name (loadModelFiles(dir).weights): kept as they are, never copied.
   */
  constructor(config: ModelConfig | NativeModelConfig, weights: Map<string, Tensor> | Record<string, Tensor>) {
    if ('architecture' in config) {
      this.modelConfig = config;
      this.config = nativeModelConfig(config);
    } else {
      this.config = { ...config };
    }
    this.native = new NativeCausalLM(this.config, weights);
  }

  /** A model over loaded files: `LlamaModel.fromFiles(loadModelFiles(dir))`. */
  static fromFiles(files: { config: ModelConfig; weights: Map<string, Tensor> }): LlamaModel {
    return new LlamaModel(files.config, files.weights);
  }

  get vocabSize(): number {
    return this.config.vocabSize;
  }

  /** Adds a LoRA adapter (PEFT's initialization: lora_A Kaiming-uniform from the seed, lora_B zero). */
  addLora(config: LoraConfig = {}): ResolvedLoraConfig {
    const c = LoraConfigSchema.parse(config);
    const layers = c.layers_to_transform;
    this.native.addLora({
      r: c.r,
      loraAlpha: c.lora_alpha,
      loraDropout: c.lora_dropout,
      useRslora: c.use_rslora,
      targetModules: c.target_modules === 'all-linear' ? [...LORA_TARGET_MODULES] : c.target_modules,
      layersToTransform: layers === undefined || layers === null ? undefined : Array.isArray(layers) ? layers : [layers],
      seed: c.seed,
    });
    this.lora = c;
    return c;
  }

  get loraConfig(): ResolvedLoraConfig | undefined {
    return this.lora;
  }

  /** Full fine-tuning (an f32 trainable copy) of projections (q_proj ... down_proj) and/or norms. */
  enableFullFinetune(modules: string[], layers?: number[]): void {
    this.native.enableFullFinetune(modules, layers);
  }

  /** Forward, loss over the counted tokens, backward; gradients accumulate until zeroGrad. */
  async trainStep(batch: TokenBatch, step: StepConfig = {}): Promise<NativeLossResult> {
    return this.withBatch(batch, (ids, targets, o) => this.native.trainStepAsync(ids, targets, { ...o, ...step }));
  }

  /** The loss without gradients (no dropout). */
  async evalLoss(batch: TokenBatch, step: Pick<StepConfig, 'chunkTokens' | 'attentionPrecision'> = {}): Promise<NativeLossResult> {
    return this.withBatch(batch, (ids, targets, o) => this.native.evalLossAsync(ids, targets, { ...o, ...step }));
  }

  zeroGrad(): void {
    this.native.zeroGrad();
  }
  /** torch.nn.utils.clip_grad_norm_ over every trainable tensor; returns the norm before clipping. */
  clipGradNorm(maxNorm: number): number {
    return this.native.clipGradNorm(maxNorm);
  }
  gradNorm(): number {
    return this.native.gradNorm();
  }
  /** AdamW (torch's) over the trainable tensors; hyper.step is the step number after increment (>= 1). */
  optimizerStep(hyper: AdamWHyper): Promise<void> {
    return this.native.optimizerStepAsync(hyper);
  }

  /** The adapter / trainable tensors by name (PEFT keys for LoRA), copied out as f32. */
  adapterState(kind: 'param' | 'exp_avg' | 'exp_avg_sq' = 'param'): Record<string, { shape: number[]; data: Float32Array }> {
    const out: Record<string, { shape: number[]; data: Float32Array }> = {};
    for (const [name, t] of Object.entries(this.native.parameters(kind))) out[name] = { shape: t.shape, data: t.toFloat32() };
    return out;
  }

  /** Loads tensors saved by adapterState (or read from a PEFT adapter_model.safetensors). */
  loadAdapterState(state: Record<string, Tensor | { shape: number[]; data: Float32Array }>, kind: 'param' | 'exp_avg' | 'exp_avg_sq' = 'param'): void {
    for (const [name, v] of Object.entries(state)) {
      if (v instanceof Tensor) {
        this.native.setParameter(name, v, kind);
      } else {
        const t = Tensor.fromArray(v.data, v.shape, 'f32');
        try {
          this.native.setParameter(name, t, kind);
        } finally {
          t.release();
        }
      }
    }
  }

  /** Generates from each prompt (token ids) with the adapter applied (merged or not). */
  async generate(prompts: readonly (readonly number[])[], config: GenerationConfig = {}, hooks: GenerateHooks = {}): Promise<GenerationResult> {
    if (this.modelConfig) {
      const longest = Math.max(0, ...prompts.map((p) => p.length)) + (config.maxNewTokens ?? 64);
      checkSequenceLength(this.modelConfig, longest);
    }
    return generate(
      {
        vocabSize: this.config.vocabSize,
        prefillAsync: (ids, lengths, capacity) => this.native.prefillAsync(ids, lengths, capacity),
        decodeStepAsync: (ids, slots) => this.native.decodeStepAsync(ids, slots),
      },
      prompts,
      config,
      hooks,
    );
  }

  /** Merges the adapter into owned copies of the adapted weights (base dtype); unmerge drops them. */
  merge(): void {
    this.native.merge();
  }
  unmerge(): void {
    this.native.unmerge();
  }

  memory(): NativeModelMemory {
    return this.native.info().memory;
  }

  dispose(): void {
    this.native.release();
  }

  private async withBatch<R>(
    b: TokenBatch,
    fn: (ids: Tensor, targets: Tensor, o: { positions?: Tensor; segments?: Tensor }) => Promise<R>,
  ): Promise<R> {
    const n = b.batch * b.seqLen;
    const check = (name: string, a: ArrayLike<number> | undefined) => {
      if (a !== undefined && a.length !== n)
        throw new Error(`TokenBatch.${name} has ${a.length} values; batch ${b.batch} × seqLen ${b.seqLen} needs ${n}`);
    };
    check('ids', b.ids);
    check('targets', b.targets);
    check('positions', b.positions);
    check('segments', b.segments);
    if (this.modelConfig) checkSequenceLength(this.modelConfig, b.seqLen);
    const shape = [b.batch, b.seqLen];
    const mk = (a: Int32Array | readonly number[]) => Tensor.fromArray(Int32Array.from(a), shape, 'i32');
    const ids = mk(b.ids);
    const targets = mk(b.targets);
    const positions = b.positions ? mk(b.positions) : undefined;
    const segments = b.segments ? mk(b.segments) : undefined;
    try {
      return await fn(ids, targets, { positions, segments });
    } finally {
      for (const t of [ids, targets, positions, segments]) t?.release();
    }
  }
}
