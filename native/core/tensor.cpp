#include "core/tensor.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "core/error.h"
#include "core/half.h"
#include "cpu/threadpool.h"
#ifdef SW_HAVE_CUDA
#include "cuda/device.h"
#endif

namespace sw {

std::string shape_str(const std::vector<int64_t>& shape) {
  std::ostringstream os;
  os << "[";
  for (size_t i = 0; i < shape.size(); ++i) os << (i ? ", " : "") << shape[i];
  os << "]";
  return os.str();
}

Error op_error(const std::string& op, const std::string& msg) { return Error("EOP", op + ": " + msg); }

size_t dtype_size(DType d) {
  switch (d) {
    case DType::F32: return 4;
    case DType::BF16: return 2;
    case DType::F16: return 2;
    case DType::I32: return 4;
  }
  return 0;
}

const char* dtype_name(DType d) {
  switch (d) {
    case DType::F32: return "f32";
    case DType::BF16: return "bf16";
    case DType::F16: return "f16";
    case DType::I32: return "i32";
  }
  return "?";
}

DType parse_dtype(const std::string& name) {
  if (name == "f32" || name == "float32" || name == "F32") return DType::F32;
  if (name == "bf16" || name == "bfloat16" || name == "BF16") return DType::BF16;
  if (name == "f16" || name == "float16" || name == "F16") return DType::F16;
  if (name == "i32" || name == "int32" || name == "I32") return DType::I32;
  throw Error("EDTYPE", "unknown dtype '" + name + "' (expected f32, bf16, f16 or i32)");
}

const char* device_name(Device d) { return d == Device::CPU ? "cpu" : "cuda"; }

int64_t Tensor::numel() const {
  int64_t n = 1;
  for (int64_t s : shape) n *= s;
  return n;
}

std::string Tensor::describe() const {
  std::string s = std::string(dtype_name(dtype)) + shape_str(shape);
  if (device() != Device::CPU) s += "@" + std::string(device_name(device()));
  return s;
}

namespace {

class AlignedStorage : public Storage {
 public:
  explicit AlignedStorage(size_t bytes) {
    size_t rounded = (bytes + 63) / 64 * 64;
    if (rounded == 0) rounded = 64;
    data_ = std::aligned_alloc(64, rounded);
    if (!data_) throw Error("ENOMEM", "out of memory allocating " + std::to_string(bytes) + " bytes");
    std::memset(data_, 0, rounded);
    bytes_ = bytes;
  }
  ~AlignedStorage() override { std::free(data_); }
  const char* kind() const override { return "aligned"; }
};

class MmapStorage : public Storage {
 public:
  MmapStorage(const std::string& path, uint64_t offset, size_t bytes) {
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) throw Error("ENOENT", "cannot open '" + path + "': " + std::strerror(errno));
    struct stat st;
    if (::fstat(fd, &st) != 0) {
      int e = errno;
      ::close(fd);
      throw Error("EIO", "cannot stat '" + path + "': " + std::strerror(e));
    }
    uint64_t size = static_cast<uint64_t>(st.st_size);
    if (offset > size || bytes > size - offset) {
      ::close(fd);
      throw Error("ERANGE", "region [" + std::to_string(offset) + ", " + std::to_string(offset + bytes) +
                                ") is outside '" + path + "' (" + std::to_string(size) + " bytes)");
    }
    long page = ::sysconf(_SC_PAGESIZE);
    uint64_t start = offset / page * page;
    map_len_ = static_cast<size_t>(offset - start) + bytes;
    if (map_len_ == 0) map_len_ = 1;
    // MAP_PRIVATE: copy-on-write, so nothing written through a JS view ever reaches the file.
    map_ = ::mmap(nullptr, map_len_, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, static_cast<off_t>(start));
    int e = errno;
    ::close(fd);
    if (map_ == MAP_FAILED) throw Error("EIO", "cannot map '" + path + "': " + std::strerror(e));
    data_ = static_cast<char*>(map_) + (offset - start);
    bytes_ = bytes;
    readonly_ = true;
  }
  ~MmapStorage() override { ::munmap(map_, map_len_); }
  const char* kind() const override { return "mmap"; }

 private:
  void* map_ = nullptr;
  size_t map_len_ = 0;
};

}  // namespace

std::shared_ptr<Storage> make_aligned_storage(size_t bytes) { return std::make_shared<AlignedStorage>(bytes); }

std::shared_ptr<Storage> make_mmap_storage(const std::string& path, uint64_t offset, size_t bytes) {
  return std::make_shared<MmapStorage>(path, offset, bytes);
}

static void check_shape(const std::vector<int64_t>& shape) {
  int64_t n = 1;
  for (int64_t s : shape) {
    if (s < 0) throw Error("ESHAPE", "negative dimension in shape " + shape_str(shape));
    if (s > 0 && n > (int64_t(1) << 40) / s) throw Error("ESHAPE", "shape " + shape_str(shape) + " is too large");
    n *= s;
  }
}

Tensor empty(DType dtype, const std::vector<int64_t>& shape, Device device) {
  check_shape(shape);
  Tensor t;
  t.dtype = dtype;
  t.shape = shape;
  if (device == Device::CPU) {
    t.storage = make_aligned_storage(t.nbytes());
  } else {
#ifdef SW_HAVE_CUDA
    t.storage = cuda::make_device_storage(t.nbytes());
#else
    throw Error("ENODEV", "this build has no CUDA backend (nvcc was not found when it was built)");
#endif
  }
  return t;
}

Tensor map_file(const std::string& path, uint64_t offset, DType dtype, const std::vector<int64_t>& shape) {
  check_shape(shape);
  Tensor t;
  t.dtype = dtype;
  t.shape = shape;
  t.storage = make_mmap_storage(path, offset, t.nbytes());
  return t;
}

Tensor convert(const Tensor& src, DType to) {
  if (src.device() != Device::CPU) throw op_error("convert", "source must be a CPU tensor, got " + src.describe());
  if (to != DType::F32 && to != DType::BF16)
    throw op_error("convert", std::string("target dtype must be f32 or bf16, got ") + dtype_name(to));
  if (src.dtype == DType::I32) throw op_error("convert", "cannot convert an i32 tensor to floating point");
  Tensor dst = empty(to, src.shape);
  const int64_t n = src.numel();
  const DType from = src.dtype;
  cpu::parallel_range(n, 4096, [&](int64_t b, int64_t e, int) {
    for (int64_t i = b; i < e; ++i) {
      float f;
      if (from == DType::F32) f = src.data<float>()[i];
      else if (from == DType::BF16) f = bf16_to_f32(src.data<uint16_t>()[i]);
      else f = f16_to_f32(src.data<uint16_t>()[i]);
      if (to == DType::F32) dst.data<float>()[i] = f;
      else dst.data<uint16_t>()[i] = f32_to_bf16(f);
    }
  });
  return dst;
}

}  // namespace sw
