// Argument checks shared by every op: one place that builds the error text, so each message names
// the op, the argument and the shapes ("rmsnorm_forward: argument 'w' must have shape [576], got f32[512]").
#pragma once
#include <cmath>
#include <initializer_list>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/tensor.h"

namespace sw::check {

inline void dtype(const char* op, const char* arg, const Tensor& t, std::initializer_list<DType> allowed) {
  for (DType d : allowed)
    if (t.dtype == d) return;
  std::string names;
  for (DType d : allowed) names += (names.empty() ? "" : " or ") + std::string(dtype_name(d));
  throw op_error(op, std::string("argument '") + arg + "' must be " + names + ", got " + t.describe());
}

inline void shape(const char* op, const char* arg, const Tensor& t, const std::vector<int64_t>& expected) {
  if (t.shape != expected)
    throw op_error(op, std::string("argument '") + arg + "' must have shape " + shape_str(expected) + ", got " +
                           t.describe());
}

inline void ndim(const char* op, const char* arg, const Tensor& t, int n) {
  if (t.ndim() != n)
    throw op_error(op, std::string("argument '") + arg + "' must have " + std::to_string(n) + " dimensions, got " +
                           t.describe());
}

inline void ndim_at_least(const char* op, const char* arg, const Tensor& t, int n) {
  if (t.ndim() < n)
    throw op_error(op, std::string("argument '") + arg + "' must have at least " + std::to_string(n) +
                           " dimensions, got " + t.describe());
}

inline void cpu(const char* op, const char* arg, const Tensor& t) {
  if (t.device() != Device::CPU)
    throw op_error(op, std::string("argument '") + arg + "' is on " + device_name(t.device()) +
                           "; this op has no kernel for that device yet (" + t.describe() + ")");
}

inline void writable(const char* op, const char* arg, const Tensor& t) {
  if (t.readonly())
    throw op_error(op, std::string("argument '") + arg + "' is read-only (a memory-mapped file region) and cannot be written: " +
                           t.describe());
}

// Output tensors: right dtype, right shape, on the CPU, writable.
inline void output(const char* op, const char* arg, const Tensor& t, DType d, const std::vector<int64_t>& expected) {
  dtype(op, arg, t, {d});
  shape(op, arg, t, expected);
  cpu(op, arg, t);
  writable(op, arg, t);
}

inline void finite(const char* op, const char* arg, double v) {
  if (!std::isfinite(v)) throw op_error(op, std::string("argument '") + arg + "' must be finite, got " + std::to_string(v));
}

inline void positive(const char* op, const char* arg, double v) {
  if (!(std::isfinite(v) && v > 0))
    throw op_error(op, std::string("argument '") + arg + "' must be a finite number > 0, got " + std::to_string(v));
}

inline void in_range(const char* op, const char* arg, double v, double lo, double hi_exclusive) {
  if (!(v >= lo && v < hi_exclusive))
    throw op_error(op, std::string("argument '") + arg + "' must be in [" + std::to_string(lo) + ", " +
                           std::to_string(hi_exclusive) + "), got " + std::to_string(v));
}

inline int64_t last_dim(const Tensor& t) { return t.shape.empty() ? 1 : t.shape.back(); }
// Product of all dimensions but the last (the rows of the [rows, last_dim] view); 1 for a scalar.
inline int64_t rows(const Tensor& t) {
  int64_t n = 1;
  for (size_t i = 0; i + 1 < t.shape.size(); ++i) n *= t.shape[i];
  return n;
}

}  // namespace sw::check
