// Metrics on the tiny model: token loss agrees with the native eval loss, per-category breakdown,
// generations, base vs tuned (adapter off == a model without the adapter), the gate.
import { loadModelFiles } from '../../src/model/files.js';
import { LlamaModel } from '../../src/model/native-model.js';
import { tokenizeExamples } from '../../src/train/data.js';
import { evaluateModel, scoreTokens, withAdapterOff } from '../../src/eval/evaluate.js';
import { checkGate } from '../../src/eval/gate.js';
import { runEvaluation } from '../../src/eval/run-eval.js';
import { GateSpecSchema } from '../../src/eval/config.js';
import { records, tinyModelDir } from '../train/fixtures.js';

function withCategories(n: number, offset = 0) {
  return records(n, offset).map((r, i) => ({ ...r, category: i % 2 ? 'otp' : 'phoenix' }));
}

function randomizeB(model: LlamaModel, seed = 1) {
  let s = seed;
  const rnd = () => ((s = (s * 1103515245 + 12345) >>> 0) / 2 ** 32 - 0.5) * 0.2;
  const st = model.adapterState('param');
  model.loadAdapterState(Object.fromEntries(Object.entries(st).filter(([k]) => k.includes('lora_B')).map(([k, v]) => [k, { shape: v.shape, data: v.data.map(() => rnd()) }])));
}

describe('evaluation metrics', () => {
  test('token loss matches the native eval loss; accuracy and categories', async () => {
    const files = loadModelFiles(await tinyModelDir());
    const tok = files.tokenizer!;
    const model = LlamaModel.fromFiles(files);
    try {
      model.addLora({ r: 4, lora_alpha: 8, target_modules: 'all-linear', seed: 3 });
      randomizeB(model);
      const recs = withCategories(5, 50);
      const sc = await scoreTokens(model, tok, recs, { maxSeqLen: 96 });
      expect(sc.examples).toBe(5);
      let lossSum = 0;
      let tokens = 0;
      for (const ex of tokenizeExamples(recs, tok, 96).examples) {
        const r = await model.evalLoss({ ids: ex.ids, targets: ex.targets, batch: 1, seqLen: ex.ids.length });
        lossSum += r.lossSum;
        tokens += r.tokens;
      }
      expect(sc.tokens).toBe(tokens);
      expect(sc.lossSum / sc.tokens).toBeCloseTo(lossSum / tokens, 3);
      expect(sc.correct).toBeGreaterThanOrEqual(0);
      expect(sc.correct).toBeLessThanOrEqual(sc.tokens);

      const m = await evaluateModel(model, tok, recs, { maxSeqLen: 96, generateExamples: 3, maxNewTokens: 8 });
      expect(Object.keys(m.categories).sort()).toEqual(['otp', 'phoenix']);
      expect(m.categories.otp.examples + m.categories.phoenix.examples).toBe(5);
      expect(m.categories.otp.tokens + m.categories.phoenix.tokens).toBe(m.tokens);
      expect(m.samples).toHaveLength(3);
      for (const s of m.samples) {
        expect(typeof s.output).toBe('string');
        expect(s.rougeL).toBeGreaterThanOrEqual(0);
        expect(s.rougeL).toBeLessThanOrEqual(1);
      }
      expect(m.generated).toBe(3);
      expect(m.tokenAccuracy).toBeCloseTo(sc.correct / sc.tokens, 12);
    } finally {
      model.dispose();
      files.release();
    }
  });

  test('adapter off gives the base model; the adapter is restored', async () => {
    const files = loadModelFiles(await tinyModelDir());
    const tok = files.tokenizer!;
    const plain = LlamaModel.fromFiles(files);
    const model = LlamaModel.fromFiles(files);
    try {
      model.addLora({ r: 4, lora_alpha: 8, target_modules: 'all-linear', seed: 3 });
      randomizeB(model);
      const recs = withCategories(4, 10);
      const opts = { maxSeqLen: 96, generateExamples: 2, maxNewTokens: 6 };
      const base = await evaluateModel(plain, tok, recs, opts);
      const tunedBefore = await evaluateModel(model, tok, recs, opts);
      const off = await withAdapterOff(model, () => evaluateModel(model, tok, recs, opts));
      const tunedAfter = await evaluateModel(model, tok, recs, opts);
      expect(off!.loss).toBeCloseTo(base.loss!, 5);
      expect(off!.tokenAccuracy).toBe(base.tokenAccuracy);
      expect(off!.samples.map((s) => s.output)).toEqual(base.samples.map((s) => s.output));
      expect(tunedBefore.loss).not.toBeCloseTo(base.loss!, 3);
      expect(tunedAfter.loss).toBe(tunedBefore.loss);

      const rep = await runEvaluation(model, tok, recs, { generate_examples: 2, max_new_tokens: 6, gate: { max_eval_loss: 1e-6, min_token_accuracy: 0 } }, { maxSeqLen: 96, step: 5 });
      expect(rep.base!.loss).toBeCloseTo(base.loss!, 5);
      expect(rep.delta!.loss).toBeCloseTo(rep.tuned.loss! - rep.base!.loss!, 12);
      expect(rep.gate.passed).toBe(false);
      expect(rep.gate.checks.map((c) => [c.name, c.passed])).toEqual([
        ['min_token_accuracy', true],
        ['max_eval_loss', false],
      ]);
      expect(rep.gate.reasons[0]).toMatch(/held-out loss .* not <= /);
    } finally {
      model.dispose();
      plain.dispose();
      files.release();
    }
  });

  test('gate: no thresholds pass; missing base fails the gain checks; per category', () => {
    const m = { examples: 2, tokens: 10, loss: 1, perplexity: Math.E, tokenAccuracy: 0.6, generated: 1, exactMatch: 0, rougeL: 0.5, samples: [], categories: { a: { examples: 1, tokens: 5, loss: 1, tokenAccuracy: 0.8, generated: 0, exactMatch: null, rougeL: null }, b: { examples: 1, tokens: 5, loss: 1, tokenAccuracy: 0.4, generated: 1, exactMatch: 0, rougeL: 0.5 } } };
    expect(checkGate(GateSpecSchema.parse({}), m, null)).toEqual({ passed: true, checks: [], reasons: [] });
    const g = checkGate(GateSpecSchema.parse({ min_token_accuracy_gain: 0.1, min_rouge_l: 0.5, min_category_token_accuracy: 0.5 }), m, null);
    expect(g.passed).toBe(false);
    expect(g.checks.map((c) => [c.name, c.passed])).toEqual([
      ['min_rouge_l', true],
      ['min_token_accuracy_gain', false],
      ['min_category_token_accuracy[a]', true],
      ['min_category_token_accuracy[b]', false],
    ]);
    const base = { ...m, tokenAccuracy: 0.4, loss: 1.5 };
    const g2 = checkGate(GateSpecSchema.parse({ min_token_accuracy_gain: 0.1, min_loss_improvement: 0.4 }), m, base);
    expect(g2.passed).toBe(true);
  });
});
