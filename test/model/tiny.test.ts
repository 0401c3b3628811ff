// The tiny-model generator: byte-identical output from the same seed, the presets' shapes and dtypes,
// transformers-style initialization, and a real byte-level BPE tokenizer with ChatML special tokens that
// the tokenizer library loads, round-trips any text through, and renders chats with.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateTinyModel, TINY_PRESETS, tinyModelConfig } from '../../src/model/tiny.js';
import { loadModelFiles } from '../../src/model/files.js';
import { normalizeModelConfig, toHfConfig } from '../../src/model/config.js';
import { parameterCount } from '../../src/model/layout.js';
import { SafetensorsFile } from '../../src/model/safetensors.js';
import { loadTokenizer } from '../../src/model/tokenizer.js';

let root: string;
beforeAll(() => {
  root = mkdtempSync(join(tmpdir(), 'sw-tiny-'));
});
afterAll(() => rmSync(root, { recursive: true, force: true }));
const sub = (name: string) => join(root, name);

function stats(a: Float32Array): { mean: number; std: number } {
  let s = 0;
  for (const x of a) s += x;
  const mean = s / a.length;
  let v = 0;
  for (const x of a) v += (x - mean) ** 2;
  return { mean, std: Math.sqrt(v / a.length) };
}

describe('determinism', () => {
  test('the same preset and seed give byte-identical files; another seed changes only the weights', async () => {
    const a = await generateTinyModel(sub('a'), 'tiny', 7);
    await generateTinyModel(sub('b'), 'tiny', 7);
    await generateTinyModel(sub('c'), 'tiny', 8);
    expect(a.files).toEqual(['config.json', 'generation_config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json']);
    // Buffer.equals: jest's toEqual walks big buffers element by element
    const same = (x: string, y: string, f: string) => readFileSync(join(sub(x), f)).equals(readFileSync(join(sub(y), f)));
    for (const f of a.files) expect([f, same('a', 'b', f)]).toEqual([f, true]);
    expect(same('a', 'c', 'model.safetensors')).toBe(false);
    for (const f of ['config.json', 'tokenizer.json', 'tokenizer_config.json']) expect([f, same('a', 'c', f)]).toEqual([f, true]);
  });

  test("a tensor's values depend on the seed and its name, not on which other tensors exist", async () => {
    await generateTinyModel(sub('deep'), { ...TINY_PRESETS.tiny, numLayers: 3 }, 7);
    const two = SafetensorsFile.open(join(sub('a'), 'model.safetensors'));
    const three = SafetensorsFile.open(join(sub('deep'), 'model.safetensors'));
    expect(three.readBytes('model.layers.1.mlp.down_proj.weight').equals(two.readBytes('model.layers.1.mlp.down_proj.weight'))).toBe(true);
    expect(three.readBytes('model.layers.1.mlp.down_proj.weight').equals(two.readBytes('model.layers.1.mlp.up_proj.weight'))).toBe(false);
    expect(three.has('model.layers.2.mlp.down_proj.weight')).toBe(true);
  });
});

