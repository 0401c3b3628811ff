// Generation: KV-cache decode logits equal the full forward's logits at every position (batched prompts
// of different lengths, a subset of slots, cache growth); an unmerged LoRA adapter, its merged copy and
// unmerge (exact); generate() with greedy decoding, sampling, stop tokens / strings, streaming, batches;
// the logits processors against transformers' definitions.
import { Tensor, setBf16Dot } from '../../bindings/index.js';
import { NativeCausalLM } from '../../bindings/model.js';
import { applyRepetitionPenalty, argmax, candidates, generate } from '../../src/model/generate.js';
import { LlamaModel } from '../../src/model/native-model.js';
import { expectClose, expectEqual, maxAbs, randInts } from '../helpers/numeric.js';
import { bf16DotActive, i32, read, restoreDefaults } from '../helpers/tensors.js';
import { PROJS, tinyModel } from './reference-llama.js';

const V = 97;

afterAll(restoreDefaults);

/** logits [V] of the full forward of `seq` at position t */
function fullLogits(model: NativeCausalLM, seq: number[]): Float64Array {
  return read(model.logits(i32(seq, [1, seq.length])));
}

function loraModel(spec: Parameters<typeof tinyModel>[0] = {}) {
  const m = tinyModel(spec);
  const model = new NativeCausalLM(m.config, m.tensors);
  model.addLora({ r: 4, loraAlpha: 8, targetModules: [...PROJS], seed: 4 });
  for (const [name, t] of Object.entries(model.parameters()))
    if (name.endsWith('lora_B.weight')) model.setParameter(name, Tensor.random(t.shape, name.length + 3, -0.3, 0.3));
  return { m, model };
}

