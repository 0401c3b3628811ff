// Shared fixtures of the training tests: a tiny generated model and a small inline dataset.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateTinyModel } from '../../src/model/tiny.js';
import type { RunConfigInput } from '../../src/train/config.js';

const TOPICS = ['GenServer', 'Supervisor', 'Agent', 'Task', 'Registry', 'ETS', ':pg', 'Phoenix.PubSub', 'DynamicSupervisor', 'GenStage', 'Mnesia', 'Port'];

export function records(n: number, offset = 0) {
  return Array.from({ length: n }, (_, i) => {
    const t = TOPICS[(i + offset) % TOPICS.length];
    const long = (i + offset) % 3 === 0 ? ' It restarts children that crash and keeps the tree healthy.' : '';
    return {
      messages: [
        { role: 'user' as const, content: `What is ${t} used for in STARWEAVE (${i + offset})?` },
        { role: 'assistant' as const, content: `${t} keeps state for node ${(i + offset) % 5}.${long}` },
      ],
    };
  });
}

let modelDir: string | null = null;
export async function tinyModelDir(): Promise<string> {
  if (!modelDir) {
    modelDir = join(mkdtempSync(join(tmpdir(), 'sw-train-model-')), 'tiny');
    await generateTinyModel(modelDir, 'tiny', 3);
  }
  return modelDir;
}

export function tmp(prefix = 'sw-train-'): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

export async function baseConfig(over: { training?: Record<string, unknown>; eval?: Record<string, unknown>; checkpoint?: Record<string, unknown>; lora?: Record<string, unknown> } = {}): Promise<RunConfigInput> {
  return {
    name: 'test',
    model: { dir: await tinyModelDir() },
    dataset: { train: records(12), heldout: records(4, 100) },
    lora: { r: 4, lora_alpha: 8, lora_dropout: 0.1, target_modules: 'all-linear', ...over.lora },
    training: { max_steps: 6, micro_batch: 2, grad_accum: 2, max_seq_len: 96, packing: true, lr: 5e-3, schedule: 'cosine', warmup_steps: 1, weight_decay: 0.01, max_grad_norm: 1, seed: 7, ...over.training },
    eval: { every_steps: 3, ...over.eval },
    checkpoint: { every_steps: 2, keep_last: 2, ...over.checkpoint },
    output: { runs_dir: tmp('sw-runs-') },
  } as RunConfigInput;
}
