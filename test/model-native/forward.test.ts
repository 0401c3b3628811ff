// The native model's forward against the f64 reference (test/model-native/reference-llama.ts): logits of
// every position for Llama (untied and tied embeddings), Qwen2 (q/k/v biases), llama3 RoPE scaling,
// packed segments with their positions, bf16 weights (exact widening and the AVX512-BF16 dot path), a
// LoRA adapter on all seven projections, and the evaluation loss. Plus construction errors.
import { Tensor, setBf16Dot } from '../../bindings/index.js';
import { NativeCausalLM } from '../../bindings/model.js';
import { expectClose, maxAbs, uniform } from '../helpers/numeric.js';
import { bf16DotActive, i32, read, restoreDefaults } from '../helpers/tensors.js';
import { PROJS, projPath, projShape, randomBatch, refLogits, refLoss, tinyModel } from './reference-llama.js';
import type { RefAdapter, TinySpec } from './reference-llama.js';

afterAll(restoreDefaults);

const B = 2;
const T = 7;

function compareLogits(spec: TinySpec, opts: { atol: number; segments?: number[]; lora?: boolean; bf16Dot?: boolean }) {
  const m = tinyModel(spec);
  const model = new NativeCausalLM(m.config, m.tensors);
  let adapter: RefAdapter | undefined;
  if (opts.lora) {
    model.addLora({ r: 4, loraAlpha: 8, targetModules: [...PROJS], seed: 5 });
    adapter = { a: new Map(), b: new Map(), r: 4, scale: 2 };
    let s = 70;
    for (let l = 0; l < m.config.numHiddenLayers; l++)
      for (const p of PROJS) {
        const path = projPath(l, p);
        const [out, inF] = projShape(m.config, p);
        const a = uniform(4 * inF, ++s, -0.3, 0.3);
        const b = uniform(out * 4, ++s, -0.3, 0.3);
        adapter.a.set(path, a);
        adapter.b.set(path, b);
        model.setParameter(`base_model.model.${path}.lora_A.weight`, Tensor.fromArray(Float32Array.from(a), [4, inF]));
        model.setParameter(`base_model.model.${path}.lora_B.weight`, Tensor.fromArray(Float32Array.from(b), [out, 4]));
      }
  }
  const { ids, targets } = randomBatch(m.config.vocabSize, B, T, 42, 3);
  const segments = opts.segments ? Int32Array.from(opts.segments) : undefined;
  const idsT = i32(ids, [B, T]);
  const segT = segments ? i32(segments, [B, T]) : undefined;
  if (opts.bf16Dot !== undefined) setBf16Dot(opts.bf16Dot);
  const got = read(model.logits(idsT, { segments: segT }));
  const want = refLogits(m.config, m.values, { ids, B, T, segments }, adapter);
  expectClose('logits', got, want, { atol: opts.atol, rtol: opts.atol, shape: [B, T, m.config.vocabSize] });
  // the evaluation loss goes through the chunked, compacted vocabulary projection
  const ev = model.evalLoss(idsT, i32(targets, [B, T]), { segments: segT, chunkTokens: 3 });
  const wantLoss = refLoss(m.config, m.values, { ids, B, T, segments }, targets, adapter);
  expect(ev.tokens).toBe(targets.filter((t) => t !== -100).length);
  expect(Math.abs(ev.loss - wantLoss)).toBeLessThan(opts.atol * 4);
  model.release();
  m.release();
}

