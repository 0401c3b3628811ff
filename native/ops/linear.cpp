#include "ops/linear.h"

#include <cmath>

#include "cpu/gemm.h"
#include "cpu/kernels.h"
#include "ops/check.h"

namespace sw::ops {
namespace {

// A 2-D view [rows, cols] of a tensor whose leading dimensions are flattened.
struct Mat {
  int64_t rows, cols;
};

Mat as_matrix(const char* op, const char* arg, const Tensor& t) {
  check::ndim_at_least(op, arg, t, 2);
  return {check::rows(t), check::last_dim(t)};
}

// One entry point for both weight dtypes: C = alpha·op(A)·op(B) + beta·C
void gemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
          const Tensor& b, int64_t ldb, float beta, float* C, int64_t ldc, const cpu::SecondProduct* second = nullptr) {
  if (b.dtype == DType::BF16)
    cpu::gemm_f32_bf16(ta, tb, M, N, K, alpha, A, lda, b.data<uint16_t>(), ldb, beta, C, ldc, second);
  else
    cpu::gemm_f32(ta, tb, M, N, K, alpha, A, lda, b.data<float>(), ldb, beta, C, ldc, second);
}

std::vector<int64_t> with_last(const Tensor& t, int64_t last) {
  std::vector<int64_t> s = t.shape;
  s.back() = last;
  return s;
}

void check_weight(const char* op, const char* arg, const Tensor& w, int64_t in_features) {
  check::dtype(op, arg, w, {DType::F32, DType::BF16});
  check::ndim(op, arg, w, 2);
  check::cpu(op, arg, w);
  if (w.dim(1) != in_features)
    throw op_error(op, std::string("argument '") + arg + "' " + w.describe() + " does not match input features " +
                           std::to_string(in_features) + " (expected [out, " + std::to_string(in_features) + "])");
}

void check_input(const char* op, const char* arg, const Tensor& x) {
  check::dtype(op, arg, x, {DType::F32});
  check::ndim_at_least(op, arg, x, 2);
  check::cpu(op, arg, x);
}

void check_lora(const char* op, const Tensor& x, const Tensor& w, const Tensor& a, const Tensor& b,
                const LoraConfig& cfg) {
  check_input(op, "x", x);
  const int64_t K = check::last_dim(x);
  check_weight(op, "w", w, K);
  const int64_t N = w.dim(0);
  check::dtype(op, "a", a, {DType::F32});
  check::dtype(op, "b", b, {DType::F32});
  check::ndim(op, "a", a, 2);
  check::ndim(op, "b", b, 2);
  check::cpu(op, "a", a);
  check::cpu(op, "b", b);
  const int64_t r = a.dim(0);
  if (r < 1) throw op_error(op, "argument 'a' must have r >= 1 rows, got " + a.describe());
  check::shape(op, "a", a, {r, K});
  check::shape(op, "b", b, {N, r});
  check::finite(op, "scale", cfg.scale);
  check::in_range(op, "dropout", cfg.dropout, 0.0, 1.0);
}

}  // namespace

float lora_scaling(double lora_alpha, int64_t r, bool use_rslora) {
  if (r < 1) throw op_error("lora_scaling", "r must be >= 1, got " + std::to_string(r));
  check::finite("lora_scaling", "lora_alpha", lora_alpha);
  return static_cast<float>(use_rslora ? lora_alpha / std::sqrt(static_cast<double>(r)) : lora_alpha / r);
}

