/**
 * @jest-environment ./test/deploy/ort-environment.cjs
 */
// The ONNX export run by onnxruntime-node (the real reader) against the native engine on the same tokens:
// tiny generated checkpoints (Llama with tied embeddings and f32 weights; Qwen2 with q/k/v biases, an
// untied lm_head and bf16 weights, also at opset 23; llama3 RoPE scaling; Llama attention_bias with an
// o_proj bias; f16 weights; Mistral), a full forward, prefill then decode
// steps through the KV cache, a batch of two with left padding, greedy generation token for token, a LoRA
// adapter merged before export, external data, and the file format read back by our own decoder.
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createHash } from 'node:crypto';
import { setBf16Dot, Tensor } from '../../bindings/index.js';
import { loadModelFiles } from '../../src/model/files.js';
import { generateTinyModel } from '../../src/model/tiny.js';
import { LlamaModel } from '../../src/model/native-model.js';
import { exportOnnx } from '../../src/deploy/onnx/export.js';
import { loadOrt, OnnxCausalLM } from '../../src/deploy/onnx/runtime.js';
import { decodeModel } from '../../src/deploy/onnx/proto.js';
import { ropeInvFreq } from '../../src/deploy/onnx/rope.js';
import { expectClose, randInts, uniform } from '../helpers/numeric.js';
import { SafetensorsFile, writeSafetensors } from '../../src/model/safetensors.js';
import type { RawTensor } from '../../src/model/safetensors.js';
import { f32ToF16 } from '../../src/deploy/precision.js';
import { read, restoreDefaults } from '../helpers/tensors.js';
import { ropeInvFreqRef } from '../helpers/reference.js';
import { Registry } from '../../src/deploy/registry.js';
import { readExportManifest } from '../../src/deploy/manifest.js';

let root: string;
beforeAll(() => {
  root = mkdtempSync(join(tmpdir(), 'sw-onnx-'));
  setBf16Dot(false); // bf16 weights widened exactly on the native side: the comparison can be tight
});
afterAll(() => {
  rmSync(root, { recursive: true, force: true });
  restoreDefaults();
});

/** native logits [B, T, V] of right-aligned rows of equal length (no padding) */
function nativeLogits(model: LlamaModel, rows: number[][]): Float32Array {
  const B = rows.length;
  const T = rows[0].length;
  const ids = Tensor.fromArray(Int32Array.from(rows.flat()), [B, T], 'i32');
  const out = model.native.logits(ids);
  ids.release();
  return Float32Array.from(read(out));
}

/** Rewrites a generated checkpoint: every tensor as f32 values through `f`, stored as `dtype`; extra tensors added. */
async function rewriteCheckpoint(dir: string, dtype: 'F32' | 'F16', extra: Record<string, { shape: number[]; data: Float32Array }> = {}) {
  const file = SafetensorsFile.open(join(dir, 'model.safetensors'));
  const out: Record<string, RawTensor> = {};
  const enc = (data: Float32Array) => (dtype === 'F16' ? f32ToF16(data) : data);
  for (const name of file.names) {
    const t = file.tensor(name, { convertTo: 'f32' });
    out[name] = { dtype, shape: file.entry(name).shape, data: enc(t.toFloat32()) };
    t.release();
  }
  for (const [name, t] of Object.entries(extra)) out[name] = { dtype, shape: t.shape, data: enc(t.data) };
  await writeSafetensors(join(dir, 'model.safetensors'), out);
}

interface Case {
  name: string;
  preset: 'tiny' | 'tiny-qwen2';
  edit?: (c: Record<string, unknown>) => void;
  opset?: 17 | 23;
  /** rewrite the checkpoint after generation (f16 weights, bias tensors) */
  rewrite?: (dir: string) => Promise<void>;
}

async function setup(name: string, { preset, edit, opset, rewrite }: Case) {
  const gen = await generateTinyModel(join(root, name), preset, 5);
  if (edit) {
    const p = join(gen.dir, 'config.json');
    const cfg = JSON.parse(readFileSync(p, 'utf8')) as Record<string, unknown>;
    edit(cfg);
    writeFileSync(p, JSON.stringify(cfg));
  }
  if (rewrite) await rewrite(gen.dir);
  // f16 widened to f32 exactly on the native side too (its default is bf16), as the exporter widens it
  const files = loadModelFiles(gen.dir, { f16To: 'f32' });
  const model = LlamaModel.fromFiles(files);
  const out = join(root, `${name}-onnx`);
  const manifest = await exportOnnx(gen.dir, out, { opset });
  expect(manifest.details.opset).toBe(opset ?? 17);
  const ort = await OnnxCausalLM.load(out);
  return { gen, files, model, out, manifest, ort, V: files.config.vocabSize };
}

