// node dist/bench/deploy-onnx.js [--preset smollm2-135m] [--prompt 64] [--new 32] [--int8] [--json]
// The onnxruntime half of the deploy benchmark: generation on the ONNX export (onnxruntime-node, CPU)
// beside our native engine on the same model (random weights in the preset's shape, written as f32 so
// both read the same precision), the same prompt, greedy, batch 1, through the same generate() loop
// (src/model/generate.ts), so the two differ only in the engine under the prefill and decode steps.
// Decode is bound by memory bandwidth: each row also reports the bytes of weights a decode step reads
// (every linear weight and the lm_head; the embedding contributes one row) and the GB/s that implies.
// With --int8 it adds onnxruntime on the int8 export (the same weights, quantized; no native peer).
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { nativeInfo } from '../bindings/index.js';
import { loadModelFiles } from '../src/model/files.js';
import { LlamaModel } from '../src/model/native-model.js';
import { generateTinyModel, TINY_PRESETS } from '../src/model/tiny.js';
import type { TinyPresetName } from '../src/model/tiny.js';
import type { ModelConfig } from '../src/model/config.js';
import type { GenerateHooks, GenerationConfig, GenerationResult } from '../src/model/generate.js';
import { exportOnnx } from '../src/deploy/onnx/export.js';
import { OnnxCausalLM } from '../src/deploy/onnx/runtime.js';
import type { OnnxPrecision } from '../src/deploy/onnx/index.js';
import { print, row, type BenchRow } from './lib/report.js';

export interface DecodeTiming {
  prefillTokensPerSec: number;
  decodeTokensPerSec: number;
  tokens: number[];
}

interface Generator {
  generate(prompts: readonly (readonly number[])[], config: GenerationConfig, hooks: GenerateHooks): Promise<GenerationResult>;
}

/** Prefill and decode rates of one greedy generation (after a short warm-up run). */
export async function timeGeneration(g: Generator, prompt: number[], newTokens: number): Promise<DecodeTiming> {
  await g.generate([prompt], { maxNewTokens: 4 }, {});
  let first = 0;
  let last = 0;
  const t0 = performance.now();
  const out = await g.generate([prompt], { maxNewTokens: newTokens }, {
    onToken: (e) => {
      const now = performance.now();
      if (e.step === 0) first = now;
      last = now;
    },
  });
  return {
    prefillTokensPerSec: prompt.length / ((first - t0) / 1000),
    decodeTokensPerSec: (newTokens - 1) / ((last - first) / 1000),
    tokens: out.tokens[0],
  };
}

/** Bytes of weights one decode step reads: every projection, the lm_head, one embedding row, the norms. */
export function weightBytesPerToken(c: ModelConfig, bytesPerWeight: number): number {
  const q = c.numHeads * c.headDim;
  const kv = c.numKvHeads * c.headDim;
  const perLayer = c.hiddenSize * (q + 2 * kv) + q * c.hiddenSize + 3 * c.hiddenSize * c.intermediateSize;
  return (c.numLayers * perLayer + c.vocabSize * c.hiddenSize) * bytesPerWeight + c.hiddenSize * 4 * (1 + 2 * c.numLayers + 1);
}

/** The model directory (f32 weights) and its ONNX exports, cached under the OS temp directory. */
export async function prepare(preset: TinyPresetName, precisions: OnnxPrecision[]): Promise<{ modelDir: string; onnx: Record<string, string> }> {
  const base = join(tmpdir(), 'starweave-bench-deploy', `${preset}-f32`);
  const modelDir = join(base, 'model');
  if (!existsSync(join(modelDir, 'model.safetensors'))) await generateTinyModel(modelDir, preset, 1, { dtype: 'f32' });
  const onnx: Record<string, string> = {};
  for (const p of precisions) {
    const out = join(base, `onnx-${p}`);
    const manifest = join(out, 'export.json');
    const fresh = existsSync(manifest) && (JSON.parse(readFileSync(manifest, 'utf8')) as { precision?: string }).precision === p;
    if (!fresh) {
      mkdirSync(out, { recursive: true });
      await exportOnnx(modelDir, out, { precision: p, skipAccuracy: true });
    }
    onnx[p] = out;
  }
  return { modelDir, onnx };
}

async function main(): Promise<void> {
  const json = process.argv.includes('--json');
  const arg = (name: string, fallback: string) => {
    const i = process.argv.indexOf(name);
    return i >= 0 ? process.argv[i + 1] : fallback;
  };
  const preset = arg('--preset', 'smollm2-135m') as TinyPresetName;
  if (!(preset in TINY_PRESETS)) throw new Error(`--preset ${preset}: unknown; presets: ${Object.keys(TINY_PRESETS).join(', ')}`);
  const P = Number(arg('--prompt', '64'));
  const N = Number(arg('--new', '32'));
  const precisions: OnnxPrecision[] = process.argv.includes('--int8') ? ['f32', 'int8'] : ['f32'];
  const threads = nativeInfo().threads;

  const { modelDir, onnx } = await prepare(preset, precisions);
  const files = loadModelFiles(modelDir);
  const c = files.config;
  const prompt = Array.from({ length: P }, (_, i) => (i * 7919 + 13) % c.vocabSize);
  const model = LlamaModel.fromFiles(files);
  const ours = await timeGeneration(model, prompt, N);
  model.dispose();
  files.release();

  const rows: BenchRow[] = [];
  const bytesF32 = weightBytesPerToken(c, 4);
  for (const p of precisions) {
    const ort = await OnnxCausalLM.load(onnx[p], { threads });
    const peer = await timeGeneration(ort, prompt, N);
    await ort.release();
    const name = `onnxruntime-node ${p} (cpu, ${threads} threads)`;
    const label = `${preset} batch 1 prompt ${P} new ${N}`;
    if (p === 'f32') {
      // same weights, same precision, greedy: the tokens must agree (up to a near-tie late in the run)
      const agree = peer.tokens.findIndex((t, i) => t !== ours.tokens[i]);
      if (agree >= 0 && agree < N / 2) console.error(`warning: greedy tokens diverge at step ${agree} (ours vs onnxruntime)`);
      rows.push(row(`decode ${label} f32`, 'tokens/s', ours.decodeTokensPerSec, peer.decodeTokensPerSec, name));
      rows.push(row(`decode weight bandwidth (${(bytesF32 / 1e6).toFixed(0)} MB/token) f32`, 'GB/s', (ours.decodeTokensPerSec * bytesF32) / 1e9, (peer.decodeTokensPerSec * bytesF32) / 1e9, name));
      rows.push(row(`prefill ${label} f32`, 'tokens/s', ours.prefillTokensPerSec, peer.prefillTokensPerSec, name));
    } else {
      const bytes = weightBytesPerToken(c, 1);
      rows.push(row(`decode ${label} int8 onnx (ours: f32)`, 'tokens/s', ours.decodeTokensPerSec, peer.decodeTokensPerSec, name));
      rows.push(row(`decode weight bandwidth int8 onnx (${(bytes / 1e6).toFixed(0)} MB/token)`, 'GB/s', (ours.decodeTokensPerSec * bytesF32) / 1e9, (peer.decodeTokensPerSec * bytes) / 1e9, name));
    }
  }
  print(rows, json);
}

if (process.argv[1] && /deploy-onnx\.(js|ts)$/.test(process.argv[1])) {
  main().catch((e) => {
    console.error(e);
    process.exit(1);
  });
}
