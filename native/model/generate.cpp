// Generation on the native core: a KV cache of sequence slots ([layers][slots][capacity][Hkv][D], keys
// after RoPE), prefill (a batch of right-padded prompts, logits at each prompt's last token) and
// decode_step (one token for each of a set of slots). Sampling is TypeScript's (src/model/generate.ts).
// LoRA adapters apply unmerged here exactly as in training (without dropout), or merged.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/error.h"
#include "model/llama.h"
#include "model/passes.h"
#include "model/workspace.h"
#include "ops/layers.h"
#include "ops/linear.h"

namespace sw::model {

namespace {

std::unique_ptr<KvCache> make_cache(const LlamaConfig& c, int64_t slots, int64_t capacity) {
  auto kv = std::make_unique<KvCache>();
  kv->slots = slots;
  kv->capacity = capacity;
  for (int64_t l = 0; l < c.num_layers; ++l) {
    kv->k.push_back(empty(DType::F32, {slots, capacity, c.num_kv_heads, c.head_dim}));
    kv->v.push_back(empty(DType::F32, {slots, capacity, c.num_kv_heads, c.head_dim}));
  }
  kv->len.assign(slots, 0);
  return kv;
}

}  // namespace

// The final norm and the vocabulary projection of chosen rows of the last residual buffer.
static Tensor rows_logits(const Tensor& x_last, const std::vector<int64_t>& rows, const Tensor& norm, float eps,
                          const Tensor& lm_head, int64_t C, int64_t V) {
  const int64_t n = static_cast<int64_t>(rows.size());
  Tensor xr = empty(DType::F32, {n, C}), xn = empty(DType::F32, {n, C}), rstd = empty(DType::F32, {n});
  for (int64_t i = 0; i < n; ++i)
    std::memcpy(xr.data<float>() + i * C, x_last.data<float>() + rows[i] * C, C * sizeof(float));
  ops::rmsnorm_forward(xr, norm, eps, xn, rstd);
  Tensor out = empty(DType::F32, {n, V});
  ops::matmul(xn, lm_head, out, false, true, 1.0f, 0.0f);
  return out;
}

Tensor Llama::prefill(const Tensor& ids, const Tensor* lengths, int64_t capacity) {
  std::lock_guard<std::mutex> lock(mu_);
  const char* op = "prefill";
  int64_t B, T;
  StepOptions none;
  validate_tokens(op, ids, nullptr, none, B, T);
  std::vector<int32_t> lens(B, static_cast<int32_t>(T));
  if (lengths) {
    if (lengths->dtype != DType::I32 || lengths->shape != std::vector<int64_t>{B})
      throw op_error(op, "argument 'lengths' must be i32 [" + std::to_string(B) + "], got " + lengths->describe());
    for (int64_t b = 0; b < B; ++b) {
      lens[b] = lengths->data<int32_t>()[b];
      if (lens[b] < 1 || lens[b] > T)
        throw op_error(op, "lengths[" + std::to_string(b) + "] = " + std::to_string(lens[b]) + " must be in [1, " +
                               std::to_string(T) + "] (ids " + ids.describe() + ")");
    }
  }
  const int64_t need = std::max(capacity, T);
  if (!cache_ || cache_->slots < B || cache_->capacity < need) {
    cache_.reset();
    cache_ = make_cache(cfg_, B, need);
  }
  std::fill(cache_->len.begin(), cache_->len.end(), 0);

  const int64_t N = B * T, C = cfg_.hidden_size, L = cfg_.num_layers;
  Workspace& ws = workspace(false, N, false);
  Pass p;
  p.mode = Mode::Prefill;
  p.B = B, p.T = T, p.N = N;
  p.positions = view(ws.positions, {B, T});
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = 0; t < T; ++t) p.positions.data<int32_t>()[b * T + t] = static_cast<int32_t>(t);
  p.rope = view(ws.rope, {N, cfg_.head_dim});
  ops::rope_table(p.positions, cfg_.rope, p.rope);
  Tensor x0 = view(ws.res[0], {B, T, C});
  ops::embedding_forward(ids, embed_, x0);
  for (int64_t l = 0; l < L; ++l) {
    Tensor x = view(ws.res[l % 2], {N, C}), x_next = view(ws.res[(l + 1) % 2], {N, C});
    layer_forward(l, p, ws, 0, x, &x_next);
  }
  std::vector<int64_t> rows(B);
  for (int64_t b = 0; b < B; ++b) rows[b] = b * T + lens[b] - 1;
  Tensor out = rows_logits(ws.res[L % 2], rows, norm_, cfg_.rms_norm_eps, lm_head_, C, cfg_.vocab_size);
  for (int64_t b = 0; b < B; ++b) cache_->len[b] = lens[b];
  return out;
}

