/**
 * @jest-environment ./test/deploy/ort-environment.cjs
 */
// The int8 ONNX export (quantize_dynamic's scheme: int8 weights with a scale per output channel,
// activations through DynamicQuantizeLinear + MatMulInteger): the quantizer against a direct computation,
// the graph's ops and initializer types read back, the file size, and the accuracy cost measured by
// onnxruntime against the f32 export and against the native engine, written into export.json.
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setBf16Dot, Tensor } from '../../bindings/index.js';
import { loadModelFiles } from '../../src/model/files.js';
import { generateTinyModel } from '../../src/model/tiny.js';
import { LlamaModel } from '../../src/model/native-model.js';
import { exportOnnx } from '../../src/deploy/onnx/export.js';
import { OnnxCausalLM } from '../../src/deploy/onnx/runtime.js';
import { decodeModel, DataType } from '../../src/deploy/onnx/proto.js';
import { quantizeInt8PerChannel } from '../../src/deploy/onnx/quantize.js';
import { randInts, uniform } from '../helpers/numeric.js';
import { read, restoreDefaults } from '../helpers/tensors.js';

let root: string;
beforeAll(() => {
  root = mkdtempSync(join(tmpdir(), 'sw-onnx-int8-'));
  setBf16Dot(false);
});
afterAll(() => {
  rmSync(root, { recursive: true, force: true });
  restoreDefaults();
});

describe('quantizeInt8PerChannel', () => {
  test('symmetric per column: scale = max|w| / 127, round half to even, error at most scale / 2', () => {
    const rows = 5;
    const cols = 3;
    // column 0 holds exact multiples and ties of its scale (max 63.5 -> scale 0.5, all exact in f32)
    const w = new Float32Array(rows * cols);
    const col0 = [63.5, -1.25, 0.75, 25, -63.5];
    col0.forEach((v, r) => (w[r * cols] = v));
    const rnd = uniform(rows * cols, 3, -2, 2);
    for (let r = 0; r < rows; r++) for (let c = 1; c < cols; c++) w[r * cols + c] = rnd[r * cols + c];
    w[2 * cols + 2] = 0;
    const q = quantizeInt8PerChannel(w, rows, cols);
    for (let c = 0; c < cols; c++) {
      let mx = 0;
      for (let r = 0; r < rows; r++) mx = Math.max(mx, Math.abs(w[r * cols + c]));
      expect(q.scales[c]).toBe(Math.fround(Math.fround(mx) / 127));
      for (let r = 0; r < rows; r++) {
        const v = q.values[r * cols + c];
        expect(Math.abs(v)).toBeLessThanOrEqual(127);
        expect(Math.abs(v * q.scales[c] - w[r * cols + c])).toBeLessThanOrEqual(q.scales[c] / 2 + 1e-7);
      }
    }
    expect(Array.from({ length: rows }, (_, r) => q.values[r * cols])).toEqual([127, -2, 2, 50, -127]); // -2.5 -> -2, 1.5 -> 2
    const zeros = quantizeInt8PerChannel(new Float32Array(4), 2, 2);
    expect(Array.from(zeros.scales)).toEqual([1, 1]);
    expect(Array.from(zeros.values)).toEqual([0, 0, 0, 0]);
  });
});