void matmul(const Tensor& a, const Tensor& b, Tensor& c, bool trans_a, bool trans_b, float alpha, float beta,
            const SecondTerm* second) {
  const char* op = "matmul";
  check::dtype(op, "a", a, {DType::F32});
  check::dtype(op, "b", b, {DType::F32, DType::BF16});
  check::ndim(op, "b", b, 2);
  check::cpu(op, "a", a);
  check::cpu(op, "b", b);
  check::finite(op, "alpha", alpha);
  check::finite(op, "beta", beta);
  int64_t M, K;
  if (trans_a) {
    check::ndim(op, "a", a, 2);
    K = a.dim(0);
    M = a.dim(1);
  } else {
    Mat am = as_matrix(op, "a", a);
    M = am.rows;
    K = am.cols;
  }
  const int64_t Kb = trans_b ? b.dim(1) : b.dim(0);
  const int64_t N = trans_b ? b.dim(0) : b.dim(1);
  if (Kb != K)
    throw op_error(op, "inner dimensions differ: a " + a.describe() + (trans_a ? "ᵀ" : "") + " · b " + b.describe() +
                           (trans_b ? "ᵀ" : "") + " (" + std::to_string(K) + " vs " + std::to_string(Kb) + ")");
  std::vector<int64_t> cshape = trans_a ? std::vector<int64_t>{M, N} : with_last(a, N);
  check::output(op, "c", c, DType::F32, cshape);
  cpu::SecondProduct sp;
  if (second) {
    const Tensor &a2 = second->a, &b2 = second->b;
    check::dtype(op, "second.a", a2, {DType::F32});
    check::dtype(op, "second.b", b2, {DType::F32});
    check::cpu(op, "second.a", a2);
    check::cpu(op, "second.b", b2);
    check::ndim(op, "second.b", b2, 2);
    check::finite(op, "second.alpha", second->alpha);
    Mat am = as_matrix(op, "second.a", a2);
    const int64_t K2 = am.cols;
    const int64_t Kb2 = second->trans_b ? b2.dim(1) : b2.dim(0), N2 = second->trans_b ? b2.dim(0) : b2.dim(1);
    if (am.rows != M || Kb2 != K2 || N2 != N)
      throw op_error(op, "second term a " + a2.describe() + " · b " + b2.describe() + (second->trans_b ? "ᵀ" : "") +
                             " does not give c's [" + std::to_string(M) + ", " + std::to_string(N) + "]");
    sp = {a2.data<float>(), K2, b2.data<float>(), second->trans_b ? K2 : N, second->trans_b, K2, second->alpha};
  }
  gemm(trans_a, trans_b, M, N, K, alpha, a.data<float>(), trans_a ? M : K, b, trans_b ? K : N, beta, c.data<float>(), N,
       second ? &sp : nullptr);
}

void linear_forward(const Tensor& x, const Tensor& w, Tensor& y) {
  const char* op = "linear_forward";
  check_input(op, "x", x);
  const int64_t K = check::last_dim(x), M = check::rows(x);
  check_weight(op, "w", w, K);
  const int64_t N = w.dim(0);
  check::output(op, "y", y, DType::F32, with_last(x, N));
  gemm(false, true, M, N, K, 1.0f, x.data<float>(), K, w, K, 0.0f, y.data<float>(), N);
}

void linear_backward(const Tensor& dy, const Tensor& x, const Tensor& w, Tensor* dx, Tensor* dw) {
  const char* op = "linear_backward";
  check_input(op, "x", x);
  const int64_t K = check::last_dim(x), M = check::rows(x);
  check_weight(op, "w", w, K);
  const int64_t N = w.dim(0);
  check::dtype(op, "dy", dy, {DType::F32});
  check::shape(op, "dy", dy, with_last(x, N));
  if (dx) {
    check::output(op, "dx", *dx, DType::F32, x.shape);
    gemm(false, false, M, K, N, 1.0f, dy.data<float>(), N, w, K, 0.0f, dx->data<float>(), K);
  }
  if (dw) {
    if (w.dtype != DType::F32)
      throw op_error(op, "a trainable weight must be f32 (master weights), got w " + w.describe());
    check::output(op, "dw", *dw, DType::F32, w.shape);
    cpu::gemm_f32(true, false, N, K, M, 1.0f, dy.data<float>(), N, x.data<float>(), K, 1.0f, dw->data<float>(), K);
  }
}

