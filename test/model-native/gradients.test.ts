// Gradients of the native training step against central finite differences (f64) of the reference
// loss (mean cross-entropy over the counted tokens): LoRA A and B on all seven projections (Qwen2 biases,
// -100 targets), with lora_dropout (the reference rebuilds the masks from the step seed), rsLoRA, full
// fine-tuning of projections (weight and bias) and norm weights; plus PEFT's initialization.
import { Tensor } from '../../bindings/index.js';
import { NativeCausalLM } from '../../bindings/model.js';
import { expectGradClose, finiteDiff, sampleIndices, uniform } from '../helpers/numeric.js';
import { i32, read } from '../helpers/tensors.js';
import { PROJS, projPath, projShape, randomBatch, refLoss, tinyModel } from './reference-llama.js';
import type { F64, RefAdapter, TinySpec } from './reference-llama.js';

const B = 2;
const T = 5;
const RTOL = 2e-3;

interface Setup {
  m: ReturnType<typeof tinyModel>;
  model: NativeCausalLM;
  adapter: RefAdapter;
  ids: Int32Array;
  targets: Int32Array;
}

function loraSetup(spec: TinySpec, r: number, alpha: number, opts: { dropout?: number; rslora?: boolean } = {}): Setup {
  const m = tinyModel(spec);
  const model = new NativeCausalLM(m.config, m.tensors);
  model.addLora({ r, loraAlpha: alpha, loraDropout: opts.dropout ?? 0, useRslora: opts.rslora, targetModules: [...PROJS], seed: 9 });
  const scale = opts.rslora ? alpha / Math.sqrt(r) : alpha / r;
  const adapter: RefAdapter = { a: new Map(), b: new Map(), r, scale };
  let s = 300;
  for (let l = 0; l < m.config.numHiddenLayers; l++)
    for (const p of PROJS) {
      const path = projPath(l, p);
      const [out, inF] = projShape(m.config, p);
      const a = uniform(r * inF, ++s, -0.4, 0.4);
      const b = uniform(out * r, ++s, -0.4, 0.4); // nonzero B, so that dA is not trivially 0
      adapter.a.set(path, a);
      adapter.b.set(path, b);
      model.setParameter(`base_model.model.${path}.lora_A.weight`, Tensor.fromArray(Float32Array.from(a), [r, inF]));
      model.setParameter(`base_model.model.${path}.lora_B.weight`, Tensor.fromArray(Float32Array.from(b), [out, r]));
    }
  const { ids, targets } = randomBatch(m.config.vocabSize, B, T, 77, 4);
  return { m, model, adapter, ids, targets };
}

function checkLoraGrads(st: Setup, samples: number, stepSeed?: bigint) {
  const { m, model, adapter, ids, targets } = st;
  model.zeroGrad();
  const res = model.trainStep(i32(ids, [B, T]), i32(targets, [B, T]), stepSeed !== undefined ? { seed: stepSeed } : undefined);
  const input = { ids, B, T };
  const want = refLoss(m.config, m.values, input, targets, adapter);
  expect(Math.abs(res.loss - want)).toBeLessThan(1e-5 * Math.abs(want) + 1e-6);
  const grads = model.parameters('grad');
  let seed = 1;
  for (let l = 0; l < m.config.numHiddenLayers; l++)
    for (const p of PROJS) {
      const path = projPath(l, p);
      for (const [which, x] of [['lora_A', adapter.a.get(path)!], ['lora_B', adapter.b.get(path)!]] as [string, F64][]) {
        const name = `base_model.model.${path}.${which}.weight`;
        const idx = sampleIndices(x.length, samples, ++seed);
        const fd = finiteDiff(() => refLoss(m.config, m.values, input, targets, adapter), x, idx, 1e-5);
        expectGradClose(name, read(grads[name]), fd, idx, RTOL);
      }
    }
}

describe('LoRA gradients against finite differences', () => {
  test('all seven projections, Qwen2 biases, ignored targets', () => {
    const st = loraSetup({ bias: true }, 4, 8);
    checkLoraGrads(st, 6);
    // grads accumulate: a second identical step doubles them
    const g1 = read(st.model.parameters('grad')['base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight']);
    st.model.trainStep(i32(st.ids, [B, T]), i32(st.targets, [B, T]));
    const g2 = read(st.model.parameters('grad')['base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight']);
    for (let i = 0; i < g1.length; i++) expect(Math.abs(g2[i] - 2 * g1[i])).toBeLessThanOrEqual(1e-6 * Math.abs(g1[i]) + 1e-12);
    st.model.release();
    st.m.release();
  });

  test('tied embeddings, llama3 rope, rsLoRA', () => {
    const st = loraSetup({ tied: true, llama3: true }, 2, 4, { rslora: true });
    checkLoraGrads(st, 4);
    st.model.release();
    st.m.release();
  });

  test('lora_dropout: the masks of the step seed', () => {
    const st = loraSetup({}, 4, 8, { dropout: 0.25 });
    st.adapter.dropout = { p: 0.25, stepSeed: 123n };
    checkLoraGrads(st, 4, 123n);
    st.model.release();
    st.m.release();
  });
});

