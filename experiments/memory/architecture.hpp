// experiments/memory/architecture.hpp — a transformer's shape, read from a
// Hugging Face config.json, as the list of tensors the memory model counts.
//
// Supported `model_type`s: llama (LLaMA, Llama-2, Llama-3), mistral, opt,
// gpt_neox, bloom, gpt2, t5. Catalog models are config.json files in
// experiments/memory/models/<name>.json (data, not code).
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace lowbit::memory {

// Where a Linear's input comes from. Linears that share a group read the
// same tensor (q/k/v read the attention-norm output), so a saved input is
// stored once per group and block.
enum class InputGroup { attn_in, attn_out, cross_q_in, cross_kv_in, cross_out, mlp_in, mlp_out };

struct Linear {
  std::string name;  // module name as in transformers / PEFT target_modules
  std::int64_t in = 0, out = 0;
  bool bias = false;
  InputGroup group = InputGroup::attn_in;
  std::int64_t params() const { return in * out + (bias ? out : 0); }
};

// One transformer block (decoder layer, or a T5 encoder / decoder block).
struct Block {
  std::vector<Linear> linears;
  std::int64_t norm_params = 0;   // norm weights (+ biases) in this block
  int norms = 0;                  // number of norms (activation accounting)
  std::int64_t other_params = 0;  // e.g. T5 relative attention bias
  bool cross_attention = false;   // T5 decoder block
  bool encoder = false;           // T5 encoder block: sees the source length
  std::int64_t params() const;
};

enum class NormKind { rms, layer };  // RMSNorm (fp32 upcast in HF) or LayerNorm
enum class MlpKind { gated, plain };  // gate*act(up) (LLaMA, T5 v1.1) or act(fc1)

struct Architecture {
  std::string name;        // catalog name or config path
  std::string model_type;  // HF model_type
  std::int64_t hidden = 0, layers = 0, heads = 0, kv_heads = 0, head_dim = 0, intermediate = 0, vocab = 0;
  std::int64_t decoder_layers = 0;  // T5: decoder blocks (layers = encoder blocks + decoder blocks)
  NormKind norm = NormKind::rms;
  MlpKind mlp = MlpKind::gated;
  double attention_dropout = 0, hidden_dropout = 0;
  bool tied_embeddings = false;
  bool encoder_decoder = false;

  std::vector<Block> blocks;
  std::int64_t embedding_params = 0;       // token embeddings (+ learned positions, projections)
  std::int64_t lm_head_params = 0;         // 0 when tied to the embedding
  std::int64_t extra_16bit_params = 0;     // final norms, embedding norm: never quantized

  std::int64_t parameters() const;        // total, tied weights once
  std::int64_t linear_parameters() const;  // the quantizable Linears in blocks
  std::vector<std::string> linear_names() const;  // distinct module names, block order
  std::int64_t kv_dim() const { return kv_heads * head_dim; }
  std::int64_t attn_dim() const { return heads * head_dim; }
};

// Parse a config.json object. Throws harness::InputError with a one-line
// message for an unknown model_type or a missing / invalid key.
Architecture architecture_from_config(const nlohmann::json& config, const std::string& name);

// `spec` is a catalog name (llama-7b) or a path to a config.json.
Architecture load_architecture(const std::string& spec);

// Directory of the catalog (LOWBIT_MODELS_DIR env, else the source tree).
std::filesystem::path models_dir();
std::vector<std::string> catalog_names();

}  // namespace lowbit::memory
