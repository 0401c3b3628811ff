// Causal self-attention with grouped-query heads, memory-efficient (flash-attention style tiling:
// no T×T matrix is stored; the forward keeps only the row log-sum-exp for the backward).
//
// Layouts (row-major, contiguous):
//   q, out, dq, dout : [B, T, Hq, D]
//   k, v, dk, dv     : [B, T, Hkv, D]     Hq % Hkv == 0; query head h reads kv head h / (Hq / Hkv)
//   lse              : [B, Hq, T]         log-sum-exp of the scaled scores of each query row
//   segment (opt.)   : [B, T] int32       packed sequences: position i attends to j only when
//                                          segment[i] == segment[j] (and j <= i when causal)
// scale is usually 1/sqrt(D). A query row with no visible key (impossible when causal, since j == i
// is visible) produces out = 0 and lse = -inf.
#pragma once
#include <cstdint>

namespace sw::cpu {

struct AttentionShape {
  int64_t B, T, Hq, Hkv, D;
  float scale;
  bool causal;
  // bf16 products (vdpbf16ps): Q, K, V, dO and the probability / score-gradient tiles rounded to bf16,
  // accumulation, softmax statistics and results in f32 (flash-attention's and PyTorch's bf16
  // precision). Needs an AVX-512 build and a CPU with AVX512-BF16; elsewhere it computes in f32.
  bool bf16 = false;
};

void attention_forward(const AttentionShape& s, const float* q, const float* k, const float* v,
                       const int32_t* segment, float* out, float* lse);

// Writes (overwrites) dq, dk, dv.
void attention_backward(const AttentionShape& s, const float* q, const float* k, const float* v,
                        const int32_t* segment, const float* out, const float* lse, const float* dout,
                        float* dq, float* dk, float* dv);

}  // namespace sw::cpu
