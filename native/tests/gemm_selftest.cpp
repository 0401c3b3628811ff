// Standalone check and benchmark of the CPU GEMM (cpu/gemm.h).
//
//   gemm_selftest            correctness: every ISA this CPU/build runs (forced through force_isa),
//                            f32 and bf16 B (dpbf16 and the widening fallback), all four transpose
//                            cases, awkward sizes, padded leading dims, unaligned inputs, alpha/beta
//                            (beta == 0 with NaN in C), 1/2/3 threads; against an fp64 reference.
//                            Every matrix sits against an inaccessible page, so an out-of-bounds read
//                            or write faults.
//   gemm_selftest bench [reps] [M N K ta tb ...]
//                            GFLOP/s (best of reps) of f32, bf16 with vdpbf16ps, bf16 widened, on the
//                            LoRA-training shapes (or the given ones), active ISA (STARWEAVE_ISA=avx2
//                            to pick another), pool threads (STARWEAVE_NUM_THREADS).
//
// Build (x86, from the repo root; outputs outside the repo):
//   g++ -O3 -std=c++17 -Inative -DSW_HAVE_AVX512_BUILD=1 -DSW_HAVE_AVX2_BUILD=1 -c native/cpu/gemm_avx512.cpp
//       -mavx512f -mavx512bw -mavx512dq -mavx512vl -mavx512bf16 -mfma -mf16c -mbmi2 -o /tmp/g512.o
//   g++ ... -c native/cpu/gemm_avx2.cpp -mavx2 -mfma -mf16c -mbmi2 -o /tmp/g2.o
//   g++ -O3 -std=c++17 -Inative -DSW_HAVE_AVX512_BUILD=1 -DSW_HAVE_AVX2_BUILD=1 native/cpu/gemm.cpp
//       native/cpu/isa.cpp native/cpu/threadpool.cpp native/tests/gemm_selftest.cpp /tmp/g512.o /tmp/g2.o
//       -pthread -o /tmp/gemm_selftest
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include <sys/mman.h>
#include <unistd.h>

#include "core/half.h"
#include "cpu/gemm.h"
#include "cpu/isa.h"
#include "cpu/threadpool.h"

using sw::cpu::Isa;

