// The performance benchmark of a model: output structure and sane figures (positive times and rates,
// token counts that add up), never timed thresholds. Through the library (model dir, + adapter), the CLI,
// and a training run's evaluation (eval.json's perf).
import { execFile } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { benchmarkModelDir, distribution, percentile, readPromptsFile } from '../../src/eval/perf.js';
import type { PerfReport } from '../../src/eval/perf.js';
import { loadModelFiles } from '../../src/model/files.js';
import { renderRunReport } from '../../src/eval/report-html.js';
import { startTraining } from '../../src/train/runner.js';
import { baseConfig, tinyModelDir, tmp } from '../train/fixtures.js';

const run = promisify(execFile);

function expectSane(r: PerfReport, maxNewTokens: number, exact: boolean) {
  expect(r.format).toBe('starweave-perf/1');
  expect(r.requests.length).toBe(r.settings.prompts * r.settings.runs);
  for (const q of r.requests) {
    if (exact) expect(q.generatedTokens).toBe(maxNewTokens);
    else expect(q.generatedTokens).toBeLessThanOrEqual(maxNewTokens);
    expect(q.generatedTokens).toBeGreaterThanOrEqual(1);
    expect(q.decodeTokens).toBe(q.generatedTokens - 1);
    expect(q.promptTokens).toBeGreaterThan(0);
    expect(q.prefillSeconds).toBeGreaterThan(0);
    expect(q.decodeSeconds).toBeGreaterThanOrEqual(0);
    expect(q.latencySeconds).toBeCloseTo(q.prefillSeconds + q.decodeSeconds, 9);
  }
  const sum = (f: (q: PerfReport['requests'][number]) => number) => r.requests.reduce((s, q) => s + f(q), 0);
  expect(r.generatedTokens).toBe(sum((q) => q.generatedTokens));
  expect(r.decode.tokens).toBe(r.generatedTokens - r.requests.length);
  expect(r.prefill.tokens).toBe(sum((q) => q.promptTokens));
  expect(r.prefill.seconds).toBeCloseTo(sum((q) => q.prefillSeconds), 9);
  for (const v of [r.prefill.tokensPerSecond, r.decode.tokensPerSecond, r.latency.p50, r.latency.p95, r.prefill.perRequestTokensPerSecond.p50]) {
    expect(Number.isFinite(v)).toBe(true);
    expect(v).toBeGreaterThan(0);
  }
  expect(r.prefill.tokensPerSecond).toBeCloseTo(r.prefill.tokens / r.prefill.seconds, 6);
  expect(r.decode.tokensPerSecond).toBeCloseTo(r.decode.tokens / r.decode.seconds, 6);
  expect(r.latency.min).toBeLessThanOrEqual(r.latency.p50);
  expect(r.latency.p50).toBeLessThanOrEqual(r.latency.p95);
  expect(r.latency.p95).toBeLessThanOrEqual(r.latency.max);
}

