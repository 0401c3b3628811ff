// `starweave-ft demo [--model DIR]`: the main job on the embedded default. Builds the dataset from the
// shipped corpus (examples/), makes the tiny base model (or uses a Hugging Face model directory given
// with --model), trains a LoRA adapter with progress, evaluates base vs tuned, writes the report, and
// says where everything went. Everything is written under ./.starweave/ in the current directory.
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { packageRoot } from '../../bindings/index.js';
import { runTrainCommand } from './train.js';

export async function runDemo(args: string[]): Promise<number> {
  const i = args.indexOf('--model');
  const modelDir = i >= 0 ? args[i + 1] : undefined;
  if (i >= 0 && !modelDir) throw new Error('--model needs a Hugging Face model directory');
  const root = packageRoot();
  const config = JSON.parse(readFileSync(join(root, 'examples', 'run.json'), 'utf8')) as Record<string, any>;
  const work = resolve('.starweave');
  mkdirSync(work, { recursive: true });
  config.model = modelDir ? { dir: resolve(modelDir) } : { ...config.model, dir: join(work, 'models', 'tiny') };
  config.dataset = { ...config.dataset, store: join(work, 'datasets'), build: join(root, 'examples', 'dataset.json') };
  config.output = { ...config.output, runs_dir: join(work, 'runs') };
  const file = join(work, 'demo-run.json');
  writeFileSync(file, JSON.stringify(config, null, 2) + '\n');
  console.log(`demo: the shipped STARWEAVE corpus -> dataset -> ${modelDir ? modelDir : 'a tiny generated Llama-layout model'} -> LoRA -> evaluation -> report`);
  console.log(`demo: run config written to ${file}`);
  const code = await runTrainCommand(['train', '--config', file]);
  const runsDir = join(work, 'runs');
  const latest = existsSync(runsDir)
    ? readdirSync(runsDir)
        .map((n) => join(runsDir, n))
        .sort((a, b) => statSync(b).mtimeMs - statSync(a).mtimeMs)[0]
    : undefined;
  if (code === 0 && latest) {
    const evalFile = join(latest, 'eval.json');
    if (existsSync(evalFile)) {
      const ev = JSON.parse(readFileSync(evalFile, 'utf8')) as {
        base?: { loss?: number; tokenAccuracy?: number } | null;
        tuned?: { loss?: number; tokenAccuracy?: number };
        gate?: { passed?: boolean };
      };
      const f = (v: number | undefined) => (typeof v === 'number' ? v.toFixed(4) : '—');
      console.log(`held-out loss: base ${f(ev.base?.loss)} -> tuned ${f(ev.tuned?.loss)}; token accuracy: base ${f(ev.base?.tokenAccuracy)} -> tuned ${f(ev.tuned?.tokenAccuracy)}`);
      if (ev.gate) console.log(`gate: ${ev.gate.passed ? 'passed' : 'failed'} (details in ${evalFile})`);
    }
    console.log(`run directory: ${latest}`);
    console.log(`report: ${join(latest, 'report.html')}`);
    console.log(`dataset store: ${join(work, 'datasets')}   (starweave-ft data list --store ${join(work, 'datasets')})`);
  }
  return code;
}
