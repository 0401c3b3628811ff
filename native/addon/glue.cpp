#include <cmath>

#include "addon/glue.h"

namespace sw::addon {
namespace {

[[noreturn]] void type_error(const Napi::CallbackInfo& info, const char* op, const char* name, const std::string& what) {
  Napi::TypeError e = Napi::TypeError::New(info.Env(), std::string(op) + ": argument '" + name + "' " + what);
  e.Set("code", Napi::String::New(info.Env(), "EARG"));
  throw e;
}

Napi::Value at(const Napi::CallbackInfo& info, size_t i) { return i < info.Length() ? info[i] : info.Env().Undefined(); }

class JobWorker : public Napi::AsyncWorker {
 public:
  JobWorker(Napi::Env env, Job job)
      : Napi::AsyncWorker(env, "starweave.op"), job_(std::move(job)), deferred_(Napi::Promise::Deferred::New(env)) {}
  Napi::Promise promise() { return deferred_.Promise(); }

 protected:
  void Execute() override {
    try {
      job_.run();
    } catch (const Error& e) {
      code_ = e.code();
      SetError(e.what());
    } catch (const std::exception& e) {
      code_ = "EINTERNAL";
      SetError(e.what());
    }
  }
  void OnOK() override {
    Napi::Env env = Env();
    try {
      deferred_.Resolve(job_.result ? job_.result(env) : env.Undefined());
    } catch (const Napi::Error& e) {
      deferred_.Reject(e.Value());
    }
  }
  void OnError(const Napi::Error& e) override {
    Napi::Error err = e;
    err.Set("code", Napi::String::New(Env(), code_));
    deferred_.Reject(err.Value());
  }

