// N-API glue: the Tensor class (ObjectWrap over sw::Tensor), argument unwrapping that names the op and
// the argument in every error, and the Job mechanism that runs an op either now or on the libuv pool.
#pragma once
#include <napi.h>

#include <functional>
#include <memory>
#include <string>
#include <unordered_map>

#include "core/error.h"
#include "core/tensor.h"

namespace sw::addon {

// One ArrayBuffer per storage while JS tensors use it (V8 must never see two external buffers over the
// same memory): count of live JS tensors on the storage, and the buffer once one was asked for.
// Shared with every JsTensor so that the order of finalizers at environment teardown does not matter.
struct ViewTable {
  struct Entry {
    int tensors = 0;
    Napi::Reference<Napi::ArrayBuffer> buffer;
  };
  bool env_alive = true;
  std::unordered_map<const Storage*, Entry> entries;
};

// Per-environment state (the addon is context-aware: each worker thread gets its own).
struct AddonData {
  Napi::FunctionReference tensor_ctor;
  std::shared_ptr<ViewTable> views = std::make_shared<ViewTable>();
  ~AddonData() {
    // The environment is going away and deletes its references itself.
    views->env_alive = false;
    for (auto& kv : views->entries) kv.second.buffer.SuppressDestruct();
    views->entries.clear();
  }
};

class JsTensor : public Napi::ObjectWrap<JsTensor> {
 public:
  static Napi::Function Define(Napi::Env env);
  static Napi::Object New(Napi::Env env, Tensor t);
  static bool Is(Napi::Env env, const Napi::Value& v);

  explicit JsTensor(const Napi::CallbackInfo& info);
  ~JsTensor() override;

  // The tensor, or a TypeError naming op/arg when released.
  const Tensor& get(const char* op, const char* arg) const;

 private:
  Napi::Value Dtype(const Napi::CallbackInfo& info);
  Napi::Value Shape(const Napi::CallbackInfo& info);
  Napi::Value Device(const Napi::CallbackInfo& info);
  Napi::Value Readonly(const Napi::CallbackInfo& info);
  Napi::Value Released(const Napi::CallbackInfo& info);
  Napi::Value Nbytes(const Napi::CallbackInfo& info);
  Napi::Value ByteOffset(const Napi::CallbackInfo& info);
  Napi::Value StorageKind(const Napi::CallbackInfo& info);
  Napi::Value Buffer(const Napi::CallbackInfo& info);
  Napi::Value Release(const Napi::CallbackInfo& info);
  Napi::Value Reshape(const Napi::CallbackInfo& info);
  Napi::Value To(const Napi::CallbackInfo& info);
  void attach(Napi::Env env);
  void detach();

  Tensor t_;
  bool released_ = true;
  std::shared_ptr<ViewTable> views_;
};

// ---- argument unwrapping (each throws a JS TypeError "op: argument 'name' ...")
Tensor arg_tensor(const Napi::CallbackInfo& info, size_t i, const char* op, const char* name);
Tensor* arg_opt_tensor(const Napi::CallbackInfo& info, size_t i, const char* op, const char* name, Tensor& slot);
std::vector<Tensor> arg_tensor_list(const Napi::CallbackInfo& info, size_t i, const char* op, const char* name);
double arg_number(const Napi::CallbackInfo& info, size_t i, const char* op, const char* name);
int64_t arg_int(const Napi::CallbackInfo& info, size_t i, const char* op, const char* name);
uint64_t arg_seed(const Napi::CallbackInfo& info, size_t i, const char* op, const char* name);
bool arg_bool(const Napi::CallbackInfo& info, size_t i, const char* op, const char* name);
std::string arg_string(const Napi::CallbackInfo& info, size_t i, const char* op, const char* name);
std::vector<int64_t> arg_shape(const Napi::CallbackInfo& info, size_t i, const char* op, const char* name);
Napi::Object arg_object(const Napi::CallbackInfo& info, size_t i, const char* op, const char* name);
double opt_number(const Napi::Object& o, const char* key, double fallback, const char* op);
int64_t opt_int(const Napi::Object& o, const char* key, int64_t fallback, const char* op);

// Throw a JS error (with .code) for a core error.
[[noreturn]] void throw_js(Napi::Env env, const Error& e);

// ---- jobs: an op is prepared on the JS thread (arguments unwrapped, tensors retained), run now or on
// the libuv pool, and its result converted back on the JS thread.
struct Job {
  std::function<void()> run;
  std::function<Napi::Value(Napi::Env)> result;  // may be empty: undefined
};
using Prepare = std::function<Job(const Napi::CallbackInfo&)>;

// Registers `name` (synchronous) and `name + "Async"` (returns a Promise) on exports.
void define_op(Napi::Env env, Napi::Object exports, const char* name, Prepare prepare);

}  // namespace sw::addon
