// Internals of the CPU GEMM (cpu/gemm.h): the problem descriptor, the per-ISA entry points, and the
// GotoBLAS-style blocked driver (plus portable f32 packing) that every ISA build instantiates with
// its own micro-kernel and packers.
//
// Layout of the algorithm (one thread, one rectangle C[m0:m1, n0:n1], all of K):
//
//   for jc in [n0, n1) step NC                 B block  : KC x NC, packed once, lives in L2/L3
//     for pc in [0, K) step KC                 (beta is applied on the first pc block only)
//       pack op(B)[pc:pc+KC, jc:jc+NC] into NR-column panels
//       for ic in [m0, m1) step MC             A block  : MC x KC, packed, lives in L2
//         pack op(A)[ic:ic+MC, pc:pc+KC] into MR-row panels
//         for jr step NR, for ir step MR:      micro-kernel: MR x NR tile of C, registers only
//
// Packing absorbs both transposes (one micro-kernel serves all four cases) and zero-pads partial
// panels, so the micro-kernel always runs a full MR x NR tile and only its store is masked. When a
// panel would be used only once or twice (LoRA rank 16), f32 operands are read in place instead (see
// goto_block). The dispatcher (gemm.cpp) cuts C into one rectangle per thread.
//
// A "k-step" is one rank-1 (f32) or rank-2 (bf16 pair, vdpbf16ps) update. Packed panels are made
// of 32-bit words in both cases: an A panel is ksteps x MR words, a B panel ksteps x NR words, where a
// word is an f32 or a (k even, k odd) pair of bf16 (low half = even k, as vdpbf16ps expects).
//
// ODR note: everything below the entry-point declarations sits in an anonymous namespace on purpose.
// This header is included by translation units compiled with different -m flags; with internal
// linkage each one keeps its own copy, so the linker can never pick an AVX-512-compiled copy of a
// helper for the portable or AVX2 build (which would SIGILL on an older CPU).
#pragma once
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>

