// The tensors of a Llama-family checkpoint, by transformers' names, with their shapes: the one list that
// the loader checks a checkpoint against and the tiny-model generator writes.
import type { ModelConfig } from './config.js';

export type TensorRole = 'embedding' | 'linear' | 'bias' | 'norm';

export interface ExpectedTensor {
  name: string;
  shape: number[];
  role: TensorRole;
}

/** The projections PEFT's target_modules name, in the order of a layer. */
export const PROJECTIONS = ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'] as const;
export type Projection = (typeof PROJECTIONS)[number];

export function layerPrefix(i: number): string {
  return `model.layers.${i}.`;
}

/** Every tensor the checkpoint of `c` holds, in the order transformers' state_dict lists them. */
export function expectedTensors(c: ModelConfig): ExpectedTensor[] {
  const h = c.hiddenSize;
  const q = c.numHeads * c.headDim;
  const kv = c.numKvHeads * c.headDim;
  const out: ExpectedTensor[] = [{ name: 'model.embed_tokens.weight', shape: [c.vocabSize, h], role: 'embedding' }];
  for (let i = 0; i < c.numLayers; i++) {
    const p = layerPrefix(i);
    const attn = (proj: string, outF: number, inF: number, bias: boolean) => {
      out.push({ name: `${p}self_attn.${proj}.weight`, shape: [outF, inF], role: 'linear' });
      if (bias) out.push({ name: `${p}self_attn.${proj}.bias`, shape: [outF], role: 'bias' });
    };
    attn('q_proj', q, h, c.attentionBias);
    attn('k_proj', kv, h, c.attentionBias);
    attn('v_proj', kv, h, c.attentionBias);
    attn('o_proj', h, q, c.oProjBias);
    out.push(
      { name: `${p}mlp.gate_proj.weight`, shape: [c.intermediateSize, h], role: 'linear' },
      { name: `${p}mlp.up_proj.weight`, shape: [c.intermediateSize, h], role: 'linear' },
      { name: `${p}mlp.down_proj.weight`, shape: [h, c.intermediateSize], role: 'linear' },
      { name: `${p}input_layernorm.weight`, shape: [h], role: 'norm' },
      { name: `${p}post_attention_layernorm.weight`, shape: [h], role: 'norm' },
    );
  }
  out.push({ name: 'model.norm.weight', shape: [h], role: 'norm' });
  if (!c.tieWordEmbeddings) out.push({ name: 'lm_head.weight', shape: [c.vocabSize, h], role: 'linear' });
  return out;
}

/** Number of parameters (tied embeddings counted once). */
export function parameterCount(c: ModelConfig): number {
  return expectedTensors(c).reduce((n, t) => n + t.shape.reduce((a, b) => a * b, 1), 0);
}
