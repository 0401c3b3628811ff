#include "ops/layers.h"

#include <cmath>
#include <vector>

#include "cpu/attention.h"
#include "ops/check.h"

namespace sw::ops {
namespace {

using cpu::kernels;

void f32_cpu(const char* op, const char* arg, const Tensor& t) {
  check::dtype(op, arg, t, {DType::F32});
  check::cpu(op, arg, t);
}

void same_shape(const char* op, const char* arg, const Tensor& t, const Tensor& like, const char* like_name) {
  if (t.shape != like.shape)
    throw op_error(op, std::string("argument '") + arg + "' " + t.describe() + " must have the shape of '" + like_name +
                           "' " + like.describe());
}

// [B, T, H, D] activations of attention / rope
void check_bthd(const char* op, const char* arg, const Tensor& t) {
  f32_cpu(op, arg, t);
  check::ndim(op, arg, t, 4);
}

void check_positions(const char* op, const Tensor& pos, const Tensor& x) {
  check::dtype(op, "positions", pos, {DType::I32});
  check::cpu(op, "positions", pos);
  check::shape(op, "positions", pos, {x.dim(0), x.dim(1)});
}

void check_rope(const char* op, const RopeParams& p, const Tensor& x) {
  if (x.dim(3) != p.head_dim || p.head_dim % 2 != 0)
    throw op_error(op, "head_dim " + std::to_string(p.head_dim) + " must be even and equal x's last dimension, x is " +
                           x.describe());
  check::positive(op, "theta", p.theta);
  if (p.llama3_factor != 0) {
    check::positive(op, "rope_scaling.factor", p.llama3_factor);
    check::positive(op, "rope_scaling.original_max_position_embeddings", p.original_max_positions);
    check::positive(op, "rope_scaling.low_freq_factor", p.low_freq_factor);
    if (!(p.high_freq_factor > p.low_freq_factor))
      throw op_error(op, "rope_scaling.high_freq_factor must be > low_freq_factor, got " +
                             std::to_string(p.high_freq_factor) + " <= " + std::to_string(p.low_freq_factor));
  }
  check::positive(op, "rope_scaling.factor (linear)", p.linear_factor);
}

void rope_apply(const char* op, const Tensor& x, const Tensor& pos, const RopeParams& p, Tensor& y, bool inverse,
                const Tensor* table) {
  check_bthd(op, inverse ? "dy" : "x", x);
  check_rope(op, p, x);
  check_positions(op, pos, x);
  check::output(op, inverse ? "dx" : "y", y, DType::F32, x.shape);
  if (table) {
    f32_cpu(op, "table", *table);
    check::shape(op, "table", *table, {x.dim(0) * x.dim(1), x.dim(3)});
    kernels().rope(x.data<float>(), y.data<float>(), pos.data<int32_t>(), nullptr, table->data<float>(),
                   x.dim(0) * x.dim(1), x.dim(2), x.dim(3), inverse);
    return;
  }
  std::vector<float> inv_freq(p.head_dim / 2);
  cpu::rope_inv_freq(p, inv_freq.data());
  kernels().rope(x.data<float>(), y.data<float>(), pos.data<int32_t>(), inv_freq.data(), nullptr, x.dim(0) * x.dim(1),
                 x.dim(2), x.dim(3), inverse);
}

cpu::AttentionShape attention_shape(const char* op, const Tensor& q, const Tensor& k, const Tensor& v,
                                    const Tensor* segment, float scale, bool causal) {
  check_bthd(op, "q", q);
  check_bthd(op, "k", k);
  check_bthd(op, "v", v);
  const int64_t B = q.dim(0), T = q.dim(1), Hq = q.dim(2), D = q.dim(3), Hkv = k.dim(2);
  if (D < 1 || Hq < 1)
    throw op_error(op, "q must have at least one head and a head dimension >= 1, got q " + q.describe());
  if (Hkv < 1 || Hq % Hkv != 0)
    throw op_error(op, "query heads must be a multiple of key/value heads: q " + q.describe() + ", k " + k.describe());
  check::shape(op, "k", k, {B, T, Hkv, D});
  check::shape(op, "v", v, {B, T, Hkv, D});
  if (segment) {
    check::dtype(op, "segment", *segment, {DType::I32});
    check::cpu(op, "segment", *segment);
    check::shape(op, "segment", *segment, {B, T});
  }
  check::positive(op, "scale", scale);
  return {B, T, Hq, Hkv, D, scale, causal};
}

}  // namespace

void rmsnorm_forward(const Tensor& x, const Tensor& w, float eps, Tensor& y, Tensor& rstd) {
  const char* op = "rmsnorm_forward";
  f32_cpu(op, "x", x);
  check::ndim_at_least(op, "x", x, 1);
  const int64_t C = check::last_dim(x), N = check::rows(x);
  f32_cpu(op, "w", w);
  check::shape(op, "w", w, {C});
  check::positive(op, "eps", eps);
  check::output(op, "y", y, DType::F32, x.shape);
  check::output(op, "rstd", rstd, DType::F32, {N});
  kernels().rmsnorm_forward(x.data<float>(), w.data<float>(), y.data<float>(), rstd.data<float>(), N, C, eps);
}

void rmsnorm_backward(const Tensor& dy, const Tensor& x, const Tensor& w, const Tensor& rstd, Tensor& dx, Tensor* dw) {
  const char* op = "rmsnorm_backward";
  f32_cpu(op, "x", x);
  check::ndim_at_least(op, "x", x, 1);
  const int64_t C = check::last_dim(x), N = check::rows(x);
  f32_cpu(op, "dy", dy);
  same_shape(op, "dy", dy, x, "x");
  f32_cpu(op, "w", w);
  check::shape(op, "w", w, {C});
  f32_cpu(op, "rstd", rstd);
  check::shape(op, "rstd", rstd, {N});
  check::output(op, "dx", dx, DType::F32, x.shape);
  if (dw) check::output(op, "dw", *dw, DType::F32, {C});
  kernels().rmsnorm_backward(dy.data<float>(), x.data<float>(), w.data<float>(), rstd.data<float>(), dx.data<float>(),
                             dw ? dw->data<float>() : nullptr, N, C);
}

void rope_forward(const Tensor& x, const Tensor& positions, const RopeParams& p, Tensor& y, const Tensor* table) {
  rope_apply("rope_forward", x, positions, p, y, false, table);
}

void rope_backward(const Tensor& dy, const Tensor& positions, const RopeParams& p, Tensor& dx, const Tensor* table) {
  rope_apply("rope_backward", dy, positions, p, dx, true, table);
}

void rope_table(const Tensor& positions, const RopeParams& p, Tensor& table) {
  const char* op = "rope_table";
  check::dtype(op, "positions", positions, {DType::I32});
  check::cpu(op, "positions", positions);
  if (p.head_dim < 2 || p.head_dim % 2 != 0) throw op_error(op, "head_dim " + std::to_string(p.head_dim) + " must be even");
  check::positive(op, "theta", p.theta);
  const int64_t BT = positions.numel();
  check::output(op, "table", table, DType::F32, {BT, p.head_dim});
  std::vector<float> inv_freq(p.head_dim / 2);
  cpu::rope_inv_freq(p, inv_freq.data());
  kernels().rope_table(positions.data<int32_t>(), inv_freq.data(), table.data<float>(), BT, p.head_dim);
}

void attention_forward(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor* segment, float scale,
                       bool causal, Tensor& out, Tensor& lse, bool bf16) {
  const char* op = "attention_forward";
  auto s = attention_shape(op, q, k, v, segment, scale, causal);
  s.bf16 = bf16;
  check::output(op, "out", out, DType::F32, q.shape);
  check::output(op, "lse", lse, DType::F32, {s.B, s.Hq, s.T});
  cpu::attention_forward(s, q.data<float>(), k.data<float>(), v.data<float>(),
                         segment ? segment->data<int32_t>() : nullptr, out.data<float>(), lse.data<float>());
}

void attention_backward(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor* segment, float scale,
                        bool causal, const Tensor& out, const Tensor& lse, const Tensor& dout, Tensor& dq, Tensor& dk,
                        Tensor& dv, bool bf16) {
  const char* op = "attention_backward";
  auto s = attention_shape(op, q, k, v, segment, scale, causal);
  s.bf16 = bf16;
  f32_cpu(op, "out", out);
  check::shape(op, "out", out, q.shape);
  f32_cpu(op, "lse", lse);
  check::shape(op, "lse", lse, {s.B, s.Hq, s.T});
  f32_cpu(op, "dout", dout);
  check::shape(op, "dout", dout, q.shape);
  check::output(op, "dq", dq, DType::F32, q.shape);
  check::output(op, "dk", dk, DType::F32, k.shape);
  check::output(op, "dv", dv, DType::F32, v.shape);
  cpu::attention_backward(s, q.data<float>(), k.data<float>(), v.data<float>(),
                          segment ? segment->data<int32_t>() : nullptr, out.data<float>(), lse.data<float>(),
                          dout.data<float>(), dq.data<float>(), dk.data<float>(), dv.data<float>());
}

void swiglu_forward(const Tensor& gate, const Tensor& up, Tensor& h) {
  const char* op = "swiglu_forward";
  f32_cpu(op, "gate", gate);
  f32_cpu(op, "up", up);
  same_shape(op, "up", up, gate, "gate");
  check::output(op, "h", h, DType::F32, gate.shape);
  kernels().swiglu_forward(gate.data<float>(), up.data<float>(), h.data<float>(), gate.numel());
}

void swiglu_backward(const Tensor& dh, const Tensor& gate, const Tensor& up, Tensor& dgate, Tensor& dup) {
  const char* op = "swiglu_backward";
  f32_cpu(op, "gate", gate);
  f32_cpu(op, "up", up);
  f32_cpu(op, "dh", dh);
  same_shape(op, "up", up, gate, "gate");
  same_shape(op, "dh", dh, gate, "gate");
  check::output(op, "dgate", dgate, DType::F32, gate.shape);
  check::output(op, "dup", dup, DType::F32, gate.shape);
  kernels().swiglu_backward(dh.data<float>(), gate.data<float>(), up.data<float>(), dgate.data<float>(),
                            dup.data<float>(), gate.numel());
}

namespace {
void check_ids(const char* op, const Tensor& ids, int64_t V) {
  check::dtype(op, "ids", ids, {DType::I32});
  check::cpu(op, "ids", ids);
  const int32_t* p = ids.data<int32_t>();
  for (int64_t i = 0, n = ids.numel(); i < n; ++i)
    if (p[i] < 0 || p[i] >= V)
      throw op_error(op, "ids[" + std::to_string(i) + "] = " + std::to_string(p[i]) + " is outside the vocabulary [0, " +
                             std::to_string(V) + ") (ids " + ids.describe() + ")");
}
std::vector<int64_t> append(std::vector<int64_t> s, int64_t last) {
  s.push_back(last);
  return s;
}
}  // namespace

void embedding_forward(const Tensor& ids, const Tensor& table, Tensor& out) {
  const char* op = "embedding_forward";
  check::dtype(op, "table", table, {DType::F32, DType::BF16});
  check::ndim(op, "table", table, 2);
  check::cpu(op, "table", table);
  const int64_t V = table.dim(0), C = table.dim(1);
  check_ids(op, ids, V);
  check::output(op, "out", out, DType::F32, append(ids.shape, C));
  const bool bf = table.dtype == DType::BF16;
  kernels().embedding_forward(ids.data<int32_t>(), bf ? nullptr : table.data<float>(),
                              bf ? table.data<uint16_t>() : nullptr, out.data<float>(), ids.numel(), C);
}

void embedding_backward(const Tensor& ids, const Tensor& dout, Tensor& dtable) {
  const char* op = "embedding_backward";
  check::dtype(op, "dtable", dtable, {DType::F32});
  check::ndim(op, "dtable", dtable, 2);
  check::cpu(op, "dtable", dtable);
  check::writable(op, "dtable", dtable);
  const int64_t V = dtable.dim(0), C = dtable.dim(1);
  check_ids(op, ids, V);
  f32_cpu(op, "dout", dout);
  check::shape(op, "dout", dout, append(ids.shape, C));
  kernels().embedding_backward(ids.data<int32_t>(), dout.data<float>(), dtable.data<float>(), ids.numel(), C);
}

namespace {
void check_ce(const char* op, const Tensor& logits, const Tensor& targets, int32_t ignore_index) {
  f32_cpu(op, "logits", logits);
  check::ndim(op, "logits", logits, 2);
  const int64_t N = logits.dim(0), V = logits.dim(1);
  if (V < 1) throw op_error(op, "logits must have a vocabulary dimension >= 1, got " + logits.describe());
  check::dtype(op, "targets", targets, {DType::I32});
  check::cpu(op, "targets", targets);
  check::shape(op, "targets", targets, {N});
  const int32_t* t = targets.data<int32_t>();
  for (int64_t i = 0; i < N; ++i)
    if (t[i] != ignore_index && (t[i] < 0 || t[i] >= V))
      throw op_error(op, "targets[" + std::to_string(i) + "] = " + std::to_string(t[i]) +
                             " is outside the vocabulary [0, " + std::to_string(V) + ") and is not ignore_index " +
                             std::to_string(ignore_index));
}
}  // namespace

int64_t cross_entropy_forward(const Tensor& logits, const Tensor& targets, int32_t ignore_index, Tensor& losses,
                              Tensor& lse) {
  const char* op = "cross_entropy_forward";
  check_ce(op, logits, targets, ignore_index);
  const int64_t N = logits.dim(0), V = logits.dim(1);
  check::output(op, "losses", losses, DType::F32, {N});
  check::output(op, "lse", lse, DType::F32, {N});
  return kernels().cross_entropy_forward(logits.data<float>(), targets.data<int32_t>(), losses.data<float>(),
                                         lse.data<float>(), N, V, ignore_index);
}

void cross_entropy_backward(const Tensor& logits, const Tensor& targets, const Tensor& lse, int32_t ignore_index,
                            float grad_scale, Tensor& dlogits) {
  const char* op = "cross_entropy_backward";
  check_ce(op, logits, targets, ignore_index);
  const int64_t N = logits.dim(0), V = logits.dim(1);
  f32_cpu(op, "lse", lse);
  check::shape(op, "lse", lse, {N});
  check::finite(op, "grad_scale", grad_scale);
  check::output(op, "dlogits", dlogits, DType::F32, logits.shape);
  kernels().cross_entropy_backward(logits.data<float>(), targets.data<int32_t>(), lse.data<float>(),
                                   dlogits.data<float>(), N, V, ignore_index, grad_scale);
}

void add(const Tensor& a, const Tensor& b, Tensor& out) {
  const char* op = "add";
  f32_cpu(op, "a", a);
  f32_cpu(op, "b", b);
  same_shape(op, "b", b, a, "a");
  check::output(op, "out", out, DType::F32, a.shape);
  kernels().add(a.data<float>(), b.data<float>(), out.data<float>(), a.numel());
}

void accumulate(const Tensor& x, float alpha, Tensor& y) {
  const char* op = "accumulate";
  f32_cpu(op, "x", x);
  check::finite(op, "alpha", alpha);
  check::output(op, "y", y, DType::F32, x.shape);
  kernels().axpy(alpha, x.data<float>(), y.data<float>(), x.numel());
}

void dropout_forward(const Tensor& x, float p, uint64_t seed, Tensor& out) {
  const char* op = "dropout_forward";
  f32_cpu(op, "x", x);
  check::in_range(op, "p", p, 0.0, 1.0);
  check::output(op, "out", out, DType::F32, x.shape);
  kernels().dropout(x.data<float>(), out.data<float>(), x.numel(), p, seed);
}

void dropout_backward(const Tensor& dy, float p, uint64_t seed, Tensor& dx) {
  const char* op = "dropout_backward";
  f32_cpu(op, "dy", dy);
  check::in_range(op, "p", p, 0.0, 1.0);
  check::output(op, "dx", dx, DType::F32, dy.shape);
  kernels().dropout(dy.data<float>(), dx.data<float>(), dy.numel(), p, seed);
}

void bias_forward(const Tensor& b, Tensor& y) {
  const char* op = "bias_forward";
  f32_cpu(op, "y", y);
  check::writable(op, "y", y);
  check::ndim_at_least(op, "y", y, 1);
  const int64_t C = check::last_dim(y);
  f32_cpu(op, "b", b);
  check::shape(op, "b", b, {C});
  kernels().bias_add(b.data<float>(), y.data<float>(), check::rows(y), C);
}

void bias_backward(const Tensor& dy, Tensor& db) {
  const char* op = "bias_backward";
  f32_cpu(op, "dy", dy);
  check::ndim_at_least(op, "dy", dy, 1);
  const int64_t C = check::last_dim(dy);
  check::output(op, "db", db, DType::F32, {C});
  kernels().bias_grad(dy.data<float>(), db.data<float>(), check::rows(dy), C);
}

void attention_cached_forward(const Tensor& q, const Tensor& k_cache, const Tensor& v_cache, const Tensor* slots,
                              const Tensor& start, float scale, Tensor& out) {
  const char* op = "attention_cached_forward";
  check_bthd(op, "q", q);
  check_bthd(op, "k_cache", k_cache);
  check_bthd(op, "v_cache", v_cache);
  const int64_t B = q.dim(0), Tq = q.dim(1), Hq = q.dim(2), D = q.dim(3);
  const int64_t S = k_cache.dim(0), L = k_cache.dim(1), Hkv = k_cache.dim(2);
  if (Hq < 1 || D < 1 || Hkv < 1 || Hq % Hkv != 0)
    throw op_error(op, "query heads must be a positive multiple of key/value heads: q " + q.describe() + ", k_cache " +
                           k_cache.describe());
  check::shape(op, "k_cache", k_cache, {S, L, Hkv, D});
  check::shape(op, "v_cache", v_cache, {S, L, Hkv, D});
  check::dtype(op, "start", start, {DType::I32});
  check::cpu(op, "start", start);
  check::shape(op, "start", start, {B});
  if (slots) {
    check::dtype(op, "slots", *slots, {DType::I32});
    check::cpu(op, "slots", *slots);
    check::shape(op, "slots", *slots, {B});
  }
  check::positive(op, "scale", scale);
  check::output(op, "out", out, DType::F32, q.shape);
  const int32_t* st = start.data<int32_t>();
  const int32_t* sl = slots ? slots->data<int32_t>() : nullptr;
  for (int64_t b = 0; b < B; ++b) {
    const int64_t slot = sl ? sl[b] : b;
    if (slot < 0 || slot >= S)
      throw op_error(op, "slots[" + std::to_string(b) + "] = " + std::to_string(slot) + " is outside the cache's " +
                             std::to_string(S) + " slots (k_cache " + k_cache.describe() + ")");
    if (st[b] < 0 || st[b] + Tq > L)
      throw op_error(op, "start[" + std::to_string(b) + "] = " + std::to_string(st[b]) + " with " + std::to_string(Tq) +
                             " new positions does not fit the cache's " + std::to_string(L) + " positions (k_cache " +
                             k_cache.describe() + ")");
  }
  if (B == 0 || Tq == 0) return;
  kernels().attention_cached(q.data<float>(), k_cache.data<float>(), v_cache.data<float>(), sl, st, out.data<float>(),
                             B, Tq, Hq, Hkv, D, L, scale);
}

}  // namespace sw::ops
