// A Hugging Face model directory, loaded: config.json (normalized), the safetensors weights as read-only
// mappings keyed by transformers' names, the tokenizer with its chat template, generation_config.json.
// Every expected tensor is checked against the config (present, shape, floating dtype) before anything
// is mapped, so a mismatched checkpoint fails here with the tensor's name, not later inside a kernel.
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import type { Tensor } from '../../bindings/tensor.js';
import { loadModelConfig } from './config.js';
import type { ModelConfig } from './config.js';
import { ModelFileError, parseModelFile } from './errors.js';
import { expectedTensors } from './layout.js';
import { SafetensorsCheckpoint } from './safetensors.js';
import type { LoadTensorOptions } from './safetensors.js';
import { loadTokenizer } from './tokenizer.js';
import type { LoadTokenizerOptions, ModelTokenizer } from './tokenizer.js';

export interface LoadModelOptions extends LoadTensorOptions, LoadTokenizerOptions {
  /** load the tokenizer too (default true) */
  tokenizer?: boolean;
}

const GenerationConfig = z.looseObject({
  bos_token_id: z.int().nullish(),
  eos_token_id: z.union([z.int(), z.array(z.int())]).nullish(),
  pad_token_id: z.int().nullish(),
  do_sample: z.boolean().optional(),
  temperature: z.number().optional(),
  top_k: z.int().optional(),
  top_p: z.number().optional(),
  repetition_penalty: z.number().optional(),
  max_new_tokens: z.int().optional(),
  max_length: z.int().optional(),
});
export type GenerationConfig = z.infer<typeof GenerationConfig>;

export interface ModelFiles {
  dir: string;
  config: ModelConfig;
  /** config.json as written (for writing a merged model's config back) */
  rawConfig: Record<string, unknown>;
  /** every expected tensor, mapped read-only (f16 converted); lm_head.weight is absent when tied */
  weights: Map<string, Tensor>;
  tokenizer: ModelTokenizer | null;
  generationConfig: GenerationConfig | null;
  checkpoint: SafetensorsCheckpoint;
  /** tensors in the checkpoint that the model does not use (an lm_head.weight beside tied embeddings, rotary inv_freq buffers) */
  ignoredTensors: string[];
  /** unmaps the weights */
  release(): void;
}

/** checkpoint tensors that transformers also skips when loading these architectures */
const IGNORABLE = [/\.rotary_emb\.inv_freq$/];

const LAYOUT = 'a Hugging Face model directory holds config.json, model.safetensors (or model.safetensors.index.json and its shards), tokenizer.json and tokenizer_config.json';

/** Loads a model directory; see ModelFiles. Throws ModelFileError naming the file, field or tensor at fault. */
export function loadModelFiles(dir: string, opts: LoadModelOptions = {}): ModelFiles {
  if (!existsSync(dir) || !statSync(dir).isDirectory()) throw new ModelFileError(`not a directory (${LAYOUT})`, { file: dir });
  const configFile = join(dir, 'config.json');
  if (!existsSync(configFile)) throw new ModelFileError(`missing config.json (${LAYOUT})`, { file: configFile });
  const { config, raw } = loadModelConfig(configFile);
  const checkpoint = SafetensorsCheckpoint.open(dir);
  const ckptFile = checkpoint.indexPath ?? checkpoint.files[0].path;

  const expected = expectedTensors(config);
  const expectedNames = new Set(expected.map((t) => t.name));
  const missing = expected.filter((t) => !checkpoint.has(t.name)).map((t) => t.name);
  if (missing.length) {
    const hint = config.tieWordEmbeddings ? '' : missing.includes('lm_head.weight') ? ' (config.json says tie_word_embeddings is false, so lm_head.weight must be stored)' : '';
    throw new ModelFileError(`the checkpoint lacks ${missing.length} tensor(s) that config.json implies: ${missing.slice(0, 6).join(', ')}${missing.length > 6 ? ', ...' : ''}${hint}`, { file: ckptFile });
  }
  for (const t of expected) {
    const { file, entry } = checkpoint.locate(t.name);
    if (entry.shape.length !== t.shape.length || entry.shape.some((s, i) => s !== t.shape[i])) {
      throw new ModelFileError(`shape [${entry.shape.join(', ')}] does not match [${t.shape.join(', ')}] implied by config.json`, { file: file.path, tensor: t.name });
    }
    if (entry.dtype !== 'F32' && entry.dtype !== 'BF16' && entry.dtype !== 'F16') {
      throw new ModelFileError(`dtype ${entry.dtype} is not a supported weight dtype (F32, BF16, F16)`, { file: file.path, tensor: t.name });
    }
  }
  const ignoredTensors: string[] = [];
  const unexpected: string[] = [];
  for (const name of checkpoint.names) {
    if (expectedNames.has(name)) continue;
    if (IGNORABLE.some((r) => r.test(name)) || (name === 'lm_head.weight' && config.tieWordEmbeddings)) ignoredTensors.push(name);
    else unexpected.push(name);
  }
  if (unexpected.length) {
    throw new ModelFileError(
      `the checkpoint holds ${unexpected.length} tensor(s) that a ${config.architecture} with this config.json does not have: ${unexpected.slice(0, 6).join(', ')}${unexpected.length > 6 ? ', ...' : ''} (a different architecture, or a config.json that does not belong to these weights)`,
      { file: ckptFile },
    );
  }

  let generationConfig: GenerationConfig | null = null;
  const genFile = join(dir, 'generation_config.json');
  if (existsSync(genFile)) {
    let json: unknown;
    try {
      json = JSON.parse(readFileSync(genFile, 'utf8'));
    } catch (e) {
      throw new ModelFileError(`cannot read generation_config.json: ${(e as Error).message}`, { file: genFile });
    }
    generationConfig = parseModelFile(GenerationConfig, json, genFile);
  }

  const tokenizer = opts.tokenizer === false ? null : loadTokenizer(dir, opts);
  if (tokenizer && tokenizer.vocabSize > config.vocabSize) {
    throw new ModelFileError(`the tokenizer has ids up to ${tokenizer.vocabSize - 1}, but the embedding has only vocab_size ${config.vocabSize} rows`, { file: configFile, path: 'vocab_size' });
  }

  const weights = new Map<string, Tensor>();
  try {
    for (const t of expected) weights.set(t.name, checkpoint.tensor(t.name, opts));
  } catch (e) {
    for (const w of weights.values()) w.release();
    throw e;
  }
  return {
    dir,
    config,
    rawConfig: raw,
    weights,
    tokenizer,
    generationConfig,
    checkpoint,
    ignoredTensors,
    release() {
      for (const w of weights.values()) if (!w.released) w.release();
    },
  };
}