namespace {

struct Case {
  int64_t M, N, K;
  bool ta, tb;
  float alpha, beta;
  int pad;       // extra elements per row in lda/ldb/ldc
  bool bf16;     // B is bf16
  bool dpbf16;   // the product uses vdpbf16ps (A rounded to bf16)
};

std::mt19937 rng(12345);

float randf() { return std::uniform_real_distribution<float>(-1.f, 1.f)(rng); }

int g_failures = 0, g_cases = 0;

// Memory for one matrix with an inaccessible page right after its last element (or, guard_front,
// right before its first): a kernel that reads or writes past the matrix faults instead of passing
// silently. At the back the start is misaligned by whatever the size leaves (inputs may be mapped
// weights at any address).
class Guarded {
 public:
  Guarded(size_t bytes, bool guard_front) {
    const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
    span_ = (bytes + page - 1) / page * page + 2 * page;
    base_ = static_cast<char*>(mmap(nullptr, span_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
    if (base_ == MAP_FAILED) std::abort();
    mprotect(base_, page, PROT_NONE);
    mprotect(base_ + span_ - page, page, PROT_NONE);
    data_ = guard_front ? base_ + page : base_ + span_ - page - bytes;
  }
  ~Guarded() { munmap(base_, span_); }
  Guarded(const Guarded&) = delete;
  Guarded& operator=(const Guarded&) = delete;
  template <class T>
  T* as() const { return reinterpret_cast<T*>(data_); }

 private:
  char* base_ = nullptr;
  char* data_ = nullptr;
  size_t span_ = 0;
};

// Elements a rows x cols matrix with leading dimension ld spans (the last row ends at cols).
int64_t span(int64_t rows, int64_t cols, int64_t ld) { return rows == 0 || cols == 0 ? 0 : (rows - 1) * ld + cols; }

// Runs one case; returns false (and prints) on a mismatch or a write outside C's m x n region.
bool run_case(const Case& c) {
  ++g_cases;
  const int64_t M = c.M, N = c.N, K = c.K;
  const int64_t arows = c.ta ? K : M, acols = c.ta ? M : K;
  const int64_t brows = c.tb ? N : K, bcols = c.tb ? K : N;
  const int64_t lda = acols + c.pad, ldb = bcols + c.pad, ldc = N + c.pad;
  const int64_t na = span(arows, acols, lda), nb = span(brows, bcols, ldb), nc = span(M, N, ldc);
  const bool front = g_cases % 2 == 0;  // alternate which end of each matrix is guarded
  Guarded ga(na * 4, front), gbf(nb * 4, front), gbh(nb * 2, front), gc(nc * 4, front);
  float* A = ga.as<float>();
  float* Bf = gbf.as<float>();  // the f32 B, or the bf16 B widened (the reference reads this one)
  uint16_t* Bh = gbh.as<uint16_t>();
  float* C = gc.as<float>();
  for (int64_t i = 0; i < na; ++i) A[i] = randf();
  for (int64_t i = 0; i < nb; ++i) {
    Bh[i] = sw::f32_to_bf16(randf());
    Bf[i] = c.bf16 ? sw::bf16_to_f32(Bh[i]) : randf();
  }
  const float sentinel = 12345.f;
  for (int64_t i = 0; i < nc; ++i) C[i] = sentinel;
  std::vector<float> c0(M * N);
  for (int64_t i = 0; i < M; ++i)
    for (int64_t j = 0; j < N; ++j) {
      // beta == 0 must not read C: put NaN there so a read would show.
      C[i * ldc + j] = c.beta == 0.f ? std::numeric_limits<float>::quiet_NaN() : randf();
      c0[i * N + j] = C[i * ldc + j];
    }

  if (c.bf16)
    sw::cpu::gemm_f32_bf16(c.ta, c.tb, M, N, K, c.alpha, A, lda, Bh, ldb, c.beta, C, ldc);
  else
    sw::cpu::gemm_f32(c.ta, c.tb, M, N, K, c.alpha, A, lda, Bf, ldb, c.beta, C, ldc);

  bool ok = true;
  double worst = 0;
  for (int64_t i = 0; i < M && ok; ++i) {
    for (int64_t j = 0; j < N; ++j) {
      // s: exact f32 inputs; sr: A rounded to bf16 (what vdpbf16ps multiplies). A dpbf16 case may
      // match either: the dispatcher keeps f32 for shapes where bf16 gains nothing (N <= 16).
      double s = 0, sr = 0, sabs = 0;
      if (c.alpha != 0.f) {
        for (int64_t k = 0; k < K; ++k) {
          const float a = c.ta ? A[k * lda + i] : A[i * lda + k];
          const float b = c.tb ? Bf[j * ldb + k] : Bf[k * ldb + j];
          s += double(a) * b;
          sr += double(sw::bf16_to_f32(sw::f32_to_bf16(a))) * b;
          sabs += std::fabs(double(a) * b);
        }
      }
      const double cin = c.beta == 0.f ? 0.0 : c0[i * N + j];
      const double ref = double(c.alpha) * s + double(c.beta) * cin;
      const double ref_r = double(c.alpha) * sr + double(c.beta) * cin;
      // f32 accumulation bound (K terms, a few roundings in the epilogue), with a 4x margin.
      const double tol = 4.0 * (double(K) + 4) * 6e-8 * (std::fabs(c.alpha) * sabs + std::fabs(c.beta * cin)) + 1e-30;
      const double got = C[i * ldc + j];
      double err = std::fabs(got - ref);
      if (c.dpbf16) err = std::min(err, std::fabs(got - ref_r));
      if (!(err <= tol)) {  // also catches NaN
        std::printf("  MISMATCH at (%lld,%lld): got %.9g want %.9g (tol %.3g)\n", (long long)i, (long long)j, got,
                    ref, tol);
        ok = false;
        break;
      }
      worst = std::max(worst, err / (tol + 1e-300));
    }
  }
  // Nothing outside the m x n region of C may change (the padding between rows; past either end
  // of C a write faults).
  for (int64_t i = 0; N > 0 && i + 1 < M && ok; ++i)
    for (int64_t j = N; j < ldc; ++j)
      if (C[i * ldc + j] != sentinel) {
        std::printf("  write outside C at (%lld,%lld)\n", (long long)i, (long long)j);
        ok = false;
        break;
      }
  if (!ok) {
    ++g_failures;
    std::printf("FAIL isa=%s threads=%d M=%lld N=%lld K=%lld ta=%d tb=%d alpha=%g beta=%g pad=%d bf16=%d dp=%d\n",
                sw::cpu::isa_name(sw::cpu::active_isa()), sw::cpu::num_threads(), (long long)M, (long long)N,
                (long long)K, c.ta, c.tb, c.alpha, c.beta, c.pad, c.bf16, c.dpbf16);
  }
  return ok;
}

void correctness() {
  std::vector<Isa> isas;
  for (Isa i : {Isa::Scalar, Isa::Avx2, Isa::Avx512})
    if (static_cast<int>(i) <= static_cast<int>(sw::cpu::detected_isa())) isas.push_back(i);

  // Shapes: tiny, around the tile sizes (scalar 4x8, AVX2 6x16, AVX-512 8x48 and 8x16), around the
  // cache blocks (AVX-512: MC 128, KC 512 f32 / 1024 bf16, NC 1536; AVX2/scalar: 96/128, 256, 2048),
  // odd K (bf16 pairs), in-place A (N <= 2 tiles) and B (M <= 2 tiles), the dot path (M <= 4 with a
  // transposed B), the LoRA r = 16 shapes.
  std::vector<int64_t> small = {1, 2, 3, 4, 5, 7, 8, 12, 13, 16, 17, 31, 33};
  struct S { int64_t M, N, K; };
  std::vector<S> shapes;
  for (int64_t m : small)
    for (int64_t n : {1, 5, 16, 33, 49})
      for (int64_t k : {1, 2, 7, 33}) shapes.push_back({m, n, k});
  for (S s : std::vector<S>{{0, 5, 7},      {5, 0, 7},      {5, 7, 0},       {0, 0, 0},       {1, 1, 1000},
                            {1000, 1, 7},   {1, 1000, 7},   {145, 47, 385},  {150, 65, 769},  {289, 97, 1000},
                            {100, 2100, 9}, {7, 2049, 3},   {64, 64, 64},    {129, 129, 129}, {48, 96, 96},
                            {200, 16, 577}, {200, 577, 16}, {16, 300, 400},  {37, 53, 1537},  {130, 100, 1030},
                            {17, 1600, 33}, {16, 97, 515},  {24, 200, 1025}, {260, 20, 300},  {1, 3000, 2}})
    shapes.push_back(s);

  for (Isa isa : isas) {
    sw::cpu::force_isa(isa);
    for (int dp = 0; dp < (isa == Isa::Avx512 && sw::cpu::has_avx512_bf16() ? 2 : 1); ++dp) {
      sw::cpu::set_use_avx512_bf16(dp == 1);
      const int before = g_failures, cases_before = g_cases;
      for (int threads : {2, 1, 3}) {
        sw::cpu::set_num_threads(threads);
        for (size_t si = 0; si < shapes.size(); ++si) {
          const S s = shapes[si];
          const bool big = s.M * s.N * s.K > 2000000;
          if (threads != 2 && big) continue;  // big shapes once per ISA
          for (int t = 0; t < 4; ++t) {
            // Cycle alpha/beta/pad deterministically so every shape sees several combinations
            // (alpha == 0, which skips the product, now and then).
            const float betas[] = {0.f, 1.f, 0.25f};
            const float alpha = (si + t) % 5 == 4 ? 0.f : (si + t) % 2 ? -0.5f : 1.f;
            const float beta = betas[(si + 2 * t) % 3];
            const int pad = (si + t) % 3 == 0 ? 0 : (si + t) % 3 == 1 ? 3 : 17;
            for (int bf = 0; bf < 2; ++bf) {
              if (dp == 1 && !bf) continue;  // the dpbf16 switch only affects bf16 B
              Case c{s.M, s.N, s.K, bool(t & 1), bool(t & 2), alpha, beta, pad, bool(bf), dp == 1 && bf};
              run_case(c);
            }
          }
        }
      }
      std::printf("isa=%-6s dpbf16=%d: %d cases, %d failures\n", sw::cpu::isa_name(isa), dp, g_cases - cases_before,
                  g_failures - before);
    }
  }
  sw::cpu::set_num_threads(2);
}

double now() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

// Best-of-reps GFLOP/s of one shape; mode 0 = f32, 1 = bf16 with vdpbf16ps, 2 = bf16 widened.
double bench_one(int64_t M, int64_t N, int64_t K, bool ta, bool tb, int mode, int reps) {
  std::vector<float> A(M * K), B(K * N), C(M * N);
  std::vector<uint16_t> Bh(K * N);
  for (auto& x : A) x = randf();
  for (size_t i = 0; i < B.size(); ++i) {
    B[i] = randf();
    Bh[i] = sw::f32_to_bf16(B[i]);
  }
  const int64_t lda = ta ? M : K, ldb = tb ? K : N;
  sw::cpu::set_use_avx512_bf16(mode == 1);
  auto call = [&] {
    if (mode == 0)
      sw::cpu::gemm_f32(ta, tb, M, N, K, 1.f, A.data(), lda, B.data(), ldb, 0.f, C.data(), N);
    else
      sw::cpu::gemm_f32_bf16(ta, tb, M, N, K, 1.f, A.data(), lda, Bh.data(), ldb, 0.f, C.data(), N);
  };
  call();
  double best = 1e30;
  for (int r = 0; r < reps; ++r) {
    // Small problems: time a batch so the clock resolution does not matter.
    const int inner = std::max<int64_t>(1, int64_t(2e8 / (double(M) * N * K + 1)));
    const double t0 = now();
    for (int i = 0; i < inner; ++i) call();
    best = std::min(best, (now() - t0) / inner);
  }
  return 2.0 * M * N * K / best / 1e9;
}

void bench(int argc, char** argv) {
  int reps = argc > 2 ? std::atoi(argv[2]) : 5;
  struct B { int64_t M, N, K; bool ta, tb; };
  std::vector<B> shapes;
  for (int i = 3; i + 4 < argc; i += 5)
    shapes.push_back({std::atoll(argv[i]), std::atoll(argv[i + 1]), std::atoll(argv[i + 2]), argv[i + 3][0] == '1',
                      argv[i + 4][0] == '1'});
  if (shapes.empty())  // LoRA training at 2048 tokens, SmolLM2-135M (576/1536) and Qwen2.5-0.5B (896/4864)
    shapes = {{2048, 1536, 576, 0, 1},  {2048, 576, 1536, 0, 0},  {2048, 576, 576, 0, 1},  // y = x·Wᵀ, dx = dy·W
              {2048, 4864, 896, 0, 1},  {2048, 896, 4864, 0, 1},  {2048, 4864, 896, 0, 0},
              {896, 4864, 2048, 1, 0},  {1536, 576, 2048, 1, 0},                            // dW = dyᵀ·x
              {2048, 16, 576, 0, 1},    {2048, 576, 16, 0, 1},    {576, 16, 2048, 1, 0},    // LoRA r = 16
              {2048, 16, 576, 0, 0},    {16, 576, 2048, 1, 0},    {2048, 576, 16, 0, 0},
              {1, 576, 576, 0, 1}};                                                        // one token
  std::printf("isa=%s threads=%d, GFLOP/s best of %d\n", sw::cpu::isa_name(sw::cpu::active_isa()),
              sw::cpu::num_threads(), reps);
  std::printf("%-22s %9s %9s %9s\n", "M x N x K (ta,tb)", "f32", "bf16-dp", "bf16-wide");
  const bool has_dp = sw::cpu::active_isa() == Isa::Avx512 && sw::cpu::has_avx512_bf16();
  for (const B& s : shapes) {
    char name[64];
    std::snprintf(name, sizeof name, "%lldx%lldx%lld (%d,%d)", (long long)s.M, (long long)s.N, (long long)s.K, s.ta,
                  s.tb);
    const double f = bench_one(s.M, s.N, s.K, s.ta, s.tb, 0, reps);
    const double d = has_dp ? bench_one(s.M, s.N, s.K, s.ta, s.tb, 1, reps) : 0.0;
    const double w = bench_one(s.M, s.N, s.K, s.ta, s.tb, 2, reps);
    std::printf("%-22s %9.1f %9.1f %9.1f\n", name, f, d, w);
    std::fflush(stdout);
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc > 1 && std::string(argv[1]) == "bench") {
    bench(argc, argv);
    return 0;
  }
  correctness();
  std::printf("%s: %d cases, %d failures\n", g_failures ? "FAILED" : "OK", g_cases, g_failures);
  return g_failures ? 1 : 0;
}
