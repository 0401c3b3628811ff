// Attention entry points: validate the shape, pick the ISA build (active_isa()), and the portable build
// of the kernel itself (no -m flags: SSE2 on x86-64, NEON on arm64). The algorithm lives in
// attention_impl.inc; attention_avx2.cpp / attention_avx512.cpp compile it with their ISA's flags.
#include "cpu/attention_prelude.h"

#include <atomic>
#include <stdexcept>
#include <string>

#include "cpu/isa.h"

namespace sw::cpu::attn_portable {
#include "cpu/attention_impl.inc"
}  // namespace sw::cpu::attn_portable

namespace sw::cpu {
namespace {

std::atomic<std::int64_t> g_dq_scratch_budget{std::int64_t(256) << 20};

void check_shape(const AttentionShape& s, const char* fn) {
  auto fail = [&](const std::string& why) { throw std::invalid_argument(std::string(fn) + ": " + why); };
  if (s.B < 0 || s.T < 0) fail("B and T must be >= 0");
  if (s.Hq < 1 || s.Hkv < 1 || s.D < 1) fail("Hq, Hkv and D must be >= 1");
  if (s.Hq % s.Hkv != 0) fail("Hq (" + std::to_string(s.Hq) + ") must be a multiple of Hkv (" + std::to_string(s.Hkv) + ")");
}

}  // namespace

void attention_set_dq_scratch_budget(std::int64_t bytes) { g_dq_scratch_budget.store(bytes < 0 ? 0 : bytes); }

void attention_forward(const AttentionShape& s, const float* q, const float* k, const float* v,
                       const int32_t* segment, float* out, float* lse) {
  check_shape(s, "attention_forward");
  if (s.B == 0 || s.T == 0) return;
  switch (active_isa()) {
#if defined(SW_HAVE_AVX512_BUILD)
    case Isa::Avx512:
      if (s.bf16 && use_avx512_bf16()) return attn_avx512::forward_bf16(s, q, k, v, segment, out, lse);
      return attn_avx512::forward(s, q, k, v, segment, out, lse);
#endif
#if defined(SW_HAVE_AVX2_BUILD)
    case Isa::Avx2: return attn_avx2::forward(s, q, k, v, segment, out, lse);
#endif
    default: return attn_portable::forward(s, q, k, v, segment, out, lse);
  }
}

void attention_backward(const AttentionShape& s, const float* q, const float* k, const float* v,
                        const int32_t* segment, const float* out, const float* lse, const float* dout, float* dq,
                        float* dk, float* dv) {
  check_shape(s, "attention_backward");
  if (s.B == 0 || s.T == 0) return;
  const std::int64_t budget = g_dq_scratch_budget.load();
  switch (active_isa()) {
#if defined(SW_HAVE_AVX512_BUILD)
    case Isa::Avx512:
      if (s.bf16 && use_avx512_bf16())
        return attn_avx512::backward_bf16(s, q, k, v, segment, out, lse, dout, dq, dk, dv, budget);
      return attn_avx512::backward(s, q, k, v, segment, out, lse, dout, dq, dk, dv, budget);
#endif
#if defined(SW_HAVE_AVX2_BUILD)
    case Isa::Avx2: return attn_avx2::backward(s, q, k, v, segment, out, lse, dout, dq, dk, dv, budget);
#endif
    default: return attn_portable::backward(s, q, k, v, segment, out, lse, dout, dq, dk, dv, budget);
  }
}

}  // namespace sw::cpu
