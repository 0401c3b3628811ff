#include <cmath>
#include <cstring>

#include "addon/glue.h"
#ifdef SW_HAVE_CUDA
#include "cuda/device.h"
#endif

namespace sw::addon {
namespace {
// Only tensors made by the addon itself: `new Tensor()` from JS is refused.
constexpr uint32_t kToken = 0x53575446;  // "SWTF"
}  // namespace

Napi::Function JsTensor::Define(Napi::Env env) {
  return DefineClass(env, "NativeTensor",
                     {
                         InstanceAccessor<&JsTensor::Dtype>("dtype"),
                         InstanceAccessor<&JsTensor::Shape>("shape"),
                         InstanceAccessor<&JsTensor::Device>("device"),
                         InstanceAccessor<&JsTensor::Readonly>("readonly"),
                         InstanceAccessor<&JsTensor::Released>("released"),
                         InstanceAccessor<&JsTensor::Nbytes>("nbytes"),
                         InstanceAccessor<&JsTensor::ByteOffset>("byteOffset"),
                         InstanceAccessor<&JsTensor::StorageKind>("storageKind"),
                         InstanceMethod<&JsTensor::Buffer>("buffer"),
                         InstanceMethod<&JsTensor::Release>("release"),
                         InstanceMethod<&JsTensor::Reshape>("reshape"),
                         InstanceMethod<&JsTensor::To>("to"),
                     });
}

Napi::Object JsTensor::New(Napi::Env env, Tensor t) {
  auto* data = env.GetInstanceData<AddonData>();
  Napi::Object obj = data->tensor_ctor.New({Napi::Number::New(env, kToken)});
  JsTensor* self = Unwrap(obj);
  self->t_ = std::move(t);
  self->released_ = false;
  self->attach(env);
  return obj;
}

bool JsTensor::Is(Napi::Env env, const Napi::Value& v) {
  if (!v.IsObject()) return false;
  auto* data = env.GetInstanceData<AddonData>();
  return v.As<Napi::Object>().InstanceOf(data->tensor_ctor.Value());
}

JsTensor::JsTensor(const Napi::CallbackInfo& info) : Napi::ObjectWrap<JsTensor>(info) {
  if (info.Length() != 1 || !info[0].IsNumber() || info[0].As<Napi::Number>().Uint32Value() != kToken)
    throw Napi::TypeError::New(info.Env(), "NativeTensor cannot be constructed directly: use Tensor.empty, "
                                           "Tensor.fromArray or Tensor.mapFile");
}

JsTensor::~JsTensor() { detach(); }

void JsTensor::attach(Napi::Env env) {
  views_ = env.GetInstanceData<AddonData>()->views;
  views_->entries[t_.storage.get()].tensors++;
}

void JsTensor::detach() {
  if (!views_ || !t_.storage) return;
  if (views_->env_alive) {
    auto it = views_->entries.find(t_.storage.get());
    if (it != views_->entries.end() && --it->second.tensors <= 0) views_->entries.erase(it);
  }
  views_.reset();
}

const Tensor& JsTensor::get(const char* op, const char* arg) const {
  if (released_) {
    Napi::TypeError e = Napi::TypeError::New(Env(), std::string(op) + ": argument '" + arg + "' is a released tensor");
    e.Set("code", Napi::String::New(Env(), "ERELEASED"));
    throw e;
  }
  return t_;
}

Napi::Value JsTensor::Dtype(const Napi::CallbackInfo& info) { return Napi::String::New(info.Env(), dtype_name(t_.dtype)); }

Napi::Value JsTensor::Shape(const Napi::CallbackInfo& info) {
  Napi::Array a = Napi::Array::New(info.Env(), t_.shape.size());
  for (size_t i = 0; i < t_.shape.size(); ++i) a.Set(i, Napi::Number::New(info.Env(), static_cast<double>(t_.shape[i])));
  return a;
}

Napi::Value JsTensor::Device(const Napi::CallbackInfo& info) { return Napi::String::New(info.Env(), device_name(t_.device())); }
Napi::Value JsTensor::Readonly(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), t_.readonly()); }
Napi::Value JsTensor::Released(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), released_); }
Napi::Value JsTensor::Nbytes(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), static_cast<double>(t_.nbytes())); }
Napi::Value JsTensor::ByteOffset(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), static_cast<double>(t_.offset)); }
Napi::Value JsTensor::StorageKind(const Napi::CallbackInfo& info) {
  return Napi::String::New(info.Env(), t_.storage ? t_.storage->kind() : "none");
}

// The storage's memory as an ArrayBuffer, without a copy. The buffer keeps the storage alive (its
// finalizer holds a reference), so a view stays valid after release(); only one buffer per storage is
// ever created (see AddonData::ViewEntry).
Napi::Value JsTensor::Buffer(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const Tensor& t = get("buffer", "this");
  if (t.device() != Device::CPU)
    throw Napi::TypeError::New(env, "buffer: tensor " + t.describe() + " is on the device; copy it with .to('cpu') first");
  auto& entry = views_->entries[t.storage.get()];
  if (entry.buffer.IsEmpty()) {
    auto* keep = new std::shared_ptr<Storage>(t.storage);
    Napi::ArrayBuffer ab = Napi::ArrayBuffer::New(
        env, t.storage->data(), t.storage->bytes(),
        [](Napi::Env, void*, std::shared_ptr<Storage>* hint) { delete hint; }, keep);
    entry.buffer = Napi::Persistent(ab);
  }
  return entry.buffer.Value();
}

Napi::Value JsTensor::Release(const Napi::CallbackInfo& info) {
  if (!released_) {
    detach();
    t_ = Tensor{};
    released_ = true;
  }
  return info.Env().Undefined();
}

Napi::Value JsTensor::Reshape(const Napi::CallbackInfo& info) {
  const Tensor& t = get("reshape", "this");
  std::vector<int64_t> shape = arg_shape(info, 0, "reshape", "shape");
  Tensor r = t;
  r.shape = shape;
  if (r.numel() != t.numel())
    throw Napi::TypeError::New(info.Env(), "reshape: cannot view " + t.describe() + " as " + shape_str(shape) +
                                               " (" + std::to_string(t.numel()) + " vs " + std::to_string(r.numel()) +
                                               " elements)");
  return New(info.Env(), std::move(r));
}

Napi::Value JsTensor::To(const Napi::CallbackInfo& info) {
  const Tensor& t = get("to", "this");
  const std::string dev = arg_string(info, 0, "to", "device");
  if (dev != "cpu" && dev != "cuda")
    throw Napi::TypeError::New(info.Env(), "to: argument 'device' must be 'cpu' or 'cuda', got '" + dev + "'");
  try {
    const sw::Device want = dev == "cpu" ? sw::Device::CPU : sw::Device::CUDA;
    if (want == t.device()) return info.This();
#ifdef SW_HAVE_CUDA
    Tensor out = empty(t.dtype, t.shape, want);
    cuda::copy(t, out);
    return New(info.Env(), std::move(out));
#else
    throw Error("ENODEV", "to: this build has no CUDA backend (nvcc was not found when it was built)");
#endif
  } catch (const Error& e) {
    throw_js(info.Env(), e);
  }
}

}  // namespace sw::addon
