// AVX2 GEMM kernel (compiled with -mavx2 -mfma; see CMakeLists.txt): a 6 x 16 register tile
// (12 ymm accumulators + 2 B vectors + 1 broadcast = 15 of the 16 registers). A bf16 B is widened to
// f32 while packing, so the same kernel serves it.
#if defined(SW_HAVE_AVX2_BUILD)
#include <immintrin.h>

#include "cpu/gemm_internal.h"

namespace sw::cpu::gemm {
namespace {

// Lane mask (all-ones lanes are active) for vector v of a tile n columns wide.
inline __m256i col_mask(int n, int v) {
  const int rem = std::min(8, std::max(0, n - 8 * v));
  const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(rem), lane);
}

struct Avx2Kernel {
  using Word = float;
  using SecondKT = Avx2Kernel;
  static constexpr int MR = 6, NR = 16, KSTEP = 1;
  // A block 96 x 256 x 4 B = 96 KiB (L2), B micro-panel 256 x 64 B = 16 KiB (L1).
  static constexpr int64_t MC = 96, KC = 256, NC = 2048;

  static void pack_a(const Problem& p, int64_t i0, int64_t mc, int64_t k0, int64_t kc, float* dst) {
    pack_a_f32<MR>(p, i0, mc, k0, kc, dst);
  }
  static void pack_b(const Problem& p, int64_t k0, int64_t kc, int64_t j0, int64_t nc, float* dst) {
    if (p.b_bf16)
      pack_b_f32<NR, uint16_t>(p, k0, kc, j0, nc, dst);
    else
      pack_b_f32<NR, float>(p, k0, kc, j0, nc, dst);
  }

  static constexpr bool DIRECT = true;

  // A element (i, s): AROW ? a[i*as + s] : a[i + s*as]; B row s: b[s*bs .. s*bs + 16) (packed: as = 6,
  // bs = 16; in place: as/bs = lda/ldb). C[m x n] = alpha * acc + beta * C.
  template <bool AROW>
  static void micro(int64_t ks, const float* a, int64_t as, const float* b, int64_t bs, float* c, int64_t ldc,
                    float alpha, float beta, int m, int n) {
    __m256 acc[MR][2];
#pragma GCC unroll 8
    for (int i = 0; i < MR; ++i) acc[i][0] = acc[i][1] = _mm256_setzero_ps();
    for (int i = 0; i < m; ++i) _mm_prefetch(reinterpret_cast<const char*>(c + i * ldc), _MM_HINT_T0);
    const int64_t a_step = AROW ? 1 : as;
#pragma GCC unroll 4
    for (int64_t k = 0; k < ks; ++k) {
      const __m256 b0 = _mm256_loadu_ps(b), b1 = _mm256_loadu_ps(b + 8);
#pragma GCC unroll 8
      for (int i = 0; i < MR; ++i) {
        const __m256 av = _mm256_broadcast_ss(a + (AROW ? i * as : i));
        acc[i][0] = _mm256_fmadd_ps(av, b0, acc[i][0]);
        acc[i][1] = _mm256_fmadd_ps(av, b1, acc[i][1]);
      }
      a += a_step;
      b += bs;
    }
    const __m256i mk0 = col_mask(n, 0), mk1 = col_mask(n, 1);
    const __m256 va = _mm256_set1_ps(alpha), vb = _mm256_set1_ps(beta);
#pragma GCC unroll 8
    for (int i = 0; i < MR; ++i) {
      if (i >= m) break;
      float* ci = c + i * ldc;
      __m256 r0 = _mm256_mul_ps(va, acc[i][0]), r1 = _mm256_mul_ps(va, acc[i][1]);
      if (beta != 0.f) {  // masked loads: lanes outside the tile are neither read nor faulted on
        r0 = _mm256_fmadd_ps(vb, _mm256_maskload_ps(ci, mk0), r0);
        r1 = _mm256_fmadd_ps(vb, _mm256_maskload_ps(ci + 8, mk1), r1);
      }
      _mm256_maskstore_ps(ci, mk0, r0);
      _mm256_maskstore_ps(ci + 8, mk1, r1);
    }
  }
};

}  // namespace

Variant variant_avx2() { return {&goto_block<Avx2Kernel>, Avx2Kernel::MR, Avx2Kernel::NR, "avx2 6x16"}; }

}  // namespace sw::cpu::gemm
#endif  // SW_HAVE_AVX2_BUILD
