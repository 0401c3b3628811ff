// N-API face of the native model (native/model/llama.h): the NativeModel class. Its methods are installed
// on the prototype with define_op, so each exists as `name` (runs now) and `nameAsync` (runs on the libuv
// pool, returns a Promise) exactly like the ops; a job holds the model core (shared) and its argument
// tensors, so a model or tensor released from JS while a job runs stays alive until the job ends.
#include <cmath>
#include <map>
#include <memory>
#include <optional>

#include "addon/glue.h"
#include "model/llama.h"

namespace sw::addon {
namespace {

using Info = const Napi::CallbackInfo&;
using model::Llama;

// Tags instances so that a method called on another object (another wrapped class included) is refused.
const napi_type_tag kModelTag = {0x5354415257454156ull, 0x4e41544d4f44454cull};

[[noreturn]] void arg_error(Napi::Env env, const std::string& msg) {
  Napi::TypeError e = Napi::TypeError::New(env, msg);
  e.Set("code", Napi::String::New(env, "EARG"));
  throw e;
}

class JsModel : public Napi::ObjectWrap<JsModel> {
 public:
  explicit JsModel(Info info);
  std::shared_ptr<Llama> core;
};

std::shared_ptr<Llama> self(Info info, const char* method) {
  Napi::Value t = info.This();
  if (!t.IsObject() || !t.As<Napi::Object>().CheckTypeTag(&kModelTag))
    arg_error(info.Env(), std::string("NativeModel.") + method + ": called on an object that is not a NativeModel");
  JsModel* m = JsModel::Unwrap(t.As<Napi::Object>());
  if (!m->core) {
    Napi::Error e = Napi::Error::New(info.Env(), std::string("NativeModel.") + method + ": the model was released");
    e.Set("code", Napi::String::New(info.Env(), "ERELEASED"));
    throw e;
  }
  return m->core;
}

// ---- reading options

Napi::Value get(const Napi::Object& o, const char* key) { return o.Get(key); }
bool present(const Napi::Value& v) { return !v.IsUndefined() && !v.IsNull(); }

std::optional<Napi::Object> opt_object(Info info, size_t i, const char* op, const char* name) {
  if (i >= info.Length() || !present(info[i])) return std::nullopt;
  return arg_object(info, i, op, name);
}

bool opt_bool(const Napi::Object& o, const char* key, bool fallback, const char* op) {
  Napi::Value v = get(o, key);
  if (!present(v)) return fallback;
  if (!v.IsBoolean()) arg_error(o.Env(), std::string(op) + ": option '" + key + "' must be a boolean");
  return v.As<Napi::Boolean>().Value();
}

std::optional<Tensor> opt_tensor_prop(const Napi::Object& o, const char* key, const char* op) {
  Napi::Value v = get(o, key);
  if (!present(v)) return std::nullopt;
  if (!JsTensor::Is(o.Env(), v)) arg_error(o.Env(), std::string(op) + ": option '" + key + "' must be a Tensor");
  return JsTensor::Unwrap(v.As<Napi::Object>())->get(op, key);
}

std::vector<std::string> string_list(Napi::Env env, const Napi::Value& v, const char* op, const char* name) {
  if (!v.IsArray()) arg_error(env, std::string(op) + ": '" + name + "' must be an array of strings");
  Napi::Array a = v.As<Napi::Array>();
  std::vector<std::string> out;
  for (uint32_t i = 0; i < a.Length(); ++i) {
    Napi::Value e = a.Get(i);
    if (!e.IsString()) arg_error(env, std::string(op) + ": '" + name + "[" + std::to_string(i) + "]' must be a string");
    out.push_back(e.As<Napi::String>().Utf8Value());
  }
  return out;
}

std::vector<int64_t> int_list(Napi::Env env, const Napi::Value& v, const char* op, const char* name) {
  std::vector<int64_t> out;
  if (!present(v)) return out;
  if (!v.IsArray()) arg_error(env, std::string(op) + ": '" + name + "' must be an array of integers");
  Napi::Array a = v.As<Napi::Array>();
  for (uint32_t i = 0; i < a.Length(); ++i) {
    Napi::Value e = a.Get(i);
    double d = e.IsNumber() ? e.As<Napi::Number>().DoubleValue() : 0.5;
    if (std::floor(d) != d) arg_error(env, std::string(op) + ": '" + name + "[" + std::to_string(i) + "]' must be an integer");
    out.push_back(static_cast<int64_t>(d));
  }
  return out;
}

uint64_t seed_value(Napi::Env env, const Napi::Value& v, const char* op, const char* key) {
  if (v.IsBigInt()) {
    bool lossless = true;
    uint64_t s = v.As<Napi::BigInt>().Uint64Value(&lossless);
    if (!lossless) arg_error(env, std::string(op) + ": option '" + key + "' must fit in 64 bits");
    return s;
  }
  double d = v.IsNumber() ? v.As<Napi::Number>().DoubleValue() : -1;
  if (!(d >= 0) || std::floor(d) != d || d > 9007199254740991.0)
    arg_error(env, std::string(op) + ": option '" + key + "' must be an integer >= 0 or a bigint");
  return static_cast<uint64_t>(d);
}

model::LlamaConfig parse_config(Napi::Env env, const Napi::Object& o) {
  const char* op = "NativeModel";
  model::LlamaConfig c;
  auto need = [&](const char* key) -> int64_t {
    if (!present(get(o, key))) arg_error(env, std::string(op) + ": config field '" + key + "' is required");
    return opt_int(o, key, 0, op);
  };
  c.vocab_size = need("vocabSize");
  c.hidden_size = need("hiddenSize");
  c.intermediate_size = need("intermediateSize");
  c.num_layers = need("numHiddenLayers");
  c.num_heads = need("numAttentionHeads");
  c.num_kv_heads = opt_int(o, "numKeyValueHeads", 0, op);
  c.head_dim = opt_int(o, "headDim", 0, op);
  c.rms_norm_eps = static_cast<float>(opt_number(o, "rmsNormEps", 1e-6, op));
  c.rope.theta = opt_number(o, "ropeTheta", 10000.0, op);
  c.tie_word_embeddings = opt_bool(o, "tieWordEmbeddings", false, op);
  c.attention_bias = opt_bool(o, "attentionBias", false, op);
  c.o_proj_bias = opt_bool(o, "oProjBias", false, op);
  c.max_position_embeddings = opt_int(o, "maxPositionEmbeddings", 0, op);
  Napi::Value rs = get(o, "ropeScaling");
  if (present(rs)) {
    if (!rs.IsObject()) arg_error(env, std::string(op) + ": config field 'ropeScaling' must be an object or null");
    Napi::Object s = rs.As<Napi::Object>();
    Napi::Value tv = get(s, "type");
    std::string type = tv.IsString() ? tv.As<Napi::String>().Utf8Value() : "";
    if (type == "llama3") {
      c.rope.llama3_factor = opt_number(s, "factor", 8.0, op);
      c.rope.low_freq_factor = opt_number(s, "lowFreqFactor", 1.0, op);
      c.rope.high_freq_factor = opt_number(s, "highFreqFactor", 4.0, op);
      c.rope.original_max_positions = opt_number(s, "originalMaxPositionEmbeddings", 8192.0, op);
    } else if (type == "linear") {
      c.rope.linear_factor = opt_number(s, "factor", 1.0, op);
    } else if (type != "default") {
      arg_error(env, std::string(op) + ": ropeScaling.type '" + type + "' is not supported (llama3, linear, default)");
    }
  }
  return c;
}

Napi::Object config_object(Napi::Env env, const model::LlamaConfig& c) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("vocabSize", static_cast<double>(c.vocab_size));
  o.Set("hiddenSize", static_cast<double>(c.hidden_size));
  o.Set("intermediateSize", static_cast<double>(c.intermediate_size));
  o.Set("numHiddenLayers", static_cast<double>(c.num_layers));
  o.Set("numAttentionHeads", static_cast<double>(c.num_heads));
  o.Set("numKeyValueHeads", static_cast<double>(c.num_kv_heads));
  o.Set("headDim", static_cast<double>(c.head_dim));
  o.Set("rmsNormEps", c.rms_norm_eps);
  o.Set("ropeTheta", c.rope.theta);
  o.Set("tieWordEmbeddings", c.tie_word_embeddings);
  o.Set("attentionBias", c.attention_bias);
  o.Set("oProjBias", c.o_proj_bias);
  o.Set("maxPositionEmbeddings", static_cast<double>(c.max_position_embeddings));
  if (c.rope.llama3_factor > 0) {
    Napi::Object s = Napi::Object::New(env);
    s.Set("type", "llama3");
    s.Set("factor", c.rope.llama3_factor);
    s.Set("lowFreqFactor", c.rope.low_freq_factor);
    s.Set("highFreqFactor", c.rope.high_freq_factor);
    s.Set("originalMaxPositionEmbeddings", c.rope.original_max_positions);
    o.Set("ropeScaling", s);
  } else if (c.rope.linear_factor != 1) {
    Napi::Object s = Napi::Object::New(env);
    s.Set("type", "linear");
    s.Set("factor", c.rope.linear_factor);
    o.Set("ropeScaling", s);
  } else {
    o.Set("ropeScaling", env.Null());
  }
  return o;
}

JsModel::JsModel(Info info) : Napi::ObjectWrap<JsModel>(info) {
  const char* op = "NativeModel";
  Napi::Env env = info.Env();
  if (!info.IsConstructCall()) arg_error(env, "NativeModel must be called with new");
  Napi::Object cfg = arg_object(info, 0, op, "config");
  Napi::Object w = arg_object(info, 1, op, "weights");
  model::LlamaConfig c = parse_config(env, cfg);
  std::map<std::string, Tensor> weights;
  Napi::Array names = w.GetPropertyNames();
  for (uint32_t i = 0; i < names.Length(); ++i) {
    std::string name = names.Get(i).ToString().Utf8Value();
    Napi::Value v = w.Get(name);
    if (!JsTensor::Is(env, v)) arg_error(env, std::string(op) + ": weights['" + name + "'] must be a Tensor");
    weights[name] = JsTensor::Unwrap(v.As<Napi::Object>())->get(op, name.c_str());
  }
  try {
    core = std::make_shared<Llama>(c, weights);
  } catch (const Error& e) {
    throw_js(env, e);
  }
  info.This().As<Napi::Object>().TypeTag(&kModelTag);
}

// ---- results

Napi::Value loss_object(Napi::Env env, const model::LossResult& r) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("loss", r.loss);
  o.Set("lossSum", r.loss_sum);
  o.Set("tokens", static_cast<double>(r.tokens));
  return o;
}

