// The ONNX graph of a Llama-family decoder with a KV cache, laid out as Hugging Face optimum exports
// decoders (text-generation-with-past), in standard ONNX ops only (default domain, opset 17, or 23):
//
//   inputs   input_ids [batch_size, sequence_length] int64
//            attention_mask [batch_size, total_sequence_length] int64 (1: attend, 0: padding)
//            position_ids [batch_size, sequence_length] int64
//            past_key_values.N.key / .value [batch_size, kv_heads, past_sequence_length, head_dim] f32
//   outputs  logits [batch_size, sequence_length, vocab] f32
//            present.N.key / .value [batch_size, kv_heads, total_sequence_length, head_dim] f32
//
// total = past + sequence. Per layer: RMSNorm (Pow, ReduceMean, Add, Sqrt, Div, Mul in f32: the pattern
// onnxruntime fuses into SimplifiedLayerNormalization; at opset 23 the RMSNormalization op), q/k/v
// projections (MatMul on [in, out] weights, Add for biases), RoPE from the position ids (Cast, Mul by
// inv_freq, Concat, Cos, Sin; rotate_half by Slice / Neg / Concat), the new keys and values concatenated
// to the past ones (the present outputs), grouped-query attention by broadcasting each kv head over its
// group of query heads (Reshape to [batch, kv_heads, group, seq, head_dim], MatMul broadcasts the batch
// dims: nothing is copied), scores scaled by 1/sqrt(head_dim), the causal and padding mask applied with
// Where (masked scores become the f32 minimum, as transformers fills them, so a row that sees only padding
// stays finite), Softmax, o_proj, then the SwiGLU MLP (Sigmoid, Mul). Causality is by cache index: the
// query at index past+s sees key j when j <= past+s and attention_mask[j] is 1, so caches with padding
// holes (left-padded or right-padded prompts) work.
//
// Linear layers are f32 MatMul, or with `int8` what onnxruntime's quantize_dynamic produces: weights int8,
// symmetric, one scale per output channel; activations quantized per tensor at run time
// (DynamicQuantizeLinear to uint8), MatMulInteger, Cast, Mul by activation scale × weight scale.
import type { ModelConfig } from '../../model/config.js';
import { layerPrefix } from '../../model/layout.js';
import { attr, GraphBuilder } from './graph-builder.js';
import type { ExternalDataSink } from './graph-builder.js';
import { DataType } from './proto.js';
import type { GraphProto } from './proto.js';
import { quantizeInt8PerChannel } from './quantize.js';
import { ropeInvFreq } from './rope.js';

/** the default opset (onnxruntime >= 1.13, optimum's usual export); 23 adds RMSNormalization (onnxruntime >= 1.22) */
export const OPSET = 17;
export const OPSETS = [17, 23] as const;
export type Opset = (typeof OPSETS)[number];
export const DIM = { batch: 'batch_size', seq: 'sequence_length', past: 'past_sequence_length', total: 'total_sequence_length' } as const;
export type Precision = 'f32' | 'int8';

/** f32 weights by Hugging Face name (bf16/f16 widened, adapter merged), [out, in] for linear layers */
export type WeightSource = (name: string) => Float32Array;

export interface DecoderGraphOptions {
  precision?: Precision;
  /** 17 (default): RMSNorm from elementary ops; 23: the RMSNormalization op */
  opset?: Opset;
  /** write the weights to an external data file as they are made (see GraphBuilder) */
  external?: ExternalDataSink;
}

export function pastKeyName(layer: number, kind: 'key' | 'value'): string {
  return `past_key_values.${layer}.${kind}`;
}
export function presentName(layer: number, kind: 'key' | 'value'): string {
  return `present.${layer}.${kind}`;
}

/** [rows, cols] row-major → [cols, rows] */
export function transpose(a: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(a.length);
  for (let r = 0; r < rows; r++) {
    const o = r * cols;
    for (let c = 0; c < cols; c++) out[c * rows + r] = a[o + c];
  }
  return out;
}

