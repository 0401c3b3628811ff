// The Fail -> back to preprocessing loop, end to end on the tiny model: a dataset built from a pipeline
// config where one category is scarce, a gate on per-category token accuracy that the first round fails
// on that category; the run writes its remediation plan (failing category, metrics, dataset version, the
// next training mix, a review queue), the pipeline rebuilds the dataset (a curation decision recorded
// between rounds gives a new version), trains with the category oversampled and passes. The CLI runs the
// same loop from a YAML config and exits 1 when the gate never passes.
import { execFile, spawn } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { recordDecision } from '../../src/data/curation.js';
import { runPipeline, resumePipeline, readPipelineReport, PipelineError } from '../../src/pipeline/pipeline.js';
import type { PipelineEvent } from '../../src/pipeline/pipeline.js';
import { readRemediation } from '../../src/eval/remediation.js';
import { renderRunReport } from '../../src/eval/report-html.js';
import { listRuns } from '../../src/train/runs.js';
import { tinyModelDir, tmp } from '../train/fixtures.js';

const run = promisify(execFile);
const WORDS = ['alpha', 'beta', 'gamma', 'delta', 'omega', 'sigma', 'kappa', 'lambda', 'theta', 'zeta'];

/** 24 easy code_understanding conversations (one fixed answer) and 8 varied system_interaction ones. */
function writeData(dir: string): string {
  const lines: string[] = [];
  for (let i = 0; i < 8; i++)
    lines.push(
      JSON.stringify({
        category: 'system_interaction',
        messages: [
          { role: 'user', content: `What is the state of node ${WORDS[i % 10]}-${i}?` },
          { role: 'assistant', content: `Node ${WORDS[(i * 7) % 10]}-${i} has ${(i * 13) % 17} peers, ${(i * 5) % 11} queued jobs and ${WORDS[(i * 3) % 10]} mode.` },
        ],
      }),
    );
  for (let i = 0; i < 24; i++)
    lines.push(
      JSON.stringify({
        category: 'code_understanding',
        messages: [
          { role: 'user', content: `Check module ${WORDS[i % 10]} number ${i} for the code review.` },
          { role: 'assistant', content: 'zzzz zzzz zzzz zzzz zzzz zzzz zzzz zzzz' },
        ],
      }),
    );
  writeFileSync(join(dir, 'data.jsonl'), lines.join('\n') + '\n');
  const file = join(dir, 'dataset.json');
  writeFileSync(
    file,
    JSON.stringify({ name: 'pipe', sources: [{ name: 'logs', kind: 'interactions', path: 'data.jsonl' }], dedup: { near: false }, split: { seed: 1, heldOutFraction: 0.25 }, curation: { file: 'curation.jsonl' } }),
  );
  return file;
}

async function pipelineConfig(dir: string, gate: Record<string, number>) {
  return {
    name: 'pipe',
    model: { dir: await tinyModelDir() },
    dataset: { store: join(dir, 'store'), build: writeData(dir) },
    lora: { r: 8, lora_alpha: 16, lora_dropout: 0, target_modules: 'all-linear' },
    training: { epochs: 6, micro_batch: 4, max_seq_len: 192, lr: 1e-2, warmup_steps: 1, seed: 3 },
    eval: {
      every_steps: 0,
      at_start: false,
      metrics: { max_examples: 32, generate_examples: 2, max_new_tokens: 8, token_accuracy_every_eval: false, report: false, gate, remediation: { oversample_factor: 4, review_examples: 3 } },
    },
    checkpoint: { every_steps: 0, keep_last: 1 },
    output: { runs_dir: join(dir, 'runs') },
  };
}

