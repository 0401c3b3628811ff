// npm run bench:distributed [-- --json] [--preset P] [--steps S] [--seq T] [--workers 1,2,3] [--no-peer-train]
// Synchronous data-parallel LoRA training (Starweave.FineTune.Distributed: per-worker agents, a ring
// all-reduce of the f32 gradients over Erlang distribution, the additions in the workers' sidecars) with
// 1, 2 and 3 workers, each a BEAM node started with OTP's :peer on this machine running its own sidecar,
// the coordinator on a node of its own (bench/distributed/run.exs). A SmolLM2-135M-shaped model (random bf16
// weights, generated once into a scratch folder), LoRA r=16 on all seven projections (4.9 M parameters:
// 19.5 MB of f32 gradients per step), micro-batch 1 × seq 256, grad_accum 6 (micro-batch k is worker
// k mod N's), loss on every token, eval and checkpoints off, S steps of which the first is a warm-up.
//
// The all-reduce is reported as the coordinator's allreduce_ms (the slowest agent's: it includes waiting
// for the slowest worker's compute) and as the ring's own time (the fastest agent's, from the step
// event's allreduce_ms_by_worker), which the table compares with gloo's (a barrier before each of its all-reduces: no imbalance either).
// The workers share this machine's cores (each gets cores/N threads, at least one), so the step time
// here is not a cluster's; what carries over is the all-reduce time per step and its share of the step,
// and the per-micro-batch compute: from them docs/PERFORMANCE.md projects 8 and 32 nodes (printed below).
//
// Peer, in the same run: PyTorch's torch.distributed with gloo on CPU, N processes with the same threads
// each (bench/distributed/peer_gloo.py): all_reduce of a tensor of our gradient's length (f32), and a
// DistributedDataParallel training step of the same model, LoRA and micro-batch split.
import { spawnSync } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { packageRoot } from '../bindings/index.js';
import { generateTinyModel, TINY_PRESETS, type TinyPreset } from '../src/model/tiny.js';
import { flag, presetFlag } from './lib/args.js';
import { print, row, type BenchRow } from './lib/report.js';

const json = process.argv.includes('--json');
const peerTrain = !process.argv.includes('--no-peer-train');
const presetName = presetFlag();
const preset: TinyPreset = TINY_PRESETS[presetName];
const STEPS = Number(flag('--steps', '5'));
const T = Number(flag('--seq', '256'));
const WORKERS = flag('--workers', '1,2,3').split(',').map(Number);
const G = 6; // grad_accum: divisible by 1, 2 and 3 workers
const R = 16;
const ALPHA = 32;
const TARGETS = ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'];
const CORES = availableParallelism();
const CHUNKS_OF = [2, 3, 8, 32];
const threadsFor = (n: number) => Math.max(1, Math.floor(CORES / n));

const root = packageRoot();
const portDir = join(root, 'erlang_port');
const env = { ...process.env, HOME: process.env.HOME ?? '/root', LANG: process.env.LANG ?? 'C.UTF-8' };
const log = (s: string) => {
  if (!json) process.stderr.write(s + '\n');
};

// ------------------------------------------------------------------------------------------ the setup

const compile = spawnSync('mix', ['compile'], { cwd: portDir, env, encoding: 'utf8' });
if (compile.status !== 0) {
  console.error(`bench:distributed needs Erlang/Elixir (apt-get install -y elixir erlang-dev): mix compile failed\n${compile.stderr ?? compile.error}`);
  process.exit(1);
}

// the workspace (and the generated model in it) is kept between runs: writing 270 MB of weights takes a while
const ws = join(tmpdir(), 'starweave-bench-distributed');
const modelRel = join('models', presetName);
if (!existsSync(join(ws, modelRel, 'config.json'))) {
  log(`generating the ${presetName} model into ${join(ws, modelRel)} ...`);
  await generateTinyModel(join(ws, modelRel), presetName, 0);
}

