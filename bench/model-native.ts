// One measurement per process (so that peak RSS is its own); bench/model.ts (`npm run bench:model`) runs
// the cases and the peer and prints the table.
// node dist/bench/model-native.js [--checkpointing] [--attention bf16|f32] [--steps N] [--seq T] [--batch B] [--peer] | --generate [--prompt P] [--new N]
// Training throughput of the native model on a SmolLM2-135M-shaped model with random bf16 weights
// (memory-mapped from a scratch file, as real checkpoints are): LoRA r=16 on all seven projections,
// micro-batch 4 × seq 512 by default. Prints tokens/s of a full step (forward, loss, backward,
// optimizer) and the process's peak RSS. One configuration per process, so that peak RSS is its own.
// --peer runs the same model and step in PyTorch on CPU (bench/peer_model_torch.py) for the ratio.
import { spawnSync } from 'node:child_process';
import { closeSync, existsSync, openSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Tensor, nativeInfo, packageRoot } from '../bindings/index.js';
import { NativeCausalLM } from '../bindings/model.js';
import type { NativeModelConfig } from '../bindings/types.js';

const arg = (name: string, fallback: number) => {
  const i = process.argv.indexOf(name);
  return i >= 0 ? Number(process.argv[i + 1]) : fallback;
};
const checkpointing = process.argv.includes('--checkpointing');
// attention's tile products: bf16 (the default, the peer's precision: PyTorch runs this model in bf16) or f32
const attentionPrecision = process.argv.includes('--attention') ? (process.argv[process.argv.indexOf('--attention') + 1] as 'f32' | 'bf16') : 'bf16';
const steps = arg('--steps', 3);
const T = arg('--seq', 512);
const B = arg('--batch', 4);
const R = 16;

const config: NativeModelConfig = {
  vocabSize: 49152,
  hiddenSize: 576,
  intermediateSize: 1536,
  numHiddenLayers: 30,
  numAttentionHeads: 9,
  numKeyValueHeads: 3,
  headDim: 64,
  rmsNormEps: 1e-5,
  ropeTheta: 100000,
  tieWordEmbeddings: true,
};

// name, shape, init bound (0: ones)
function layout(): [string, number[], number][] {
  const C = config.hiddenSize;
  const I = config.intermediateSize;
  const out: [string, number[], number][] = [['model.embed_tokens.weight', [config.vocabSize, C], 0.04]];
  for (let l = 0; l < config.numHiddenLayers; l++) {
    const p = `model.layers.${l}.`;
    out.push([p + 'input_layernorm.weight', [C], 0], [p + 'post_attention_layernorm.weight', [C], 0]);
    out.push([p + 'self_attn.q_proj.weight', [576, C], 1 / Math.sqrt(C)], [p + 'self_attn.k_proj.weight', [192, C], 1 / Math.sqrt(C)]);
    out.push([p + 'self_attn.v_proj.weight', [192, C], 1 / Math.sqrt(C)], [p + 'self_attn.o_proj.weight', [C, 576], 1 / Math.sqrt(576)]);
    out.push([p + 'mlp.gate_proj.weight', [I, C], 1 / Math.sqrt(C)], [p + 'mlp.up_proj.weight', [I, C], 1 / Math.sqrt(C)]);
    out.push([p + 'mlp.down_proj.weight', [C, I], 1 / Math.sqrt(I)]);
  }
  out.push(['model.norm.weight', [C], 0]);
  return out;
}

// Random bf16 weights written once to a scratch file (deterministic), then mapped read-only.
function weights(): Map<string, Tensor> {
  const file = join(tmpdir(), 'starweave-bench-smollm2-135m.bf16');
  const entries = layout();
  if (!existsSync(file)) {
    const fd = openSync(file + '.tmp', 'w');
    let s = 0x9e3779b9;
    for (const [, shape, bound] of entries) {
      const n = shape.reduce((a, b) => a * b, 1);
      const bits = new Uint16Array(Math.min(n, 1 << 20));
      const f = new Float32Array(1);
      const u = new Uint32Array(f.buffer);
      for (let done = 0; done < n; done += bits.length) {
        const m = Math.min(bits.length, n - done);
        for (let i = 0; i < m; i++) {
          s ^= s << 13;
          s >>>= 0;
          s ^= s >>> 17;
          s ^= s << 5;
          s >>>= 0;
          f[0] = bound === 0 ? 1 : (((s >>> 8) / 16777216) * 2 - 1) * bound;
          bits[i] = u[0] >>> 16;
        }
        writeSync(fd, bits, 0, m * 2);
      }
    }
    closeSync(fd);
    spawnSync('mv', [file + '.tmp', file]);
  }
  const w = new Map<string, Tensor>();
  let offset = 0;
  for (const [name, shape] of entries) {
    w.set(name, Tensor.mapFile(file, offset, 'bf16', shape));
    offset += shape.reduce((a, b) => a * b, 1) * 2;
  }
  return w;
}

