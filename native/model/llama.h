// The Llama-family causal LM on the native core: Hugging Face transformers' LlamaForCausalLM,
// Qwen2ForCausalLM and MistralForCausalLM (docs/MODEL.md states the semantics followed).
//
//   x = embed_tokens[ids]
//   per layer:  x = x + o_proj(attention(rope(q_proj(h)), rope(k_proj(h)), v_proj(h)))   h = input_layernorm(x)
//               x = x + down_proj(silu(gate_proj(h)) * up_proj(h))                         h = post_attention_layernorm(x)
//   logits = lm_head(norm(x))            (lm_head = embed_tokens when tie_word_embeddings)
//
// The base weights are held as given (usually read-only mappings of the safetensors file, bf16): never
// copied, never written. LoRA adapters (PEFT's names and initialization), full fine-tuning of chosen
// modules (an f32 master copy), the training step (forward, chunked loss, backward, accumulated grads)
// and generation with a KV cache all run here, layer after layer, in one call each (llm.c's shape).
//
// Thread safety: every public method takes the model's mutex, so calls from several threads (the JS
// thread and libuv workers) run one at a time.
#pragma once
#include <array>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "model/lora_linear.h"
#include "ops/layers.h"
#include "ops/optim.h"

namespace sw::model {

struct LlamaConfig {
  int64_t vocab_size = 0, hidden_size = 0, intermediate_size = 0, num_layers = 0;
  int64_t num_heads = 0, num_kv_heads = 0, head_dim = 0;  // head_dim 0: hidden_size / num_heads
  float rms_norm_eps = 1e-6f;
  ops::RopeParams rope{0, 10000.0};  // head_dim is filled in from the config
  bool tie_word_embeddings = false;
  bool attention_bias = false;       // q/k/v_proj have biases (Qwen2; Llama with attention_bias)
  bool o_proj_bias = false;          // o_proj has a bias (Llama with attention_bias)
  int64_t max_position_embeddings = 0;  // 0: unknown (not enforced)
};

// PEFT's LoraConfig (the fields this runtime implements).
struct LoraSettings {
  int64_t r = 8;
  double lora_alpha = 8;
  float lora_dropout = 0;
  bool use_rslora = false;
  std::vector<Proj> target_modules;
  std::vector<int64_t> layers_to_transform;  // empty: every layer
  uint64_t seed = 0;                          // initialization of lora_A (Kaiming-uniform, a = sqrt(5))
};

struct StepOptions {
  const Tensor* positions = nullptr;  // i32 [B, T]; default 0..T-1, restarting at each segment change
  const Tensor* segments = nullptr;   // i32 [B, T]: packed sequences (attention stays inside a segment)
  uint64_t seed = 0;                  // dropout masks of this step
  bool has_seed = false;              // false: the model's own step counter picks the seed
  bool checkpointing = false;         // keep only each layer's input; recompute the layer in the backward
  double loss_denominator = 0;        // > 0: grads of (sum of token losses) / this; else / counted tokens
  int64_t chunk_tokens = 0;           // rows of the vocabulary projection computed at once (0: default_chunk_tokens)
  bool attention_bf16 = false;        // attention's tile products in bf16 (cpu/attention.h), f32 accumulation
};

struct LossResult {
  double loss = 0;      // mean over counted tokens (0 when none count)
  double loss_sum = 0;  // sum of the counted tokens' losses
  int64_t tokens = 0;   // tokens with target != -100
};

struct AdamWHyper {
  float lr = 1e-3f, beta1 = 0.9f, beta2 = 0.999f, eps = 1e-8f, weight_decay = 0.0f;
  int64_t step = 1;
};

// A trainable tensor with its gradient and AdamW moments (all f32, owned).
struct Trainable {
  std::string name;
  Tensor param, grad, exp_avg, exp_avg_sq;
  bool decay = true;  // weight decay applies (not to biases and norm weights, as transformers' Trainer)
};

struct MemoryStats {
  int64_t base_weight_bytes = 0;    // the frozen weights the model reads
  int64_t mapped_weight_bytes = 0;  //   of which memory-mapped files
  int64_t owned_weight_bytes = 0;   //   of which owned copies (f32 norm weights, converted f16 weights)
  int64_t trainable_bytes = 0;      // params + grads + AdamW moments
  int64_t activation_bytes = 0;     // training / inference workspaces
  int64_t kv_cache_bytes = 0;
  int64_t merged_bytes = 0;         // merged weight copies
};

struct Workspace;
struct KvCache;

class Llama {
 public:
  // weights: Hugging Face names -> tensors (f32 / bf16 kept as they are; f16 converted to f32 once).
  Llama(const LlamaConfig& cfg, const std::map<std::string, Tensor>& weights);
  ~Llama();

