#!/usr/bin/env node
// starweave-ft: the command line. Thin: every command calls the library.
import { fitLoraDemo, nativeInfo, NativeLoadError } from '../index.js';
import { runDataCommand } from './data.js';
import { runPortCommand } from '../port/cli.js';
import { runTrainCommand } from './train.js';
import { runDemo } from './demo.js';
import { runReviewCommand } from './review.js';
import { runExportCommand } from './export.js';
import { runRegistryCommand } from './registry.js';
import { runPipelineCommand } from './pipeline.js';
import { runEvalCommand } from './eval.js';

const USAGE = `starweave-ft <command>

commands:
  data <build|validate|list|show|diff|curate|generate> ...
                    the dataset pipeline (starweave-ft data --help)
  train --config FILE [--run-dir DIR] | train --resume RUN_DIR
                    a LoRA training run (examples/run.json: the shipped corpus on a tiny generated model)
  train --nodes a@host,b@host --config FILE [--runs-dir DIR] [--resume]
                    one run spread over BEAM nodes (data parallel; Elixir's mix starweave.train)
  runs list|show|compare
                    the training runs, their metrics, evaluation and HTML reports
  pipeline --config FILE [--max-rounds N] | pipeline show DIR
                    dataset build -> train -> evaluate -> gate, and on Fail back to preprocessing with
                    the failing categories oversampled and queued for review, up to N rounds
  eval perf --model DIR [--adapter DIR] [--prompts FILE]
                    latency per request (p50/p95), prefill and decode tokens/s of a model
  sweep --config FILE --set training.lr=1e-4,1e-3 [--set ...]
                    a grid over hyperparameters, ranked on held-out loss
  review export|import RUN_DIR ...
                    blind A/B human review sheets of base vs tuned answers, and the win rate
  export --run RUN_DIR | --adapter DIR [--model DIR] --format peft|merged|gguf|gguf-adapter|ollama --out DIR
                    the tuned model as a PEFT adapter, a merged Hugging Face model, GGUF (llama.cpp) or
                    GGUF + Ollama Modelfile, with an export.json manifest (starweave-ft export --help)
  registry list|show|register|tag|promote|rollback|history|test|verify ...
                    the model registry: versions with lineage, channels, promote (after an integration
                    suite) and one-step rollback (starweave-ft registry --help)
  port [--workspace DIR]
                    the Erlang-port sidecar (frames on fds 3/4; the Elixir client starts it)
  info              the native core: ISA in use, threads, CUDA devices, build hash
  demo [--model DIR]
                    the main job on the embedded default: dataset from examples/, tiny base model (or
                    DIR, a Hugging Face model directory), LoRA training, base-vs-tuned evaluation, report
  layer-demo [--steps N]
                    fit a LoRA adapter on one bf16 linear layer with the native core (loss falls)
  help              this text`;

function flag(args: string[], name: string, fallback: number): number {
  const i = args.indexOf(name);
  if (i < 0) return fallback;
  const v = Number(args[i + 1]);
  if (!Number.isFinite(v) || v <= 0) throw new Error(`${name} needs a positive number, got '${args[i + 1] ?? ''}'`);
  return v;
}

async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  switch (cmd) {
    case 'data':
      return runDataCommand(rest);
    case 'port':
      return runPortCommand(rest);
    case 'review':
      return runReviewCommand(rest);
    case 'export':
      return runExportCommand(rest);
    case 'registry':
      return runRegistryCommand(rest);
    case 'pipeline':
      return runPipelineCommand(rest);
    case 'eval':
      return runEvalCommand(rest);
    case 'train':
    case 'runs':
    case 'sweep':
      return runTrainCommand([cmd, ...rest]);
    case 'info': {
      console.log(JSON.stringify(nativeInfo(), null, 2));
      return 0;
    }
    case 'demo':
      return runDemo(rest);
    case 'layer-demo': {
      const steps = flag(rest, '--steps', 60);
      console.log(`fitting a rank-8 LoRA adapter on a frozen bf16 256x256 linear layer (512 tokens, ${steps} steps)`);
      const res = await fitLoraDemo({
        steps,
        onStep: (step, loss, gn) => {
          if (step === 1 || step % 10 === 0 || step === steps) console.log(`step ${String(step).padStart(4)}  loss ${loss.toExponential(4)}  grad_norm ${gn.toFixed(4)}`);
        },
      });
      const drop = res.initialLoss / res.finalLoss;
      console.log(`loss ${res.initialLoss.toExponential(3)} -> ${res.finalLoss.toExponential(3)} (${drop.toFixed(1)}x lower), ${res.millisPerStep.toFixed(2)} ms/step`);
      return res.finalLoss < res.initialLoss ? 0 : 1;
    }
    case undefined:
    case 'help':
    case '--help':
    case '-h':
      console.log(USAGE);
      return 0;
    default:
      console.error(`starweave-ft: unknown command '${cmd}'\n\n${USAGE}`);
      return 2;
  }
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (e: unknown) => {
    if (e instanceof NativeLoadError) console.error(`starweave-ft: ${e.message}`);
    else console.error(`starweave-ft: ${e instanceof Error ? e.message : String(e)}`);
    process.exit(1);
  },
);