export function buildDecoderGraph(c: ModelConfig, weight: WeightSource, opts: DecoderGraphOptions = {}): { graph: GraphProto; dataBytes: number } {
  const precision = opts.precision ?? 'f32';
  const opset = opts.opset ?? OPSET;
  if (!(OPSETS as readonly number[]).includes(opset)) throw new Error(`ONNX export: opset ${String(opset)} is not supported (${OPSETS.join(' or ')})`);
  const g = new GraphBuilder(opts.external);
  const C = c.hiddenSize;
  const D = c.headDim;
  const Hq = c.numHeads;
  const Hkv = c.numKvHeads;
  const group = Hq / Hkv;
  const V = c.vocabSize;

  // ---- inputs
  const inputIds = g.input('input_ids', DataType.INT64, [DIM.batch, DIM.seq]);
  const attentionMask = g.input('attention_mask', DataType.INT64, [DIM.batch, DIM.total]);
  const positionIds = g.input('position_ids', DataType.INT64, [DIM.batch, DIM.seq]);
  for (let l = 0; l < c.numLayers; l++)
    for (const kind of ['key', 'value'] as const) g.input(pastKeyName(l, kind), DataType.FLOAT, [DIM.batch, Hkv, DIM.past, D]);

  // ---- weights
  const linearWeight = (name: string, outF: number, inF: number): { kind: 'f32'; w: string } | { kind: 'int8'; w: string; scale: string } => {
    const w = weight(name);
    if (w.length !== outF * inF) throw new Error(`ONNX export: ${name} has ${w.length} values, [${outF}, ${inF}] expected`);
    const t = transpose(w, outF, inF); // [in, out]
    if (precision === 'f32') return { kind: 'f32', w: g.initializer(name, t, [inF, outF]) };
    const q = quantizeInt8PerChannel(t, inF, outF);
    return { kind: 'int8', w: g.initializer(`${name}_quantized`, q.values, [inF, outF]), scale: g.initializer(`${name}_scale`, q.scales, [outF]) };
  };

  const linear = (x: string, module: string, outF: number, inF: number, bias: boolean, weightName = `${module}.weight`): string => {
    const w = linearWeight(weightName, outF, inF);
    let y: string;
    if (w.kind === 'f32') y = g.op('MatMul', [x, w.w], [], { name: `${module}/MatMul` });
    else {
      const [xq, xScale, xZero] = g.opN('DynamicQuantizeLinear', [x], [], { name: `${module}/DynamicQuantizeLinear`, outputs: 3 });
      const acc = g.op('MatMulInteger', [xq, w.w, xZero], [], { name: `${module}/MatMulInteger` });
      const accF = g.op('Cast', [acc], [attr.int('to', DataType.FLOAT)], { name: `${module}/Cast` });
      const scale = g.op('Mul', [xScale, w.scale], [], { name: `${module}/scale` });
      y = g.op('Mul', [accF, scale], [], { name: `${module}/dequantize` });
    }
    if (bias) y = g.op('Add', [y, g.initializer(`${module}.bias`, weight(`${module}.bias`), [outF])], [], { name: `${module}/Add` });
    return y;
  };

  const rmsNorm = (x: string, weightName: string, stem: string): string => {
    if (opset >= 23) {
      const w = g.initializer(weightName, weight(weightName), [C]);
      return g.op('RMSNormalization', [x, w], [attr.int('axis', -1), attr.float('epsilon', c.rmsNormEps), attr.int('stash_type', DataType.FLOAT)], { name: stem });
    }
    const eps = g.float([c.rmsNormEps], []);
    const sq = g.op('Pow', [x, g.float([2], [])], [], { name: `${stem}/square` });
    const mean = g.op('ReduceMean', [sq], [attr.ints('axes', [-1]), attr.int('keepdims', 1)], { name: `${stem}/ReduceMean` });
    const std = g.op('Sqrt', [g.op('Add', [mean, eps], [], { name: `${stem}/eps` })], [], { name: `${stem}/Sqrt` });
    const normed = g.op('Div', [x, std], [], { name: `${stem}/normalize` });
    return g.op('Mul', [normed, g.initializer(weightName, weight(weightName), [C])], [], { name: `${stem}/weight` });
  };

  // ---- shared: rotary cos / sin [batch, 1, seq, D] from the position ids
  const posF = g.op('Cast', [positionIds], [attr.int('to', DataType.FLOAT)], { name: 'rotary/Cast' });
  const posCol = g.op('Unsqueeze', [posF, g.int64([-1])], [], { name: 'rotary/Unsqueeze' }); // [B, S, 1]
  const invFreq = g.initializer('rotary.inv_freq', ropeInvFreq(c), [D / 2]);
  const freqs = g.op('Mul', [posCol, invFreq], [], { name: 'rotary/freqs' }); // [B, S, D/2]
  const emb = g.op('Concat', [freqs, freqs], [attr.int('axis', -1)], { name: 'rotary/emb' });
  const head1 = g.int64([1]);
  const cos = g.op('Unsqueeze', [g.op('Cos', [emb], [], { name: 'rotary/Cos' }), head1], [], { name: 'rotary/cos' });
  const sin = g.op('Unsqueeze', [g.op('Sin', [emb], [], { name: 'rotary/Sin' }), head1], [], { name: 'rotary/sin' });
  const half0 = g.int64([0]);
  const halfMid = g.int64([D / 2]);
  const halfEnd = g.int64([D]);
  const axis3 = g.int64([3]);
  const rope = (x: string, stem: string): string => {
    // x [B, H, S, D]: x·cos + rotate_half(x)·sin, rotate_half(x) = cat(−x[D/2:], x[:D/2])
    const x1 = g.op('Slice', [x, half0, halfMid, axis3], [], { name: `${stem}/x1` });
    const x2 = g.op('Slice', [x, halfMid, halfEnd, axis3], [], { name: `${stem}/x2` });
    const rot = g.op('Concat', [g.op('Neg', [x2], [], { name: `${stem}/Neg` }), x1], [attr.int('axis', -1)], { name: `${stem}/rotate_half` });
    return g.op('Add', [g.op('Mul', [x, cos], [], { name: `${stem}/cos` }), g.op('Mul', [rot, sin], [], { name: `${stem}/sin` })], [], { name: `${stem}/Add` });
  };

  // ---- shared: the mask [B, 1, 1, S, total] (bool) from the attention mask and cache indices
  const total = g.op('Gather', [g.op('Shape', [attentionMask], [], { name: 'mask/total_shape' }), g.int64([1], [])], [attr.int('axis', 0)], { name: 'mask/total' });
  const seq = g.op('Gather', [g.op('Shape', [inputIds], [], { name: 'mask/seq_shape' }), g.int64([1], [])], [attr.int('axis', 0)], { name: 'mask/seq' });
  const past = g.op('Sub', [total, seq], [], { name: 'mask/past' });
  const one = g.int64([1], []);
  const keyIdx = g.op('Range', [g.int64([0], []), total, one], [], { name: 'mask/key_index' }); // [total]
  const queryIdx = g.op('Unsqueeze', [g.op('Range', [past, total, one], [], { name: 'mask/query_range' }), g.int64([-1])], [], { name: 'mask/query_index' }); // [S, 1]
  const causal = g.op('LessOrEqual', [keyIdx, queryIdx], [], { name: 'mask/causal' }); // [S, total]
  const padding = g.op('Unsqueeze', [g.op('Cast', [attentionMask], [attr.int('to', DataType.BOOL)], { name: 'mask/Cast' }), g.int64([1, 2, 3])], [], { name: 'mask/padding' }); // [B, 1, 1, 1, total]
  const mask = g.op('And', [causal, padding], [], { name: 'mask/And' }); // [B, 1, 1, S, total]
  const masked = g.float([-3.4028234663852886e38], []);
  const scale = g.float([1 / Math.sqrt(D)], []);

  const qShape = g.int64([0, 0, Hq, D]);
  const kvShape = g.int64([0, 0, Hkv, D]);
  const groupedShape = g.int64([0, Hkv, group, -1, D]);
  const headsShape = g.int64([0, Hq, -1, D]);
  const mergedShape = g.int64([0, 0, Hq * D]);
  const unsqueezeGroup = g.int64([2]);
  const toHeads = (x: string, shape: string, stem: string) =>
    g.op('Transpose', [g.op('Reshape', [x, shape], [], { name: `${stem}/Reshape` })], [attr.ints('perm', [0, 2, 1, 3])], { name: `${stem}/Transpose` });

  const presents: [string, string][] = [];
  let x = g.op('Gather', [g.initializer('model.embed_tokens.weight', weight('model.embed_tokens.weight'), [V, C]), inputIds], [attr.int('axis', 0)], { name: 'embed_tokens' });
  for (let l = 0; l < c.numLayers; l++) {
    const p = layerPrefix(l);
    const a = `${p}self_attn`;
    const h = rmsNorm(x, `${p}input_layernorm.weight`, `${p}input_layernorm`);
    const q = rope(toHeads(linear(h, `${a}.q_proj`, Hq * D, C, c.attentionBias), qShape, `${a}/q`), `${a}/q_rope`); // [B, Hq, S, D]
    const k = rope(toHeads(linear(h, `${a}.k_proj`, Hkv * D, C, c.attentionBias), kvShape, `${a}/k`), `${a}/k_rope`); // [B, Hkv, S, D]
    const v = toHeads(linear(h, `${a}.v_proj`, Hkv * D, C, c.attentionBias), kvShape, `${a}/v`);
    const keys = g.op('Concat', [pastKeyName(l, 'key'), k], [attr.int('axis', 2)], { name: `${a}/present_key` }); // [B, Hkv, T, D]
    const values = g.op('Concat', [pastKeyName(l, 'value'), v], [attr.int('axis', 2)], { name: `${a}/present_value` });
    presents.push([presentName(l, 'key'), keys], [presentName(l, 'value'), values]);

    const qg = g.op('Reshape', [q, groupedShape], [], { name: `${a}/q_grouped` }); // [B, Hkv, group, S, D]
    const kT = g.op('Unsqueeze', [g.op('Transpose', [keys], [attr.ints('perm', [0, 1, 3, 2])], { name: `${a}/k_transpose` }), unsqueezeGroup], [], { name: `${a}/k_grouped` }); // [B, Hkv, 1, D, T]
    const scores = g.op('Mul', [g.op('MatMul', [qg, kT], [], { name: `${a}/scores` }), scale], [], { name: `${a}/scale` }); // [B, Hkv, group, S, T]
    const probs = g.op('Softmax', [g.op('Where', [mask, scores, masked], [], { name: `${a}/mask` })], [attr.int('axis', -1)], { name: `${a}/Softmax` });
    const vg = g.op('Unsqueeze', [values, unsqueezeGroup], [], { name: `${a}/v_grouped` }); // [B, Hkv, 1, T, D]
    const ctx = g.op('Reshape', [g.op('MatMul', [probs, vg], [], { name: `${a}/context` }), headsShape], [], { name: `${a}/context_heads` }); // [B, Hq, S, D]
    const merged = g.op('Reshape', [g.op('Transpose', [ctx], [attr.ints('perm', [0, 2, 1, 3])], { name: `${a}/context_transpose` }), mergedShape], [], { name: `${a}/context_merge` });
    const o = linear(merged, `${a}.o_proj`, C, Hq * D, c.oProjBias);
    x = g.op('Add', [x, o], [], { name: `${p}attn_residual` });

    const m = `${p}mlp`;
    const h2 = rmsNorm(x, `${p}post_attention_layernorm.weight`, `${p}post_attention_layernorm`);
    const gate = linear(h2, `${m}.gate_proj`, c.intermediateSize, C, false);
    const up = linear(h2, `${m}.up_proj`, c.intermediateSize, C, false);
    const act = g.op('Mul', [g.op('Mul', [gate, g.op('Sigmoid', [gate], [], { name: `${m}/Sigmoid` })], [], { name: `${m}/silu` }), up], [], { name: `${m}/swiglu` });
    const down = linear(act, `${m}.down_proj`, C, c.intermediateSize, false);
    x = g.op('Add', [x, down], [], { name: `${p}mlp_residual` });
  }
  const hidden = rmsNorm(x, 'model.norm.weight', 'model.norm');
  const headWeight = c.tieWordEmbeddings ? 'model.embed_tokens.weight' : 'lm_head.weight';
  let logits: string;
  if (c.tieWordEmbeddings && precision === 'f32') {
    // the tied embedding is stored once; onnxruntime folds the Transpose of an initializer at load time
    const wT = g.op('Transpose', ['model.embed_tokens.weight'], [attr.ints('perm', [1, 0])], { name: 'lm_head/Transpose' });
    logits = g.op('MatMul', [hidden, wT], [], { name: 'lm_head/MatMul' });
  } else {
    logits = linear(hidden, 'lm_head', V, C, false, headWeight);
  }
  g.output('logits', logits, DataType.FLOAT, [DIM.batch, DIM.seq, V]);
  for (const [name, value] of presents) g.output(name, value, DataType.FLOAT, [DIM.batch, Hkv, DIM.total, D]);
  return { graph: g.build(`${c.architecture} decoder with past`), dataBytes: g.dataBytes };
}
