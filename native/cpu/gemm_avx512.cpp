// AVX-512 GEMM kernels (compiled with -mavx512f/bw/dq/vl/bf16 -mfma; see CMakeLists.txt).
//
//   f32     : 8 x 48 register tile (24 zmm accumulators, 3 B vectors, 1 broadcast) of f32 FMAs; a bf16
//             B is widened to f32 while packing.
//   dpbf16  : the same tile with vdpbf16ps on (k, k+1) bf16 pairs: A rounded to bf16 while packing,
//             twice the multiply-adds per instruction.
//   narrow  : 8 x 16 f32 tile for N <= 16 (the LoRA rank), A read in place.
//   dot     : M <= 4 with a transposed B (one-token generation): dot products of contiguous rows.
//
// Tuning (AMD EPYC Zen 4, 2 cores, 32 KiB L1d / 1 MiB L2 per core; one 512-bit FMA per cycle per
// core, i.e. ~115 f32 GFLOP/s per core, ~234 with vdpbf16ps): 12x32, 14x32, 8x48 and 6x64 tiles all
// reach 90-94% of that on the 2048-token shapes; 8x48 is kept because 8 divides every dimension of
// the target models (and M = r = 16 exactly), and 48 divides 576/1536. KC 384..768 and MC 96..144
// measured within noise; KC = 512 f32 (a 48-column B micro-panel is then 96 KiB, streamed from L2
// while 24 FMAs per k hide it) and MC = 128 (A block 256 KiB in L2). Software prefetch of A/B inside
// the k loop measured no gain (the packed streams are sequential); only the C tile is prefetched.
#if defined(SW_HAVE_AVX512_BUILD)
#include <immintrin.h>

#include "cpu/gemm_internal.h"

// GCC 12's own AVX-512 shuffle intrinsics trip -Wmaybe-uninitialized (their undefined pass-through
// operand); nothing here reads an uninitialized value.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

namespace sw::cpu::gemm {
namespace {

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

// ---- Packing of A with 16 x 16 transposes (an element-by-element gather with a stride-MR store, and
// for bf16 a scalar conversion per element, cost as much as the multiply once N is small).

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

// Words (a_i, b_i) of 16 lanes of a and b, rounded to bf16 (nearest even).
inline __m512i pair_words16(__m512 a, __m512 b) {
  const __m512i ab = (__m512i)_mm512_cvtne2ps_pbh(b, a);  // bf16 lanes a0..a15, b0..b15
  const __m512i idx = _mm512_set_epi16(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8, 23, 7, 22, 6, 21, 5,
                                       20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
  return _mm512_permutexvar_epi16(idx, ab);
}

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
          _mm512_mask_storeu_epi32(dst + s * MR, mr_mask, pair_words16(e, o));
        } else {
          _mm512_mask_storeu_ps(dst + s * MR, mr_mask, _mm512_maskz_loadu_ps(m_mask, src + s * p.lda));
        }
      }
    }
  }
}

// ---- Packing of B. Modes: F32 (f32 B -> f32 words), WIDEN (bf16 B -> f32 words, exact),
// PAIRS (bf16 B -> (k even, k odd) pair words for vdpbf16ps; an odd kc ends with a zero odd half).
enum class BMode { F32, WIDEN, PAIRS };


// 16 bf16 -> 16 f32 (exact: bf16 is the top half of an f32).
inline __m512i widen16(__m256i h) { return _mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16); }

