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
};

void attention_forward(const AttentionShape& s, const float* q, const float* k, const float* v,
                       const int32_t* segment, float* out, float* lse);

// Writes (overwrites) dq, dk, dv.
void attention_backward(const AttentionShape& s, const float* q, const float* k, const float* v,
                        const int32_t* segment, const float* out, const float* lse, const float* dout,
                        float* dq, float* dk, float* dv);

}  // namespace sw::cpu
