// npm run bench:model [-- --json]
// A LoRA training step of a SmolLM2-135M-shaped model (random bf16 weights, memory-mapped), seq 512 ×
// micro-batch 4, r=16 on all seven projections: tokens/s and peak RSS, with and without activation
// checkpointing, beside PyTorch on CPU running the same model and step (bench/peer_model_torch.py, bf16
// weights and activations: its fastest CPU configuration here; f32 is ~6x slower). Plus prefill and
// decode tokens/s of generation with the adapter unmerged (no peer). Each configuration runs in its own
// process so that peak RSS is its own.
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { nativeInfo, packageRoot } from '../bindings/index.js';
import { print, row, type BenchRow } from './lib/report.js';

const json = process.argv.includes('--json');
const root = packageRoot();
const ours = join(root, 'dist', 'bench', 'model-native.js');

function runJson(cmd: string, args: string[], input?: string, env?: NodeJS.ProcessEnv): Record<string, unknown>[] {
  const r = spawnSync(cmd, args, { encoding: 'utf8', input, env: env ?? process.env, maxBuffer: 1 << 24 });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed: ${r.stderr.slice(-2000)}`);
  return r.stdout
    .split('\n')
    .filter((l) => l.trim().startsWith('{'))
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

function peer(checkpointing: boolean): { tps: number; rss: number; name: string } | null {
  const env = { ...process.env };
  delete env.OPENBLAS_CORETYPE;
  delete env.OPENBLAS_L2_SIZE;
  const probe = spawnSync('/usr/bin/python3', ['-c', 'import torch'], { env });
  if (probe.status !== 0) return null;
  const cfg = {
    B: 4, T: 512, r: 16, steps: 2, checkpointing, threads: nativeInfo().threads, dtypes: ['bf16'],
    vocabSize: 49152, hiddenSize: 576, intermediateSize: 1536, numHiddenLayers: 30, numAttentionHeads: 9,
    numKeyValueHeads: 3, headDim: 64, rmsNormEps: 1e-5, ropeTheta: 100000, tieWordEmbeddings: true,
  };
  const [res] = runJson('/usr/bin/python3', [join(root, 'bench', 'peer_model_torch.py')], JSON.stringify(cfg), env);
  return { tps: Number(res.tokensPerSec), rss: Number(res.peakRssMB), name: `${String(res.peer)} (cpu)` };
}

const rows: BenchRow[] = [];
for (const ckpt of [false, true]) {
  const label = ckpt ? ', checkpointing' : '';
  const [o] = runJson(process.execPath, [ours, '--steps', '2', ...(ckpt ? ['--checkpointing'] : [])]);
  const p = peer(ckpt);
  const peerName = p?.name ?? 'pytorch (not installed: npm run bench:install-peer)';
  rows.push(row(`train step smollm2-135m bf16 B=4 T=512 r=16 all 7${label}`, 'tokens/s', Number(o.tokensPerSec), p?.tps ?? null, peerName));
  rows.push(row(`peak RSS of that run${label}`, 'MB', Number(o.peakRssMB), p?.rss ?? null, peerName));
}
for (const g of runJson(process.execPath, [ours, '--generate'])) {
  rows.push(row(`${String(g.case)}: prefill`, 'tokens/s', Number(g.prefillTokensPerSec), null, 'none'));
  rows.push(row(`${String(g.case)}: decode`, 'tokens/s', Number(g.decodeTokensPerSec), null, 'none'));
}
print(rows, json);