const biases = (layers: number, sizes: Record<string, number>) =>
  Object.fromEntries(
    Array.from({ length: layers }, (_, l) => Object.entries(sizes).map(([proj, n], i) => [`model.layers.${l}.self_attn.${proj}.bias`, { shape: [n], data: Float32Array.from(uniform(n, 40 + l * 8 + i, -0.3, 0.3)) }])).flat(),
  );

const CASES: Case[] = [
  { name: 'llama (tied, f32)', preset: 'tiny' as const },
  { name: 'qwen2 at opset 23 (RMSNormalization op)', preset: 'tiny-qwen2' as const, opset: 23 },
  { name: 'qwen2 (biases, untied, bf16)', preset: 'tiny-qwen2' as const },
  {
    name: 'llama3 rope scaling',
    preset: 'tiny' as const,
    edit: (c: Record<string, unknown>) => {
      c.rope_scaling = { rope_type: 'llama3', factor: 8, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 16 };
    },
  },
  {
    name: 'llama attention_bias (q/k/v/o biases)',
    preset: 'tiny' as const,
    edit: (c: Record<string, unknown>) => {
      c.attention_bias = true;
    },
    rewrite: (dir: string) => rewriteCheckpoint(dir, 'F32', biases(2, { q_proj: 64, k_proj: 32, v_proj: 32, o_proj: 64 })),
  },
  {
    name: 'f16 checkpoint (widened to f32)',
    preset: 'tiny' as const,
    edit: (c: Record<string, unknown>) => {
      c.torch_dtype = 'float16';
    },
    rewrite: (dir: string) => rewriteCheckpoint(dir, 'F16'),
  },
  {
    name: 'mistral',
    preset: 'tiny' as const,
    edit: (c: Record<string, unknown>) => {
      c.architectures = ['MistralForCausalLM'];
      c.model_type = 'mistral';
      c.sliding_window = null;
    },
  },
];