describe('logits against the f64 reference', () => {
  test('Llama, untied embeddings, GQA 4/2', () => compareLogits({}, { atol: 2e-5 }));
  test('tied embeddings', () => compareLogits({ tied: true }, { atol: 2e-5 }));
  test('Qwen2: q/k/v biases', () => compareLogits({ bias: true }, { atol: 2e-5 }));
  test('Llama attention_bias: q/k/v/o biases', () => compareLogits({ bias: true, oBias: true }, { atol: 2e-5 }));
  test('llama3 rope scaling', () => compareLogits({ llama3: true }, { atol: 2e-5 }));
  test('packed segments (positions restart per segment)', () =>
    compareLogits({}, { atol: 2e-5, segments: [0, 0, 0, 1, 1, 2, 2, 5, 5, 5, 5, 5, 6, 6] }));
  test('LoRA on all seven projections (unmerged)', () => compareLogits({ bias: true }, { atol: 2e-5, lora: true }));
  test('bf16 weights, widened to f32', () => compareLogits({ dtype: 'bf16', tied: true }, { atol: 2e-5, bf16Dot: false }));
  test('bf16 weights on the AVX512-BF16 dot path (activations rounded to bf16)', () => {
    setBf16Dot(true);
    if (!bf16DotActive()) return; // CPU without AVX512-BF16: the previous test covers it
    compareLogits({ dtype: 'bf16' }, { atol: 3e-2, bf16Dot: true });
  });
});

describe('construction', () => {
  test('a missing weight is named', () => {
    const m = tinyModel();
    const w = new Map(m.tensors);
    w.delete('model.layers.1.mlp.up_proj.weight');
    w.delete('lm_head.weight');
    expect(() => new NativeCausalLM(m.config, w)).toThrow(/2 weight\(s\) missing: .*model\.layers\.1\.mlp\.up_proj\.weight.*lm_head\.weight|2 weight\(s\) missing: .*lm_head\.weight.*up_proj/);
    m.release();
  });

  test('a weight of the wrong shape names the shapes', () => {
    const m = tinyModel();
    const w = new Map(m.tensors);
    w.set('model.layers.0.self_attn.k_proj.weight', Tensor.zeros([32, 32]));
    expect(() => new NativeCausalLM(m.config, w)).toThrow(
      "Llama: weight 'model.layers.0.self_attn.k_proj.weight' must have shape [16, 32] for this config, got f32[32, 32]",
    );
    m.release();
  });

  test('a bad config field and a bad head count', () => {
    const m = tinyModel();
    expect(() => new NativeCausalLM({ ...m.config, numKeyValueHeads: 3 }, m.tensors)).toThrow(/multiple of num_key_value_heads/);
    expect(() => new NativeCausalLM({ ...m.config, vocabSize: undefined as unknown as number }, m.tensors)).toThrow(
      "config field 'vocabSize' is required",
    );
    m.release();
  });

  test('ids outside the vocabulary and mismatched targets are errors naming them', () => {
    const m = tinyModel();
    const model = new NativeCausalLM(m.config, m.tensors);
    expect(() => model.logits(i32([1, 2, 97], [1, 3]))).toThrow(/ids\[2\] = 97 is outside the vocabulary \[0, 97\)/);
    expect(() => model.evalLoss(i32([1, 2, 3], [1, 3]), i32([1, 2], [1, 2]))).toThrow(/'targets' must have shape \[1, 3\]/);
    expect(() => model.evalLoss(i32([1, 2, 3], [1, 3]), i32([1, -5, 3], [1, 3]))).toThrow(/targets\[0, 1\] = -5 is outside the vocabulary/);
    expect(() => model.trainStep(i32([1, 2, 3], [1, 3]), i32([1, 2, 3], [1, 3]))).toThrow(/no trainable parameters/);
    model.release();
    expect(() => model.logits(i32([1], [1, 1]))).toThrow(/released/);
    m.release();
  });

  test('weights stay as given: mapped or bf16 matrices are not copied', () => {
    const m = tinyModel({ dtype: 'bf16' });
    const model = new NativeCausalLM(m.config, m.tensors);
    const mem = model.info().memory;
    let matrices = 0;
    for (const [name, t] of m.tensors) if (t.dtype === 'bf16') matrices += t.nbytes;
    // owned copies: only the f32 norm weights
    expect(mem.ownedWeightBytes).toBe(4 * 32 * (2 * 2 + 1));
    expect(mem.baseWeightBytes).toBeGreaterThanOrEqual(matrices);
    expect(maxAbs([mem.trainableBytes, mem.kvCacheBytes])).toBe(0);
    model.release();
    m.release();
  });
});
