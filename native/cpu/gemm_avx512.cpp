// AVX-512 GEMM kernels (compiled with -mavx512f/bw/dq/vl/bf16 -mfma; see CMakeLists.txt).
//
//   f32     : MR x NR register tile of f32 FMAs, B widened from bf16 at packing time when B is bf16.
//   dpbf16  : same tile, vdpbf16ps on (k, k+1) bf16 pairs: A rounded to bf16 while packing, twice
//             the multiply-adds per instruction of the f32 kernel.
#if defined(SW_HAVE_AVX512_BUILD)
#include <immintrin.h>

#include "cpu/gemm_internal.h"

// GCC 12's own AVX-512 shuffle intrinsics trip -Wmaybe-uninitialized (their undefined pass-through
// operand); nothing here reads an uninitialized value.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

#ifndef SW_GEMM512_MR
#define SW_GEMM512_MR 12
#endif
#ifndef SW_GEMM512_NV
#define SW_GEMM512_NV 2
#endif
#ifndef SW_GEMM512_MC
#define SW_GEMM512_MC 144
#endif
#ifndef SW_GEMM512_KC
#define SW_GEMM512_KC 384
#endif
#ifndef SW_GEMM512_NC
#define SW_GEMM512_NC 2048
#endif

namespace sw::cpu::gemm {
namespace {

constexpr int kMR = SW_GEMM512_MR;  // rows of the register tile (broadcasts of A)
constexpr int kNV = SW_GEMM512_NV;  // zmm vectors across the tile (NR = 16 * kNV columns of B)

// Column mask of vector v for a tile n columns wide.
inline __mmask16 col_mask(int n, int v) {
  const int rem = n - 16 * v;
  return rem >= 16 ? __mmask16(0xffff) : rem <= 0 ? __mmask16(0) : __mmask16((1u << rem) - 1);
}

// C[m x n] (m <= MR, n <= 16*NV) = alpha * acc + beta * C; beta == 0: C not read. Masked loads and
// stores never touch memory outside the m x n tile.
template <int MR, int NV>
inline void store_tile(const __m512 (&acc)[MR][NV], float* c, int64_t ldc, float alpha, float beta, int m, int n) {
  __mmask16 mk[NV];
  for (int v = 0; v < NV; ++v) mk[v] = col_mask(n, v);
  const __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta);
#pragma GCC unroll 16
  for (int i = 0; i < MR; ++i) {
    if (i >= m) break;
    float* ci = c + i * ldc;
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) {
      __m512 r = _mm512_mul_ps(va, acc[i][v]);
      if (beta != 0.f) r = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(mk[v], ci + 16 * v), r);
      _mm512_mask_storeu_ps(ci + 16 * v, mk[v], r);
    }
  }
}

// ---- Packing of A with 16 x 16 transposes (the portable packers move one element at a time with a
// stride-MR store; for bf16 they also convert one element at a time, which costs as much as the
// multiply once N is small).

