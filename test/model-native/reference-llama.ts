// An f64 TypeScript reference of the Llama-family causal LM (Hugging Face transformers' LlamaForCausalLM /
// Qwen2ForCausalLM semantics), built from the op references of test/helpers/reference.ts, plus the
// tiny models the native-model tests use: weights (f32 or bf16 tensors and their exact f64 values), the
// native config, and a reference forward / loss with LoRA adapters (and optional dropout) on any module.
import { Tensor } from '../../bindings/index.js';
import type { NativeModelConfig } from '../../bindings/types.js';
import { uniform, randInts, roundBf16Array } from '../helpers/numeric.js';
import {
  attentionRef,
  crossEntropyRef,
  dropoutFactors,
  linearRef,
  rmsnormRef,
  ropeInvFreqRef,
  ropeRef,
  swigluRef,
} from '../helpers/reference.js';
import type { RopeRef } from '../helpers/reference.js';

export type F64 = Float64Array;
export const PROJS = ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'] as const;
export type ProjName = (typeof PROJS)[number];

export interface TinySpec {
  vocab?: number;
  hidden?: number;
  intermediate?: number;
  layers?: number;
  heads?: number;
  kvHeads?: number;
  headDim?: number;
  tied?: boolean;
  /** q/k/v biases (Qwen2) */
  bias?: boolean;
  /** an o_proj bias too (Llama with attention_bias) */
  oBias?: boolean;
  llama3?: boolean;
  dtype?: 'f32' | 'bf16';
  seed?: number;
}

export interface TinyModel {
  config: NativeModelConfig;
  /** exact values of every weight (bf16-rounded when dtype is bf16), by Hugging Face name */
  values: Map<string, F64>;
  /** the same weights as tensors */
  tensors: Map<string, Tensor>;
  release(): void;
}

export function projPath(layer: number, p: ProjName): string {
  const parent = PROJS.indexOf(p) <= 3 ? 'self_attn' : 'mlp';
  return `model.layers.${layer}.${parent}.${p}`;
}

export function projShape(cfg: NativeModelConfig, p: ProjName): [number, number] {
  const C = cfg.hiddenSize;
  const I = cfg.intermediateSize;
  const D = cfg.headDim ?? C / cfg.numAttentionHeads;
  const qd = cfg.numAttentionHeads * D;
  const kvd = (cfg.numKeyValueHeads ?? cfg.numAttentionHeads) * D;
  const shapes: Record<ProjName, [number, number]> = {
    q_proj: [qd, C],
    k_proj: [kvd, C],
    v_proj: [kvd, C],
    o_proj: [C, qd],
    gate_proj: [I, C],
    up_proj: [I, C],
    down_proj: [C, I],
  };
  return shapes[p];
}

/** Vocab 97, hidden 32, 2 layers, 4 heads, 2 kv heads, head_dim 8, intermediate 48 unless told. */
export function tinyModel(spec: TinySpec = {}): TinyModel {
  const config: NativeModelConfig = {
    vocabSize: spec.vocab ?? 97,
    hiddenSize: spec.hidden ?? 32,
    intermediateSize: spec.intermediate ?? 48,
    numHiddenLayers: spec.layers ?? 2,
    numAttentionHeads: spec.heads ?? 4,
    numKeyValueHeads: spec.kvHeads ?? 2,
    headDim: spec.headDim ?? 8,
    rmsNormEps: 1e-5,
    ropeTheta: 10000,
    ropeScaling: spec.llama3
      ? { type: 'llama3', factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositionEmbeddings: 16 }
      : null,
    tieWordEmbeddings: spec.tied ?? false,
    attentionBias: spec.bias ?? false,
    oProjBias: spec.oBias ?? false,
  };
  const dtype = spec.dtype ?? 'f32';
  let seed = spec.seed ?? 1234;
  const values = new Map<string, F64>();
  const tensors = new Map<string, Tensor>();
  const add = (name: string, shape: number[], lo: number, hi: number, matrix: boolean) => {
    const n = shape.reduce((a, b) => a * b, 1);
    let v = uniform(n, ++seed, lo, hi);
    if (matrix && dtype === 'bf16') v = roundBf16Array(v);
    values.set(name, v);
    const f = Tensor.fromArray(Float32Array.from(v), shape, 'f32');
    if (matrix && dtype === 'bf16') {
      tensors.set(name, f.convert('bf16'));
      f.release();
    } else {
      tensors.set(name, f);
    }
  };
  const C = config.hiddenSize;
  const V = config.vocabSize;
  add('model.embed_tokens.weight', [V, C], -1, 1, true);
  for (let l = 0; l < config.numHiddenLayers; l++) {
    add(`model.layers.${l}.input_layernorm.weight`, [C], 0.5, 1.5, false);
    add(`model.layers.${l}.post_attention_layernorm.weight`, [C], 0.5, 1.5, false);
    for (const p of PROJS) {
      const [out, inF] = projShape(config, p);
      const b = 1 / Math.sqrt(inF);
      add(`${projPath(l, p)}.weight`, [out, inF], -1.5 * b, 1.5 * b, true);
      if ((config.attentionBias && PROJS.indexOf(p) <= 2) || (config.oProjBias && p === 'o_proj'))
        add(`${projPath(l, p)}.bias`, [out], -0.3, 0.3, false);
    }
  }
  add('model.norm.weight', [C], 0.5, 1.5, false);
  if (!config.tieWordEmbeddings) add('lm_head.weight', [V, C], -0.5, 0.5, true);
  return {
    config,
    values,
    tensors,
    release: () => {
      for (const t of tensors.values()) t.release();
    },
  };
}

