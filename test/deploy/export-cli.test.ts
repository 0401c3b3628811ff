// `starweave-ft export`, really started (dist/src/cli/main.js), on a real training run of the tiny model:
// every format writes its files and export.json (sizes and sha256 of what is on disk), prints the
// precision and file sizes; the exports load again (PEFT into a model with the run's logits, GGUF headers
// through @huggingface/gguf, the Modelfile's paths); bad invocations fail with the reason.
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gguf } from '@huggingface/gguf';
import { getLlama, LlamaLogLevel } from 'node-llama-cpp';
import type { Token } from 'node-llama-cpp';
import { startTraining } from '../../src/train/runner.js';
import { loadModelFiles } from '../../src/model/files.js';
import { LlamaModel } from '../../src/model/native-model.js';
import { applyLoraAdapter, readPeftAdapter } from '../../src/deploy/peft.js';
import type { ExportManifest } from '../../src/deploy/manifest.js';
import { baseConfig, tmp } from '../train/fixtures.js';
import { logitsOf, maxAbsDiff, softmax } from './helpers.js';

const repo = fileURLToPath(new URL('../..', import.meta.url));
const cli = join(repo, 'dist', 'src', 'cli', 'main.js');

function run(args: string[]) {
  return spawnSync(process.execPath, [cli, 'export', ...args], { encoding: 'utf8' });
}

let runDir: string;
let modelDir: string;
let out: string;
beforeAll(async () => {
  const job = startTraining(await baseConfig({ training: { max_steps: 2 }, eval: { every_steps: 0 } }));
  const r = await job.done;
  runDir = r.runDir;
  modelDir = JSON.parse(readFileSync(join(runDir, 'config.json'), 'utf8')).model.dir;
  out = tmp('sw-export-cli-');
}, 120_000);
afterAll(() => rmSync(out, { recursive: true, force: true }));

function checkManifest(dir: string, format: string): ExportManifest {
  const m = JSON.parse(readFileSync(join(dir, 'export.json'), 'utf8')) as ExportManifest;
  expect(m.format).toBe('starweave-export/1');
  expect(m.export).toBe(format);
  expect(m.baseModel).toMatchObject({ dir: modelDir, architecture: 'LlamaForCausalLM', dtype: 'f32' });
  expect(m.files.map((f) => f.path).sort()).toEqual(readdirSync(dir).filter((f) => f !== 'export.json').sort());
  for (const f of m.files) {
    expect(f.bytes).toBe(statSync(join(dir, f.path)).size);
    expect(f.sha256).toBe(createHash('sha256').update(readFileSync(join(dir, f.path))).digest('hex'));
  }
  expect(m.totalBytes).toBe(m.files.reduce((a, f) => a + f.bytes, 0));
  return m;
}

test('--help', () => {
  const r = run(['--help']);
  expect(r.status).toBe(0);
  expect(r.stdout).toMatch(/--format\s+peft\s/);
  expect(r.stdout).toContain('--dtype');
});