struct StepArgs {
  Tensor ids, targets;
  std::optional<Tensor> positions, segments;
  model::StepOptions o;
  const model::StepOptions& options() {
    o.positions = positions ? &*positions : nullptr;
    o.segments = segments ? &*segments : nullptr;
    return o;
  }
};

std::shared_ptr<StepArgs> step_args(Info info, const char* op, bool with_targets) {
  auto a = std::make_shared<StepArgs>();
  a->ids = arg_tensor(info, 0, op, "ids");
  size_t oi = 1;
  if (with_targets) {
    a->targets = arg_tensor(info, 1, op, "targets");
    oi = 2;
  }
  if (auto o = opt_object(info, oi, op, "options")) {
    a->positions = opt_tensor_prop(*o, "positions", op);
    a->segments = opt_tensor_prop(*o, "segments", op);
    Napi::Value sv = get(*o, "seed");
    if (present(sv)) {
      a->o.seed = seed_value(info.Env(), sv, op, "seed");
      a->o.has_seed = true;
    }
    a->o.checkpointing = opt_bool(*o, "checkpointing", false, op);
    a->o.loss_denominator = opt_number(*o, "lossDenominator", 0.0, op);
    a->o.chunk_tokens = opt_int(*o, "chunkTokens", 0, op);
    if (present(get(*o, "chunkTokens")) && a->o.chunk_tokens < 1)
      arg_error(info.Env(), std::string(op) + ": option 'chunkTokens' must be >= 1, got " + std::to_string(a->o.chunk_tokens));
    Napi::Value ap = get(*o, "attentionPrecision");
    if (present(ap)) {
      const std::string v = ap.IsString() ? ap.As<Napi::String>().Utf8Value() : std::string();
      if (v != "f32" && v != "bf16")
        arg_error(info.Env(), std::string(op) + ": option 'attentionPrecision' must be 'f32' or 'bf16'");
      a->o.attention_bf16 = v == "bf16";
    }
  }
  return a;
}

