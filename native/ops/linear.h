// Linear layers: matmul with frozen weights and the fused LoRA linear, forward and backward.
//
// Shapes: x [M, K] (any leading dims flattened into M), W [N, K] as PyTorch stores nn.Linear.weight
// (f32 or bf16), A [r, K] (lora_A), B [N, r] (lora_B), y [M, N]. Activations and LoRA params are f32.
// Gradients of parameters (dA, dB, dW) are accumulated (+=); gradients of activations (dx) are written.
#pragma once
#include <cstdint>
#include <optional>

#include "core/tensor.h"

namespace sw::ops {

// A second, low-rank product added in the same pass over C (cpu/gemm.h): alpha · a · op(b), a f32
// [M, K2] (leading dims flattened), b f32 [K2, N] or (trans_b) [N, K2]. LoRA's term y += s·u·Bᵀ or
// dx += du·A folded into the base product, so y / dx are read and written once.
struct SecondTerm {
  const Tensor& a;
  const Tensor& b;
  bool trans_b;
  float alpha;
};

// C = alpha * op(A) · op(B) [+ second] + beta * C. A: f32 [M,K] (or [K,M] with trans_a); B: f32 or bf16
// [K,N] (or [N,K] with trans_b); C: f32 [M,N]. Leading dims of A and C beyond 2 are flattened into M.
void matmul(const Tensor& a, const Tensor& b, Tensor& c, bool trans_a, bool trans_b, float alpha, float beta,
            const SecondTerm* second = nullptr);

// y = x · Wᵀ
void linear_forward(const Tensor& x, const Tensor& w, Tensor& y);
// dx = dy · W (written; skipped when dx is null); dW += dyᵀ · x (when dw is given; W must then be f32)
void linear_backward(const Tensor& dy, const Tensor& x, const Tensor& w, Tensor* dx, Tensor* dw);

struct LoraConfig {
  float scale;         // lora_alpha / r, or lora_alpha / sqrt(r) with rsLoRA (see lora_scaling)
  float dropout;       // lora_dropout probability in [0, 1)
  uint64_t seed;       // dropout mask seed; the same seed in forward and backward regenerates the mask
};

float lora_scaling(double lora_alpha, int64_t r, bool use_rslora);

// y = x·Wᵀ + scale · (dropout(x)·Aᵀ)·Bᵀ.   u [M, r] receives dropout(x)·Aᵀ, kept for the backward.
void lora_linear_forward(const Tensor& x, const Tensor& w, const Tensor& a, const Tensor& b, const LoraConfig& cfg,
                         Tensor& y, Tensor& u);
// dA += scale·(dy·B)ᵀ·dropout(x); dB += scale·dyᵀ·u; dx = dy·W + dropout_backward(scale·(dy·B)·A)
// (dx may be null: the first layer's input needs no gradient); dW += dyᵀ·x when dw is given (full FT).
void lora_linear_backward(const Tensor& dy, const Tensor& x, const Tensor& w, const Tensor& a, const Tensor& b,
                          const Tensor& u, const LoraConfig& cfg, Tensor* dx, Tensor& da, Tensor& db, Tensor* dw);

}  // namespace sw::ops
