// The one reporting convention of every benchmark in this project: a readable table by default and,
// with --json, one JSON object per line per case: {"case","unit","ours","peer","peer_name","ratio"},
// where ratio > 1 means we are better (ours/peer for rates, peer/ours for times).
import { spawnSync } from 'node:child_process';

export type Unit = 'GFLOP/s' | 'GB/s' | 'ms' | 'tokens/s' | 'records/s' | 'steps/s' | 'MB' | 's';

export interface BenchRow {
  case: string;
  unit: Unit;
  ours: number;
  peer: number | null;
  peer_name: string;
  ratio: number | null;
}

const HIGHER_IS_BETTER: Record<Unit, boolean> = {
  'GFLOP/s': true,
  'GB/s': true,
  'tokens/s': true,
  'records/s': true,
  'steps/s': true,
  ms: false,
  s: false,
  MB: false,
};

export function row(name: string, unit: Unit, ours: number, peer: number | null, peerName: string): BenchRow {
  let ratio: number | null = null;
  if (peer !== null && peer > 0 && ours > 0) ratio = HIGHER_IS_BETTER[unit] ? ours / peer : peer / ours;
  return { case: name, unit, ours, peer, peer_name: peerName, ratio };
}

const fmt = (v: number | null, digits = 2) => (v === null ? '—' : v >= 100 ? v.toFixed(1) : v.toFixed(digits));

export function print(rows: BenchRow[], json: boolean): void {
  if (json) {
    for (const r of rows) console.log(JSON.stringify(r));
    return;
  }
  const header = ['case', 'unit', 'ours', 'peer', 'ratio', 'peer name'];
  const lines = rows.map((r) => [r.case, r.unit, fmt(r.ours), fmt(r.peer), r.ratio === null ? '—' : `${fmt(r.ratio)}x`, r.peer_name]);
  const widths = header.map((h, i) => Math.max(h.length, ...lines.map((l) => l[i].length)));
  const line = (cells: string[]) => cells.map((c, i) => (i >= 2 && i <= 4 ? c.padStart(widths[i]) : c.padEnd(widths[i]))).join('  ');
  console.log(line(header));
  console.log(widths.map((w) => '-'.repeat(w)).join('  '));
  for (const l of lines) console.log(line(l));
  console.log('(ratio > 1: we are better; rates: ours/peer, times: peer/ours)');
}

/** Best (minimum) wall time in ms of fn over `repeats` runs after `warmup` runs. */
export function bestMs(fn: () => void, repeats = 5, warmup = 1): number {
  for (let i = 0; i < warmup; i++) fn();
  let best = Infinity;
  for (let i = 0; i < repeats; i++) {
    const t0 = performance.now();
    fn();
    best = Math.min(best, performance.now() - t0);
  }
  return best;
}

export interface PeerResult {
  values: Map<string, number>;
  name: string;
  error?: string;
}

/**
 * Runs the PyTorch peer (bench/peer_torch.py) on the same cases. OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE
 * are unset for that command only, so that OpenBLAS picks its best kernels on this CPU.
 */
export function runTorchPeer(script: string, spec: unknown): PeerResult {
  const env = { ...process.env };
  delete env.OPENBLAS_CORETYPE;
  delete env.OPENBLAS_L2_SIZE;
  const python = process.env.STARWEAVE_PEER_PYTHON ?? '/usr/bin/python3';
  const version = spawnSync(python, ['-c', 'import torch; print(torch.__version__)'], { env, encoding: 'utf8' });
  if (version.status !== 0) {
    return {
      values: new Map(),
      name: 'pytorch (not installed)',
      error: 'the PyTorch peer is not installed: run `npm run bench:install-peer` (Debian python3-torch + OpenBLAS)',
    };
  }
  const name = `pytorch ${version.stdout.trim()} cpu (openblas)`;
  const r = spawnSync(python, [script], { env, input: JSON.stringify(spec), encoding: 'utf8', maxBuffer: 1 << 24 });
  const values = new Map<string, number>();
  for (const l of r.stdout.split('\n')) {
    if (!l.trim()) continue;
    const o = JSON.parse(l) as { case: string; value: number };
    values.set(o.case, o.value);
  }
  return { values, name, error: r.status === 0 ? undefined : `peer failed: ${r.stderr.slice(-2000)}` };
}
