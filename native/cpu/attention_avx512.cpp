// AVX-512 build of the attention kernel (compiled with this ISA's flags; see CMakeLists.txt).
#include "cpu/attention_prelude.h"

#if !defined(__AVX512F__) || !defined(__FMA__)
#error "attention_avx512.cpp must be compiled with -mavx512f -mfma (CMake adds SW_AVX512_FLAGS)"
#endif

// GCC 12 reports the intrinsics' own `__m512 __Y = __Y;` (_mm512_undefined_ps) as maybe-uninitialized
// once they are inlined (GCC bug 105593); harmless, silenced for this file only.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

namespace sw::cpu::attn_avx512 {
#include "cpu/attention_impl.inc"
}  // namespace sw::cpu::attn_avx512
