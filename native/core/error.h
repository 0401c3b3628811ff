// Errors of the compute core. Every failure names the op, the argument and the shapes involved; the
// addon glue turns them into JS errors with the same text (and a `code`), so bad input never crashes.
#pragma once
#include <cstdint>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace sw {

class Error : public std::runtime_error {
 public:
  Error(std::string code, const std::string& msg) : std::runtime_error(msg), code_(std::move(code)) {}
  const std::string& code() const { return code_; }

 private:
  std::string code_;
};

std::string shape_str(const std::vector<int64_t>& shape);

// Builds "op: message" errors: throw op_error("matmul", "argument 'w' ...").
Error op_error(const std::string& op, const std::string& msg);

}  // namespace sw
