// CUDA backend: device plumbing (device discovery, device-resident storage, host<->device copies).
// Ops are declared once in native/ops; a later issue adds their CUDA kernels beside these files and the
// ops layer dispatches on Tensor::device(). Compiled only when nvcc is found (SW_HAVE_CUDA).
#pragma once
#include <memory>
#include <string>

#include "core/tensor.h"

namespace sw::cuda {

struct DeviceInfo {
  int index;
  std::string name;
  size_t total_memory;
  int sm_major, sm_minor;
};

// Number of usable CUDA devices (0 when there is no GPU or no driver; never throws).
int device_count();
DeviceInfo device_info(int index);
// Runtime / driver versions as "13.0"; driver "none" when no driver is loaded.
std::string runtime_version();
std::string driver_version();

// Device memory (cudaMalloc); throws sw::Error naming the CUDA error when there is no device.
std::shared_ptr<Storage> make_device_storage(size_t bytes);
// Copy between host and device tensors of the same dtype and shape (any direction).
void copy(const Tensor& src, Tensor& dst);
// Waits for the device's outstanding work (a device-to-device copy returns before it completes).
void synchronize();

}  // namespace sw::cuda
