#include "experiments/memory/estimate.hpp"

#include <algorithm>
#include <cmath>
#include <map>
#include <numeric>
#include <set>

#include <fmt/format.h>
#include <toml++/toml.h>

#include "experiments/harness/cli.hpp"
#include "experiments/harness/errors.hpp"
#include "lowbit/formats/registry.hpp"

namespace lowbit::memory {

using harness::InputError;
using harness::UsageError;

namespace {
constexpr double kMiB = 1024.0 * 1024.0;

template <class E>
E parse_enum(const std::string& s, const std::vector<std::pair<std::string, E>>& table, const char* what) {
  std::vector<std::string> names;
  for (const auto& [n, e] : table) {
    if (n == s) return e;
    names.push_back(n);
  }
  std::string list;
  for (const auto& n : names) list += (list.empty() ? "" : ", ") + n;
  throw UsageError(fmt::format("unknown {} '{}'{}; one of: {}", what, s, harness::did_you_mean(s, names), list));
}

const std::vector<std::pair<std::string, Mode>> kModes = {{"train", Mode::train}, {"infer", Mode::infer}};
const std::vector<std::pair<std::string, Method>> kMethods = {
    {"full", Method::full}, {"lora", Method::lora}, {"qlora", Method::qlora}};
const std::vector<std::pair<std::string, Optimizer>> kOptimizers = {
    {"adamw", Optimizer::adamw},          {"adamw32", Optimizer::adamw32},
    {"adamw8", Optimizer::adamw8},        {"paged-adamw32", Optimizer::paged_adamw32},
    {"paged-adamw8", Optimizer::paged_adamw8}, {"sgd", Optimizer::sgd},
    {"adafactor", Optimizer::adafactor}};
const std::vector<std::pair<std::string, Attention>> kAttention = {{"eager", Attention::eager},
                                                                   {"sdpa", Attention::sdpa}};
const std::vector<std::pair<std::string, Stack>> kStacks = {{"current", Stack::current}, {"may2023", Stack::may2023}};
template <class E>
std::string name_of(E e, const std::vector<std::pair<std::string, E>>& table) {
  for (const auto& [n, v] : table)
    if (v == e) return n;
  return "?";
}
}  // namespace

std::string to_string(Mode m) { return name_of(m, kModes); }
std::string to_string(Method m) { return name_of(m, kMethods); }
std::string to_string(Optimizer o) { return name_of(o, kOptimizers); }
std::string to_string(Attention a) { return name_of(a, kAttention); }
std::string to_string(Verdict v) {
  return v == Verdict::fits ? "fits" : v == Verdict::fits_with_paging ? "fits-with-paging" : "OOM";
}
Mode parse_mode(const std::string& s) { return parse_enum(s, kModes, "mode"); }
Method parse_method(const std::string& s) { return parse_enum(s, kMethods, "method"); }
Optimizer parse_optimizer(const std::string& s) { return parse_enum(s, kOptimizers, "optimizer"); }
Attention parse_attention(const std::string& s) { return parse_enum(s, kAttention, "attention"); }
std::string to_string(Stack st) { return name_of(st, kStacks); }
Stack parse_stack(const std::string& s) { return parse_enum(s, kStacks, "stack"); }

int dtype_bytes(const std::string& compute) {
  if (compute == "fp16" || compute == "bf16") return 2;
  if (compute == "fp32") return 4;
  throw UsageError("unknown dtype '" + compute + "'" + harness::did_you_mean(compute, {"fp16", "bf16", "fp32"}) +
                   "; one of: fp16, bf16, fp32");
}

// ---- GPUs ------------------------------------------------------------------------

namespace {
std::filesystem::path gpus_file() {
  if (const char* env = std::getenv("LOWBIT_GPUS_FILE")) return env;
  return std::filesystem::path(LOWBIT_SOURCE_DIR) / "experiments" / "memory" / "gpus.toml";
}
const toml::table& gpu_table() {
  static const toml::table t = [] {
    try {
      return toml::parse_file(gpus_file().string());
    } catch (const toml::parse_error& e) {
      throw InputError("cannot read GPU catalog '" + gpus_file().string() + "': " + std::string(e.description()));
    }
  }();
  return t;
}
}  // namespace

std::vector<std::string> gpu_names() {
  std::vector<std::string> names;
  for (const auto& [k, v] : gpu_table()) names.emplace_back(k.str());
  return names;
}

Gpu find_gpu(const std::string& name) {
  // Explicit capacity: "24", "24GiB", "24GB" (GB is read as 10^9 bytes).
  std::size_t pos = 0;
  double value = 0;
  try {
    value = std::stod(name, &pos);
  } catch (const std::exception&) {
    pos = 0;
  }
  if (pos > 0) {
    const std::string unit = name.substr(pos);
    double mib = 0;
    if (unit.empty() || unit == "GiB" || unit == "gib" || unit == "G") mib = value * 1024;
    else if (unit == "GB" || unit == "gb") mib = value * 1e9 / kMiB;
    else if (unit == "MiB" || unit == "mib") mib = value;
    else throw UsageError("cannot read GPU size '" + name + "'; write e.g. 24GiB, 40GB or 15079MiB");
    if (!(mib > 0)) throw UsageError("GPU size must be positive, got '" + name + "'");
    return Gpu{name, "explicit capacity", mib, true};
  }
  const auto* entry = gpu_table().get_as<toml::table>(name);
  if (!entry)
    throw UsageError("unknown GPU '" + name + "'" + harness::did_you_mean(name, gpu_names()) +
                     "; a catalog name (experiments/memory/gpus.toml) or a size such as 24GiB");
  Gpu g;
  g.name = name;
  g.description = (*entry)["description"].value_or(std::string(name));
  g.usable_mib = (*entry)["usable_mib"].value_or(0.0);
  g.bf16 = (*entry)["bf16"].value_or(true);
  if (!(g.usable_mib > 0)) throw InputError("GPU catalog entry '" + name + "' has no usable_mib");
  return g;
}

// ---- the model ---------------------------------------------------------------------

double Estimate::term(const std::string& key) const {
  for (const auto& t : terms)
    if (t.key == key) return t.bytes.at(worst_gpu);
  return 0;
}

namespace {

// PEFT's TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING (peft/utils/constants.py).
std::vector<std::string> default_lora_targets(const std::string& model_type) {
  if (model_type == "llama" || model_type == "mistral" || model_type == "opt") return {"q_proj", "v_proj"};
  if (model_type == "gpt_neox" || model_type == "bloom") return {"query_key_value"};
  if (model_type == "gpt2") return {"c_attn"};
  if (model_type == "t5") return {"q", "v"};
  return {};
}

enum class LinearKind { dense, int8, kbit };

struct Quant {
  lowbit::Quantizer q;
  LinearKind kind;
  double bits(const Linear& l) const { return q.bits_per_parameter(static_cast<std::size_t>(l.out), static_cast<std::size_t>(l.in)); }
};


std::string gib(double bytes) { return fmt::format("{:.3f} GiB", bytes / (kMiB * 1024)); }

}  // namespace

Estimate estimate(const Architecture& arch, const Settings& s) {
  // ---- validation: one clear message each ----
  if (s.batch <= 0) throw UsageError(fmt::format("--batch must be a positive integer, got {}", s.batch));
  if (s.seq_len <= 0) throw UsageError(fmt::format("--seq-len must be a positive integer, got {}", s.seq_len));
  if (s.grad_accum <= 0) throw UsageError(fmt::format("--grad-accum must be a positive integer, got {}", s.grad_accum));
  if (s.gpus <= 0) throw UsageError(fmt::format("--gpus must be a positive integer, got {}", s.gpus));
  if (s.gpus > arch.layers) throw UsageError(fmt::format("--gpus {} exceeds the model's {} layers", s.gpus, arch.layers));
  if (s.lora_rank <= 0) throw UsageError(fmt::format("--lora-rank must be a positive integer, got {}", s.lora_rank));
  if (!(s.lora_dropout >= 0 && s.lora_dropout < 1)) throw UsageError("--lora-dropout must lie in [0, 1)");
  if (!(s.cuda_context_mib >= 0)) throw UsageError("--cuda-context-mib must be >= 0");
  if (!(s.allocator_overhead >= 0)) throw UsageError("--allocator-overhead must be >= 0");

  Estimate e;
  e.arch = arch;
  e.settings = s;
  e.gpu = find_gpu(s.gpu);
  const bool train = s.mode == Mode::train;
  const int c = dtype_bytes(s.compute);  // compute dtype bytes
  if (s.compute == "bf16" && !e.gpu.bf16)
    e.warnings.push_back(e.gpu.name + " has no bf16 tensor cores: bf16 runs emulated (slow); memory is as for fp16");

  // ---- weight format, from the registry ----
  e.weights = s.weights.empty() ? (s.method == Method::qlora && train ? "nf4@64+dq" : s.compute) : s.weights;
  Quant quant{lowbit::parse_quantizer(e.weights), LinearKind::dense};
  e.weights = quant.q.name();
  const double probe_bits = quant.q.bits_per_parameter(4096, 4096);
  if (probe_bits >= 16) quant.kind = LinearKind::dense;
  else if (quant.q.element_name() == "int8") quant.kind = LinearKind::int8;  // LLM.int8 (MatMul8bitLt)
  else quant.kind = LinearKind::kbit;  // dequantize-then-matmul (bnb MatMul4Bit and alike)
  const bool quantized = quant.kind != LinearKind::dense;
  if (train && s.method == Method::full && quantized)
    throw UsageError("full finetuning needs unquantized weights (bf16, fp16 or fp32), got --weights " + e.weights +
                     "; use --method qlora or lora");
  if (train && s.method == Method::qlora && !quantized)
    throw UsageError("--method qlora needs a quantized weight format (e.g. nf4@64+dq), got --weights " + e.weights);
  if (s.method == Method::full && s.kbit_prep.value_or(false) && train)
    throw UsageError("--kbit-prep applies to LoRA on a quantized base, not to full finetuning");

  const bool adapters = train && s.method != Method::full;
  const bool kbit_prep = train && adapters && s.kbit_prep.value_or(quantized);
  e.kbit_prep = kbit_prep;
  // Storage of modules that are never quantized (embeddings, lm_head, norms,
  // biases): the model's dtype for dense weights; 16-bit for a quantized load
  // ("loading a quantized model will automatically cast other model's
  // submodules into float16", 4-bit blog); fp32 after prepare_model_for_kbit_training.
  const double wbytes_dense = probe_bits / 8;
  const int b16 = quantized ? (kbit_prep ? 4 : 2) : static_cast<int>(wbytes_dense);
  const bool autocast = train && !quantized && wbytes_dense == 4 && c == 2;  // fp32 master weights, 16-bit autocast
  const int ab = dtype_bytes(s.adapter_dtype);
  const int rb = std::max(b16, autocast ? 4 : c);  // residual stream dtype (embedding output, promoted by adds)
  const int nb = rb;                               // norm output dtype (weight dtype * input dtype)
  // Dtype of a block's activations (q, k, v, attention output, MLP intermediates). Dense
  // layers compute in c. bnb layers return their input's dtype: Linear4bit.forward ends in
  // `bnb.matmul_4bit(x, ...).to(inp_dtype)` (bnb 0.50 nn/modules.py:637; the same in 0.39),
  // MatMul8bitLt returns A.dtype. After kbit prep the norms are fp32, so the whole block
  // runs in fp32 although the matmuls run in the compute dtype.
  const int act = quantized ? nb : c;
  const bool old_stack = s.stack == Stack::may2023;

  // ---- LoRA targets ----
  if (adapters) {
    const auto names = arch.linear_names();
    std::vector<std::string> wanted = s.lora_targets.empty() ? default_lora_targets(arch.model_type) : s.lora_targets;
    for (const auto& t : wanted) {
      if (t == "all-linear") {
        e.lora_targets = names;
        break;
      }
      if (std::find(names.begin(), names.end(), t) == names.end()) {
        std::string list;
        for (const auto& n : names) list += (list.empty() ? "" : ", ") + n;
        throw InputError("LoRA target module '" + t + "' does not exist in " + arch.name +
                         harness::did_you_mean(t, names) + "; its linear modules: " + list + " (or all-linear)");
      }
      if (std::find(e.lora_targets.begin(), e.lora_targets.end(), t) == e.lora_targets.end()) e.lora_targets.push_back(t);
    }
  }
  auto adapted = [&](const Linear& l) {
    return adapters && std::find(e.lora_targets.begin(), e.lora_targets.end(), l.name) != e.lora_targets.end();
  };

  const double T = static_cast<double>(s.batch) * static_cast<double>(s.seq_len);  // tokens per micro-batch
  const double h = arch.hidden, V = arch.vocab, r = s.lora_rank;
  const double ad = arch.attn_dim(), kvd = arch.kv_dim();
  const double S = s.seq_len, B = s.batch, A = arch.heads;
  const bool full = train && s.method == Method::full;

  // ---- per-tensor optimizer state bytes (per element) ----
  auto opt_state = [&](double numel, double pb) -> double {
    switch (s.optimizer) {
      case Optimizer::adamw: return 2 * pb * numel;  // torch AdamW: exp_avg, exp_avg_sq in the parameter dtype
      case Optimizer::adamw32:
      case Optimizer::paged_adamw32: return 8 * numel;  // bnb 32-bit: fp32 states
      case Optimizer::adamw8:
      case Optimizer::paged_adamw8:  // bnb 8-bit blockwise (block 2048, fp32 absmax); < 4096 elements stay 32-bit
        return numel < 4096 ? 8 * numel : 2 * numel * (1 + 4.0 / 2048);
      case Optimizer::sgd: return pb * numel;  // momentum buffer (momentum 0.9 assumed)
      case Optimizer::adafactor: return 0;     // factored: handled per matrix below
    }
    return 0;
  };
  auto adafactor_state = [&](double rows, double cols) { return cols > 1 ? 4 * (rows + cols) : 4 * rows; };

  // ---- per-block static bytes ----
  struct BlockStatic {
    double weights = 0, constants = 0, norms_biases = 0, lora = 0, trainable = 0, grads = 0, states = 0, largest = 0;
  };
  double linear_bits_sum = 0, linear_count = 0, largest_linear = 0;
  std::vector<BlockStatic> bs(arch.blocks.size());
  for (std::size_t k = 0; k < arch.blocks.size(); ++k) {
    const Block& blk = arch.blocks[k];
    BlockStatic& x = bs[k];
    for (const auto& l : blk.linears) {
      const double n = static_cast<double>(l.in) * static_cast<double>(l.out);
      largest_linear = std::max(largest_linear, n);
      const double bits = quant.bits(l);
      linear_bits_sum += bits * n;
      linear_count += n;
      x.weights += n * quant.q.element_bits() / 8;        // the elements (codes)
      x.constants += n * (bits - quant.q.element_bits()) / 8;  // scales, double-quant constants
      if (l.bias) x.norms_biases += static_cast<double>(l.out) * b16;
      if (full) {
        const double pb = wbytes_dense;
        x.trainable += n + (l.bias ? l.out : 0);
        x.grads += (n + (l.bias ? l.out : 0)) * pb;
        x.states += s.optimizer == Optimizer::adafactor ? adafactor_state(l.out, l.in) + (l.bias ? 4.0 * l.out : 0)
                                                        : opt_state(n, pb) + (l.bias ? opt_state(l.out, pb) : 0);
        x.largest = std::max(x.largest, n);
      }
      if (adapted(l)) {
        const double na = r * l.in, nbm = l.out * r;  // lora_A: r x in, lora_B: out x r
        x.lora += (na + nbm) * ab;
        x.trainable += na + nbm;
        x.grads += (na + nbm) * ab;
        x.states += s.optimizer == Optimizer::adafactor ? adafactor_state(r, l.in) + adafactor_state(l.out, r)
                                                        : opt_state(na, ab) + opt_state(nbm, ab);
        x.largest = std::max({x.largest, na, nbm});
      }
    }
    x.norms_biases += static_cast<double>(blk.norm_params + blk.other_params) * b16;
    if (full) {
      const double n1 = static_cast<double>(blk.norm_params + blk.other_params);
      x.trainable += n1;
      x.grads += n1 * wbytes_dense;
      x.states += s.optimizer == Optimizer::adafactor ? 4 * n1 : opt_state(n1, wbytes_dense);
    }
  }
  e.linear_bits = linear_count > 0 ? linear_bits_sum / linear_count : 0;
  const double embed_bytes = static_cast<double>(arch.embedding_params) * b16;
  const double head_bytes = static_cast<double>(arch.lm_head_params) * b16;
  const double extra_bytes = static_cast<double>(arch.extra_16bit_params) * b16;

  // ---- device_map="auto": blocks split over GPUs by static bytes ----
  const int G = s.gpus;
  std::vector<int> gpu_of(arch.blocks.size(), 0);
  {
    std::vector<double> sizes;
    sizes.push_back(embed_bytes);
    for (const auto& x : bs) sizes.push_back(x.weights + x.constants + x.norms_biases + x.lora + x.states);
    sizes.push_back(head_bytes + extra_bytes);
    const double total = std::accumulate(sizes.begin(), sizes.end(), 0.0);
    // accelerate get_balanced_memory + infer_auto_device_map: fill GPUs in
    // order up to an equal share; the last GPU takes the rest.
    const double share = total / G;
    int g = 0;
    double cum = sizes.front();  // bytes placed so far, all GPUs
    for (std::size_t k = 0; k < bs.size(); ++k) {
      const double sz = sizes[k + 1];
      while (g < G - 1 && cum + sz / 2 > share * (g + 1)) ++g;  // block's midpoint beyond GPU g's share
      const int remaining = static_cast<int>(bs.size() - k);
      if (remaining <= G - 1 - g) g = G - remaining;  // every GPU gets at least one block
      gpu_of[k] = g;
      cum += sz;
    }
  }
  e.layers_per_gpu.assign(G, 0);
  for (int g : gpu_of) ++e.layers_per_gpu[g];
  const int first = 0, last = G - 1;

  // ---- terms ----
  auto per_block = [&](auto&& f) {
    std::vector<double> v(G, 0.0);
    for (std::size_t k = 0; k < arch.blocks.size(); ++k) v[gpu_of[k]] += f(k);
    return v;
  };
  auto on = [&](int g, double bytes) {
    std::vector<double> v(G, 0.0);
    v[g] += bytes;
    return v;
  };
  auto max_block = [&](auto&& f) {  // the largest one-block quantity on each GPU
    std::vector<double> v(G, 0.0);
    for (std::size_t k = 0; k < arch.blocks.size(); ++k) v[gpu_of[k]] = std::max(v[gpu_of[k]], f(k));
    return v;
  };
  auto add = [&](std::string key, std::string label, std::string formula, std::string source, std::string phases,
                 std::vector<double> bytes) {
    e.terms.push_back(Term{std::move(key), std::move(label), std::move(formula), std::move(source), std::move(phases),
                           std::move(bytes)});
  };
  auto sum = [](const std::vector<double>& v) { return std::accumulate(v.begin(), v.end(), 0.0); };

  const std::string fmtname = e.weights;
  add("weights", "Linear weights (" + fmtname + " elements)",
      fmt::format("Σ in·out × {} bits / 8 over the Linears of all blocks", quant.q.element_bits()),
      "registry element_bits(); LLM.int8 blog (params × bytes)", "*",
      per_block([&](std::size_t k) { return bs[k].weights; }));
  if (quantized)
    add("quant_constants", "quantization constants (scales, absmax, double-quant)",
        fmt::format("Σ in·out × (bits − element bits) / 8; mean bits/param {:.4f}", e.linear_bits),
        "registry bits_per_parameter(out, in) − element_bits (QLoRA §3: 4.5 for nf4@64, 4.127 with double quant; int8@row 8 + 32/in)", "*",
        per_block([&](std::size_t k) { return bs[k].constants; }));
  {
    auto v = on(first, embed_bytes);
    v[last] += head_bytes + extra_bytes;
    add("embeddings_lm_head", fmt::format("embeddings, lm_head, final norms ({}-bit)", 8 * b16),
        fmt::format("({} + {} + {}) params × {} B", arch.embedding_params, arch.lm_head_params, arch.extra_16bit_params, b16),
        kbit_prep ? "peft prepare_model_for_kbit_training casts non-quantized params to fp32 (memory-notes pitfall 4)"
                  : "transformers keeps lm_head/embeddings unquantized (llm_int8_skip_modules); 16-bit (4-bit blog)",
        "*", v);
  }
  add("norms_biases", fmt::format("block norms and biases ({}-bit)", 8 * b16), fmt::format("params × {} B", b16),
      "never quantized (bnb replaces only nn.Linear weights)", "*",
      per_block([&](std::size_t k) { return bs[k].norms_biases; }));

  if (train) {
    const auto grads = per_block([&](std::size_t k) { return bs[k].grads; });
    const auto states = per_block([&](std::size_t k) { return bs[k].states; });
    std::vector<double> trainable = per_block([&](std::size_t k) { return bs[k].trainable; });
    double head_trainable = 0;
    if (full) {  // embeddings, lm_head, final norms are trained too
      head_trainable = static_cast<double>(arch.embedding_params + arch.lm_head_params + arch.extra_16bit_params);
    }
    e.trainable = static_cast<std::int64_t>(sum(trainable) + head_trainable);
    std::vector<double> g2 = grads, st2 = states;
    if (full) {
      const double pb = wbytes_dense;
      g2[first] += arch.embedding_params * pb;
      g2[last] += (arch.lm_head_params + arch.extra_16bit_params) * pb;
      auto st = [&](double rows, double cols) {
        return s.optimizer == Optimizer::adafactor ? adafactor_state(rows, cols) : opt_state(rows * cols, pb);
      };
      st2[first] += st(static_cast<double>(arch.embedding_params) / h, h);
      st2[last] += st(static_cast<double>(arch.lm_head_params) / h, h) + st(static_cast<double>(arch.extra_16bit_params), 1);
    }
    if (adapters)
      add("lora_params", fmt::format("LoRA adapters r={} on {} ({})", s.lora_rank, fmt::join(e.lora_targets, ","), s.adapter_dtype),
          fmt::format("Σ r·(in + out) × {} B", ab), "LoRA: A r×in, B out×r (memory-notes; PEFT default fp32)", "*",
          per_block([&](std::size_t k) { return bs[k].lora; }));
    const std::string gphases = s.grad_accum > 1 ? "FLBS" : "S";
    add("gradients", "gradients of trainable parameters",
        fmt::format("{} trainable × {} B{}", e.trainable, full ? wbytes_dense : ab,
                    s.grad_accum > 1 ? "; alive across micro-batches (grad accumulation)" : "; freed by zero_grad(set_to_none)"),
        "Transformer Math 101 / HF model_memory_anatomy: one gradient per trainable parameter in its dtype", gphases, g2);
    const bool paged = s.optimizer == Optimizer::paged_adamw32 || s.optimizer == Optimizer::paged_adamw8;
    add(paged ? "optimizer_states_paged" : "optimizer_states", "optimizer states (" + to_string(s.optimizer) + ")",
        s.optimizer == Optimizer::adamw     ? "2 × trainable × param bytes (torch AdamW: m, v in the parameter dtype)"
        : s.optimizer == Optimizer::sgd     ? "trainable × param bytes (momentum buffer)"
        : s.optimizer == Optimizer::adafactor ? "4·(rows + cols) per matrix (factored second moment, no first moment)"
        : (s.optimizer == Optimizer::adamw8 || s.optimizer == Optimizer::paged_adamw8)
            ? "2 × (1 + 4/2048) B per element; tensors < 4096 elements 8 B"
            : "8 B per trainable parameter (fp32 m, v)",
        "Transformer Math 101; HF model_memory_anatomy; bnb optimizers docs (min_8bit_size 4096, paged = unified memory)",
        "*", st2);
    // Step temporaries.
    std::vector<double> step(G, 0.0);
    std::string step_formula = "none (fused per-tensor kernel)";
    if (s.optimizer == Optimizer::adamw) {
      for (int g = 0; g < G; ++g) step[g] = g2[g];  // one state-sized buffer in the parameter dtype
      step_formula = "one state-sized buffer: torch foreach AdamW materialises sqrt(exp_avg_sq) for all params";
    } else if (s.optimizer == Optimizer::adafactor) {
      const auto big = max_block([&](std::size_t k) { return bs[k].largest; });
      for (int g = 0; g < G; ++g) step[g] = 3 * 4 * big[g];
      step_formula = "3 fp32 copies of the largest trainable tensor (HF Adafactor upcasts grad, param, update)";
    }
    add("optimizer_step_temp", "optimizer step temporaries", step_formula, "[derived] torch.optim / transformers source",
        "S", step);

    // ---- activations ----
    const double i = arch.intermediate;
    const bool soft32 = arch.model_type != "gpt2" && !(arch.model_type == "opt" && s.compute == "bf16");
    // Which attention kernel runs, and its bytes per score element (B·A·S²):
    //  eager: HF eager_attention_forward: matmul·scaling (+mask), softmax(dtype=fp32).to(q.dtype):
    //    saved fp32 probabilities + their cast (one tensor when act is fp32); at the softmax the
    //    pre-softmax scores and softmax's fp32 copy of them are alive too (+4 B beyond the saved);
    //    backward: grads of the probabilities, their fp32 cast and the softmax grad (+10 B at
    //    16-bit, +12 B at fp32 beyond the saved bytes).
    //  sdpa, fused (flash / memory-efficient): no s² tensor; saves q, k, v, O and fp32 logsumexp.
    //  sdpa, math: torch picks the composite math kernel when no fused one applies: flash needs
    //    fp16/bf16 and sm80+, memory-efficient has no GQA (`check_batch_size_and_num_heads_dense<false>`,
    //    torch sdp_utils.cpp), and transformers 5 passes enable_gqa=True when there is no mask
    //    (integrations/sdpa_attention.py use_gqa_in_sdpa). _scaled_dot_product_attention_math
    //    (torch attention.cpp) upcasts q, k, v to fp32, repeat_interleaves k, v, and at
    //    _safe_softmax holds scores 4 + softmax 4 + the -inf mask 1 = 9 B per element (+5 beyond
    //    the saved fp32 probabilities, 4 B; SafeSoftmaxBackward0); backward +12 B.
    // The per-element constants were measured with scripts/probe_sdpa_memory.py (H200, torch 2.11:
    // eager fp32 fwd 8.1 / saved 4.1 / bwd +12.3, eager bf16 10.0 / 6.0 / +10.1, math fp32 GQA
    // 9.5 / 4.4 / +12.1 B per score element, q, k, v included).
    enum class AttnPath { eager, fused, math };
    const bool gqa = kvd < ad;
    AttnPath path = AttnPath::eager;
    if (s.attention == Attention::sdpa)
      path = (act >= 4 && gqa) || (act < 4 && gqa && !e.gpu.bf16) ? AttnPath::math : AttnPath::fused;
    const double score_act = soft32 ? act : c;  // dtype the probabilities are cast back to
    const double score_bytes = path == AttnPath::math ? 4.0
                               : (soft32 ? 4.0 : c) + (soft32 && score_act < 4 ? score_act : 0) +
                                     (arch.attention_dropout > 0 ? 1.0 + score_act : 0);
    const double score_fwd_extra = path == AttnPath::math ? 5.0 : path == AttnPath::eager ? 4.0 : 0.0;
    const double score_bwd_extra = path == AttnPath::math ? 12.0
                                   : path == AttnPath::eager ? (score_act < 4 ? 10.0 : 12.0)
                                                             : 0.0;
    // One block's saved activations, split into named parts.
    struct Acts {
      double norms = 0, linear_inputs = 0, lora = 0, attention = 0, mlp = 0, dropout = 0;
      double total() const { return norms + linear_inputs + lora + attention + mlp + dropout; }
    };
    auto group_in_bytes = [&](InputGroup g) -> int {
      return (g == InputGroup::attn_in || g == InputGroup::mlp_in || g == InputGroup::cross_q_in) ? nb
             : g == InputGroup::cross_kv_in                                                     ? rb
                                                                                                 : act;
    };
    auto block_acts = [&](const Block& blk) {
      Acts a;
      // Norms: HF RMSNorm saves its fp32 upcast input; LayerNorm its input + mean/rstd.
      const double per_norm = arch.norm == NormKind::rms ? 4 * T * h : rb * T * h + 8 * T;
      a.norms = blk.norms * (per_norm + (full ? nb * T * h : 0));
      // Linear inputs, deduplicated per input group when the same tensor is saved.
      std::set<std::pair<int, int>> shared;  // (group, bytes)
      for (const auto& l : blk.linears) {
        const int gin = group_in_bytes(l.group);
        auto save = [&](int bytes, double& into) {
          if (bytes == gin) {
            if (shared.insert({static_cast<int>(l.group), bytes}).second) into += bytes * T * l.in;
          } else {
            into += bytes * T * l.in;  // a cast made for this module alone
          }
        };
        if (full) save(c, a.linear_inputs);  // dW needs the input
        // MatMul8bitLt keeps A itself, in A's dtype: `ctx.tensors = (CAt, subA, A)` (bnb 0.50
        // autograd/_functions.py; 0.39 kept A even when no gradient was needed).
        else if (quant.kind == LinearKind::int8) save(gin, a.linear_inputs);
        // bnb 0.39 MatMul4Bit: `ctx.tensors = (A, B)` with A = x.to(compute_dtype), a copy per
        // module when the input dtype differs; bnb 0.50: `ctx.tensors = (None, B)`, no input.
        else if (quant.kind == LinearKind::kbit && old_stack) save(c, a.linear_inputs);
        // Frozen dense layers save no input.
        if (adapted(l)) {
          if (s.lora_dropout > 0) a.lora += (ab + 1.0) * T * l.in;  // dropout output + bool mask
          else save(ab, a.lora);
          a.lora += ab * T * r;  // lora_A output, saved by lora_B
        }
      }
      // Attention: eager q, k, v (k, v expanded by repeat_kv) + probabilities; fused q, k, v
      // (GQA-sized k, v) + O + logsumexp; math fp32 q, k, v expanded + fp32 probabilities.
      const int n_att = blk.cross_attention ? 2 : 1;
      a.attention = n_att * (path == AttnPath::eager  ? act * T * 3 * ad + B * A * S * S * score_bytes
                             : path == AttnPath::math ? 4 * T * 3 * ad + B * A * S * S * score_bytes
                                                      : act * T * (2 * ad + 2 * kvd) + 4 * B * A * S);
      a.mlp = (arch.mlp == MlpKind::gated ? 3.0 : 1.0) * act * T * i;
      a.dropout = arch.hidden_dropout > 0 ? (n_att + 1) * T * h : 0;
      return a;
    };
    auto block_fwd_workspace = [&](const Block& blk) {  // transient at the attention's peak, beyond what is saved
      const int n_att = blk.cross_attention ? 2 : 1;
      return n_att * B * A * S * S * score_fwd_extra;
    };
    // Gradients of one block's intermediates during its backward. The MLP comes last in the
    // forward, so its backward runs first and its saved tensors are freed before the attention's
    // backward workspace exists (with GC, the recomputed forward reaches the attention before the
    // MLP saves anything): the attention workspace coexists with all saved activations but the
    // block's MLP ones.
    auto block_workspace = [&](std::size_t k, const Acts& a) {
      const Block& blk = arch.blocks[k];
      const int n_att = blk.cross_attention ? 2 : 1;
      double att = path == AttnPath::fused ? act * T * 3 * ad : B * A * S * S * score_bwd_extra;
      // With GC the block is first recomputed with grad: its forward transient counts too.
      if (s.grad_ckpt) att = std::max(att, B * A * S * S * score_fwd_extra);
      return std::max(n_att * att - a.mlp, 2.0 * act * T * i) + 2.0 * rb * T * h;
    };
    std::vector<Acts> acts;
    for (const auto& blk : arch.blocks) acts.push_back(block_acts(blk));
    const std::string ph_saved = s.grad_ckpt ? "B" : "FB";
    const std::string src_acts =
        "Korthikanti et al. 2022 per-block accounting, specialised to HF modules (memory-notes: Activations)";
    if (s.grad_ckpt) {
      add("act_checkpoints", "checkpointed block inputs (GC)",
          fmt::format("L × b·s·h × {} B = {} × {:g} × {:g} × {}", rb, arch.blocks.size(), T, h, rb),
          "HF gradient checkpointing per decoder layer (memory-notes: 2·sbhL with full recomputation)", "FLB",
          per_block([&](std::size_t) { return rb * T * h; }));
    }
    auto acts_term = [&](const char* key, const char* label, const std::string& formula, auto field) {
      if (s.grad_ckpt)  // one block recomputed at a time, during backward
        add(key, std::string(label) + " (one recomputed block)", formula, src_acts, "B",
            max_block([&](std::size_t k) { return field(acts[k]); }));
      else
        add(key, label, formula, src_acts, "FLB", per_block([&](std::size_t k) { return field(acts[k]); }));
    };
    acts_term("act_norms", "saved activations: norms",
              arch.norm == NormKind::rms ? "per norm 4·b·s·h (fp32 upcast input)" : fmt::format("per norm {}·b·s·h", rb),
              [](const Acts& a) { return a.norms; });
    acts_term("act_linear_inputs", "saved activations: Linear inputs",
              full ? "c·b·s·in per input group (trainable weights)"
              : quant.kind == LinearKind::int8 ? "2·b·s·in per input group (LLM.int8 MatMul8bitLt saves fp16 A)"
                                               : "none (frozen 16-bit / MatMul4Bit save no input)",
              [](const Acts& a) { return a.linear_inputs; });
    if (adapters)
      acts_term("act_lora", "saved activations: LoRA path",
                fmt::format("per adapted Linear ({} + {})·b·s·in + {}·b·s·r", ab, s.lora_dropout > 0 ? 1 : 0, ab),
                [](const Acts& a) { return a.lora; });
    acts_term("act_attention", "saved activations: attention",
              path == AttnPath::eager  ? fmt::format("3·{}·b·s·a·d + b·a·s²·{:g} (eager softmax)", act, score_bytes)
              : path == AttnPath::math ? "3·4·b·s·a·d + b·a·s²·4 (sdpa math kernel: fp32, GQA expanded)"
                                       : fmt::format("{}·b·s·(2·a·d + 2·kv) + 4·b·a·s (sdpa fused: q, k, v, O, lse)", act),
              [](const Acts& a) { return a.attention; });
    acts_term("act_mlp", "saved activations: MLP",
              arch.mlp == MlpKind::gated ? fmt::format("3·{}·b·s·i (gate, act, up)", act) : fmt::format("{}·b·s·i (activation)", act),
              [](const Acts& a) { return a.mlp; });
    if (arch.hidden_dropout > 0)
      acts_term("act_dropout", "saved activations: dropout masks", "1 B × b·s·h per residual dropout",
                [](const Acts& a) { return a.dropout; });
    if (score_fwd_extra > 0)
      add("forward_workspace", "forward transient of one block (attention scores)",
          s.grad_ckpt ? fmt::format("b·a·s²·({:g} + {:g}) (no-grad forward: nothing saved, all transient)", score_bytes,
                                    score_fwd_extra)
                      : fmt::format("b·a·s²·{:g} beyond the saved probabilities", score_fwd_extra),
          path == AttnPath::math ? "torch _scaled_dot_product_attention_math + _safe_softmax (attention.cpp)"
                                 : "HF eager_attention_forward: pre-softmax scores alive during softmax",
          "F", max_block([&](std::size_t k) {
            return block_fwd_workspace(arch.blocks[k]) +
                   (s.grad_ckpt ? (arch.blocks[k].cross_attention ? 2 : 1) * B * A * S * S * score_bytes : 0.0);
          }));
    add("backward_workspace", "backward workspace of one block",
        fmt::format("{} + 2·{}·b·s·i + 2·rb·b·s·h",
                    path == AttnPath::fused ? fmt::format("3·{}·b·s·a·d", act)
                    : s.grad_ckpt ? fmt::format("b·a·s²·max({:g}, {:g} recompute transient)", score_bwd_extra, score_fwd_extra)
                                  : fmt::format("b·a·s²·{:g}", score_bwd_extra),
                    act),
        "[derived] gradients of the largest intermediates of the block being differentiated", "B",
        max_block([&](std::size_t k) { return block_workspace(k, acts[k]); }));
    // Final norm + logits + loss on the last GPU.
    {
      const double final_norm = (arch.norm == NormKind::rms ? 4 * T * h : rb * T * h) + (full ? c * T * h : 0);
      const bool causal = !arch.encoder_decoder;
      const double ld = autocast ? c : b16;  // lm_head output dtype (fp32 after kbit prep)
      // current (transformers 5.17 loss/loss_utils.py ForCausalLMLoss): `logits = logits.float()`,
      //   labels shifted (no logits copy), cross_entropy = log_softmax (fp32, saved) + nll. Forward
      //   peak: logits + fp32 copy + log_softmax = (ld + 4 + 4)·b·s·V (ld + 4 when ld is fp32);
      //   backward: saved log_softmax + nll grad + log_softmax grad = 12·b·s·V, the larger.
      // may2023 (transformers 4.29/4.30 LlamaForCausalLM): no upcast, `shift_logits =
      //   logits[..., :-1, :].contiguous()`, CrossEntropyLoss in the logits dtype: 3·ld·b·s·V
      //   forward (logits, shift copy, log_softmax) and backward (saved, nll grad, its grad).
      const double fwd_l = old_stack ? 3.0 * ld : ld + (ld < 4 ? 4.0 : 0.0) + 4.0;
      const double bwd_l = old_stack ? 3.0 * ld : 12.0;
      const double logits = causal ? std::max(fwd_l, bwd_l) * T * V : 3.0 * ld * T * V;
      add("logits_loss", "final norm, logits and loss buffers",
          causal ? fmt::format("b·s·V × max({:g}, {:g}) B (forward: logits{}, log_softmax; backward: saved, nll grad, "
                               "log_softmax grad) = {:g} × {:g} × {:g}",
                               fwd_l, bwd_l, old_stack ? ", shift_logits copy" : ", fp32 upcast", T, V, std::max(fwd_l, bwd_l))
                 : fmt::format("b·s·V × 3 × {} B (logits, log_softmax, grad)", ld),
          old_stack ? "HF LlamaForCausalLM 4.29/4.30: shift_logits.contiguous(), CrossEntropyLoss in the logits dtype"
                    : "transformers 5.17 loss_utils.ForCausalLMLoss: logits.float(), shifted labels, cross_entropy",
          "L", on(last, final_norm + logits));
    }
    // Dequantization workspace: one weight dequantized at a time.
    if (quant.kind == LinearKind::kbit)
      add("dequant_workspace", "dequantization workspace (one Linear)", fmt::format("max in·out × {} B", c),
          "bnb MatMul4Bit: dequantize_4bit(B) to the compute dtype, then matmul", "FB",
          max_block([&](std::size_t) { return largest_linear * c; }));
    else if (quant.kind == LinearKind::int8)
      add("dequant_workspace", "LLM.int8 backward: one weight dequantized to fp16", "max in·out × 2 B",
          "bnb MatMul8bitLt.backward: CB * SCB / 127 to fp16 (memory-notes pitfall 5)", "B",
          max_block([&](std::size_t) { return largest_linear * 2; }));
  } else {
    // ---- inference: prefill + KV cache ----
    e.trainable = 0;
    const double i = arch.intermediate;
    add("kv_cache", fmt::format("KV cache ({} tokens × batch {})", s.seq_len, s.batch),
        arch.encoder_decoder ? "decoder: 2·(self + cross)·b·s·a·d·c per block"
                             : fmt::format("2·L·kv_heads·head_dim·c·b·s = 2 × {} × {:g} × {} × {:g}", arch.layers, kvd, c, T),
        "memory-notes: KV cache; GQA-aware (pitfall 10)", "P", per_block([&](std::size_t k) {
          const Block& blk = arch.blocks[k];
          if (blk.encoder) return 0.0;
          return 2.0 * c * T * (blk.cross_attention ? 2 * ad : kvd);
        }));
    const bool soft32 = arch.model_type != "gpt2";
    add("prefill_workspace", "prefill: one block's intermediates",
        s.attention == Attention::eager ? "c·b·s·(a·d + 2·kv) + b·a·s²·(4 + c) + (2|3)·c·b·s·i + 2·rb·b·s·h"
                                        : "c·b·s·(2·a·d + 2·kv) + (2|3)·c·b·s·i + 2·rb·b·s·h",
        "[derived] HF eager attention: fp32 softmax + 16-bit copy of the scores", "P", max_block([&](std::size_t) {
          const double att = s.attention == Attention::eager ? B * A * S * S * ((soft32 ? 4.0 : 0) + c) : c * T * ad;
          return c * T * (ad + 2 * kvd) + att + (arch.mlp == MlpKind::gated ? 3.0 : 2.0) * c * T * i + 2.0 * rb * T * h;
        }));
    add("logits_loss", "prefill logits (fp32 upcast)", fmt::format("b·s·V × ({} + 4) B", b16),
        "HF generate (≤4.44) computes logits for every prompt token and calls .float()", "P",
        on(last, T * V * (b16 + 4.0)));
    if (quant.kind == LinearKind::kbit)
      add("dequant_workspace", "dequantization workspace (one Linear)", fmt::format("max in·out × {} B", c),
          "bnb MatMul4Bit dequantizes the weight for prompts longer than one token", "P",
          on(0, largest_linear * c));
    else if (quant.kind == LinearKind::int8)
      add("dequant_workspace", "LLM.int8 int8 activations + int32 accumulators", "b·s·(in + 4·out) for the largest Linear",
          "bnb MatMul8bitLt forward", "P", on(0, T * (std::sqrt(largest_linear) * 5)));
  }

  // ---- phases, peak, allocator, context, verdict ----
  const std::string phase_letters = train ? "FLBS" : "P";
  e.allocated.assign(G, 0);
  e.reserved.assign(G, 0);
  e.total.assign(G, 0);
  e.peak_phase.assign(G, "");
  std::vector<double> paged_bytes(G, 0.0);
  for (int g = 0; g < G; ++g) {
    double stat = 0;
    for (const auto& t : e.terms) {
      if (t.static_term()) stat += t.bytes[g];
      if (t.key == "optimizer_states_paged") paged_bytes[g] = t.bytes[g];
    }
    // Allocator: the caching allocator keeps freed segments. Long-lived tensors allocated in
    // order (saved activations, gradients, KV cache) reuse them well: kSavedOverhead of their
    // bytes. The transients of the different phases (logits/loss buffers, block workspaces,
    // dequantized weights, optimizer temporaries) come in sizes no other phase asks for, so the
    // segments cached for one phase are only partly reused by the next: allocator_overhead of
    // the transients of all phases. Both fractions were fitted once to the 26 configurations of
    // reports/data/memory_measured_h200.h5 (torch 2.11 caching allocator, default settings).
    constexpr double kSavedOverhead = 0.06;
    auto long_lived = [](const Term& t) {
      return t.key.rfind("act_", 0) == 0 || t.key == "gradients" || t.key == "kv_cache";
    };
    double transients = 0;
    for (const auto& t : e.terms)
      if (!t.static_term() && !long_lived(t)) transients += t.bytes[g];
    double best = -1;
    for (char p : phase_letters) {
      double dyn = 0, saved = 0;
      for (const auto& t : e.terms)
        if (!t.static_term() && t.phases.find(p) != std::string::npos) {
          dyn += t.bytes[g];
          if (long_lived(t)) saved += t.bytes[g];
        }
      if (stat + dyn > best) {
        best = stat + dyn, e.peak_phase[g] = std::string(1, p);
        e.allocated[g] = stat + dyn;
        e.reserved[g] = stat + dyn + kSavedOverhead * saved + s.allocator_overhead * transients;
      }
    }
    const double best_r = e.reserved[g];
    e.total[g] = best_r + s.cuda_context_mib * kMiB;
  }
  e.worst_gpu = static_cast<int>(std::max_element(e.total.begin(), e.total.end()) - e.total.begin());
  {
    std::vector<double> alloc(G), ctx(G, s.cuda_context_mib * kMiB);
    for (int g = 0; g < G; ++g) alloc[g] = (e.reserved[g] - e.allocated[g]);
    add("allocator_overhead", "allocator overhead (reserved − allocated)",
        fmt::format("0.06 × long-lived dynamic bytes of the peak phase + {:g} × transients of all phases",
                    s.allocator_overhead),
        "torch caching allocator; fractions fitted to reports/data/memory_measured_h200.h5 (memory-notes: ~25 % in "
        "published logs)", "+",
        alloc);
    add("cuda_context", "CUDA context, cuBLAS, kernels", fmt::format("{:g} MiB per GPU", s.cuda_context_mib),
        "PyTorch PR #86509: 287 MB lazy / 667 MB eager module loading; gpu_poor assumes 650 MB", "+", ctx);
  }
  e.parameters = arch.parameters();
  e.usable = e.gpu.usable_mib * kMiB;
  const double worst = e.total[e.worst_gpu];
  e.headroom = e.usable - worst;
  double worst_unpaged = 0;
  for (int g = 0; g < G; ++g) worst_unpaged = std::max(worst_unpaged, e.total[g] - paged_bytes[g]);
  e.total_without_paged = worst_unpaged;
  if (worst <= e.usable) e.verdict = Verdict::fits;
  else if (worst_unpaged <= e.usable && worst_unpaged < worst) e.verdict = Verdict::fits_with_paging;
  else e.verdict = Verdict::oom;
  (void)gib;
  return e;
}

std::int64_t max_fitting(const Architecture& arch, Settings s, bool search_seq_len, std::int64_t limit) {
  auto fits = [&](std::int64_t v) {
    (search_seq_len ? s.seq_len : s.batch) = v;
    return estimate(arch, s).verdict == Verdict::fits;
  };
  if (!fits(1)) return 0;
  std::int64_t lo = 1, hi = 2;
  while (hi <= limit && fits(hi)) lo = hi, hi *= 2;
  if (hi > limit) return lo;  // fits up to the limit of the search
  while (hi - lo > 1) {
    const std::int64_t mid = lo + (hi - lo) / 2;
    (fits(mid) ? lo : hi) = mid;
  }
  return lo;
}

}  // namespace lowbit::memory
