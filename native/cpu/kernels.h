// CPU kernels of the element-wise, normalization, embedding, loss and optimizer ops (raw pointers,
// contiguous row-major). The ops layer (native/ops) checks arguments and calls these; each call picks
// the ISA variant (scalar / avx2 / avx512 builds of kernels_impl.inc) at run time.
#pragma once
#include <cstdint>

namespace sw::cpu {

struct AdamWParams {
  float lr, beta1, beta2, eps, weight_decay;
  int64_t step;  // 1-based step after increment (bias correction uses beta^step)
};

struct RopeParams {
  int64_t head_dim;
  double theta;
  // llama3 scaling (rope_type "llama3"); factor == 0 means none. "linear" scaling divides positions.
  double llama3_factor = 0, low_freq_factor = 1, high_freq_factor = 4, original_max_positions = 8192;
  double linear_factor = 1;
};

// inv_freq[j] for j in [0, head_dim/2), the Hugging Face convention (with llama3 / linear scaling).
void rope_inv_freq(const RopeParams& p, float* inv_freq);

struct Kernels {
  // x, y: [N, C]; w: [C]; rstd: [N]. y = w * x * rstd, rstd = 1/sqrt(mean(x^2) + eps)
  void (*rmsnorm_forward)(const float* x, const float* w, float* y, float* rstd, int64_t N, int64_t C, float eps);
  // dx: [N, C] (overwritten); dw: [C] (accumulated, may be null)
  void (*rmsnorm_backward)(const float* dy, const float* x, const float* w, const float* rstd, float* dx, float* dw,
                           int64_t N, int64_t C);
  // x, y: [BT, H, D] with positions [BT]; rotate_half convention; inverse = the transpose (backward).
  // cs: the rotation table [BT, D] of rope_table (cos | sin per row) or null (computed here).
  void (*rope)(const float* x, float* y, const int32_t* pos, const float* inv_freq, const float* cs, int64_t BT,
               int64_t H, int64_t D, bool inverse);
  // cs [BT, D]: row t = cos(pos[t]·inv_freq) | sin(pos[t]·inv_freq) (D/2 each): what rope needs per row,
  // computed once for the layers of a pass that share the positions.
  void (*rope_table)(const int32_t* pos, const float* inv_freq, float* cs, int64_t BT, int64_t D);
  // h = silu(g) * u over n elements; backward overwrites dg, du.
  void (*swiglu_forward)(const float* g, const float* u, float* h, int64_t n);
  void (*swiglu_backward)(const float* dh, const float* g, const float* u, float* dg, float* du, int64_t n);
  // out[i, :] = table[ids[i], :]; table f32 or bf16 (table_bf16 != null selects bf16)
  void (*embedding_forward)(const int32_t* ids, const float* table_f32, const uint16_t* table_bf16, float* out,
                            int64_t N, int64_t C);
  // dtable[ids[i], :] += dout[i, :]
  void (*embedding_backward)(const int32_t* ids, const float* dout, float* dtable, int64_t N, int64_t C);
  // logits: [N, V]; losses, lse: [N]; rows with target == ignore_index get loss 0. Returns the valid count.
  int64_t (*cross_entropy_forward)(const float* logits, const int32_t* targets, float* losses, float* lse, int64_t N,
                                   int64_t V, int32_t ignore_index);
  // dlogits = grad_scale * (softmax(logits) - onehot(target)); 0 on ignored rows. dlogits may alias logits.
  void (*cross_entropy_backward)(const float* logits, const int32_t* targets, const float* lse, float* dlogits,
                                 int64_t N, int64_t V, int32_t ignore_index, float grad_scale);
  void (*add)(const float* a, const float* b, float* out, int64_t n);
  void (*axpy)(float alpha, const float* x, float* y, int64_t n);  // y += alpha * x
  void (*scale)(float* x, float s, int64_t n);
  double (*sumsq)(const float* x, int64_t n);
  void (*adamw)(float* p, const float* g, float* m, float* v, int64_t n, const AdamWParams& hp);
  // out = x * keep / (1 - p), keep drawn from dropout_keep(seed, index)
  void (*dropout)(const float* x, float* out, int64_t n, float p, uint64_t seed);
  // out[i] += x[i] * keep_i / (1 - p)
  void (*dropout_accumulate)(const float* x, float* out, int64_t n, float p, uint64_t seed);
  // y[i, :] += b for each of the N rows of y [N, C] (a linear layer's bias)
  void (*bias_add)(const float* b, float* y, int64_t N, int64_t C);
  // db[:] += sum over the N rows of dy [N, C]
  void (*bias_grad)(const float* dy, float* db, int64_t N, int64_t C);
  // Attention of new queries against a KV cache (inference). q, out: [B, Tq, Hq, D]; k_cache, v_cache:
  // [S, L, Hkv, D] (S slots of L positions). Row b reads slot slots[b] (b when slots is null); its query i
  // sits at position start[b] + i and sees the cached positions [0, start[b] + i].
  void (*attention_cached)(const float* q, const float* k_cache, const float* v_cache, const int32_t* slots,
                           const int32_t* start, float* out, int64_t B, int64_t Tq, int64_t Hq, int64_t Hkv,
                           int64_t D, int64_t L, float scale);
};

const Kernels& kernels();  // the active ISA's table

// Counter-based dropout: element i of a tensor is kept iff dropout_uniform(seed, i) >= p. Stateless, so
// the backward regenerates the mask instead of storing it.
inline float dropout_uniform(uint64_t seed, uint64_t i) {
  uint64_t z = seed + (i + 1) * 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  z ^= z >> 31;
  return static_cast<float>(z >> 40) * (1.0f / 16777216.0f);
}

}  // namespace sw::cpu
