// CPU GEMM: argument handling, ISA dispatch, the split across threads, and the portable kernel.
// The vector kernels live in gemm_avx512.cpp / gemm_avx2.cpp; the blocked driver in gemm_internal.h.
#include "cpu/gemm.h"

#include <cstdlib>
#include <memory>
#include <new>

#include "cpu/gemm_internal.h"
#include "cpu/isa.h"
#include "cpu/threadpool.h"

namespace sw::cpu {
namespace gemm {

// ---- per-thread scratch

namespace {
struct Scratch {
  struct Buf {
    void* ptr = nullptr;
    size_t cap = 0;
  } buf[4];  // 0, 1: A and B panels; 2, 3: the second product's
  ~Scratch() {
    for (auto& b : buf) std::free(b.ptr);
  }
};
}  // namespace

void* thread_scratch(int slot, size_t bytes) {
  thread_local Scratch s;
  Scratch::Buf& b = s.buf[slot];
  if (bytes > b.cap) {
    std::free(b.ptr);
    // Grow with headroom so a sequence of slightly larger problems does not reallocate each time;
    // aligned_alloc wants a multiple of the alignment. +64: kernels may prefetch just past a panel.
    size_t cap = (std::max(bytes, b.cap + b.cap / 2) + 64 + 63) & ~size_t(63);
    b.ptr = std::aligned_alloc(64, cap);
    if (!b.ptr) throw std::bad_alloc();
    b.cap = cap - 64;
  }
  return b.ptr;
}

// ---- portable kernel: a 4x8 tile in plain loops. The compiler vectorizes the j loop for whatever the
// baseline target offers (SSE2 on x86-64, NEON on arm64): 32 accumulators = 8 vector registers plus
// B and the broadcast, which fits the 16 registers of SSE2 (a 4x16 tile spills there and runs at a
// third of the speed). Correctness first: same driver and packing as the vector builds.

namespace {

struct ScalarKernel {
  using Word = float;
  using SecondKT = ScalarKernel;
  static constexpr int MR = 4, NR = 8, KSTEP = 1;
  static constexpr int64_t MC = 128, KC = 256, NC = 2048;

  static void pack_a(const Problem& p, int64_t i0, int64_t mc, int64_t k0, int64_t kc, float* dst) {
    pack_a_f32<MR>(p, i0, mc, k0, kc, dst);
  }
  static void pack_b(const Problem& p, int64_t k0, int64_t kc, int64_t j0, int64_t nc, float* dst) {
    if (p.b_bf16)
      pack_b_f32<NR, uint16_t>(p, k0, kc, j0, nc, dst);
    else
      pack_b_f32<NR, float>(p, k0, kc, j0, nc, dst);
  }

  static constexpr bool DIRECT = false;  // always packs: keeps the portable path simple