// op(B)[k0:k0+kc, j0:j0+nc] -> panels of 16*NV columns (ks x NR words, 64-byte aligned rows);
// columns past nc are zero. Plain B: each panel row is NV (masked) vector loads of one B row.
// Transposed B (stored [N, K], e.g. the weight of y = x·Wᵀ): 16 B rows x 16 words are loaded along
// k and transposed into 16 panel rows of 16 columns.
template <int NV, BMode MODE>
void pack_b_avx512(const Problem& p, int64_t k0, int64_t kc, int64_t j0, int64_t nc, void* dst_) {
  constexpr int NR = 16 * NV;
  uint32_t* dst = static_cast<uint32_t*>(dst_);
  const float* Bf = static_cast<const float*>(p.B);
  const uint16_t* Bh = static_cast<const uint16_t*>(p.B);
  const int64_t ks = MODE == BMode::PAIRS ? ceil_div(kc, 2) : kc;
  for (int64_t c = 0; c < nc; c += NR, dst += ks * NR) {
    const int64_t nr = std::min<int64_t>(NR, nc - c);
    if (!p.trans_b) {
      for (int64_t s = 0; s < ks; ++s) {
        for (int v = 0; v < NV; ++v) {
          const __mmask16 mk = lanes(nr - 16 * v);
          const int64_t col = j0 + c + 16 * v;
          __m512i w;
          if constexpr (MODE == BMode::F32) {
            w = _mm512_castps_si512(_mm512_maskz_loadu_ps(mk, Bf + (k0 + s) * p.ldb + col));
          } else if constexpr (MODE == BMode::WIDEN) {
            w = widen16(_mm256_maskz_loadu_epi16(mk, Bh + (k0 + s) * p.ldb + col));
          } else {
            const uint16_t* even = Bh + (k0 + 2 * s) * p.ldb + col;
            const __m512i e = _mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(mk, even));
            const __m512i o = 2 * s + 1 < kc ? _mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(mk, even + p.ldb))
                                             : _mm512_setzero_si512();
            w = _mm512_or_si512(e, _mm512_slli_epi32(o, 16));
          }
          _mm512_store_si512(dst + s * NR + 16 * v, w);
        }
      }
    } else {
      for (int v = 0; v < NV; ++v) {
        const int64_t valid = nr - 16 * v;  // B rows (op(B) columns) present in this group of 16
        for (int64_t s0 = 0; s0 < ks; s0 += 16) {
          __m512i w[16];
          for (int i = 0; i < 16; ++i) {
            if (i >= valid) {
              w[i] = _mm512_setzero_si512();
              continue;
            }
            const int64_t row = (j0 + c + 16 * v + i) * p.ldb + k0;
            if constexpr (MODE == BMode::F32) {
              w[i] = _mm512_castps_si512(_mm512_maskz_loadu_ps(lanes(kc - s0), Bf + row + s0));
            } else if constexpr (MODE == BMode::WIDEN) {
              w[i] = widen16(_mm256_maskz_loadu_epi16(lanes(kc - s0), Bh + row + s0));
            } else {
              // 32 bf16 = 16 pairs in memory order; the mask zeroes k >= kc (the odd tail's partner).
              const int64_t left = kc - 2 * s0;
              const __mmask32 mk = left >= 32 ? __mmask32(0xffffffffu) : __mmask32((1u << left) - 1);
              w[i] = _mm512_maskz_loadu_epi16(mk, Bh + row + 2 * s0);
            }
          }
          transpose16(w);
          const int64_t nq = std::min<int64_t>(16, ks - s0);
          for (int q = 0; q < nq; ++q) _mm512_store_si512(dst + (s0 + q) * NR + 16 * v, w[q]);
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

// f32 kernel traits: an MR x 16*NV tile; blocking MC x KC (A block, L2) and NC (B block).
template <int MR_, int NV, int64_t MC_, int64_t KC_, int64_t NC_>
struct F32Kernel {
  using Word = float;
  using SecondKT = F32Kernel;  // the second product (gemm.h) runs on this very kernel
  static constexpr int MR = MR_, NR = 16 * NV, KSTEP = 1;
  static constexpr int64_t MC = MC_, KC = KC_, NC = NC_;
  static constexpr bool DIRECT = true;
  static void pack_a(const Problem& p, int64_t i0, int64_t mc, int64_t k0, int64_t kc, float* dst) {
    pack_a_avx512<MR, false>(p, i0, mc, k0, kc, dst);
  }
  static void pack_b(const Problem& p, int64_t k0, int64_t kc, int64_t j0, int64_t nc, float* dst) {
    if (p.b_bf16)
      pack_b_avx512<NV, BMode::WIDEN>(p, k0, kc, j0, nc, dst);
    else
      pack_b_avx512<NV, BMode::F32>(p, k0, kc, j0, nc, dst);
  }
  template <bool AROW>
  static void micro(int64_t ks, const float* a, int64_t as, const float* b, int64_t bs, float* c, int64_t ldc,
                    float alpha, float beta, int m, int n) {
    gemm::micro<MR, NV, false, AROW>(ks, a, as, b, bs, c, ldc, alpha, beta, m, n);
  }
};

// bf16-pair kernel traits (vdpbf16ps); KC counts k values (KC/2 k-steps).
template <int MR_, int NV, int64_t MC_, int64_t KC_, int64_t NC_>
struct Bf16Kernel {
  using Word = uint32_t;
  // The second product (LoRA's rank-r term) stays f32, as PEFT computes it: the f32 kernel of the same
  // register tile, so it updates the same C tile.
  using SecondKT = F32Kernel<MR_, NV, MC_, KC_, NC_>;
  static constexpr int MR = MR_, NR = 16 * NV, KSTEP = 2;
  static constexpr int64_t MC = MC_, KC = KC_, NC = NC_;
  static constexpr bool DIRECT = false;  // A must be converted to bf16 pairs: always packed
  static void pack_a(const Problem& p, int64_t i0, int64_t mc, int64_t k0, int64_t kc, uint32_t* dst) {
    pack_a_avx512<MR, true>(p, i0, mc, k0, kc, dst);
  }
  static void pack_b(const Problem& p, int64_t k0, int64_t kc, int64_t j0, int64_t nc, uint32_t* dst) {
    pack_b_avx512<NV, BMode::PAIRS>(p, k0, kc, j0, nc, dst);
  }
  template <bool AROW>
  static void micro(int64_t ks, const uint32_t* a, int64_t as, const uint32_t* b, int64_t bs, float* c, int64_t ldc,
                    float alpha, float beta, int m, int n) {
    gemm::micro<MR, NV, true, AROW>(ks, a, as, b, bs, c, ldc, alpha, beta, m, n);
  }
};

// Blocking (see the file comment): tile 8 x 48; A block 128 x 512; B block 512 x 1536 (3 MiB in L3;
// it only bounds how often A is re-packed). The bf16 kernel's KC counts k values: 1024 k = 512 pairs,
// the same bytes per panel as f32. The narrow kernel is 8 x 16 (8 measured ahead of 12 and 16 rows).
using MainF32 = F32Kernel<8, 3, 128, 512, 1536>;
using MainBf16 = Bf16Kernel<8, 3, 128, 1024, 1536>;
using NarrowF32 = F32Kernel<8, 1, 128, 512, 16>;

// ---- Few rows of C with a transposed B (generation: y = x·Wᵀ for one token). Every C element is a
// dot product of two contiguous rows, A[i, :] and B[n, :]; packing B (a transpose of the whole weight
// for a single use) would cost more than the product, so nothing is packed.

// 16 B elements from k on (masked: only k < K), as f32.
template <bool BF16>
inline __m512 load_b16(const void* row, int64_t k, __mmask16 mk) {
  if constexpr (BF16)
    return _mm512_castsi512_ps(widen16(_mm256_maskz_loadu_epi16(mk, static_cast<const uint16_t*>(row) + k)));
  else
    return _mm512_maskz_loadu_ps(mk, static_cast<const float*>(row) + k);
}

constexpr int64_t kDotPrefetch = 4 * 576 * 4;  // bytes ahead in each B row: the rows 4 ahead

// C[i0:i0+MROWS, n0:n1]: MROWS (<= 4) rows of A against 4 rows of B at a time (16 accumulators).
template <int MROWS, bool BF16>
void dot_rows(const Problem& p, int64_t i0, int64_t n0, int64_t n1) {
  const size_t esz = BF16 ? 2 : 4;
  const char* Bbase = static_cast<const char*>(p.B);
  const float* arow[MROWS];
  for (int i = 0; i < MROWS; ++i) arow[i] = p.A + (i0 + i) * p.lda;
  for (int64_t n = n0; n < n1; n += 4) {
    const int nb = static_cast<int>(std::min<int64_t>(4, n1 - n));
    const void* brow[4];
    for (int j = 0; j < 4; ++j) brow[j] = Bbase + (n + std::min(j, nb - 1)) * p.ldb * esz;  // clamp: no overread
    __m512 acc[MROWS][4];
    for (int i = 0; i < MROWS; ++i)
      for (int j = 0; j < 4; ++j) acc[i][j] = _mm512_setzero_ps();
    for (int64_t k = 0; k < p.K; k += 16) {
      const __mmask16 mk = lanes(p.K - k);
      __m512 bv[4];
      if ((k * esz) % 64 == 0)
        for (int j = 0; j < 4; ++j) _mm_prefetch(static_cast<const char*>(brow[j]) + k * esz + kDotPrefetch, _MM_HINT_T0);
      for (int j = 0; j < 4; ++j) bv[j] = load_b16<BF16>(brow[j], k, mk);
      for (int i = 0; i < MROWS; ++i) {
        const __m512 av = _mm512_maskz_loadu_ps(mk, arow[i] + k);
        for (int j = 0; j < 4; ++j) acc[i][j] = _mm512_fmadd_ps(av, bv[j], acc[i][j]);
      }
    }
    for (int i = 0; i < MROWS; ++i) {
      float* c = p.C + (i0 + i) * p.ldc + n;
      for (int j = 0; j < nb; ++j) {
        const float d = p.alpha * _mm512_reduce_add_ps(acc[i][j]);
        c[j] = p.beta == 0.f ? d : d + p.beta * c[j];
      }
    }
  }
}

// The same with vdpbf16ps (bf16 B, AVX512-BF16): the A rows rounded to bf16 once per call (as the
// blocked bf16 kernel rounds A while packing), then one vdpbf16ps per 32 weights and row of A; the
// widening of B to f32 (two shuffles per 16 weights) was the bound of the bf16 decode, not memory.
template <int MROWS>
void dot_rows_dp(const Problem& p, const uint16_t* abf, int64_t ka, int64_t i0, int64_t n0, int64_t n1) {
  const uint16_t* Bbase = static_cast<const uint16_t*>(p.B);
  for (int64_t n = n0; n < n1; n += 4) {
    const int nb = static_cast<int>(std::min<int64_t>(4, n1 - n));
    const uint16_t* brow[4];
    for (int j = 0; j < 4; ++j) brow[j] = Bbase + (n + std::min(j, nb - 1)) * p.ldb;  // clamp: no overread
    __m512 acc[MROWS][4];
    for (int i = 0; i < MROWS; ++i)
      for (int j = 0; j < 4; ++j) acc[i][j] = _mm512_setzero_ps();
    for (int64_t k = 0; k < p.K; k += 32) {
      const int64_t left = p.K - k;
      const __mmask32 mk = left >= 32 ? __mmask32(0xffffffffu) : __mmask32((1u << left) - 1);
      __m512bh bv[4];
      for (int j = 0; j < 4; ++j) {
        _mm_prefetch(reinterpret_cast<const char*>(brow[j] + k) + kDotPrefetch, _MM_HINT_T0);
        bv[j] = (__m512bh)_mm512_maskz_loadu_epi16(mk, brow[j] + k);
      }
      for (int i = 0; i < MROWS; ++i) {
        const __m512bh av = (__m512bh)_mm512_loadu_si512(abf + (i0 + i) * ka + k);  // zero padded to ka
        for (int j = 0; j < 4; ++j) acc[i][j] = _mm512_dpbf16_ps(acc[i][j], av, bv[j]);
      }
    }
    for (int i = 0; i < MROWS; ++i) {
      float* c = p.C + (i0 + i) * p.ldc + n;
      for (int j = 0; j < nb; ++j) {
        const float d = p.alpha * _mm512_reduce_add_ps(acc[i][j]);
        c[j] = p.beta == 0.f ? d : d + p.beta * c[j];
      }
    }
  }
}

// One row of A (batch-1 decode): B rows one after another, each streamed in 128-weight steps with four
// accumulators, so the weights are read as one sequential stream.
void dot_row1_dp(const Problem& p, const uint16_t* a, int64_t i0, int64_t n0, int64_t n1) {
  const uint16_t* Bbase = static_cast<const uint16_t*>(p.B);
  const int64_t K = p.K, K128 = K / 128 * 128;
  float* c = p.C + i0 * p.ldc;
  for (int64_t n = n0; n < n1; ++n) {
    const uint16_t* b = Bbase + n * p.ldb;
    __m512 s0 = _mm512_setzero_ps(), s1 = _mm512_setzero_ps(), s2 = _mm512_setzero_ps(), s3 = _mm512_setzero_ps();
    int64_t k = 0;
    for (; k < K128; k += 128) {
      _mm_prefetch(reinterpret_cast<const char*>(b + k) + kDotPrefetch, _MM_HINT_T0);
      _mm_prefetch(reinterpret_cast<const char*>(b + k) + kDotPrefetch + 64, _MM_HINT_T0);
      _mm_prefetch(reinterpret_cast<const char*>(b + k) + kDotPrefetch + 128, _MM_HINT_T0);
      _mm_prefetch(reinterpret_cast<const char*>(b + k) + kDotPrefetch + 192, _MM_HINT_T0);
      s0 = _mm512_dpbf16_ps(s0, (__m512bh)_mm512_loadu_si512(a + k), (__m512bh)_mm512_loadu_si512(b + k));
      s1 = _mm512_dpbf16_ps(s1, (__m512bh)_mm512_loadu_si512(a + k + 32), (__m512bh)_mm512_loadu_si512(b + k + 32));
      s2 = _mm512_dpbf16_ps(s2, (__m512bh)_mm512_loadu_si512(a + k + 64), (__m512bh)_mm512_loadu_si512(b + k + 64));
      s3 = _mm512_dpbf16_ps(s3, (__m512bh)_mm512_loadu_si512(a + k + 96), (__m512bh)_mm512_loadu_si512(b + k + 96));
    }
    for (; k < K; k += 32) {
      const int64_t left = K - k;
      const __mmask32 mk = left >= 32 ? __mmask32(0xffffffffu) : __mmask32((1u << left) - 1);
      s0 = _mm512_dpbf16_ps(s0, (__m512bh)_mm512_loadu_si512(a + k), (__m512bh)_mm512_maskz_loadu_epi16(mk, b + k));
    }
    const float d = p.alpha * _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(s0, s1), _mm512_add_ps(s2, s3)));
    c[n] = p.beta == 0.f ? d : d + p.beta * c[n];
  }
}

void dot_block_dp(const Problem& p, int64_t m0, int64_t m1, int64_t n0, int64_t n1) {
  // A rows m0..m1 in bf16 (nearest even), each padded with zeros to a multiple of 32 (this thread's copy)
  const int64_t ka = round_up(p.K, 32);
  uint16_t* abf = static_cast<uint16_t*>(thread_scratch(0, sizeof(uint16_t) * (m1 - m0) * ka));
  for (int64_t i = m0; i < m1; ++i)
    for (int64_t k = 0; k < ka; k += 32) {
      const float* a = p.A + i * p.lda + k;
      const __m512 lo = _mm512_maskz_loadu_ps(lanes(p.K - k), a);
      const __m512 hi = _mm512_maskz_loadu_ps(lanes(p.K - k - 16), a + 16);
      _mm512_storeu_si512(abf + (i - m0) * ka + k, (__m512i)_mm512_cvtne2ps_pbh(hi, lo));
    }
  const uint16_t* rows = abf - m0 * ka;  // indexed by the absolute row
  if (m1 - m0 == 1) return dot_row1_dp(p, rows + m0 * ka, m0, n0, n1);
  for (int64_t i = m0; i < m1;) {
    switch (std::min<int64_t>(4, m1 - i)) {
      case 4: dot_rows_dp<4>(p, rows, ka, i, n0, n1), i += 4; break;
      case 3: dot_rows_dp<3>(p, rows, ka, i, n0, n1), i += 3; break;
      case 2: dot_rows_dp<2>(p, rows, ka, i, n0, n1), i += 2; break;
      default: dot_rows_dp<1>(p, rows, ka, i, n0, n1), i += 1; break;
    }
  }
}

// One f32 row of A against B rows one after another (batch-1 decode), as dot_row1_dp: one sequential
// stream of weights, four accumulators; a bf16 B is widened (the vdpbf16ps path is dot_row1_dp).
template <bool BF16>
void dot_row1(const Problem& p, int64_t i0, int64_t n0, int64_t n1) {
  constexpr int64_t esz = BF16 ? 2 : 4;
  const char* Bbase = static_cast<const char*>(p.B);
  const float* a = p.A + i0 * p.lda;
  const int64_t K = p.K, K64 = K / 64 * 64;
  float* c = p.C + i0 * p.ldc;
  for (int64_t n = n0; n < n1; ++n) {
    const char* b = Bbase + n * p.ldb * esz;
    __m512 s0 = _mm512_setzero_ps(), s1 = _mm512_setzero_ps(), s2 = _mm512_setzero_ps(), s3 = _mm512_setzero_ps();
    int64_t k = 0;
    for (; k < K64; k += 64) {
      for (int64_t off = 0; off < 64 * esz; off += 64) _mm_prefetch(b + k * esz + kDotPrefetch + off, _MM_HINT_T0);
      s0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + k), load_b16<BF16>(b, k, 0xffff), s0);
      s1 = _mm512_fmadd_ps(_mm512_loadu_ps(a + k + 16), load_b16<BF16>(b, k + 16, 0xffff), s1);
      s2 = _mm512_fmadd_ps(_mm512_loadu_ps(a + k + 32), load_b16<BF16>(b, k + 32, 0xffff), s2);
      s3 = _mm512_fmadd_ps(_mm512_loadu_ps(a + k + 48), load_b16<BF16>(b, k + 48, 0xffff), s3);
    }
    for (; k < K; k += 16) {
      const __mmask16 mk = lanes(K - k);
      s0 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(mk, a + k), load_b16<BF16>(b, k, mk), s0);
    }
    const float d = p.alpha * _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(s0, s1), _mm512_add_ps(s2, s3)));
    c[n] = p.beta == 0.f ? d : d + p.beta * c[n];
  }
}

