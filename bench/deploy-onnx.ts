// node dist/bench/deploy-onnx.js [--preset smollm2-135m] [--prompt 64] [--new 32] [--threads N] [--repeats 3] [--int8] [--bf16] [--fresh] [--json]
// The onnxruntime half of the deploy benchmark: generation on the ONNX export (onnxruntime-node, CPU)
// beside our native engine on the same model (random weights in the preset's shape, written as f32 so
// both read the same precision), the same prompt, greedy, batch 1, through the same generate() loop
// (src/model/generate.ts), so the two differ only in the engine under the prefill and decode steps.
// Decode is bound by memory bandwidth: each row also reports the bytes of weights a decode step reads
// (every linear weight and the lm_head; the embedding contributes one row) and the GB/s that implies.
// With --int8 it adds onnxruntime on the int8 export (the same weights, quantized), and with --bf16 our
// engine on the same weights rounded to bf16 (its native storage: half the bytes per token) against
// onnxruntime f32.
import { existsSync, mkdirSync, readFileSync, statSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { nativeInfo, setNumThreads } from '../bindings/index.js';
import { loadModelFiles } from '../src/model/files.js';
import { LlamaModel } from '../src/model/native-model.js';
import { generateTinyModel } from '../src/model/tiny.js';
import type { TinyPresetName } from '../src/model/tiny.js';
import type { ModelConfig } from '../src/model/config.js';
import type { GenerateHooks, GenerationConfig, GenerationResult } from '../src/model/generate.js';
import { exportOnnx } from '../src/deploy/onnx/export.js';
import { OnnxCausalLM } from '../src/deploy/onnx/runtime.js';
import type { OnnxPrecision } from '../src/deploy/onnx/index.js';
import { print, row, type BenchRow } from './lib/report.js';
import { flag, presetFlag } from './lib/args.js';

export interface DecodeTiming {
  prefillTokensPerSec: number;
  decodeTokensPerSec: number;
  tokens: number[];
}

interface Generator {
  generate(prompts: readonly (readonly number[])[], config: GenerationConfig, hooks: GenerateHooks): Promise<GenerationResult>;
}

/** Prefill and decode rates of one greedy generation (after a short warm-up run when asked). */
export async function timeGeneration(g: Generator, prompt: number[], newTokens: number, warmup = true): Promise<DecodeTiming> {
  if (warmup) await g.generate([prompt], { maxNewTokens: 4 }, {});
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

function exporterMtime(): number {
  const dir = dirname(fileURLToPath(import.meta.url));
  const graph = join(dir, '..', 'src', 'deploy', 'onnx', 'decoder-graph.js');
  return existsSync(graph) ? statSync(graph).mtimeMs : Infinity;
}

/** The model directory (f32 weights) and its ONNX exports, cached under the OS temp directory. */
export async function prepare(preset: TinyPresetName, precisions: OnnxPrecision[]): Promise<{ modelDir: string; bf16Dir: string; onnx: Record<string, string> }> {
  const root = join(tmpdir(), 'starweave-bench-deploy');
  const base = join(root, `${preset}-f32`);
  const modelDir = join(base, 'model');
  const bf16Dir = join(root, `${preset}-bf16`, 'model');
  if (!existsSync(join(modelDir, 'model.safetensors'))) await generateTinyModel(modelDir, preset, 1, { dtype: 'f32' });
  const onnx: Record<string, string> = {};
  for (const p of precisions) {
    const out = join(base, `onnx-${p}`);
    const manifest = join(out, 'export.json');
    const m = existsSync(manifest) ? (JSON.parse(readFileSync(manifest, 'utf8')) as { export?: string; precision?: string }) : null;
    // re-export when the exporter changed since (or with --fresh)
    const fresh = m?.export === 'onnx' && m.precision === p && !process.argv.includes('--fresh') && statSync(manifest).mtimeMs > exporterMtime();
    if (!fresh) {
      mkdirSync(out, { recursive: true });
      await exportOnnx(modelDir, out, { precision: p, skipAccuracy: true });
    }
    onnx[p] = out;
  }
  return { modelDir, bf16Dir, onnx };
}

async function main(): Promise<void> {
  const json = process.argv.includes('--json');
  const arg = flag;
  const preset = presetFlag();
  const P = Number(arg('--prompt', '64'));
  const N = Number(arg('--new', '32'));
  const precisions: OnnxPrecision[] = process.argv.includes('--int8') ? ['f32', 'int8'] : ['f32'];
  // --threads sets both engines' thread count (default: ours); on a busy machine 1 thread compares best
  const threads = Number(arg('--threads', String(nativeInfo().threads)));
  setNumThreads(threads);

  const repeats = Number(arg('--repeats', '3'));
  const { modelDir, bf16Dir, onnx } = await prepare(preset, precisions);
  if (process.argv.includes('--bf16') && !existsSync(join(bf16Dir, 'model.safetensors'))) {
    // the same seed and preset: the same weights, rounded to bf16 as the generator writes them
    await generateTinyModel(bf16Dir, preset, 1, { dtype: 'bf16' });
  }
  const files = loadModelFiles(modelDir);
  const c = files.config;
  const prompt = Array.from({ length: P }, (_, i) => (i * 7919 + 13) % c.vocabSize);

  // every engine loaded at once and the runs interleaved, best of `repeats`: a busy machine's drift hits all alike
  const engines: { key: string; gen: Generator; close: () => Promise<void> | void }[] = [];
  const model = LlamaModel.fromFiles(files);
  engines.push({ key: 'ours', gen: model, close: () => model.dispose() });
  if (process.argv.includes('--bf16')) {
    const fb = loadModelFiles(bf16Dir);
    const mb = LlamaModel.fromFiles(fb);
    engines.push({ key: 'ours-bf16', gen: mb, close: () => (mb.dispose(), fb.release()) });
  }
  for (const p of precisions) {
    const ort = await OnnxCausalLM.load(onnx[p], { threads });
    engines.push({ key: `ort-${p}`, gen: ort, close: () => ort.release() });
  }
  const best = new Map<string, DecodeTiming>();
  for (let r = 0; r < repeats; r++) {
    for (const e of engines) {
      const t = await timeGeneration(e.gen, prompt, N, r === 0);
      const b = best.get(e.key);
      best.set(e.key, {
        prefillTokensPerSec: Math.max(b?.prefillTokensPerSec ?? 0, t.prefillTokensPerSec),
        decodeTokensPerSec: Math.max(b?.decodeTokensPerSec ?? 0, t.decodeTokensPerSec),
        tokens: t.tokens,
      });
    }
  }
  for (const e of engines) await e.close();
  files.release();

  const rows: BenchRow[] = [];
  const bytesF32 = weightBytesPerToken(c, 4);
  const ours = best.get('ours')!;
  const oursBf16 = best.get('ours-bf16');
  const label = `${preset} batch 1 prompt ${P} new ${N}`;
  for (const p of precisions) {
    const peer = best.get(`ort-${p}`)!;
    const name = `onnxruntime-node ${p} (cpu, ${threads} threads)`;
    if (p === 'f32') {
      // same weights, same precision, greedy: the tokens must agree (up to a near-tie late in the run)
      const differ = peer.tokens.findIndex((t, i) => t !== ours.tokens[i]);
      if (differ >= 0 && differ < N / 2) console.error(`warning: greedy tokens diverge at step ${differ} (ours vs onnxruntime)`);
      rows.push(row(`decode ${label} f32`, 'tokens/s', ours.decodeTokensPerSec, peer.decodeTokensPerSec, name));
      rows.push(row(`decode weight bandwidth (${(bytesF32 / 1e6).toFixed(0)} MB/token) f32`, 'GB/s', (ours.decodeTokensPerSec * bytesF32) / 1e9, (peer.decodeTokensPerSec * bytesF32) / 1e9, name));
      rows.push(row(`prefill ${label} f32`, 'tokens/s', ours.prefillTokensPerSec, peer.prefillTokensPerSec, name));
      if (oursBf16) {
        const bytesBf16 = weightBytesPerToken(c, 2);
        rows.push(row(`decode ${label} ours bf16 (onnx f32)`, 'tokens/s', oursBf16.decodeTokensPerSec, peer.decodeTokensPerSec, name));
        rows.push(row(`decode weight bandwidth ours bf16 (${(bytesBf16 / 1e6).toFixed(0)} MB/token)`, 'GB/s', (oursBf16.decodeTokensPerSec * bytesBf16) / 1e9, (peer.decodeTokensPerSec * bytesF32) / 1e9, name));
      }
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
