// Runs every op (forward and backward) once on small awkward shapes and prints a JSON summary of the
// results. test/isa/emulated.test.ts runs it natively and under qemu-x86_64 with older CPU models.
import { createRequire } from 'node:module';

const a = createRequire(import.meta.url)(process.argv[2]);
let seed = 12345;
const rnd = (n, scale = 1) => {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    seed = (seed * 1103515245 + 12345) >>> 0;
    out[i] = ((seed >>> 8) / 16777216 - 0.5) * 2 * scale;
  }
  return out;
};
const T = (shape, scale = 1) => a.tensorFromBytes(rnd(shape.reduce((x, y) => x * y, 1), scale), 'f32', shape);
const E = (shape, dt = 'f32') => a.tensorEmpty(dt, shape);
const I = (vals, shape) => a.tensorFromBytes(Int32Array.from(vals), 'i32', shape);
const vals = (t) => Array.from(new Float32Array(t.buffer(), t.byteOffset, t.nbytes / 4));
const out = {};

// matmul f32 and bf16 weights, all transposes
const x = T([37, 45]), w = T([29, 45]), wb = a.tensorConvert(w, 'bf16');
for (const [name, ww] of [['f32', w], ['bf16', wb]]) {
  const y = E([37, 29]);
  a.linearForward(x, ww, y);
  out[`linear_${name}`] = vals(y);
  const dy = T([37, 29]), dx = E([37, 45]);
  a.linearBackward(dy, x, ww, dx, null);
  out[`linear_dx_${name}`] = vals(dx);
}
const c = E([45, 29]);
a.matmul(x, T([37, 29]), c, true, false, 0.5, 0);
out.matmul_ta = vals(c);
// LoRA with dropout
{
  const A = T([5, 45], 0.2), B = T([29, 5], 0.2), y = E([37, 29]), u = E([37, 5]);
  const cfg = { scale: 2, dropout: 0.1, seed: 9 };
  a.loraLinearForward(x, wb, A, B, cfg, y, u);
  const dy = T([37, 29]), dx = E([37, 45]), dA = E([5, 45]), dB = E([29, 5]);
  a.loraLinearBackward(dy, x, wb, A, B, u, cfg, dx, dA, dB, null);
  Object.assign(out, { lora_y: vals(y), lora_dx: vals(dx), lora_dA: vals(dA), lora_dB: vals(dB) });
}
// rmsnorm
{
  const xx = T([7, 33]), g = T([33]), y = E([7, 33]), r = E([7]), dx = E([7, 33]), dg = E([33]);
  a.rmsnormForward(xx, g, 1e-5, y, r);
  a.rmsnormBackward(T([7, 33]), xx, g, r, dx, dg);
  Object.assign(out, { rms_y: vals(y), rms_dx: vals(dx), rms_dg: vals(dg) });
}
// rope (llama3 scaling) and attention (GQA, causal, segments)
{
  const q = T([1, 33, 6, 16]), k = T([1, 33, 2, 16]), v = T([1, 33, 2, 16]);
  const pos = I(Array.from({ length: 33 }, (_, i) => i * 3), [1, 33]);
  const rope = { headDim: 16, theta: 500000, llama3: { factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositionEmbeddings: 64 } };
  const qr = E([1, 33, 6, 16]);
  a.ropeForward(q, pos, rope, qr);
  const seg = I(Array.from({ length: 33 }, (_, i) => (i < 20 ? 0 : 1)), [1, 33]);
  const o = E([1, 33, 6, 16]), lse = E([1, 6, 33]);
  a.attentionForward(qr, k, v, seg, 0.25, true, o, lse);
  const dq = E([1, 33, 6, 16]), dk = E([1, 33, 2, 16]), dv = E([1, 33, 2, 16]);
  a.attentionBackward(qr, k, v, seg, 0.25, true, o, lse, T([1, 33, 6, 16]), dq, dk, dv);
  const dqr = E([1, 33, 6, 16]);
  a.ropeBackward(dq, pos, rope, dqr);
  Object.assign(out, { rope: vals(qr), attn: vals(o), attn_lse: vals(lse), attn_dq: vals(dqr), attn_dk: vals(dk), attn_dv: vals(dv) });
}
// swiglu, embedding, cross-entropy, adamw, clip
{
  const g = T([7, 19], 3), u = T([7, 19]), h = E([7, 19]), dg = E([7, 19]), du = E([7, 19]);
  a.swigluForward(g, u, h);
  a.swigluBackward(T([7, 19]), g, u, dg, du);
  const table = a.tensorConvert(T([50, 24]), 'bf16'), ids = I([3, 49, 0, 3, 17], [5]), emb = E([5, 24]), dtab = E([50, 24]);
  a.embeddingForward(ids, table, emb);
  a.embeddingBackward(ids, T([5, 24]), dtab);
  const logits = T([6, 101], 4), tg = I([1, -100, 100, 7, 0, 55], [6]), losses = E([6]), lse = E([6]), dl = E([6, 101]);
  const n = a.crossEntropyForward(logits, tg, -100, losses, lse);
  a.crossEntropyBackward(logits, tg, lse, -100, 1 / n, dl);
  const p = T([1000]), gr = T([1000]), m = E([1000]), vv = E([1000]);
  for (let s = 1; s <= 3; s++) a.adamwStep([p], [gr], [m], [vv], { lr: 1e-2, weightDecay: 0.1, step: s });
  const norm = a.clipGradNorm([gr], 1.0);
  Object.assign(out, { swiglu: vals(h), swiglu_dg: vals(dg), swiglu_du: vals(du), emb: vals(emb), emb_d: vals(dtab), ce: vals(losses), ce_d: vals(dl), adamw: vals(p), clip: [norm, ...vals(gr).slice(0, 8)] });
}
console.log(JSON.stringify({ isa: a.info().isa, out }));
