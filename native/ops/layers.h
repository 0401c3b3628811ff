// Transformer layer ops other than the linear layers: RMSNorm, rotary embedding, attention, the
// SiLU-gated MLP activation, embedding lookup, cross-entropy, residual add, dropout.
// Each forward is paired with its backward; shapes are stated over each declaration.
// Parameter gradients accumulate (+=); activation gradients are written.
#pragma once
#include <cstdint>

#include "core/tensor.h"
#include "cpu/kernels.h"

namespace sw::ops {

// x, y [..., C], w [C] f32, rstd [rows] f32 (saved for the backward)
void rmsnorm_forward(const Tensor& x, const Tensor& w, float eps, Tensor& y, Tensor& rstd);
// dx [..., C] written, dw [C] accumulated (may be null when the norm weight is frozen)
void rmsnorm_backward(const Tensor& dy, const Tensor& x, const Tensor& w, const Tensor& rstd, Tensor& dx, Tensor* dw);

// x, y [B, T, H, D] (y may be x: in place), positions i32 [B, T]; Hugging Face rotate_half convention
using RopeParams = cpu::RopeParams;
// table: rope_table of the same positions and params (optional; saves the sines and cosines per call)
void rope_forward(const Tensor& x, const Tensor& positions, const RopeParams& p, Tensor& y, const Tensor* table = nullptr);
// dx = Rᵀ dy (the rotation's transpose); dx may be dy (in place)
void rope_backward(const Tensor& dy, const Tensor& positions, const RopeParams& p, Tensor& dx,
                   const Tensor* table = nullptr);
// table [numel(positions), head_dim]: cos | sin of each position's angles, for the rope calls of a pass
void rope_table(const Tensor& positions, const RopeParams& p, Tensor& table);

// q [B, T, Hq, D], k/v [B, T, Hkv, D], segment i32 [B, T] or null; out [B, T, Hq, D], lse [B, Hq, T]
// bf16: the tile products on bf16-rounded operands, f32 accumulation (cpu/attention.h)
void attention_forward(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor* segment, float scale,
                       bool causal, Tensor& out, Tensor& lse, bool bf16 = false);
void attention_backward(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor* segment, float scale,
                        bool causal, const Tensor& out, const Tensor& lse, const Tensor& dout, Tensor& dq, Tensor& dk,
                        Tensor& dv, bool bf16 = false);

// h = silu(gate) * up, all [..., I]
void swiglu_forward(const Tensor& gate, const Tensor& up, Tensor& h);
void swiglu_backward(const Tensor& dh, const Tensor& gate, const Tensor& up, Tensor& dgate, Tensor& dup);

// ids i32 [...], table [V, C] f32 or bf16, out f32 [..., C]; an id outside [0, V) is an error naming it
void embedding_forward(const Tensor& ids, const Tensor& table, Tensor& out);
void embedding_backward(const Tensor& ids, const Tensor& dout, Tensor& dtable);

// logits f32 [N, V], targets i32 [N] (ignore_index masks a token out), losses f32 [N], lse f32 [N].
// Returns the number of tokens that count (targets != ignore_index).
int64_t cross_entropy_forward(const Tensor& logits, const Tensor& targets, int32_t ignore_index, Tensor& losses,
                              Tensor& lse);
// dlogits = grad_scale * (softmax - onehot) on counted rows, 0 elsewhere; dlogits may be logits (in place)
void cross_entropy_backward(const Tensor& logits, const Tensor& targets, const Tensor& lse, int32_t ignore_index,
                            float grad_scale, Tensor& dlogits);

// out = a + b (the residual connection); its backward hands dout to both branches: accumulate().
void add(const Tensor& a, const Tensor& b, Tensor& out);
// y += alpha * x
void accumulate(const Tensor& x, float alpha, Tensor& y);

// out = x * keep / (1 - p) with the counter-based mask of (seed, element index)
void dropout_forward(const Tensor& x, float p, uint64_t seed, Tensor& out);
// dx = dy * keep / (1 - p)  (the same mask)
void dropout_backward(const Tensor& dy, float p, uint64_t seed, Tensor& dx);

// y [..., N] += b [N] over every row (a linear layer's bias, Qwen2's q/k/v_proj); y is updated in place
void bias_forward(const Tensor& b, Tensor& y);
// db [N] += column sums of dy [..., N] (the gradient of a trainable bias)
void bias_backward(const Tensor& dy, Tensor& db);

// Attention of new queries against a KV cache, for generation (no backward).
// q [B, Tq, Hq, D]; k_cache, v_cache [S, L, Hkv, D] (S sequence slots of L positions); slots i32 [B] or
// null (row b uses slot b); start i32 [B]: query i of row b sits at position start[b] + i and sees the
// cached positions [0, start[b] + i] of its slot (the caller has written keys/values up to there).
// out [B, Tq, Hq, D].
void attention_cached_forward(const Tensor& q, const Tensor& k_cache, const Tensor& v_cache, const Tensor* slots,
                              const Tensor& start, float scale, Tensor& out);

}  // namespace sw::ops