test('peft from a run: the adapter loads into a model with the run adapter\'s logits; prints precision and sizes', () => {
  const dir = join(out, 'peft');
  const r = run(['--run', runDir, '--format', 'peft', '--out', dir, '--dtype', 'bf16', '--base-name', 'HuggingFaceTB/SmolLM2-135M']);
  expect(r.stderr).toBe('');
  expect(r.status).toBe(0);
  expect(r.stdout).toMatch(/^precision bf16/m);
  expect(r.stdout).toMatch(/adapter_model\.safetensors\s+[\d.]+ KiB\s+adapter weights\s+28 BF16/);
  const m = checkManifest(dir, 'peft');
  expect(m.precision).toBe('bf16');
  expect(m.source).toEqual({ run: runDir, adapter: join(runDir, 'adapter') });
  expect(JSON.parse(readFileSync(join(dir, 'adapter_config.json'), 'utf8')).base_model_name_or_path).toBe('HuggingFaceTB/SmolLM2-135M');
  expect(m.lora).toMatchObject({ r: 4, loraAlpha: 8, targetModules: ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'] });
  const files = loadModelFiles(modelDir);
  const a = LlamaModel.fromFiles(files);
  const b = LlamaModel.fromFiles(files);
  try {
    applyLoraAdapter(a, readPeftAdapter(join(runDir, 'adapter'), { base: files.config }));
    applyLoraAdapter(b, readPeftAdapter(dir, { base: files.config }));
    const ids = [1, 40, 300, 120, 7, 99];
    const want = logitsOf(a, ids);
    const d = maxAbsDiff(logitsOf(b, ids), want);
    expect(d).toBeLessThan(1e-2); // bf16 rounding of the adapter
  } finally {
    a.dispose();
    b.dispose();
    files.release();
  }
});

test('merged, gguf, gguf-adapter and ollama from an adapter directory', async () => {
  const adapter = join(runDir, 'adapter');
  const merged = join(out, 'merged');
  let r = run(['--adapter', adapter, '--model', modelDir, '--format', 'merged', '--out', merged]);
  expect(r.status).toBe(0);
  expect(r.stdout).toMatch(/^precision f32/m);
  expect(checkManifest(merged, 'merged').details).toEqual({ adaptedTensors: 14 });
  expect(loadModelFiles(merged).config.numLayers).toBe(2);

  const g = join(out, 'gguf');
  r = run(['--adapter', adapter, '--model', modelDir, '--format', 'gguf', '--out', g, '--dtype', 'q8_0', '--name', 'starweave-tiny']);
  expect(r.status).toBe(0);
  expect(r.stdout).toMatch(/model\.gguf\s+[\d.]+ KiB\s+GGUF model \(adapter merged\)\s+(\d+ (F32|Q8_0)(, )?){2}/);
  const gm = checkManifest(g, 'gguf');
  expect(gm.precision).toBe('q8_0');
  expect(gm.files[0].tensorTypes).toEqual({ F32: 5, Q8_0: 15 });
  const parsed = await gguf(join(g, 'model.gguf'), { allowLocalFile: true });
  expect((parsed.metadata as unknown as Record<string, unknown>)['general.name']).toBe('starweave-tiny');

  const ga = join(out, 'gguf-adapter');
  r = run(['--adapter', adapter, '--model', modelDir, '--format', 'gguf-adapter', '--out', ga]);
  expect(r.status).toBe(0);
  expect(checkManifest(ga, 'gguf-adapter').files[0].tensorTypes).toEqual({ F32: 28 });

  for (const separate of [false, true]) {
    const o = join(out, `ollama-${separate}`);
    r = run(['--run', runDir, '--format', 'ollama', '--out', o, '--dtype', 'f16', ...(separate ? ['--separate-adapter'] : [])]);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(r.stdout).toContain(`ollama create NAME -f ${o}/Modelfile`);
    const m = checkManifest(o, 'ollama');
    expect(m.details).toMatchObject({ chatFamily: 'chatml', stops: ['<|im_end|>'], tokenizerPre: 'smaug-bpe' });
    const text = readFileSync(join(o, 'Modelfile'), 'utf8');
    const named = [...text.matchAll(/^(?:FROM|ADAPTER) \.\/(\S+)$/gm)].map((x) => x[1]);
    expect(named).toEqual(separate ? ['base.gguf', 'adapter.gguf'] : ['model.gguf']);
    for (const f of named) expect(existsSync(join(o, f))).toBe(true);
  }
});

test('the trained model in Ollama\'s files: llama.cpp on model.gguf, and on base.gguf + adapter.gguf, predicts as the run', async () => {
  const llama = await getLlama({ gpu: false, build: 'never', logLevel: LlamaLogLevel.error });
  const files = loadModelFiles(modelDir);
  const model = LlamaModel.fromFiles(files);
  try {
    applyLoraAdapter(model, readPeftAdapter(join(runDir, 'adapter'), { base: files.config }));
    const ids = files.tokenizer!.encodeChat([{ role: 'user', content: 'What is GenServer used for in STARWEAVE?' }]);
    const V = files.config.vocabSize;
    const ours = softmax(logitsOf(model, ids).subarray((ids.length - 1) * V));
    const base = LlamaModel.fromFiles(files);
    const plain = softmax(logitsOf(base, ids).subarray((ids.length - 1) * V));
    base.dispose();
    // the run's adapter moves the prediction far more than the engines differ
    expect(Math.max(...Array.from(ours, (p, i) => Math.abs(Math.log(p) - Math.log(plain[i]))))).toBeGreaterThan(2e-2);
    for (const [dir, gguf, lora] of [
      ['ollama-false', 'model.gguf', null],
      ['ollama-true', 'base.gguf', 'adapter.gguf'],
    ] as const) {
      const m = await llama.loadModel({ modelPath: join(out, dir, gguf) });
      const ctx = await m.createContext({ contextSize: 128, ...(lora ? { lora: { adapters: [{ filePath: join(out, dir, lora) }] } } : {}) });
      try {
        const toks = ids as Token[];
        const res = await ctx.getSequence().controlledEvaluate([
          ...toks.slice(0, -1),
          [toks[toks.length - 1], { generateNext: { probabilities: true, options: { temperature: 1, topK: 0, topP: 1, minP: 0 } } }],
        ]);
        const probs = res[res.length - 1]!.next.probabilities!;
        let d = 0;
        for (let i = 0; i < V; i++) d = Math.max(d, Math.abs(Math.log(probs.get(i as Token) ?? 0) - Math.log(ours[i])));
        expect(d).toBeLessThan(2e-3); // f16 weights
      } finally {
        await ctx.dispose();
        await m.dispose();
      }
    }
  } finally {
    model.dispose();
    files.release();
    await llama.dispose();
  }
});

test('bad invocations say what is wrong', () => {
  let r = run(['--run', runDir, '--out', join(out, 'x')]);
  expect(r.status).toBe(2);
  expect(r.stderr).toContain('--format and --out are required');
  r = run(['--run', runDir, '--format', 'peft', '--out', join(out, 'x'), '--dtype', 'q8_0']);
  expect(r.status).not.toBe(0);
  expect(r.stderr).toContain('--dtype q8_0 is not available for peft; choose f32, f16, bf16');
  r = run(['--model', modelDir, '--format', 'gguf-adapter', '--out', join(out, 'x')]);
  expect(r.stderr).toContain('gguf-adapter needs an adapter: give --run RUN_DIR or --adapter DIR');
  r = run(['--adapter', join(runDir, 'adapter'), '--format', 'merged', '--out', join(out, 'x')]);
  expect(r.status).toBe(0); // base_model_name_or_path is the (local) base directory the run used
  r = run(['--run', runDir, '--format', 'peft', '--out', join(out, 'x')]);
  expect(r.stderr).toMatch(/the output directory is not empty \(use --force/);
  const lonely = join(out, 'lonely-adapter');
  mkdirSync(lonely);
  writeFileSync(join(lonely, 'adapter_config.json'), JSON.stringify({ peft_type: 'LORA', r: 4, lora_alpha: 8, base_model_name_or_path: 'meta-llama/Llama-3.2-1B' }));
  r = run(['--adapter', lonely, '--format', 'gguf-adapter', '--out', join(out, 'y')]);
  expect(r.stderr).toContain('pass --model DIR, the base model directory (adapter_config.json\'s base_model_name_or_path "meta-llama/Llama-3.2-1B" is not a local directory; nothing is downloaded)');
  r = run(['--run', runDir, '--format', 'pickle', '--out', join(out, 'z')]);
  expect(r.stderr).toContain("unknown --format 'pickle'");
});

test('--format onnx: the run exported for onnxruntime (adapter merged), with its manifest; a GGUF dtype is refused', () => {
  const dir = join(out, 'onnx');
  const r = run(['--run', runDir, '--format', 'onnx', '--out', dir]);
  expect(r.status).toBe(0);
  expect(r.stdout).toMatch(/precision f32/);
  expect(r.stdout).toMatch(/model\.onnx\s/);
  const m = checkManifest(dir, 'onnx');
  expect(m.source).toMatchObject({ run: runDir, adapter: join(runDir, 'adapter') });
  expect(m.lora).not.toBeNull();
  const bad = run(['--run', runDir, '--format', 'onnx', '--dtype', 'q8_0', '--out', join(out, 'onnx-q8')]);
  expect(bad.status).not.toBe(0);
  expect(bad.stderr).toMatch(/--dtype q8_0 is not available for onnx; choose f32, int8/);
});