 private:
  Job job_;
  Napi::Promise::Deferred deferred_;
  std::string code_ = "EOP";
};

}  // namespace

void throw_js(Napi::Env env, const Error& e) {
  Napi::Error err = Napi::Error::New(env, e.what());
  err.Set("code", Napi::String::New(env, e.code()));
  throw err;
}

Tensor arg_tensor(const Napi::CallbackInfo& info, size_t i, const char* op, const char* name) {
  Napi::Value v = at(info, i);
  if (!JsTensor::Is(info.Env(), v)) type_error(info, op, name, "must be a Tensor");
  return JsTensor::Unwrap(v.As<Napi::Object>())->get(op, name);
}

Tensor* arg_opt_tensor(const Napi::CallbackInfo& info, size_t i, const char* op, const char* name, Tensor& slot) {
  Napi::Value v = at(info, i);
  if (v.IsUndefined() || v.IsNull()) return nullptr;
  slot = arg_tensor(info, i, op, name);
  return &slot;
}

std::vector<Tensor> arg_tensor_list(const Napi::CallbackInfo& info, size_t i, const char* op, const char* name) {
  Napi::Value v = at(info, i);
  if (!v.IsArray()) type_error(info, op, name, "must be an array of Tensors");
  Napi::Array a = v.As<Napi::Array>();
  std::vector<Tensor> out;
  out.reserve(a.Length());
  for (uint32_t k = 0; k < a.Length(); ++k) {
    Napi::Value e = a.Get(k);
    const std::string item = std::string(name) + "[" + std::to_string(k) + "]";
    if (!JsTensor::Is(info.Env(), e)) type_error(info, op, item.c_str(), "must be a Tensor");
    out.push_back(JsTensor::Unwrap(e.As<Napi::Object>())->get(op, item.c_str()));
  }
  return out;
}

double arg_number(const Napi::CallbackInfo& info, size_t i, const char* op, const char* name) {
  Napi::Value v = at(info, i);
  if (!v.IsNumber()) type_error(info, op, name, "must be a number");
  return v.As<Napi::Number>().DoubleValue();
}

int64_t arg_int(const Napi::CallbackInfo& info, size_t i, const char* op, const char* name) {
  double d = arg_number(info, i, op, name);
  if (!std::isfinite(d) || std::floor(d) != d || std::fabs(d) > 9007199254740991.0)
    type_error(info, op, name, "must be an integer, got " + std::to_string(d));
  return static_cast<int64_t>(d);
}

uint64_t arg_seed(const Napi::CallbackInfo& info, size_t i, const char* op, const char* name) {
  Napi::Value v = at(info, i);
  if (v.IsBigInt()) {
    bool lossless = true;
    uint64_t s = v.As<Napi::BigInt>().Uint64Value(&lossless);
    if (!lossless) type_error(info, op, name, "must fit in 64 bits");
    return s;
  }
  int64_t s = arg_int(info, i, op, name);
  if (s < 0) type_error(info, op, name, "must be >= 0");
  return static_cast<uint64_t>(s);
}

bool arg_bool(const Napi::CallbackInfo& info, size_t i, const char* op, const char* name) {
  Napi::Value v = at(info, i);
  if (!v.IsBoolean()) type_error(info, op, name, "must be a boolean");
  return v.As<Napi::Boolean>().Value();
}

std::string arg_string(const Napi::CallbackInfo& info, size_t i, const char* op, const char* name) {
  Napi::Value v = at(info, i);
  if (!v.IsString()) type_error(info, op, name, "must be a string");
  return v.As<Napi::String>().Utf8Value();
}

std::vector<int64_t> arg_shape(const Napi::CallbackInfo& info, size_t i, const char* op, const char* name) {
  Napi::Value v = at(info, i);
  if (!v.IsArray()) type_error(info, op, name, "must be an array of dimensions");
  Napi::Array a = v.As<Napi::Array>();
  std::vector<int64_t> shape;
  for (uint32_t k = 0; k < a.Length(); ++k) {
    Napi::Value e = a.Get(k);
    double d = e.IsNumber() ? e.As<Napi::Number>().DoubleValue() : -1;
    if (!(d >= 0) || std::floor(d) != d || d > 9007199254740991.0)
      type_error(info, op, name, "must hold non-negative integers, element " + std::to_string(k) + " is " +
                                     e.ToString().Utf8Value());
    shape.push_back(static_cast<int64_t>(d));
  }
  return shape;
}

Napi::Object arg_object(const Napi::CallbackInfo& info, size_t i, const char* op, const char* name) {
  Napi::Value v = at(info, i);
  if (!v.IsObject()) type_error(info, op, name, "must be an object");
  return v.As<Napi::Object>();
}

int64_t opt_int(const Napi::Object& o, const char* key, int64_t fallback, const char* op) {
  double d = opt_number(o, key, static_cast<double>(fallback), op);
  if (!std::isfinite(d) || std::floor(d) != d || std::fabs(d) > 9007199254740991.0) {
    Napi::TypeError e = Napi::TypeError::New(o.Env(), std::string(op) + ": option '" + key + "' must be an integer, got " +
                                                          o.Get(key).ToString().Utf8Value());
    e.Set("code", Napi::String::New(o.Env(), "EARG"));
    throw e;
  }
  return static_cast<int64_t>(d);
}

double opt_number(const Napi::Object& o, const char* key, double fallback, const char* op) {
  Napi::Value v = o.Get(key);
  if (v.IsUndefined() || v.IsNull()) return fallback;
  if (!v.IsNumber()) {
    Napi::TypeError e = Napi::TypeError::New(o.Env(), std::string(op) + ": option '" + key + "' must be a number");
    e.Set("code", Napi::String::New(o.Env(), "EARG"));
    throw e;
  }
  return v.As<Napi::Number>().DoubleValue();
}

void define_op(Napi::Env env, Napi::Object exports, const char* name, Prepare prepare) {
  const std::string op_name = name;
  exports.Set(name, Napi::Function::New(
                        env,
                        [prepare, op_name](const Napi::CallbackInfo& info) -> Napi::Value {
                          try {
                            Job job = prepare(info);
                            job.run();
                            return job.result ? job.result(info.Env()) : info.Env().Undefined();
                          } catch (const Error& e) {
                            throw_js(info.Env(), e);
                          } catch (const Napi::Error&) {
                            throw;
                          } catch (const std::exception& e) {
                            // never let a C++ exception terminate the process
                            throw_js(info.Env(), Error("EINTERNAL", op_name + ": " + e.what()));
                          }
                        },
                        name));
  const std::string async_name = std::string(name) + "Async";
  exports.Set(async_name, Napi::Function::New(
                              env,
                              [prepare](const Napi::CallbackInfo& info) -> Napi::Value {
                                Job job;
                                try {
                                  job = prepare(info);
                                } catch (const Error& e) {
                                  throw_js(info.Env(), e);
                                } catch (const Napi::Error&) {
                                  throw;
                                } catch (const std::exception& e) {
                                  throw_js(info.Env(), Error("EINTERNAL", e.what()));
                                }
                                auto* worker = new JobWorker(info.Env(), std::move(job));
                                Napi::Promise p = worker->promise();
                                worker->Queue();
                                return p;
                              },
                              async_name));
}

}  // namespace sw::addon
