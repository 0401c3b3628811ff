// AVX-512 build of the kernel bodies (compiled with this ISA's flags; see CMakeLists.txt).
#include "cpu/kernels_prelude.h"

namespace sw::cpu::avx512 {
#include "cpu/kernels_impl.inc"
}