describe('presets', () => {
  test('tiny: Llama, tied, f32, test init (perturbed norms)', async () => {
    const g = await generateTinyModel(sub('tiny'), 'tiny', 1);
    const m = loadModelFiles(g.dir);
    try {
      expect(m.config).toEqual(g.config);
      expect([m.config.vocabSize, m.config.hiddenSize, m.config.numLayers, m.config.numHeads, m.config.numKvHeads, m.config.intermediateSize, m.config.headDim]).toEqual([512, 64, 2, 4, 2, 128, 16]);
      expect(m.weights.has('lm_head.weight')).toBe(false);
      expect(m.weights.get('model.embed_tokens.weight')!.dtype).toBe('f32');
      const norm = stats(m.weights.get('model.layers.0.input_layernorm.weight')!.toFloat32());
      expect(Math.abs(norm.mean - 1)).toBeLessThan(0.05);
      expect(norm.std).toBeGreaterThan(0.05);
      expect(JSON.parse(readFileSync(join(g.dir, 'config.json'), 'utf8')).torch_dtype).toBe('float32');
    } finally {
      m.release();
    }
  });

  test('tiny-qwen2: q/k/v biases (nonzero in the test init), untied lm_head, bf16 kept as bf16', async () => {
    const g = await generateTinyModel(sub('qwen'), 'tiny-qwen2', 1);
    const m = loadModelFiles(g.dir);
    try {
      expect(m.config.architecture).toBe('Qwen2ForCausalLM');
      expect(m.weights.get('lm_head.weight')!.shape).toEqual([512, 64]);
      const bias = m.weights.get('model.layers.1.self_attn.v_proj.bias')!;
      expect(bias.shape).toEqual([32]);
      expect(bias.dtype).toBe('bf16');
      expect(bias.handle.storageKind).toBe('mmap');
      expect(bias.toFloat32().some((x) => x !== 0)).toBe(true);
      expect(m.weights.has('model.layers.0.self_attn.o_proj.bias')).toBe(false);
      expect(new Set(SafetensorsFile.open(join(g.dir, 'model.safetensors')).header.entries.map((e) => e.dtype))).toEqual(new Set(['BF16']));
    } finally {
      m.release();
    }
  });

  test('small: transformers init (N(0, 0.02) projections, unit norms, no biases); dtype override', async () => {
    const g = await generateTinyModel(sub('small'), 'small', 3, { dtype: 'bf16' });
    const m = loadModelFiles(g.dir);
    try {
      const w = stats(m.weights.get('model.layers.3.mlp.up_proj.weight')!.toFloat32());
      expect(Math.abs(w.mean)).toBeLessThan(0.001);
      expect(Math.abs(w.std - 0.02) / 0.02).toBeLessThan(0.02);
      expect(m.weights.get('model.norm.weight')!.toFloat32().every((x) => x === 1)).toBe(true);
      expect(m.weights.get('model.norm.weight')!.dtype).toBe('bf16');
      expect(parameterCount(m.config)).toBeGreaterThan(3_000_000);
    } finally {
      m.release();
    }
  });

  test('smollm2-135m: the shape of SmolLM2-135M (134,515,008 parameters, tied, bf16, rope_theta 1e5)', () => {
    const c = tinyModelConfig(TINY_PRESETS['smollm2-135m']);
    expect(parameterCount(c)).toBe(134_515_008);
    expect([c.hiddenSize, c.intermediateSize, c.numLayers, c.numHeads, c.numKvHeads, c.headDim, c.vocabSize, c.tieWordEmbeddings, c.ropeTheta, c.torchDtype]).toEqual([
      576, 1536, 30, 9, 3, 64, 49152, true, 100000, 'bf16',
    ]);
    expect(normalizeModelConfig(JSON.parse(JSON.stringify(toHfConfig(c))))).toEqual(c);
  });

  test('an unknown preset is refused with the list of presets', async () => {
    await expect(generateTinyModel(sub('x'), 'huge' as 'tiny')).rejects.toThrow(/unknown tiny-model preset 'huge'; presets: tiny, tiny-qwen2, small, smollm2-135m/);
  });
});

describe('the generated tokenizer', () => {
  test('loads through the tokenizer library with ChatML special tokens as single ids', async () => {
    const g = await generateTinyModel(sub('tok'), 'tiny', 1);
    const t = loadTokenizer(g.dir);
    expect(g.tokenizerSize).toBeGreaterThan(400);
    expect(g.tokenizerSize).toBeLessThanOrEqual(512);
    expect(t.vocabSize).toBe(g.tokenizerSize);
    expect([t.tokenToId('<|endoftext|>'), t.tokenToId('<|im_start|>'), t.tokenToId('<|im_end|>')]).toEqual([0, 1, 2]);
    expect([t.bosTokenId, t.eosTokenId, t.padTokenId, t.addBos]).toEqual([1, 2, 0, false]);
    expect(t.encode('<|im_start|>user\n', { addSpecialTokens: false })[0]).toBe(1);
    // learned merges: common words of the corpus are single tokens
    expect(t.encode(' the', { addSpecialTokens: false })).toHaveLength(1);
    expect(t.encode(' GenServer', { addSpecialTokens: false })).toHaveLength(1);
  });

  test.each([
    'Hello, STARWEAVE! def handle_call(:ping, _from, state), do: {:reply, :pong, state}',
    'unicode 中文 🤖 ß é\u0301 \u00a0 \t\r\n end',
    '\u0000\u0001 control bytes and 1234567890',
  ])('byte-level round trip of %j', async (text) => {
    const t = loadTokenizer(sub('tok'));
    const ids = t.encode(text);
    expect(ids.every((id) => id >= 0 && id < 512)).toBe(true);
    expect(t.decode(ids)).toBe(text);
  });

  test('chat rendering: ChatML text, assistant content and <|im_end|> masked', () => {
    const t = loadTokenizer(sub('tok'));
    const msgs = [
      { role: 'system', content: 'Be brief.' },
      { role: 'user', content: 'What restarts a process?' },
      { role: 'assistant', content: 'The supervisor.' },
    ];
    expect(t.applyChatTemplate(msgs)).toBe('<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nWhat restarts a process?<|im_end|>\n<|im_start|>assistant\nThe supervisor.<|im_end|>\n');
    const { ids, lossMask } = t.render(msgs);
    const masked = ids.filter((_, i) => lossMask[i]);
    expect(t.decode(masked)).toBe('The supervisor.<|im_end|>');
    expect(lossMask.at(-1)).toBe(false);
    expect(ids.at(-2)).toBe(2);
  });
});
