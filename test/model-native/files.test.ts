// The native model over real model directories: tiny checkpoints generated in the Hugging Face layout
// (src/model/tiny.ts), loaded by loadModelFiles (weights memory-mapped read-only), give the logits of
// the f64 reference built from the same tensors; a LoRA training step and generation run on the mapped
// weights without copying or writing them.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Tensor, setBf16Dot } from '../../bindings/index.js';
import { loadModelFiles } from '../../src/model/files.js';
import { generateTinyModel } from '../../src/model/tiny.js';
import { LlamaModel } from '../../src/model/native-model.js';
import { expectClose, randInts } from '../helpers/numeric.js';
import { read, restoreDefaults } from '../helpers/tensors.js';
import { refLogits } from './reference-llama.js';

let root: string;
beforeAll(() => {
  root = mkdtempSync(join(tmpdir(), 'sw-model-native-'));
});
afterAll(() => {
  rmSync(root, { recursive: true, force: true });
  restoreDefaults();
});

describe.each(['tiny', 'tiny-qwen2'] as const)('%s checkpoint', (preset) => {
  test('logits equal the reference; LoRA trains and generates on the mapped weights', async () => {
    const gen = await generateTinyModel(join(root, preset), preset, 3);
    const files = loadModelFiles(gen.dir);
    const model = LlamaModel.fromFiles(files);
    const values = new Map([...files.weights].map(([k, t]) => [k, read(t)]));
    const mem = model.memory();
    expect(mem.mappedWeightBytes).toBeGreaterThan(0);
    expect(mem.ownedWeightBytes).toBeLessThan(mem.baseWeightBytes / 10); // only the norm weights (and biases) as f32

    const B = 2;
    const T = 6;
    const ids = randInts(B * T, 5, 0, gen.tokenizerSize);
    setBf16Dot(false); // bf16 weights widened exactly: the comparison can be tight
    const got = read(model.native.logits(fromIds(ids, B, T)));
    const want = refLogits(model.config, values, { ids, B, T });
    expectClose(`${preset} logits`, got, want, { atol: 5e-5, rtol: 5e-5 });
    setBf16Dot(true);

    model.addLora({ r: 4, lora_alpha: 8, target_modules: 'all-linear', seed: 1 });
    const targets = Int32Array.from(ids.slice(1)).reduce((a, v, i) => ((a[i] = v), a), new Int32Array(B * T).fill(-100));
    const batch = { ids, targets, batch: B, seqLen: T };
    const l0 = (await model.evalLoss(batch)).loss;
    for (let s = 1; s <= 3; s++) {
      model.zeroGrad();
      await model.trainStep(batch, { checkpointing: true });
      await model.optimizerStep({ lr: 0.02, step: s });
    }
    expect((await model.evalLoss(batch)).loss).toBeLessThan(l0);
    const out = await model.generate([[...ids.slice(0, 4)]], { maxNewTokens: 5, stopTokenIds: files.config.eosTokenIds });
    expect(out.tokens[0].length).toBeGreaterThan(0);
    // the mapped weights were only read
    for (const [k, t] of files.weights) expect([k, t.readonly]).toEqual([k, true]);
    await expect(model.generate([[1, 2]], { maxNewTokens: files.config.maxPositionEmbeddings })).rejects.toThrow(/max_position_embeddings/);
    model.dispose();
    files.release();
  });
});

function fromIds(ids: Int32Array, B: number, T: number): Tensor {
  return Tensor.fromArray(ids, [B, T], 'i32');
}