function randomIds(n: number, seed: number): Int32Array {
  const a = new Int32Array(n);
  let s = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    a[i] = s % config.vocabSize;
  }
  return a;
}

const model = new NativeCausalLM(config, weights());

if (process.argv.includes('--generate')) {
  // prefill a batch of prompts, then decode one token per sequence at a time (LoRA unmerged)
  model.addLora({ r: R, loraAlpha: 32, targetModules: ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'], seed: 1 });
  const P = arg('--prompt', 128);
  const N = arg('--new', 32);
  for (const b of [1, 4]) {
    const prompt = Tensor.fromArray(randomIds(b * P, 3), [b, P], 'i32');
    model.prefill(prompt, null, P + N); // warm-up: buffers
    let t0 = performance.now();
    const logits = model.prefill(prompt, null, P + N);
    const prefillMs = performance.now() - t0;
    logits.release();
    const next = Tensor.fromArray(randomIds(b, 4), [b], 'i32');
    t0 = performance.now();
    for (let i = 0; i < N; i++) model.decodeStep(next).release();
    const decodeMs = performance.now() - t0;
    console.log(
      JSON.stringify({
        case: `generate smollm2-135m bf16 batch ${b} prompt ${P} new ${N}`,
        prefillTokensPerSec: Math.round((b * P) / (prefillMs / 1000)),
        decodeTokensPerSec: Math.round((b * N) / (decodeMs / 1000)),
        decodeMsPerStep: Number((decodeMs / N).toFixed(1)),
        peakRssMB: Math.round(process.resourceUsage().maxRSS / 1024),
      }),
    );
  }
  process.exit(0);
}

model.addLora({ r: R, loraAlpha: 32, targetModules: ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'], seed: 1 });
const ids = Tensor.fromArray(randomIds(B * T, 7), [B, T], 'i32');
const targets = Tensor.fromArray(randomIds(B * T, 8), [B, T], 'i32');
const times: number[] = [];
const cpu: number[] = [];
let loss = 0;
for (let i = 0; i <= steps; i++) {
  const t0 = performance.now();
  const c0 = process.cpuUsage();
  model.zeroGrad();
  loss = model.trainStep(ids, targets, { checkpointing, attentionPrecision }).loss;
  model.clipGradNorm(1.0);
  model.optimizerStep({ lr: 1e-4, step: i + 1 });
  if (i > 0) {
    // the first step allocates the buffers
    times.push(performance.now() - t0);
    const c = process.cpuUsage(c0);
    cpu.push((c.user + c.system) / 1000);
  }
}
const best = Math.min(...times);
const median = times.sort((a, b) => a - b)[Math.floor(times.length / 2)];
const info = model.info();
const result = {
  case: `train step smollm2-135m bf16 B=${B} T=${T} r=${R} all 7${checkpointing ? ' checkpointing' : ''}`,
  attentionPrecision,
  threads: nativeInfo().threads,
  isa: nativeInfo().isa.active,
  bestMs: Math.round(best),
  medianMs: Math.round(median),
  tokensPerSec: Math.round((B * T) / (best / 1000)),
  // CPU time of the process per step (all threads): steadier than wall time on a shared machine
  cpuMsPerStep: Math.round(Math.min(...cpu)),
  peakRssMB: Math.round(process.resourceUsage().maxRSS / 1024),
  activationMB: Math.round(info.memory.activationBytes / 2 ** 20),
  trainableMB: Math.round(info.memory.trainableBytes / 2 ** 20),
  loss: Number(loss.toFixed(4)),
};
console.log(JSON.stringify(result));

if (process.argv.includes('--peer')) {
  const py = spawnSync('/usr/bin/python3', [join(packageRoot(), 'bench', 'peer_model_torch.py')], {
    input: JSON.stringify({ B, T, r: R, steps, checkpointing, threads: nativeInfo().threads, ...config }),
    encoding: 'utf8',
    env: { ...process.env, OPENBLAS_CORETYPE: undefined, OPENBLAS_L2_SIZE: undefined } as NodeJS.ProcessEnv,
  });
  if (py.status !== 0) console.error(py.stderr);
  else console.log(py.stdout.trim());
}