describe('KV cache', () => {
  test.each([
    ['f32', false],
    ['bf16', false],
    ['bf16', true],
  ] as const)('prefill + decode steps give the full forward logits at each position (%s weights, bf16 dot %s)', (dtype, dot) => {
    const { m, model } = loraModel({ bias: true, llama3: true, dtype });
    setBf16Dot(dot);
    if (dot && !bf16DotActive()) return;
    // Decode rows take the GEMM's few-rows path, the full forward the packed one; with the AVX512-BF16
    // dot only the packed path rounds activations to bf16 (~2^-9 relative), hence the wider tolerance.
    const tol = dot ? 0.02 : 2e-5;
    const seqs = [Array.from(randInts(11, 1, 0, V)), Array.from(randInts(11, 2, 0, V)), Array.from(randInts(11, 3, 0, V))];
    const prompt = [3, 6, 2];
    const T = Math.max(...prompt);
    const padded = seqs.flatMap((s, b) => [...s.slice(0, prompt[b]), ...new Array(T - prompt[b]).fill(0)]);
    const first = read(model.prefill(i32(padded, [3, T]), i32(prompt, [3]), 4));
    const full = seqs.map((s) => fullLogits(model, s));
    for (let b = 0; b < 3; b++)
      expectClose(`prefill row ${b}`, first.subarray(b * V, (b + 1) * V), full[b].subarray((prompt[b] - 1) * V, prompt[b] * V), { atol: tol, rtol: tol });
    // decode all three, then only sequences 2 and 0 (slots), growing the cache past its capacity
    const len = [...prompt];
    for (let step = 0; step < 5; step++) {
      const active = step < 2 ? [0, 1, 2] : [2, 0];
      const ids = active.map((b) => seqs[b][len[b]]);
      const out = read(model.decodeStep(i32(ids, [active.length]), step < 2 ? null : i32(active, [active.length])));
      active.forEach((b, r) => {
        const pos = len[b];
        expectClose(`decode step ${step} sequence ${b}`, out.subarray(r * V, (r + 1) * V), full[b].subarray(pos * V, (pos + 1) * V), {
          atol: tol,
          rtol: tol,
        });
        len[b]++;
      });
    }
    expect(model.cacheLengths()).toEqual(len);
    expect(model.info().memory.kvCacheBytes).toBeGreaterThan(0);
    expect(() => model.decodeStep(i32([1, 2], [2]), i32([0, 0], [2]))).toThrow(/slot 0 appears twice/);
    expect(() => model.decodeStep(i32([1], [1]), i32([7], [1]))).toThrow(/slots\[0\] = 7 is outside the cache's 3 sequences/);
    model.resetCache();
    expect(() => model.decodeStep(i32([1], [1]))).toThrow(/call prefill first/);
    setBf16Dot(true);
    model.release();
    m.release();
  });

  test('merge gives the unmerged logits; unmerge is exact; bf16 merge stays bf16', () => {
    for (const dtype of ['f32', 'bf16'] as const) {
      const { m, model } = loraModel({ dtype, tied: true });
      const ids = i32(Array.from(randInts(12, 9, 0, V)), [2, 6]);
      const unmerged = read(model.logits(ids));
      model.merge();
      const info = model.info();
      expect(info.merged).toBe(true);
      // seven merged copies per layer in the base dtype
      let bytes = 0;
      for (const [name, t] of m.tensors) if (name.endsWith('_proj.weight')) bytes += t.nbytes;
      expect(info.memory.mergedBytes).toBe(bytes);
      const merged = read(model.logits(ids));
      // bf16: the merged weight is rounded to bf16 (as PEFT's merge into a bf16 model): ~2^-9 per weight
      const tol = dtype === 'f32' ? 2e-5 : 0.03 * maxAbs(unmerged);
      expectClose(`${dtype} merged`, merged, unmerged, { atol: tol, rtol: dtype === 'f32' ? 2e-5 : 0 });
      model.unmerge();
      expectEqual(`${dtype} unmerged again`, read(model.logits(ids)), unmerged);
      expect(model.info().memory.mergedBytes).toBe(0);
      model.release();
      m.release();
    }
  });
});

describe('generate()', () => {
  test('greedy decoding follows the argmax of the full forward; batches equal single prompts', async () => {
    const { m, model } = loraModel();
    const lm = { vocabSize: V, prefillAsync: model.prefillAsync.bind(model), decodeStepAsync: model.decodeStepAsync.bind(model) };
    const prompts = [[5, 9, 13, 2], [7], [1, 2, 3, 4, 5, 6, 7]];
    const events: string[] = [];
    const res = await generate(lm, prompts, { maxNewTokens: 6 }, { onToken: (e) => events.push(`${e.sequence}:${e.step}`) });
    expect(res.finishReasons).toEqual(['length', 'length', 'length']);
    for (let b = 0; b < prompts.length; b++) {
      const seq = [...prompts[b]];
      for (let s = 0; s < 6; s++) {
        const l = fullLogits(model, seq);
        const next = argmax(Float32Array.from(l.subarray((seq.length - 1) * V)));
        expect(res.tokens[b][s]).toBe(next);
        seq.push(next);
      }
      const alone = await generate(lm, [prompts[b]], { maxNewTokens: 6 });
      expect(alone.tokens[0]).toEqual(res.tokens[b]);
    }
    expect(events.slice(0, 4)).toEqual(['0:0', '1:0', '2:0', '0:1']);
    model.release();
    m.release();
  });

  test('sampling is seeded; top-k 1 is greedy; stop tokens and stop strings end a sequence', async () => {
    const m = tinyModel();
    const model = new LlamaModel(m.config, m.tensors);
    const prompts = [[4, 8, 15], [16, 23, 42]];
    const greedy = await model.generate(prompts, { maxNewTokens: 8 });
    const a = await model.generate(prompts, { maxNewTokens: 8, doSample: true, temperature: 1.5, topP: 0.9, seed: 3 });
    const b = await model.generate(prompts, { maxNewTokens: 8, doSample: true, temperature: 1.5, topP: 0.9, seed: 3 });
    const c = await model.generate(prompts, { maxNewTokens: 8, doSample: true, temperature: 1.5, topP: 0.9, seed: 4 });
    expect(a.tokens).toEqual(b.tokens);
    expect(c.tokens).not.toEqual(a.tokens);
    const k1 = await model.generate(prompts, { maxNewTokens: 8, doSample: true, topK: 1, seed: 5 });
    expect(k1.tokens).toEqual(greedy.tokens);
    // stop token: the first greedy token of prompt 0 at step 2
    const stop = greedy.tokens[0][2];
    const s = await model.generate(prompts, { maxNewTokens: 8, stopTokenIds: [stop] });
    const firstStop = greedy.tokens[0].indexOf(stop);
    expect(s.tokens[0]).toEqual(greedy.tokens[0].slice(0, firstStop + 1));
    expect(s.finishReasons[0]).toBe('stop_token');
    // stop strings through a decode function ("<id>" per token)
    const decode = (ids: number[]) => ids.map((t) => `<${t}>`).join('');
    const target = `<${greedy.tokens[1][3]}>`;
    const ss = await model.generate(prompts, { maxNewTokens: 8, stopStrings: [target] }, { decode });
    const at = greedy.tokens[1].findIndex((t) => `<${t}>` === target);
    expect(ss.finishReasons[1]).toBe('stop_string');
    expect(ss.tokens[1]).toEqual(greedy.tokens[1].slice(0, at + 1));
    expect(ss.texts![1]).toBe(decode(greedy.tokens[1].slice(0, at)));
    await expect(model.generate([[1, 200]])).rejects.toThrow(/token 200, outside the vocabulary \[0, 97\)/);
    await expect(model.generate(prompts, { stopStrings: ['x'] })).rejects.toThrow(/stopStrings need a decode function/);
    model.dispose();
    m.release();
  });

  test("logits processors: transformers' repetition penalty, top-k, top-p", () => {
    const l = Float32Array.from([2, -1, 0.5, -3, 1]);
    applyRepetitionPenalty(l, [0, 1, 1, 3], 2);
    expect(Array.from(l)).toEqual([1, -2, 0.5, -6, 1]);
    // top-k keeps ties at the k-th value
    expect(candidates(Float32Array.from([1, 5, 3, 3, 0]), 2, 1).sort()).toEqual([1, 2, 3]);
    // top-p: probabilities 0.5, 0.25, 0.125, 0.125 -> 0.7 keeps the two most likely, 0.76 three
    const lp = Float32Array.from([Math.log(0.5), Math.log(0.25), Math.log(0.125), Math.log(0.125)]);
    expect(candidates(lp, 0, 0.7).sort()).toEqual([0, 1]);
    expect(candidates(lp, 0, 0.76)).toHaveLength(4 - 1 + 0);
    expect(candidates(lp, 0, 0.1)).toEqual([0]);
  });
});