Tensor Llama::decode_step(const Tensor& ids, const Tensor* slots) {
  std::lock_guard<std::mutex> lock(mu_);
  const char* op = "decode_step";
  if (!cache_) throw op_error(op, "the KV cache is empty: call prefill first");
  if (ids.dtype != DType::I32 || ids.ndim() != 1 || ids.device() != Device::CPU || ids.dim(0) < 1)
    throw op_error(op, "argument 'ids' must be a CPU i32 tensor [n] with n >= 1, got " + ids.describe());
  const int64_t n = ids.dim(0);
  if (slots && (slots->dtype != DType::I32 || slots->shape != ids.shape || slots->device() != Device::CPU))
    throw op_error(op, "argument 'slots' must be i32 " + shape_str(ids.shape) + " like ids, got " + slots->describe());
  if (!slots && n > cache_->slots)
    throw op_error(op, std::to_string(n) + " tokens but the cache holds " + std::to_string(cache_->slots) + " sequences");
  std::vector<bool> used(cache_->slots, false);
  int64_t need = 0;
  for (int64_t r = 0; r < n; ++r) {
    const int64_t s = slots ? slots->data<int32_t>()[r] : r;
    if (s < 0 || s >= cache_->slots)
      throw op_error(op, "slots[" + std::to_string(r) + "] = " + std::to_string(s) + " is outside the cache's " +
                             std::to_string(cache_->slots) + " sequences");
    if (used[s]) throw op_error(op, "slot " + std::to_string(s) + " appears twice in 'slots'");
    used[s] = true;
    need = std::max<int64_t>(need, cache_->len[s] + 1);
  }
  if (need > cache_->capacity) {  // grow: copy every slot's positions into a larger cache
    auto bigger = make_cache(cfg_, cache_->slots, std::max(need, cache_->capacity * 2));
    const int64_t row = cfg_.num_kv_heads * cfg_.head_dim;
    for (int64_t l = 0; l < cfg_.num_layers; ++l)
      for (int64_t s = 0; s < cache_->slots; ++s) {
        const size_t bytes = static_cast<size_t>(cache_->len[s] * row) * sizeof(float);
        std::memcpy(bigger->k[l].data<float>() + s * bigger->capacity * row,
                    cache_->k[l].data<float>() + s * cache_->capacity * row, bytes);
        std::memcpy(bigger->v[l].data<float>() + s * bigger->capacity * row,
                    cache_->v[l].data<float>() + s * cache_->capacity * row, bytes);
      }
    bigger->len = cache_->len;
    cache_ = std::move(bigger);
  }

  const int64_t C = cfg_.hidden_size, L = cfg_.num_layers;
  Workspace& ws = workspace(false, n, false);
  Pass p;
  p.mode = Mode::Decode;
  p.B = n, p.T = 1, p.N = n;
  p.slots = slots;
  p.positions = view(ws.positions, {n, 1});
  p.start = view(ws.start, {n});
  for (int64_t r = 0; r < n; ++r) {
    const int32_t pos = cache_->len[p.slot(r)];
    p.positions.data<int32_t>()[r] = pos;
    p.start.data<int32_t>()[r] = pos;
  }
  p.rope = view(ws.rope, {n, cfg_.head_dim});
  ops::rope_table(p.positions, cfg_.rope, p.rope);
  Tensor x0 = view(ws.res[0], {n, C});
  ops::embedding_forward(ids, embed_, x0);
  for (int64_t l = 0; l < L; ++l) {
    Tensor x = view(ws.res[l % 2], {n, C}), x_next = view(ws.res[(l + 1) % 2], {n, C});
    layer_forward(l, p, ws, 0, x, &x_next);
  }
  std::vector<int64_t> rows(n);
  for (int64_t r = 0; r < n; ++r) rows[r] = r;
  Tensor out = rows_logits(ws.res[L % 2], rows, norm_, cfg_.rms_norm_eps, lm_head_, C, cfg_.vocab_size);
  for (int64_t r = 0; r < n; ++r) cache_->len[p.slot(r)] += 1;
  return out;
}

void Llama::reset_cache() {
  std::lock_guard<std::mutex> lock(mu_);
  cache_.reset();
}

std::vector<int32_t> Llama::cache_lengths() {
  std::lock_guard<std::mutex> lock(mu_);
  return cache_ ? cache_->len : std::vector<int32_t>{};
}

}  // namespace sw::model
