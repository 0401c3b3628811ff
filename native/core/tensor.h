// Tensors of the compute core: contiguous row-major data with a dtype and a shape, in storage that the
// core owns (64-byte aligned), that maps a file read-only, or (later) that lives on a CUDA device.
//
// A Tensor is a small value (shared_ptr to storage + offset + dtype + shape); copies share storage.
// Storage outlives every tensor and every zero-copy JS view that refers to it.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace sw {

enum class DType : uint8_t { F32 = 0, BF16 = 1, F16 = 2, I32 = 3 };
enum class Device : uint8_t { CPU = 0, CUDA = 1 };

size_t dtype_size(DType d);
const char* dtype_name(DType d);
DType parse_dtype(const std::string& name);  // "f32" | "bf16" | "f16" | "i32"; throws sw::Error
const char* device_name(Device d);

class Storage {
 public:
  virtual ~Storage() = default;
  void* data() const { return data_; }
  size_t bytes() const { return bytes_; }
  Device device() const { return device_; }
  bool readonly() const { return readonly_; }
  virtual const char* kind() const = 0;  // "aligned" | "mmap" | "cuda"

 protected:
  void* data_ = nullptr;
  size_t bytes_ = 0;
  Device device_ = Device::CPU;
  bool readonly_ = false;
};

// Host memory, 64-byte aligned, zero-filled.
std::shared_ptr<Storage> make_aligned_storage(size_t bytes);
// A read-only mapping of [offset, offset + bytes) of a file. The pages are mapped copy-on-write, so a
// write through a JS view can never reach the file, but the core's ops refuse to write into it.
std::shared_ptr<Storage> make_mmap_storage(const std::string& path, uint64_t offset, size_t bytes);

struct Tensor {
  std::shared_ptr<Storage> storage;
  size_t offset = 0;  // bytes into storage
  DType dtype = DType::F32;
  std::vector<int64_t> shape;

  int64_t numel() const;
  size_t nbytes() const { return static_cast<size_t>(numel()) * dtype_size(dtype); }
  int64_t dim(int i) const { return shape[i < 0 ? shape.size() + i : i]; }
  int ndim() const { return static_cast<int>(shape.size()); }
  Device device() const { return storage ? storage->device() : Device::CPU; }
  bool readonly() const { return storage && storage->readonly(); }
  void* raw() const { return static_cast<char*>(storage->data()) + offset; }
  template <typename T>
  T* data() const { return static_cast<T*>(raw()); }
  std::string describe() const;  // e.g. "f32[2048, 576]"
};

Tensor empty(DType dtype, const std::vector<int64_t>& shape, Device device = Device::CPU);
// Map a file region as a tensor (dtype f32/bf16/i32 kept as is, no copy).
Tensor map_file(const std::string& path, uint64_t offset, DType dtype, const std::vector<int64_t>& shape);
// Convert f16/bf16/f32 data (host) into a new owned tensor of dtype `to` (f32 or bf16).
Tensor convert(const Tensor& src, DType to);

}  // namespace sw
