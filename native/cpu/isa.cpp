#include "cpu/isa.h"

#include <atomic>
#include <cstdlib>
#include <stdexcept>

namespace sw::cpu {
namespace {

#if defined(__x86_64__) || defined(_M_X64)
#define SW_X86 1
#endif

Isa probe() {
#if defined(SW_X86) && defined(SW_HAVE_AVX512_BUILD)
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl") &&
      __builtin_cpu_supports("fma"))
    return Isa::Avx512;
#endif
#if defined(SW_X86) && defined(SW_HAVE_AVX2_BUILD)
  __builtin_cpu_init();
  unsigned a = 0, b = 0, c = 0, d = 0;
  __asm__ volatile("cpuid" : "=a"(a), "=b"(b), "=c"(c), "=d"(d) : "a"(1), "c"(0));
  const bool f16c = (c >> 29) & 1u;  // CPUID.1:ECX.F16C (clang's __builtin_cpu_supports lacks "f16c")
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && f16c) return Isa::Avx2;
#endif
  return Isa::Scalar;
}

bool probe_bf16() {
#if defined(SW_X86) && defined(SW_HAVE_AVX512_BUILD)
  unsigned a = 0, b = 0, c = 0, d = 0;
  // CPUID leaf 7 sub-leaf 1: EAX bit 5 = AVX512_BF16.
  __asm__ volatile("cpuid" : "=a"(a), "=b"(b), "=c"(c), "=d"(d) : "a"(7), "c"(1));
  return (a >> 5) & 1u;
#else
  return false;
#endif
}

Isa initial() {
  Isa best = probe();
  if (const char* env = std::getenv("STARWEAVE_ISA")) {
    Isa want = parse_isa(env);
    if (static_cast<int>(want) < static_cast<int>(best)) best = want;
  }
  return best;
}

std::atomic<int> g_active{-1};
std::atomic<int> g_bf16{-1};

}  // namespace

Isa detected_isa() {
  static const Isa isa = probe();
  return isa;
}

bool has_avx512_bf16() {
  static const bool bf16 = probe_bf16();
  return bf16;
}

Isa active_isa() {
  int v = g_active.load(std::memory_order_relaxed);
  if (v < 0) {
    v = static_cast<int>(initial());
    g_active.store(v, std::memory_order_relaxed);
  }
  return static_cast<Isa>(v);
}

void force_isa(Isa isa) {
  if (static_cast<int>(isa) > static_cast<int>(detected_isa()))
    throw std::invalid_argument(std::string("ISA '") + isa_name(isa) +
                                "' is not available on this CPU/build (best: " + isa_name(detected_isa()) + ")");
  g_active.store(static_cast<int>(isa), std::memory_order_relaxed);
}

bool use_avx512_bf16() {
  int v = g_bf16.load(std::memory_order_relaxed);
  if (v < 0) v = has_avx512_bf16() ? 1 : 0;
  return v == 1 && active_isa() == Isa::Avx512 && has_avx512_bf16();
}

void set_use_avx512_bf16(bool on) { g_bf16.store(on ? 1 : 0, std::memory_order_relaxed); }

const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::Scalar: return "scalar";
    case Isa::Avx2: return "avx2";
    case Isa::Avx512: return "avx512";
  }
  return "?";
}

Isa parse_isa(const std::string& name) {
  if (name == "scalar") return Isa::Scalar;
  if (name == "avx2") return Isa::Avx2;
  if (name == "avx512") return Isa::Avx512;
  throw std::invalid_argument("unknown ISA '" + name + "' (expected scalar, avx2 or avx512)");
}

}  // namespace sw::cpu
