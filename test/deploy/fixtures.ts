// Shared fixtures of the deployment tests: one tiny base model, PEFT adapters on it whose lora_B is
// non-zero (so two versions generate differently), and a run directory in the layout runner.ts writes.
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateTinyModel } from '../../src/model/tiny.js';
import { loadModelFiles } from '../../src/model/files.js';
import { LlamaModel } from '../../src/model/native-model.js';
import { writeSafetensors } from '../../src/model/safetensors.js';

export function tmp(prefix = 'sw-deploy-'): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

let base: string | null = null;
export async function tinyBase(): Promise<string> {
  if (!base) {
    base = join(tmp('sw-deploy-base-'), 'tiny');
    await generateTinyModel(base, 'tiny', 7);
  }
  return base;
}

/** A PEFT adapter directory (adapter_config.json + adapter_model.safetensors) with lora_B drawn from the seed. */
export async function writeAdapter(dir: string, baseDir: string, seed: number, scale = 0.5): Promise<string> {
  const files = loadModelFiles(baseDir, { tokenizer: false });
  const model = LlamaModel.fromFiles(files);
  try {
    const lora = model.addLora({ r: 4, lora_alpha: 8, target_modules: 'all-linear', seed });
    let s = seed * 7919 + 1;
    const rnd = () => ((s = (s * 1103515245 + 12345) >>> 0) / 2 ** 32 - 0.5) * scale;
    const st = model.adapterState('param');
    for (const [k, v] of Object.entries(st)) if (k.includes('lora_B')) v.data = v.data.map(() => rnd());
    mkdirSync(dir, { recursive: true });
    writeFileSync(
      join(dir, 'adapter_config.json'),
      JSON.stringify({ peft_type: 'LORA', task_type: 'CAUSAL_LM', base_model_name_or_path: baseDir, r: lora.r, lora_alpha: lora.lora_alpha, lora_dropout: 0, target_modules: ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'], use_rslora: false, bias: 'none' }, null, 2),
    );
    await writeSafetensors(join(dir, 'adapter_model.safetensors'), Object.fromEntries(Object.entries(st).map(([k, v]) => [k, { dtype: 'F32' as const, shape: v.shape, data: v.data }])), { metadata: { format: 'pt' } });
    return dir;
  } finally {
    model.dispose();
    files.release();
  }
}

/** A run directory as runner.ts leaves it: config.json, run.json, metrics.jsonl, eval.json, adapter/. */
export async function writeRun(dir: string, baseDir: string, seed: number): Promise<string> {
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'config.json'), JSON.stringify({ name: 'demo', model: { dir: baseDir } }));
  writeFileSync(join(dir, 'run.json'), JSON.stringify({ name: 'demo', status: 'completed', dataset: { kind: 'store', versionId: 'ds-0123abcd', train: 12, heldout: 4 }, updatedAt: '2026-11-29T00:00:00Z' }));
  writeFileSync(join(dir, 'metrics.jsonl'), [{ type: 'train', step: 1, loss: 3.5 }, { type: 'train', step: 2, loss: 3.1 }, { type: 'eval', step: 2, eval_loss: 3.25 }].map((r) => JSON.stringify(r)).join('\n') + '\n');
  const m = { examples: 4, tokens: 40, loss: 3.25, tokenAccuracy: 0.2, generated: 2, exactMatch: 0, rougeL: 0.125, perplexity: Math.exp(3.25), categories: {}, samples: [] };
  writeFileSync(join(dir, 'eval.json'), JSON.stringify({ format: 'starweave-eval/1', step: 2, tuned: m, base: { ...m, loss: 3.6, rougeL: 0.1 }, gate: { passed: true, checks: [] } }));
  await writeAdapter(join(dir, 'adapter'), baseDir, seed);
  return dir;
}