  // a: ks x MR panel (stride as = MR), b: ks x NR panel (stride bs = NR); C[m x n] = alpha*a·b + beta*C.
  template <bool AROW>
  static void micro(int64_t ks, const float* a, int64_t as, const float* b, int64_t bs, float* c, int64_t ldc,
                    float alpha, float beta, int m, int n) {
    static_assert(!AROW, "the portable kernel reads packed A only");
    float acc[MR][NR] = {};
    for (int64_t k = 0; k < ks; ++k, a += as, b += bs)
      for (int i = 0; i < MR; ++i)
        for (int j = 0; j < NR; ++j) acc[i][j] += a[i] * b[j];
    for (int i = 0; i < m; ++i) {
      float* ci = c + i * ldc;
      if (beta == 0.f)
        for (int j = 0; j < n; ++j) ci[j] = alpha * acc[i][j];
      else
        for (int j = 0; j < n; ++j) ci[j] = alpha * acc[i][j] + beta * ci[j];
    }
  }
};

}  // namespace

Variant variant_scalar() {
  return {&goto_block<ScalarKernel>, ScalarKernel::MR, ScalarKernel::NR, "scalar 4x8"};
}

// ---- dispatch and threading

namespace {

Variant pick_variant(const Problem& p) {
  (void)p;  // only the AVX-512 build looks at the shape
  switch (active_isa()) {
#if defined(SW_HAVE_AVX512_BUILD)
    case Isa::Avx512:
      // A few rows against a transposed weight (token-by-token generation): dot products of
      // contiguous rows, nothing packed.
      if (p.M <= 4 && !p.trans_a && p.trans_b) return variant_avx512_dot(p.b_bf16, use_avx512_bf16());
      // N <= 16 (LoRA rank): a 16-wide tile wastes nothing, and A is read in place. Each A element
      // feeds only N multiply-adds, so rounding A to bf16 for vdpbf16ps would cost more than it
      // saves: a bf16 B takes the f32 path here too (widened while packing).
      if (p.N <= 16) return variant_avx512_f32_narrow();
      return p.b_bf16 && use_avx512_bf16() ? variant_avx512_dpbf16() : variant_avx512_f32();
#endif
#if defined(SW_HAVE_AVX2_BUILD)
    case Isa::Avx2:
      return variant_avx2();
#endif
    default:
      return variant_scalar();
  }
}

// C = beta * C (K == 0 or alpha == 0: the product contributes nothing; beta == 0 writes zeros
// without reading C, so NaN/garbage in C does not survive).
void scale_c(const Problem& p) {
  for (int64_t i = 0; i < p.M; ++i) {
    float* c = p.C + i * p.ldc;
    if (p.beta == 0.f)
      std::fill(c, c + p.N, 0.f);
    else if (p.beta != 1.f)
      for (int64_t j = 0; j < p.N; ++j) c[j] *= p.beta;
  }
}

// How C is cut into a tm x tn grid of rectangles, one per thread (each runs the whole blocked
// algorithm on its rectangle with its own packing buffers: no synchronization inside a GEMM).
struct Grid {
  int tm = 1, tn = 1;
};

// Picks the grid minimizing the slowest thread's estimated time: its padded multiply-adds (tiles are
// MR x NR, so slivers waste work) plus its packing (A is re-packed once per NC block of its columns,
// B once). Small problems use fewer threads: a thread must get enough work to pay for waking it.
Grid choose_grid(const Problem& p, const Variant& v, int nt) {
  const double work = double(p.M) * double(p.N) * double(p.K);
  // Measured here (pool threads spinning between back-to-back calls): two threads beat one from about
  // 64k multiply-adds (40^3, ~1 us of work) on; below that the hand-off costs what it saves.
  nt = static_cast<int>(std::min<double>(nt, std::max(1.0, work / (32.0 * 1024))));
  if (work < 64.0 * 1024) nt = 1;
  Grid best;
  double best_cost = 1e300;
  for (int tm = 1; tm <= nt; ++tm) {
    for (int tn = 1; tm * tn <= nt; ++tn) {
      const int64_t rows = round_up(ceil_div(p.M, tm), v.mr), cols = round_up(ceil_div(p.N, tn), v.nr);
      if ((tm > 1 && rows * (tm - 1) >= p.M) || (tn > 1 && cols * (tn - 1) >= p.N)) continue;  // idle slices
      const double compute = double(rows) * double(cols) * double(p.K) / 16.0;  // ~16 MACs per cycle
      const double packing = double(p.K) * (double(rows) * double(ceil_div(cols, 1536)) + double(cols));  // NC ~1536
      const double cost = compute + packing;
      if (cost < best_cost * 0.999) {  // prefer fewer threads on a tie
        best_cost = cost;
        best = {tm, tn};
      }
    }
  }
  return best;
}

void run(const Problem& p, const Variant& v);

void run(const Problem& p) {
  if (p.M <= 0 || p.N <= 0) return;
  if (p.K <= 0 || p.alpha == 0.f) {
    scale_c(p);
    return;
  }
  run(p, pick_variant(p));
}

// C = alpha·op(A)·op(B) + alpha2·A2·op(B2) + beta·C (gemm.h SecondProduct): in one pass where the
// chosen kernel is the blocked one, else (the decode dot products, an empty first product) as two.
void run_with_second(Problem p, const SecondProduct* second) {
  if (!second || second->K <= 0 || second->alpha == 0.f) return run(p);
  if (p.M <= 0 || p.N <= 0) return;
  const Variant v = pick_variant(p);
  if (p.K <= 0 || p.alpha == 0.f || !v.goto_blocked) {
    run(p);
    Problem q;
    q.trans_b = second->trans_b, q.M = p.M, q.N = p.N, q.K = second->K, q.alpha = second->alpha, q.beta = 1.f;
    q.A = second->A, q.lda = second->lda, q.B = second->B, q.ldb = second->ldb, q.b_bf16 = false;
    q.C = p.C, q.ldc = p.ldc;
    return run(q);
  }
  p.A2 = second->A, p.lda2 = second->lda, p.B2 = second->B, p.ldb2 = second->ldb, p.trans_b2 = second->trans_b;
  p.K2 = second->K, p.alpha2 = second->alpha;
  run(p, v);
}

void run(const Problem& p, const Variant& v) {
  const Grid g = choose_grid(p, v, num_threads());
  if (g.tm * g.tn == 1) {
    v.block(p, 0, p.M, 0, p.N);
    return;
  }
  // Rectangle edges on tile boundaries (except the last), balanced in tiles.
  const int64_t mt = ceil_div(p.M, v.mr), ntl = ceil_div(p.N, v.nr);
  parallel_for(int64_t(g.tm) * g.tn, [&](int64_t t, int) {
    const int64_t a = t / g.tn, b = t % g.tn;
    const int64_t m0 = std::min(p.M, mt * a / g.tm * v.mr), m1 = std::min(p.M, mt * (a + 1) / g.tm * v.mr);
    const int64_t n0 = std::min(p.N, ntl * b / g.tn * v.nr), n1 = std::min(p.N, ntl * (b + 1) / g.tn * v.nr);
    v.block(p, m0, m1, n0, n1);
  });
}

}  // namespace
}  // namespace gemm

void gemm_f32(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
              int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc, const SecondProduct* second) {
  gemm::Problem p;
  p.trans_a = trans_a, p.trans_b = trans_b, p.M = M, p.N = N, p.K = K, p.alpha = alpha, p.beta = beta;
  p.A = A, p.lda = lda, p.B = B, p.ldb = ldb, p.b_bf16 = false, p.C = C, p.ldc = ldc;
  gemm::run_with_second(p, second);
}

void gemm_f32_bf16(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
                   int64_t lda, const uint16_t* B, int64_t ldb, float beta, float* C, int64_t ldc,
                   const SecondProduct* second) {
  gemm::Problem p;
  p.trans_a = trans_a, p.trans_b = trans_b, p.M = M, p.N = N, p.K = K, p.alpha = alpha, p.beta = beta;
  p.A = A, p.lda = lda, p.B = B, p.ldb = ldb, p.b_bf16 = true, p.C = C, p.ldc = ldc;
  gemm::run_with_second(p, second);
}

}  // namespace sw::cpu