describe.each(CASES)('$name', (c) => {
  const { name, opset } = c;
  let s: Awaited<ReturnType<typeof setup>>;
  beforeAll(async () => {
    s = await setup(name.replace(/\W+/g, '-'), c);
  });
  afterAll(async () => {
    await s.ort.release();
    s.model.dispose();
    s.files.release();
  });

  test('full forward: logits equal the native engine', async () => {
    const rows = [Array.from(randInts(9, 1, 0, s.V)), Array.from(randInts(9, 2, 0, s.V))];
    const want = nativeLogits(s.model, rows);
    const got = await s.ort.forward({ ids: rows });
    expectClose('logits', got.logits, want, { atol: 2e-5, rtol: 2e-5, shape: [2, 9, s.V] });
    expect(got.present.length).toBe(9);
    const k0 = got.present.tensors.get('present.0.key')!;
    expect(k0.dims).toEqual([2, s.files.config.numKvHeads, 9, s.files.config.headDim]);
    const ops = new Set(decodeModel(readFileSync(join(s.out, 'model.onnx'))).graph.node.map((n) => n.op_type));
    expect([ops.has('RMSNormalization'), ops.has('ReduceMean')]).toEqual(opset === 23 ? [true, false] : [false, true]);
  });

  test('prefill then decode steps through the KV cache equal a full forward', async () => {
    const seq = Array.from(randInts(12, 3, 0, s.V));
    const full = nativeLogits(s.model, [seq]);
    let out = await s.ort.forward({ ids: [seq.slice(0, 5)] });
    expectClose('prefill', out.logits, full.subarray(0, 5 * s.V), { atol: 2e-5, rtol: 2e-5 });
    for (let t = 5; t < seq.length; t++) {
      out = await s.ort.forward({ ids: [[seq[t]]], past: out.present });
      expectClose(`decode step ${t}`, out.logits, full.subarray(t * s.V, (t + 1) * s.V), { atol: 2e-5, rtol: 2e-5 });
    }
    // two tokens at once on top of a cache too
    const a = await s.ort.forward({ ids: [seq.slice(0, 7)] });
    const b = await s.ort.forward({ ids: [seq.slice(7, 9)], past: a.present });
    expectClose('chunk of 2 after 7', b.logits, full.subarray(7 * s.V, 9 * s.V), { atol: 2e-5, rtol: 2e-5 });
  });

  test('batch of two with left padding: each row equals its unpadded forward', async () => {
    const long = Array.from(randInts(8, 4, 0, s.V));
    const short = Array.from(randInts(5, 5, 0, s.V));
    const pad = long.length - short.length;
    const rows = [long, [...new Array<number>(pad).fill(0), ...short]];
    const mask = [long.map(() => 1), rows[1].map((_, i) => (i < pad ? 0 : 1))];
    const pos = [long.map((_, i) => i), rows[1].map((_, i) => Math.max(0, i - pad))];
    let out = await s.ort.forward({ ids: rows, attentionMask: mask, positionIds: pos });
    const V = s.V;
    const wantLong = nativeLogits(s.model, [long]);
    const wantShort = nativeLogits(s.model, [short]);
    expectClose('long row', out.logits.subarray(0, 8 * V), wantLong, { atol: 2e-5, rtol: 2e-5 });
    expectClose('short row (after its padding)', out.logits.subarray((8 + pad) * V, 16 * V), wantShort, { atol: 2e-5, rtol: 2e-5 });
    for (const v of out.logits) expect(Number.isFinite(v)).toBe(true); // rows of padding only stay finite
    // one decode step for both rows through the padded cache
    const next = [3, 7];
    out = await s.ort.forward({ ids: next.map((t) => [t]), attentionMask: mask.map((m) => [...m, 1]), positionIds: [[8], [5]], past: out.present });
    expectClose('long + 1', out.logits.subarray(0, V), nativeLogits(s.model, [[...long, 3]]).subarray(8 * V), { atol: 2e-5, rtol: 2e-5 });
    expectClose('short + 1', out.logits.subarray(V, 2 * V), nativeLogits(s.model, [[...short, 7]]).subarray(5 * V), { atol: 2e-5, rtol: 2e-5 });
  });

  test('greedy generation with onnxruntime equals the native engine token for token', async () => {
    const prompts = [Array.from(randInts(6, 6, 0, s.V)), Array.from(randInts(3, 7, 0, s.V))];
    const cfg = { maxNewTokens: 12, stopTokenIds: [] };
    const want = await s.model.generate(prompts, cfg);
    const got = await s.ort.generate(prompts, cfg);
    expect(got.tokens).toEqual(want.tokens);
    expect(got.tokens[0]).toHaveLength(12);
    // sampling: same seed, same tokens (same logits into the same sampler)
    const sample = { maxNewTokens: 8, doSample: true, temperature: 0.8, topK: 20, seed: 9 };
    expect((await s.ort.generate(prompts, sample)).tokens).toEqual((await s.model.generate(prompts, sample)).tokens);
  });
});

