// PEFT adapters: written as PEFT writes them (adapter_config.json fields, safetensors keys and shapes),
// read back and applied to a fresh model with the same logits; adapters "trained elsewhere" (a hand-made
// PEFT directory: another target set, layers_to_transform, bf16 tensors) give the logits of the base
// weights merged by hand; bad adapters fail naming the field or tensor.
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Tensor } from '../../bindings/index.js';
import { readSafetensorsHeader, writeSafetensors } from '../../src/model/safetensors.js';
import type { RawTensor } from '../../src/model/safetensors.js';
import { LlamaModel } from '../../src/model/native-model.js';
import { f32ToBf16 } from '../../src/model/tiny.js';
import { applyLoraAdapter, peftKey, readPeftAdapter, writeLoraAdapter, writePeftAdapter } from '../../src/deploy/peft.js';
import { uniform, randInts } from '../helpers/numeric.js';
import { adaptedTinyModel, logitsOf, maxAbsDiff } from './helpers.js';

let root: string;
beforeAll(() => {
  root = mkdtempSync(join(tmpdir(), 'sw-deploy-peft-'));
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

test('write: PEFT config fields and tensor names/shapes; read + apply gives the same logits', async () => {
  const m = await adaptedTinyModel(join(root, 'base'), 'tiny', { r: 4, lora_alpha: 8, target_modules: 'all-linear', use_rslora: true });
  try {
    const out = join(root, 'adapter');
    const files = await writePeftAdapter(out, m.model, { baseModel: m.dir });
    expect(files).toEqual(['adapter_config.json', 'adapter_model.safetensors']);
    const text = readFileSync(join(out, 'adapter_config.json'), 'utf8');
    const cfg = JSON.parse(text);
    expect(Object.keys(cfg)).toEqual([...Object.keys(cfg)].sort());
    expect(cfg).toMatchObject({
      peft_type: 'LORA', task_type: 'CAUSAL_LM', r: 4, lora_alpha: 8, lora_dropout: 0, bias: 'none', use_rslora: true,
      use_dora: false, fan_in_fan_out: false, init_lora_weights: true, inference_mode: true, base_model_name_or_path: m.dir,
      layers_to_transform: null, modules_to_save: null, rank_pattern: {}, alpha_pattern: {}, revision: null,
      target_modules: ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'],
    });
    const h = readSafetensorsHeader(join(out, 'adapter_model.safetensors'));
    expect(h.metadata).toEqual({ format: 'pt' });
    const byName = new Map(h.entries.map((e) => [e.name, e]));
    expect(byName.size).toBe(2 * 7 * 2);
    // Llama tiny: hidden 64, 4 heads x 16, kv 2 x 16 = 32, intermediate 128
    expect(byName.get('base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight')?.shape).toEqual([4, 64]);
    expect(byName.get('base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight')?.shape).toEqual([64, 4]);
    expect(byName.get('base_model.model.model.layers.1.self_attn.k_proj.lora_B.weight')?.shape).toEqual([32, 4]);
    expect(byName.get('base_model.model.model.layers.1.mlp.down_proj.lora_A.weight')?.shape).toEqual([4, 128]);
    expect(byName.get('base_model.model.model.layers.1.mlp.gate_proj.lora_B.weight')?.shape).toEqual([128, 4]);
    expect(h.entries.every((e) => e.dtype === 'F32')).toBe(true);

    const adapter = readPeftAdapter(out, { base: m.files.config });
    expect(adapter.config).toMatchObject({ r: 4, lora_alpha: 8, use_rslora: true, layers_to_transform: null });
    expect(adapter.baseModel).toBe(m.dir);
    const fresh = LlamaModel.fromFiles(m.files);
    try {
      applyLoraAdapter(fresh, adapter);
      const ids = Array.from(randInts(9, 4, 0, m.tokenizerSize));
      const want = logitsOf(m.model, ids);
      expect(maxAbsDiff(logitsOf(fresh, ids), want)).toBe(0);
      const base = LlamaModel.fromFiles(m.files);
      try {
        expect(maxAbsDiff(logitsOf(base, ids), want)).toBeGreaterThan(1e-3); // the adapter matters
      } finally {
        base.dispose();
      }
    } finally {
      fresh.dispose();
    }

    // f16 / bf16 tensors: the values come back rounded, the names and shapes unchanged
    for (const dtype of ['bf16', 'f16'] as const) {
      const d = join(root, `adapter-${dtype}`);
      await writeLoraAdapter(d, { config: adapter.config, tensors: adapter.tensors }, { baseModel: 'x', dtype });
      const hh = readSafetensorsHeader(join(d, 'adapter_model.safetensors'));
      expect(hh.entries.every((e) => e.dtype === (dtype === 'bf16' ? 'BF16' : 'F16'))).toBe(true);
      const back = readPeftAdapter(d, { base: m.files.config });
      const k = peftKey(1, 'up_proj', 'B');
      const rel = maxAbsDiff(back.tensors.get(k)!.data, adapter.tensors.get(k)!.data) / 0.05;
      expect(rel).toBeGreaterThan(0);
      expect(rel).toBeLessThan(dtype === 'bf16' ? 2 ** -8 : 2 ** -11);
    }
  } finally {
    m.dispose();
  }
});

/** A PEFT adapter directory as another trainer would write it. */
async function handMadeAdapter(dir: string, config: Record<string, unknown>, tensors: Record<string, RawTensor>): Promise<void> {
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'adapter_config.json'), JSON.stringify(config));
  await writeSafetensors(join(dir, 'adapter_model.safetensors'), tensors, { metadata: { format: 'pt' } });
}