// records longer than a sequence: each is its own row of exactly T tokens (truncated), so every
// micro-batch trains T tokens (loss on all of them)
const WORDS = (
  'node cluster supervisor process mailbox message pattern memory cognition agent weave star link monitor ' +
  'GenServer call cast state replica shard partition quorum gossip ring vector clock heartbeat restart ' +
  'strategy one_for_one tree module function pipe stream reduce map filter actor behaviour registry ets'
).split(' ');
function text(seed: number, minChars: number): string {
  let s = seed * 2654435761 + 1;
  const out: string[] = [];
  let n = 0;
  while (n < minChars) {
    s = (s * 1103515245 + 12345) % 2147483648;
    const w = WORDS[s % WORDS.length];
    out.push(w);
    n += w.length + 1;
    if (s % 11 === 0) out.push('.');
  }
  return out.join(' ');
}
const records = Array.from({ length: 48 }, (_, i) => ({
  messages: [
    { role: 'user', content: `Describe part ${i} of the weave.` },
    { role: 'assistant', content: text(i + 1, 8 * T) },
  ],
}));
const runConfig = {
  name: 'bench-distributed',
  model: { dir: modelRel },
  dataset: { train: records, heldout: [] },
  lora: { r: R, lora_alpha: ALPHA, lora_dropout: 0, target_modules: TARGETS },
  training: {
    max_steps: STEPS,
    micro_batch: 1,
    grad_accum: G,
    max_seq_len: T,
    packing: true,
    lr: 1e-4,
    schedule: 'constant',
    seed: 42,
    loss_on: 'all',
  },
  eval: { every_steps: 0, at_start: false },
  checkpoint: { every_steps: 0 },
  output: { runs_dir: 'runs', name: 'bench' },
};
writeFileSync(join(ws, 'bench.json'), JSON.stringify(runConfig));

// the LoRA parameter count of the shape (A: r × in, B: out × r per projection), checked against the run's adapter
function loraElems(p: TinyPreset): number {
  const C = p.hiddenSize;
  const I = p.intermediateSize;
  const D = p.headDim ?? C / p.numHeads;
  const q = p.numHeads * D;
  const kv = p.numKvHeads * D;
  const per = [
    [C, q],
    [C, kv],
    [C, kv],
    [q, C],
    [C, I],
    [C, I],
    [I, C],
  ].reduce((s, [i, o]) => s + R * (i + o), 0);
  return per * p.numLayers;
}

/** The element count of the f32 tensors of a safetensors file (its header only). */
function safetensorsElems(file: string): number | null {
  if (!existsSync(file)) return null;
  const fd = openSync(file, 'r');
  try {
    const len = Buffer.alloc(8);
    readSync(fd, len, 0, 8, 0);
    const n = Number(len.readBigUInt64LE(0));
    const h = Buffer.alloc(n);
    readSync(fd, h, 0, n, 8);
    const header = JSON.parse(h.toString('utf8')) as Record<string, { shape?: number[] }>;
    let total = 0;
    for (const [k, v] of Object.entries(header)) if (k !== '__metadata__' && v.shape) total += v.shape.reduce((a, b) => a * b, 1);
    return total;
  } finally {
    closeSync(fd);
  }
}

// ---------------------------------------------------------------------------------------------- ours

interface OursResult {
  workers: number;
  threads: number;
  stepMs: number;
  /** the coordinator's figure: the slowest agent's, which includes waiting for the slowest worker's compute */
  allreduceMs: number;
  /** the fastest agent's (the last to have its gradients): the ring all-reduce itself */
  ringMs: number;
  tokensPerStep: number;
  steps: number;
  add: Map<number, number>;
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};

function runOurs(n: number, addBytes: number[]): OursResult {
  const runsDir = `runs-${n}`;
  rmSync(join(ws, runsDir), { recursive: true, force: true });
  const args = [
    '-pa', join(portDir, '_build', 'dev', 'lib', 'starweave_finetune', 'ebin'),
    join(root, 'bench', 'distributed', 'run.exs'),
    ws, process.execPath, join(root, 'dist', 'src', 'port', 'main.js'),
    String(n), String(threadsFor(n)), 'bench.json', runsDir, addBytes.join(',') || '0',
  ];
  const r = spawnSync('elixir', args, { env, encoding: 'utf8', maxBuffer: 1 << 24, timeout: 1_800_000 });
  const lines = (r.stdout ?? '')
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Record<string, unknown>);
  const done = lines.find((l) => l.event === 'done');
  if (r.status !== 0 || !done || done.ok !== true) {
    throw new Error(`the Elixir driver failed (${n} workers): ${String(done?.error ?? '')}\n${r.stdout}\n${r.stderr}`);
  }
  for (const l of lines) if (l.event === 'note') log(`  note: ${String(l.text)}`);
  const steps = lines.filter((l) => l.event === 'step').sort((a, b) => Number(a.step) - Number(b.step));
  if (steps.length < 2) throw new Error(`${n} workers: ${steps.length} step events; need at least 2 (--steps)`);
  // step s's time: from step s-1's event to step s's (the first step, with the workers' start, is a warm-up)
  const stepMs = steps.slice(1).map((s, i) => Number(s.t_ms) - Number(steps[i].t_ms));
  const later = steps.slice(1);
  const ringMs = later.map((s) => Math.min(...Object.values(s.by_worker as Record<string, number>).map(Number)));
  if (!ringMs.every(Number.isFinite)) throw new Error(`${n} workers: no per-worker all-reduce times for some step`);
  return {
    workers: n,
    threads: threadsFor(n),
    stepMs: median(stepMs),
    allreduceMs: median(later.map((s) => Number(s.allreduce_ms))),
    ringMs: median(ringMs),
    tokensPerStep: median(later.map((s) => Number(s.tokens))),
    steps: later.length,
    add: new Map(lines.filter((l) => l.event === 'add').map((l) => [Number(l.bytes), Number(l.ms)])),
  };
}

