#include "ops/optim.h"

#include <cmath>
#include <cstring>

#include "ops/check.h"

namespace sw::ops {
namespace {

std::string item(const char* list, size_t i) { return std::string(list) + "[" + std::to_string(i) + "]"; }

void f32_list(const char* op, const char* list, const std::vector<Tensor>& ts, bool write) {
  for (size_t i = 0; i < ts.size(); ++i) {
    const std::string name = item(list, i);
    check::dtype(op, name.c_str(), ts[i], {DType::F32});
    check::cpu(op, name.c_str(), ts[i]);
    if (write) check::writable(op, name.c_str(), ts[i]);
  }
}

void same_shapes(const char* op, const char* list, const std::vector<Tensor>& ts, const std::vector<Tensor>& params) {
  if (ts.size() != params.size())
    throw op_error(op, std::string("'") + list + "' has " + std::to_string(ts.size()) + " tensors but 'params' has " +
                           std::to_string(params.size()));
  for (size_t i = 0; i < ts.size(); ++i)
    if (ts[i].shape != params[i].shape)
      throw op_error(op, item(list, i) + " " + ts[i].describe() + " must have the shape of params[" +
                             std::to_string(i) + "] " + params[i].describe());
}

}  // namespace

void adamw_step(std::vector<Tensor>& params, const std::vector<Tensor>& grads, std::vector<Tensor>& m,
                std::vector<Tensor>& v, const AdamWParams& hp) {
  const char* op = "adamw_step";
  f32_list(op, "params", params, true);
  f32_list(op, "grads", grads, false);
  f32_list(op, "m", m, true);
  f32_list(op, "v", v, true);
  same_shapes(op, "grads", grads, params);
  same_shapes(op, "m", m, params);
  same_shapes(op, "v", v, params);
  check::finite(op, "lr", hp.lr);
  check::in_range(op, "beta1", hp.beta1, 0.0, 1.0);
  check::in_range(op, "beta2", hp.beta2, 0.0, 1.0);
  check::positive(op, "eps", hp.eps);
  check::finite(op, "weight_decay", hp.weight_decay);
  if (hp.step < 1) throw op_error(op, "argument 'step' must be >= 1 (the step number after increment), got " +
                                          std::to_string(hp.step));
  for (size_t i = 0; i < params.size(); ++i)
    cpu::kernels().adamw(params[i].data<float>(), grads[i].data<float>(), m[i].data<float>(), v[i].data<float>(),
                         params[i].numel(), hp);
}

double global_grad_norm(const std::vector<Tensor>& grads) {
  f32_list("global_grad_norm", "grads", grads, false);
  double total = 0;
  for (const Tensor& g : grads) total += cpu::kernels().sumsq(g.data<float>(), g.numel());
  return std::sqrt(total);
}

double clip_grad_norm(std::vector<Tensor>& grads, double max_norm) {
  const char* op = "clip_grad_norm";
  check::positive(op, "max_norm", max_norm);
  f32_list(op, "grads", grads, true);
  const double norm = global_grad_norm(grads);
  const double coef = max_norm / (norm + 1e-6);
  if (coef < 1.0)
    for (Tensor& g : grads) cpu::kernels().scale(g.data<float>(), static_cast<float>(coef), g.numel());
  return norm;
}

void zero(std::vector<Tensor>& tensors) {
  f32_list("zero", "tensors", tensors, true);
  for (Tensor& t : tensors) std::memset(t.raw(), 0, t.nbytes());
}

}  // namespace sw::ops