describe.each(['tiny', 'tiny-qwen2'] as const)('int8 export of %s', (preset) => {
  let dir: string;
  let f32Out: string;
  let int8Out: string;
  beforeAll(async () => {
    dir = (await generateTinyModel(join(root, preset), preset, 12)).dir;
    f32Out = join(root, `${preset}-f32`);
    int8Out = join(root, `${preset}-int8`);
    await exportOnnx(dir, f32Out);
    await exportOnnx(dir, int8Out, { precision: 'int8' });
  });

  test('graph: every projection and the lm_head are MatMulInteger on int8 weights with per-channel scales', () => {
    const m = JSON.parse(readFileSync(join(int8Out, 'export.json'), 'utf8'));
    expect(m.precision).toBe('int8');
    const g = decodeModel(readFileSync(join(int8Out, 'model.onnx'))).graph;
    const count = (op: string) => g.node.filter((n) => n.op_type === op).length;
    const linears = 2 * 7 + 1; // 2 layers x 7 projections + lm_head
    expect(count('MatMulInteger')).toBe(linears);
    expect(count('DynamicQuantizeLinear')).toBe(linears);
    const int8 = g.initializer.filter((t) => t.data_type === DataType.INT8);
    expect(int8).toHaveLength(linears);
    const q = g.initializer.find((t) => t.name === 'model.layers.1.mlp.down_proj.weight_quantized')!;
    expect(q.dims).toEqual([128, 64]);
    expect(g.initializer.find((t) => t.name === 'model.layers.1.mlp.down_proj.weight_scale')!.dims).toEqual([64]);
    // no f32 projection weight is left: the only f32 matrix is the embedding (Gather)
    const f32Matrices = g.initializer.filter((t) => t.data_type === DataType.FLOAT && t.dims.length === 2).map((t) => t.name);
    expect(f32Matrices).toEqual(['model.embed_tokens.weight']);
    // size: one byte per linear weight (lm_head included, tied or not); the f32 embedding stays
    const perLayer = 64 * 64 * 2 + 32 * 64 * 2 + 128 * 64 * 3;
    expect(int8.reduce((n, t) => n + t.raw_data!.byteLength, 0)).toBe(2 * perLayer + 512 * 64);
    const f32Bytes = readFileSync(join(f32Out, 'model.onnx')).length;
    const int8Bytes = readFileSync(join(int8Out, 'model.onnx')).length;
    expect(int8Bytes).toBeLessThan(f32Bytes * 0.75);
    expect(m.files.find((f: { path: string }) => f.path === 'model.onnx').bytes).toBe(int8Bytes);
  });

  test('accuracy cost in export.json, and close to the f32 graph and the native engine', async () => {
    const m = JSON.parse(readFileSync(join(int8Out, 'export.json'), 'utf8'));
    const a = m.details.accuracy;
    expect(a.reference).toBe('f32 ONNX export of the same weights');
    expect(a.tokens).toBe('held-out text');
    expect(a.positions).toBeGreaterThan(50);
    expect(a.maxAbsLogitDelta).toBeGreaterThan(0); // really quantized
    expect(a.maxAbsLogitDelta).toBeLessThan(0.1);
    expect(a.top1Agreement).toBeGreaterThanOrEqual(0.9); // random-init logits are nearly flat: close calls flip
    expect(Math.abs(a.perplexityRelDelta)).toBeLessThan(0.01);

    // independently: int8 logits vs the native engine's f32 logits on other tokens
    const files = loadModelFiles(dir);
    const model = LlamaModel.fromFiles(files);
    const ids = Array.from(randInts(16, 21, 0, 512));
    const t = Tensor.fromArray(Int32Array.from(ids), [1, 16], 'i32');
    const want = read(model.native.logits(t));
    t.release();
    const ort = await OnnxCausalLM.load(int8Out);
    const full = (await ort.forward({ ids: [ids] })).logits;
    let maxDiff = 0;
    for (let i = 0; i < want.length; i++) maxDiff = Math.max(maxDiff, Math.abs(full[i] - want[i]));
    expect(maxDiff).toBeGreaterThan(0);
    expect(maxDiff).toBeLessThan(0.1);
    // the KV cache path of the int8 graph: decode steps stay within the quantization noise of the full forward
    let out = await ort.forward({ ids: [ids.slice(0, 10)] });
    for (let s = 10; s < 16; s++) {
      out = await ort.forward({ ids: [[ids[s]]], past: out.present });
      for (let v = 0; v < 512; v++) expect(Math.abs(out.logits[v] - want[s * 512 + v])).toBeLessThan(0.1);
    }
    await ort.release();
    model.dispose();
    files.release();
  });
});

test('int8 with external data: the same logits as inline; the f32 reference goes through a scratch export that is removed', async () => {
  const dir = (await generateTinyModel(join(root, 'ext'), 'tiny-qwen2', 3)).dir;
  const inline = await exportOnnx(dir, join(root, 'ext-inline'), { precision: 'int8' });
  const ext = await exportOnnx(dir, join(root, 'ext-external'), { precision: 'int8', externalData: true });
  expect(ext.files.map((f) => f.path)).toContain('model.onnx.data');
  expect(readdirSync(join(root, 'ext-external')).filter((f) => f.startsWith('.'))).toEqual([]);
  expect({ ...ext.details.accuracy }).toEqual({ ...inline.details.accuracy });
  expect(ext.details.model.weightBytes).toBe(inline.details.model.weightBytes);
  const a = await OnnxCausalLM.load(join(root, 'ext-inline'));
  const b = await OnnxCausalLM.load(join(root, 'ext-external'));
  const ids = [[9, 8, 7, 6, 5]];
  expect((await b.forward({ ids })).logits).toEqual((await a.forward({ ids })).logits);
  await a.release();
  await b.release();
});

test('accuracy tokens can be given; skipAccuracy leaves it out', async () => {
  const dir = (await generateTinyModel(join(root, 'given'), 'tiny', 2)).dir;
  const m = await exportOnnx(dir, join(root, 'given-int8'), { precision: 'int8', accuracyTokens: [[1, 2, 3, 4, 5, 6]] });
  expect(m.details.accuracy).toMatchObject({ tokens: 'given', sequences: 1, positions: 6 });
  const s = await exportOnnx(dir, join(root, 'skip-int8'), { precision: 'int8', skipAccuracy: true });
  expect(s.details.accuracy).toBeUndefined();
});