// ---- LoRA of the reference

export interface RefAdapter {
  /** lora_A [r, in] and lora_B [out, r] by module path (model.layers.0.self_attn.q_proj) */
  a: Map<string, F64>;
  b: Map<string, F64>;
  r: number;
  scale: number;
  /** dropout probability and the step seed (masks as native/model/rng.h derives them) */
  dropout?: { p: number; stepSeed: bigint };
}

const MASK64 = (1n << 64n) - 1n;
function mix64(x: bigint): bigint {
  let z = (x + 0x9e3779b97f4a7c15n) & MASK64;
  z = ((z ^ (z >> 30n)) * 0xbf58476d1ce4e5b9n) & MASK64;
  z = ((z ^ (z >> 27n)) * 0x94d049bb133111ebn) & MASK64;
  return z ^ (z >> 31n);
}

/** native/model/rng.h dropout_seed(step_seed, layer, proj) */
export function dropoutSeed(stepSeed: bigint, layer: number, proj: number): bigint {
  return mix64(stepSeed ^ mix64(BigInt(layer * 8 + proj)));
}

// ---- forward

export interface RefInput {
  ids: ArrayLike<number>;
  B: number;
  T: number;
  positions?: ArrayLike<number>;
  segments?: ArrayLike<number> | null;
}

export function defaultPositions(B: number, T: number, segments?: ArrayLike<number> | null): Int32Array {
  const pos = new Int32Array(B * T);
  for (let b = 0; b < B; b++) {
    let p = 0;
    for (let t = 0; t < T; t++) {
      const i = b * T + t;
      if (segments && t > 0 && segments[i] !== segments[i - 1]) p = 0;
      pos[i] = p++;
    }
  }
  return pos;
}

function ropeOf(cfg: NativeModelConfig): RopeRef {
  const D = cfg.headDim ?? cfg.hiddenSize / cfg.numAttentionHeads;
  const rs = cfg.ropeScaling;
  return {
    headDim: D,
    theta: cfg.ropeTheta ?? 10000,
    llama3: rs && rs.type === 'llama3' ? rs : undefined,
    linearFactor: rs && rs.type === 'linear' ? rs.factor : undefined,
  };
}