namespace sw::cpu::gemm {

// One GEMM call (see gemm.h for the semantics). B is f32 or bf16 (b_bf16).
struct Problem {
  bool trans_a = false, trans_b = false;
  int64_t M = 0, N = 0, K = 0;
  float alpha = 1.f, beta = 0.f;
  const float* A = nullptr;
  int64_t lda = 0;
  const void* B = nullptr;
  int64_t ldb = 0;
  bool b_bf16 = false;
  float* C = nullptr;
  int64_t ldc = 0;
  // The second product (gemm.h SecondProduct): C += alpha2 · A2[M, K2] · op(B2); K2 = 0: none. Only
  // goto_block computes it (the dispatcher runs it separately for other block functions).
  const float* A2 = nullptr;
  int64_t lda2 = 0;
  const float* B2 = nullptr;
  int64_t ldb2 = 0;
  bool trans_b2 = false;
  int64_t K2 = 0;
  float alpha2 = 1.f;
};

// Computes C[m0:m1, n0:n1] over all of K, single-threaded (the dispatcher splits C across threads).
using BlockFn = void (*)(const Problem& p, int64_t m0, int64_t m1, int64_t n0, int64_t n1);

// A kernel family: its block function and its register tile, which the dispatcher uses to cut C into
// per-thread rectangles on tile boundaries.
struct Variant {
  BlockFn block = nullptr;
  int mr = 1, nr = 1;
  const char* name = "";
  bool goto_blocked = true;  // block is goto_block<...>: it computes a second product (Problem::K2)
};

// Per-ISA variants. dpbf16: use the AVX512-BF16 kernel for bf16 B (A rounded to bf16); otherwise a
// bf16 B is widened to f32 while packing and the f32 kernel runs.
Variant variant_scalar();
#if defined(SW_HAVE_AVX2_BUILD)
Variant variant_avx2();
#endif
#if defined(SW_HAVE_AVX512_BUILD)
Variant variant_avx512_f32();
Variant variant_avx512_f32_narrow();  // N <= 16 (LoRA rank): a 16-column tile, A read in place
Variant variant_avx512_dpbf16();
// M <= 4, plain A, transposed B: row-by-row dot products (dpbf16: vdpbf16ps on A rounded to bf16)
Variant variant_avx512_dot(bool b_bf16, bool dpbf16);
#endif

// Per-thread packing scratch, 64-byte aligned, grown on demand and kept for the thread's lifetime
// (the pool's threads are persistent, so steady-state GEMMs allocate nothing). slot 0 = A, 1 = B.
void* thread_scratch(int slot, size_t bytes);

namespace {  // internal linkage: see the ODR note above

inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }
inline int64_t round_up(int64_t a, int64_t b) { return ceil_div(a, b) * b; }

// bf16 -> f32, as core/half.h; a local copy so that no inline function with external linkage gets
// compiled under ISA flags (see the ODR note).
inline float bf16_bits_to_f32(uint16_t h) {
  uint32_t u = static_cast<uint32_t>(h) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

inline float load_as_f32(const float* p) { return *p; }
inline float load_as_f32(const uint16_t* p) { return bf16_bits_to_f32(*p); }

// ---- Portable f32 packing (the portable and AVX2 kernels; each build compiles it with its own
// flags). The AVX-512 build has its own packers, including the bf16 pair layout.

// op(A)[i0:i0+mc, k0:k0+kc] -> ceil(mc/MR) panels of kc x MR floats; rows past mc are zero.
template <int MR>
void pack_a_f32(const Problem& p, int64_t i0, int64_t mc, int64_t k0, int64_t kc, float* dst) {
  for (int64_t r = 0; r < mc; r += MR, dst += kc * MR) {
    const int mr = static_cast<int>(std::min<int64_t>(MR, mc - r));
    if (!p.trans_a) {
      // A[i, k] row-major: read each row contiguously, write with stride MR.
      for (int i = 0; i < mr; ++i) {
        const float* src = p.A + (i0 + r + i) * p.lda + k0;
        for (int64_t k = 0; k < kc; ++k) dst[k * MR + i] = src[k];
      }
    } else {
      // A stored [K, M]: an MR-row slice of op(A) column k is contiguous.
      for (int64_t k = 0; k < kc; ++k) {
        const float* src = p.A + (k0 + k) * p.lda + i0 + r;
        for (int i = 0; i < mr; ++i) dst[k * MR + i] = src[i];
      }
    }
    if (mr < MR)
      for (int64_t k = 0; k < kc; ++k)
        for (int i = mr; i < MR; ++i) dst[k * MR + i] = 0.f;
  }
}

// op(B)[k0:k0+kc, j0:j0+nc] -> ceil(nc/NR) panels of kc x NR floats; columns past nc are zero.
// TB is float or uint16_t (bf16, widened here so the f32 kernel runs on it).
template <int NR, class TB>
void pack_b_f32(const Problem& p, int64_t k0, int64_t kc, int64_t j0, int64_t nc, float* dst) {
  const TB* B = static_cast<const TB*>(p.B);
  for (int64_t c = 0; c < nc; c += NR, dst += kc * NR) {
    const int nr = static_cast<int>(std::min<int64_t>(NR, nc - c));
    if (!p.trans_b) {
      // B[k, n] row-major: an NR-column slice of row k is contiguous.
      for (int64_t k = 0; k < kc; ++k) {
        const TB* src = B + (k0 + k) * p.ldb + j0 + c;
        float* d = dst + k * NR;
        for (int j = 0; j < nr; ++j) d[j] = load_as_f32(src + j);
        for (int j = nr; j < NR; ++j) d[j] = 0.f;
      }
    } else {
      // B stored [N, K]: read each column of op(B) contiguously, write with stride NR.
      for (int j = 0; j < nr; ++j) {
        const TB* src = B + (j0 + c + j) * p.ldb + k0;
        for (int64_t k = 0; k < kc; ++k) dst[k * NR + j] = load_as_f32(src + k);
      }
      if (nr < NR)
        for (int64_t k = 0; k < kc; ++k)
          for (int j = nr; j < NR; ++j) dst[k * NR + j] = 0.f;
    }
  }
}

// ---- The blocked driver. KT (kernel traits) provides:
//   Word              float (f32 panels) or uint32_t (bf16 pair panels)
//   MR, NR            register tile
//   KSTEP             k values per k-step (1: f32 words, 2: bf16 pairs)
//   MC, KC, NC        cache blocking (MC % MR == 0, NC % NR == 0, KC % KSTEP == 0)
//   DIRECT            whether the micro-kernel can read f32 A / B in place (below); KSTEP == 1 only
//   pack_a(p, i0, mc, k0, kc, Word* dst), pack_b(p, k0, kc, j0, nc, Word* dst)
//   micro<AROW>(ksteps, a, as, b, bs, c, ldc, alpha, beta, m, n): C[m x n] = alpha*acc + beta*C
//     (beta == 0: C not read), m <= MR, n <= NR; the tile is always computed in full.
//     A element (i, s) of k-step s: AROW ? a[i*as + s] : a[i + s*as]   (packed: as = MR)
//     B words of k-step s: b[s*bs .. s*bs + NR)                          (packed: bs = NR)
//
// In-place operands: packing pays off when a panel is reused; a thread whose rectangle is only a
// couple of tiles wide (LoRA: N = r = 16) uses each A panel once or twice, so packing A would cost
// as much as the multiply. Then full MR-row panels of A are read in place (row-major with stride lda
// or, transposed, k-major with stride lda) and only a partial last panel is packed (the kernel
// always reads MR rows, which must not run past A). Likewise full panels of a plain f32 B (rows of
// NR contiguous floats, stride ldb) when the rectangle is only a couple of tiles tall (M = r = 16).
template <class KT>
void goto_block(const Problem& p, int64_t m0, int64_t m1, int64_t n0, int64_t n1) {
  using Word = typename KT::Word;
  constexpr int MR = KT::MR, NR = KT::NR, KSTEP = KT::KSTEP;
  // Packing rounds blocks up to whole panels: the scratch sizes below rely on these.
  static_assert(KT::MC % MR == 0 && KT::NC % NR == 0 && KT::KC % KSTEP == 0, "blocks must be whole panels");
  const int64_t M = m1 - m0, N = n1 - n0;
  if (M <= 0 || N <= 0) return;
  // Smaller problems get smaller blocks, so the scratch and the packing stay proportional.
  const int64_t MC = std::min<int64_t>(KT::MC, round_up(M, MR));
  const int64_t NC = std::min<int64_t>(KT::NC, round_up(N, NR));
  // K blocks of equal size (K = 576 with KC = 512 runs 288 + 288, not 512 + 64: a thin last block
  // pays the C tile load/store of a full one for little work).
  const int64_t KC = round_up(ceil_div(p.K, ceil_div(p.K, KT::KC)), KSTEP);
  Word* abuf = static_cast<Word*>(thread_scratch(0, sizeof(Word) * MC * (KC / KSTEP)));
  Word* bbuf = static_cast<Word*>(thread_scratch(1, sizeof(Word) * NC * (KC / KSTEP)));
  // The second product (f32 operands) on KT::SecondKT, a kernel of the same register tile: packed in
  // its own panels (K2 is small, one block) and applied to each C tile right after the last K block of
  // the first, while the tile is in L1.
  using KT2 = typename KT::SecondKT;
  using Word2 = typename KT2::Word;
  static_assert(KT2::MR == MR && KT2::NR == NR && KT2::KSTEP == 1, "the second product updates the same C tiles");
  const bool second = p.K2 > 0;
  Problem p2;
  p2.trans_b = p.trans_b2, p2.M = p.M, p2.N = p.N, p2.K = p.K2;
  p2.A = p.A2, p2.lda = p.lda2, p2.B = p.B2, p2.ldb = p.ldb2, p2.b_bf16 = false;
  const int64_t ks2 = p.K2;
  Word2* a2buf = second ? static_cast<Word2*>(thread_scratch(2, sizeof(Word2) * MC * ks2)) : nullptr;
  Word2* b2buf = second ? static_cast<Word2*>(thread_scratch(3, sizeof(Word2) * NC * ks2)) : nullptr;
  const bool direct_a = KT::DIRECT && N <= 2 * NR && !second;
  const bool direct_b = KT::DIRECT && M <= 2 * MR && !p.trans_b && !p.b_bf16 && !second;
  const float* A = p.A;
  const float* B = static_cast<const float*>(p.B);  // read in place only when f32

  for (int64_t jc = n0; jc < n1; jc += NC) {
    const int64_t nc = std::min(NC, n1 - jc), nc_full = direct_b ? nc / NR * NR : 0;
    if (second) KT2::pack_b(p2, 0, p.K2, jc, nc, b2buf);
    for (int64_t pc = 0; pc < p.K; pc += KC) {
      const int64_t kc = std::min(KC, p.K - pc);
      const bool last = second && pc + kc >= p.K;
      const int64_t ks = ceil_div(kc, KSTEP);
      const float beta = pc == 0 ? p.beta : 1.f;  // later K blocks accumulate onto C
      // Packed B: all panels, or (direct_b) just the partial last one, at the start of bbuf.
      if (nc > nc_full) KT::pack_b(p, pc, kc, jc + nc_full, nc - nc_full, bbuf);
      for (int64_t ic = m0; ic < m1; ic += MC) {
        const int64_t mc = std::min(MC, m1 - ic), mc_full = direct_a ? mc / MR * MR : 0;
        if (mc > mc_full) KT::pack_a(p, ic + mc_full, mc - mc_full, pc, kc, abuf);
        if (last) KT2::pack_a(p2, ic, mc, 0, p.K2, a2buf);
        // jr outer: one B micro-panel stays hot in L1 while the A block (L2) streams past it.
        for (int64_t jr = 0; jr < nc; jr += NR) {
          const int n = static_cast<int>(std::min<int64_t>(NR, nc - jr));
          const Word* bp;
          int64_t bs;
          if (jr < nc_full) {  // in place (f32 only; Word is float then)
            bp = reinterpret_cast<const Word*>(B + pc * p.ldb + jc + jr);
            bs = p.ldb;
          } else {
            bp = bbuf + ((jr - nc_full) / NR) * ks * NR;
            bs = NR;
          }
          float* c = p.C + ic * p.ldc + jc + jr;
          for (int64_t ir = 0; ir < mc; ir += MR, c += MR * p.ldc) {
            const int m = static_cast<int>(std::min<int64_t>(MR, mc - ir));
            if (ir < mc_full) {
              if constexpr (KT::DIRECT) {
                if (p.trans_a)  // A stored [K, M]: k-major, stride lda
                  KT::template micro<false>(ks, A + pc * p.lda + ic + ir, p.lda, bp, bs, c, p.ldc, p.alpha, beta, m, n);
                else  // row-major A, stride lda between rows
                  KT::template micro<true>(ks, A + (ic + ir) * p.lda + pc, p.lda, bp, bs, c, p.ldc, p.alpha, beta, m, n);
              }
            } else {
              KT::template micro<false>(ks, abuf + ((ir - mc_full) / MR) * ks * MR, MR, bp, bs, c, p.ldc, p.alpha,
                                        beta, m, n);
            }
            if (last)  // the tile is still in L1
              KT2::template micro<false>(ks2, a2buf + (ir / MR) * ks2 * MR, MR, b2buf + (jr / NR) * ks2 * NR, NR, c,
                                         p.ldc, p.alpha2, 1.f, m, n);
          }
        }
      }
    }
  }
}

}  // namespace
}  // namespace sw::cpu::gemm