describe('a LoRA adapter merged before export', () => {
  test.each([false, true])('PEFT adapter directory (use_rslora %s): ONNX logits equal the native model with the adapter applied', async (rslora) => {
    const gen = await generateTinyModel(join(root, `lora-${rslora}`), 'tiny-qwen2', 4);
    const files = loadModelFiles(gen.dir);
    const model = LlamaModel.fromFiles(files);
    model.addLora({ r: 4, lora_alpha: 8, use_rslora: rslora, target_modules: ['q_proj', 'v_proj', 'o_proj', 'down_proj'], seed: 2 });
    // lora_B starts at zero (PEFT's init): give every tensor random values so the merge matters
    const state = model.adapterState();
    let seed = 100;
    for (const v of Object.values(state)) v.data = Float32Array.from(uniform(v.data.length, ++seed, -0.2, 0.2));
    model.loadAdapterState(state);
    const adapterDir = join(root, `adapter-${rslora}`);
    mkdirSync(adapterDir, { recursive: true });
    writeFileSync(join(adapterDir, 'adapter_config.json'), JSON.stringify({ peft_type: 'LORA', task_type: 'CAUSAL_LM', r: 4, lora_alpha: 8, use_rslora: rslora, target_modules: ['q_proj', 'v_proj', 'o_proj', 'down_proj'] }));
    await writeSafetensors(join(adapterDir, 'adapter_model.safetensors'), Object.fromEntries(Object.entries(state).map(([k, v]) => [k, { dtype: 'F32' as const, shape: v.shape, data: v.data }])));

    const out = join(root, `lora-${rslora}-onnx`);
    const m = await exportOnnx(gen.dir, out, { adapter: adapterDir });
    expect(m.source.adapter).toBe(adapterDir);
    expect(m.lora).toEqual({ r: 4, loraAlpha: 8, useRslora: rslora, targetModules: ['q_proj', 'v_proj', 'o_proj', 'down_proj'], layersToTransform: null });
    const ort = await OnnxCausalLM.load(out);
    const rows = [Array.from(randInts(8, 11, 0, 512))];
    const want = nativeLogits(model, rows);
    const got = (await ort.forward({ ids: rows })).logits;
    expectClose('merged logits', got, want, { atol: 2e-5, rtol: 2e-5 });
    // and the adapter changed them: the base export differs
    const base = join(root, `lora-${rslora}-base`);
    await exportOnnx(gen.dir, base);
    const baseOrt = await OnnxCausalLM.load(base);
    const plain = (await baseOrt.forward({ ids: rows })).logits;
    expect(Math.max(...got.map((v, i) => Math.abs(v - plain[i])))).toBeGreaterThan(1e-3);
    await ort.release();
    await baseOrt.release();
    model.dispose();
    files.release();
  });

  test('an adapter for another model is refused, naming the tensor', async () => {
    const gen = await generateTinyModel(join(root, 'lora-bad'), 'tiny', 4);
    const adapterDir = join(root, 'adapter-bad');
    mkdirSync(adapterDir, { recursive: true });
    writeFileSync(join(adapterDir, 'adapter_config.json'), JSON.stringify({ peft_type: 'LORA', r: 2, lora_alpha: 4 }));
    await writeSafetensors(join(adapterDir, 'adapter_model.safetensors'), {
      'base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight': { dtype: 'F32', shape: [2, 48], data: new Float32Array(96) },
      'base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight': { dtype: 'F32', shape: [64, 2], data: new Float32Array(128) },
    });
    await expect(exportOnnx(gen.dir, join(root, 'lora-bad-out'), { adapter: adapterDir })).rejects.toThrow(/tensor 'base_model\.model\.model\.layers\.0\.self_attn\.q_proj\.lora_A\.weight': shape \[2, 48\] does not match \[2, 64\]/);
  });
});

