// Portable build of the kernel bodies, and the run-time choice between the builds.
#include "cpu/kernels.h"

#include <cmath>

#include "cpu/isa.h"
#include "cpu/kernels_prelude.h"

namespace sw::cpu::portable {
#include "cpu/kernels_impl.inc"
}

namespace sw::cpu {
#if defined(SW_HAVE_AVX512_BUILD)
namespace avx512 { extern const Kernels kTable; }
#endif
#if defined(SW_HAVE_AVX2_BUILD)
namespace avx2 { extern const Kernels kTable; }
#endif

const Kernels& kernels() {
  switch (active_isa()) {
#if defined(SW_HAVE_AVX512_BUILD)
    case Isa::Avx512: return avx512::kTable;
#endif
#if defined(SW_HAVE_AVX2_BUILD)
    case Isa::Avx2: return avx2::kTable;
#endif
    default: return portable::kTable;
  }
}

void rope_inv_freq(const RopeParams& p, float* inv_freq) {
  const int64_t half = p.head_dim / 2;
  for (int64_t j = 0; j < half; ++j) {
    // Hugging Face: 1 / theta ** (arange(0, dim, 2).float() / dim), in f32
    const float expo = static_cast<float>(2 * j) / static_cast<float>(p.head_dim);
    double f = 1.0 / std::pow(p.theta, static_cast<double>(expo));
    if (p.llama3_factor > 0) {
      const double low_wavelen = p.original_max_positions / p.low_freq_factor;
      const double high_wavelen = p.original_max_positions / p.high_freq_factor;
      const double wavelen = 2 * M_PI / f;
      if (wavelen > low_wavelen) {
        f = f / p.llama3_factor;
      } else if (wavelen >= high_wavelen) {
        const double smooth = (p.original_max_positions / wavelen - p.low_freq_factor) /
                              (p.high_freq_factor - p.low_freq_factor);
        f = (1 - smooth) * f / p.llama3_factor + smooth * f;
      }
    }
    f /= p.linear_factor;
    inv_freq[j] = static_cast<float>(f);
  }
}

}  // namespace sw::cpu
