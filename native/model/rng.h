// Counter-based random numbers of the model (LoRA initialization, dropout seeds): splitmix64, so a
// value depends only on (seed, stream, index) and the tests can reproduce it.
#pragma once
#include <cstdint>

namespace sw::model {

inline uint64_t mix64(uint64_t z) {
  z += 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// The dropout seed of projection p of layer l in the step with seed `step_seed`.
inline uint64_t dropout_seed(uint64_t step_seed, int64_t layer, int proj) {
  return mix64(step_seed ^ mix64(static_cast<uint64_t>(layer) * 8 + static_cast<uint64_t>(proj)));
}

class Rng {
 public:
  Rng(uint64_t seed, uint64_t stream) : state_(mix64(seed) ^ mix64(stream + 0x632BE59BD9B4E019ull)) {}
  double uniform() {  // [0, 1), 53 bits
    state_ += 0x9E3779B97F4A7C15ull;
    return static_cast<double>(mix64(state_) >> 11) * (1.0 / 9007199254740992.0);
  }

 private:
  uint64_t state_;
};

}  // namespace sw::model
