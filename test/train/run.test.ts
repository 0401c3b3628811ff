// The training loop end to end on the tiny model: the run directory, determinism, the loss falling,
// events, cancel, non-finite steps, early stopping, checkpoints kept.
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { Tensor, nativeInfo } from '../../bindings/index.js';
import { startTraining, resumeTraining, type TrainingEvent } from '../../src/train/runner.js';
import { readMetrics } from '../../src/train/runs.js';
import { baseConfig } from './fixtures.js';

describe('training runs', () => {
  test('a run writes its directory; the same config and seed give the same losses', async () => {
    const cfg = await baseConfig();
    const job = startTraining(cfg);
    const events: TrainingEvent[] = [];
    for await (const e of job) events.push(e);
    const a = await job.done;
    expect(a.status).toBe('completed');
    expect(a.steps).toBe(6);
    expect(a.losses.every(Number.isFinite)).toBe(true);
    const dir = a.runDir;
    for (const f of ['config.json', 'run.json', 'metrics.jsonl', 'adapter/adapter_model.safetensors', 'adapter/adapter_config.json']) expect(existsSync(join(dir, f))).toBe(true);
    const run = JSON.parse(readFileSync(join(dir, 'run.json'), 'utf8'));
    expect(run.status).toBe('completed');
    expect(run.project.name).toBe('starweave-finetune');
    expect(run.machine.cpus).toBeGreaterThan(0);
    expect(run.preflight.trainableParameters).toBeGreaterThan(0);
    expect(run.dataset).toMatchObject({ kind: 'inline', train: 12, heldout: 4 });
    // keep_last 2: steps 4 and 6
    expect(readdirSync(join(dir, 'checkpoints')).sort()).toEqual(['step-00000004', 'step-00000006']);
    const m = readMetrics(dir);
    const train = m.filter((r) => r.type === 'train');
    expect(train.map((r) => r.step)).toEqual([1, 2, 3, 4, 5, 6]);
    for (const r of train) for (const k of ['loss', 'lr', 'grad_norm', 'tokens_per_s']) expect(typeof r[k]).toBe('number');
    expect(m.filter((r) => r.type === 'eval').map((r) => r.step)).toEqual([0, 3, 6]);
    expect(events[0].type).toBe('start');
    expect(events.at(-1)!.type).toBe('done');
    expect(events.filter((e) => e.type === 'checkpoint').map((e) => (e as { step: number }).step)).toEqual([2, 4, 6]);
    // warmup: the first lr is lr × 1/1, then cosine decay
    expect(train[0].lr).toBeCloseTo(5e-3, 10);
    expect(Number(train[5].lr)).toBeLessThan(Number(train[1].lr));

    const b = await startTraining(cfg).done;
    expect(b.losses).toEqual(a.losses);
    expect(b.evals.map((e) => e.loss)).toEqual(a.evals.map((e) => e.loss));
    // another seed: other losses
    const c = await startTraining(await baseConfig({ training: { seed: 8 } })).done;
    expect(c.losses).not.toEqual(a.losses);
  });

  test("training.attention_precision: 'auto' follows the base's dtype; 'bf16' trains with the f32 losses within bf16 rounding", async () => {
    const a = await startTraining(await baseConfig()).done;
    const b = await startTraining(await baseConfig({ training: { attention_precision: 'bf16' } })).done;
    const pre = (dir: string) => JSON.parse(readFileSync(join(dir, 'run.json'), 'utf8')).preflight;
    expect(pre(a.runDir).attentionPrecision).toBe('f32'); // the tiny preset is f32
    expect(pre(b.runDir).attentionPrecision).toBe('bf16');
    for (let i = 0; i < a.losses.length; i++) expect(Math.abs(b.losses[i] - a.losses[i])).toBeLessThan(1e-2 * Math.abs(a.losses[i]));
    const info = nativeInfo().isa;
    if (info.active === 'avx512' && info.avx512bf16) expect(b.losses).not.toEqual(a.losses);
  });

  test('held-out loss falls over a longer run', async () => {
    const cfg = await baseConfig({ training: { max_steps: 20, lr: 1e-2 }, lora: { lora_dropout: 0 }, eval: { every_steps: 0 }, checkpoint: { every_steps: 0 } });
    const r = await startTraining(cfg).done;
    expect(r.evals).toHaveLength(2);
    expect(r.evals[1].loss).toBeLessThan(r.evals[0].loss);
    expect(r.evals[1].perplexity).toBeCloseTo(Math.exp(r.evals[1].loss), 6);
  });

  test('cancel stops at the next step boundary with a checkpoint; resume in process continues exactly', async () => {
    const cfg = await baseConfig({ checkpoint: { every_steps: 0 } });
    const full = await startTraining(cfg).done;
    const job = startTraining(cfg);
    job.on('step', (e: { step: number }) => {
      if (e.step === 3) job.cancel();
    });
    const r = await job.done;
    expect(r.status).toBe('cancelled');
    expect(r.steps).toBe(3);
    expect(r.checkpoint).toMatch(/step-00000003$/);
    expect(r.losses).toEqual(full.losses.slice(0, 3));
    const resumed = await resumeTraining(r.runDir).done;
    expect(resumed.status).toBe('completed');
    expect(resumed.losses).toEqual(full.losses.slice(3));
    expect(resumed.evals.at(-1)!.loss).toBe(full.evals.at(-1)!.loss);
  });

  test('a non-finite step is skipped and recorded; repeated ones fail the run', async () => {
    const poison = (stepsToPoison: (s: number) => boolean) => ({
      afterBackward: (model: import('../../src/model/native-model.js').LlamaModel, step: number) => {
        if (!stepsToPoison(step)) return;
        const name = Object.keys(model.adapterState('param'))[0];
        const g = model.native.parameters('grad')[name];
        const nan = Tensor.fromArray(new Float32Array(g.shape.reduce((a, b) => a * b, 1)).fill(NaN), g.shape, 'f32');
        model.native.setParameter(name, nan, 'grad');
        nan.release();
      },
    });
    const cfg = await baseConfig({ checkpoint: { every_steps: 0 }, eval: { every_steps: 0, at_start: false } });
    const r = await startTraining(cfg, { hooks: poison((s) => s === 2) }).done;
    expect(r.status).toBe('completed');
    expect(r.nonfiniteSteps).toEqual([2]);
    expect(r.losses[1]).toBeNaN();
    const rows = readMetrics(r.runDir).filter((m) => m.type === 'train');
    expect(rows[1].skipped).toBe(true);
    expect(rows[2].skipped).toBeUndefined();
    expect(r.losses.filter((l, i) => i !== 1).every(Number.isFinite)).toBe(true);

    const job = startTraining({ ...cfg, training: { ...(cfg.training as object), max_nonfinite_steps: 2 } } as typeof cfg, { hooks: poison((s) => s >= 3) });
    const seen: string[] = [];
    job.on('failed', (e: { error: Error }) => seen.push(e.error.message));
    await expect(job.done).rejects.toThrow(/2 consecutive steps had a non-finite/);
    expect(seen).toHaveLength(1);
    expect(JSON.parse(readFileSync(join(job.runDir!, 'run.json'), 'utf8')).status).toBe('failed');
  });

  test('early stopping on held-out loss', async () => {
    // a learning rate this large makes held-out loss rise: the run stops after `patience` bad evals
    const cfg = await baseConfig({ training: { max_steps: 30, lr: 3, max_grad_norm: 0, warmup_steps: 0, schedule: 'constant' }, eval: { every_steps: 1, early_stopping_patience: 2 }, checkpoint: { every_steps: 0 } });
    const r = await startTraining(cfg).done;
    expect(r.status).toBe('early_stopped');
    expect(r.steps).toBeLessThan(30);
    expect(r.checkpoint).toMatch(new RegExp(`step-0*${r.steps}$`));
  });

  test('preflight refuses a run that will not fit, with the figures', async () => {
    await expect(startTraining(await baseConfig(), { memoryLimitBytes: 1024 }).done).rejects.toThrow(/needs about \d+ MiB .* but the limit is 0 MiB/);
  });
});