// ---------------------------------------------------------------------------------------------- peer

const peerEnv = { ...process.env };
delete peerEnv.OPENBLAS_CORETYPE;
delete peerEnv.OPENBLAS_L2_SIZE;
const python = process.env.STARWEAVE_PEER_PYTHON ?? '/usr/bin/python3';

function torchVersion(): string | null {
  const v = spawnSync(python, ['-c', 'import torch, torch.distributed as d; assert d.is_gloo_available(); print(torch.__version__)'], {
    env: peerEnv,
    encoding: 'utf8',
  });
  return v.status === 0 ? v.stdout.trim() : null;
}

interface PeerResult {
  allreduceMs: number | null;
  stepMs: number | null;
  tokensPerSec: number | null;
}

function runPeer(n: number, elems: number): PeerResult {
  const spec = {
    workers: n,
    threads: threadsFor(n),
    elems: n > 1 ? elems : 0,
    reps: 20,
    train: peerTrain
      ? {
          vocabSize: preset.vocabSize,
          hiddenSize: preset.hiddenSize,
          intermediateSize: preset.intermediateSize,
          numHiddenLayers: preset.numLayers,
          numAttentionHeads: preset.numHeads,
          numKeyValueHeads: preset.numKvHeads,
          headDim: preset.headDim ?? preset.hiddenSize / preset.numHeads,
          rmsNormEps: preset.rmsNormEps,
          ropeTheta: preset.ropeTheta,
          tieWordEmbeddings: preset.tieWordEmbeddings,
          T,
          r: R,
          alpha: ALPHA,
          microBatch: 1,
          gradAccum: G,
          steps: STEPS,
          dtype: preset.dtype,
        }
      : null,
  };
  const r = spawnSync(python, [join(root, 'bench', 'distributed', 'peer_gloo.py')], {
    env: peerEnv,
    input: JSON.stringify(spec),
    encoding: 'utf8',
    maxBuffer: 1 << 24,
    timeout: 1_800_000,
  });
  const out: PeerResult = { allreduceMs: null, stepMs: null, tokensPerSec: null };
  for (const l of (r.stdout ?? '').split('\n')) {
    if (!l.startsWith('{')) continue;
    const o = JSON.parse(l) as Record<string, unknown>;
    if (o.case === 'allreduce') out.allreduceMs = Number(o.ms);
    if (o.case === 'train') {
      out.stepMs = Number(o.stepMs);
      out.tokensPerSec = Number(o.tokensPerSec);
    }
  }
  if (r.status !== 0) log(`the peer failed (${n} workers): ${(r.stderr ?? String(r.error)).slice(-1500)}`);
  return out;
}

// ---------------------------------------------------------------------------------------------- runs

const version = torchVersion();
const peerName = version ? `torch ${version} gloo (cpu)` : 'pytorch gloo (not installed: npm run bench:install-peer)';
let elems = loraElems(preset);
const ours: OursResult[] = [];
const peers: PeerResult[] = [];
for (const n of WORKERS) {
  log(`${n} worker${n > 1 ? 's' : ''}: ours (${threadsFor(n)} thread${threadsFor(n) > 1 ? 's' : ''} each) ...`);
  // the ring's per-chunk addition, timed once (on the first run's worker) for the chunks of 2, 3, 8 and 32 workers
  const addBytes = ours.length === 0 ? CHUNKS_OF.map((k) => Math.floor(elems / k) * 4) : [];
  const o = runOurs(n, addBytes);
  ours.push(o);
  const fromRun = safetensorsElems(join(ws, `runs-${n}`, 'worker-0', 'bench', 'adapter', 'adapter_model.safetensors'));
  if (fromRun !== null && fromRun !== elems) {
    log(`  the run's adapter has ${fromRun} parameters (the shape gives ${elems}): using the run's`);
    elems = fromRun;
  }
  rmSync(join(ws, `runs-${n}`), { recursive: true, force: true }); // checkpoints and adapters: ~80 MB per worker
  if (version) {
    log(`${n} worker${n > 1 ? 's' : ''}: peer ...`);
    peers.push(runPeer(n, elems));
  } else {
    peers.push({ allreduceMs: null, stepMs: null, tokensPerSec: null });
  }
}