void lora_linear_forward(const Tensor& x, const Tensor& w, const Tensor& a, const Tensor& b, const LoraConfig& cfg,
                         Tensor& y, Tensor& u) {
  const char* op = "lora_linear_forward";
  check_lora(op, x, w, a, b, cfg);
  const int64_t K = check::last_dim(x), M = check::rows(x), N = w.dim(0), r = a.dim(0);
  check::output(op, "y", y, DType::F32, with_last(x, N));
  check::output(op, "u", u, DType::F32, with_last(x, r));
  const float* xd = x.data<float>();
  Tensor dropped;
  if (cfg.dropout > 0) {
    dropped = empty(DType::F32, x.shape);
    cpu::kernels().dropout(x.data<float>(), dropped.data<float>(), M * K, cfg.dropout, cfg.seed);
    xd = dropped.data<float>();
  }
  // u = dropout(x)·Aᵀ ; y = x·Wᵀ + scale·u·Bᵀ (one pass over y)
  cpu::gemm_f32(false, true, M, r, K, 1.0f, xd, K, a.data<float>(), K, 0.0f, u.data<float>(), r);
  const cpu::SecondProduct lora{u.data<float>(), r, b.data<float>(), r, true, r, cfg.scale};
  gemm(false, true, M, N, K, 1.0f, x.data<float>(), K, w, K, 0.0f, y.data<float>(), N, &lora);
}

void lora_linear_backward(const Tensor& dy, const Tensor& x, const Tensor& w, const Tensor& a, const Tensor& b,
                          const Tensor& u, const LoraConfig& cfg, Tensor* dx, Tensor& da, Tensor& db, Tensor* dw) {
  const char* op = "lora_linear_backward";
  check_lora(op, x, w, a, b, cfg);
  const int64_t K = check::last_dim(x), M = check::rows(x), N = w.dim(0), r = a.dim(0);
  check::dtype(op, "dy", dy, {DType::F32});
  check::shape(op, "dy", dy, with_last(x, N));
  check::dtype(op, "u", u, {DType::F32});
  check::shape(op, "u", u, with_last(x, r));
  check::output(op, "da", da, DType::F32, a.shape);
  check::output(op, "db", db, DType::F32, b.shape);
  if (dx) check::output(op, "dx", *dx, DType::F32, x.shape);
  if (dw) {
    if (w.dtype != DType::F32)
      throw op_error(op, "a trainable weight must be f32 (master weights), got w " + w.describe());
    check::output(op, "dw", *dw, DType::F32, w.shape);
  }
  const float s = cfg.scale;
  // dB += s·dyᵀ·u            [N, r]
  cpu::gemm_f32(true, false, N, r, M, s, dy.data<float>(), N, u.data<float>(), r, 1.0f, db.data<float>(), r);
  // du = s·dy·B              [M, r]
  Tensor du = empty(DType::F32, {M, r});
  cpu::gemm_f32(false, false, M, r, N, s, dy.data<float>(), N, b.data<float>(), r, 0.0f, du.data<float>(), r);
  // dA += duᵀ·dropout(x)     [r, K]
  const float* xd = x.data<float>();
  Tensor dropped;
  if (cfg.dropout > 0) {
    dropped = empty(DType::F32, x.shape);
    cpu::kernels().dropout(x.data<float>(), dropped.data<float>(), M * K, cfg.dropout, cfg.seed);
    xd = dropped.data<float>();
  }
  cpu::gemm_f32(true, false, r, K, M, 1.0f, du.data<float>(), r, xd, K, 1.0f, da.data<float>(), K);
  // dx = dy·W + dropout_backward(du·A)
  if (dx) {
    if (cfg.dropout > 0) {
      gemm(false, false, M, K, N, 1.0f, dy.data<float>(), N, w, K, 0.0f, dx->data<float>(), K);
      Tensor t = std::move(dropped);  // reuse the buffer: t = du·A, then dx += mask ∘ t / (1 - p)
      cpu::gemm_f32(false, false, M, K, r, 1.0f, du.data<float>(), r, a.data<float>(), K, 0.0f, t.data<float>(), K);
      cpu::kernels().dropout_accumulate(t.data<float>(), dx->data<float>(), M * K, cfg.dropout, cfg.seed);
    } else {  // dx = dy·W + du·A, one pass over dx
      const cpu::SecondProduct lora{du.data<float>(), r, a.data<float>(), K, false, r, 1.0f};
      gemm(false, false, M, K, N, 1.0f, dy.data<float>(), N, w, K, 0.0f, dx->data<float>(), K, &lora);
    }
  }
  if (dw) cpu::gemm_f32(true, false, N, K, M, 1.0f, dy.data<float>(), N, x.data<float>(), K, 1.0f, dw->data<float>(), K);
}

}  // namespace sw::ops
