// node dist/bench/deploy-gguf.js [--preset smollm2-135m] [--dtype f32|bf16] [--prompt 64] [--new 32] [--threads N] [--rounds 3] [--json]
// The llama.cpp half of the deploy benchmark: generation on the GGUF export (node-llama-cpp 3.21.1,
// prebuilt CPU llama.cpp) beside our native engine on the same model (random weights in the preset's
// shape, in the same precision for both), the same prompt, greedy, batch 1, the same thread count;
// the engines alternate for --rounds rounds and each keeps its best rate.
// Decode is bound by memory bandwidth: the rows report the bytes of weights a decode step reads (as in
// bench/deploy-onnx.ts) and the GB/s each engine reaches. --threads sets both engines' thread count
// (default: ours); on a machine with fewer free cores than threads llama.cpp's spinning thread pool
// collapses (a 2-core machine shared by other work: 741 -> 3.5 tokens/s), so compare at a thread
// count the machine really has free.
import { existsSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { getLlama, LlamaLogLevel } from 'node-llama-cpp';
import type { Token } from 'node-llama-cpp';
import { nativeInfo, setNumThreads } from '../bindings/index.js';
import { loadModelFiles } from '../src/model/files.js';
import { LlamaModel } from '../src/model/native-model.js';
import { generateTinyModel } from '../src/model/tiny.js';
import type { TinyPresetName } from '../src/model/tiny.js';
import { writeGgufModel } from '../src/deploy/gguf.js';
import { timeGeneration, weightBytesPerToken } from './deploy-onnx.js';
import type { DecodeTiming } from './deploy-onnx.js';
import { print, row, type BenchRow } from './lib/report.js';
import { flag, presetFlag } from './lib/args.js';

/** The model directory in `dtype` and its GGUF export in the same precision, cached under the OS temp directory. */
async function prepare(preset: TinyPresetName, dtype: 'f32' | 'bf16'): Promise<{ modelDir: string; gguf: string }> {
  const base = join(tmpdir(), 'starweave-bench-deploy', `${preset}-${dtype}`);
  const modelDir = join(base, 'model');
  if (!existsSync(join(modelDir, 'model.safetensors'))) await generateTinyModel(modelDir, preset, 1, { dtype });
  const gguf = join(base, `model-${dtype}.gguf`);
  if (!existsSync(gguf)) {
    mkdirSync(base, { recursive: true });
    const files = loadModelFiles(modelDir);
    try {
      await writeGgufModel(gguf, files, null, { dtype });
    } finally {
      files.release();
    }
  }
  return { modelDir, gguf };
}

/** A llama.cpp context on the GGUF file; `time` runs one greedy generation with timeGeneration's protocol. */
async function openLlamaCpp(path: string, contextSize: number, batchSize: number, threads: number) {
  const llama = await getLlama({ gpu: false, build: 'never', logLevel: LlamaLogLevel.error });
  const model = await llama.loadModel({ modelPath: path });
  const ctx = await model.createContext({ contextSize, threads, batchSize });
  const run = async (prompt: number[], n: number): Promise<DecodeTiming> => {
    const seq = ctx.getSequence();
    const out: number[] = [];
    let first = 0;
    let last = 0;
    const t0 = performance.now();
    for await (const t of seq.evaluate(prompt as Token[], { temperature: 0 })) {
      const now = performance.now();
      if (!out.length) first = now;
      last = now;
      out.push(t);
      if (out.length >= n) break;
    }
    seq.dispose();
    return { prefillTokensPerSec: prompt.length / ((first - t0) / 1000), decodeTokensPerSec: (out.length - 1) / ((last - first) / 1000), tokens: out };
  };
  return {
    async time(prompt: number[], n: number): Promise<DecodeTiming> {
      await run(prompt, 4);
      return run(prompt, n);
    },
    async close() {
      await ctx.dispose();
      await model.dispose();
      await llama.dispose();
    },
  };
}

/** The best of each rate over the rounds (shared machines: other work only ever slows a run down). */
function best(a: DecodeTiming | null, b: DecodeTiming): DecodeTiming {
  if (!a) return b;
  return { prefillTokensPerSec: Math.max(a.prefillTokensPerSec, b.prefillTokensPerSec), decodeTokensPerSec: Math.max(a.decodeTokensPerSec, b.decodeTokensPerSec), tokens: a.tokens };
}

async function main(): Promise<void> {
  const json = process.argv.includes('--json');
  const arg = flag;
  const preset = presetFlag();
  const dtype = arg('--dtype', 'f32') as 'f32' | 'bf16';
  if (dtype !== 'f32' && dtype !== 'bf16') throw new Error(`--dtype ${dtype}: f32 or bf16`);
  const P = Number(arg('--prompt', '64'));
  const N = Number(arg('--new', '32'));
  const threads = Number(arg('--threads', String(nativeInfo().threads)));
  setNumThreads(threads);

  const { modelDir, gguf } = await prepare(preset, dtype);
  const files = loadModelFiles(modelDir);
  const c = files.config;
  const prompt = Array.from({ length: P }, (_, i) => (i * 7919 + 13) % Math.min(c.vocabSize, 500));
  const rounds = Number(arg('--rounds', '3'));
  const model = LlamaModel.fromFiles(files);
  const cpp = await openLlamaCpp(gguf, P + N + 8, P, threads);
  let ours: DecodeTiming | null = null;
  let peer: DecodeTiming | null = null;
  try {
    // alternate the engines so that a busy moment of the machine hits both
    for (let r = 0; r < rounds; r++) {
      ours = best(ours, await timeGeneration(model, prompt, N));
      peer = best(peer, await cpp.time(prompt, N));
    }
  } finally {
    await cpp.close();
    model.dispose();
    files.release();
  }
  if (!ours || !peer) throw new Error('--rounds must be at least 1');

  const agree = peer.tokens.findIndex((t, i) => t !== ours.tokens[i]);
  if (agree >= 0 && agree < N / 2) console.error(`warning: greedy tokens diverge at step ${agree} (ours vs llama.cpp)`);
  const name = `llama.cpp ${dtype} via node-llama-cpp (cpu, ${threads} threads)`;
  const label = `${preset} batch 1 prompt ${P} new ${N} ${dtype}`;
  const bytes = weightBytesPerToken(c, dtype === 'f32' ? 4 : 2);
  const rows: BenchRow[] = [
    row(`decode ${label}`, 'tokens/s', ours.decodeTokensPerSec, peer.decodeTokensPerSec, name),
    row(`decode weight bandwidth (${(bytes / 1e6).toFixed(0)} MB/token) ${dtype}`, 'GB/s', (ours.decodeTokensPerSec * bytes) / 1e9, (peer.decodeTokensPerSec * bytes) / 1e9, name),
    row(`prefill ${label}`, 'tokens/s', ours.prefillTokensPerSec, peer.prefillTokensPerSec, name),
  ];
  print(rows, json);
}

if (process.argv[1] && /deploy-gguf\.(js|ts)$/.test(process.argv[1])) {
  main().catch((e) => {
    console.error(e);
    process.exit(1);
  });
}
