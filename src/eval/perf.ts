// Performance benchmark of a model (issue 5, Evaluation): requests served one after another, each a chat
// prompt rendered with the model's template and generated greedily over the KV cache. Per request the
// clock splits at the first new token: prefill = the prompt's forward (and the first token's choice),
// decode = every later token, one decode step each. Reported: latency per request (p50 / p95 / mean),
// prefill tokens/s (prompt tokens / prefill time) and decode tokens/s (decode-step tokens / decode time).
// By default stop tokens are ignored, so every request decodes exactly max_new_tokens (comparable runs);
// `stopAtEos` serves them as a user would see them.
import { existsSync, readFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { nativeInfo } from '../../bindings/index.js';
import { loadModelFiles } from '../model/files.js';
import { LlamaModel } from '../model/native-model.js';
import type { ChatMessage, ModelTokenizer } from '../model/tokenizer.js';
import { applyLoraAdapter, readPeftAdapter } from '../deploy/peft.js';

export interface PerfOptions {
  /** chat prompts (messages) or plain user prompts; default: DEFAULT_PERF_PROMPTS */
  prompts?: readonly (string | readonly ChatMessage[])[];
  /** new tokens per request (default 32) */
  maxNewTokens?: number;
  /** passes over the prompts (default 1) */
  runs?: number;
  /** requests run first and not counted (default 1) */
  warmup?: number;
  /** stop a request at the tokenizer's end-of-turn / eos tokens (default false: always max_new_tokens) */
  stopAtEos?: boolean;
}

export interface PerfRequest {
  index: number;
  promptTokens: number;
  /** new tokens of the request (the first comes from the prefill's logits) */
  generatedTokens: number;
  /** tokens produced by decode steps: generatedTokens - 1 */
  decodeTokens: number;
  prefillSeconds: number;
  decodeSeconds: number;
  latencySeconds: number;
}

export interface Distribution {
  p50: number;
  p95: number;
  mean: number;
  min: number;
  max: number;
}

export interface PerfReport {
  format: 'starweave-perf/1';
  createdAt: string;
  model: string | null;
  adapter: string | null;
  settings: { maxNewTokens: number; runs: number; warmup: number; stopAtEos: boolean; prompts: number };
  machine: { isa: string; threads: number; cpus: number };
  requests: PerfRequest[];
  /** seconds per request */
  latency: Distribution;
  prefill: { tokens: number; seconds: number; tokensPerSecond: number; perRequestTokensPerSecond: Distribution };
  decode: { tokens: number; seconds: number; tokensPerSecond: number; perRequestTokensPerSecond: Distribution };
  generatedTokens: number;
}

/** A small built-in set in the project's domain, short to long. */
export const DEFAULT_PERF_PROMPTS: readonly string[] = [
  'What does a GenServer do?',
  'Explain how a Supervisor restarts a crashed child process in an OTP application.',
  'A node in the STARWEAVE cluster stops answering :pg group queries after a netsplit. Walk through how you would find the cause, which processes you would inspect, and how the cluster heals.',
  'Summarize the difference between ETS and Mnesia for storing pattern-recognition state that many processes read concurrently, and say when each is the better choice.',
];

/** Nearest-rank percentile of sorted values (p in 0..100). */
export function percentile(sorted: readonly number[], p: number): number {
  if (!sorted.length) return NaN;
  const k = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[k];
}

export function distribution(values: readonly number[]): Distribution {
  const s = [...values].sort((a, b) => a - b);
  return { p50: percentile(s, 50), p95: percentile(s, 95), mean: s.reduce((a, b) => a + b, 0) / Math.max(1, s.length), min: s[0] ?? NaN, max: s[s.length - 1] ?? NaN };
}

const asMessages = (p: string | readonly ChatMessage[]): ChatMessage[] => (typeof p === 'string' ? [{ role: 'user', content: p }] : p.map((m) => ({ ...m })));

/** Benchmarks a loaded model (with whatever adapter it has) on the prompts; see the file's head. */
export async function benchmarkModel(model: LlamaModel, tok: ModelTokenizer, opts: PerfOptions = {}, names: { model?: string | null; adapter?: string | null } = {}): Promise<PerfReport> {
  const prompts = (opts.prompts ?? DEFAULT_PERF_PROMPTS).map(asMessages);
  if (!prompts.length) throw new Error('the benchmark has no prompts');
  const maxNewTokens = opts.maxNewTokens ?? 32;
  const runs = opts.runs ?? 1;
  const warmup = opts.warmup ?? 1;
  if (!Number.isInteger(maxNewTokens) || maxNewTokens < 1) throw new Error(`maxNewTokens must be a positive integer, got ${maxNewTokens}`);
  if (!Number.isInteger(runs) || runs < 1) throw new Error(`runs must be a positive integer, got ${runs}`);
  const encoded = prompts.map((m) => tok.encodeChat(m));
  const stopTokenIds = opts.stopAtEos ? [...tok.endOfTurnIds] : [];
  const padTokenId = tok.padTokenId ?? tok.eosTokenId ?? 0;

  const one = async (ids: number[]): Promise<Omit<PerfRequest, 'index'>> => {
    let first = NaN;
    const t0 = performance.now();
    const r = await model.generate([ids], { maxNewTokens, stopTokenIds, padTokenId }, { onToken: (e) => (e.step === 0 ? (first = performance.now()) : undefined) });
    const t1 = performance.now();
    const generated = r.tokens[0].length;
    if (!Number.isFinite(first)) first = t1;
    return {
      promptTokens: ids.length,
      generatedTokens: generated,
      decodeTokens: Math.max(0, generated - 1),
      prefillSeconds: (first - t0) / 1000,
      decodeSeconds: (t1 - first) / 1000,
      latencySeconds: (t1 - t0) / 1000,
    };
  };

  for (let w = 0; w < warmup; w++) await one(encoded[w % encoded.length]);
  const requests: PerfRequest[] = [];
  for (let run = 0; run < runs; run++) for (let i = 0; i < encoded.length; i++) requests.push({ index: requests.length, ...(await one(encoded[i])) });

  const sum = (f: (r: PerfRequest) => number) => requests.reduce((s, r) => s + f(r), 0);
  const prefillTokens = sum((r) => r.promptTokens);
  const prefillSeconds = sum((r) => r.prefillSeconds);
  const decodeTokens = sum((r) => r.decodeTokens);
  const decodeSeconds = sum((r) => r.decodeSeconds);
  const info = nativeInfo();
  return {
    format: 'starweave-perf/1',
    createdAt: new Date().toISOString(),
    model: names.model ?? null,
    adapter: names.adapter ?? null,
    settings: { maxNewTokens, runs, warmup, stopAtEos: opts.stopAtEos ?? false, prompts: prompts.length },
    machine: { isa: info.isa.active, threads: info.threads, cpus: cpus().length },
    requests,
    latency: distribution(requests.map((r) => r.latencySeconds)),
    prefill: {
      tokens: prefillTokens,
      seconds: prefillSeconds,
      tokensPerSecond: prefillTokens / prefillSeconds,
      perRequestTokensPerSecond: distribution(requests.map((r) => r.promptTokens / r.prefillSeconds)),
    },
    decode: {
      tokens: decodeTokens,
      seconds: decodeSeconds,
      tokensPerSecond: decodeSeconds > 0 ? decodeTokens / decodeSeconds : 0,
      perRequestTokensPerSecond: distribution(requests.filter((r) => r.decodeTokens > 0).map((r) => r.decodeTokens / r.decodeSeconds)),
    },
    generatedTokens: sum((r) => r.generatedTokens),
  };
}

/** Benchmarks a Hugging Face model directory, with a PEFT adapter directory applied when given. */
export async function benchmarkModelDir(modelDir: string, opts: PerfOptions & { adapterDir?: string } = {}): Promise<PerfReport> {
  const files = loadModelFiles(modelDir);
  try {
    if (!files.tokenizer) throw new Error(`${modelDir}: no tokenizer.json (the benchmark renders chat prompts with the model's template)`);
    const model = LlamaModel.fromFiles(files);
    try {
      if (opts.adapterDir) applyLoraAdapter(model, readPeftAdapter(opts.adapterDir, { base: files.config }));
      return await benchmarkModel(model, files.tokenizer, opts, { model: modelDir, adapter: opts.adapterDir ?? null });
    } finally {
      model.dispose();
    }
  } finally {
    files.release();
  }
}

/**
 * Reads a prompts file: .jsonl (one per line: {"messages": [...]} or {"prompt": "..."}) or text (one
 * prompt per non-empty line). Errors name the file and line.
 */
export function readPromptsFile(file: string): (string | ChatMessage[])[] {
  if (!existsSync(file)) throw new Error(`${file}: no such file`);
  const lines = readFileSync(file, 'utf8').split('\n');
  const out: (string | ChatMessage[])[] = [];
  const jsonl = /\.jsonl$/i.test(file);
  lines.forEach((l, i) => {
    if (!l.trim()) return;
    if (!jsonl) {
      out.push(l.trim());
      return;
    }
    let o: unknown;
    try {
      o = JSON.parse(l);
    } catch (e) {
      throw new Error(`${file}:${i + 1}: not valid JSON: ${(e as Error).message}`);
    }
    const rec = o as { prompt?: unknown; messages?: unknown };
    if (typeof rec.prompt === 'string') out.push(rec.prompt);
    else if (Array.isArray(rec.messages) && rec.messages.length && rec.messages.every((m) => m && typeof m.content === 'string' && ['system', 'user', 'assistant'].includes(m.role))) {
      // a record with its answer: the prompt is everything before the last assistant turn
      const msgs = rec.messages as ChatMessage[];
      const last = msgs.map((m) => m.role).lastIndexOf('assistant');
      out.push(last > 0 ? msgs.slice(0, last) : msgs);
    } else throw new Error(`${file}:${i + 1}: expected {"prompt": "..."} or {"messages": [{"role": "system"|"user"|"assistant", "content": "..."}]}`);
  });
  if (!out.length) throw new Error(`${file}: no prompts`);
  return out;
}