// ------------------------------------------------------------------------------------------ the table

const bytes = elems * 4;
const mb = (bytes / 1e6).toFixed(1);
const rows: BenchRow[] = [];
const trainPeer = peerTrain ? peerName : 'none (--no-peer-train)';
for (let i = 0; i < ours.length; i++) {
  const o = ours[i];
  const p = peers[i];
  const w = `${o.workers} worker${o.workers > 1 ? 's' : ''}`;
  const tps = o.tokensPerStep / (o.stepMs / 1000);
  const peerSteps = p.stepMs !== null ? 1000 / p.stepMs : null;
  rows.push(row(`train step, ${w}`, 'steps/s', 1000 / o.stepMs, peerSteps, trainPeer));
  rows.push(row(`train step, ${w}`, 'tokens/s', tps, p.tokensPerSec, trainPeer));
  if (o.workers > 1) rows.push(row(`all-reduce ${mb} MB, ${w}`, 'ms', o.ringMs, p.allreduceMs, peerName));
}

// ------------------------------------------------------------------------------------- the projection
// docs/PERFORMANCE.md, "Distributed training": per step, with S the gradient bytes and G micro-batches,
//   t_step(N) = t_mb·⌈G/N⌉ + AR(N),   AR(N) = 2(N-1)·(α + (S/N)/β) + ((3N-2)/N)·S·p
// The ring works in place in the sidecars: per worker the port carries S/N out (its own range), (N-1)
// adds of S/N in and S/N out, and (N-1) sets of S/N in: (3N-2)/N·S, at p ms per byte, measured with
// reduce.add (which moves 3 chunks through the port: p = add(S/k) / (3·S/k), the median over k); t_mb from
// the 1-worker run: (t_step(1) - AR(1)) / G; α and β fitted to the ring times of 2 and 3 workers (the
// fastest agent's: no waiting on another worker's compute).

interface Fit {
  alphaMs: number;
  betaGBs: number;
  exact: boolean;
  add: (n: number) => number;
  /** ms per byte through a worker's port */
  portMsPerByte: number;
  tmbMs: number;
}

/** The port's share of the ring per worker and step: (3N-2)/N of the gradient bytes. */
const portMs = (n: number, fi: Fit) => (n === 1 ? 0 : ((3 * n - 2) / n) * bytes * fi.portMsPerByte);

function fit(): Fit | null {
  const one = ours.find((o) => o.workers === 1);
  const two = ours.find((o) => o.workers === 2);
  const three = ours.find((o) => o.workers === 3);
  const adds = ours[0].add;
  const chunkAdd = new Map(CHUNKS_OF.map((k) => [k, adds.get(Math.floor(elems / k) * 4) ?? NaN]));
  if (!one || !two || !three || ![...chunkAdd.values()].every(Number.isFinite)) return null;
  const add = (n: number) => chunkAdd.get(n) ?? NaN;
  const portMsPerByte = median(CHUNKS_OF.map((k) => add(k) / ((3 * bytes) / k)));
  const partial = { add, portMsPerByte } as Fit;
  const tmbMs = Math.max(1e-6, (one.stepMs - one.allreduceMs) / G);
  // y_N = (AR(N) - port(N)) / (2(N-1)) = α + (S/N)/β
  const y = (o: OursResult) => (o.ringMs - portMs(o.workers, partial)) / (2 * (o.workers - 1));
  const x2 = bytes / 2;
  const x3 = bytes / 3;
  let invBeta = (y(two) - y(three)) / (x2 - x3); // ms per byte
  let alpha = y(two) - x2 * invBeta;
  let exact = true;
  if (invBeta <= 0 || alpha < 0) {
    // the two points do not separate a latency from a bandwidth (3 workers on 2 cores): α = 0, β by least squares
    exact = false;
    alpha = 0;
    invBeta = Math.max(1e-12, (x2 * y(two) + x3 * y(three)) / (x2 * x2 + x3 * x3));
  }
  return { alphaMs: alpha, betaGBs: 1 / invBeta / 1e6, exact, add, portMsPerByte, tmbMs };
}