template <bool BF16>
void dot_block(const Problem& p, int64_t m0, int64_t m1, int64_t n0, int64_t n1) {
  if (m1 - m0 == 1) return dot_row1<BF16>(p, m0, n0, n1);
  for (int64_t i = m0; i < m1;) {
    switch (std::min<int64_t>(4, m1 - i)) {
      case 4: dot_rows<4, BF16>(p, i, n0, n1), i += 4; break;
      case 3: dot_rows<3, BF16>(p, i, n0, n1), i += 3; break;
      case 2: dot_rows<2, BF16>(p, i, n0, n1), i += 2; break;
      default: dot_rows<1, BF16>(p, i, n0, n1), i += 1; break;
    }
  }
}

}  // namespace

Variant variant_avx512_f32() { return {&goto_block<MainF32>, MainF32::MR, MainF32::NR, "avx512 f32"}; }
Variant variant_avx512_f32_narrow() {
  return {&goto_block<NarrowF32>, NarrowF32::MR, NarrowF32::NR, "avx512 f32 narrow"};
}
Variant variant_avx512_dot(bool b_bf16, bool dpbf16) {
  if (b_bf16 && dpbf16) return {&dot_block_dp, 1, 4, "avx512 dot dpbf16", false};
  return {b_bf16 ? &dot_block<true> : &dot_block<false>, 1, 4, "avx512 dot", false};
}
Variant variant_avx512_dpbf16() { return {&goto_block<MainBf16>, MainBf16::MR, MainBf16::NR, "avx512 dpbf16"}; }

}  // namespace sw::cpu::gemm
#endif  // SW_HAVE_AVX512_BUILD
