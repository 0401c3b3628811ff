// Merged models: base + adapter folded into a full Hugging Face directory that loadModelFiles and
// LlamaModel load again, with the logits of base + adapter unmerged (f32 base: f32 rounding; bf16 base:
// the native merge's own bf16 rounding), config and tokenizer files carried over, other dtypes on request.
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setBf16Dot } from '../../bindings/index.js';
import { loadModelFiles } from '../../src/model/files.js';
import { LlamaModel } from '../../src/model/native-model.js';
import { SafetensorsFile, readSafetensorsHeader, writeSafetensors } from '../../src/model/safetensors.js';
import { adapterOf, writePeftAdapter } from '../../src/deploy/peft.js';
import { exportModel } from '../../src/deploy/export.js';
import { f32ToF16 } from '../../src/deploy/precision.js';
import { writeMergedModel } from '../../src/deploy/merged.js';
import { randInts } from '../helpers/numeric.js';
import { restoreDefaults } from '../helpers/tensors.js';
import { adaptedTinyModel, logitsOf, maxAbsDiff } from './helpers.js';

let root: string;
beforeAll(() => {
  root = mkdtempSync(join(tmpdir(), 'sw-deploy-merged-'));
  setBf16Dot(false); // bf16 weights widened exactly: differences come from the merge alone
});
afterAll(() => {
  rmSync(root, { recursive: true, force: true });
  restoreDefaults();
});

function maxAbs(a: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]));
  return m;
}

test.each([
  ['tiny', 'F32', 1e-4],
  ['tiny-qwen2', 'BF16', 0],
] as const)('%s: the merged directory loads again with the logits of base + adapter', async (preset, dtype, tolVsNativeMerge) => {
  const m = await adaptedTinyModel(join(root, preset), preset, { r: 4, lora_alpha: 16, target_modules: 'all-linear' }, 2);
  try {
    const out = join(root, `${preset}-merged`);
    const res = await writeMergedModel(out, m.files, adapterOf(m.model));
    expect(res.adaptedTensors).toBe(2 * 7);
    expect(readdirSync(out).sort()).toEqual(['config.json', 'generation_config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json']);
    expect(readFileSync(join(out, 'tokenizer.json'), 'utf8')).toBe(readFileSync(join(m.dir, 'tokenizer.json'), 'utf8'));
    expect(JSON.parse(readFileSync(join(out, 'config.json'), 'utf8'))).toEqual(JSON.parse(readFileSync(join(m.dir, 'config.json'), 'utf8')));
    const h = readSafetensorsHeader(join(out, 'model.safetensors'));
    expect(new Set(h.entries.map((e) => e.dtype))).toEqual(new Set([dtype]));

    const files = loadModelFiles(out);
    const merged = LlamaModel.fromFiles(files);
    try {
      const ids = Array.from(randInts(10, 3, 0, m.tokenizerSize));
      const unmerged = logitsOf(m.model, ids);
      const got = logitsOf(merged, ids);
      const scale = maxAbs(unmerged);
      // within the base dtype's rounding of the merged weights
      expect(maxAbsDiff(got, unmerged) / scale).toBeLessThan(dtype === 'F32' ? 1e-5 : 2e-2);
      // and as the native merge (W + scaling * B @ A rounded to the base dtype) computes it
      m.model.merge();
      const native = logitsOf(m.model, ids);
      m.model.unmerge();
      expect(maxAbsDiff(got, native)).toBeLessThanOrEqual(Math.max(tolVsNativeMerge, 1e-5) * scale);
      // the base alone is far from it: the adapter was merged
      const base = LlamaModel.fromFiles(m.files);
      expect(maxAbsDiff(logitsOf(base, ids), unmerged) / scale).toBeGreaterThan(1e-2);
      base.dispose();
    } finally {
      merged.dispose();
      files.release();
    }
  } finally {
    m.dispose();
  }
});

test('another dtype on request, sharded when large', async () => {
  const m = await adaptedTinyModel(join(root, 'tiny-dtype'), 'tiny', { r: 2, lora_alpha: 4 }, 4);
  try {
    const out = join(root, 'tiny-bf16');
    const res = await writeMergedModel(out, m.files, adapterOf(m.model), { dtype: 'bf16', maxShardBytes: 40_000 });
    expect(res.dtype).toBe('bf16');
    expect(res.files.map((f) => f.path)).toContain('model.safetensors.index.json');
    expect(JSON.parse(readFileSync(join(out, 'config.json'), 'utf8')).torch_dtype).toBe('bfloat16');
    const files = loadModelFiles(out);
    expect(files.config.torchDtype).toBe('bf16');
    const merged = LlamaModel.fromFiles(files);
    try {
      const ids = Array.from(randInts(6, 8, 0, m.tokenizerSize));
      const want = logitsOf(m.model, ids);
      const d = maxAbsDiff(logitsOf(merged, ids), want) / maxAbs(want);
      expect(d).toBeGreaterThan(0); // rounded to bf16
      expect(d).toBeLessThan(3e-2);
    } finally {
      merged.dispose();
      files.release();
    }
  } finally {
    m.dispose();
  }
});

test('an f16 checkpoint exports its untouched tensors bit for bit (no detour through bf16)', async () => {
  const m = await adaptedTinyModel(join(root, 'tiny-f16-src'), 'tiny', { r: 2, lora_alpha: 4, target_modules: ['q_proj'] }, 6);
  try {
    const f16Dir = join(root, 'tiny-f16');
    mkdirSync(f16Dir);
    for (const f of ['config.json', 'generation_config.json', 'tokenizer.json', 'tokenizer_config.json']) copyFileSync(join(m.dir, f), join(f16Dir, f));
    const tensors = new Map([...m.files.weights].map(([k, t]) => [k, { dtype: 'F16' as const, shape: t.shape, data: f32ToF16(t.toFloat32()) }]));
    await writeSafetensors(join(f16Dir, 'model.safetensors'), tensors);
    await writePeftAdapter(join(root, 'f16-adapter'), m.model, { baseModel: f16Dir });
    const out = join(root, 'f16-merged');
    const manifest = await exportModel({ adapter: join(root, 'f16-adapter'), model: f16Dir, format: 'merged', out });
    expect(manifest.files.find((f) => f.path === 'model.safetensors')?.tensorTypes).toEqual({ F16: tensors.size });
    const src = SafetensorsFile.open(join(f16Dir, 'model.safetensors'));
    const dst = SafetensorsFile.open(join(out, 'model.safetensors'));
    expect(dst.readBytes('model.layers.1.mlp.down_proj.weight').equals(src.readBytes('model.layers.1.mlp.down_proj.weight'))).toBe(true);
    expect(dst.readBytes('model.embed_tokens.weight').equals(src.readBytes('model.embed_tokens.weight'))).toBe(true);
    expect(dst.readBytes('model.layers.1.self_attn.q_proj.weight').equals(src.readBytes('model.layers.1.self_attn.q_proj.weight'))).toBe(false); // adapted
  } finally {
    m.dispose();
  }
});
