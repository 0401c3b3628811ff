// The training step's attentionPrecision option: 'bf16' (bf16 tile products in attention, f32
// accumulation) gives the loss and LoRA gradients of the f32 step within bf16 rounding, reaches the bf16
// kernel (the results differ from f32 where the CPU has AVX512-BF16), keeps checkpointing exact, and an
// unknown precision is refused with the option named.
import { Tensor, nativeInfo } from '../../bindings/index.js';
import { NativeCausalLM } from '../../bindings/model.js';
import { expectClose, expectEqual, maxAbs } from '../helpers/numeric.js';
import { i32, read } from '../helpers/tensors.js';
import { PROJS, randomBatch, tinyModel } from './reference-llama.js';

const hasBf16 = nativeInfo().isa.active === 'avx512' && nativeInfo().isa.avx512bf16;

function model() {
  // head_dim 16, T = 70: partial tiles past the first 64 keys
  const m = tinyModel({ dtype: 'bf16', headDim: 16, heads: 4, kvHeads: 2, hidden: 64, intermediate: 96, seed: 77 });
  const lm = new NativeCausalLM(m.config, m.tensors);
  lm.addLora({ r: 4, loraAlpha: 8, targetModules: [...PROJS], seed: 3 });
  for (const [name, t] of Object.entries(lm.parameters()))
    if (name.endsWith('lora_B.weight')) {
      const v = Tensor.random(t.shape, name.length * 13 + 5, -0.2, 0.2);
      lm.setParameter(name, v);
      v.release();
    }
  return { m, lm };
}

function step(lm: NativeCausalLM, precision: 'f32' | 'bf16', checkpointing = false) {
  const { ids, targets } = randomBatch(97, 2, 70, 41, 5);
  lm.zeroGrad();
  const r = lm.trainStep(i32(ids, [2, 70]), i32(targets, [2, 70]), { seed: 9, attentionPrecision: precision, checkpointing });
  return { loss: r.loss, grads: new Map(Object.entries(lm.parameters('grad')).map(([k, t]) => [k, read(t)])) };
}

describe('attentionPrecision', () => {
  test("'bf16' matches the f32 step within bf16 rounding; checkpointing stays bit-identical", () => {
    const { m, lm } = model();
    const f = step(lm, 'f32');
    const b = step(lm, 'bf16');
    expect(Math.abs(b.loss - f.loss)).toBeLessThan(2e-3 * Math.abs(f.loss));
    for (const [k, w] of f.grads) expectClose(k, b.grads.get(k)!, w, { atol: 3e-2 * maxAbs(w), rtol: 0 });
    if (hasBf16) expect([...f.grads].some(([k, w]) => b.grads.get(k)!.some((x, i) => x !== w[i]))).toBe(true);
    const c = step(lm, 'bf16', true);
    expect(c.loss).toBe(b.loss);
    for (const [k, w] of b.grads) expectEqual(k, c.grads.get(k)!, w);
    lm.release();
    m.release();
  });

  test('an unknown precision is refused, naming the option', () => {
    const { m, lm } = model();
    const { ids, targets } = randomBatch(97, 1, 4, 1);
    expect(() => lm.trainStep(i32(ids, [1, 4]), i32(targets, [1, 4]), { attentionPrecision: 'fp8' as 'bf16' })).toThrow(
      /attentionPrecision.*'f32' or 'bf16'/,
    );
    lm.release();
    m.release();
  });
});
