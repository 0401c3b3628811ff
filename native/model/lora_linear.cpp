#include "model/lora_linear.h"

#include "core/error.h"
#include "ops/layers.h"
#include "ops/linear.h"

namespace sw::model {

namespace {
constexpr const char* kNames[kProjCount] = {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"};
}

const char* proj_name(Proj p) { return kNames[static_cast<int>(p)]; }

const char* proj_parent(Proj p) { return static_cast<int>(p) <= static_cast<int>(Proj::O) ? "self_attn" : "mlp"; }

Proj parse_proj(const std::string& s) {
  for (int i = 0; i < kProjCount; ++i)
    if (s == kNames[i]) return static_cast<Proj>(i);
  std::string all;
  for (int i = 0; i < kProjCount; ++i) all += (i ? ", " : "") + std::string(kNames[i]);
  throw Error("EARG", "unknown module '" + s + "' (the projections are " + all + ")");
}

void LoraLinear::forward(const Tensor& x, Tensor& y, bool accumulate, Tensor* u, const LinearScratch& s, bool train,
                         uint64_t seed) const {
  if (!lora_active()) {
    ops::matmul(x, weight(), y, false, true, 1.0f, accumulate ? 1.0f : 0.0f);
  } else {
    forward_u(x, u, s, train, seed);  // u = dropout(x)·Aᵀ
    const ops::SecondTerm lora{*u, lora_b, true, scale};
    ops::matmul(x, weight(), y, false, true, 1.0f, accumulate ? 1.0f : 0.0f, &lora);  // y (+)= x·Wᵀ + s·u·Bᵀ
  }
  if (bias.storage) ops::bias_forward(bias, y);
}

void LoraLinear::forward_u(const Tensor& x, Tensor* u, const LinearScratch& s, bool train, uint64_t seed) const {
  if (!lora_active()) return;
  const Tensor* xd = &x;
  if (train && dropout > 0) {
    ops::dropout_forward(x, dropout, seed, *s.dropped);
    xd = s.dropped;
  }
  ops::matmul(*xd, lora_a, *u, false, true, 1.0f, 0.0f);
}

void LoraLinear::backward(const Tensor& dy, const Tensor& x, const Tensor* u, Tensor* dx, bool accumulate_dx,
                          const LinearScratch& s, bool train, uint64_t seed) {
  const bool drop = train && dropout > 0;
  if (lora_active()) {
    ops::matmul(dy, *u, grad_b, true, false, scale, 1.0f);     // dB += s·dyᵀ·u
    ops::matmul(dy, lora_b, *s.du, false, false, scale, 0.0f);  // du = s·dy·B
    const Tensor* xd = &x;
    if (drop) {
      ops::dropout_forward(x, dropout, seed, *s.dropped);
      xd = s.dropped;
    }
    ops::matmul(*s.du, *xd, grad_a, true, false, 1.0f, 1.0f);  // dA += duᵀ·dropout(x)
  }
  if (full()) {
    ops::matmul(dy, x, grad_master, true, false, 1.0f, 1.0f);  // dW += dyᵀ·x
    if (grad_bias.storage) ops::bias_backward(dy, grad_bias);
  }
  if (!dx) return;
  const float beta = accumulate_dx ? 1.0f : 0.0f;
  if (!lora_active()) {
    ops::matmul(dy, weight(), *dx, false, false, 1.0f, beta);  // dx (+)= dy·W
  } else if (drop) {  // dx (+)= dy·W + dropout_backward(du·A), the same mask
    ops::matmul(dy, weight(), *dx, false, false, 1.0f, beta);
    ops::matmul(*s.du, lora_a, *s.dropped, false, false, 1.0f, 0.0f);
    ops::dropout_backward(*s.dropped, dropout, seed, *s.dropped);
    ops::accumulate(*s.dropped, 1.0f, *dx);
  } else {
    const ops::SecondTerm lora{*s.du, lora_a, false, 1.0f};
    ops::matmul(dy, weight(), *dx, false, false, 1.0f, beta, &lora);  // dx (+)= dy·W + du·A
  }
}

void LoraLinear::merge() {
  if (!has_lora() || merged.storage) return;
  Tensor w = convert(base, DType::F32);
  ops::matmul(lora_b, lora_a, w, false, false, scale, 1.0f);  // W += s·B·A
  merged = base.dtype == DType::F32 ? w : convert(w, base.dtype);
}

void LoraLinear::unmerge() { merged = Tensor(); }

}  // namespace sw::model
