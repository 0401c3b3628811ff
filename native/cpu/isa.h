// Run-time instruction-set selection for the CPU kernels.
//
// Every kernel with vector code is compiled several times (files *_avx512.cpp, *_avx2.cpp with their
// own -m flags, plus a portable build) and picks its variant through active_isa() at call time, so one
// binary runs on any x86-64 and the same sources build on arm64 (portable variant only).
#pragma once
#include <string>

namespace sw::cpu {

enum class Isa : int { Scalar = 0, Avx2 = 1, Avx512 = 2 };

// Best ISA this CPU and this build support (AVX-512 means F+BW+DQ+VL; BF16 is reported separately).
Isa detected_isa();
// Whether the CPU has AVX512-BF16 (vdpbf16ps); only meaningful when the active ISA is Avx512.
bool has_avx512_bf16();
// ISA the kernels use now: the detected one unless forced (tests force each path).
Isa active_isa();
// Force an ISA; throws std::invalid_argument if this CPU or build cannot run it.
void force_isa(Isa isa);
// Use bf16 dot-product instructions when the ISA is Avx512 and the CPU has them (forceable off to test
// the fallback that widens bf16 to f32).
bool use_avx512_bf16();
void set_use_avx512_bf16(bool on);

const char* isa_name(Isa isa);
Isa parse_isa(const std::string& name);  // "scalar" | "avx2" | "avx512"; throws on other names

}  // namespace sw::cpu
