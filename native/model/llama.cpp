// Llama: loading the weights by their Hugging Face names, attaching LoRA adapters and full fine-tuning,
// the trainable tensors (names, grads, moments), merging, memory accounting. The passes themselves are in
// train.cpp (training and evaluation) and generate.cpp (KV cache).
#include "model/llama.h"

#include <cmath>
#include <cstring>

#include "core/error.h"
#include "model/rng.h"
#include "model/workspace.h"
#include "ops/linear.h"

namespace sw::model {

namespace {

Error model_error(const std::string& msg) { return Error("EMODEL", "Llama: " + msg); }

bool is_mapped(const Tensor& t) { return t.storage && std::strcmp(t.storage->kind(), "mmap") == 0; }

// Hugging Face names of the weights one layer reads.
std::string layer_prefix(int64_t l) { return "model.layers." + std::to_string(l) + "."; }

}  // namespace

std::string proj_path(int64_t layer, Proj p) {
  return layer_prefix(layer) + proj_parent(p) + "." + proj_name(p);
}

Llama::Llama(const LlamaConfig& cfg_in, const std::map<std::string, Tensor>& weights) : cfg_(cfg_in) {
  LlamaConfig& c = cfg_;
  auto positive = [](const char* field, int64_t v) {
    if (v < 1) throw model_error(std::string("config field ") + field + " must be >= 1, got " + std::to_string(v));
  };
  positive("vocab_size", c.vocab_size);
  positive("hidden_size", c.hidden_size);
  positive("intermediate_size", c.intermediate_size);
  positive("num_hidden_layers", c.num_layers);
  positive("num_attention_heads", c.num_heads);
  if (c.num_kv_heads == 0) c.num_kv_heads = c.num_heads;
  positive("num_key_value_heads", c.num_kv_heads);
  if (c.num_heads % c.num_kv_heads != 0)
    throw model_error("num_attention_heads (" + std::to_string(c.num_heads) + ") must be a multiple of num_key_value_heads (" +
                      std::to_string(c.num_kv_heads) + ")");
  if (c.head_dim == 0) {
    if (c.hidden_size % c.num_heads != 0)
      throw model_error("hidden_size (" + std::to_string(c.hidden_size) + ") is not a multiple of num_attention_heads (" +
                        std::to_string(c.num_heads) + ") and no head_dim is given");
    c.head_dim = c.hidden_size / c.num_heads;
  }
  if (c.head_dim < 2 || c.head_dim % 2 != 0)
    throw model_error("head_dim must be even and >= 2 (rotary embedding), got " + std::to_string(c.head_dim));
  if (!(c.rms_norm_eps > 0)) throw model_error("rms_norm_eps must be > 0, got " + std::to_string(c.rms_norm_eps));
  if (!(c.rope.theta > 0)) throw model_error("rope_theta must be > 0, got " + std::to_string(c.rope.theta));
  c.rope.head_dim = c.head_dim;

  const int64_t C = c.hidden_size, I = c.intermediate_size, V = c.vocab_size;
  const int64_t qd = c.num_heads * c.head_dim, kvd = c.num_kv_heads * c.head_dim;

  std::vector<std::string> missing;
  auto take = [&](const std::string& name, const std::vector<int64_t>& shape) -> Tensor {
    auto it = weights.find(name);
    if (it == weights.end()) {
      missing.push_back(name);
      return Tensor();
    }
    const Tensor& t = it->second;
    if (t.device() != Device::CPU) throw model_error("weight '" + name + "' is on " + device_name(t.device()) + "; the model runs on the CPU");
    if (t.dtype == DType::I32) throw model_error("weight '" + name + "' must be f32, bf16 or f16, got " + t.describe());
    if (t.shape != shape)
      throw model_error("weight '" + name + "' must have shape " + shape_str(shape) + " for this config, got " + t.describe());
    return t;
  };
  // Matrices: f32 and bf16 are read in place (the GEMM takes both); f16 is widened to f32 once.
  auto matrix = [&](const std::string& name, const std::vector<int64_t>& shape) -> Tensor {
    Tensor t = take(name, shape);
    if (!t.storage || t.dtype != DType::F16) return t;
    owned_weights_.push_back(convert(t, DType::F32));
    return owned_weights_.back();
  };
  // Vectors (norm weights, biases): small, converted to owned f32 once.
  auto vec = [&](const std::string& name, int64_t n) -> Tensor {
    Tensor t = take(name, {n});
    if (!t.storage) return t;
    owned_weights_.push_back(convert(t, DType::F32));
    return owned_weights_.back();
  };

  embed_ = matrix("model.embed_tokens.weight", {V, C});
  norm_ = vec("model.norm.weight", C);
  lm_head_ = c.tie_word_embeddings ? embed_ : matrix("lm_head.weight", {V, C});
  layers_.resize(c.num_layers);
  for (int64_t l = 0; l < c.num_layers; ++l) {
    Layer& L = layers_[l];
    const std::string pre = layer_prefix(l);
    L.ln1 = vec(pre + "input_layernorm.weight", C);
    L.ln2 = vec(pre + "post_attention_layernorm.weight", C);
    const int64_t outs[kProjCount] = {qd, kvd, kvd, C, I, I, C};
    const int64_t ins[kProjCount] = {C, C, C, qd, C, C, I};
    for (int p = 0; p < kProjCount; ++p) {
      LoraLinear& m = L.proj[p];
      m.path = proj_path(l, static_cast<Proj>(p));
      m.in = ins[p];
      m.out = outs[p];
      m.base = matrix(m.path + ".weight", {m.out, m.in});
      if ((c.attention_bias && p <= static_cast<int>(Proj::V)) || (c.o_proj_bias && p == static_cast<int>(Proj::O)))
        m.bias = vec(m.path + ".bias", m.out);
    }
  }
  if (!missing.empty()) {
    std::string list;
    for (size_t i = 0; i < missing.size() && i < 8; ++i) list += (i ? ", " : "") + missing[i];
    if (missing.size() > 8) list += " (and " + std::to_string(missing.size() - 8) + " more)";
    throw model_error(std::to_string(missing.size()) + " weight(s) missing: " + list);
  }
}

Llama::~Llama() = default;

// ---------------------------------------------------------------------------------------------------
// adapters and trainable modules

void Llama::add_lora(const LoraSettings& s) {
  std::lock_guard<std::mutex> lock(mu_);
  if (s.r < 1) throw model_error("add_lora: r must be >= 1, got " + std::to_string(s.r));
  if (!std::isfinite(s.lora_alpha)) throw model_error("add_lora: lora_alpha must be finite");
  if (!(s.lora_dropout >= 0 && s.lora_dropout < 1))
    throw model_error("add_lora: lora_dropout must be in [0, 1), got " + std::to_string(s.lora_dropout));
  if (s.target_modules.empty()) throw model_error("add_lora: target_modules is empty");
  if (lora_r_ > 0) throw model_error("add_lora: the model already has a LoRA adapter (one adapter per model)");
  if (merged_) throw model_error("add_lora: unmerge first");
  std::vector<bool> layer_on(cfg_.num_layers, s.layers_to_transform.empty());
  for (int64_t l : s.layers_to_transform) {
    if (l < 0 || l >= cfg_.num_layers)
      throw model_error("add_lora: layers_to_transform holds " + std::to_string(l) + ", outside [0, " +
                        std::to_string(cfg_.num_layers) + ")");
    layer_on[l] = true;
  }
  for (Proj p : s.target_modules)
    for (int64_t l = 0; l < cfg_.num_layers; ++l)
      if (layer_on[l] && layers_[l].proj[static_cast<int>(p)].full())
        throw model_error("add_lora: " + proj_path(l, p) + " is fully fine-tuned; it cannot also get an adapter");
  const float scale = ops::lora_scaling(s.lora_alpha, s.r, s.use_rslora);
  for (int64_t l = 0; l < cfg_.num_layers; ++l) {
    if (!layer_on[l]) continue;
    for (Proj p : s.target_modules) {
      LoraLinear& m = layers_[l].proj[static_cast<int>(p)];
      if (m.has_lora()) continue;  // a module named twice
      m.r = s.r;
      m.scale = scale;
      m.dropout = s.lora_dropout;
      m.lora_a = empty(DType::F32, {s.r, m.in});
      m.lora_b = empty(DType::F32, {m.out, s.r});  // zeros: the adapter starts as the identity change
      m.grad_a = empty(DType::F32, {s.r, m.in});
      m.grad_b = empty(DType::F32, {m.out, s.r});
      // PEFT: nn.init.kaiming_uniform_(lora_A, a=sqrt(5)) -> U(-b, b), b = sqrt(6 / ((1 + 5)·fan_in)) = 1/sqrt(in)
      const double bound = 1.0 / std::sqrt(static_cast<double>(m.in));
      Rng rng(s.seed, static_cast<uint64_t>(l) * kProjCount + static_cast<uint64_t>(p));
      float* a = m.lora_a.data<float>();
      for (int64_t i = 0, n = m.lora_a.numel(); i < n; ++i) a[i] = static_cast<float>((2 * rng.uniform() - 1) * bound);
    }
  }
  lora_r_ = s.r;
  lora_dropout_ = s.lora_dropout;
  step_counter_ = s.seed;
  rebuild_trainables();
  drop_workspaces();
}

void Llama::enable_full_finetune(const std::vector<std::string>& modules, const std::vector<int64_t>& layers) {
  std::lock_guard<std::mutex> lock(mu_);
  if (merged_) throw model_error("enable_full_finetune: unmerge first");
  std::vector<bool> layer_on(cfg_.num_layers, layers.empty());
  for (int64_t l : layers) {
    if (l < 0 || l >= cfg_.num_layers)
      throw model_error("enable_full_finetune: layer " + std::to_string(l) + " is outside [0, " +
                        std::to_string(cfg_.num_layers) + ")");
    layer_on[l] = true;
  }
  auto own = [](Tensor& t) {  // a private f32 copy (the loaded one may be shared with JS)
    t = convert(t, DType::F32);
  };
  for (const std::string& name : modules) {
    if (name == "norm") {
      if (!dnorm_.storage) {
        own(norm_);
        dnorm_ = empty(DType::F32, norm_.shape);
      }
      continue;
    }
    if (name == "input_layernorm" || name == "post_attention_layernorm") {
      for (int64_t l = 0; l < cfg_.num_layers; ++l) {
        if (!layer_on[l]) continue;
        Layer& L = layers_[l];
        Tensor& w = name == "input_layernorm" ? L.ln1 : L.ln2;
        Tensor& g = name == "input_layernorm" ? L.dln1 : L.dln2;
        if (g.storage) continue;
        own(w);
        g = empty(DType::F32, w.shape);
      }
      continue;
    }
    Proj p;
    try {
      p = parse_proj(name);
    } catch (const Error&) {
      throw model_error("enable_full_finetune: unknown module '" + name +
                        "' (q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj, input_layernorm, "
                        "post_attention_layernorm, norm)");
    }
    for (int64_t l = 0; l < cfg_.num_layers; ++l) {
      if (!layer_on[l]) continue;
      LoraLinear& m = layers_[l].proj[static_cast<int>(p)];
      if (m.has_lora()) throw model_error("enable_full_finetune: " + m.path + " has a LoRA adapter");
      if (m.full()) continue;
      m.master = convert(m.base, DType::F32);
      m.grad_master = empty(DType::F32, m.master.shape);
      if (m.bias.storage) {
        own(m.bias);
        m.grad_bias = empty(DType::F32, m.bias.shape);
      }
    }
  }
  rebuild_trainables();
  drop_workspaces();
}

Trainable Llama::make_trainable(const std::string& name, Tensor param, Tensor grad, bool decay) {
  for (Trainable& t : trainables_)  // keep the optimizer state of tensors that already were trainable
    if (t.name == name) return t;
  Trainable t;
  t.name = name;
  t.param = std::move(param);
  t.grad = std::move(grad);
  t.exp_avg = empty(DType::F32, t.param.shape);
  t.exp_avg_sq = empty(DType::F32, t.param.shape);
  t.decay = decay;
  return t;
}

// PEFT's order of named_parameters: layer by layer, module by module, lora_A before lora_B.
void Llama::rebuild_trainables() {
  std::vector<Trainable> next;
  for (int64_t l = 0; l < cfg_.num_layers; ++l) {
    Layer& L = layers_[l];
    const std::string pre = layer_prefix(l);
    for (int p = 0; p < kProjCount; ++p) {
      LoraLinear& m = L.proj[p];
      if (m.has_lora()) {
        next.push_back(make_trainable("base_model.model." + m.path + ".lora_A.weight", m.lora_a, m.grad_a, true));
        next.push_back(make_trainable("base_model.model." + m.path + ".lora_B.weight", m.lora_b, m.grad_b, true));
      }
      if (m.full()) {
        next.push_back(make_trainable(m.path + ".weight", m.master, m.grad_master, true));
        if (m.grad_bias.storage) next.push_back(make_trainable(m.path + ".bias", m.bias, m.grad_bias, false));
      }
    }
    if (L.dln1.storage) next.push_back(make_trainable(pre + "input_layernorm.weight", L.ln1, L.dln1, false));
    if (L.dln2.storage) next.push_back(make_trainable(pre + "post_attention_layernorm.weight", L.ln2, L.dln2, false));
  }
  if (dnorm_.storage) next.push_back(make_trainable("model.norm.weight", norm_, dnorm_, false));
  trainables_ = std::move(next);
}

std::vector<std::pair<std::string, Tensor>> Llama::tensors(const std::string& kind) {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<std::pair<std::string, Tensor>> out;
  for (Trainable& t : trainables_) {
    if (kind == "param") out.emplace_back(t.name, t.param);
    else if (kind == "grad") out.emplace_back(t.name, t.grad);
    else if (kind == "exp_avg") out.emplace_back(t.name, t.exp_avg);
    else if (kind == "exp_avg_sq") out.emplace_back(t.name, t.exp_avg_sq);
    else throw model_error("tensors: kind must be 'param', 'grad', 'exp_avg' or 'exp_avg_sq', got '" + kind + "'");
  }
  return out;
}

void Llama::set_tensor(const std::string& kind, const std::string& name, const Tensor& value) {
  std::lock_guard<std::mutex> lock(mu_);
  Trainable* found = nullptr;
  for (Trainable& t : trainables_)
    if (t.name == name) found = &t;
  if (!found) {
    std::string some;
    for (size_t i = 0; i < trainables_.size() && i < 4; ++i) some += (i ? ", " : "") + trainables_[i].name;
    throw model_error("set_tensor: no trainable tensor named '" + name + "'" +
                      (trainables_.empty() ? std::string(" (the model has no trainable tensors: add_lora first)")
                                           : " (e.g. " + some + ")"));
  }
  Tensor* dst = kind == "param" ? &found->param
                : kind == "grad" ? &found->grad
                : kind == "exp_avg" ? &found->exp_avg
                : kind == "exp_avg_sq" ? &found->exp_avg_sq
                                       : nullptr;
  if (!dst) throw model_error("set_tensor: kind must be 'param', 'grad', 'exp_avg' or 'exp_avg_sq', got '" + kind + "'");
  if (value.shape != dst->shape)
    throw model_error("set_tensor: '" + name + "' (" + kind + ") must have shape " + shape_str(dst->shape) + ", got " +
                      value.describe());
  if (value.device() != Device::CPU || value.dtype == DType::I32)
    throw model_error("set_tensor: '" + name + "' must be a CPU f32, bf16 or f16 tensor, got " + value.describe());
  if (kind == "param" && merged_) throw model_error("set_tensor: unmerge before changing parameters");
  if (value.dtype == DType::F32) {
    std::memmove(dst->raw(), value.raw(), dst->nbytes());
  } else {
    Tensor f = convert(value, DType::F32);
    std::memcpy(dst->raw(), f.raw(), dst->nbytes());
  }
}

// ---------------------------------------------------------------------------------------------------
// merging

void Llama::merge() {
  std::lock_guard<std::mutex> lock(mu_);
  if (lora_r_ == 0) throw model_error("merge: the model has no LoRA adapter");
  for (Layer& L : layers_)
    for (LoraLinear& m : L.proj) m.merge();
  merged_ = true;
  drop_workspaces();  // the passes no longer need the adapters' buffers
}

void Llama::unmerge() {
  std::lock_guard<std::mutex> lock(mu_);
  for (Layer& L : layers_)
    for (LoraLinear& m : L.proj) m.unmerge();
  merged_ = false;
  drop_workspaces();
}

// ---------------------------------------------------------------------------------------------------
// memory

MemoryStats Llama::memory() {
  std::lock_guard<std::mutex> lock(mu_);
  MemoryStats s;
  auto base = [&](const Tensor& t) {
    if (!t.storage) return;
    const int64_t b = static_cast<int64_t>(t.nbytes());
    s.base_weight_bytes += b;
    if (is_mapped(t)) s.mapped_weight_bytes += b;
  };
  base(embed_);
  if (!cfg_.tie_word_embeddings) base(lm_head_);
  base(norm_);
  for (Layer& L : layers_) {
    base(L.ln1);
    base(L.ln2);
    for (LoraLinear& m : L.proj) {
      base(m.base);
      base(m.bias);
      if (m.merged.storage) s.merged_bytes += static_cast<int64_t>(m.merged.nbytes());
    }
  }
  for (const Tensor& t : owned_weights_) s.owned_weight_bytes += static_cast<int64_t>(t.nbytes());
  for (const Trainable& t : trainables_)
    s.trainable_bytes += static_cast<int64_t>(t.param.nbytes() + t.grad.nbytes() + t.exp_avg.nbytes() + t.exp_avg_sq.nbytes());
  if (train_ws_) s.activation_bytes += train_ws_->bytes;
  if (infer_ws_) s.activation_bytes += infer_ws_->bytes;
  if (cache_) s.kv_cache_bytes = cache_->bytes();
  return s;
}

void Llama::release_workspaces() {
  std::lock_guard<std::mutex> lock(mu_);
  drop_workspaces();
}

void Llama::drop_workspaces() {
  train_ws_.reset();
  infer_ws_.reset();
}

}  // namespace sw::model
