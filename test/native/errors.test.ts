// Bad input never crashes: wrong shapes, wrong dtypes, non-tensor arguments, NaN / negative eps,
// dropout >= 1, out-of-vocabulary ids / targets, mismatched GQA heads... each gives a JS error whose
// message names the op and the argument and shows the shapes; the async variant rejects with the very
// same message and code. Inputs that could abort the process are run in a child process.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Tensor, ops, packageRoot } from '../../bindings/index.js';
import { f32, i32, filled } from '../helpers/tensors.js';

type AnyOp = (...a: unknown[]) => unknown;
const OPS = ops as unknown as Record<string, AnyOp>;

const t = (shape: number[]) => Tensor.empty('f32', shape);
const ti = (shape: number[]) => Tensor.empty('i32', shape);

function syncError(name: string, args: unknown[]): Error & { code?: string } {
  try {
    OPS[name](...args);
  } catch (e) {
    return e as Error & { code?: string };
  }
  throw new Error(`${name} did not throw`);
}

// [op, args, expected message (exact string or pattern), expected code]
type Case = [string, () => unknown[], string | RegExp, 'EOP' | 'EARG'];

const CASES: Case[] = [
  // matmul
  ['matmul', () => [t([3, 4]), t([5, 6]), t([3, 6]), false, false, 1, 0], 'matmul: inner dimensions differ: a f32[3, 4] · b f32[5, 6] (4 vs 5)', 'EOP'],
  ['matmul', () => [t([3, 4]), t([4, 6]), t([3, 5]), false, false, 1, 0], "matmul: argument 'c' must have shape [3, 6], got f32[3, 5]", 'EOP'],
  ['matmul', () => [ti([3, 4]), t([4, 6]), t([3, 6]), false, false, 1, 0], "matmul: argument 'a' must be f32, got i32[3, 4]", 'EOP'],
  ['matmul', () => [t([3, 4]), t([4, 6]), t([3, 6]), 'yes', false, 1, 0], "matmul: argument 'transA' must be a boolean", 'EARG'],
  ['matmul', () => [t([3, 4]), t([4, 6]), t([3, 6]), false, false, NaN, 0], "matmul: argument 'alpha' must be finite, got nan", 'EOP'],
  ['matmul', () => [t([3, 4]), new Float32Array(24), t([3, 6]), false, false, 1, 0], "matmul: argument 'b' must be a Tensor", 'EARG'],
  // linear
  ['linearForward', () => [t([2, 4]), t([5, 3]), t([2, 5])], "linear_forward: argument 'w' f32[5, 3] does not match input features 4 (expected [out, 4])", 'EOP'],
  ['linearForward', () => [t([4]), t([5, 4]), t([5])], "linear_forward: argument 'x' must have at least 2 dimensions, got f32[4]", 'EOP'],
  ['linearForward', () => [t([2, 4]), Tensor.empty('f16', [5, 4]), t([2, 5])], "linear_forward: argument 'w' must be f32 or bf16, got f16[5, 4]", 'EOP'],
  ['linearForward', () => [{ shape: [2, 4] }, t([5, 4]), t([2, 5])], "linear_forward: argument 'x' must be a Tensor", 'EARG'],
  ['linearForward', () => [t([2, 4]), t([5, 4]), t([2, 4])], "linear_forward: argument 'y' must have shape [2, 5], got f32[2, 4]", 'EOP'],
  ['linearBackward', () => [t([2, 6]), t([2, 4]), t([5, 4]), t([2, 4]), null], "linear_backward: argument 'dy' must have shape [2, 5], got f32[2, 6]", 'EOP'],
  // lora
  ['loraLinearForward', () => [t([2, 4]), t([5, 4]), t([3, 4]), t([5, 2]), { scale: 1 }, t([2, 5]), t([2, 3])], "lora_linear_forward: argument 'b' must have shape [5, 3], got f32[5, 2]", 'EOP'],
  ['loraLinearForward', () => [t([2, 4]), t([5, 4]), t([3, 4]), t([5, 3]), { scale: 1, dropout: 1 }, t([2, 5]), t([2, 3])], "lora_linear_forward: argument 'dropout' must be in [0.000000, 1.000000), got 1.000000", 'EOP'],
  ['loraLinearForward', () => [t([2, 4]), t([5, 4]), t([3, 4]), t([5, 3]), { scale: 1, dropout: NaN }, t([2, 5]), t([2, 3])], "lora_linear_forward: argument 'dropout' must be in [0.000000, 1.000000), got nan", 'EOP'],
  ['loraLinearForward', () => [t([2, 4]), t([5, 4]), t([3, 4]), t([5, 3]), { scale: Infinity }, t([2, 5]), t([2, 3])], "lora_linear_forward: argument 'scale' must be finite, got inf", 'EOP'],
  ['loraLinearForward', () => [t([2, 4]), t([5, 4]), t([3, 4]), t([5, 3]), 2, t([2, 5]), t([2, 3])], "lora_linear_forward: argument 'config' must be an object", 'EARG'],
  ['loraLinearBackward', () => [t([2, 5]), t([2, 4]), t([5, 4]), t([3, 4]), t([5, 3]), t([2, 2]), { scale: 1 }, null, t([3, 4]), t([5, 3]), null], "lora_linear_backward: argument 'u' must have shape [2, 3], got f32[2, 2]", 'EOP'],
  ['loraScaling', () => [16, 0, false], 'lora_scaling: r must be >= 1, got 0', 'EOP'],
  // rmsnorm
  ['rmsnormForward', () => [t([3, 8]), t([8]), NaN, t([3, 8]), t([3])], "rmsnorm_forward: argument 'eps' must be a finite number > 0, got nan", 'EOP'],
  ['rmsnormForward', () => [t([3, 8]), t([8]), -1e-5, t([3, 8]), t([3])], "rmsnorm_forward: argument 'eps' must be a finite number > 0, got -0.000010", 'EOP'],
  ['rmsnormForward', () => [t([3, 8]), t([7]), 1e-5, t([3, 8]), t([3])], "rmsnorm_forward: argument 'w' must have shape [8], got f32[7]", 'EOP'],
  ['rmsnormBackward', () => [t([3, 9]), t([3, 8]), t([8]), t([3]), t([3, 8]), null], "rmsnorm_backward: argument 'dy' f32[3, 9] must have the shape of 'x' f32[3, 8]", 'EOP'],
  // rope
  ['ropeForward', () => [t([1, 2, 1, 7]), ti([1, 2]), { headDim: 7, theta: 10000 }, t([1, 2, 1, 7])], "rope_forward: head_dim 7 must be even and equal x's last dimension, x is f32[1, 2, 1, 7]", 'EOP'],
  ['ropeForward', () => [t([1, 2, 1, 8]), t([1, 2]), { headDim: 8, theta: 10000 }, t([1, 2, 1, 8])], "rope_forward: argument 'positions' must be i32, got f32[1, 2]", 'EOP'],
  ['ropeForward', () => [t([1, 2, 1, 8]), ti([2, 1]), { headDim: 8, theta: 10000 }, t([1, 2, 1, 8])], "rope_forward: argument 'positions' must have shape [1, 2], got i32[2, 1]", 'EOP'],
  ['ropeBackward', () => [t([2, 8]), ti([1, 2]), { headDim: 8, theta: 10000 }, t([2, 8])], "rope_backward: argument 'dy' must have 4 dimensions, got f32[2, 8]", 'EOP'],
  // attention
  ['attentionForward', () => [t([1, 4, 3, 8]), t([1, 4, 2, 8]), t([1, 4, 2, 8]), null, 0.3, true, t([1, 4, 3, 8]), t([1, 3, 4])], 'attention_forward: query heads must be a multiple of key/value heads: q f32[1, 4, 3, 8], k f32[1, 4, 2, 8]', 'EOP'],
  ['attentionForward', () => [t([1, 4, 4, 8]), t([1, 5, 2, 8]), t([1, 5, 2, 8]), null, 0.3, true, t([1, 4, 4, 8]), t([1, 4, 4])], "attention_forward: argument 'k' must have shape [1, 4, 2, 8], got f32[1, 5, 2, 8]", 'EOP'],
  ['attentionForward', () => [t([1, 4, 2, 8]), t([1, 4, 2, 8]), t([1, 4, 2, 8]), ti([1, 5]), 0.3, true, t([1, 4, 2, 8]), t([1, 2, 4])], "attention_forward: argument 'segment' must have shape [1, 4], got i32[1, 5]", 'EOP'],
  ['attentionForward', () => [t([1, 4, 2, 8]), t([1, 4, 2, 8]), t([1, 4, 2, 8]), null, 0, true, t([1, 4, 2, 8]), t([1, 2, 4])], "attention_forward: argument 'scale' must be a finite number > 0, got 0.000000", 'EOP'],
  ['attentionForward', () => [t([1, 4, 2, 8]), t([1, 4, 2, 8]), t([1, 4, 2, 8]), null, 0.3, true, t([1, 4, 2, 8]), t([1, 4, 2])], "attention_forward: argument 'lse' must have shape [1, 2, 4], got f32[1, 4, 2]", 'EOP'],
  ['attentionBackward', () => [t([1, 4, 2, 8]), t([1, 4, 2, 8]), t([1, 4, 2, 8]), null, 0.3, true, t([1, 4, 2, 8]), t([1, 2, 4]), t([1, 4, 2, 7]), t([1, 4, 2, 8]), t([1, 4, 2, 8]), t([1, 4, 2, 8])], "attention_backward: argument 'dout' must have shape [1, 4, 2, 8], got f32[1, 4, 2, 7]", 'EOP'],
  // swiglu
  ['swigluForward', () => [t([4]), t([3]), t([4])], "swiglu_forward: argument 'up' f32[3] must have the shape of 'gate' f32[4]", 'EOP'],
  ['swigluBackward', () => [t([4]), t([4]), t([4]), ti([4]), t([4])], "swiglu_backward: argument 'dgate' must be f32, got i32[4]", 'EOP'],
  // embedding
  ['embeddingForward', () => [i32([0, 3, 10, 1], [4]), t([10, 5]), t([4, 5])], 'embedding_forward: ids[2] = 10 is outside the vocabulary [0, 10) (ids i32[4])', 'EOP'],
  ['embeddingForward', () => [i32([-1], [1]), t([10, 5]), t([1, 5])], 'embedding_forward: ids[0] = -1 is outside the vocabulary [0, 10) (ids i32[1])', 'EOP'],
  ['embeddingForward', () => [t([2]), t([10, 5]), t([2, 5])], "embedding_forward: argument 'ids' must be i32, got f32[2]", 'EOP'],
  ['embeddingBackward', () => [i32([0, 12], [2]), t([2, 5]), t([10, 5])], 'embedding_backward: ids[1] = 12 is outside the vocabulary [0, 10) (ids i32[2])', 'EOP'],
  ['embeddingBackward', () => [i32([0, 1], [2]), t([2, 4]), t([10, 5])], "embedding_backward: argument 'dout' must have shape [2, 5], got f32[2, 4]", 'EOP'],
  // cross-entropy
  ['crossEntropyForward', () => [t([3, 5]), i32([0, 7, 1], [3]), -100, t([3]), t([3])], 'cross_entropy_forward: targets[1] = 7 is outside the vocabulary [0, 5) and is not ignore_index -100', 'EOP'],
  ['crossEntropyForward', () => [t([3, 5]), i32([0, 1], [2]), -100, t([3]), t([3])], "cross_entropy_forward: argument 'targets' must have shape [3], got i32[2]", 'EOP'],
  ['crossEntropyForward', () => [t([3, 5]), i32([0, 1, 2], [3]), 1.5, t([3]), t([3])], "cross_entropy_forward: argument 'ignoreIndex' must be an integer, got 1.500000", 'EARG'],
  ['crossEntropyBackward', () => [t([3, 5]), i32([0, 1, 2], [3]), t([3]), -100, NaN, t([3, 5])], "cross_entropy_backward: argument 'grad_scale' must be finite, got nan", 'EOP'],
  ['crossEntropyBackward', () => [t([3, 5]), i32([0, -3, 2], [3]), t([3]), -100, 1, t([3, 5])], 'cross_entropy_backward: targets[1] = -3 is outside the vocabulary [0, 5) and is not ignore_index -100', 'EOP'],
  // dropout
  ['dropoutForward', () => [t([4]), 1, 0, t([4])], "dropout_forward: argument 'p' must be in [0.000000, 1.000000), got 1.000000", 'EOP'],
  ['dropoutForward', () => [t([4]), -0.1, 0, t([4])], "dropout_forward: argument 'p' must be in [0.000000, 1.000000), got -0.100000", 'EOP'],
  ['dropoutForward', () => [t([4]), 0.5, -1, t([4])], "dropout_forward: argument 'seed' must be >= 0", 'EARG'],
  ['dropoutForward', () => [t([4]), 0.5, 1.5, t([4])], "dropout_forward: argument 'seed' must be an integer, got 1.500000", 'EARG'],
  ['dropoutBackward', () => [t([4]), 1.5, 0, t([4])], "dropout_backward: argument 'p' must be in [0.000000, 1.000000), got 1.500000", 'EOP'],
  // add, accumulate
  ['add', () => [t([2, 3]), t([3, 2]), t([2, 3])], "add: argument 'b' f32[3, 2] must have the shape of 'a' f32[2, 3]", 'EOP'],
  ['add', () => [t([2, 3])], "add: argument 'b' must be a Tensor", 'EARG'],
  ['accumulate', () => [t([3]), Infinity, t([3])], "accumulate: argument 'alpha' must be finite, got inf", 'EOP'],
  // optimizer
  ['adamwStep', () => [t([3]), [t([3])], [t([3])], [t([3])], { lr: 1e-3, step: 1 }], "adamw_step: argument 'params' must be an array of Tensors", 'EARG'],
  ['adamwStep', () => [[t([3])], [7], [t([3])], [t([3])], { lr: 1e-3, step: 1 }], "adamw_step: argument 'grads[0]' must be a Tensor", 'EARG'],
  ['adamwStep', () => [[t([3])], [t([3])], [t([3])], [t([3])], { lr: 'big', step: 1 }], "adamw_step: option 'lr' must be a number", 'EARG'],
  ['globalGradNorm', () => [[ti([3])]], "global_grad_norm: argument 'grads[0]' must be f32, got i32[3]", 'EOP'],
];

