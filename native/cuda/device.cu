#include <cuda_runtime.h>

#include "core/error.h"
#include "cuda/device.h"

namespace sw::cuda {
namespace {

void ok(cudaError_t e, const char* what) {
  if (e != cudaSuccess) {
    cudaGetLastError();  // clear the sticky error where it is not fatal
    throw Error("ECUDA", std::string(what) + ": " + cudaGetErrorName(e) + " (" + cudaGetErrorString(e) + ")");
  }
}

std::string version_str(int v) { return std::to_string(v / 1000) + "." + std::to_string((v % 1000) / 10); }

class DeviceStorage : public Storage {
 public:
  explicit DeviceStorage(size_t bytes) {
    if (device_count() == 0) throw Error("ENODEV", "no CUDA device is available (cudaGetDeviceCount found none)");
    ok(cudaMalloc(&data_, bytes ? bytes : 1), "cudaMalloc");
    ok(cudaMemset(data_, 0, bytes ? bytes : 1), "cudaMemset");
    bytes_ = bytes;
    device_ = Device::CUDA;
  }
  ~DeviceStorage() override { cudaFree(data_); }
  const char* kind() const override { return "cuda"; }
};

}  // namespace

int device_count() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    cudaGetLastError();
    return 0;
  }
  return n;
}

DeviceInfo device_info(int index) {
  cudaDeviceProp p;
  ok(cudaGetDeviceProperties(&p, index), "cudaGetDeviceProperties");
  return {index, p.name, p.totalGlobalMem, p.major, p.minor};
}

std::string runtime_version() {
  int v = 0;
  cudaRuntimeGetVersion(&v);
  return version_str(v);
}

std::string driver_version() {
  int v = 0;
  if (cudaDriverGetVersion(&v) != cudaSuccess || v == 0) return "none";
  return version_str(v);
}

std::shared_ptr<Storage> make_device_storage(size_t bytes) { return std::make_shared<DeviceStorage>(bytes); }

void copy(const Tensor& src, Tensor& dst) {
  if (src.dtype != dst.dtype || src.shape != dst.shape)
    throw op_error("to_device", "source " + src.describe() + " and destination " + dst.describe() + " differ");
  cudaMemcpyKind kind = src.device() == Device::CPU
                            ? (dst.device() == Device::CPU ? cudaMemcpyHostToHost : cudaMemcpyHostToDevice)
                            : (dst.device() == Device::CPU ? cudaMemcpyDeviceToHost : cudaMemcpyDeviceToDevice);
  ok(cudaMemcpy(dst.raw(), src.raw(), src.nbytes(), kind), "cudaMemcpy");
}

void synchronize() { ok(cudaDeviceSynchronize(), "cudaDeviceSynchronize"); }

}  // namespace sw::cuda