// In-register transpose of a 16 x 16 block of 32-bit words: r[i] lane j <-> r[j] lane i.
inline void transpose16(__m512i (&r)[16]) {
  __m512i t[16];
  for (int i = 0; i < 8; ++i) {
    t[2 * i] = _mm512_unpacklo_epi32(r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = _mm512_unpackhi_epi32(r[2 * i], r[2 * i + 1]);
  }
  // Within each 128-bit lane L: u[4g + c] holds column 4L + c of rows 4g .. 4g+3.
  __m512i u[16];
  for (int g = 0; g < 4; ++g) {
    u[4 * g + 0] = _mm512_unpacklo_epi64(t[4 * g], t[4 * g + 2]);
    u[4 * g + 1] = _mm512_unpackhi_epi64(t[4 * g], t[4 * g + 2]);
    u[4 * g + 2] = _mm512_unpacklo_epi64(t[4 * g + 1], t[4 * g + 3]);
    u[4 * g + 3] = _mm512_unpackhi_epi64(t[4 * g + 1], t[4 * g + 3]);
  }
  // Gather lane L of u[c], u[4+c], u[8+c], u[12+c] into row 4L + c.
  for (int c = 0; c < 4; ++c) {
    const __m512i v0 = _mm512_shuffle_i32x4(u[c], u[4 + c], 0x88), v1 = _mm512_shuffle_i32x4(u[c], u[4 + c], 0xdd);
    const __m512i v2 = _mm512_shuffle_i32x4(u[8 + c], u[12 + c], 0x88), v3 = _mm512_shuffle_i32x4(u[8 + c], u[12 + c], 0xdd);
    r[c] = _mm512_shuffle_i32x4(v0, v2, 0x88);
    r[4 + c] = _mm512_shuffle_i32x4(v1, v3, 0x88);
    r[8 + c] = _mm512_shuffle_i32x4(v0, v2, 0xdd);
    r[12 + c] = _mm512_shuffle_i32x4(v1, v3, 0xdd);
  }
}

inline __mmask16 lanes(int64_t n) { return n >= 16 ? __mmask16(0xffff) : n <= 0 ? __mmask16(0) : __mmask16((1u << n) - 1); }

// op(A)[i0:i0+mc, k0:k0+kc] -> MR-row panels of words, MR <= 16, rows past mc zero.
//   BF16 = false: kc x MR floats.   BF16 = true: ceil(kc/2) x MR (k even, k odd) bf16 pairs, rounded
//   to nearest even by vcvtne2ps2bf16; an odd kc ends with a pair whose odd half is zero.
// Row-major A: 16 words of each row (16 f32, or 32 f32 converted to 16 pairs) are loaded, the
// MR x 16 block transposed, and its 16 rows of MR words stored back to back. Transposed A (stored
// [K, M]): a panel's row for one k is MR contiguous floats; bf16 pairs interleave rows k and k+1.
template <int MR, bool BF16>
void pack_a_avx512(const Problem& p, int64_t i0, int64_t mc, int64_t k0, int64_t kc, void* dst_) {
  static_assert(MR <= 16, "one zmm per panel row");
  uint32_t* dst = static_cast<uint32_t*>(dst_);
  const int64_t ks = BF16 ? ceil_div(kc, 2) : kc;
  const __mmask16 mr_mask = lanes(MR);
  for (int64_t r = 0; r < mc; r += MR, dst += ks * MR) {
    const int mr = static_cast<int>(std::min<int64_t>(MR, mc - r));
    if (!p.trans_a) {
      const float* src = p.A + (i0 + r) * p.lda + k0;
      for (int64_t s0 = 0; s0 < ks; s0 += 16) {
        const int64_t k = BF16 ? 2 * s0 : s0;  // first k of this chunk
        __m512i w[16];
        for (int i = 0; i < 16; ++i) {
          if (i >= mr) {
            w[i] = _mm512_setzero_si512();
            continue;
          }
          const float* row = src + i * p.lda + k;
          if constexpr (BF16) {
            const __m512 lo = _mm512_maskz_loadu_ps(lanes(kc - k), row);
            const __m512 hi = _mm512_maskz_loadu_ps(lanes(kc - k - 16), row + 16);
            w[i] = (__m512i)_mm512_cvtne2ps_pbh(hi, lo);  // bf16 j = k + j: word q = (k+2q, k+2q+1)
          } else {
            w[i] = _mm512_castps_si512(_mm512_maskz_loadu_ps(lanes(kc - k), row));
          }
        }
        transpose16(w);
        const int64_t nq = std::min<int64_t>(16, ks - s0);
        for (int q = 0; q < nq; ++q) _mm512_mask_storeu_epi32(dst + (s0 + q) * MR, mr_mask, w[q]);
      }
    } else {
      const float* src = p.A + k0 * p.lda + i0 + r;
      const __mmask16 m_mask = lanes(mr);
      for (int64_t s = 0; s < ks; ++s) {
        if constexpr (BF16) {
          const __m512 e = _mm512_maskz_loadu_ps(m_mask, src + 2 * s * p.lda);
          const __m512 o = 2 * s + 1 < kc ? _mm512_maskz_loadu_ps(m_mask, src + (2 * s + 1) * p.lda) : _mm512_setzero_ps();
          // [e0..e15 | o0..o15] as bf16, then interleave to words (e_i, o_i).
          const __m512i eo = (__m512i)_mm512_cvtne2ps_pbh(o, e);
          const __m512i idx = _mm512_set_epi16(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8, 23, 7, 22, 6,
                                               21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
          _mm512_mask_storeu_epi32(dst + s * MR, mr_mask, _mm512_permutexvar_epi16(idx, eo));
        } else {
          _mm512_mask_storeu_ps(dst + s * MR, mr_mask, _mm512_maskz_loadu_ps(m_mask, src + s * p.lda));
        }
      }
    }
  }
}

// The register tile: MR x (16*NV) accumulators, one k-step at a time.
//   BF16 = false: words are f32, one FMA per (row, vector) per k.
//   BF16 = true : words are bf16 (k, k+1) pairs, one vdpbf16ps per (row, vector) per k pair.
// A word (i, s): AROW ? a[i*as + s] : a[i + s*as]; B words of k-step s: b[s*bs .. s*bs + 16*NV)
// (packed panels: as = MR, bs = NR; in place: the leading dimensions, see goto_block).
template <int MR, int NV, bool BF16, bool AROW>
inline void micro(int64_t ks, const void* a_, int64_t as, const void* b_, int64_t bs, float* c, int64_t ldc,
                  float alpha, float beta, int m, int n) {
  const float* a = static_cast<const float*>(a_);
  const float* b = static_cast<const float*>(b_);
  __m512 acc[MR][NV];
#pragma GCC unroll 16
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) acc[i][v] = _mm512_setzero_ps();
  // Pull the C tile toward L1 while the k loop runs (it is read/written once at the end).
  for (int i = 0; i < m; ++i) {
    _mm_prefetch(reinterpret_cast<const char*>(c + i * ldc), _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(c + i * ldc + 16 * NV - 1), _MM_HINT_T0);
  }
  const int64_t a_step = AROW ? 1 : as;
#pragma GCC unroll 2
  for (int64_t k = 0; k < ks; ++k) {
    __m512 bv[NV];
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) bv[v] = _mm512_loadu_ps(b + 16 * v);
#pragma GCC unroll 16
    for (int i = 0; i < MR; ++i) {
      const __m512 av = _mm512_set1_ps(a[AROW ? i * as : i]);  // folded into an embedded {1to16} broadcast
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) {
        if constexpr (BF16)
          acc[i][v] = _mm512_dpbf16_ps(acc[i][v], (__m512bh)_mm512_castps_si512(av), (__m512bh)_mm512_castps_si512(bv[v]));
        else
          acc[i][v] = _mm512_fmadd_ps(av, bv[v], acc[i][v]);
      }
    }
    a += a_step;
    b += bs;
  }
  store_tile<MR, NV>(acc, c, ldc, alpha, beta, m, n);
}

