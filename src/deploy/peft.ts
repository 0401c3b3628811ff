// PEFT LoRA adapters on disk: adapter_config.json and adapter_model.safetensors, written as PEFT's
// save_pretrained writes them and read back (adapters trained here or elsewhere) with validation against
// the base model. Names are PEFT's saved keys: base_model.model.model.layers.N.self_attn.q_proj.lora_A.weight
// ([r, in_features]) and ...lora_B.weight ([out_features, r]), mlp.{gate,up,down}_proj for the MLP.
import { existsSync, mkdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { writeFileAtomicSync } from '../model/atomic.js';
import type { ModelConfig } from '../model/config.js';
import { ModelFileError, parseModelFile } from '../model/errors.js';
import { expectedTensors, PROJECTIONS } from '../model/layout.js';
import type { Projection } from '../model/layout.js';
import { SafetensorsFile, writeSafetensors } from '../model/safetensors.js';
import type { RawTensor } from '../model/safetensors.js';
import { f32ToBf16 } from '../model/tiny.js';
import { LoraConfigSchema } from '../model/native-model.js';
import type { LlamaModel, LoraConfig, ResolvedLoraConfig } from '../model/native-model.js';
import { ops } from '../../bindings/ops.js';
import { f32ToF16 } from './precision.js';

export const ADAPTER_CONFIG_FILE = 'adapter_config.json';
export const ADAPTER_WEIGHTS_FILE = 'adapter_model.safetensors';

/** One adapter tensor, f32. */
export interface AdapterTensor {
  shape: number[];
  data: Float32Array;
}

/** A LoRA adapter in memory: its config (PEFT's fields) and tensors by PEFT key. */
export interface LoraAdapter {
  config: ResolvedLoraConfig;
  /** base_model_name_or_path of adapter_config.json */
  baseModel: string | null;
  tensors: Map<string, AdapterTensor>;
}

export type AdapterDType = 'f32' | 'f16' | 'bf16';

export interface WritePeftOptions {
  /** base_model_name_or_path (a hub id or a local directory) */
  baseModel: string | null;
  /** dtype of the saved tensors (default f32, as PEFT saves an f32 adapter) */
  dtype?: AdapterDType;
  revision?: string | null;
}

const PROJECTION_PARENT: Record<Projection, 'self_attn' | 'mlp'> = {
  q_proj: 'self_attn',
  k_proj: 'self_attn',
  v_proj: 'self_attn',
  o_proj: 'self_attn',
  gate_proj: 'mlp',
  up_proj: 'mlp',
  down_proj: 'mlp',
};

/** PEFT's saved key of a projection's lora_A / lora_B in layer `layer`. */
export function peftKey(layer: number, proj: Projection, which: 'A' | 'B'): string {
  return `base_model.model.model.layers.${layer}.${PROJECTION_PARENT[proj]}.${proj}.lora_${which}.weight`;
}

const KEY_RE = /^base_model\.model\.model\.layers\.(\d+)\.(self_attn|mlp)\.(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)\.lora_(A|B)\.weight$/;

/** Parses a PEFT key into (layer, projection, A|B); null when it is not one of ours. */
export function parsePeftKey(key: string): { layer: number; proj: Projection; which: 'A' | 'B'; baseName: string } | null {
  const m = KEY_RE.exec(key);
  if (!m || PROJECTION_PARENT[m[3] as Projection] !== m[2]) return null;
  return { layer: Number(m[1]), proj: m[3] as Projection, which: m[4] as 'A' | 'B', baseName: `model.layers.${m[1]}.${m[2]}.${m[3]}.weight` };
}

/** The target modules as a list (PEFT saves a list; 'all-linear' expands to the seven projections). */
function targetList(c: ResolvedLoraConfig): Projection[] {
  return c.target_modules === 'all-linear' ? [...PROJECTIONS] : [...c.target_modules];
}

/** adapter_config.json as PEFT (0.13-0.15) writes it: every LoraConfig field, keys sorted. */
export function peftAdapterConfigJson(c: ResolvedLoraConfig, opts: WritePeftOptions): Record<string, unknown> {
  const layers = c.layers_to_transform;
  const fields: Record<string, unknown> = {
    alpha_pattern: {},
    auto_mapping: null,
    base_model_name_or_path: opts.baseModel,
    bias: 'none',
    eva_config: null,
    exclude_modules: null,
    fan_in_fan_out: false,
    inference_mode: true,
    init_lora_weights: true,
    layer_replication: null,
    layers_pattern: null,
    layers_to_transform: layers === undefined || layers === null ? null : Array.isArray(layers) ? [...layers] : [layers],
    loftq_config: {},
    lora_alpha: c.lora_alpha,
    lora_bias: false,
    lora_dropout: c.lora_dropout,
    megatron_config: null,
    megatron_core: 'megatron.core',
    modules_to_save: null,
    peft_type: 'LORA',
    r: c.r,
    rank_pattern: {},
    revision: opts.revision ?? null,
    target_modules: targetList(c),
    task_type: 'CAUSAL_LM',
    use_dora: false,
    use_rslora: c.use_rslora,
  };
  return Object.fromEntries(Object.keys(fields).sort().map((k) => [k, fields[k]]));
}

function encode(t: AdapterTensor, dtype: AdapterDType): RawTensor {
  switch (dtype) {
    case 'f32':
      return { dtype: 'F32', shape: t.shape, data: t.data };
    case 'bf16':
      return { dtype: 'BF16', shape: t.shape, data: () => f32ToBf16(t.data) };
    case 'f16':
      return { dtype: 'F16', shape: t.shape, data: () => f32ToF16(t.data) };
  }
}

/** Writes adapter_config.json and adapter_model.safetensors into `dir`; returns the file names. */
export async function writeLoraAdapter(dir: string, adapter: Pick<LoraAdapter, 'config' | 'tensors'>, opts: WritePeftOptions): Promise<string[]> {
  mkdirSync(dir, { recursive: true });
  writeFileAtomicSync(join(dir, ADAPTER_CONFIG_FILE), JSON.stringify(peftAdapterConfigJson(adapter.config, opts), null, 2) + '\n');
  const dtype = opts.dtype ?? 'f32';
  const tensors = new Map<string, RawTensor>();
  for (const [k, v] of adapter.tensors) tensors.set(k, encode(v, dtype));
  await writeSafetensors(join(dir, ADAPTER_WEIGHTS_FILE), tensors, { metadata: { format: 'pt' } });
  return [ADAPTER_CONFIG_FILE, ADAPTER_WEIGHTS_FILE];
}

/** The adapter of a model (its LoRA config and current lora_A / lora_B values). */
export function adapterOf(model: LlamaModel): LoraAdapter {
  const config = model.loraConfig;
  if (!config) throw new Error('the model has no LoRA adapter (addLora was not called)');
  return { config, baseModel: null, tensors: new Map(Object.entries(model.adapterState('param'))) };
}

/** Saves a model's LoRA adapter as PEFT does (the training runner's RUN_DIR/adapter). */
export async function writePeftAdapter(dir: string, model: LlamaModel, opts: WritePeftOptions): Promise<string[]> {
  return writeLoraAdapter(dir, adapterOf(model), opts);
}

// ---------------------------------------------------------------------------------------------------
// Reading

/** adapter_config.json as PEFT writes it; what this runtime cannot apply is refused with the reason. */
const PeftConfigSchema = z.looseObject({
  peft_type: z.string({ error: 'missing peft_type (a PEFT adapter_config.json names its method, e.g. "LORA")' }).refine((v) => v === 'LORA', {
    error: (i) => `peft_type ${JSON.stringify(i.input)} is not supported; only LORA adapters can be imported`,
  }),
  task_type: z
    .string()
    .nullish()
    .refine((v) => v === null || v === undefined || v === 'CAUSAL_LM', { error: (i) => `task_type ${JSON.stringify(i.input)} is not supported; only CAUSAL_LM` }),
  r: z.number().int().min(1),
  lora_alpha: z.number().positive(),
  lora_dropout: z.number().min(0).lt(1).default(0),
  target_modules: z.union([z.array(z.string()), z.string()]).nullish(),
  use_rslora: z.boolean().default(false),
  bias: z.string().default('none').refine((v) => v === 'none', { error: "only bias: 'none' is supported (the adapter must not train biases)" }),
  use_dora: z.boolean().default(false).refine((v) => !v, { error: 'DoRA adapters are not supported' }),
  fan_in_fan_out: z.boolean().default(false).refine((v) => !v, { error: 'fan_in_fan_out is for GPT-2 Conv1D layers; Llama-family models use nn.Linear' }),
  lora_bias: z.boolean().default(false).refine((v) => !v, { error: 'lora_bias is not supported' }),
  modules_to_save: z.array(z.string()).nullish().refine((v) => !v || v.length === 0, { error: 'modules_to_save (fully trained extra modules) is not supported' }),
  rank_pattern: z.record(z.string(), z.unknown()).nullish().refine((v) => !v || Object.keys(v).length === 0, { error: 'per-module ranks (rank_pattern) are not supported' }),
  alpha_pattern: z.record(z.string(), z.unknown()).nullish().refine((v) => !v || Object.keys(v).length === 0, { error: 'per-module alphas (alpha_pattern) are not supported' }),
  layer_replication: z.unknown().optional().refine((v) => v === null || v === undefined, { error: 'layer_replication is not supported' }),
  base_model_name_or_path: z.string().nullish(),
});

export interface ReadAdapterOptions {
  /** validate the tensors' shapes against this base model (names the tensor on a mismatch) */
  base?: ModelConfig;
}

/**
 * Reads a PEFT LoRA adapter directory (adapter_config.json + adapter_model.safetensors). The adapted
 * projections and layers come from the tensors present; they must form modules x layers (one adapter
 * config), every lora_A must have its lora_B, and the shapes must be [r, in] / [out, r]. Throws
 * ModelFileError naming the file, the field or the tensor.
 */
export function readPeftAdapter(dir: string, opts: ReadAdapterOptions = {}): LoraAdapter {
  if (!existsSync(dir) || !statSync(dir).isDirectory()) throw new ModelFileError(`not a directory (a PEFT adapter directory holds ${ADAPTER_CONFIG_FILE} and ${ADAPTER_WEIGHTS_FILE})`, { file: dir });
  const cfgFile = join(dir, ADAPTER_CONFIG_FILE);
  const wFile = join(dir, ADAPTER_WEIGHTS_FILE);
  if (!existsSync(cfgFile)) throw new ModelFileError(`missing ${ADAPTER_CONFIG_FILE}`, { file: cfgFile });
  if (!existsSync(wFile)) {
    const bin = existsSync(join(dir, 'adapter_model.bin')) ? ' (adapter_model.bin, a pickle, is not read: save with safe_serialization=True)' : '';
    throw new ModelFileError(`missing ${ADAPTER_WEIGHTS_FILE}${bin}`, { file: wFile });
  }
  let json: unknown;
  try {
    json = JSON.parse(readFileSync(cfgFile, 'utf8'));
  } catch (e) {
    throw new ModelFileError(`cannot read ${ADAPTER_CONFIG_FILE}: ${(e as Error).message}`, { file: cfgFile });
  }
  const raw = parseModelFile(PeftConfigSchema, json, cfgFile);

  const file = SafetensorsFile.open(wFile);
  const pairs = new Map<string, { layer: number; proj: Projection; A?: string; B?: string }>();
  for (const name of file.names) {
    const k = parsePeftKey(name);
    if (!k) {
      const hint = /lora_embedding|embed_tokens|lm_head/.test(name)
        ? ' (embedding / lm_head adapters and extra trained modules are not supported)'
        : /\.default\.weight$/.test(name)
          ? ' (keys with the adapter name inside are from an unsaved state_dict; save with model.save_pretrained)'
          : '';
      throw new ModelFileError(`not a LoRA tensor of a Llama-family projection (expected base_model.model.model.layers.N.{self_attn|mlp}.<proj>.lora_{A|B}.weight)${hint}`, { file: wFile, tensor: name });
    }
    const id = `${k.layer}/${k.proj}`;
    const p = pairs.get(id) ?? { layer: k.layer, proj: k.proj };
    p[k.which] = name;
    pairs.set(id, p);
  }
  if (!pairs.size) throw new ModelFileError('the adapter holds no lora_A / lora_B tensors', { file: wFile });
  for (const p of pairs.values()) {
    if (!p.A) throw new ModelFileError(`missing tensor '${peftKey(p.layer, p.proj, 'A')}' (its lora_B is present)`, { file: wFile, tensor: peftKey(p.layer, p.proj, 'A') });
    if (!p.B) throw new ModelFileError(`missing tensor '${peftKey(p.layer, p.proj, 'B')}' (its lora_A is present)`, { file: wFile, tensor: peftKey(p.layer, p.proj, 'B') });
  }
  const layers = [...new Set([...pairs.values()].map((p) => p.layer))].sort((a, b) => a - b);
  const projs = PROJECTIONS.filter((pr) => [...pairs.values()].some((p) => p.proj === pr));
  for (const l of layers) {
    for (const pr of projs) {
      if (!pairs.has(`${l}/${pr}`)) {
        throw new ModelFileError(`missing tensor '${peftKey(l, pr, 'A')}': the adapter adapts ${pr} in other layers and layer ${l} in other projections (one r and target set for all layers is supported)`, { file: wFile, tensor: peftKey(l, pr, 'A') });
      }
    }
  }
  if (Array.isArray(raw.target_modules)) {
    const extra = projs.filter((p) => !raw.target_modules!.includes(p));
    if (extra.length) throw new ModelFileError(`the weights adapt ${extra.join(', ')}, which target_modules does not list`, { file: cfgFile, path: 'target_modules' });
  }

  const expected = opts.base ? new Map(expectedTensors(opts.base).map((t) => [t.name, t.shape])) : null;
  if (opts.base) {
    const beyond = layers.filter((l) => l >= opts.base!.numLayers);
    if (beyond.length) {
      const t = peftKey(beyond[0], projs[0], 'A');
      throw new ModelFileError(`layer ${beyond[0]} does not exist in the base model (${opts.base.numLayers} layers): the adapter belongs to another model`, { file: wFile, tensor: t });
    }
  }
  const tensors = new Map<string, AdapterTensor>();
  for (const l of layers) {
    for (const pr of projs) {
      for (const which of ['A', 'B'] as const) {
        const name = peftKey(l, pr, which);
        const e = file.entry(name);
        if (e.dtype !== 'F32' && e.dtype !== 'BF16' && e.dtype !== 'F16') throw new ModelFileError(`dtype ${e.dtype} is not supported (F32, BF16, F16)`, { file: wFile, tensor: name });
        if (e.shape.length !== 2) throw new ModelFileError(`shape [${e.shape.join(', ')}] is not a matrix`, { file: wFile, tensor: name });
        const rankAt = which === 'A' ? e.shape[0] : e.shape[1];
        if (rankAt !== raw.r) {
          throw new ModelFileError(`shape [${e.shape.join(', ')}] has rank ${rankAt}, but ${ADAPTER_CONFIG_FILE} says r = ${raw.r} (lora_A is [r, in_features], lora_B [out_features, r])`, { file: wFile, tensor: name });
        }
        if (expected) {
          const baseName = `model.layers.${l}.${PROJECTION_PARENT[pr]}.${pr}.weight`;
          const [out, inF] = expected.get(baseName)!;
          const want = which === 'A' ? [raw.r, inF] : [out, raw.r];
          if (e.shape[0] !== want[0] || e.shape[1] !== want[1]) {
            throw new ModelFileError(`shape [${e.shape.join(', ')}] does not match [${want.join(', ')}] for the base model's ${baseName} [${out}, ${inF}] (lora_A is [r, in_features], lora_B [out_features, r])`, { file: wFile, tensor: name });
          }
        }
        const t = file.tensor(name, { convertTo: 'f32' });
        try {
          tensors.set(name, { shape: [...e.shape], data: t.toFloat32() });
        } finally {
          t.release();
        }
      }
    }
  }
  const allLayers = opts.base ? layers.length === opts.base.numLayers : raw.layers_to_transform === undefined || raw.layers_to_transform === null;
  const lora: LoraConfig = {
    r: raw.r,
    lora_alpha: raw.lora_alpha,
    lora_dropout: raw.lora_dropout,
    target_modules: projs,
    use_rslora: raw.use_rslora,
    layers_to_transform: allLayers ? null : layers,
  };
  return { config: LoraConfigSchema.parse(lora), baseModel: raw.base_model_name_or_path ?? null, tensors };
}

/** Adds the adapter to `model` (addLora with its config) and loads its tensors. */
export function applyLoraAdapter(model: LlamaModel, adapter: LoraAdapter): void {
  if (model.loraConfig) throw new Error('the model already has a LoRA adapter; load this one into a fresh LlamaModel');
  model.addLora({ ...adapter.config, seed: 0 });
  model.loadAdapterState(Object.fromEntries(adapter.tensors));
}

/** The LoRA scaling PEFT applies (lora_alpha / r, or lora_alpha / sqrt(r) with use_rslora), as the native core computes it. */
export function loraScale(c: Pick<ResolvedLoraConfig, 'r' | 'lora_alpha' | 'use_rslora'>): number {
  return ops.loraScaling(c.lora_alpha, c.r, c.use_rslora);
}