describe.each(CASES.map((c, i) => [i, ...c] as const))('#%i %s', (_i, name, args, message, code) => {
  test(`sync throws: ${String(message)}`, () => {
    const e = syncError(name, args());
    // an Error object (created in the addon's realm, so not `instanceof` jest's Error)
    expect(Object.prototype.toString.call(e)).toBe('[object Error]');
    if (typeof message === 'string') expect(e.message).toBe(message);
    else expect(e.message).toMatch(message);
    expect(e.code).toBe(code);
  });

  test('async rejects with the same message and code', async () => {
    const sync = syncError(name, args());
    let rejected: (Error & { code?: string }) | undefined;
    await (OPS[`${name}Async`](...args()) as Promise<unknown>).then(
      () => undefined,
      (e: Error & { code?: string }) => {
        rejected = e;
      },
    );
    expect(rejected).toBeDefined();
    expect(rejected!.message).toBe(sync.message);
    expect(rejected!.code).toBe(sync.code);
  });
});

test('a failed op leaves its outputs untouched (checks run before any write)', () => {
  const y = filled([2, 5], 7);
  expect(() => ops.linearForward(f32([1, 2, 3, 4, 5, 6, 7, 8], [2, 4]), t([5, 3]), y)).toThrow();
  const out = filled([4, 5], 7);
  expect(() => ops.embeddingForward(i32([0, 3, 10, 1], [4]), t([10, 5]), out)).toThrow(/ids\[2\] = 10/);
  expect(Array.from(y.data()).every((v) => v === 7)).toBe(true);
  expect(Array.from(out.data()).every((v) => v === 7)).toBe(true);
});

