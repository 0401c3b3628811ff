// The training step's contracts: activation checkpointing gives bit-identical gradients; packed
// segments give the gradients of the separate sequences; the chunked vocabulary projection equals one
// chunk; gradient accumulation with a shared loss denominator; AdamW (torch's, with the decay groups)
// and clipping against the references; async steps; the LlamaModel face (config.json, PEFT LoraConfig,
// TokenBatch, adapter state) and its errors.
import { Tensor } from '../../bindings/index.js';
import { NativeCausalLM } from '../../bindings/model.js';
import { normalizeModelConfig } from '../../src/model/config.js';
import { LlamaModel, LoraConfigSchema, nativeModelConfig } from '../../src/model/native-model.js';
import { expectClose, expectEqual, maxAbs } from '../helpers/numeric.js';
import { adamwRef, globalNormRef } from '../helpers/reference.js';
import { i32, read } from '../helpers/tensors.js';
import { PROJS, randomBatch, tinyModel } from './reference-llama.js';

function withLora(spec: Parameters<typeof tinyModel>[0] = {}, dropout = 0) {
  const m = tinyModel(spec);
  const model = new NativeCausalLM(m.config, m.tensors);
  model.addLora({ r: 4, loraAlpha: 8, loraDropout: dropout, targetModules: [...PROJS], seed: 11 });
  // nonzero B so that every gradient is nonzero
  for (const [name, t] of Object.entries(model.parameters()))
    if (name.endsWith('lora_B.weight')) {
      const v = Tensor.random(t.shape, name.length * 7 + 1, -0.2, 0.2);
      model.setParameter(name, v);
      v.release();
    }
  return { m, model };
}

function grads(model: NativeCausalLM): Map<string, Float64Array> {
  return new Map(Object.entries(model.parameters('grad')).map(([k, t]) => [k, read(t)]));
}

function expectGradsClose(label: string, got: Map<string, Float64Array>, want: Map<string, Float64Array>, rtol: number) {
  expect([...got.keys()]).toEqual([...want.keys()]);
  for (const [k, w] of want) expectClose(`${label} ${k}`, got.get(k)!, w, { atol: rtol * maxAbs(w), rtol });
}

