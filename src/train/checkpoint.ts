// Checkpoints: checkpoints/step-NNNNNNNN/ holding adapter.safetensors (the trainable tensors by PEFT
// name), optimizer.safetensors (AdamW's exp_avg / exp_avg_sq, prefixed) and state.json (step, scheduler,
// loader position, seeds, early-stopping and non-finite counters). The directory is written under a
// temporary name, every file fsynced, then renamed into place and the parent fsynced: a checkpoint
// directory either is complete or does not exist. Older ones beyond keep_last are removed.
import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, readdirSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { writeSafetensors, SafetensorsFile } from '../model/safetensors.js';
import type { RawTensor } from '../model/safetensors.js';
import { writeFileAtomicSync } from '../model/atomic.js';
import type { LoaderPosition } from './data.js';

export interface TrainerState {
  format: 'starweave-checkpoint/1';
  /** optimizer steps done (batches consumed, skipped ones included) */
  step: number;
  /** AdamW steps actually applied (bias correction) */
  optimizerSteps: number;
  totalSteps: number;
  loader: LoaderPosition;
  seed: number;
  /** dropout seeds are mixSeed(seed, step, microIndex): nothing else to keep */
  rng: { kind: 'stateless-mix'; seed: number };
  scheduler: { name: string; lr: number; warmupSteps: number; totalSteps: number; minLrRatio: number; lastLr: number };
  nonfinite: { consecutive: number; total: number; steps: number[] };
  earlyStopping: { best: number | null; bestStep: number | null; badEvals: number };
  tokensSeen: number;
  createdAt: string;
}

type StateDict = Record<string, { shape: number[]; data: Float32Array }>;

const stepName = (step: number) => `step-${String(step).padStart(8, '0')}`;

function fsyncPath(p: string): void {
  let fd: number | undefined;
  try {
    fd = openSync(p, 'r');
    fsyncSync(fd);
  } catch {
    // some filesystems refuse fsync on directories
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

const raw = (t: { shape: number[]; data: Float32Array }): RawTensor => ({ dtype: 'F32', shape: t.shape, data: t.data });

export async function writeCheckpoint(
  dir: string,
  state: TrainerState,
  tensors: { params: StateDict; expAvg: StateDict; expAvgSq: StateDict },
  keepLast: number,
): Promise<string> {
  mkdirSync(dir, { recursive: true });
  const final = join(dir, stepName(state.step));
  const tmp = join(dir, `.${stepName(state.step)}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`);
  mkdirSync(tmp);
  try {
    await writeSafetensors(join(tmp, 'adapter.safetensors'), Object.fromEntries(Object.entries(tensors.params).map(([k, v]) => [k, raw(v)])), {
      metadata: { format: 'pt' },
    });
    const opt: Record<string, RawTensor> = {};
    for (const [k, v] of Object.entries(tensors.expAvg)) opt[`exp_avg.${k}`] = raw(v);
    for (const [k, v] of Object.entries(tensors.expAvgSq)) opt[`exp_avg_sq.${k}`] = raw(v);
    await writeSafetensors(join(tmp, 'optimizer.safetensors'), opt);
    writeFileAtomicSync(join(tmp, 'state.json'), JSON.stringify(state, null, 2) + '\n');
    for (const f of readdirSync(tmp)) fsyncPath(join(tmp, f));
    fsyncPath(tmp);
    if (existsSync(final)) rmSync(final, { recursive: true, force: true });
    renameSync(tmp, final);
    fsyncPath(dir);
  } catch (e) {
    rmSync(tmp, { recursive: true, force: true });
    throw e;
  }
  pruneCheckpoints(dir, keepLast);
  return final;
}

/** Complete checkpoints in a run's checkpoints/ folder, oldest first. */
export function listCheckpoints(dir: string): { step: number; path: string }[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .map((d) => /^step-(\d+)$/.exec(d))
    .filter((m): m is RegExpExecArray => m !== null && existsSync(join(dir, m[0], 'state.json')))
    .map((m) => ({ step: Number(m[1]), path: join(dir, m[0]) }))
    .sort((a, b) => a.step - b.step);
}

export function pruneCheckpoints(dir: string, keepLast: number): void {
  const all = listCheckpoints(dir);
  for (const c of all.slice(0, Math.max(0, all.length - keepLast))) rmSync(c.path, { recursive: true, force: true });
  // stray temporaries of a crashed writer
  for (const d of readdirSync(dir)) if (d.startsWith('.step-') && d.includes('.tmp-') && !d.includes(`.tmp-${process.pid}-`)) rmSync(join(dir, d), { recursive: true, force: true });
}

function readStateDict(file: string): StateDict {
  const f = SafetensorsFile.open(file);
  const out: StateDict = {};
  for (const name of f.names) {
    const e = f.entry(name);
    if (e.dtype !== 'F32') throw new Error(`${file}: tensor ${name} is ${e.dtype}; checkpoints hold F32`);
    const b = f.readBytes(name);
    const data = new Float32Array(e.nbytes / 4);
    new Uint8Array(data.buffer).set(b);
    out[name] = { shape: [...e.shape], data };
  }
  return out;
}

export interface LoadedCheckpoint {
  state: TrainerState;
  params: StateDict;
  expAvg: StateDict;
  expAvgSq: StateDict;
}

export function readCheckpoint(path: string): LoadedCheckpoint {
  const state = JSON.parse(readFileSync(join(path, 'state.json'), 'utf8')) as TrainerState;
  if (state.format !== 'starweave-checkpoint/1') throw new Error(`${join(path, 'state.json')}: unknown checkpoint format ${String(state.format)}`);
  const params = readStateDict(join(path, 'adapter.safetensors'));
  const opt = readStateDict(join(path, 'optimizer.safetensors'));
  const expAvg: StateDict = {};
  const expAvgSq: StateDict = {};
  for (const [k, v] of Object.entries(opt)) {
    if (k.startsWith('exp_avg_sq.')) expAvgSq[k.slice('exp_avg_sq.'.length)] = v;
    else if (k.startsWith('exp_avg.')) expAvg[k.slice('exp_avg.'.length)] = v;
  }
  return { state, params, expAvg, expAvgSq };
}