  const LlamaConfig& config() const { return cfg_; }

  // ---- adapters and trainable modules
  void add_lora(const LoraSettings& s);
  // modules: q_proj ... down_proj (+ their biases), input_layernorm, post_attention_layernorm, norm
  void enable_full_finetune(const std::vector<std::string>& modules, const std::vector<int64_t>& layers);
  std::vector<Trainable>& trainables() { return trainables_; }
  // name -> tensor of kind "param" | "grad" | "exp_avg" | "exp_avg_sq" (views sharing the model's memory)
  std::vector<std::pair<std::string, Tensor>> tensors(const std::string& kind);
  void set_tensor(const std::string& kind, const std::string& name, const Tensor& value);

  // ---- training
  LossResult train_step(const Tensor& ids, const Tensor& targets, const StepOptions& o);
  LossResult eval_loss(const Tensor& ids, const Tensor& targets, const StepOptions& o);
  Tensor logits(const Tensor& ids, const StepOptions& o);  // [B, T, V] (tests, small inputs)
  void zero_grad();
  double grad_norm();
  double clip_grad_norm(double max_norm);
  void optimizer_step(const AdamWHyper& h);

  // ---- generation
  // Resets the cache to the B prompts (right-padded, lengths[b] tokens each; null: all T) and returns
  // the logits [B, V] at each prompt's last token. capacity: positions to reserve per sequence.
  Tensor prefill(const Tensor& ids, const Tensor* lengths, int64_t capacity);
  // One token per sequence: ids i32 [n], slots i32 [n] (null: 0..n-1). Returns logits [n, V].
  Tensor decode_step(const Tensor& ids, const Tensor* slots);
  void reset_cache();
  std::vector<int32_t> cache_lengths();

  // ---- merging adapters into (copies of) the base weights
  void merge();
  void unmerge();
  bool merged() const { return merged_; }

  MemoryStats memory();
  void release_workspaces();

 private:
  struct Layer {
    std::array<LoraLinear, kProjCount> proj;
    Tensor ln1, ln2;            // f32 [C]
    Tensor dln1, dln2;          // trainable norms' grads (empty otherwise)
  };
  enum class Mode { Train, Infer, Prefill, Decode };
  struct Pass;  // one forward pass's inputs (ids, positions, segments, shapes, mode)

  std::mutex mu_;
  LlamaConfig cfg_;
  Tensor embed_, lm_head_, norm_, dnorm_;
  std::vector<Layer> layers_;
  std::vector<Trainable> trainables_;
  std::vector<Tensor> owned_weights_;  // copies made at load (norms as f32, f16 converted)
  std::unique_ptr<Workspace> train_ws_, infer_ws_;
  std::unique_ptr<KvCache> cache_;
  bool merged_ = false;
  int64_t lora_r_ = 0;
  float lora_dropout_ = 0;
  uint64_t step_counter_ = 0;

  void drop_workspaces();
  void rebuild_trainables();
  Trainable make_trainable(const std::string& name, Tensor param, Tensor grad, bool decay);
  void validate_tokens(const char* op, const Tensor& ids, const Tensor* targets, const StepOptions& o, int64_t& B,
                       int64_t& T);
  Workspace& workspace(bool train, int64_t tokens, bool checkpointing);
  void layer_forward(int64_t l, const Pass& p, Workspace& ws, int64_t acts_index, const Tensor& x, Tensor* x_next);
  void layer_backward(int64_t l, const Pass& p, Workspace& ws, int64_t acts_index, bool need_dx, bool recomputed);
  double head_loss(const Pass& p, Workspace& ws, const Tensor& targets, bool grad, float grad_scale);
  LossResult run_loss(const char* op, const Tensor& ids, const Tensor& targets, const StepOptions& o, bool train);
};

// Hugging Face name of a layer's projection: "model.layers.3.self_attn.q_proj"
std::string proj_path(int64_t layer, Proj p);

}  // namespace sw::model
