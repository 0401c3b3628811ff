// YAML run configs (errors with file, line and field path); loss on all tokens vs assistant-only; the
// category-weighted training mix.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadRunConfigFile, RunConfigError } from '../../src/train/config.js';
import { DataLoader, tokenizeExamples, weightedIndices } from '../../src/train/data.js';
import { resumeTraining, startTraining } from '../../src/train/runner.js';
import { baseConfig, records, tmp } from './fixtures.js';

const YAML_OK = `# a run config in YAML
name: yaml-run
model:
  dir: m
dataset: { store: s, version: v1 }
lora:
  r: 4
  target_modules: [q_proj, v_proj]
training:
  epochs: 1
  lr: 1.0e-4
  loss_on: all
  category_weights:
    code_understanding: 2.5
`;

function errorOf(f: () => unknown): RunConfigError {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(RunConfigError);
    return e as RunConfigError;
  }
  throw new Error('expected a RunConfigError');
}

describe('YAML run configs', () => {
  test('a .yaml file parses like the JSON one (defaults, relative paths, new fields)', () => {
    const dir = tmp();
    const y = join(dir, 'run.yaml');
    writeFileSync(y, YAML_OK);
    const j = join(dir, 'run.json');
    writeFileSync(
      j,
      JSON.stringify({ name: 'yaml-run', model: { dir: 'm' }, dataset: { store: 's', version: 'v1' }, lora: { r: 4, target_modules: ['q_proj', 'v_proj'] }, training: { epochs: 1, lr: 1e-4, loss_on: 'all', category_weights: { code_understanding: 2.5 } } }),
    );
    const a = loadRunConfigFile(y);
    expect(a).toEqual(loadRunConfigFile(j));
    expect(a.model.dir).toBe(join(dir, 'm'));
    expect(a.training.loss_on).toBe('all');
    expect(a.training.category_weights).toEqual({ code_understanding: 2.5 });
    // .yml too
    const yml = join(dir, 'run.yml');
    writeFileSync(yml, YAML_OK);
    expect(loadRunConfigFile(yml)).toEqual(a);
  });

  test('a schema error names the file, the YAML line and the field path', () => {
    const file = join(tmp(), 'bad.yaml');
    writeFileSync(file, YAML_OK.replace('  r: 4', '  r: 0').replace('loss_on: all', 'loss_on: everything'));
    const e = errorOf(() => loadRunConfigFile(file));
    const r = e.issues.find((i) => i.path === 'lora.r')!;
    expect(r).toMatchObject({ line: 7 });
    expect(e.issues.find((i) => i.path === 'training.loss_on')).toMatchObject({ line: 12 });
    expect(e.message).toContain(`${file}:7: lora.r:`);
    expect(e.message).toContain(`${file}:12: training.loss_on:`);
    // a missing field is placed at its parent
    const file2 = join(tmp(), 'missing.yaml');
    writeFileSync(file2, 'model:\n  dir: m\ndataset: { store: s, version: v1 }\ntraining:\n  lr: 0.1\n');
    const e2 = errorOf(() => loadRunConfigFile(file2));
    expect(e2.issues.find((i) => i.path === 'training.epochs')).toMatchObject({ line: 5 });
  });

  test('examples/pipeline.yaml is a valid run config with a gate, remediation and perf', () => {
    const c = loadRunConfigFile(join(process.cwd(), 'examples', 'pipeline.yaml'));
    expect(c.dataset).toEqual({ store: join(process.cwd(), '.starweave', 'datasets'), build: join(process.cwd(), 'examples', 'dataset.json') });
    expect(Object.keys(c.eval.metrics!.gate).length).toBeGreaterThan(0);
    expect(c.eval.metrics!.remediation.oversample_factor).toBe(2);
    expect(c.eval.metrics!.perf).toEqual({ requests: 4, max_new_tokens: 16, warmup: 1 });
  });

  test('a YAML syntax error names the file and line; a duplicate key is refused', () => {
    const file = join(tmp(), 'syntax.yaml');
    writeFileSync(file, 'model:\n  dir: m\ntraining: [1, 2\n');
    expect(() => loadRunConfigFile(file)).toThrow(new RegExp(`syntax\\.yaml:\\d+:\\d+: not valid YAML`));
    const dup = join(tmp(), 'dup.yaml');
    writeFileSync(dup, 'model:\n  dir: m\nmodel:\n  dir: n\n');
    expect(() => loadRunConfigFile(dup)).toThrow(/dup\.yaml:3:\d+: not valid YAML/);
  });
});

// every character is a token; the assistant's characters are learned
const renderer = {
  render(messages: readonly { role: string; content: string }[]) {
    const ids: number[] = [1];
    const lossMask: boolean[] = [false];
    for (const m of messages)
      for (const ch of m.content) {
        ids.push(ch.charCodeAt(0));
        lossMask.push(m.role === 'assistant');
      }
    return { ids, lossMask };
  },
};
const ex = (u: string, a: string, category?: string) => ({ messages: [{ role: 'user' as const, content: u }, { role: 'assistant' as const, content: a }], ...(category ? { category } : {}) });

