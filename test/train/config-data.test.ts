// The run config's errors and paths; the data loader: targets, truncation, packing, shuffling, resume
// position; the learning-rate schedule.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadRunConfigFile, parseRunConfig, RunConfigError } from '../../src/train/config.js';
import { DataLoader, makeBatch, packRows, tokenizeExamples } from '../../src/train/data.js';
import { learningRate } from '../../src/train/schedule.js';
import { tmp } from './fixtures.js';

describe('run config', () => {
  test('defaults, and relative paths resolve against the file', () => {
    const dir = tmp();
    mkdirSync(join(dir, 'sub'));
    const file = join(dir, 'sub', 'run.json');
    writeFileSync(file, JSON.stringify({ model: { dir: 'm' }, dataset: { store: 's', version: 'v1' }, training: { epochs: 1 } }));
    const c = loadRunConfigFile(file);
    expect(c.model.dir).toBe(join(dir, 'sub', 'm'));
    expect(c.output.runs_dir).toBe(join(dir, 'sub', 'runs'));
    expect(c.training).toMatchObject({ micro_batch: 4, grad_accum: 1, packing: true, schedule: 'cosine' });
    expect(c.lora.target_modules).toEqual(['q_proj', 'v_proj']);
  });

  test('every error names its path', () => {
    let err: RunConfigError | undefined;
    try {
      parseRunConfig({ model: {}, dataset: { train: [{ messages: [{ role: 'bot', content: 'x' }] }] }, lora: { r: 0, target_modules: ['qq'] }, training: { lr: -1 }, extra: 1 });
    } catch (e) {
      err = e as RunConfigError;
    }
    expect(err).toBeInstanceOf(RunConfigError);
    const paths = err!.issues.map((i) => i.path);
    for (const p of ['model.dir', 'dataset.train[0].messages[0].role', 'lora.r', 'lora.target_modules[0]', 'training.lr', '(root)']) expect(paths).toContain(p);
    expect(err!.message).toMatch(/lora\.r:/);
    expect(() => parseRunConfig({ model: { dir: 'm' }, dataset: { store: 's', version: 'v' }, training: {} })).toThrow(/training\.epochs: give epochs or max_steps/);
  });

  test('a file that is not JSON names the file', () => {
    const file = join(tmp(), 'bad.json');
    writeFileSync(file, '{ nope');
    expect(() => loadRunConfigFile(file)).toThrow(/bad\.json: not valid JSON/);
  });
});

// a renderer stub: every message is its characters' codes; the assistant's tokens are learned
const renderer = {
  render(messages: readonly { role: string; content: string }[]) {
    const ids: number[] = [1];
    const lossMask: boolean[] = [false];
    for (const m of messages) for (const ch of m.content) {
      ids.push(ch.charCodeAt(0));
      lossMask.push(m.role === 'assistant');
    }
    return { ids, lossMask };
  },
};
const ex = (u: string, a: string) => ({ messages: [{ role: 'user' as const, content: u }, { role: 'assistant' as const, content: a }] });

describe('data loader', () => {
  test('targets are the next ids where learned; truncation; empty examples are counted, not kept', () => {
    const { examples, stats } = tokenizeExamples([ex('ab', 'cd'), ex('abcdefgh', 'xy'), ex('abc', 'de')], renderer, 6);
    expect(Array.from(examples[0].ids)).toEqual([1, 97, 98, 99, 100]);
    expect(Array.from(examples[0].targets)).toEqual([-100, -100, 99, 100, -100]);
    expect(examples[0].counted).toBe(2);
    expect(stats).toMatchObject({ examples: 3, kept: 2, droppedNoTargets: 1, truncatedExamples: 1 });
    // the third example: 1 a b c d e, cut to 6: the last kept token predicts the cut one
    expect(Array.from(examples[1].targets)).toEqual([-100, -100, -100, 100, 101, -100]);
  });

  test('packing: rows within max_seq_len, segments and positions restart per example, padding isolated', () => {
    const { examples } = tokenizeExamples([ex('a', 'b'), ex('cc', 'dd'), ex('e', 'f')], renderer, 8);
    const rows = packRows(examples, [0, 1, 2], 8, true);
    expect(rows).toEqual([[0, 1], [2]]);
    const b = makeBatch(examples, rows, 0, true);
    expect(b.seqLen).toBe(8);
    expect(Array.from(b.segments!)).toEqual([0, 0, 0, 1, 1, 1, 1, 1, 0, 0, 0, 1, 1, 1, 1, 1]);
    expect(Array.from(b.positions!)).toEqual([0, 1, 2, 0, 1, 2, 3, 4, 0, 1, 2, 0, 1, 2, 3, 4]);
    expect(Array.from(b.targets).slice(11)).toEqual([-100, -100, -100, -100, -100]);
    expect(b.counted).toBe(1 + 2 + 1);
    expect(packRows(examples, [0, 1, 2], 8, false)).toEqual([[0], [1], [2]]);
  });

  test('shuffling is deterministic from the seed; a saved position resumes the same stream', () => {
    const recs = Array.from({ length: 9 }, (_, i) => ex(`u${i}`, `a${'x'.repeat(i)}`));
    const { examples } = tokenizeExamples(recs, renderer, 64);
    const opts = { microBatch: 2, maxSeqLen: 12, packing: true, seed: 5, padId: 0 };
    const a = new DataLoader(examples, opts);
    const stream = Array.from({ length: 12 }, () => Array.from(a.next().ids));
    const b = new DataLoader(examples, opts);
    expect(Array.from({ length: 12 }, () => Array.from(b.next().ids))).toEqual(stream);
    const c = new DataLoader(examples, { ...opts, seed: 6 });
    expect(Array.from({ length: 12 }, () => Array.from(c.next().ids))).not.toEqual(stream);
    // resume from a position
    const d = new DataLoader(examples, opts);
    for (let i = 0; i < 5; i++) d.next();
    const pos = JSON.parse(JSON.stringify(d.position));
    const e = new DataLoader(examples, opts);
    e.position = pos;
    expect(Array.from({ length: 7 }, () => Array.from(e.next().ids))).toEqual(stream.slice(5));
    // epochs differ in order
    expect(a.epochPlan(0)).not.toEqual(a.epochPlan(1));
  });
});

test('learning-rate schedules', () => {
  const s = { lr: 1, warmupSteps: 2, totalSteps: 10 };
  expect(learningRate({ ...s, schedule: 'constant' }, 1)).toBe(0.5);
  expect(learningRate({ ...s, schedule: 'constant' }, 7)).toBe(1);
  expect(learningRate({ ...s, schedule: 'linear' }, 6)).toBeCloseTo(0.5);
  expect(learningRate({ ...s, schedule: 'linear' }, 10)).toBe(0);
  expect(learningRate({ ...s, schedule: 'cosine' }, 6)).toBeCloseTo(0.5);
  expect(learningRate({ ...s, schedule: 'cosine', minLrRatio: 0.1 }, 10)).toBeCloseTo(0.1);
});
