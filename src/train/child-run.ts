// A training run in its own process: `node dist/src/train/child-run.js CONFIG.json RUN_DIR [--resume]`.
// Prints one JSON line per event ({"type":"step",...}); the SIGKILL-resume test drives it.
import { readFileSync } from 'node:fs';
import { startTraining } from './runner.js';

async function main(): Promise<number> {
  const [configFile, runDir, flag] = process.argv.slice(2);
  const resume = flag === '--resume';
  const config = resume ? null : (JSON.parse(readFileSync(configFile, 'utf8')) as unknown);
  const job = startTraining(config as never, { runDir, resume });
  for await (const e of job) {
    if (e.type === 'failed') {
      process.stdout.write(JSON.stringify({ type: 'failed', message: e.error.message }) + '\n');
      return 1;
    }
    if (e.type === 'start') process.stdout.write(JSON.stringify({ type: 'start', resumedFromStep: e.resumedFromStep }) + '\n');
    else if (e.type === 'done') process.stdout.write(JSON.stringify({ type: 'done', status: e.result.status, steps: e.result.steps }) + '\n');
    else process.stdout.write(JSON.stringify(e) + '\n');
  }
  return 0;
}

main().then(
  (code) => process.exit(code),
  (e: unknown) => {
    process.stderr.write(`${e instanceof Error ? e.message : String(e)}\n`);
    process.exit(1);
  },
);
