// General matrix multiply on the CPU: the engine under matmul, the LoRA linear and the MLP.
//
//   C[M,N] = alpha * op(A) * op(B) + beta * C
//
// Row-major with leading dimensions. op(A) is A[M,K] (lda >= K) or, with trans_a, A is stored [K,M]
// (lda >= M). op(B) is B[K,N] (ldb >= N) or, with trans_b, B is stored [N,K] (ldb >= K): the linear
// layer's y = x·Wᵀ is gemm(false, true, ...) with W [out, in] as PyTorch stores it.
// beta == 0 means C is written without being read (it may hold NaN/garbage).
// B may be bf16 (frozen weights): with AVX512-BF16 the product uses vdpbf16ps on A rounded to bf16;
// without it, bf16 is widened to f32. Threads: the shared pool (cpu/threadpool.h).
#pragma once
#include <cstdint>

namespace sw::cpu {

// An optional second, low-rank product folded into the same pass over C (LoRA: y = x·Wᵀ + s·u·Bᵀ, or
// dx = dy·W + du·A):  C = alpha·op(A)·op(B) + alpha2·A2·op(B2) + beta·C.
// A2 f32 [M, K2] row-major (lda >= K2); op(B2) = B2 [K2, N] (ldb >= N) or, with trans_b, B2 stored
// [N, K2] (ldb >= K2), f32. Each C tile takes the second product right after the first, while it is
// still in L1: C is read and written once instead of twice. With a bf16 B on the vdpbf16ps path the
// second product is computed in bf16 too (A2 and B2 rounded to bf16 while packing, f32 accumulation).
struct SecondProduct {
  const float* A = nullptr;
  int64_t lda = 0;
  const float* B = nullptr;
  int64_t ldb = 0;
  bool trans_b = false;
  int64_t K = 0;
  float alpha = 1.f;
};

void gemm_f32(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
              int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc,
              const SecondProduct* second = nullptr);

void gemm_f32_bf16(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
                   int64_t lda, const uint16_t* B, int64_t ldb, float beta, float* C, int64_t ldc,
                   const SecondProduct* second = nullptr);

}  // namespace sw::cpu
