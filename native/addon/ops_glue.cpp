// JS entry points of the ops: each unwraps its arguments (on the JS thread), then returns a Job that
// calls the op in native/ops (which checks shapes and dtypes). define_op exposes it twice: `name` runs
// now, `nameAsync` runs on the libuv pool and returns a Promise, so heavy ops never block the loop.
#include <optional>

#include "addon/glue.h"
#include "ops/linear.h"
#include "ops/layers.h"
#include "ops/optim.h"

namespace sw::addon {
namespace {

using Info = const Napi::CallbackInfo&;

std::optional<Tensor> opt_tensor(Info info, size_t i, const char* op, const char* name) {
  Tensor slot;
  if (arg_opt_tensor(info, i, op, name, slot)) return slot;
  return std::nullopt;
}

Tensor* ptr(std::optional<Tensor>& t) { return t ? &*t : nullptr; }

Napi::Value number(Napi::Env env, double v) { return Napi::Number::New(env, v); }

ops::LoraConfig lora_config(Info info, size_t i, const char* op) {
  Napi::Object o = arg_object(info, i, op, "config");
  ops::LoraConfig c;
  c.scale = static_cast<float>(opt_number(o, "scale", 1.0, op));
  c.dropout = static_cast<float>(opt_number(o, "dropout", 0.0, op));
  int64_t seed = opt_int(o, "seed", 0, op);
  if (seed < 0) {
    Napi::TypeError e = Napi::TypeError::New(info.Env(), std::string(op) + ": option 'seed' must be an integer >= 0");
    e.Set("code", Napi::String::New(info.Env(), "EARG"));
    throw e;
  }
  c.seed = static_cast<uint64_t>(seed);
  return c;
}

ops::RopeParams rope_params(Info info, size_t i, const char* op) {
  Napi::Object o = arg_object(info, i, op, "rope");
  ops::RopeParams p;
  p.head_dim = opt_int(o, "headDim", 0, op);
  p.theta = opt_number(o, "theta", 10000.0, op);
  p.linear_factor = opt_number(o, "linearFactor", 1.0, op);
  Napi::Value l3 = o.Get("llama3");
  if (l3.IsObject()) {
    Napi::Object s = l3.As<Napi::Object>();
    p.llama3_factor = opt_number(s, "factor", 8.0, op);
    p.low_freq_factor = opt_number(s, "lowFreqFactor", 1.0, op);
    p.high_freq_factor = opt_number(s, "highFreqFactor", 4.0, op);
    p.original_max_positions = opt_number(s, "originalMaxPositionEmbeddings", 8192.0, op);
  }
  return p;
}

ops::AdamWParams adamw_params(Info info, size_t i, const char* op) {
  Napi::Object o = arg_object(info, i, op, "hyper");
  ops::AdamWParams h;
  h.lr = static_cast<float>(opt_number(o, "lr", 1e-3, op));
  h.beta1 = static_cast<float>(opt_number(o, "beta1", 0.9, op));
  h.beta2 = static_cast<float>(opt_number(o, "beta2", 0.999, op));
  h.eps = static_cast<float>(opt_number(o, "eps", 1e-8, op));
  h.weight_decay = static_cast<float>(opt_number(o, "weightDecay", 0.01, op));
  h.step = opt_int(o, "step", 0, op);
  return h;
}

}  // namespace

void register_ops(Napi::Env env, Napi::Object exports) {
  define_op(env, exports, "matmul", [](Info info) {
    const char* op = "matmul";
    Tensor a = arg_tensor(info, 0, op, "a"), b = arg_tensor(info, 1, op, "b"), c = arg_tensor(info, 2, op, "c");
    bool ta = arg_bool(info, 3, op, "transA"), tb = arg_bool(info, 4, op, "transB");
    float alpha = static_cast<float>(arg_number(info, 5, op, "alpha"));
    float beta = static_cast<float>(arg_number(info, 6, op, "beta"));
    return Job{[=]() mutable { ops::matmul(a, b, c, ta, tb, alpha, beta); }, {}};
  });

  define_op(env, exports, "linearForward", [](Info info) {
    const char* op = "linear_forward";
    Tensor x = arg_tensor(info, 0, op, "x"), w = arg_tensor(info, 1, op, "w"), y = arg_tensor(info, 2, op, "y");
    return Job{[=]() mutable { ops::linear_forward(x, w, y); }, {}};
  });

  define_op(env, exports, "linearBackward", [](Info info) {
    const char* op = "linear_backward";
    Tensor dy = arg_tensor(info, 0, op, "dy"), x = arg_tensor(info, 1, op, "x"), w = arg_tensor(info, 2, op, "w");
    auto dx = opt_tensor(info, 3, op, "dx");
    auto dw = opt_tensor(info, 4, op, "dw");
    return Job{[=]() mutable { ops::linear_backward(dy, x, w, ptr(dx), ptr(dw)); }, {}};
  });

  define_op(env, exports, "loraLinearForward", [](Info info) {
    const char* op = "lora_linear_forward";
    Tensor x = arg_tensor(info, 0, op, "x"), w = arg_tensor(info, 1, op, "w"), a = arg_tensor(info, 2, op, "a"),
           b = arg_tensor(info, 3, op, "b");
    ops::LoraConfig cfg = lora_config(info, 4, op);
    Tensor y = arg_tensor(info, 5, op, "y"), u = arg_tensor(info, 6, op, "u");
    return Job{[=]() mutable { ops::lora_linear_forward(x, w, a, b, cfg, y, u); }, {}};
  });

  define_op(env, exports, "loraLinearBackward", [](Info info) {
    const char* op = "lora_linear_backward";
    Tensor dy = arg_tensor(info, 0, op, "dy"), x = arg_tensor(info, 1, op, "x"), w = arg_tensor(info, 2, op, "w"),
           a = arg_tensor(info, 3, op, "a"), b = arg_tensor(info, 4, op, "b"), u = arg_tensor(info, 5, op, "u");
    ops::LoraConfig cfg = lora_config(info, 6, op);
    auto dx = opt_tensor(info, 7, op, "dx");
    Tensor da = arg_tensor(info, 8, op, "da"), db = arg_tensor(info, 9, op, "db");
    auto dw = opt_tensor(info, 10, op, "dw");
    return Job{[=]() mutable { ops::lora_linear_backward(dy, x, w, a, b, u, cfg, ptr(dx), da, db, ptr(dw)); }, {}};
  });

  define_op(env, exports, "loraScaling", [](Info info) {
    const char* op = "lora_scaling";
    double alpha = arg_number(info, 0, op, "loraAlpha");
    int64_t r = arg_int(info, 1, op, "r");
    bool rs = arg_bool(info, 2, op, "useRslora");
    auto out = std::make_shared<float>(0.0f);
    return Job{[=] { *out = ops::lora_scaling(alpha, r, rs); }, [=](Napi::Env e) { return number(e, *out); }};
  });

  define_op(env, exports, "rmsnormForward", [](Info info) {
    const char* op = "rmsnorm_forward";
    Tensor x = arg_tensor(info, 0, op, "x"), w = arg_tensor(info, 1, op, "w");
    float eps = static_cast<float>(arg_number(info, 2, op, "eps"));
    Tensor y = arg_tensor(info, 3, op, "y"), rstd = arg_tensor(info, 4, op, "rstd");
    return Job{[=]() mutable { ops::rmsnorm_forward(x, w, eps, y, rstd); }, {}};
  });

  define_op(env, exports, "rmsnormBackward", [](Info info) {
    const char* op = "rmsnorm_backward";
    Tensor dy = arg_tensor(info, 0, op, "dy"), x = arg_tensor(info, 1, op, "x"), w = arg_tensor(info, 2, op, "w"),
           rstd = arg_tensor(info, 3, op, "rstd"), dx = arg_tensor(info, 4, op, "dx");
    auto dw = opt_tensor(info, 5, op, "dw");
    return Job{[=]() mutable { ops::rmsnorm_backward(dy, x, w, rstd, dx, ptr(dw)); }, {}};
  });

  define_op(env, exports, "ropeForward", [](Info info) {
    const char* op = "rope_forward";
    Tensor x = arg_tensor(info, 0, op, "x"), pos = arg_tensor(info, 1, op, "positions");
    ops::RopeParams p = rope_params(info, 2, op);
    Tensor y = arg_tensor(info, 3, op, "y");
    return Job{[=]() mutable { ops::rope_forward(x, pos, p, y); }, {}};
  });

  define_op(env, exports, "ropeBackward", [](Info info) {
    const char* op = "rope_backward";
    Tensor dy = arg_tensor(info, 0, op, "dy"), pos = arg_tensor(info, 1, op, "positions");
    ops::RopeParams p = rope_params(info, 2, op);
    Tensor dx = arg_tensor(info, 3, op, "dx");
    return Job{[=]() mutable { ops::rope_backward(dy, pos, p, dx); }, {}};
  });

  define_op(env, exports, "attentionForward", [](Info info) {
    const char* op = "attention_forward";
    Tensor q = arg_tensor(info, 0, op, "q"), k = arg_tensor(info, 1, op, "k"), v = arg_tensor(info, 2, op, "v");
    auto seg = opt_tensor(info, 3, op, "segment");
    float scale = static_cast<float>(arg_number(info, 4, op, "scale"));
    bool causal = arg_bool(info, 5, op, "causal");
    Tensor out = arg_tensor(info, 6, op, "out"), lse = arg_tensor(info, 7, op, "lse");
    bool bf16 = info.Length() > 8 && !info[8].IsUndefined() && arg_bool(info, 8, op, "bf16");
    return Job{[=]() mutable { ops::attention_forward(q, k, v, ptr(seg), scale, causal, out, lse, bf16); }, {}};
  });

  define_op(env, exports, "attentionBackward", [](Info info) {
    const char* op = "attention_backward";
    Tensor q = arg_tensor(info, 0, op, "q"), k = arg_tensor(info, 1, op, "k"), v = arg_tensor(info, 2, op, "v");
    auto seg = opt_tensor(info, 3, op, "segment");
    float scale = static_cast<float>(arg_number(info, 4, op, "scale"));
    bool causal = arg_bool(info, 5, op, "causal");
    Tensor out = arg_tensor(info, 6, op, "out"), lse = arg_tensor(info, 7, op, "lse"),
           dout = arg_tensor(info, 8, op, "dout"), dq = arg_tensor(info, 9, op, "dq"), dk = arg_tensor(info, 10, op, "dk"),
           dv = arg_tensor(info, 11, op, "dv");
    bool bf16 = info.Length() > 12 && !info[12].IsUndefined() && arg_bool(info, 12, op, "bf16");
    return Job{[=]() mutable { ops::attention_backward(q, k, v, ptr(seg), scale, causal, out, lse, dout, dq, dk, dv, bf16); },
               {}};
  });

  define_op(env, exports, "swigluForward", [](Info info) {
    const char* op = "swiglu_forward";
    Tensor g = arg_tensor(info, 0, op, "gate"), u = arg_tensor(info, 1, op, "up"), h = arg_tensor(info, 2, op, "h");
    return Job{[=]() mutable { ops::swiglu_forward(g, u, h); }, {}};
  });

  define_op(env, exports, "swigluBackward", [](Info info) {
    const char* op = "swiglu_backward";
    Tensor dh = arg_tensor(info, 0, op, "dh"), g = arg_tensor(info, 1, op, "gate"), u = arg_tensor(info, 2, op, "up"),
           dg = arg_tensor(info, 3, op, "dgate"), du = arg_tensor(info, 4, op, "dup");
    return Job{[=]() mutable { ops::swiglu_backward(dh, g, u, dg, du); }, {}};
  });

  define_op(env, exports, "embeddingForward", [](Info info) {
    const char* op = "embedding_forward";
    Tensor ids = arg_tensor(info, 0, op, "ids"), table = arg_tensor(info, 1, op, "table"),
           out = arg_tensor(info, 2, op, "out");
    return Job{[=]() mutable { ops::embedding_forward(ids, table, out); }, {}};
  });

  define_op(env, exports, "embeddingBackward", [](Info info) {
    const char* op = "embedding_backward";
    Tensor ids = arg_tensor(info, 0, op, "ids"), dout = arg_tensor(info, 1, op, "dout"),
           dtable = arg_tensor(info, 2, op, "dtable");
    return Job{[=]() mutable { ops::embedding_backward(ids, dout, dtable); }, {}};
  });

  define_op(env, exports, "crossEntropyForward", [](Info info) {
    const char* op = "cross_entropy_forward";
    Tensor logits = arg_tensor(info, 0, op, "logits"), targets = arg_tensor(info, 1, op, "targets");
    int32_t ignore = static_cast<int32_t>(arg_int(info, 2, op, "ignoreIndex"));
    Tensor losses = arg_tensor(info, 3, op, "losses"), lse = arg_tensor(info, 4, op, "lse");
    auto count = std::make_shared<int64_t>(0);
    return Job{[=]() mutable { *count = ops::cross_entropy_forward(logits, targets, ignore, losses, lse); },
               [=](Napi::Env e) { return number(e, static_cast<double>(*count)); }};
  });

  define_op(env, exports, "crossEntropyBackward", [](Info info) {
    const char* op = "cross_entropy_backward";
    Tensor logits = arg_tensor(info, 0, op, "logits"), targets = arg_tensor(info, 1, op, "targets"),
           lse = arg_tensor(info, 2, op, "lse");
    int32_t ignore = static_cast<int32_t>(arg_int(info, 3, op, "ignoreIndex"));
    float scale = static_cast<float>(arg_number(info, 4, op, "gradScale"));
    Tensor dlogits = arg_tensor(info, 5, op, "dlogits");
    return Job{[=]() mutable { ops::cross_entropy_backward(logits, targets, lse, ignore, scale, dlogits); }, {}};
  });

  define_op(env, exports, "add", [](Info info) {
    const char* op = "add";
    Tensor a = arg_tensor(info, 0, op, "a"), b = arg_tensor(info, 1, op, "b"), out = arg_tensor(info, 2, op, "out");
    return Job{[=]() mutable { ops::add(a, b, out); }, {}};
  });

  define_op(env, exports, "accumulate", [](Info info) {
    const char* op = "accumulate";
    Tensor x = arg_tensor(info, 0, op, "x");
    float alpha = static_cast<float>(arg_number(info, 1, op, "alpha"));
    Tensor y = arg_tensor(info, 2, op, "y");
    return Job{[=]() mutable { ops::accumulate(x, alpha, y); }, {}};
  });

  define_op(env, exports, "dropoutForward", [](Info info) {
    const char* op = "dropout_forward";
    Tensor x = arg_tensor(info, 0, op, "x");
    float p = static_cast<float>(arg_number(info, 1, op, "p"));
    uint64_t seed = arg_seed(info, 2, op, "seed");
    Tensor out = arg_tensor(info, 3, op, "out");
    return Job{[=]() mutable { ops::dropout_forward(x, p, seed, out); }, {}};
  });

  define_op(env, exports, "dropoutBackward", [](Info info) {
    const char* op = "dropout_backward";
    Tensor dy = arg_tensor(info, 0, op, "dy");
    float p = static_cast<float>(arg_number(info, 1, op, "p"));
    uint64_t seed = arg_seed(info, 2, op, "seed");
    Tensor dx = arg_tensor(info, 3, op, "dx");
    return Job{[=]() mutable { ops::dropout_backward(dy, p, seed, dx); }, {}};
  });

  define_op(env, exports, "adamwStep", [](Info info) {
    const char* op = "adamw_step";
    auto params = arg_tensor_list(info, 0, op, "params");
    auto grads = arg_tensor_list(info, 1, op, "grads");
    auto m = arg_tensor_list(info, 2, op, "m");
    auto v = arg_tensor_list(info, 3, op, "v");
    ops::AdamWParams hp = adamw_params(info, 4, op);
    return Job{[=]() mutable { ops::adamw_step(params, grads, m, v, hp); }, {}};
  });

  define_op(env, exports, "globalGradNorm", [](Info info) {
    auto grads = arg_tensor_list(info, 0, "global_grad_norm", "grads");
    auto out = std::make_shared<double>(0);
    return Job{[=] { *out = ops::global_grad_norm(grads); }, [=](Napi::Env e) { return number(e, *out); }};
  });

  define_op(env, exports, "clipGradNorm", [](Info info) {
    auto grads = arg_tensor_list(info, 0, "clip_grad_norm", "grads");
    double max_norm = arg_number(info, 1, "clip_grad_norm", "maxNorm");
    auto out = std::make_shared<double>(0);
    return Job{[=]() mutable { *out = ops::clip_grad_norm(grads, max_norm); },
               [=](Napi::Env e) { return number(e, *out); }};
  });

  define_op(env, exports, "zero", [](Info info) {
    auto ts = arg_tensor_list(info, 0, "zero", "tensors");
    return Job{[=]() mutable { ops::zero(ts); }, {}};
  });
}

}  // namespace sw::addon