struct F32Kernel {
  using Word = float;
  static constexpr int MR = kMR, NR = 16 * kNV, KSTEP = 1;
  static constexpr int64_t MC = SW_GEMM512_MC, KC = SW_GEMM512_KC, NC = SW_GEMM512_NC;
  static void pack_a(const Problem& p, int64_t i0, int64_t mc, int64_t k0, int64_t kc, float* dst) {
    pack_a_avx512<MR, false>(p, i0, mc, k0, kc, dst);
  }
  static void pack_b(const Problem& p, int64_t k0, int64_t kc, int64_t j0, int64_t nc, float* dst) {
    if (p.b_bf16)
      pack_b_f32<NR, uint16_t>(p, k0, kc, j0, nc, dst);
    else
      pack_b_f32<NR, float>(p, k0, kc, j0, nc, dst);
  }
  static constexpr bool DIRECT = true;
  template <bool AROW>
  static void micro(int64_t ks, const float* a, int64_t as, const float* b, int64_t bs, float* c, int64_t ldc,
                    float alpha, float beta, int m, int n) {
    gemm::micro<MR, kNV, false, AROW>(ks, a, as, b, bs, c, ldc, alpha, beta, m, n);
  }
};

struct Bf16Kernel {
  using Word = uint32_t;
  static constexpr int MR = kMR, NR = 16 * kNV, KSTEP = 2;
  static constexpr int64_t MC = SW_GEMM512_MC, KC = 2 * SW_GEMM512_KC, NC = SW_GEMM512_NC;
  static void pack_a(const Problem& p, int64_t i0, int64_t mc, int64_t k0, int64_t kc, uint32_t* dst) {
    pack_a_avx512<MR, true>(p, i0, mc, k0, kc, dst);
  }
  static void pack_b(const Problem& p, int64_t k0, int64_t kc, int64_t j0, int64_t nc, uint32_t* dst) {
    pack_b_bf16pairs<NR>(p, k0, kc, j0, nc, dst);
  }
  static constexpr bool DIRECT = false;  // A must be converted to bf16 pairs: always packed
  template <bool AROW>
  static void micro(int64_t ks, const uint32_t* a, int64_t as, const uint32_t* b, int64_t bs, float* c, int64_t ldc,
                    float alpha, float beta, int m, int n) {
    gemm::micro<MR, kNV, true, AROW>(ks, a, as, b, bs, c, ldc, alpha, beta, m, n);
  }
};

}  // namespace

Variant variant_avx512_f32() {
  return {&goto_block<F32Kernel>, F32Kernel::MR, F32Kernel::NR, "avx512 f32"};
}
Variant variant_avx512_dpbf16() {
  return {&goto_block<Bf16Kernel>, Bf16Kernel::MR, Bf16Kernel::NR, "avx512 dpbf16"};
}

}  // namespace sw::cpu::gemm
#endif  // SW_HAVE_AVX512_BUILD
