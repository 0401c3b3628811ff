// starweave-ft review export RUN_DIR [--out DIR] [--seed N] | review import RUN_DIR --verdicts FILE [--json]
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { exportReviewSheet, scoreReview } from '../eval/review.js';

export const REVIEW_USAGE = `starweave-ft review export RUN_DIR [--out DIR] [--seed N]
  a blind A/B sheet (review.jsonl, review.csv) of base vs tuned answers from the run's eval.json, and
  its key (review-key.json); reviewers fill the verdict column with a, b or tie
starweave-ft review import RUN_DIR --verdicts FILE [--out DIR] [--json]
  unblinds the verdicts: the tuned adapter's win rate with a 95% confidence interval`;

function opt(args: string[], name: string): string | undefined {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
}

export async function runReviewCommand(args: string[]): Promise<number> {
  const [cmd, runDir] = args;
  if (!runDir || (cmd !== 'export' && cmd !== 'import')) {
    console.error(REVIEW_USAGE);
    return 2;
  }
  const out = resolve(opt(args, '--out') ?? join(runDir, 'review'));
  if (cmd === 'export') {
    const evalFile = join(runDir, 'eval.json');
    if (!existsSync(evalFile)) throw new Error(`review: ${evalFile} not found (run with an eval.metrics section)`);
    const ev = JSON.parse(readFileSync(evalFile, 'utf8')) as { base?: { samples?: [] } | null; tuned?: { samples?: [] } };
    const seed = Number(opt(args, '--seed') ?? 1);
    const r = exportReviewSheet(ev.base?.samples ?? [], ev.tuned?.samples ?? [], out, seed);
    console.log(`review sheet: ${r.items} items\n${r.files.map((f) => '  ' + f).join('\n')}\n(give reviewers review.csv or review.jsonl, keep review-key.json)`);
    return 0;
  }
  const verdicts = opt(args, '--verdicts');
  if (!verdicts) throw new Error('review import needs --verdicts FILE');
  const res = scoreReview(resolve(verdicts), join(out, 'review-key.json'), join(out, 'review.jsonl'));
  if (args.includes('--json')) console.log(JSON.stringify(res));
  else {
    const pct = (v: number) => `${(100 * v).toFixed(1)}%`;
    console.log(`${res.judged} of ${res.items} items judged: tuned ${res.tunedWins}, base ${res.baseWins}, ties ${res.ties}`);
    if (res.winRate !== null && res.ci95) console.log(`tuned win rate ${pct(res.winRate)} (95% CI ${pct(res.ci95[0])}–${pct(res.ci95[1])}, ties excluded)`);
  }
  return 0;
}