// Inputs that may abort the process are run in a child process that loads the addon directly.
describe('no abort on degenerate shapes (child process)', () => {
  let dir: string;
  const addon = join(packageRoot(), 'build', 'Release', 'starweave_native.node');
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'sw-crash-'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  function runChild(body: string): { status: number | null; signal: string | null; out: string } {
    const file = join(dir, `case-${Math.random().toString(36).slice(2)}.mjs`);
    writeFileSync(
      file,
      `import { createRequire } from 'node:module';
const a = createRequire(import.meta.url)(${JSON.stringify(process.env.STARWEAVE_NATIVE_PATH ?? addon)});
const f = (s, d = 'f32') => a.tensorEmpty(d, s);
try { ${body}; console.log('RESULT ok'); }
catch (e) { console.log('RESULT error ' + e.code + ' ' + e.message); }
`,
    );
    const r = spawnSync(process.execPath, [file], { encoding: 'utf8', timeout: 60000 });
    return { status: r.status, signal: r.signal, out: `${r.stdout}${r.stderr}` };
  }

  test.each([
    ['attentionForward with head dim D = 0', "a.attentionForward(f([1,2,1,0]), f([1,2,1,0]), f([1,2,1,0]), null, 0.5, true, f([1,2,1,0]), f([1,1,2]))"],
    ['attentionForward with Hq = 0 query heads', "a.attentionForward(f([1,2,0,4]), f([1,2,1,4]), f([1,2,1,4]), null, 0.5, true, f([1,2,0,4]), f([1,0,2]))"],
    [
      'attentionBackward with head dim D = 0',
      "a.attentionBackward(f([1,2,1,0]), f([1,2,1,0]), f([1,2,1,0]), null, 0.5, true, f([1,2,1,0]), f([1,1,2]), f([1,2,1,0]), f([1,2,1,0]), f([1,2,1,0]), f([1,2,1,0]))",
    ],
  ])('%s: a JS error or an empty result, never an abort', (_what, call) => {
    const r = runChild(call);
    if (r.signal !== null || r.status !== 0) {
      throw new Error(`the child process died (${r.signal ?? `exit code ${r.status}`}) instead of getting a JS error:\n${r.out.trim()}`);
    }
    expect(r.out).toMatch(/RESULT (ok|error \w+ attention_(forward|backward): )/);
  });

  test('the child harness itself reports JS errors (control case)', () => {
    const r = runChild("a.attentionForward(f([1,4,3,8]), f([1,4,2,8]), f([1,4,2,8]), null, 0.5, true, f([1,4,3,8]), f([1,3,4]))");
    expect(r.status).toBe(0);
    expect(r.out).toMatch(/RESULT error EOP attention_forward: query heads must be a multiple/);
  });

  test('async: the degenerate attention rejects (the worker thread catches it)', async () => {
    const q = t([1, 2, 1, 0]);
    await expect(ops.attentionForwardAsync(q, q, q, null, 0.5, true, t([1, 2, 1, 0]), t([1, 1, 2]))).rejects.toThrow(/attention_forward/);
  });
});