describe('the export files', () => {
  test('manifest: format, precision, opset, sizes and sha256; the graph read back names the optimum inputs/outputs', async () => {
    const gen = await generateTinyModel(join(root, 'files'), 'tiny-qwen2', 8);
    const out = join(root, 'files-onnx');
    const m = await exportOnnx(gen.dir, out, { run: join(root, 'some-run') });
    expect(m.source).toEqual({ run: join(root, 'some-run'), adapter: null });
    expect(m.lora).toBeNull();
    expect([m.format, m.export, m.precision, m.details.opset, m.details.irVersion]).toEqual(['starweave-export/1', 'onnx', 'f32', 17, 8]);
    expect(m.baseModel).toMatchObject({ architecture: 'Qwen2ForCausalLM', dtype: 'bf16' });
    expect(m.details.producer).toBe(`starweave-finetune ${(JSON.parse(readFileSync('package.json', 'utf8')) as { version: string }).version}`);
    expect(m.totalBytes).toBe(m.files.reduce((n, f) => n + f.bytes, 0));
    expect(Object.fromEntries(m.files.map((f) => [f.path, f.role]))).toMatchObject({ 'model.onnx': 'graph and weights', 'config.json': 'config', 'tokenizer.json': 'tokenizer' });
    const onnx = m.files.find((f) => f.path === 'model.onnx')!;
    const bytes = readFileSync(join(out, 'model.onnx'));
    expect(onnx.bytes).toBe(bytes.length);
    expect(onnx.sha256).toBe(createHash('sha256').update(bytes).digest('hex'));
    expect(m.files.map((f) => f.path)).toEqual(expect.arrayContaining(['config.json', 'tokenizer.json', 'tokenizer_config.json']));
    expect(readExportManifest(out)).toEqual(m); // the shared manifest reader of every export
    // f32 weights: at least 4 bytes per parameter in the file
    expect(onnx.bytes).toBeGreaterThan(m.baseModel.parameters * 4);

    const proto = decodeModel(bytes);
    expect(proto.opset_import).toEqual([{ domain: '', version: 17 }]);
    const g = proto.graph;
    expect(g.input.map((i) => i.name)).toEqual(m.details.inputs.map((i) => i.name));
    expect(g.output.map((o) => o.name)).toEqual(m.details.outputs.map((o) => o.name));
    expect(g.input.map((i) => i.name).slice(0, 5)).toEqual(['input_ids', 'attention_mask', 'position_ids', 'past_key_values.0.key', 'past_key_values.0.value']);
    const dims = (v: (typeof g.input)[number]) => v.type.tensor_type.shape.dim.map((d) => d.dim_param ?? d.dim_value);
    expect(dims(g.input[3])).toEqual(['batch_size', 2, 'past_sequence_length', 16]);
    expect(dims(g.output.find((o) => o.name === 'logits')!)).toEqual(['batch_size', 'sequence_length', 512]);
    expect(dims(g.output.find((o) => o.name === 'present.1.value')!)).toEqual(['batch_size', 2, 'total_sequence_length', 16]);
    // only standard ONNX ops in the default domain
    const ops = new Set(g.node.map((n) => n.op_type));
    expect(g.node.every((n) => !n.domain)).toBe(true);
    expect([...ops].sort()).toEqual(
      ['Add', 'And', 'Cast', 'Concat', 'Cos', 'Div', 'Gather', 'Identity', 'LessOrEqual', 'MatMul', 'Mul', 'Neg', 'Pow', 'Range', 'ReduceMean', 'Reshape', 'Shape', 'Sigmoid', 'Sin', 'Slice', 'Softmax', 'Sqrt', 'Sub', 'Transpose', 'Unsqueeze', 'Where'].sort(),
    );
    // the bf16 weights were widened exactly: an initializer equals the checkpoint's values (transposed)
    const files = loadModelFiles(gen.dir);
    const wk = files.weights.get('model.layers.0.self_attn.k_proj.weight')!.toFloat32(); // [32, 64]
    const init = g.initializer.find((t) => t.name === 'model.layers.0.self_attn.k_proj.weight')!;
    expect(init.dims).toEqual([64, 32]);
    const raw = init.raw_data!;
    const got = new Float32Array(raw.buffer.slice(raw.byteOffset, raw.byteOffset + raw.byteLength));
    for (const [o, i] of [[0, 0], [5, 17], [31, 63]]) expect(got[i * 32 + o]).toBe(wk[o * 64 + i]);
    files.release();
  });

  test('external data: weights in model.onnx.data give the same logits', async () => {
    const gen = await generateTinyModel(join(root, 'ext'), 'tiny', 9);
    const inline = join(root, 'ext-inline');
    const external = join(root, 'ext-external');
    await exportOnnx(gen.dir, inline);
    const m = await exportOnnx(gen.dir, external, { externalData: true });
    const sizes = Object.fromEntries(m.files.map((f) => [f.path, f.bytes]));
    expect(sizes['model.onnx.data']).toBeGreaterThan(m.baseModel.parameters * 4 * 0.99); // norm weights stay inline
    expect(sizes['model.onnx']).toBeLessThan(m.baseModel.parameters * 4 * 0.1); // the graph and the norm weights
    const proto = decodeModel(readFileSync(join(external, 'model.onnx')));
    const emb = proto.graph.initializer.find((t) => t.name === 'model.embed_tokens.weight')!;
    expect(emb.data_location).toBe(1);
    expect(Object.fromEntries(emb.external_data!.map((e) => [e.key, e.value])).location).toBe('model.onnx.data');
    const a = await OnnxCausalLM.load(inline);
    const b = await OnnxCausalLM.load(external);
    const ids = [Array.from(randInts(7, 10, 0, 512))];
    expect((await b.forward({ ids })).logits).toEqual((await a.forward({ ids })).logits);
    await a.release();
    await b.release();
  });

  test('an int8 export registers as kind onnx with its accuracy as metrics, and the registered copy runs', async () => {
    const gen = await generateTinyModel(join(root, 'reg'), 'tiny', 6);
    const out = join(root, 'reg-onnx');
    const m = await exportOnnx(gen.dir, out, { precision: 'int8' });
    const reg = new Registry(join(root, 'registry'));
    const a = m.details.accuracy!;
    const r = await reg.register({ source: out, base: gen.dir, metrics: { int8_top1_agreement: a.top1Agreement, int8_max_abs_logit_delta: a.maxAbsLogitDelta } });
    expect(r.version.kind).toBe('onnx');
    expect(r.version.files.map((f) => f.path)).toEqual(expect.arrayContaining(['model.onnx', 'export.json']));
    expect(r.version.files.find((f) => f.path === 'model.onnx')!.sha256).toBe(m.files.find((f) => f.path === 'model.onnx')!.sha256);
    expect(r.version.lineage.metrics.int8_top1_agreement).toBe(a.top1Agreement);
    const copy = await OnnxCausalLM.load(reg.versionDir(r.version.id));
    const orig = await OnnxCausalLM.load(out);
    const ids = [[5, 6, 7, 8]];
    expect((await copy.forward({ ids })).logits).toEqual((await orig.forward({ ids })).logits);
    await copy.release();
    await orig.release();
  });

  test("onnxruntime's optimizer fuses the RMSNorm, SiLU and int8 patterns (the graph is laid out as it expects)", async () => {
    const gen = await generateTinyModel(join(root, 'fuse'), 'tiny', 2);
    const counts = async (precision: 'f32' | 'int8') => {
      const out = join(root, `fuse-${precision}`);
      await exportOnnx(gen.dir, out, { precision, skipAccuracy: true });
      const optimized = join(out, 'optimized.onnx');
      const Ort = await loadOrt();
      const session = await Ort.InferenceSession.create(join(out, 'model.onnx'), { graphOptimizationLevel: 'all', optimizedModelFilePath: optimized, logSeverityLevel: 3 });
      await session.release();
      const n = new Map<string, number>();
      for (const node of decodeModel(readFileSync(optimized)).graph.node) n.set(node.op_type, (n.get(node.op_type) ?? 0) + 1);
      return n;
    };
    const f32 = await counts('f32');
    expect(f32.get('SimplifiedLayerNormalization')).toBe(2 * 2 + 1);
    expect(f32.get('ReduceMean')).toBeUndefined();
    expect(f32.get('QuickGelu')).toBe(2); // x * sigmoid(x)
    const int8 = await counts('int8');
    expect((int8.get('DynamicQuantizeMatMul') ?? 0) + (int8.get('MatMulIntegerToFloat') ?? 0)).toBe(2 * 7 + 1);
    expect(int8.get('MatMulInteger')).toBeUndefined();
  });

  test('rotary inverse frequencies equal the reference (default, llama3, linear)', () => {
    const base = { headDim: 64, ropeTheta: 500000 };
    expect(Array.from(ropeInvFreq({ ...base, ropeScaling: { type: 'none' } }))).toEqual(Array.from(ropeInvFreqRef({ headDim: 64, theta: 500000 })));
    const llama3 = { factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositionEmbeddings: 8192 };
    expect(Array.from(ropeInvFreq({ ...base, ropeScaling: { type: 'llama3', ...llama3 } }))).toEqual(Array.from(ropeInvFreqRef({ headDim: 64, theta: 500000, llama3 })));
    expect(Array.from(ropeInvFreq({ ...base, ropeScaling: { type: 'linear', factor: 4 } }))).toEqual(Array.from(ropeInvFreqRef({ headDim: 64, theta: 500000, linearFactor: 4 })));
  });

  test('bad input to the runtime: a directory without an export, ids outside the vocabulary, ragged rows, a mask of the wrong length', async () => {
    await expect(OnnxCausalLM.load(join(root, 'nothing'))).rejects.toThrow(/nothing\/model\.onnx: no such ONNX model/);
    const gen = await generateTinyModel(join(root, 'rt-bad'), 'tiny', 1);
    const out = join(root, 'rt-bad-onnx');
    await exportOnnx(gen.dir, out);
    const ort = await OnnxCausalLM.load(out);
    await expect(ort.forward({ ids: [[1, 512]] })).rejects.toThrow('ids[0][1] = 512 is outside the vocabulary [0, 512)');
    await expect(ort.forward({ ids: [[1, 2], [3]] })).rejects.toThrow(/row 1 has 1 values, row 0 has 2/);
    const a = await ort.forward({ ids: [[1, 2]] });
    await expect(ort.forward({ ids: [[3]], past: a.present, attentionMask: [[1, 1]] })).rejects.toThrow(/attention_mask row 0 has 2 values; past 2 \+ sequence 1 = 3 expected/);
    await expect(ort.forward({ ids: [[3], [4]], past: a.present })).rejects.toThrow(/the cache holds 1 sequences, the input 2/);
    await ort.release();
    rmSync(join(out, 'export.json'));
    await expect(OnnxCausalLM.load(out)).rejects.toThrow(/export\.json: missing/);
  });

  test('bad input: a missing model directory and an unknown precision are named', async () => {
    await expect(exportOnnx(join(root, 'nope'), join(root, 'nope-out'))).rejects.toThrow(/nope: not a directory/);
    const gen = await generateTinyModel(join(root, 'bad'), 'tiny', 1);
    await expect(exportOnnx(gen.dir, join(root, 'bad-out'), { precision: 'fp8' as never })).rejects.toThrow(/precision 'fp8' is not supported \(f32 or int8\)/);
  });
});
