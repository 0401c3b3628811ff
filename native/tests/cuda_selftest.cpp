// Standalone check of the CUDA backend's plumbing (native/cuda): device discovery, device storage,
// host <-> device <-> device copies, and its errors. Exits 0 when every check passes; prints one line per
// check. Without a device (or in a build without nvcc) it checks that device memory is refused with a
// clear error instead, so it runs anywhere.
//
//   cuda_selftest            the checks
//   cuda_selftest bench      also host -> device and device -> host copy bandwidth (pageable host memory)
//
// Under `compute-sanitizer --tool memcheck` it reports two errors, both the deliberate 4 TiB cudaMalloc
// (the failed call and the cudaGetLastError that clears it); nothing else.
//
// Build: cmake -S . -B /tmp/swb -DSW_BUILD_NATIVE_TESTS=ON && cmake --build /tmp/swb --target cuda_selftest
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/tensor.h"
#ifdef SW_HAVE_CUDA
#include "cuda/device.h"
#endif

namespace {

int failures = 0;

void check(bool ok, const std::string& what) {
  std::printf("%s %s\n", ok ? "ok  " : "FAIL", what.c_str());
  if (!ok) ++failures;
}

template <typename F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const sw::Error& e) {
    return e.what();
  } catch (const std::exception& e) {
    return std::string("(not sw::Error) ") + e.what();
  }
  return "";
}

#ifdef SW_HAVE_CUDA
sw::Tensor random_host(sw::DType dt, const std::vector<int64_t>& shape, uint32_t seed) {
  sw::Tensor t = sw::empty(dt, shape);
  std::mt19937 rng(seed);
  auto* p = static_cast<unsigned char*>(t.raw());
  for (size_t i = 0; i < t.nbytes(); ++i) p[i] = static_cast<unsigned char>(rng());
  return t;
}

bool same_bytes(const sw::Tensor& a, const sw::Tensor& b) {
  return a.nbytes() == b.nbytes() && std::memcmp(a.raw(), b.raw(), a.nbytes()) == 0;
}

// host -> device -> device -> host, bytes unchanged
bool round_trip(sw::DType dt, const std::vector<int64_t>& shape, uint32_t seed) {
  sw::Tensor h = random_host(dt, shape, seed);
  sw::Tensor d1 = sw::empty(dt, shape, sw::Device::CUDA);
  sw::Tensor d2 = sw::empty(dt, shape, sw::Device::CUDA);
  sw::Tensor back = sw::empty(dt, shape);
  sw::cuda::copy(h, d1);
  sw::cuda::copy(d1, d2);
  sw::cuda::copy(d2, back);
  return same_bytes(h, back) && d1.device() == sw::Device::CUDA && std::string(d1.storage->kind()) == "cuda";
}

double gbps(size_t bytes, double secs) { return bytes / secs / 1e9; }
#endif

}  // namespace

