// AVX2 + FMA build of the attention kernel (compiled with this ISA's flags; see CMakeLists.txt).
#include "cpu/attention_prelude.h"

#if !defined(__AVX2__) || !defined(__FMA__)
#error "attention_avx2.cpp must be compiled with -mavx2 -mfma (CMake adds SW_AVX2_FLAGS)"
#endif

namespace sw::cpu::attn_avx2 {
#include "cpu/attention_impl.inc"
}  // namespace sw::cpu::attn_avx2
