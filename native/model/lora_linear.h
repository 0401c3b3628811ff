// One projection of the model with what can be attached to it (PEFT's tuners/lora/layer.py, Linear):
// the frozen base weight, an optional bias, an optional LoRA adapter (lora_A, lora_B, scaling, dropout),
// an optional full fine-tuning master copy, and an optional merged copy of base + adapter.
//
// Shapes: x [M, in], y [M, out], base/master/merged [out, in] (PyTorch's nn.Linear.weight), bias [out],
// lora_A [r, in], lora_B [out, r], u [M, r]. Gradients of parameters accumulate; dx is written (or
// accumulated on request, for the projections that share an input).
#pragma once
#include <cstdint>
#include <string>

#include "core/tensor.h"

namespace sw::model {

enum class Proj : int { Q = 0, K, V, O, Gate, Up, Down };
constexpr int kProjCount = 7;

const char* proj_name(Proj p);          // "q_proj", ...
const char* proj_parent(Proj p);        // "self_attn" or "mlp"
Proj parse_proj(const std::string& s);  // throws naming the valid module names

// Scratch the caller owns (preallocated per batch shape): never allocated here.
struct LinearScratch {
  Tensor* dropped = nullptr;  // [M, in]: dropout(x), needed when training with lora_dropout > 0
  Tensor* du = nullptr;       // [M, r]: gradient of u, needed by the backward with LoRA
};

class LoraLinear {
 public:
  std::string path;  // Hugging Face module path, "model.layers.0.self_attn.q_proj"
  int64_t in = 0, out = 0;
  Tensor base;  // frozen weight as loaded (f32 or bf16; possibly a read-only file mapping)
  Tensor bias;  // f32 [out] or empty (frozen unless full fine-tuning)

  // LoRA adapter
  int64_t r = 0;
  float scale = 0, dropout = 0;
  Tensor lora_a, lora_b, grad_a, grad_b;

  // full fine-tuning: an f32 master copy of the weight (and of the bias) with gradients
  Tensor master, grad_master, grad_bias;

  // merged: an owned copy of base + scale·B·A in the base dtype (the adapter is then not applied)
  Tensor merged;

  bool has_lora() const { return r > 0; }
  bool lora_active() const { return r > 0 && !merged.storage; }
  bool full() const { return static_cast<bool>(master.storage); }
  bool trainable() const { return lora_active() || full(); }
  // The weight the forward multiplies by.
  const Tensor& weight() const { return full() ? master : merged.storage ? merged : base; }

  // y = (accumulate ? y : 0) + x·Wᵀ + bias + scale·(dropout(x)·Aᵀ)·Bᵀ; u receives dropout(x)·Aᵀ.
  // Dropout applies when `train` and lora_dropout > 0, with the mask of `seed`.
  void forward(const Tensor& x, Tensor& y, bool accumulate, Tensor* u, const LinearScratch& s, bool train,
               uint64_t seed) const;
  // Only u = dropout(x)·Aᵀ (when the adapter is active): what a checkpointed recompute needs of a
  // projection whose output the backward does not use.
  void forward_u(const Tensor& x, Tensor* u, const LinearScratch& s, bool train, uint64_t seed) const;
  // Accumulates grad_a, grad_b (LoRA), grad_master, grad_bias (full); dx = (accumulate_dx ? dx : 0) +
  // dy·W + dropout_backward(scale·(dy·B)·A). dx may be null. x and u are the forward's.
  void backward(const Tensor& dy, const Tensor& x, const Tensor* u, Tensor* dx, bool accumulate_dx,
                const LinearScratch& s, bool train, uint64_t seed);

  void merge();    // merged = base + scale·B·A (rounded to the base dtype)
  void unmerge();  // drops the merged copy: the base was never touched, so this is exact
};

}  // namespace sw::model
