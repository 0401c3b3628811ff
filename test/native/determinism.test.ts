// Reproducibility: the same inputs give bit-identical results on every run, whatever thread took which
// task (reductions use fixed chunks/slots reduced in a fixed order). Training runs rely on this.
import { Tensor, ops } from '../../bindings/index.js';

function bits(t: Tensor): Uint32Array {
  const f = t.data();
  return new Uint32Array(f.buffer, f.byteOffset, f.length).slice();
}

function repeatIdentical(run: () => Tensor[], times = 6): void {
  const first = run().map(bits);
  for (let k = 1; k < times; k++) {
    const again = run().map(bits);
    again.forEach((b, i) => expect(Buffer.compare(Buffer.from(b.buffer), Buffer.from(first[i].buffer))).toBe(0));
  }
}

describe('bit-identical results across runs', () => {
  test('attention backward (GQA, T=300: many key tiles over the thread pool)', () => {
    const q = Tensor.random([1, 300, 6, 32], 1), k = Tensor.random([1, 300, 2, 32], 2), v = Tensor.random([1, 300, 2, 32], 3);
    const dout = Tensor.random([1, 300, 6, 32], 4);
    const out = Tensor.empty('f32', q.shape), lse = Tensor.empty('f32', [1, 6, 300]);
    ops.attentionForward(q, k, v, null, 0.2, true, out, lse);
    repeatIdentical(() => {
      const dq = Tensor.empty('f32', q.shape), dk = Tensor.empty('f32', k.shape), dv = Tensor.empty('f32', v.shape);
      ops.attentionBackward(q, k, v, null, 0.2, true, out, lse, dout, dq, dk, dv);
      return [dq, dk, dv];
    });
  });

  test('rmsnorm backward dw over 2000 rows', () => {
    const x = Tensor.random([2000, 48], 5), w = Tensor.random([48], 6), dy = Tensor.random([2000, 48], 7);
    const y = Tensor.empty('f32', x.shape), rstd = Tensor.empty('f32', [2000]);
    ops.rmsnormForward(x, w, 1e-6, y, rstd);
    repeatIdentical(() => {
      const dx = Tensor.empty('f32', x.shape), dw = Tensor.empty('f32', [48]);
      ops.rmsnormBackward(dy, x, w, rstd, dx, dw);
      return [dx, dw];
    });
  });

  test('LoRA linear backward with bf16 weights and dropout, and the global grad norm', () => {
    const x = Tensor.random([513, 96], 8), w = Tensor.random([200, 96], 9).convert('bf16');
    const a = Tensor.random([8, 96], 10, -0.1, 0.1), b = Tensor.random([200, 8], 11, -0.1, 0.1);
    const dy = Tensor.random([513, 200], 12);
    const cfg = { scale: 2, dropout: 0.1, seed: 3 };
    const norms: number[] = [];
    repeatIdentical(() => {
      const y = Tensor.empty('f32', [513, 200]), u = Tensor.empty('f32', [513, 8]);
      ops.loraLinearForward(x, w, a, b, cfg, y, u);
      const dx = Tensor.empty('f32', x.shape), da = Tensor.empty('f32', a.shape), db = Tensor.empty('f32', b.shape);
      ops.loraLinearBackward(dy, x, w, a, b, u, cfg, dx, da, db, null);
      norms.push(ops.globalGradNorm([da, db, dx]));
      return [y, dx, da, db];
    });
    expect(new Set(norms).size).toBe(1);
  });
});