const f = fit();
const GP = 32; // the projection's grad_accum: one micro-batch per worker at 32 nodes
const NET_GBS = 1.2; // 10 GbE
const NET_ALPHA_MS = 0.1; // a 10 GbE hop plus the BEAM's send and receive, per message (at least)
function project(n: number, betaGBs: number, alphaMs: number, fi: Fit) {
  const ar = n === 1 ? 0 : 2 * (n - 1) * (alphaMs + bytes / n / (betaGBs * 1e6)) + portMs(n, fi);
  const step = fi.tmbMs * Math.ceil(GP / n) + ar;
  const single = fi.tmbMs * GP;
  return { ar, step, stepsPerSec: 1000 / step, tokensPerSec: (GP * T * 1000) / step, eff: single / (n * step), share: ar / step };
}
const projections: { where: string; n: number; p: ReturnType<typeof project> }[] = [];
if (f) {
  for (const [where, beta, alpha] of [
    ['loopback β', f.betaGBs, f.alphaMs],
    [`10 GbE β = ${NET_GBS} GB/s`, NET_GBS, Math.max(f.alphaMs, NET_ALPHA_MS)],
  ] as const) {
    for (const n of [1, 8, 32]) {
      const p = project(n, beta, alpha, f);
      projections.push({ where, n, p });
      if (n > 1) rows.push(row(`projected ${n} nodes, G=${GP}, ${where}`, 'steps/s', p.stepsPerSec, null, 'none (projection from the figures above)'));
    }
  }
}

print(rows, json);
if (!json) {
  const pct = (x: number) => `${(100 * x).toFixed(1)}%`;
  console.log(`\nours: ${presetName} (${(elems / 1e6).toFixed(2)} M LoRA parameters r=${R}, ${mb} MB f32 gradients), micro-batch 1 × seq ${T}, grad_accum ${G}, ${STEPS} steps (first skipped), ${CORES} cores shared by the workers`);
  console.log('workers  threads  step ms  steps/s  tokens/s  all-reduce ms (slowest agent)  share  ring ms (fastest agent)  share  | peer step ms  peer all-reduce ms');
  for (let i = 0; i < ours.length; i++) {
    const o = ours[i];
    const p = peers[i];
    console.log(
      `${String(o.workers).padStart(7)}  ${String(o.threads).padStart(7)}  ${o.stepMs.toFixed(0).padStart(7)}  ${(1000 / o.stepMs).toFixed(3).padStart(7)}  ` +
        `${(o.tokensPerStep / (o.stepMs / 1000)).toFixed(1).padStart(8)}  ${o.allreduceMs.toFixed(1).padStart(29)}  ${pct(o.allreduceMs / o.stepMs).padStart(5)}  ` +
        `${o.ringMs.toFixed(1).padStart(23)}  ${pct(o.ringMs / o.stepMs).padStart(5)}  | ` +
        `${p.stepMs === null ? '—'.padStart(12) : p.stepMs.toFixed(0).padStart(12)}  ${p.allreduceMs === null ? '—'.padStart(18) : p.allreduceMs.toFixed(1).padStart(18)}`,
    );
  }
  if (f) {
    const adds = CHUNKS_OF.map((k) => `S/${k} ${f.add(k).toFixed(1)} ms`).join(', ');
    console.log(
      `\nfit: reduce.add ${adds}; port p = ${(f.portMsPerByte * 1e6).toFixed(2)} ms/MB; compute t_mb = ${f.tmbMs.toFixed(1)} ms per micro-batch; ` +
        `α = ${f.alphaMs.toFixed(2)} ms, loopback β = ${f.betaGBs.toFixed(2)} GB/s${f.exact ? '' : ' (α unresolved: the 3-worker ring is not faster per byte than the 2-worker one here; α set to 0, β fitted)'}`,
    );
    console.log(`projection (docs/PERFORMANCE.md), grad_accum ${GP}, seq ${T}: t_step(N) = t_mb·⌈${GP}/N⌉ + 2(N-1)(α + S/(Nβ)) + (3N-2)/N·S·p; 10 GbE: α = max(α, ${NET_ALPHA_MS} ms)`);
    console.log('link                 nodes  step ms  all-reduce ms  share   steps/s  tokens/s  efficiency');
    for (const { where, n, p } of projections) {
      console.log(
        `${where.padEnd(20)} ${String(n).padStart(5)}  ${p.step.toFixed(0).padStart(7)}  ${p.ar.toFixed(1).padStart(13)}  ${pct(p.share).padStart(6)}  ` +
          `${p.stepsPerSec.toFixed(3).padStart(7)}  ${p.tokensPerSec.toFixed(0).padStart(8)}  ${pct(p.eff).padStart(10)}`,
      );
    }
  }
}