test('an adapter trained elsewhere (q_proj + v_proj, layer 1 only, bf16) equals the base merged by hand', async () => {
  const m = await adaptedTinyModel(join(root, 'base-qwen'), 'tiny-qwen2', { r: 2, lora_alpha: 4 });
  try {
    const r = 8;
    const alpha = 16;
    const c = m.files.config;
    const shapes = { q_proj: [c.numHeads * c.headDim, c.hiddenSize], v_proj: [c.numKvHeads * c.headDim, c.hiddenSize] } as const;
    const tensors: Record<string, RawTensor> = {};
    const values = new Map<string, Float32Array>();
    let seed = 11;
    for (const proj of ['v_proj', 'q_proj'] as const) {
      const [out, inF] = shapes[proj];
      for (const [which, shape] of [['A', [r, inF]], ['B', [out, r]]] as const) {
        const v = Float32Array.from(uniform(shape[0] * shape[1], seed++, -0.1, 0.1));
        const bits = f32ToBf16(v);
        values.set(`${proj}.${which}`, new Float32Array(new Uint32Array(Array.from(bits, (b) => b << 16)).buffer));
        tensors[peftKey(1, proj, which)] = { dtype: 'BF16', shape, data: bits };
      }
    }
    const dir = join(root, 'elsewhere');
    await handMadeAdapter(
      dir,
      { peft_type: 'LORA', task_type: 'CAUSAL_LM', r, lora_alpha: alpha, lora_dropout: 0.05, target_modules: ['v_proj', 'q_proj'], layers_to_transform: [1], bias: 'none', base_model_name_or_path: 'Qwen/Qwen2.5-0.5B', revision: null, use_dora: false },
      tensors,
    );
    const adapter = readPeftAdapter(dir, { base: c });
    expect(adapter.config).toMatchObject({ r, lora_alpha: alpha, target_modules: ['q_proj', 'v_proj'], layers_to_transform: [1] });
    const imported = LlamaModel.fromFiles(m.files);
    // the reference: base weights with W + (alpha / r) * B @ A for layer 1's q and v, in f64, as f32 tensors
    const merged = new Map<string, Tensor>();
    const owned: Tensor[] = [];
    for (const [name, t] of m.files.weights) {
      const proj = /^model\.layers\.1\.self_attn\.(q_proj|v_proj)\.weight$/.exec(name)?.[1] as 'q_proj' | 'v_proj' | undefined;
      if (!proj) {
        merged.set(name, t);
        continue;
      }
      const [out, inF] = shapes[proj];
      const w = t.toFloat32();
      const A = values.get(`${proj}.A`)!;
      const B = values.get(`${proj}.B`)!;
      const res = new Float32Array(out * inF);
      for (let o = 0; o < out; o++)
        for (let i = 0; i < inF; i++) {
          let s = 0;
          for (let k = 0; k < r; k++) s += B[o * r + k] * A[k * inF + i];
          res[o * inF + i] = w[o * inF + i] + (alpha / r) * s;
        }
      const mt = Tensor.fromArray(res, [out, inF], 'f32');
      owned.push(mt);
      merged.set(name, mt);
    }
    const ref = new LlamaModel(c, merged);
    try {
      applyLoraAdapter(imported, adapter);
      const ids = Array.from(randInts(8, 9, 0, m.tokenizerSize));
      const got = logitsOf(imported, ids);
      const want = logitsOf(ref, ids);
      expect(maxAbsDiff(got, want)).toBeLessThan(2e-3);
      const plain = LlamaModel.fromFiles(m.files);
      expect(maxAbsDiff(logitsOf(plain, ids), want)).toBeGreaterThan(1e-2);
      plain.dispose();
    } finally {
      imported.dispose();
      ref.dispose();
      for (const t of owned) t.release();
    }
  } finally {
    m.dispose();
  }
});