describe('pipeline: Fail -> preprocessing -> retrain', () => {
  test('round 1 fails on the scarce category, round 2 trains it oversampled on a rebuilt dataset and passes', async () => {
    const dir = tmp('sw-pipe-');
    const config = await pipelineConfig(dir, { min_category_token_accuracy: 0.45 });
    const events: PipelineEvent[] = [];
    let reviewed: string | undefined;
    const report = await runPipeline(config as any, {
      dir: join(dir, 'p'),
      maxRounds: 3,
      onEvent: (e) => events.push(e),
      // a reviewer corrects the first flagged training record (the curation file is the dataset pipeline's)
      afterFailedRound: (plan) => {
        const item = plan.review.find((r) => r.kind === 'train_record' && r.hash)!;
        reviewed = item.hash;
        recordDecision(join(dir, 'curation.jsonl'), {
          hash: item.hash,
          decision: 'correct',
          by: 'test',
          record: { category: 'system_interaction', messages: item.messages!.map((m) => (m.role === 'assistant' ? { ...m, content: m.content.replace(' mode.', ' mode (checked).') } : m)) as any },
        });
        return true;
      },
    });

    expect(report.status).toBe('passed');
    expect(report.rounds.map((r) => r.gate?.passed)).toEqual([false, true]);
    const [r1, r2] = report.rounds;
    // lineage: dataset versions (the curation decision made a new one), run dirs, mixes, gate results
    expect(r1.dataset?.versionId).toMatch(/^[0-9a-f]{16}$/);
    expect(r2.dataset?.versionId).toMatch(/^[0-9a-f]{16}$/);
    expect(r2.dataset?.versionId).not.toBe(r1.dataset?.versionId);
    expect(r1.runDir).toBe(join(dir, 'p', 'round-1'));
    expect(r1.categoryWeights).toEqual({});
    expect(r1.failingCategories).toEqual(['system_interaction']);
    expect(r2.categoryWeights).toEqual({ system_interaction: 4 });
    expect(r2.failingCategories).toEqual([]);
    expect(r2.remediation).toBeNull();
    expect(readPipelineReport(join(dir, 'p'))).toEqual(report);
    expect(existsSync(join(dir, 'p', 'compare.html'))).toBe(true);
    // the pipeline folder is not a run (no config.json); its rounds are
    expect(existsSync(join(dir, 'p', 'config.json'))).toBe(false);
    expect(listRuns(join(dir, 'p')).map((r) => r.dir).sort()).toEqual([r1.runDir, r2.runDir]);

    // round 1's remediation plan: the failing check and category with its metrics, the dataset, the next mix
    const plan = readRemediation(r1.runDir)!;
    expect(plan.dataset).toMatchObject({ kind: 'store', versionId: r1.dataset?.versionId });
    expect(plan.failedChecks.map((c) => c.name)).toEqual(['min_category_token_accuracy[system_interaction]']);
    const fc = plan.failingCategories[0];
    expect(fc).toMatchObject({ category: 'system_interaction', weight: 1, nextWeight: 4, trainRecords: 6, heldoutRecords: 2 });
    expect(fc.tuned.tokenAccuracy!).toBeLessThan(0.45);
    expect(plan.categoryWeights).toEqual({ system_interaction: 4 });
    expect(plan.changesMix).toBe(true);
    const queue = readFileSync(join(r1.runDir, 'review-queue.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    expect(queue.filter((q) => q.kind === 'train_record')).toHaveLength(3);
    expect(queue.every((q) => q.category === 'system_interaction')).toBe(true);
    expect(queue[queue.length - 1].origin).toMatchObject({ source: 'logs' });
    expect(reviewed).toMatch(/^[0-9a-f]{64}$/);
    // the run's HTML report shows the plan
    const html = renderRunReport(r1.runDir);
    expect(html).toMatch(/<h2>Remediation<\/h2>.*<td>system_interaction<\/td><td>min_category_token_accuracy\[system_interaction\]<\/td><td>[\d.]+%<\/td><td>6<\/td><td>1<\/td><td>4<\/td>/s);
    expect(renderRunReport(r2.runDir)).not.toContain('<h2>Remediation</h2>');
    const run1 = JSON.parse(readFileSync(join(r1.runDir, 'run.json'), 'utf8'));
    expect(run1.gate).toMatchObject({ passed: false, remediation: 'remediation.json' });

    // round 2 trained the category 4x and its accuracy cleared the gate
    const ev2 = JSON.parse(readFileSync(join(r2.runDir, 'eval.json'), 'utf8'));
    expect(ev2.tuned.categories.system_interaction.tokenAccuracy).toBeGreaterThanOrEqual(0.45);
    const run2 = JSON.parse(readFileSync(join(r2.runDir, 'run.json'), 'utf8'));
    expect(run2.preflight.categoryMix).toEqual({ system_interaction: 24, code_understanding: 18 });
    expect(JSON.parse(readFileSync(join(r2.runDir, 'config.json'), 'utf8')).training.category_weights).toEqual({ system_interaction: 4 });

    // events in order
    expect(events.filter((e) => e.type !== 'run').map((e) => e.type)).toEqual(['round', 'gate', 'remediation', 'round', 'gate', 'done']);
  }, 180_000);

  test('a gate no mix can pass: failed after max rounds, or stalled once the weight is at its cap', async () => {
    const dir = tmp('sw-pipe-');
    const config = await pipelineConfig(dir, { min_token_accuracy: 0.99 });
    (config.eval.metrics as any).remediation = { oversample_factor: 2, max_category_weight: 2, review_examples: 1 };
    (config.training as any).epochs = 1;
    const report = await runPipeline(config as any, { dir: join(dir, 'p'), maxRounds: 3 });
    expect(report.status).toBe('stalled');
    expect(report.rounds).toHaveLength(2);
    expect(report.rounds[1].categoryWeights).toEqual(Object.fromEntries(report.rounds[0].failingCategories.map((c) => [c, 2])));
    expect(report.reason).toMatch(/max_category_weight/);
    expect(report.rounds[1].dataset?.versionId).toBe(report.rounds[0].dataset?.versionId);

    const r2 = await runPipeline(config as any, { dir: join(dir, 'q'), maxRounds: 1 });
    expect(r2.status).toBe('failed');
    expect(r2.reason).toMatch(/after 1 round/);
    // resuming a failed pipeline needs more rounds; with them it runs round 2 on the plan's mix
    await expect(resumePipeline(join(dir, 'q'))).rejects.toThrow(/already ran 1 round\(s\) \(status failed\); give a larger max rounds/);
    const r3 = await resumePipeline(join(dir, 'q'), { maxRounds: 2 });
    expect(r3.rounds).toHaveLength(2);
    expect(r3.rounds[1].categoryWeights).toEqual(report.rounds[1].categoryWeights);
  }, 180_000);

  test('cancelled mid-round, resumed: the round continues from its checkpoint with the losses of an uninterrupted pipeline', async () => {
    const dir = tmp('sw-pipe-');
    const config = await pipelineConfig(dir, { min_category_token_accuracy: 0.45 });
    (config.checkpoint as any).every_steps = 2;
    const whole = await runPipeline(config as any, { dir: join(dir, 'whole'), maxRounds: 3 });
    expect(whole.rounds.map((r) => r.gate?.passed)).toEqual([false, true]);

    const abort = new AbortController();
    const cut = await runPipeline(config as any, {
      dir: join(dir, 'cut'),
      maxRounds: 3,
      signal: abort.signal,
      onEvent: (e) => {
        if (e.type === 'run' && e.round === 2 && e.event.type === 'step' && e.event.step === 5) abort.abort();
      },
    });
    expect(cut.status).toBe('cancelled');
    expect(cut.reason).toMatch(/round 2 cancelled at step 5/);
    expect(cut.rounds).toHaveLength(1);
    expect(readPipelineReport(join(dir, 'cut')).status).toBe('cancelled');

    const rounds: { round: number; resumed: boolean }[] = [];
    const resumed = await resumePipeline(join(dir, 'cut'), { onEvent: (e) => (e.type === 'round' ? rounds.push({ round: e.round, resumed: e.resumed }) : undefined) });
    expect(rounds).toEqual([{ round: 2, resumed: true }]);
    expect(resumed.status).toBe('passed');
    expect(resumed.rounds.map((r) => [r.round, r.gate?.passed, r.categoryWeights])).toEqual(whole.rounds.map((r) => [r.round, r.gate?.passed, r.categoryWeights]));
    const losses = (d: string) => readFileSync(join(d, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l)).filter((m) => m.type === 'train').map((m) => [m.step, m.loss]);
    expect(losses(resumed.rounds[1].runDir)).toEqual(losses(whole.rounds[1].runDir));
    expect(JSON.parse(readFileSync(join(resumed.rounds[1].runDir, 'run.json'), 'utf8')).resumedFromStep).toBe(5);
    const acc = (d: string) => JSON.parse(readFileSync(join(d, 'eval.json'), 'utf8')).tuned.categories;
    expect(acc(resumed.rounds[1].runDir)).toEqual(acc(whole.rounds[1].runDir));
    // a passed pipeline resumes to itself; a failed one goes on only with more rounds
    expect((await resumePipeline(join(dir, 'cut'))).status).toBe('passed');
    await expect(resumePipeline(join(dir, 'whole'), { maxRounds: 1 })).resolves.toMatchObject({ status: 'passed' });
  }, 180_000);

  test('refuses a config without a gate, and an existing pipeline folder', async () => {
    const dir = tmp('sw-pipe-');
    const config = await pipelineConfig(dir, {});
    await expect(runPipeline(config as any, { dir: join(dir, 'p') })).rejects.toThrow(/eval\.metrics\.gate has no thresholds/);
    delete (config.eval as any).metrics;
    await expect(runPipeline(config as any, { dir: join(dir, 'p') })).rejects.toThrow(PipelineError);
  });

  test('CLI: a YAML config, --max-rounds, exit 1 when the gate never passes; pipeline show', async () => {
    const dir = tmp('sw-pipe-');
    const c = await pipelineConfig(dir, { min_token_accuracy: 0.99 });
    const yaml = [
      'name: pipe-cli',
      `model: { dir: "${c.model.dir}" }`,
      `dataset: { store: store, build: dataset.json }`,
      'training: { epochs: 1, micro_batch: 4, max_seq_len: 192, lr: 0.01, seed: 3 }',
      'eval:',
      '  every_steps: 0',
      '  metrics:',
      '    generate_examples: 0',
      '    report: false',
      '    gate: { min_token_accuracy: 0.99 }',
      'checkpoint: { every_steps: 0 }',
      '',
    ].join('\n');
    writeFileSync(join(dir, 'run.yaml'), yaml);
    const main = join(process.cwd(), 'dist', 'src', 'cli', 'main.js');
    const res = await run(process.execPath, [main, 'pipeline', '--config', join(dir, 'run.yaml'), '--max-rounds', '2', '--dir', join(dir, 'p')]).then(
      () => ({ code: 0, stdout: '' }),
      (e: { code: number; stdout: string }) => e,
    );
    expect(res.code).toBe(1);
    expect(res.stdout).toMatch(/round 1: dataset [0-9a-f]{16}/);
    expect(res.stdout).toMatch(/gate FAIL: token accuracy/);
    expect(res.stdout).toMatch(/pipeline failed: the gate still fails after 2 round/);
    const r = readPipelineReport(join(dir, 'p'));
    expect(r.rounds).toHaveLength(2);
    expect(Object.values(r.rounds[1].categoryWeights).every((w) => w === 2)).toBe(true);
    const show = await run(process.execPath, [main, 'pipeline', 'show', join(dir, 'p'), '--json']).catch((e) => e);
    expect(JSON.parse(show.stdout).rounds).toHaveLength(2);
    // a bad field in the YAML names the file and line
    writeFileSync(join(dir, 'bad.yaml'), yaml.replace('lr: 0.01', 'lr: -1'));
    const bad = await run(process.execPath, [main, 'pipeline', '--config', join(dir, 'bad.yaml')]).catch((e) => e);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain(`${join(dir, 'bad.yaml')}:4: training.lr:`);
  }, 180_000);

  test('CLI: Ctrl-C cancels the round with a checkpoint (exit 1), pipeline --resume finishes it (exit 0)', async () => {
    const dir = tmp('sw-pipe-');
    const file = join(dir, 'run.json');
    writeFileSync(file, JSON.stringify(await pipelineConfig(dir, { min_category_token_accuracy: 0.45 })));
    const main = join(process.cwd(), 'dist', 'src', 'cli', 'main.js');
    const child = spawn(process.execPath, [main, 'pipeline', '--config', file, '--dir', join(dir, 'p')], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => {
      err += d;
      if (/step 3\//.test(err) && !child.killed) child.kill('SIGINT');
    });
    const code = await new Promise<number | null>((r) => child.on('exit', r));
    expect(code).toBe(1);
    expect(out).toMatch(/pipeline cancelled: round 1 cancelled at step [3-9]/);
    expect(readPipelineReport(join(dir, 'p')).status).toBe('cancelled');
    const res = await run(process.execPath, [main, 'pipeline', '--resume', join(dir, 'p')]);
    expect(res.stdout).toMatch(/== round 1 \(resumed from its checkpoint\)/);
    expect(res.stdout).toMatch(/pipeline passed/);
    expect(readPipelineReport(join(dir, 'p')).rounds.map((r) => r.gate?.passed)).toEqual([false, true]);
  }, 180_000);
});