Napi::Object tensor_map(Napi::Env env, const std::vector<std::pair<std::string, Tensor>>& ts) {
  Napi::Object o = Napi::Object::New(env);
  for (const auto& [name, t] : ts) o.Set(name, JsTensor::New(env, t));
  return o;
}

}  // namespace

void register_model(Napi::Env env, Napi::Object exports) {
  Napi::Function ctor = JsModel::DefineClass(env, "NativeModel", {});
  Napi::Object proto = ctor.Get("prototype").As<Napi::Object>();

  define_op(env, proto, "addLora", [](Info info) {
    const char* op = "NativeModel.addLora";
    auto m = self(info, "addLora");
    Napi::Object o = arg_object(info, 0, op, "config");
    model::LoraSettings s;
    s.r = opt_int(o, "r", 8, op);
    s.lora_alpha = opt_number(o, "loraAlpha", static_cast<double>(s.r), op);
    s.lora_dropout = static_cast<float>(opt_number(o, "loraDropout", 0.0, op));
    s.use_rslora = opt_bool(o, "useRslora", false, op);
    Napi::Value sv = get(o, "seed");
    if (present(sv)) s.seed = seed_value(info.Env(), sv, op, "seed");
    for (const std::string& name : string_list(info.Env(), get(o, "targetModules"), op, "targetModules")) {
      try {
        s.target_modules.push_back(model::parse_proj(name));
      } catch (const Error& e) {
        arg_error(info.Env(), std::string(op) + ": targetModules: " + e.what());
      }
    }
    s.layers_to_transform = int_list(info.Env(), get(o, "layersToTransform"), op, "layersToTransform");
    return Job{[m, s] { m->add_lora(s); }, {}};
  });

  define_op(env, proto, "enableFullFinetune", [](Info info) {
    const char* op = "NativeModel.enableFullFinetune";
    auto m = self(info, "enableFullFinetune");
    auto modules = string_list(info.Env(), info.Length() > 0 ? info[0] : info.Env().Undefined(), op, "modules");
    auto layers = int_list(info.Env(), info.Length() > 1 ? info[1] : info.Env().Undefined(), op, "layers");
    return Job{[m, modules, layers] { m->enable_full_finetune(modules, layers); }, {}};
  });

  define_op(env, proto, "trainStep", [](Info info) {
    auto m = self(info, "trainStep");
    auto a = step_args(info, "NativeModel.trainStep", true);
    auto r = std::make_shared<model::LossResult>();
    return Job{[m, a, r] { *r = m->train_step(a->ids, a->targets, a->options()); },
               [r](Napi::Env e) { return loss_object(e, *r); }};
  });

  define_op(env, proto, "evalLoss", [](Info info) {
    auto m = self(info, "evalLoss");
    auto a = step_args(info, "NativeModel.evalLoss", true);
    auto r = std::make_shared<model::LossResult>();
    return Job{[m, a, r] { *r = m->eval_loss(a->ids, a->targets, a->options()); },
               [r](Napi::Env e) { return loss_object(e, *r); }};
  });

  define_op(env, proto, "logits", [](Info info) {
    auto m = self(info, "logits");
    auto a = step_args(info, "NativeModel.logits", false);
    auto out = std::make_shared<Tensor>();
    return Job{[m, a, out] { *out = m->logits(a->ids, a->options()); },
               [out](Napi::Env e) { return JsTensor::New(e, *out); }};
  });

  define_op(env, proto, "zeroGrad", [](Info info) {
    auto m = self(info, "zeroGrad");
    return Job{[m] { m->zero_grad(); }, {}};
  });

  define_op(env, proto, "gradNorm", [](Info info) {
    auto m = self(info, "gradNorm");
    auto r = std::make_shared<double>(0);
    return Job{[m, r] { *r = m->grad_norm(); }, [r](Napi::Env e) { return Napi::Number::New(e, *r); }};
  });

  define_op(env, proto, "clipGradNorm", [](Info info) {
    auto m = self(info, "clipGradNorm");
    double max_norm = arg_number(info, 0, "NativeModel.clipGradNorm", "maxNorm");
    auto r = std::make_shared<double>(0);
    return Job{[m, r, max_norm] { *r = m->clip_grad_norm(max_norm); },
               [r](Napi::Env e) { return Napi::Number::New(e, *r); }};
  });

  define_op(env, proto, "optimizerStep", [](Info info) {
    const char* op = "NativeModel.optimizerStep";
    auto m = self(info, "optimizerStep");
    Napi::Object o = arg_object(info, 0, op, "hyper");
    model::AdamWHyper h;
    h.lr = static_cast<float>(opt_number(o, "lr", 1e-3, op));
    h.beta1 = static_cast<float>(opt_number(o, "beta1", 0.9, op));
    h.beta2 = static_cast<float>(opt_number(o, "beta2", 0.999, op));
    h.eps = static_cast<float>(opt_number(o, "eps", 1e-8, op));
    h.weight_decay = static_cast<float>(opt_number(o, "weightDecay", 0.0, op));
    if (!present(get(o, "step"))) arg_error(info.Env(), std::string(op) + ": option 'step' (the step number, >= 1) is required");
    h.step = opt_int(o, "step", 1, op);
    return Job{[m, h] { m->optimizer_step(h); }, {}};
  });

  define_op(env, proto, "parameters", [](Info info) {
    auto m = self(info, "parameters");
    std::string kind = info.Length() > 0 && present(info[0]) ? arg_string(info, 0, "NativeModel.parameters", "kind") : "param";
    auto out = std::make_shared<std::vector<std::pair<std::string, Tensor>>>();
    return Job{[m, kind, out] { *out = m->tensors(kind); }, [out](Napi::Env e) { return tensor_map(e, *out); }};
  });

  define_op(env, proto, "setParameter", [](Info info) {
    const char* op = "NativeModel.setParameter";
    auto m = self(info, "setParameter");
    std::string name = arg_string(info, 0, op, "name");
    Tensor t = arg_tensor(info, 1, op, "value");
    std::string kind = info.Length() > 2 && present(info[2]) ? arg_string(info, 2, op, "kind") : "param";
    return Job{[m, name, t, kind] { m->set_tensor(kind, name, t); }, {}};
  });

  define_op(env, proto, "prefill", [](Info info) {
    const char* op = "NativeModel.prefill";
    auto m = self(info, "prefill");
    Tensor ids = arg_tensor(info, 0, op, "ids");
    Tensor slot;
    std::optional<Tensor> lengths;
    if (arg_opt_tensor(info, 1, op, "lengths", slot)) lengths = slot;
    int64_t capacity = info.Length() > 2 && present(info[2]) ? arg_int(info, 2, op, "capacity") : 0;
    auto out = std::make_shared<Tensor>();
    return Job{[m, ids, lengths, capacity, out] { *out = m->prefill(ids, lengths ? &*lengths : nullptr, capacity); },
               [out](Napi::Env e) { return JsTensor::New(e, *out); }};
  });

  define_op(env, proto, "decodeStep", [](Info info) {
    const char* op = "NativeModel.decodeStep";
    auto m = self(info, "decodeStep");
    Tensor ids = arg_tensor(info, 0, op, "ids");
    Tensor slot;
    std::optional<Tensor> slots;
    if (arg_opt_tensor(info, 1, op, "slots", slot)) slots = slot;
    auto out = std::make_shared<Tensor>();
    return Job{[m, ids, slots, out] { *out = m->decode_step(ids, slots ? &*slots : nullptr); },
               [out](Napi::Env e) { return JsTensor::New(e, *out); }};
  });

  define_op(env, proto, "resetCache", [](Info info) {
    auto m = self(info, "resetCache");
    return Job{[m] { m->reset_cache(); }, {}};
  });

  define_op(env, proto, "cacheLengths", [](Info info) {
    auto m = self(info, "cacheLengths");
    auto out = std::make_shared<std::vector<int32_t>>();
    return Job{[m, out] { *out = m->cache_lengths(); }, [out](Napi::Env e) {
                 Napi::Array a = Napi::Array::New(e, out->size());
                 for (size_t i = 0; i < out->size(); ++i) a.Set(static_cast<uint32_t>(i), (*out)[i]);
                 return a;
               }};
  });

  define_op(env, proto, "merge", [](Info info) {
    auto m = self(info, "merge");
    return Job{[m] { m->merge(); }, {}};
  });

  define_op(env, proto, "unmerge", [](Info info) {
    auto m = self(info, "unmerge");
    return Job{[m] { m->unmerge(); }, {}};
  });

  define_op(env, proto, "releaseBuffers", [](Info info) {
    auto m = self(info, "releaseBuffers");
    return Job{[m] { m->release_workspaces(); }, {}};
  });

  // Cheap reads (no job needed, but uniform): state of the model.
  define_op(env, proto, "info", [](Info info) {
    auto m = self(info, "info");
    auto stats = std::make_shared<model::MemoryStats>();
    return Job{[m, stats] { *stats = m->memory(); }, [m, stats](Napi::Env e) {
                 Napi::Object o = Napi::Object::New(e);
                 o.Set("config", config_object(e, m->config()));
                 o.Set("merged", m->merged());
                 Napi::Object mem = Napi::Object::New(e);
                 mem.Set("baseWeightBytes", static_cast<double>(stats->base_weight_bytes));
                 mem.Set("mappedWeightBytes", static_cast<double>(stats->mapped_weight_bytes));
                 mem.Set("ownedWeightBytes", static_cast<double>(stats->owned_weight_bytes));
                 mem.Set("trainableBytes", static_cast<double>(stats->trainable_bytes));
                 mem.Set("activationBytes", static_cast<double>(stats->activation_bytes));
                 mem.Set("kvCacheBytes", static_cast<double>(stats->kv_cache_bytes));
                 mem.Set("mergedBytes", static_cast<double>(stats->merged_bytes));
                 o.Set("memory", mem);
                 return o;
               }};
  });

  proto.Set("release", Napi::Function::New(env, [](Info info) -> Napi::Value {
              Napi::Value t = info.This();
              if (t.IsObject() && t.As<Napi::Object>().CheckTypeTag(&kModelTag))
                JsModel::Unwrap(t.As<Napi::Object>())->core.reset();
              return info.Env().Undefined();
            }, "release"));
  proto.Set("released", Napi::Function::New(env, [](Info info) -> Napi::Value {
              Napi::Value t = info.This();
              bool released = !(t.IsObject() && t.As<Napi::Object>().CheckTypeTag(&kModelTag) &&
                                JsModel::Unwrap(t.As<Napi::Object>())->core);
              return Napi::Boolean::New(info.Env(), released);
            }, "released"));

  exports.Set("NativeModel", ctor);
}

}  // namespace sw::addon