/** The final hidden states (after the final norm) [B·T, C], in f64. */
export function refHidden(cfg: NativeModelConfig, W: Map<string, F64>, input: RefInput, lora?: RefAdapter): F64 {
  const { B, T } = input;
  const N = B * T;
  const C = cfg.hiddenSize;
  const I = cfg.intermediateSize;
  const Hq = cfg.numAttentionHeads;
  const Hkv = cfg.numKeyValueHeads ?? Hq;
  const D = cfg.headDim ?? C / Hq;
  const eps = cfg.rmsNormEps ?? 1e-6;
  const positions = input.positions ?? defaultPositions(B, T, input.segments);
  const invFreq = ropeInvFreqRef(ropeOf(cfg));
  const w = (name: string): F64 => {
    const v = W.get(name);
    if (!v) throw new Error(`reference: no weight ${name}`);
    return v;
  };
  const lin = (layer: number, p: ProjName, x: F64, M: number): F64 => {
    const [out, inF] = projShape(cfg, p);
    const path = projPath(layer, p);
    const y = linearRef(x, w(`${path}.weight`), M, inF, out);
    const bias = W.get(`${path}.bias`);
    if (bias) for (let i = 0; i < M; i++) for (let j = 0; j < out; j++) y[i * out + j] += bias[j];
    const a = lora?.a.get(path);
    if (lora && a) {
      let xd: ArrayLike<number> = x;
      if (lora.dropout && lora.dropout.p > 0) {
        const f = dropoutFactors(M * inF, lora.dropout.p, dropoutSeed(lora.dropout.stepSeed, layer, PROJS.indexOf(p)));
        xd = x.map((v, i) => v * f[i]);
      }
      const u = linearRef(xd, a, M, inF, lora.r);
      const ub = linearRef(u, lora.b.get(path)!, M, lora.r, out);
      const s = Math.fround(lora.scale);
      for (let i = 0; i < y.length; i++) y[i] += s * ub[i];
    }
    return y;
  };
  const emb = w('model.embed_tokens.weight');
  let x = new Float64Array(N * C);
  for (let i = 0; i < N; i++) for (let j = 0; j < C; j++) x[i * C + j] = emb[input.ids[i] * C + j];
  for (let l = 0; l < cfg.numHiddenLayers; l++) {
    const h = rmsnormRef(x, w(`model.layers.${l}.input_layernorm.weight`), N, C, eps).y;
    const q = ropeRef(lin(l, 'q_proj', h, N), positions, invFreq, N, Hq, D);
    const k = ropeRef(lin(l, 'k_proj', h, N), positions, invFreq, N, Hkv, D);
    const v = lin(l, 'v_proj', h, N);
    const att = attentionRef(q, k, v, { B, T, Hq, Hkv, D }, input.segments ?? null, 1 / Math.sqrt(D), true).out;
    const o = lin(l, 'o_proj', att, N);
    const xm = x.map((xi, i) => xi + o[i]);
    const h2 = rmsnormRef(xm, w(`model.layers.${l}.post_attention_layernorm.weight`), N, C, eps).y;
    const act = swigluRef(lin(l, 'gate_proj', h2, N), lin(l, 'up_proj', h2, N));
    void I;
    const d = lin(l, 'down_proj', act, N);
    x = xm.map((xi, i) => xi + d[i]);
  }
  return rmsnormRef(x, w('model.norm.weight'), N, C, eps).y;
}

export function lmHead(cfg: NativeModelConfig, W: Map<string, F64>): F64 {
  return W.get(cfg.tieWordEmbeddings ? 'model.embed_tokens.weight' : 'lm_head.weight')!;
}

/** logits [B·T, V] */
export function refLogits(cfg: NativeModelConfig, W: Map<string, F64>, input: RefInput, lora?: RefAdapter): F64 {
  const hidden = refHidden(cfg, W, input, lora);
  return linearRef(hidden, lmHead(cfg, W), input.B * input.T, cfg.hiddenSize, cfg.vocabSize);
}

/** mean cross-entropy over the tokens whose target is not -100 */
export function refLoss(cfg: NativeModelConfig, W: Map<string, F64>, input: RefInput, targets: ArrayLike<number>, lora?: RefAdapter): number {
  const N = input.B * input.T;
  const logits = refLogits(cfg, W, input, lora);
  const { losses, count } = crossEntropyRef(logits, targets, N, cfg.vocabSize, -100);
  let s = 0;
  for (let i = 0; i < N; i++) s += losses[i];
  return s / count;
}

/** Random ids in [0, V) and targets (next tokens, with some -100) for a [B, T] batch. */
export function randomBatch(V: number, B: number, T: number, seed: number, ignoreEvery = 0): { ids: Int32Array; targets: Int32Array } {
  const ids = randInts(B * T, seed, 0, V);
  const targets = randInts(B * T, seed + 1, 0, V);
  if (ignoreEvery > 0) for (let i = 0; i < targets.length; i += ignoreEvery) targets[i] = -100;
  return { ids, targets };
}