describe('training step contracts', () => {
  test('activation checkpointing gives identical gradients (with dropout)', () => {
    const { m, model } = withLora({ bias: true }, 0.2);
    const { ids, targets } = randomBatch(97, 2, 9, 5, 4);
    const a = model.trainStep(i32(ids, [2, 9]), i32(targets, [2, 9]), { seed: 77 });
    const g1 = grads(model);
    const actFull = model.info().memory.activationBytes;
    model.zeroGrad();
    model.releaseBuffers();
    const b = model.trainStep(i32(ids, [2, 9]), i32(targets, [2, 9]), { seed: 77, checkpointing: true });
    const g2 = grads(model);
    expect(b.loss).toBe(a.loss);
    for (const [k, v] of g1) expectEqual(k, g2.get(k)!, v);
    expect(model.info().memory.activationBytes).toBeLessThan(actFull);
    // another seed gives other dropout masks
    model.zeroGrad();
    model.trainStep(i32(ids, [2, 9]), i32(targets, [2, 9]), { seed: 78, checkpointing: true });
    expect(read(model.parameters('grad')['base_model.model.model.layers.0.mlp.up_proj.lora_A.weight'])).not.toEqual(
      g1.get('base_model.model.model.layers.0.mlp.up_proj.lora_A.weight'),
    );
    model.release();
    m.release();
  });

  test('packed segments equal the separate sequences', () => {
    const { m, model } = withLora({ tied: true, bias: true });
    const s1 = randomBatch(97, 1, 5, 21, 3);
    const s2 = randomBatch(97, 1, 4, 22, 0);
    const count = [...s1.targets, ...s2.targets].filter((t) => t !== -100).length;
    model.trainStep(i32(s1.ids, [1, 5]), i32(s1.targets, [1, 5]), { lossDenominator: count });
    model.trainStep(i32(s2.ids, [1, 4]), i32(s2.targets, [1, 4]), { lossDenominator: count });
    const separate = grads(model);
    model.zeroGrad();
    const packedIds = i32([...s1.ids, ...s2.ids], [1, 9]);
    const packedTargets = i32([...s1.targets, ...s2.targets], [1, 9]);
    const segments = i32([3, 3, 3, 3, 3, 8, 8, 8, 8], [1, 9]);
    const r = model.trainStep(packedIds, packedTargets, { segments });
    expect(r.tokens).toBe(count);
    expectGradsClose('packed', grads(model), separate, 2e-5);
    // explicit positions equal the default (restart per segment)
    model.zeroGrad();
    model.trainStep(packedIds, packedTargets, { segments, positions: i32([0, 1, 2, 3, 4, 0, 1, 2, 3], [1, 9]) });
    expectGradsClose('positions', grads(model), separate, 2e-5);
    model.release();
    m.release();
  });

  test('the chunked vocabulary projection equals one chunk; accumulation over micro-batches', () => {
    const { m, model } = withLora();
    const { ids, targets } = randomBatch(97, 2, 8, 31, 3);
    const ref = model.trainStep(i32(ids, [2, 8]), i32(targets, [2, 8]), { chunkTokens: 10000 });
    const g = grads(model);
    for (const chunk of [1, 3, 7]) {
      model.zeroGrad();
      const r = model.trainStep(i32(ids, [2, 8]), i32(targets, [2, 8]), { chunkTokens: chunk });
      expect(Math.abs(r.loss - ref.loss)).toBeLessThan(1e-6 * ref.loss);
      expectGradsClose(`chunk ${chunk}`, grads(model), g, 1e-5);
    }
    // two micro-batches of one row each, with the batch's token count as denominator
    model.zeroGrad();
    for (let b = 0; b < 2; b++)
      model.trainStep(i32(ids.slice(b * 8, b * 8 + 8), [1, 8]), i32(targets.slice(b * 8, b * 8 + 8), [1, 8]), {
        lossDenominator: ref.tokens,
      });
    expectGradsClose('accumulated', grads(model), g, 2e-5);
    // nothing counted: loss 0, no gradient change
    model.zeroGrad();
    const none = model.trainStep(i32(ids, [2, 8]), i32(new Array(16).fill(-100), [2, 8]));
    expect(none).toEqual({ loss: 0, lossSum: 0, tokens: 0 });
    expect(model.gradNorm()).toBe(0);
    model.release();
    m.release();
  });

  test("AdamW is torch's (weight decay on weights, not on norms and biases); clipping", () => {
    const m = tinyModel({ bias: true });
    const model = new NativeCausalLM(m.config, m.tensors);
    model.addLora({ r: 2, loraAlpha: 4, targetModules: ['v_proj'], seed: 3 });
    model.enableFullFinetune(['k_proj', 'norm'], [1]);
    const names = Object.keys(model.parameters());
    expect(names).toContain('model.layers.1.self_attn.k_proj.bias');
    const p = new Map(names.map((k) => [k, read(model.parameters()[k])]));
    const mom = new Map(names.map((k) => [k, new Float64Array(p.get(k)!.length)]));
    const vel = new Map(names.map((k) => [k, new Float64Array(p.get(k)!.length)]));
    const { ids, targets } = randomBatch(97, 2, 6, 41, 5);
    for (let step = 1; step <= 2; step++) {
      model.zeroGrad();
      model.trainStep(i32(ids, [2, 6]), i32(targets, [2, 6]));
      const g = grads(model);
      const norm = globalNormRef([...g.values()]);
      expect(Math.abs(model.clipGradNorm(norm / 2) - norm)).toBeLessThan(1e-6 * norm);
      const clipped = grads(model);
      for (const [k, v] of g) expectClose(`clipped ${k}`, clipped.get(k)!, v.map((x) => x * ((norm / 2) / (norm + 1e-6))), { atol: 1e-7, rtol: 1e-5 });
      const hyper = { lr: 0.01, weightDecay: 0.1, step };
      model.optimizerStep(hyper);
      for (const k of names) {
        const decay = !(k.endsWith('.bias') || k.endsWith('norm.weight'));
        adamwRef(p.get(k)!, clipped.get(k)!, mom.get(k)!, vel.get(k)!, { ...hyper, weightDecay: decay ? 0.1 : 0 });
        expectClose(`param ${k} after step ${step}`, read(model.parameters()[k]), p.get(k)!, { atol: 1e-6, rtol: 1e-5 });
      }
    }
    expectClose('exp_avg', read(model.parameters('exp_avg')[names[0]]), mom.get(names[0])!, { atol: 1e-7, rtol: 1e-5 });
    model.release();
    m.release();
  });

  test('a few steps fit a batch; async steps equal sync ones and run one at a time', async () => {
    const { m, model } = withLora({ tied: true });
    const { ids, targets } = randomBatch(97, 2, 8, 51, 0);
    const I = i32(ids, [2, 8]);
    const Tg = i32(targets, [2, 8]);
    const first = model.evalLoss(I, Tg).loss;
    for (let s = 1; s <= 12; s++) {
      model.zeroGrad();
      await model.trainStepAsync(I, Tg);
      await model.optimizerStepAsync({ lr: 0.02, step: s });
    }
    const last = model.evalLoss(I, Tg).loss;
    expect(last).toBeLessThan(first * 0.8);

    model.zeroGrad();
    const sync = model.trainStep(I, Tg, { seed: 5 });
    const g = grads(model);
    model.zeroGrad();
    const [a, b] = await Promise.all([model.trainStepAsync(I, Tg, { seed: 5 }), model.trainStepAsync(I, Tg, { seed: 5 })]);
    expect(a).toEqual(sync);
    expect(b).toEqual(sync);
    for (const [k, v] of grads(model)) expectClose(k, v, g.get(k)!.map((x) => 2 * x), { atol: 1e-7, rtol: 1e-6 });
    model.release();
    m.release();
  });

  test('trainStepAsync leaves the event loop free and survives the model being released meanwhile', async () => {
    const m = tinyModel({ vocab: 1024, hidden: 128, intermediate: 256, layers: 2, heads: 4, kvHeads: 2, headDim: 32 });
    const model = new NativeCausalLM(m.config, m.tensors);
    model.addLora({ r: 8, targetModules: [...PROJS] });
    const { ids, targets } = randomBatch(1024, 2, 256, 3, 0);
    const I = i32(ids, [2, 256]);
    const Tg = i32(targets, [2, 256]);
    const t0 = performance.now();
    model.trainStep(I, Tg);
    const syncMs = performance.now() - t0;
    let ticks = 0;
    const timer = setInterval(() => ticks++, 1);
    const pending = model.trainStepAsync(I, Tg);
    model.release(); // the job holds the model until it is done
    I.release();
    const r = await pending;
    clearInterval(timer);
    expect(r.tokens).toBe(2 * 256);
    if (syncMs > 20) expect(ticks).toBeGreaterThan(2);
    expect(() => model.zeroGrad()).toThrow(/released/);
    m.release();
  });

  test('errors name what is wrong', () => {
    const { m, model } = withLora();
    const I = i32([1, 2, 3], [1, 3]);
    expect(() => model.addLora({ r: 2, targetModules: ['q_proj'] })).toThrow(/already has a LoRA adapter/);
    expect(() => model.optimizerStep({ lr: 1, step: 0 })).toThrow(/step must be >= 1/);
    expect(() => model.setParameter('base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight', Tensor.zeros([3, 3]))).toThrow(
      /must have shape \[4, 32\], got f32\[3, 3\]/,
    );
    expect(() => model.setParameter('nope', Tensor.zeros([3, 3]))).toThrow(/no trainable tensor named 'nope'/);
    expect(() => model.trainStep(I, I, { chunkTokens: 0 })).toThrow(/chunkTokens/);
    expect(() => model.trainStep(I, I, { segments: i32([0, 0], [1, 2]) })).toThrow(/'segments' must have shape \[1, 3\]/);
    model.merge();
    expect(() => model.trainStep(I, I)).toThrow(/merged; unmerge before training/);
    model.unmerge();
    expect(model.trainStep(I, I).tokens).toBe(3);
    expect(() => new NativeCausalLM(m.config, m.tensors).addLora({ r: 2, targetModules: ['w_proj' as 'q_proj'] })).toThrow(
      /unknown module 'w_proj' \(the projections are q_proj/,
    );
    model.release();
    m.release();
  });
});

describe('LlamaModel (the library face)', () => {
  test('the normalized config.json becomes the native config', () => {
    const raw = { vocab_size: 97, hidden_size: 32, intermediate_size: 48, num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 2 };
    const q = nativeModelConfig(normalizeModelConfig({ ...raw, architectures: ['Qwen2ForCausalLM'], rope_theta: 1e6 }));
    expect(q).toMatchObject({ attentionBias: true, oProjBias: false, headDim: 8, ropeTheta: 1e6, numHiddenLayers: 2, ropeScaling: null });
    const l = nativeModelConfig(
      normalizeModelConfig({
        ...raw,
        architectures: ['LlamaForCausalLM'],
        attention_bias: true,
        rope_scaling: { rope_type: 'llama3', factor: 32, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 8192 },
        tie_word_embeddings: true,
      }),
    );
    expect(l).toMatchObject({ attentionBias: true, oProjBias: true, tieWordEmbeddings: true });
    expect(l.ropeScaling).toEqual({ type: 'llama3', factor: 32, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositionEmbeddings: 8192 });
  });

  test("PEFT's adapter_config.json fields", () => {
    const c = LoraConfigSchema.parse({ peft_type: 'LORA', r: 16, lora_alpha: 32, target_modules: 'all-linear', task_type: 'CAUSAL_LM' });
    expect(c).toMatchObject({ r: 16, lora_alpha: 32, lora_dropout: 0, target_modules: 'all-linear', bias: 'none' });
    expect(LoraConfigSchema.parse({}).target_modules).toEqual(['q_proj', 'v_proj']);
    expect(() => LoraConfigSchema.parse({ bias: 'all' })).toThrow(/only bias: 'none' is supported/);
    expect(() => LoraConfigSchema.parse({ use_dora: true })).toThrow(/DoRA is not supported/);
    expect(() => LoraConfigSchema.parse({ target_modules: ['lm_head'] })).toThrow();
  });

  test('train, evaluate, save and load the adapter state', async () => {
    const m = tinyModel({ tied: true });
    const model = new LlamaModel(m.config, m.tensors);
    model.addLora({ r: 4, lora_alpha: 8, target_modules: 'all-linear', seed: 2 });
    const { ids, targets } = randomBatch(97, 2, 6, 61, 4);
    const batch = { ids, targets, batch: 2, seqLen: 6 };
    const before = await model.evalLoss(batch);
    for (let s = 1; s <= 3; s++) {
      model.zeroGrad();
      const r = await model.trainStep(batch, { checkpointing: s === 2 });
      expect(r.tokens).toBe(before.tokens);
      model.clipGradNorm(1);
      await model.optimizerStep({ lr: 0.01, step: s });
    }
    const after = await model.evalLoss(batch);
    expect(after.loss).toBeLessThan(before.loss);
    const state = model.adapterState();
    expect(Object.keys(state)).toHaveLength(2 * 2 * 7);
    const fresh = new LlamaModel(m.config, m.tensors);
    fresh.addLora({ r: 4, lora_alpha: 8, target_modules: 'all-linear', seed: 99 });
    fresh.loadAdapterState(state);
    expect((await fresh.evalLoss(batch)).loss).toBe(after.loss);
    await expect(model.trainStep({ ...batch, seqLen: 5 })).rejects.toThrow(/TokenBatch.ids has 12 values; batch 2 × seqLen 5 needs 10/);
    model.dispose();
    fresh.dispose();
    m.release();
  });
});