describe('bad adapters are refused naming the field or tensor', () => {
  const good = (r = 2) => ({ peft_type: 'LORA', task_type: 'CAUSAL_LM', r, lora_alpha: 4, target_modules: ['q_proj'] });
  const qa = (shape: number[]) => ({ dtype: 'F32' as const, shape, data: new Float32Array(shape[0] * shape[1]) });
  const cases: [string, Record<string, unknown>, Record<string, RawTensor>, RegExp][] = [
    ['ia3', { ...good(), peft_type: 'IA3' }, { [peftKey(0, 'q_proj', 'A')]: qa([2, 64]), [peftKey(0, 'q_proj', 'B')]: qa([64, 2]) }, /adapter_config\.json at peft_type: peft_type "IA3" is not supported; only LORA/],
    ['dora', { ...good(), use_dora: true }, { [peftKey(0, 'q_proj', 'A')]: qa([2, 64]), [peftKey(0, 'q_proj', 'B')]: qa([64, 2]) }, /at use_dora: DoRA adapters are not supported/],
    ['missing-b', good(), { [peftKey(0, 'q_proj', 'A')]: qa([2, 64]) }, /tensor 'base_model\.model\.model\.layers\.0\.self_attn\.q_proj\.lora_B\.weight': missing tensor/],
    ['shape', good(), { [peftKey(0, 'q_proj', 'A')]: qa([2, 96]), [peftKey(0, 'q_proj', 'B')]: qa([64, 2]) }, /tensor 'base_model\.model\.model\.layers\.0\.self_attn\.q_proj\.lora_A\.weight': shape \[2, 96\] does not match \[2, 64\] for the base model's model\.layers\.0\.self_attn\.q_proj\.weight \[64, 64\]/],
    ['rank', good(4), { [peftKey(0, 'q_proj', 'A')]: qa([2, 64]), [peftKey(0, 'q_proj', 'B')]: qa([64, 2]) }, /shape \[2, 64\] has rank 2, but adapter_config\.json says r = 4/],
    ['layer', good(), { [peftKey(5, 'q_proj', 'A')]: qa([2, 64]), [peftKey(5, 'q_proj', 'B')]: qa([64, 2]) }, /layer 5 does not exist in the base model \(2 layers\)/],
    ['embed', good(), { 'base_model.model.model.embed_tokens.lora_embedding_A': qa([2, 512]) }, /not a LoRA tensor of a Llama-family projection .*embedding/],
    ['targets', good(), { [peftKey(0, 'k_proj', 'A')]: qa([2, 64]), [peftKey(0, 'k_proj', 'B')]: qa([32, 2]) }, /at target_modules: the weights adapt k_proj, which target_modules does not list/],
  ];
  let base: Awaited<ReturnType<typeof adaptedTinyModel>>;
  beforeAll(async () => {
    base = await adaptedTinyModel(join(root, 'base-bad'), 'tiny', { r: 2 });
  });
  afterAll(() => base.dispose());
  test.each(cases)('%s', async (name, config, tensors, message) => {
    const dir = join(root, `bad-${name}`);
    await handMadeAdapter(dir, config, tensors);
    expect(() => readPeftAdapter(dir, { base: base.files.config })).toThrow(message);
  });
  test('missing files', () => {
    expect(() => readPeftAdapter(join(root, 'nope'))).toThrow(/not a directory/);
    mkdirSync(join(root, 'empty'));
    expect(() => readPeftAdapter(join(root, 'empty'))).toThrow(/adapter_config\.json: missing adapter_config\.json/);
  });
});
