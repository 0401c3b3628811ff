// The passes of training and evaluation, read top to bottom as llm.c's train_gpt2.c:
//   train_step: embed -> layer_forward × L -> final norm -> chunked vocabulary projection + loss + its
//   backward -> final norm backward -> layer_backward × L (recomputing each layer first when
//   checkpointing). Parameter gradients accumulate across calls (gradient accumulation).
// Plus the optimizer side: zero_grad, grad_norm, clip_grad_norm, optimizer_step.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/error.h"
#include "cpu/threadpool.h"
#include "model/llama.h"
#include "model/passes.h"
#include "model/rng.h"
#include "model/workspace.h"
#include "ops/layers.h"
#include "ops/linear.h"
#include "ops/optim.h"

namespace sw::model {

namespace {

constexpr int32_t kIgnoreIndex = -100;

Error model_error(const std::string& msg) { return Error("EMODEL", "Llama: " + msg); }

// dst = src (the residual stream's copies), split across the pool's threads.
void copy_rows(const Tensor& src, Tensor& dst) {
  const char* from = static_cast<const char*>(src.raw());
  char* to = static_cast<char*>(dst.raw());
  cpu::parallel_range(static_cast<int64_t>(dst.nbytes()), 4096, [&](int64_t b, int64_t e, int) {
    std::memcpy(to + b, from + b, static_cast<size_t>(e - b));
  });
}

void check_tokens(const char* op, const char* arg, const Tensor& t, const std::vector<int64_t>* shape) {
  if (t.dtype != DType::I32 || t.device() != Device::CPU)
    throw op_error(op, std::string("argument '") + arg + "' must be a CPU i32 tensor, got " + t.describe());
  if (shape && t.shape != *shape)
    throw op_error(op, std::string("argument '") + arg + "' must have shape " + shape_str(*shape) + " (as ids), got " +
                           t.describe());
}

}  // namespace

// ---------------------------------------------------------------------------------------------------
// buffers

Workspace& Llama::workspace(bool train, int64_t N, bool checkpointing) {
  if (!train && train_ws_ && train_ws_->cap >= N) return *train_ws_;
  std::unique_ptr<Workspace>& slot = train ? train_ws_ : infer_ws_;
  if (slot && slot->cap >= N && (!train || slot->checkpointing == checkpointing)) return *slot;
  slot.reset();  // free the old buffers before allocating the new ones
  auto w = std::make_unique<Workspace>();
  const LlamaConfig& c = cfg_;
  const int64_t C = c.hidden_size, I = c.intermediate_size, L = c.num_layers;
  const int64_t qd = c.num_heads * c.head_dim, kvd = c.num_kv_heads * c.head_dim;
  w->cap = N;
  w->train = train;
  w->checkpointing = checkpointing;
  std::array<bool, kProjCount> adapted{};
  int64_t max_in = 0;
  for (const Layer& layer : layers_)
    for (int p = 0; p < kProjCount; ++p)
      if (layer.proj[p].lora_active()) {
        adapted[p] = true;
        max_in = std::max(max_in, layer.proj[p].in);
      }
  const int64_t nres = train ? L + 1 : 2;
  const int64_t nacts = train && !checkpointing ? L : 1;
  for (int64_t i = 0; i < nres; ++i) w->res.push_back(w->alloc(DType::F32, {N, C}));
  w->acts.resize(nacts);
  for (Acts& a : w->acts) {
    a.rstd1 = w->alloc(DType::F32, {N});
    a.q = w->alloc(DType::F32, {N, qd});
    a.k = w->alloc(DType::F32, {N, kvd});
    a.v = w->alloc(DType::F32, {N, kvd});
    a.att = w->alloc(DType::F32, {N, qd});
    a.lse = w->alloc(DType::F32, {N * c.num_heads});
    a.xm = w->alloc(DType::F32, {N, C});
    a.rstd2 = w->alloc(DType::F32, {N});
    a.g = w->alloc(DType::F32, {N, I});
    a.up = w->alloc(DType::F32, {N, I});
    for (int p = 0; p < kProjCount; ++p)
      if (adapted[p]) a.u[p] = w->alloc(DType::F32, {N, lora_r_});
  }
  w->hn = w->alloc(DType::F32, {N, C});
  w->hh = w->alloc(DType::F32, {N, I});
  if (train && lora_dropout_ > 0 && max_in > 0) w->dropped = w->alloc(DType::F32, {N, max_in});
  w->xf = w->alloc(DType::F32, {N, C});
  w->rstdf = w->alloc(DType::F32, {N});
  w->positions = w->alloc(DType::I32, {N});
  w->rope = w->alloc(DType::F32, {N, c.head_dim});
  w->start = w->alloc(DType::I32, {N});
  if (train) {
    w->dres = w->alloc(DType::F32, {N, C});
    w->dtmp = w->alloc(DType::F32, {N, C});
    w->dh = w->alloc(DType::F32, {N, C});
    w->datt = w->alloc(DType::F32, {N, qd});
    w->dq = w->alloc(DType::F32, {N, qd});
    w->dk = w->alloc(DType::F32, {N, kvd});
    w->dv = w->alloc(DType::F32, {N, kvd});
    w->dg = w->alloc(DType::F32, {N, I});
    w->du = w->alloc(DType::F32, {N, I});
    w->dhh = w->alloc(DType::F32, {N, I});
    if (lora_r_ > 0) w->dU = w->alloc(DType::F32, {N, lora_r_});
  }
  slot = std::move(w);
  return *slot;
}

// Tokens per chunk of the vocabulary projection when not given: as many as keep the chunk's f32 logits
// near 100 MiB (512 for a 49k vocabulary, 192 for 128k), a multiple of 64 in [64, 1024]: bigger chunks
// pack the vocabulary matrix fewer times; the logits are written, read by the loss and read again by
// the backward, so they should not grow without bound.
static int64_t default_chunk_tokens(int64_t V) {
  const int64_t fit = (int64_t(100) << 20) / (4 * std::max<int64_t>(V, 1));
  return std::min<int64_t>(1024, std::max<int64_t>(64, fit / 64 * 64));
}

static void ensure_head(Workspace& w, int64_t chunk, int64_t C, int64_t V) {
  if (w.chunk == chunk) return;
  for (Tensor* t : {&w.cx, &w.clogits, &w.cdx, &w.ctargets, &w.closs, &w.clse})
    if (t->storage) w.bytes -= static_cast<int64_t>(t->nbytes());
  w.cx = w.alloc(DType::F32, {chunk, C});
  w.clogits = w.alloc(DType::F32, {chunk, V});
  w.cdx = w.alloc(DType::F32, {chunk, C});
  w.ctargets = w.alloc(DType::I32, {chunk});
  w.closs = w.alloc(DType::F32, {chunk});
  w.clse = w.alloc(DType::F32, {chunk});
  w.chunk = chunk;
}

// ---------------------------------------------------------------------------------------------------
// one layer

// x_next == nullptr: a checkpointed recompute, which stops after what the backward needs (the
// down_proj's output is not; its LoRA u is).
void Llama::layer_forward(int64_t l, const Pass& p, Workspace& ws, int64_t ai, const Tensor& x, Tensor* x_next) {
  const LlamaConfig& c = cfg_;
  Layer& L = layers_[l];
  Acts& a = ws.acts[ai];
  const int64_t N = p.N, B = p.B, T = p.T, C = c.hidden_size, I = c.intermediate_size;
  const int64_t Hq = c.num_heads, Hkv = c.num_kv_heads, D = c.head_dim;
  Tensor hn = view(ws.hn, {N, C});
  auto lin = [&](Proj pj, const Tensor& in, Tensor* out, bool acc) {
    LoraLinear& m = L.proj[static_cast<int>(pj)];
    Tensor u, dropped;
    LinearScratch s;
    if (m.lora_active()) u = view(a.u[static_cast<int>(pj)], {N, m.r});
    if (p.train && m.lora_active() && m.dropout > 0) {
      dropped = view(ws.dropped, {N, m.in});
      s.dropped = &dropped;
    }
    const uint64_t seed = dropout_seed(p.seed, l, static_cast<int>(pj));
    if (out) m.forward(in, *out, acc, m.lora_active() ? &u : nullptr, s, p.train, seed);
    else m.forward_u(in, &u, s, p.train, seed);
  };

  // attention block: xm = x + o_proj(attention(rope(q), rope(k), v)),  q/k/v = proj(input_layernorm(x))
  Tensor rstd1 = view(a.rstd1, {N});
  ops::rmsnorm_forward(x, L.ln1, c.rms_norm_eps, hn, rstd1);
  Tensor q = view(a.q, {N, Hq * D}), k = view(a.k, {N, Hkv * D}), v = view(a.v, {N, Hkv * D});
  lin(Proj::Q, hn, &q, false);
  lin(Proj::K, hn, &k, false);
  lin(Proj::V, hn, &v, false);
  Tensor q4 = view(a.q, {B, T, Hq, D}), k4 = view(a.k, {B, T, Hkv, D}), v4 = view(a.v, {B, T, Hkv, D});
  ops::rope_forward(q4, p.positions, c.rope, q4, &p.rope);
  ops::rope_forward(k4, p.positions, c.rope, k4, &p.rope);
  Tensor att4 = view(a.att, {B, T, Hq, D});
  const float scale = 1.0f / std::sqrt(static_cast<float>(D));
  if (p.mode == Mode::Prefill || p.mode == Mode::Decode) {
    KvCache& kv = *cache_;
    const int64_t row = Hkv * D;
    float* kc = kv.k[l].data<float>();
    float* vc = kv.v[l].data<float>();
    for (int64_t b = 0; b < B; ++b) {
      const int64_t pos = p.mode == Mode::Decode ? p.start.data<int32_t>()[b] : 0;
      const int64_t dst = (p.slot(b) * kv.capacity + pos) * row;
      std::memcpy(kc + dst, k.data<float>() + b * T * row, T * row * sizeof(float));
      std::memcpy(vc + dst, v.data<float>() + b * T * row, T * row * sizeof(float));
    }
  }
  if (p.mode == Mode::Decode) {
    ops::attention_cached_forward(q4, cache_->k[l], cache_->v[l], p.slots, p.start, scale, att4);
  } else {
    Tensor lse = view(a.lse, {B, Hq, T});
    ops::attention_forward(q4, k4, v4, p.segments, scale, true, att4, lse, p.attention_bf16);
  }
  Tensor att = view(a.att, {N, Hq * D}), xm = view(a.xm, {N, C});
  copy_rows(x, xm);
  lin(Proj::O, att, &xm, true);

  // MLP block: x_next = xm + down_proj(silu(gate_proj(h)) * up_proj(h)),  h = post_attention_layernorm(xm)
  Tensor rstd2 = view(a.rstd2, {N});
  ops::rmsnorm_forward(xm, L.ln2, c.rms_norm_eps, hn, rstd2);
  Tensor g = view(a.g, {N, I}), up = view(a.up, {N, I}), hh = view(ws.hh, {N, I});
  lin(Proj::Gate, hn, &g, false);
  lin(Proj::Up, hn, &up, false);
  ops::swiglu_forward(g, up, hh);
  if (!x_next) {  // recompute: hn and hh now hold what layer_backward needs first
    lin(Proj::Down, hh, nullptr, false);
    return;
  }
  copy_rows(xm, *x_next);
  lin(Proj::Down, hh, x_next, true);
}

// On entry ws.dres holds dL/d(layer output); on exit dL/d(layer input) (when need_dx).
// recomputed: layer_forward just ran on this layer (checkpointing), so ws.hn and ws.hh hold its
// post-attention norm output and SwiGLU product.
void Llama::layer_backward(int64_t l, const Pass& p, Workspace& ws, int64_t ai, bool need_dx, bool recomputed) {
  const LlamaConfig& c = cfg_;
  Layer& L = layers_[l];
  Acts& a = ws.acts[ai];
  const int64_t N = p.N, B = p.B, T = p.T, C = c.hidden_size, I = c.intermediate_size;
  const int64_t Hq = c.num_heads, Hkv = c.num_kv_heads, D = c.head_dim;
  Tensor x = view(ws.res[l], {N, C});
  Tensor hn = view(ws.hn, {N, C}), dres = view(ws.dres, {N, C}), dtmp = view(ws.dtmp, {N, C}), dh = view(ws.dh, {N, C});
  auto lin = [&](Proj pj, const Tensor& dy, const Tensor& in, Tensor* dx, bool acc) {
    LoraLinear& m = L.proj[static_cast<int>(pj)];
    if (!m.trainable() && !dx) return;
    Tensor u, dU, dropped;
    LinearScratch s;
    if (m.lora_active()) {
      u = view(a.u[static_cast<int>(pj)], {N, m.r});
      dU = view(ws.dU, {N, m.r});
      s.du = &dU;
      if (p.train && m.dropout > 0) {
        dropped = view(ws.dropped, {N, m.in});
        s.dropped = &dropped;
      }
    }
    m.backward(dy, in, m.lora_active() ? &u : nullptr, dx, acc, s, p.train, dropout_seed(p.seed, l, static_cast<int>(pj)));
  };

  // MLP block
  Tensor xm = view(a.xm, {N, C}), rstd2 = view(a.rstd2, {N});
  Tensor g = view(a.g, {N, I}), up = view(a.up, {N, I}), hh = view(ws.hh, {N, I});
  Tensor dhh = view(ws.dhh, {N, I}), dg = view(ws.dg, {N, I}), du = view(ws.du, {N, I});
  if (!recomputed) {  // recompute h and the SwiGLU product (cheap; not kept per layer)
    ops::rmsnorm_forward(xm, L.ln2, c.rms_norm_eps, hn, rstd2);
    if (L.proj[static_cast<int>(Proj::Down)].trainable()) ops::swiglu_forward(g, up, hh);
  }
  lin(Proj::Down, dres, hh, &dhh, false);
  ops::swiglu_backward(dhh, g, up, dg, du);
  lin(Proj::Gate, dg, hn, &dh, false);
  lin(Proj::Up, du, hn, &dh, true);
  ops::rmsnorm_backward(dh, xm, L.ln2, rstd2, dtmp, L.dln2.storage ? &L.dln2 : nullptr);
  ops::accumulate(dtmp, 1.0f, dres);  // dres = dL/dxm

  // attention block
  Tensor att = view(a.att, {N, Hq * D}), datt = view(ws.datt, {N, Hq * D});
  lin(Proj::O, dres, att, &datt, false);
  Tensor q4 = view(a.q, {B, T, Hq, D}), k4 = view(a.k, {B, T, Hkv, D}), v4 = view(a.v, {B, T, Hkv, D});
  Tensor att4 = view(a.att, {B, T, Hq, D}), datt4 = view(ws.datt, {B, T, Hq, D}), lse = view(a.lse, {B, Hq, T});
  Tensor dq4 = view(ws.dq, {B, T, Hq, D}), dk4 = view(ws.dk, {B, T, Hkv, D}), dv4 = view(ws.dv, {B, T, Hkv, D});
  const float scale = 1.0f / std::sqrt(static_cast<float>(D));
  ops::attention_backward(q4, k4, v4, p.segments, scale, true, att4, lse, datt4, dq4, dk4, dv4, p.attention_bf16);
  ops::rope_backward(dq4, p.positions, c.rope, dq4, &p.rope);
  ops::rope_backward(dk4, p.positions, c.rope, dk4, &p.rope);
  const bool qkv_trainable = L.proj[0].trainable() || L.proj[1].trainable() || L.proj[2].trainable();
  if (!need_dx && !qkv_trainable) return;
  Tensor rstd1 = view(a.rstd1, {N});
  ops::rmsnorm_forward(x, L.ln1, c.rms_norm_eps, hn, rstd1);
  Tensor dq = view(ws.dq, {N, Hq * D}), dk = view(ws.dk, {N, Hkv * D}), dv = view(ws.dv, {N, Hkv * D});
  lin(Proj::Q, dq, hn, need_dx ? &dh : nullptr, false);
  lin(Proj::K, dk, hn, need_dx ? &dh : nullptr, true);
  lin(Proj::V, dv, hn, need_dx ? &dh : nullptr, true);
  if (!need_dx) return;
  ops::rmsnorm_backward(dh, x, L.ln1, rstd1, dtmp, L.dln1.storage ? &L.dln1 : nullptr);
  ops::accumulate(dtmp, 1.0f, dres);
}

// ---------------------------------------------------------------------------------------------------
// the vocabulary projection and the loss, a chunk of counted tokens at a time: [chunk, V] logits at
// most, never [B·T, V]. With grad, writes dL/d(final norm output) into ws.dh (0 on ignored rows).

double Llama::head_loss(const Pass& p, Workspace& ws, const Tensor& targets, bool grad, float grad_scale) {
  const int64_t N = p.N, C = cfg_.hidden_size, V = cfg_.vocab_size, CH = ws.chunk;
  const int32_t* tg = targets.data<int32_t>();
  std::vector<int64_t> rows;
  rows.reserve(N);
  for (int64_t i = 0; i < N; ++i)
    if (tg[i] != kIgnoreIndex) rows.push_back(i);
  Tensor dxf = grad ? view(ws.dh, {N, C}) : Tensor();
  if (grad) std::memset(dxf.raw(), 0, dxf.nbytes());
  double sum = 0;
  for (size_t c0 = 0; c0 < rows.size(); c0 += CH) {
    const int64_t n = std::min<int64_t>(CH, static_cast<int64_t>(rows.size() - c0));
    const bool contiguous = rows[c0 + n - 1] - rows[c0] == n - 1;
    Tensor cx = contiguous ? view(ws.xf, {n, C}, rows[c0] * C) : view(ws.cx, {n, C});
    if (!contiguous)
      for (int64_t i = 0; i < n; ++i)
        std::memcpy(cx.data<float>() + i * C, ws.xf.data<float>() + rows[c0 + i] * C, C * sizeof(float));
    Tensor ct = view(ws.ctargets, {n});
    for (int64_t i = 0; i < n; ++i) ct.data<int32_t>()[i] = tg[rows[c0 + i]];
    Tensor logits = view(ws.clogits, {n, V}), losses = view(ws.closs, {n}), lse = view(ws.clse, {n});
    ops::matmul(cx, lm_head_, logits, false, true, 1.0f, 0.0f);
    ops::cross_entropy_forward(logits, ct, kIgnoreIndex, losses, lse);
    for (int64_t i = 0; i < n; ++i) sum += losses.data<float>()[i];
    if (!grad) continue;
    ops::cross_entropy_backward(logits, ct, lse, kIgnoreIndex, grad_scale, logits);
    Tensor cdx = contiguous ? view(ws.dh, {n, C}, rows[c0] * C) : view(ws.cdx, {n, C});
    ops::matmul(logits, lm_head_, cdx, false, false, 1.0f, 0.0f);
    if (!contiguous)
      for (int64_t i = 0; i < n; ++i)
        std::memcpy(dxf.data<float>() + rows[c0 + i] * C, cdx.data<float>() + i * C, C * sizeof(float));
  }
  return sum;
}

// ---------------------------------------------------------------------------------------------------
// steps

void Llama::validate_tokens(const char* op, const Tensor& ids, const Tensor* targets, const StepOptions& o, int64_t& B,
                            int64_t& T) {
  check_tokens(op, "ids", ids, nullptr);
  if (ids.ndim() != 2 || ids.dim(0) < 1 || ids.dim(1) < 1)
    throw op_error(op, "argument 'ids' must have shape [B, T] with B, T >= 1, got " + ids.describe());
  B = ids.dim(0);
  T = ids.dim(1);
  if (targets) check_tokens(op, "targets", *targets, &ids.shape);
  if (o.positions) {
    check_tokens(op, "positions", *o.positions, &ids.shape);
    const int32_t* pp = o.positions->data<int32_t>();
    for (int64_t i = 0; i < B * T; ++i)
      if (pp[i] < 0) throw op_error(op, "positions[" + std::to_string(i) + "] = " + std::to_string(pp[i]) + " is negative");
  }
  if (o.segments) check_tokens(op, "segments", *o.segments, &ids.shape);
  if (o.chunk_tokens < 0) throw op_error(op, "option 'chunkTokens' must be >= 1, got " + std::to_string(o.chunk_tokens));
}

// Positions 0..T-1 per row, restarting where the segment id changes (packed sequences).
static void default_positions(const Tensor* segments, int64_t B, int64_t T, int32_t* out) {
  const int32_t* s = segments ? segments->data<int32_t>() : nullptr;
  for (int64_t b = 0; b < B; ++b) {
    int32_t pos = 0;
    for (int64_t t = 0; t < T; ++t) {
      const int64_t i = b * T + t;
      if (s && t > 0 && s[i] != s[i - 1]) pos = 0;
      out[i] = pos++;
    }
  }
}

LossResult Llama::run_loss(const char* op, const Tensor& ids, const Tensor& targets, const StepOptions& o, bool train) {
  int64_t B, T;
  validate_tokens(op, ids, &targets, o, B, T);
  if (train && trainables_.empty())
    throw model_error(std::string(op) + ": the model has no trainable parameters (add_lora or enable_full_finetune first)");
  if (train && merged_) throw model_error(std::string(op) + ": the adapter is merged; unmerge before training");
  const int64_t N = B * T, C = cfg_.hidden_size, L = cfg_.num_layers;
  Workspace& ws = workspace(train, N, o.checkpointing);
  ensure_head(ws, o.chunk_tokens > 0 ? o.chunk_tokens : default_chunk_tokens(cfg_.vocab_size), C, cfg_.vocab_size);

  Pass p;
  p.mode = train ? Mode::Train : Mode::Infer;
  p.B = B, p.T = T, p.N = N;
  p.segments = o.segments;
  if (o.positions) {
    p.positions = *o.positions;
  } else {
    p.positions = view(ws.positions, {B, T});
    default_positions(o.segments, B, T, p.positions.data<int32_t>());
  }
  p.rope = view(ws.rope, {N, cfg_.head_dim});
  ops::rope_table(p.positions, cfg_.rope, p.rope);
  p.train = train;
  p.attention_bf16 = o.attention_bf16;
  if (train) p.seed = o.has_seed ? o.seed : mix64(step_counter_++);

  int64_t count = 0;
  for (int64_t i = 0; i < N; ++i) {
    const int32_t t = targets.data<int32_t>()[i];
    if (t == kIgnoreIndex) continue;
    if (t < 0 || t >= cfg_.vocab_size)
      throw op_error(op, "targets[" + std::to_string(i / T) + ", " + std::to_string(i % T) + "] = " + std::to_string(t) +
                             " is outside the vocabulary [0, " + std::to_string(cfg_.vocab_size) +
                             ") and is not the ignore index -100");
    ++count;
  }

  Tensor x0 = view(ws.res[0], {B, T, C});
  ops::embedding_forward(ids, embed_, x0);
  const bool per_layer = train && !o.checkpointing;
  auto res = [&](int64_t i) { return view(ws.res[train ? i : i % 2], {N, C}); };
  for (int64_t l = 0; l < L; ++l) {
    Tensor x_next = res(l + 1);
    layer_forward(l, p, ws, per_layer ? l : 0, res(l), &x_next);
  }
  Tensor xL = view(ws.res[train ? L : L % 2], {N, C}), xf = view(ws.xf, {N, C}), rstdf = view(ws.rstdf, {N});
  ops::rmsnorm_forward(xL, norm_, cfg_.rms_norm_eps, xf, rstdf);

  LossResult r;
  r.tokens = count;
  if (count == 0) return r;  // nothing counts: loss 0, gradients untouched
  const double denom = o.loss_denominator > 0 ? o.loss_denominator : static_cast<double>(count);
  r.loss_sum = head_loss(p, ws, targets, train, static_cast<float>(1.0 / denom));
  r.loss = r.loss_sum / static_cast<double>(count);
  if (!train) return r;

  Tensor dxf = view(ws.dh, {N, C}), dres = view(ws.dres, {N, C});
  ops::rmsnorm_backward(dxf, xL, norm_, rstdf, dres, dnorm_.storage ? &dnorm_ : nullptr);
  for (int64_t l = L - 1; l >= 0; --l) {
    if (!per_layer) layer_forward(l, p, ws, 0, res(l), nullptr);  // recompute the layer from its input
    layer_backward(l, p, ws, per_layer ? l : 0, l > 0 || layers_[0].dln1.storage, !per_layer);
  }
  return r;
}

LossResult Llama::train_step(const Tensor& ids, const Tensor& targets, const StepOptions& o) {
  std::lock_guard<std::mutex> lock(mu_);
  return run_loss("train_step", ids, targets, o, true);
}

LossResult Llama::eval_loss(const Tensor& ids, const Tensor& targets, const StepOptions& o) {
  std::lock_guard<std::mutex> lock(mu_);
  return run_loss("eval_loss", ids, targets, o, false);
}

Tensor Llama::logits(const Tensor& ids, const StepOptions& o) {
  std::lock_guard<std::mutex> lock(mu_);
  int64_t B, T;
  validate_tokens("logits", ids, nullptr, o, B, T);
  const int64_t N = B * T, C = cfg_.hidden_size, L = cfg_.num_layers;
  Workspace& ws = workspace(false, N, false);
  Pass p;
  p.B = B, p.T = T, p.N = N;
  p.segments = o.segments;
  p.attention_bf16 = o.attention_bf16;
  if (o.positions) {
    p.positions = *o.positions;
  } else {
    p.positions = view(ws.positions, {B, T});
    default_positions(o.segments, B, T, p.positions.data<int32_t>());
  }
  p.rope = view(ws.rope, {N, cfg_.head_dim});
  ops::rope_table(p.positions, cfg_.rope, p.rope);
  Tensor x0 = view(ws.res[0], {B, T, C});
  ops::embedding_forward(ids, embed_, x0);
  for (int64_t l = 0; l < L; ++l) {
    Tensor x = view(ws.res[l % 2], {N, C}), x_next = view(ws.res[(l + 1) % 2], {N, C});
    layer_forward(l, p, ws, 0, x, &x_next);
  }
  Tensor xL = view(ws.res[L % 2], {N, C}), xf = view(ws.xf, {N, C}), rstdf = view(ws.rstdf, {N});
  ops::rmsnorm_forward(xL, norm_, cfg_.rms_norm_eps, xf, rstdf);
  Tensor out = empty(DType::F32, {B, T, cfg_.vocab_size});
  Tensor out2 = view(out, {N, cfg_.vocab_size});
  ops::matmul(xf, lm_head_, out2, false, true, 1.0f, 0.0f);
  return out;
}

// ---------------------------------------------------------------------------------------------------
// optimizer side

static std::vector<Tensor> grads_of(std::vector<Trainable>& ts) {
  std::vector<Tensor> g;
  g.reserve(ts.size());
  for (Trainable& t : ts) g.push_back(t.grad);
  return g;
}

void Llama::zero_grad() {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<Tensor> g = grads_of(trainables_);
  ops::zero(g);
}

double Llama::grad_norm() {
  std::lock_guard<std::mutex> lock(mu_);
  return ops::global_grad_norm(grads_of(trainables_));
}

double Llama::clip_grad_norm(double max_norm) {
  std::lock_guard<std::mutex> lock(mu_);
  if (!(max_norm > 0) || !std::isfinite(max_norm))
    throw model_error("clip_grad_norm: max_norm must be a finite number > 0, got " + std::to_string(max_norm));
  std::vector<Tensor> g = grads_of(trainables_);
  return ops::clip_grad_norm(g, max_norm);
}

void Llama::optimizer_step(const AdamWHyper& h) {
  std::lock_guard<std::mutex> lock(mu_);
  if (merged_) throw model_error("optimizer_step: the adapter is merged; unmerge before training");
  if (h.step < 1) throw model_error("optimizer_step: step must be >= 1 (the step number after increment), got " + std::to_string(h.step));
  if (trainables_.empty()) throw model_error("optimizer_step: the model has no trainable parameters");
  // Weight decay on weights only, not on biases and norm weights (transformers' Trainer groups).
  for (int decay = 0; decay < 2; ++decay) {
    std::vector<Tensor> p, g, m, v;
    for (Trainable& t : trainables_) {
      if (t.decay != (decay == 1)) continue;
      p.push_back(t.param);
      g.push_back(t.grad);
      m.push_back(t.exp_avg);
      v.push_back(t.exp_avg_sq);
    }
    if (p.empty()) continue;
    ops::AdamWParams hp{h.lr, h.beta1, h.beta2, h.eps, decay ? h.weight_decay : 0.0f, h.step};
    ops::adamw_step(p, g, m, v, hp);
  }
}

}  // namespace sw::model