describe('performance benchmark', () => {
  test('percentiles: nearest rank', () => {
    expect(percentile([1, 2, 3, 4], 50)).toBe(2);
    expect(percentile([1, 2, 3, 4], 95)).toBe(4);
    expect(percentile([5], 95)).toBe(5);
    expect(distribution([3, 1, 2])).toEqual({ p50: 2, p95: 3, mean: 2, min: 1, max: 3 });
    const hundred = Array.from({ length: 100 }, (_, i) => i + 1);
    expect([percentile(hundred, 50), percentile(hundred, 95)]).toEqual([50, 95]);
  });

  test('a model directory: every request decodes max_new_tokens; prompt tokens are the template rendering', async () => {
    const dir = await tinyModelDir();
    const prompts = ['What is a GenServer?', [{ role: 'system' as const, content: 'Be brief.' }, { role: 'user' as const, content: 'Name one OTP behaviour and what it is for.' }]];
    const r = await benchmarkModelDir(dir, { prompts, maxNewTokens: 6, runs: 2, warmup: 1 });
    expectSane(r, 6, true);
    expect(r.requests).toHaveLength(4);
    expect(r.model).toBe(dir);
    expect(r.adapter).toBeNull();
    const files = loadModelFiles(dir);
    try {
      const n = [files.tokenizer!.encodeChat([{ role: 'user', content: prompts[0] as string }]).length, files.tokenizer!.encodeChat(prompts[1] as any).length];
      expect(r.requests.map((q) => q.promptTokens)).toEqual([...n, ...n]); // two passes over the prompts
    } finally {
      files.release();
    }
    // stopping at end-of-turn: at most max_new_tokens
    expectSane(await benchmarkModelDir(dir, { prompts: ['hello'], maxNewTokens: 4, warmup: 0, stopAtEos: true }), 4, false);
  }, 60_000);

  test('with a trained adapter, from the CLI (text and --json), and in a run evaluation', async () => {
    const c = await baseConfig({ training: { max_steps: 2 }, eval: { every_steps: 0, at_start: false, metrics: { generate_examples: 0, report: false, compare_base: false, perf: { requests: 2, max_new_tokens: 3, warmup: 0 } } }, checkpoint: { every_steps: 0 } });
    const res = await startTraining(c).done;
    // in the run: eval.json carries the benchmark of the tuned model on held-out prompts
    const ev = JSON.parse(readFileSync(join(res.runDir, 'eval.json'), 'utf8'));
    expectSane(ev.perf, 3, true);
    expect(ev.perf.requests).toHaveLength(2);
    expect(renderRunReport(res.runDir)).toMatch(/<h2>Performance<\/h2>.*<table class="perf">.*<td>[\d.]+ ms<\/td><td>[\d.]+ ms<\/td><td>[\d.]+<\/td><td>[\d.]+<\/td>/s);

    const withAdapter = await benchmarkModelDir(await tinyModelDir(), { adapterDir: res.adapterDir!, prompts: ['What is ETS?'], maxNewTokens: 3, warmup: 0 });
    expectSane(withAdapter, 3, true);
    expect(withAdapter.adapter).toBe(res.adapterDir);

    const main = join(process.cwd(), 'dist', 'src', 'cli', 'main.js');
    const pf = join(tmp(), 'prompts.jsonl');
    writeFileSync(pf, '{"prompt": "What is a Registry?"}\n{"messages": [{"role": "user", "content": "Explain :pg."}, {"role": "assistant", "content": "Process groups."}]}\n');
    const out = join(tmp(), 'perf.json');
    const j = await run(process.execPath, [main, 'eval', 'perf', '--run', res.runDir, '--prompts', pf, '--max-new-tokens', '4', '--warmup', '0', '--json', '--out', out]);
    const r = JSON.parse(j.stdout) as PerfReport;
    expectSane(r, 4, true);
    expect(r.requests).toHaveLength(2);
    expect(r.adapter).toBe(join(res.runDir, 'adapter'));
    expect(JSON.parse(readFileSync(out, 'utf8')).requests).toHaveLength(2);
    const text = await run(process.execPath, [main, 'eval', 'perf', '--model', await tinyModelDir(), '--max-new-tokens', '2']);
    expect(text.stdout).toMatch(/latency per request: p50 [\d.]+ ms\s+p95 [\d.]+ ms/);
    expect(text.stdout).toMatch(/prefill: \d+ prompt tokens .* tokens\/s/);
    expect(text.stdout).toMatch(/decode: +4 tokens/); // 4 default prompts x (2 - 1) decode steps
    const bad = await run(process.execPath, [main, 'eval', 'perf', '--model', await tinyModelDir(), '--max-new-tokens', '0']).catch((e) => e);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/--max-new-tokens needs an integer >= 1/);
  }, 120_000);

  test('prompts files: jsonl (prompt / messages up to the last assistant turn), text; errors name file:line', () => {
    const d = tmp();
    const j = join(d, 'p.jsonl');
    writeFileSync(j, '{"prompt": "a"}\n\n{"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "r"}]}\n');
    expect(readPromptsFile(j)).toEqual(['a', [{ role: 'user', content: 'q' }]]);
    const t = join(d, 'p.txt');
    writeFileSync(t, 'one\n\n two \n');
    expect(readPromptsFile(t)).toEqual(['one', 'two']);
    writeFileSync(j, '{"prompt": "a"}\n{"messages": [{"role": "bot", "content": "q"}]}\n');
    expect(() => readPromptsFile(j)).toThrow(/p\.jsonl:2: expected/);
    writeFileSync(j, '{nope\n');
    expect(() => readPromptsFile(j)).toThrow(/p\.jsonl:1: not valid JSON/);
  });
});
