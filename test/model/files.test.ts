// loadModelFiles: a generated model directory loads into mapped weights keyed by transformers' names,
// with its config and tokenizer; f16 and sharded checkpoints load to the same values; and every way a
// directory can disagree with itself (missing file, missing or extra tensor, wrong shape or dtype, a
// tokenizer larger than the embedding) fails naming the file and the tensor.
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Tensor } from '../../bindings/index.js';
import { generateTinyModel } from '../../src/model/tiny.js';
import { loadModelFiles } from '../../src/model/files.js';
import { expectedTensors } from '../../src/model/layout.js';
import { SafetensorsFile, writeSafetensorsCheckpoint, writeSafetensorsSync } from '../../src/model/safetensors.js';
import type { RawTensor, WritableTensor } from '../../src/model/safetensors.js';
import { ModelFileError } from '../../src/model/errors.js';
import { f16BitsToNumber } from '../helpers/numeric.js';

let root: string;
let tiny: string;
let qwen: string;
beforeAll(async () => {
  root = mkdtempSync(join(tmpdir(), 'sw-files-'));
  tiny = (await generateTinyModel(join(root, 'tiny'), 'tiny', 11)).dir;
  qwen = (await generateTinyModel(join(root, 'qwen'), 'tiny-qwen2', 11)).dir;
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

let copies = 0;
/** a copy of a generated model directory to break */
function copyOf(dir: string): string {
  const d = join(root, `copy-${copies++}`);
  cpSync(dir, d, { recursive: true });
  return d;
}

/** the raw tensors of a model's model.safetensors, for rewriting a broken variant */
function rawTensors(dir: string): Map<string, RawTensor> {
  const f = SafetensorsFile.open(join(dir, 'model.safetensors'));
  return new Map(f.header.entries.map((e) => [e.name, { dtype: e.dtype, shape: e.shape, data: new Uint8Array(f.readBytes(e.name)) }]));
}

function expectLoadError(dir: string, ...parts: (string | RegExp)[]): void {
  let err: unknown;
  try {
    loadModelFiles(dir).release();
  } catch (e) {
    err = e;
  }
  expect(err).toBeInstanceOf(ModelFileError);
  for (const p of parts) expect((err as Error).message).toMatch(p);
}

describe('loading', () => {
  test('tiny: every expected tensor, mapped without a copy, values equal to the file; tokenizer and generation config', () => {
    const m = loadModelFiles(tiny);
    try {
      expect([...m.weights.keys()]).toEqual(expectedTensors(m.config).map((t) => t.name));
      expect(m.weights.has('lm_head.weight')).toBe(false);
      expect(m.weights.get('model.layers.0.self_attn.q_proj.weight')!.shape).toEqual([64, 64]);
      expect(m.weights.get('model.layers.0.self_attn.k_proj.weight')!.shape).toEqual([32, 64]);
      for (const w of m.weights.values()) {
        expect(w.handle.storageKind).toBe('mmap');
        expect(w.readonly).toBe(true);
      }
      const raw = SafetensorsFile.open(join(tiny, 'model.safetensors')).readBytes('model.layers.1.mlp.gate_proj.weight');
      expect(Array.from(m.weights.get('model.layers.1.mlp.gate_proj.weight')!.data())).toEqual(Array.from(new Float32Array(new Uint8Array(raw).buffer)));
      expect(m.tokenizer!.eosTokenId).toBe(2);
      expect(m.generationConfig!.eos_token_id).toBe(2);
      expect(m.rawConfig.transformers_version).toBe('4.46.0');
      expect(m.ignoredTensors).toEqual([]);
    } finally {
      m.release();
    }
    expect(loadModelFiles(tiny, { tokenizer: false }).tokenizer).toBeNull();
  });

  test('release() unmaps every weight', () => {
    const m = loadModelFiles(tiny, { tokenizer: false });
    m.release();
    expect([...m.weights.values()].every((w) => w.released)).toBe(true);
  });

  test('convertTo gives owned tensors of that dtype', () => {
    const m = loadModelFiles(qwen, { tokenizer: false, convertTo: 'f32' });
    try {
      const w = m.weights.get('lm_head.weight')!;
      expect(w.dtype).toBe('f32');
      expect(w.handle.storageKind).toBe('aligned');
    } finally {
      m.release();
    }
  });

  test('an f16 checkpoint loads as bf16 by default, as f32 on request, with the f16 values', () => {
    const d = copyOf(tiny);
    const src = rawTensors(tiny);
    const f16 = new Map<string, WritableTensor>();
    for (const [name, t] of src) {
      const f = Tensor.fromArray(new Float32Array((t.data as Uint8Array).buffer.slice(0)), t.shape, 'f32');
      // f32 -> f16 bits with a known value set: x rounded to a multiple of 2^-14 stays exact in f16 and bf16
      const bits = new Uint16Array(f.numel);
      const vals = f.data();
      for (let i = 0; i < bits.length; i++) bits[i] = toF16Bits(Math.round(vals[i] * 256) / 256);
      f16.set(name, { dtype: 'F16', shape: t.shape, data: bits });
      f.release();
    }
    writeSafetensorsSync(join(d, 'model.safetensors'), f16);
    const name = 'model.layers.0.mlp.up_proj.weight';
    const want = Array.from((f16.get(name) as RawTensor).data as Uint16Array, f16BitsToNumber);
    const a = loadModelFiles(d, { tokenizer: false });
    const b = loadModelFiles(d, { tokenizer: false, f16To: 'f32' });
    try {
      expect(a.weights.get(name)!.dtype).toBe('bf16');
      expect(Array.from(a.weights.get(name)!.toFloat32())).toEqual(want);
      expect(b.weights.get(name)!.dtype).toBe('f32');
      expect(Array.from(b.weights.get(name)!.data())).toEqual(want);
    } finally {
      a.release();
      b.release();
    }
  });

  test('a sharded checkpoint loads to the same values', async () => {
    const d = copyOf(qwen);
    rmSync(join(d, 'model.safetensors'));
    const files = await writeSafetensorsCheckpoint(d, rawTensors(qwen), { maxShardBytes: 40_000 });
    expect(files.length).toBeGreaterThan(3);
    const a = loadModelFiles(qwen, { tokenizer: false });
    const b = loadModelFiles(d, { tokenizer: false });
    try {
      expect(b.checkpoint.files.length).toBe(files.length - 1);
      for (const [name, w] of a.weights) expect(Array.from(b.weights.get(name)!.data<'bf16'>())).toEqual(Array.from(w.data<'bf16'>()));
    } finally {
      a.release();
      b.release();
    }
  });

  test('tied model with a stored lm_head.weight, and rotary inv_freq buffers: ignored and reported', () => {
    const d = copyOf(tiny);
    const t = rawTensors(tiny);
    t.set('lm_head.weight', t.get('model.embed_tokens.weight')!);
    t.set('model.layers.0.self_attn.rotary_emb.inv_freq', { dtype: 'F32', shape: [8], data: new Float32Array(8) });
    writeSafetensorsSync(join(d, 'model.safetensors'), t);
    const m = loadModelFiles(d, { tokenizer: false });
    expect(m.ignoredTensors.sort()).toEqual(['lm_head.weight', 'model.layers.0.self_attn.rotary_emb.inv_freq']);
    expect(m.weights.has('lm_head.weight')).toBe(false);
    m.release();
  });
});

describe('directories that disagree with themselves', () => {
  test('not a directory, no config.json, no weights', () => {
    expectLoadError(join(root, 'nope'), /nope: not a directory/);
    const a = copyOf(tiny);
    rmSync(join(a, 'config.json'));
    expectLoadError(a, /config\.json: missing config\.json \(a Hugging Face model directory holds/);
    const b = copyOf(tiny);
    rmSync(join(b, 'model.safetensors'));
    expectLoadError(b, /no model\.safetensors or model\.safetensors\.index\.json/);
  });

  test('no tokenizer files', () => {
    const a = copyOf(tiny);
    rmSync(join(a, 'tokenizer.json'));
    expectLoadError(a, /tokenizer\.json: missing tokenizer\.json/);
    const b = copyOf(tiny);
    rmSync(join(b, 'tokenizer_config.json'));
    expectLoadError(b, /tokenizer_config\.json: missing tokenizer_config\.json/);
    expect(loadModelFiles(b, { tokenizer: false }).config.vocabSize).toBe(512);
  });

  test('a tensor missing, with its name', () => {
    const d = copyOf(tiny);
    const t = rawTensors(tiny);
    t.delete('model.layers.1.post_attention_layernorm.weight');
    writeSafetensorsSync(join(d, 'model.safetensors'), t);
    expectLoadError(d, /model\.safetensors: the checkpoint lacks 1 tensor\(s\) that config\.json implies: model\.layers\.1\.post_attention_layernorm\.weight/);
    const q = copyOf(qwen);
    const tq = rawTensors(qwen);
    tq.delete('lm_head.weight');
    writeSafetensorsSync(join(q, 'model.safetensors'), tq);
    expectLoadError(q, /lm_head\.weight \(config\.json says tie_word_embeddings is false/);
  });

  test('a shape that disagrees with config.json, with both shapes', () => {
    const d = copyOf(tiny);
    const cfg = JSON.parse(readFileSync(join(d, 'config.json'), 'utf8'));
    writeFileSync(join(d, 'config.json'), JSON.stringify({ ...cfg, intermediate_size: 96 }));
    expectLoadError(d, /tensor 'model\.layers\.0\.mlp\.gate_proj\.weight': shape \[128, 64\] does not match \[96, 64\] implied by config\.json/);
    const e = copyOf(tiny);
    writeFileSync(join(e, 'config.json'), JSON.stringify({ ...cfg, num_key_value_heads: 4 }));
    expectLoadError(e, /k_proj\.weight': shape \[32, 64\] does not match \[64, 64\]/);
  });

  test('tensors the architecture does not have (a config that does not belong to the weights)', () => {
    const d = copyOf(qwen);
    const cfg = JSON.parse(readFileSync(join(d, 'config.json'), 'utf8'));
    writeFileSync(join(d, 'config.json'), JSON.stringify({ ...cfg, architectures: ['LlamaForCausalLM'], model_type: 'llama' }));
    expectLoadError(d, /holds 6 tensor\(s\) that a LlamaForCausalLM with this config\.json does not have: model\.layers\.0\.self_attn\.k_proj\.bias/);
  });

  test('a weight stored as an integer dtype', () => {
    const d = copyOf(tiny);
    const t = rawTensors(tiny);
    t.set('model.norm.weight', { dtype: 'I32', shape: [64], data: new Int32Array(64) });
    writeSafetensorsSync(join(d, 'model.safetensors'), t);
    expectLoadError(d, /tensor 'model\.norm\.weight': dtype I32 is not a supported weight dtype/);
  });

  test('a tokenizer with more ids than the embedding has rows', () => {
    const d = copyOf(tiny);
    const tok = JSON.parse(readFileSync(join(d, 'tokenizer.json'), 'utf8'));
    tok.added_tokens.push({ id: 600, content: '<|extra|>', single_word: false, lstrip: false, rstrip: false, normalized: false, special: true });
    writeFileSync(join(d, 'tokenizer.json'), JSON.stringify(tok));
    expectLoadError(d, /config\.json at vocab_size: the tokenizer has ids up to 600, but the embedding has only vocab_size 512 rows/);
  });

  test('a corrupt generation_config.json', () => {
    const d = copyOf(tiny);
    writeFileSync(join(d, 'generation_config.json'), '{"eos_token_id": "two"}');
    expectLoadError(d, /generation_config\.json at eos_token_id/);
  });
});

/** f32 -> f16 bits for values exactly representable in f16 (normal range; tests only) */
function toF16Bits(x: number): number {
  if (x === 0) return Object.is(x, -0) ? 0x8000 : 0;
  const sign = x < 0 ? 0x8000 : 0;
  const a = Math.abs(x);
  let e = Math.floor(Math.log2(a));
  if (e < -14) e = -14; // subnormal
  const m = a / 2 ** e;
  if (e === -14 && m < 1) return sign | Math.round(m * 1024);
  return sign | ((e + 15) << 10) | Math.round((m - 1) * 1024);
}
