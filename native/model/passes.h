// What one forward pass works on (internal to native/model): the token shape, positions, segments,
// whether dropout is on and with which seed, and for generation where the KV cache is written.
#pragma once
#include <cstdint>

#include "core/tensor.h"
#include "model/llama.h"

namespace sw::model {

struct Llama::Pass {
  Mode mode = Mode::Infer;
  int64_t B = 0, T = 0, N = 0;       // N = B·T rows
  Tensor positions;                  // i32 [B, T]
  const Tensor* segments = nullptr;  // i32 [B, T] or null
  bool train = false;                // dropout applies
  uint64_t seed = 0;                 // the step's dropout seed
  bool attention_bf16 = false;       // StepOptions::attention_bf16
  Tensor rope;                       // [N, head_dim]: rope_table of positions (set by Llama::rope_table)
  // decode: row r writes and reads cache slot slot(r) at position start[r]
  const Tensor* slots = nullptr;     // i32 [B] or null (row r uses slot r)
  Tensor start;                      // i32 [B]
  int64_t slot(int64_t r) const { return slots ? slots->data<int32_t>()[r] : r; }
};

}  // namespace sw::model
