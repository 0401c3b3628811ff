// Buffers of the model's passes, allocated once per token capacity and reused by every step whose
// batch fits (views of the first B·T rows): no big allocation on the step path. Internal to
// native/model.
#pragma once
#include <array>
#include <cstdint>
#include <vector>

#include "core/tensor.h"
#include "model/lora_linear.h"

namespace sw::model {

// A [rows, ...] view of the first elements of `t` (same storage).
inline Tensor view(const Tensor& t, std::vector<int64_t> shape, int64_t elem_offset = 0) {
  Tensor v = t;
  v.shape = std::move(shape);
  v.offset += static_cast<size_t>(elem_offset) * dtype_size(t.dtype);
  return v;
}

// What one layer's forward keeps for its backward (rows = tokens).
struct Acts {
  Tensor rstd1, q, k, v, att, lse, xm, rstd2, g, up;  // q/k after RoPE
  std::array<Tensor, kProjCount> u;                   // LoRA's dropout(x)·Aᵀ per projection (if adapted)
};

struct Workspace {
  int64_t cap = 0;         // token capacity
  bool train = false;      // has the gradient buffers
  bool checkpointing = false;
  std::vector<Tensor> res;  // residual stream: L + 1 layer inputs (train) or 2 (ping-pong, inference)
  std::vector<Acts> acts;   // one per layer (train) or one (checkpointing: recomputed; inference)
  Tensor hn, hh, dropped;   // recomputed norm output [cap, C], SwiGLU output [cap, I], dropout(x) [cap, max in]
  Tensor xf, rstdf;         // final norm output [cap, C] and its rstd
  Tensor positions, start;  // i32 [cap], i32 [cap]
  Tensor rope;              // [cap, head_dim]: the pass's rotation table (ops::rope_table)
  // gradients (train)
  Tensor dres, dtmp, dh, datt, dq, dk, dv, dg, du, dhh, dU;
  // the chunked vocabulary projection
  int64_t chunk = 0;
  Tensor cx, clogits, cdx, ctargets, closs, clse;
  int64_t bytes = 0;

  Tensor alloc(DType d, std::vector<int64_t> shape) {
    Tensor t = empty(d, shape);
    bytes += static_cast<int64_t>(t.nbytes());
    return t;
  }
};

// Keys and values of the sequences being generated: per layer [slots, capacity, Hkv, D] (after RoPE).
struct KvCache {
  int64_t slots = 0, capacity = 0;
  std::vector<Tensor> k, v;
  std::vector<int32_t> len;  // positions filled per slot
  int64_t bytes() const {
    int64_t b = 0;
    for (const Tensor& t : k) b += static_cast<int64_t>(t.nbytes());
    for (const Tensor& t : v) b += static_cast<int64_t>(t.nbytes());
    return b;
  }
};

}  // namespace sw::model