describe('full fine-tuning gradients against finite differences', () => {
  test('q_proj (weight and bias), down_proj, input_layernorm, final norm', () => {
    const m = tinyModel({ bias: true });
    const model = new NativeCausalLM(m.config, m.tensors);
    model.enableFullFinetune(['q_proj', 'down_proj', 'input_layernorm', 'norm']);
    const names = Object.keys(model.parameters());
    expect(names).toEqual([
      'model.layers.0.self_attn.q_proj.weight',
      'model.layers.0.self_attn.q_proj.bias',
      'model.layers.0.mlp.down_proj.weight',
      'model.layers.0.input_layernorm.weight',
      'model.layers.1.self_attn.q_proj.weight',
      'model.layers.1.self_attn.q_proj.bias',
      'model.layers.1.mlp.down_proj.weight',
      'model.layers.1.input_layernorm.weight',
      'model.norm.weight',
    ]);
    const { ids, targets } = randomBatch(m.config.vocabSize, B, T, 91, 3);
    model.trainStep(i32(ids, [B, T]), i32(targets, [B, T]));
    const grads = model.parameters('grad');
    const input = { ids, B, T };
    let seed = 50;
    for (const name of names) {
      const x = m.values.get(name)!;
      const idx = sampleIndices(x.length, 6, ++seed);
      const fd = finiteDiff(() => refLoss(m.config, m.values, input, targets), x, idx, 1e-5);
      expectGradClose(name, read(grads[name]), fd, idx, RTOL);
    }
    // the trainable copies are private: the caller's tensors are untouched by an optimizer step
    const before = read(m.tensors.get('model.layers.0.self_attn.q_proj.weight')!);
    model.optimizerStep({ lr: 0.1, step: 1 });
    expect(read(m.tensors.get('model.layers.0.self_attn.q_proj.weight')!)).toEqual(before);
    expect(read(model.parameters()['model.layers.0.self_attn.q_proj.weight'])).not.toEqual(before);
    expect(() => model.addLora({ r: 2, targetModules: ['q_proj'] })).toThrow(/fully fine-tuned; it cannot also get an adapter/);
    model.release();
    m.release();
  });
});

describe("PEFT's initialization", () => {
  test('lora_A ~ U(-1/sqrt(in), 1/sqrt(in)) from the seed, lora_B = 0, names in PEFT order', () => {
    const m = tinyModel();
    const mk = (seed: number) => {
      const model = new NativeCausalLM(m.config, m.tensors);
      model.addLora({ r: 8, loraAlpha: 16, targetModules: ['down_proj', 'q_proj'], seed, layersToTransform: [1] });
      return model;
    };
    const a = mk(3);
    const params = a.parameters();
    expect(Object.keys(params)).toEqual([
      'base_model.model.model.layers.1.self_attn.q_proj.lora_A.weight',
      'base_model.model.model.layers.1.self_attn.q_proj.lora_B.weight',
      'base_model.model.model.layers.1.mlp.down_proj.lora_A.weight',
      'base_model.model.model.layers.1.mlp.down_proj.lora_B.weight',
    ]);
    const A = read(params['base_model.model.model.layers.1.mlp.down_proj.lora_A.weight']);
    expect(params['base_model.model.model.layers.1.mlp.down_proj.lora_A.weight'].shape).toEqual([8, 48]);
    const bound = 1 / Math.sqrt(48);
    let sum = 0;
    let sq = 0;
    for (const v of A) {
      expect(Math.abs(v)).toBeLessThanOrEqual(bound);
      sum += v;
      sq += v * v;
    }
    expect(Math.abs(sum / A.length)).toBeLessThan(0.15 * bound);
    expect(Math.abs(sq / A.length - (bound * bound) / 3)).toBeLessThan(0.25 * ((bound * bound) / 3));
    expect(read(params['base_model.model.model.layers.1.mlp.down_proj.lora_B.weight']).every((v) => v === 0)).toBe(true);
    const again = read(mk(3).parameters()['base_model.model.model.layers.1.mlp.down_proj.lora_A.weight']);
    const other = read(mk(4).parameters()['base_model.model.model.layers.1.mlp.down_proj.lora_A.weight']);
    expect(again).toEqual(A);
    expect(other).not.toEqual(A);
    // B = 0: the adapter starts as no change at all
    const base = new NativeCausalLM(m.config, m.tensors);
    const ids = i32([1, 5, 9, 2], [1, 4]);
    expect(read(a.logits(ids))).toEqual(read(base.logits(ids)));
    m.release();
  });
});