describe('loss_on', () => {
  test("'all' learns every next token, 'assistant' only the assistant's", () => {
    const recs = [ex('ab', 'cd'), ex('xyz', '')];
    const a = tokenizeExamples(recs, renderer, 16);
    const all = tokenizeExamples(recs, renderer, 16, { lossOn: 'all' });
    expect(Array.from(a.examples[0].targets)).toEqual([-100, -100, 99, 100, -100]);
    expect(Array.from(all.examples[0].targets)).toEqual([97, 98, 99, 100, -100]);
    // an example with no assistant token is dropped under 'assistant' but learned under 'all'
    expect(a.stats).toMatchObject({ kept: 1, droppedNoTargets: 1 });
    expect(all.stats).toMatchObject({ kept: 2, droppedNoTargets: 0, countedTokens: 4 + 3 });
    // truncation: the last kept token still predicts the cut one
    expect(Array.from(tokenizeExamples([ex('abcdef', 'g')], renderer, 4, { lossOn: 'all' }).examples[0].targets)).toEqual([97, 98, 99, 100]);
  });

  test('a run with loss_on all learns every token after the first (preflight counts, real tokenizer)', async () => {
    const c = await baseConfig({ training: { max_steps: 1, packing: false, loss_on: 'all' }, eval: { every_steps: 0, at_start: false }, checkpoint: { every_steps: 0 } });
    const job = startTraining(c);
    const start = await new Promise<any>((r) => job.once('start', r));
    const res = await job.done;
    const p = start.preflight;
    expect(p.train.truncatedExamples).toBe(0);
    expect(p.countedTokensPerEpoch).toBe(p.tokensPerEpoch - p.train.kept);
    const c2 = await baseConfig({ training: { max_steps: 1, packing: false }, eval: { every_steps: 0, at_start: false }, checkpoint: { every_steps: 0 } });
    const job2 = startTraining(c2);
    const start2 = await new Promise<any>((r) => job2.once('start', r));
    await job2.done;
    expect(start2.preflight.tokensPerEpoch).toBe(p.tokensPerEpoch);
    expect(start2.preflight.countedTokensPerEpoch).toBeLessThan(p.countedTokensPerEpoch / 2);
    expect(Number.isFinite(res.lastLoss)).toBe(true);
  }, 60_000);
});

describe('category weights', () => {
  const items = [...Array(10)].map((_, i) => ({ category: i < 2 ? 'rare' : 'common' }));

  test('whole weights repeat, fractions draw, 0 leaves out; deterministic per seed', () => {
    expect(weightedIndices(items, undefined, 1)).toEqual(items.map((_, i) => i));
    const w3 = weightedIndices(items, { rare: 3 }, 1);
    expect(w3.filter((i) => i < 2)).toEqual([0, 0, 0, 1, 1, 1]);
    expect(w3.length).toBe(6 + 8);
    expect(weightedIndices(items, { common: 0 }, 1)).toEqual([0, 1]);
    const many = [...Array(2000)].map(() => ({ category: 'x' }));
    const half = weightedIndices(many, { x: 1.5 }, 9);
    expect(half.length).toBeGreaterThan(2800);
    expect(half.length).toBeLessThan(3200);
    expect(weightedIndices(many, { x: 1.5 }, 9)).toEqual(half);
  });

  test('the loader mixes by weight per epoch and says when nothing is left', () => {
    const { examples } = tokenizeExamples(items.map((it, i) => ex(`q${i}`, `a${i}`, it.category)), renderer, 16);
    expect(examples[0].category).toBe('rare');
    const opts = { microBatch: 2, maxSeqLen: 16, packing: false, seed: 3, padId: 0 };
    const plain = new DataLoader(examples, opts);
    const mixed = new DataLoader(examples, { ...opts, categoryWeights: { rare: 4 } });
    const count = (l: DataLoader, cat: string) => l.epochPlan(0).flat(2).filter((i) => examples[i].category === cat).length;
    expect(count(plain, 'rare')).toBe(2);
    expect(count(mixed, 'rare')).toBe(8);
    expect(count(mixed, 'common')).toBe(8);
    expect(mixed.microBatchesPerEpoch()).toBe(8);
    expect(() => new DataLoader(examples, { ...opts, categoryWeights: { rare: 0, common: 0 } }).epochPlan(0)).toThrow(/category_weights leave none/);
  });

  test('a weighted mix with loss on all tokens is deterministic and resumes exactly across epochs', async () => {
    const c = await baseConfig({ training: { max_steps: 8, micro_batch: 2, grad_accum: 1, category_weights: { rare: 2.5 }, loss_on: 'all' }, eval: { every_steps: 0, at_start: false }, checkpoint: { every_steps: 0 } });
    (c as any).dataset = { train: records(8).map((r, i) => ({ ...r, category: i < 2 ? 'rare' : 'common' })), heldout: records(2, 50) };
    const full = await startTraining(c).done;
    expect(full.losses.every(Number.isFinite)).toBe(true);
    expect((await startTraining(c).done).losses).toEqual(full.losses);
    const job = startTraining(c);
    job.on('step', (e: { step: number }) => {
      if (e.step === 5) job.cancel();
    });
    const cut = await job.done;
    expect(cut.status).toBe('cancelled');
    const rest = await resumeTraining(cut.runDir).done;
    expect([...cut.losses, ...rest.losses]).toEqual(full.losses);
  }, 60_000);

  test('a run records the mix in its preflight', async () => {
    const c = await baseConfig({ training: { max_steps: 1, category_weights: { rare: 3 } }, eval: { every_steps: 0, at_start: false }, checkpoint: { every_steps: 0 } });
    (c as any).dataset = { train: records(12).map((r, i) => ({ ...r, category: i < 3 ? 'rare' : 'common' })), heldout: [] };
    const job = startTraining(c);
    const start = await new Promise<any>((r) => job.once('start', r));
    await job.done;
    expect(start.preflight.categoryMix).toEqual({ rare: 9, common: 9 });
  }, 60_000);
});
