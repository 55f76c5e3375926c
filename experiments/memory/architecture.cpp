#include "experiments/memory/architecture.hpp"

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <set>

#include "experiments/harness/cli.hpp"
#include "experiments/harness/errors.hpp"

namespace lowbit::memory {

using harness::InputError;
using nlohmann::json;

std::int64_t Block::params() const {
  std::int64_t p = norm_params + other_params;
  for (const auto& l : linears) p += l.params();
  return p;
}

std::int64_t Architecture::parameters() const {
  std::int64_t p = embedding_params + lm_head_params + extra_16bit_params;
  for (const auto& b : blocks) p += b.params();
  return p;
}

std::int64_t Architecture::linear_parameters() const {
  std::int64_t p = 0;
  for (const auto& b : blocks)
    for (const auto& l : b.linears) p += l.params();
  return p;
}

std::vector<std::string> Architecture::linear_names() const {
  std::vector<std::string> names;
  for (const auto& b : blocks)
    for (const auto& l : b.linears)
      if (std::find(names.begin(), names.end(), l.name) == names.end()) names.push_back(l.name);
  return names;
}

namespace {

// Reads keys of one config, remembering the file for error messages.
struct Config {
  const json& j;
  const std::string& where;

  const json* find(std::initializer_list<const char*> keys) const {
    for (const char* k : keys)
      if (j.contains(k) && !j[k].is_null()) return &j[k];
    return nullptr;
  }
  std::int64_t integer(std::initializer_list<const char*> keys) const {
    const json* v = find(keys);
    if (!v) throw InputError(where + ": missing key '" + *keys.begin() + "'");
    if (!v->is_number_integer() || v->get<std::int64_t>() <= 0)
      throw InputError(where + ": key '" + *keys.begin() + "' must be a positive integer, got " + v->dump());
    return v->get<std::int64_t>();
  }
  std::int64_t integer_or(std::initializer_list<const char*> keys, std::int64_t fallback) const {
    return find(keys) ? integer(keys) : fallback;
  }
  bool boolean_or(const char* key, bool fallback) const {
    const json* v = find({key});
    if (!v) return fallback;
    if (!v->is_boolean()) throw InputError(where + ": key '" + key + "' must be true or false, got " + v->dump());
    return v->get<bool>();
  }
  double number_or(const char* key, double fallback) const {
    const json* v = find({key});
    if (!v) return fallback;
    if (!v->is_number()) throw InputError(where + ": key '" + key + "' must be a number, got " + v->dump());
    return v->get<double>();
  }
  std::string string_or(const char* key, std::string fallback) const {
    const json* v = find({key});
    if (!v) return fallback;
    if (!v->is_string()) throw InputError(where + ": key '" + key + "' must be a string, got " + v->dump());
    return v->get<std::string>();
  }
};

Linear lin(std::string name, std::int64_t in, std::int64_t out, bool bias, InputGroup g) {
  return Linear{std::move(name), in, out, bias, g};
}

// LLaMA / Llama-2 / Llama-3 / Mistral (transformers LlamaForCausalLM, MistralForCausalLM).
void build_llama(Architecture& a, const Config& c) {
  a.hidden = c.integer({"hidden_size"});
  a.layers = c.integer({"num_hidden_layers"});
  a.heads = c.integer({"num_attention_heads"});
  a.kv_heads = c.integer_or({"num_key_value_heads"}, a.heads);
  a.head_dim = c.integer_or({"head_dim"}, a.hidden / a.heads);
  a.intermediate = c.integer({"intermediate_size"});
  a.vocab = c.integer({"vocab_size"});
  a.tied_embeddings = c.boolean_or("tie_word_embeddings", false);
  a.attention_dropout = c.number_or("attention_dropout", 0.0);
  a.norm = NormKind::rms;
  a.mlp = MlpKind::gated;
  const bool ab = c.boolean_or("attention_bias", false), mb = c.boolean_or("mlp_bias", false);
  const std::int64_t h = a.hidden, q = a.attn_dim(), kv = a.kv_dim(), i = a.intermediate;
  Block b;
  b.linears = {lin("q_proj", h, q, ab, InputGroup::attn_in),      lin("k_proj", h, kv, ab, InputGroup::attn_in),
               lin("v_proj", h, kv, ab, InputGroup::attn_in),     lin("o_proj", q, h, ab, InputGroup::attn_out),
               lin("gate_proj", h, i, mb, InputGroup::mlp_in),    lin("up_proj", h, i, mb, InputGroup::mlp_in),
               lin("down_proj", i, h, mb, InputGroup::mlp_out)};
  b.norms = 2;
  b.norm_params = 2 * h;  // input_layernorm, post_attention_layernorm (RMSNorm: weight only)
  a.blocks.assign(a.layers, b);
  a.embedding_params = a.vocab * h;
  a.lm_head_params = a.tied_embeddings ? 0 : a.vocab * h;
  a.extra_16bit_params = h;  // model.norm
}

// OPT (transformers OPTForCausalLM): learned positions with offset 2, optional
// project_in/out when word_embed_proj_dim != hidden_size (opt-350m).
void build_opt(Architecture& a, const Config& c) {
  a.hidden = c.integer({"hidden_size"});
  a.layers = c.integer({"num_hidden_layers"});
  a.heads = a.kv_heads = c.integer({"num_attention_heads"});
  a.head_dim = a.hidden / a.heads;
  a.intermediate = c.integer({"ffn_dim"});
  a.vocab = c.integer({"vocab_size"});
  a.tied_embeddings = c.boolean_or("tie_word_embeddings", true);
  a.attention_dropout = c.number_or("attention_dropout", 0.0);
  a.hidden_dropout = c.number_or("dropout", 0.1);
  a.norm = NormKind::layer;
  a.mlp = MlpKind::plain;
  const std::int64_t h = a.hidden, i = a.intermediate;
  const std::int64_t proj = c.integer_or({"word_embed_proj_dim"}, h);
  const std::int64_t max_pos = c.integer({"max_position_embeddings"});
  const bool bias = c.boolean_or("enable_bias", true);
  const bool affine = c.boolean_or("layer_norm_elementwise_affine", true);
  const bool pre_ln = c.boolean_or("do_layer_norm_before", true);
  const bool remove_final = c.boolean_or("_remove_final_layer_norm", false);
  Block b;
  b.linears = {lin("q_proj", h, h, bias, InputGroup::attn_in), lin("k_proj", h, h, bias, InputGroup::attn_in),
               lin("v_proj", h, h, bias, InputGroup::attn_in), lin("out_proj", h, h, bias, InputGroup::attn_out),
               lin("fc1", h, i, bias, InputGroup::mlp_in),     lin("fc2", i, h, bias, InputGroup::mlp_out)};
  b.norms = 2;
  b.norm_params = affine ? 2 * 2 * h : 0;  // self_attn_layer_norm, final_layer_norm (weight + bias)
  a.blocks.assign(a.layers, b);
  a.embedding_params = a.vocab * proj + (max_pos + 2) * h + (proj != h ? 2 * proj * h : 0);
  a.lm_head_params = a.tied_embeddings ? 0 : a.vocab * proj;
  a.extra_16bit_params = (pre_ln && !remove_final && affine) ? 2 * h : 0;
}

// GPT-NeoX (transformers GPTNeoXForCausalLM): fused query_key_value, untied embed_out.
void build_gpt_neox(Architecture& a, const Config& c) {
  a.hidden = c.integer({"hidden_size"});
  a.layers = c.integer({"num_hidden_layers"});
  a.heads = a.kv_heads = c.integer({"num_attention_heads"});
  a.head_dim = a.hidden / a.heads;
  a.intermediate = c.integer({"intermediate_size"});
  a.vocab = c.integer({"vocab_size"});
  a.tied_embeddings = c.boolean_or("tie_word_embeddings", false);
  a.attention_dropout = c.number_or("attention_dropout", 0.0);
  a.hidden_dropout = c.number_or("hidden_dropout", 0.0);
  a.norm = NormKind::layer;
  a.mlp = MlpKind::plain;
  const std::int64_t h = a.hidden, i = a.intermediate;
  const bool bias = c.boolean_or("attention_bias", true);
  Block b;
  b.linears = {lin("query_key_value", h, 3 * h, bias, InputGroup::attn_in),
               lin("dense", h, h, bias, InputGroup::attn_out),
               lin("dense_h_to_4h", h, i, true, InputGroup::mlp_in),
               lin("dense_4h_to_h", i, h, true, InputGroup::mlp_out)};
  b.norms = 2;
  b.norm_params = 2 * 2 * h;
  a.blocks.assign(a.layers, b);
  a.embedding_params = a.vocab * h;
  a.lm_head_params = a.tied_embeddings ? 0 : a.vocab * h;
  a.extra_16bit_params = 2 * h;  // final_layer_norm
}

// BLOOM (transformers BloomForCausalLM): ALiBi (no position parameters),
// word_embeddings_layernorm, tied lm_head.
void build_bloom(Architecture& a, const Config& c) {
  a.hidden = c.integer({"hidden_size", "n_embed"});
  a.layers = c.integer({"n_layer", "num_hidden_layers"});
  a.heads = a.kv_heads = c.integer({"n_head", "num_attention_heads"});
  a.head_dim = a.hidden / a.heads;
  a.intermediate = 4 * a.hidden;
  a.vocab = c.integer({"vocab_size"});
  a.tied_embeddings = c.boolean_or("tie_word_embeddings", true);
  a.attention_dropout = c.number_or("attention_dropout", 0.0);
  a.hidden_dropout = c.number_or("hidden_dropout", 0.0);
  a.norm = NormKind::layer;
  a.mlp = MlpKind::plain;
  const std::int64_t h = a.hidden, i = a.intermediate;
  Block b;
  b.linears = {lin("query_key_value", h, 3 * h, true, InputGroup::attn_in),
               lin("dense", h, h, true, InputGroup::attn_out),
               lin("dense_h_to_4h", h, i, true, InputGroup::mlp_in),
               lin("dense_4h_to_h", i, h, true, InputGroup::mlp_out)};
  b.norms = 2;
  b.norm_params = 2 * 2 * h;
  a.blocks.assign(a.layers, b);
  a.embedding_params = a.vocab * h;
  a.lm_head_params = a.tied_embeddings ? 0 : a.vocab * h;
  a.extra_16bit_params = 2 * 2 * h;  // word_embeddings_layernorm, ln_f
}

// GPT-2 (transformers GPT2LMHeadModel): Conv1D c_attn / c_proj / c_fc / c_proj,
// learned positions, tied lm_head. PEFT's "c_proj" matches both projections.
void build_gpt2(Architecture& a, const Config& c) {
  a.hidden = c.integer({"n_embd", "hidden_size"});
  a.layers = c.integer({"n_layer", "num_hidden_layers"});
  a.heads = a.kv_heads = c.integer({"n_head", "num_attention_heads"});
  a.head_dim = a.hidden / a.heads;
  a.intermediate = c.integer_or({"n_inner"}, 4 * a.hidden);
  a.vocab = c.integer({"vocab_size"});
  a.tied_embeddings = true;
  a.attention_dropout = c.number_or("attn_pdrop", 0.1);
  a.hidden_dropout = c.number_or("resid_pdrop", 0.1);
  a.norm = NormKind::layer;
  a.mlp = MlpKind::plain;
  const std::int64_t h = a.hidden, i = a.intermediate;
  Block b;
  b.linears = {lin("c_attn", h, 3 * h, true, InputGroup::attn_in), lin("c_proj", h, h, true, InputGroup::attn_out),
               lin("c_fc", h, i, true, InputGroup::mlp_in), lin("c_proj", i, h, true, InputGroup::mlp_out)};
  b.norms = 2;
  b.norm_params = 2 * 2 * h;
  a.blocks.assign(a.layers, b);
  a.embedding_params = a.vocab * h + c.integer({"n_positions", "max_position_embeddings"}) * h;
  a.extra_16bit_params = 2 * h;  // ln_f
}

// T5 (transformers T5ForConditionalGeneration): encoder and decoder stacks,
// relative attention bias in the first block of each, shared embedding.
// v1.0 (t5-small … t5-11b): ReLU MLP wi/wo, tied lm_head; v1.1: gated-gelu
// wi_0/wi_1/wo, untied lm_head.
void build_t5(Architecture& a, const Config& c) {
  a.encoder_decoder = true;
  a.hidden = c.integer({"d_model"});
  const std::int64_t enc = c.integer({"num_layers"});
  a.decoder_layers = c.integer_or({"num_decoder_layers"}, enc);
  a.layers = enc + a.decoder_layers;
  a.heads = a.kv_heads = c.integer({"num_heads"});
  a.head_dim = c.integer({"d_kv"});
  a.intermediate = c.integer({"d_ff"});
  a.vocab = c.integer({"vocab_size"});
  a.tied_embeddings = c.boolean_or("tie_word_embeddings", true);
  a.hidden_dropout = a.attention_dropout = c.number_or("dropout_rate", 0.1);
  a.norm = NormKind::rms;
  const std::string ff = c.string_or("feed_forward_proj", "relu");
  if (ff != "relu" && ff != "gated-gelu" && ff != "gated-silu" && ff != "gelu")
    throw InputError(c.where + ": unsupported feed_forward_proj '" + ff + "'");
  a.mlp = ff.starts_with("gated") ? MlpKind::gated : MlpKind::plain;
  const std::int64_t d = a.hidden, inner = a.attn_dim(), f = a.intermediate;
  const std::int64_t buckets = c.integer_or({"relative_attention_num_buckets"}, 32);
  auto mlp = [&](Block& b) {
    if (a.mlp == MlpKind::gated) {
      b.linears.push_back(lin("wi_0", d, f, false, InputGroup::mlp_in));
      b.linears.push_back(lin("wi_1", d, f, false, InputGroup::mlp_in));
    } else {
      b.linears.push_back(lin("wi", d, f, false, InputGroup::mlp_in));
    }
    b.linears.push_back(lin("wo", f, d, false, InputGroup::mlp_out));
  };
  Block e;
  e.encoder = true;
  e.linears = {lin("q", d, inner, false, InputGroup::attn_in), lin("k", d, inner, false, InputGroup::attn_in),
               lin("v", d, inner, false, InputGroup::attn_in), lin("o", inner, d, false, InputGroup::attn_out)};
  mlp(e);
  e.norms = 2;
  e.norm_params = 2 * d;
  Block dec;
  dec.cross_attention = true;
  dec.linears = {lin("q", d, inner, false, InputGroup::attn_in),      lin("k", d, inner, false, InputGroup::attn_in),
                 lin("v", d, inner, false, InputGroup::attn_in),      lin("o", inner, d, false, InputGroup::attn_out),
                 lin("q", d, inner, false, InputGroup::cross_q_in),   lin("k", d, inner, false, InputGroup::cross_kv_in),
                 lin("v", d, inner, false, InputGroup::cross_kv_in),  lin("o", inner, d, false, InputGroup::cross_out)};
  mlp(dec);
  dec.norms = 3;
  dec.norm_params = 3 * d;
  a.blocks.assign(enc, e);
  a.blocks.front().other_params = buckets * a.heads;  // relative_attention_bias
  for (std::int64_t k = 0; k < a.decoder_layers; ++k) a.blocks.push_back(dec);
  a.blocks[enc].other_params = buckets * a.heads;
  a.embedding_params = a.vocab * d;  // shared (encoder/decoder embed_tokens are the same tensor)
  a.lm_head_params = a.tied_embeddings ? 0 : a.vocab * d;
  a.extra_16bit_params = 2 * d;  // encoder / decoder final_layer_norm
}

}  // namespace

Architecture architecture_from_config(const json& config, const std::string& name) {
  if (!config.is_object()) throw InputError(name + ": config must be a JSON object");
  const Config c{config, name};
  const json* mt = c.find({"model_type"});
  if (!mt || !mt->is_string()) throw InputError(name + ": missing key 'model_type'");
  Architecture a;
  a.name = name;
  a.model_type = mt->get<std::string>();
  const std::vector<std::string> known = {"llama", "mistral", "opt", "gpt_neox", "bloom", "gpt2", "t5"};
  if (a.model_type == "llama" || a.model_type == "mistral") build_llama(a, c);
  else if (a.model_type == "opt") build_opt(a, c);
  else if (a.model_type == "gpt_neox") build_gpt_neox(a, c);
  else if (a.model_type == "bloom") build_bloom(a, c);
  else if (a.model_type == "gpt2") build_gpt2(a, c);
  else if (a.model_type == "t5") build_t5(a, c);
  else
    throw InputError(name + ": unknown architecture (model_type) '" + a.model_type + "'" +
                     harness::did_you_mean(a.model_type, known) + "; supported: llama, mistral, opt, gpt_neox, bloom, gpt2, t5");
  if (a.heads % a.kv_heads != 0)
    throw InputError(name + ": num_attention_heads must be a multiple of num_key_value_heads");
  return a;
}

std::filesystem::path models_dir() {
  if (const char* env = std::getenv("LOWBIT_MODELS_DIR")) return env;
  return std::filesystem::path(LOWBIT_SOURCE_DIR) / "experiments" / "memory" / "models";
}

std::vector<std::string> catalog_names() {
  std::vector<std::string> names;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(models_dir(), ec))
    if (e.path().extension() == ".json") names.push_back(e.path().stem().string());
  std::sort(names.begin(), names.end());
  return names;
}

Architecture load_architecture(const std::string& spec) {
  std::filesystem::path path;
  std::string name = spec;
  const bool looks_like_path = spec.find('/') != std::string::npos || spec.ends_with(".json");
  if (looks_like_path) {
    path = spec;
  } else {
    path = models_dir() / (spec + ".json");
    if (!std::filesystem::exists(path))
      throw InputError("unknown model '" + spec + "'" + harness::did_you_mean(spec, catalog_names()) +
                       "; give a catalog name (see experiments/memory/models/) or a config.json path");
  }
  std::ifstream in(path);
  if (!in) throw InputError("cannot read model config '" + path.string() + "'");
  json j;
  try {
    j = json::parse(in);
  } catch (const json::exception& e) {
    throw InputError("model config '" + path.string() + "' is not valid JSON: " + e.what());
  }
  return architecture_from_config(j, name);
}

}  // namespace lowbit::memory