int main(int argc, char** argv) {
  const bool bench = argc > 1 && std::string(argv[1]) == "bench";
#ifndef SW_HAVE_CUDA
  (void)bench;
  std::string e = error_of([] { sw::empty(sw::DType::F32, {4, 4}, sw::Device::CUDA); });
  check(e.find("no CUDA backend") != std::string::npos, "a build without nvcc refuses device memory: " + e);
  return failures ? 1 : 0;
#else
  const int n = sw::cuda::device_count();
  std::printf("CUDA runtime %s, driver %s, %d device(s)\n", sw::cuda::runtime_version().c_str(),
              sw::cuda::driver_version().c_str(), n);
  if (n == 0) {
    std::string e = error_of([] { sw::empty(sw::DType::F32, {4, 4}, sw::Device::CUDA); });
    check(e.find("no CUDA device") != std::string::npos, "no device: device memory refused with: " + e);
    return failures ? 1 : 0;
  }
  for (int i = 0; i < n; ++i) {
    auto d = sw::cuda::device_info(i);
    std::printf("device %d: %s, %.1f GiB, sm_%d%d\n", d.index, d.name.c_str(), d.total_memory / 1073741824.0, d.sm_major, d.sm_minor);
    check(d.total_memory > 0 && d.sm_major >= 3, "device " + std::to_string(i) + " has memory and a compute capability");
  }
  check(!sw::cuda::runtime_version().empty() && sw::cuda::driver_version() != "none", "runtime and driver versions");

  // shapes: empty, one element, odd sizes, a large one (256 MiB of f32)
  check(round_trip(sw::DType::F32, {0}, 1), "f32[0] round trip");
  check(round_trip(sw::DType::F32, {1}, 2), "f32[1] round trip");
  check(round_trip(sw::DType::F32, {33, 7}, 3), "f32[33, 7] round trip");
  check(round_trip(sw::DType::BF16, {1023, 5}, 4), "bf16[1023, 5] round trip");
  check(round_trip(sw::DType::F16, {17}, 5), "f16[17] round trip");
  check(round_trip(sw::DType::I32, {4096, 3}, 6), "i32[4096, 3] round trip");
  check(round_trip(sw::DType::F32, {64, 1024, 1024}, 7), "f32[64, 1024, 1024] (256 MiB) round trip");

  // device memory is zeroed on allocation
  {
    sw::Tensor d = sw::empty(sw::DType::F32, {1000}, sw::Device::CUDA);
    sw::Tensor h = random_host(sw::DType::F32, {1000}, 8);
    sw::cuda::copy(d, h);
    bool zero = true;
    for (int i = 0; i < 1000; ++i) zero = zero && h.data<float>()[i] == 0.0f;
    check(zero, "new device storage reads back as zeros");
  }
  // errors: mismatched shapes and dtypes name both tensors; an impossible allocation names the CUDA error
  {
    sw::Tensor h = sw::empty(sw::DType::F32, {4, 4});
    sw::Tensor d = sw::empty(sw::DType::F32, {4, 5}, sw::Device::CUDA);
    std::string e = error_of([&] { sw::cuda::copy(h, d); });
    check(e.find("f32[4, 4]") != std::string::npos && e.find("f32[4, 5]") != std::string::npos, "shape mismatch: " + e);
    sw::Tensor b = sw::empty(sw::DType::BF16, {4, 4}, sw::Device::CUDA);
    e = error_of([&] { sw::cuda::copy(h, b); });
    check(e.find("bf16") != std::string::npos, "dtype mismatch: " + e);
    e = error_of([] { sw::empty(sw::DType::F32, {int64_t(1) << 40}, sw::Device::CUDA); });  // 4 TiB
    check(e.find("cudaMalloc") != std::string::npos, "an allocation beyond the device: " + e);
    // the backend still works after that error (it is not sticky)
    check(round_trip(sw::DType::F32, {129}, 9), "round trip after a failed allocation");
  }

  if (bench) {
    const std::vector<int64_t> shape = {256, 1024, 1024};  // 1 GiB of f32
    sw::Tensor h = random_host(sw::DType::F32, shape, 10);
    sw::Tensor d = sw::empty(sw::DType::F32, shape, sw::Device::CUDA);
    sw::Tensor d2 = sw::empty(sw::DType::F32, shape, sw::Device::CUDA);
    sw::cuda::copy(h, d);  // warm
    auto time = [&](auto&& f) {
      double best = 1e30;
      for (int r = 0; r < 5; ++r) {
        auto t0 = std::chrono::steady_clock::now();
        f();
        best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
      }
      return best;
    };
    double h2d = time([&] { sw::cuda::copy(h, d); });
    double d2h = time([&] { sw::cuda::copy(d, h); });
    double d2d = time([&] {
      sw::cuda::copy(d, d2);
      sw::cuda::synchronize();
    });
    std::printf("bench 1 GiB f32 (best of 5): host->device %.1f GB/s, device->host %.1f GB/s, device->device %.1f GB/s (read+write %.0f GB/s)\n",
                gbps(h.nbytes(), h2d), gbps(h.nbytes(), d2h), gbps(h.nbytes(), d2d), 2 * gbps(h.nbytes(), d2d));
  }
  std::printf("%s\n", failures ? "FAILED" : "all CUDA plumbing checks passed");
  return failures ? 1 : 0;
#endif
}
