// Optimizer ops on f32 master parameters: fused AdamW, global-norm clipping, zeroing.
// Lists of tensors are handled in one call (one parallel region per tensor, no per-element JS work).
#pragma once
#include <vector>

#include "core/tensor.h"
#include "cpu/kernels.h"

namespace sw::ops {

using AdamWParams = cpu::AdamWParams;

// For each i: AdamW step on params[i] with grads[i], moments m[i], v[i] (torch.optim.AdamW semantics:
// decoupled weight decay p *= 1 - lr*wd, bias-corrected moments). hp.step is the step number (>= 1).
void adamw_step(std::vector<Tensor>& params, const std::vector<Tensor>& grads, std::vector<Tensor>& m,
                std::vector<Tensor>& v, const AdamWParams& hp);

// sqrt(sum of squares of all grads), accumulated in f64
double global_grad_norm(const std::vector<Tensor>& grads);

// torch.nn.utils.clip_grad_norm_: scale grads by max_norm / (norm + 1e-6) when that is < 1.
// Returns the norm before clipping.
double clip_grad_norm(std::vector<Tensor>& grads, double max_norm);

void zero(std::vector<Tensor>& tensors);

}  // namespace sw::ops
