#include "experiments/memory/spec.hpp"

#include <cmath>
#include <fstream>
#include <sstream>

#include <fmt/format.h>
#include <toml++/toml.h>

#include "experiments/harness/cli.hpp"
#include "experiments/harness/errors.hpp"

namespace lowbit::memory {

using harness::ColumnType;
using harness::InputError;
using harness::UsageError;

namespace {

std::int64_t to_int(const std::string& key, const std::string& v) {
  std::size_t pos = 0;
  long long x = 0;
  try {
    x = std::stoll(v, &pos);
  } catch (const std::exception&) {
    pos = 0;
  }
  if (pos == 0 || pos != v.size()) throw UsageError(key + ": expected an integer, got '" + v + "'");
  return x;
}
double to_double(const std::string& key, const std::string& v) {
  std::size_t pos = 0;
  double x = 0;
  try {
    x = std::stod(v, &pos);
  } catch (const std::exception&) {
    pos = 0;
  }
  if (pos == 0 || pos != v.size() || !std::isfinite(x)) throw UsageError(key + ": expected a number, got '" + v + "'");
  return x;
}
bool to_bool(const std::string& key, const std::string& v) {
  if (v == "true" || v == "on" || v == "yes" || v == "1") return true;
  if (v == "false" || v == "off" || v == "no" || v == "0") return false;
  throw UsageError(key + ": expected true/false (on/off), got '" + v + "'");
}

}  // namespace

std::vector<std::string> setting_keys() {
  return {"mode",         "method",      "weights",      "compute",      "optimizer",       "batch",
          "seq_len",      "grad_accum",  "grad_ckpt",    "lora_rank",    "lora_alpha",      "lora_dropout",
          "lora_targets", "adapter_dtype", "kbit_prep",  "attention",    "gpu",             "gpus",
          "cuda_context_mib", "allocator_overhead", "stack"};
}

void apply_setting(Settings& s, const std::string& key, const std::string& v) {
  if (key == "mode") s.mode = parse_mode(v);
  else if (key == "method") s.method = parse_method(v);
  else if (key == "weights") s.weights = v;
  else if (key == "compute") dtype_bytes(v), s.compute = v;
  else if (key == "optimizer") s.optimizer = parse_optimizer(v);
  else if (key == "batch") s.batch = to_int(key, v);
  else if (key == "seq_len") s.seq_len = to_int(key, v);
  else if (key == "grad_accum") s.grad_accum = to_int(key, v);
  else if (key == "grad_ckpt") s.grad_ckpt = to_bool(key, v);
  else if (key == "lora_rank") s.lora_rank = to_int(key, v);
  else if (key == "lora_alpha") s.lora_alpha = to_double(key, v);
  else if (key == "lora_dropout") s.lora_dropout = to_double(key, v);
  else if (key == "lora_targets") s.lora_targets = harness::split_list(v);
  else if (key == "adapter_dtype") dtype_bytes(v), s.adapter_dtype = v;
  else if (key == "kbit_prep") {
    if (v == "auto") s.kbit_prep.reset();
    else s.kbit_prep = to_bool(key, v);
  } else if (key == "attention") s.attention = parse_attention(v);
  else if (key == "stack") s.stack = parse_stack(v);
  else if (key == "gpu") s.gpu = v;
  else if (key == "gpus") s.gpus = static_cast<int>(to_int(key, v));
  else if (key == "cuda_context_mib") s.cuda_context_mib = to_double(key, v);
  else if (key == "allocator_overhead") s.allocator_overhead = to_double(key, v);
  else {
    auto keys = setting_keys();
    for (const char* k : {"model", "label", "published", "published_weights_gb", "note"}) keys.push_back(k);
    throw UsageError("unknown key '" + key + "'" + harness::did_you_mean(key, keys));
  }
}

std::string normalize_published(const std::string& text) {
  std::string t;
  for (char ch : text) t += static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  if (t.empty()) return "";
  if (t == "no oom" || t == "fits" || t == "fit" || t == "yes" || t == "ok") return "fits";
  if (t == "oom" || t == "no") return "OOM";
  if (t == "fits-with-paging" || t == "paging") return "fits-with-paging";
  throw UsageError("published result '" + text + "': write 'no OOM' / 'fits', 'OOM' or 'fits-with-paging'");
}

bool verdict_agrees(const std::string& published, const Estimate& e) {
  const bool paged = e.settings.optimizer == Optimizer::paged_adamw32 || e.settings.optimizer == Optimizer::paged_adamw8;
  if (published == "fits") return e.verdict == Verdict::fits || (paged && e.verdict == Verdict::fits_with_paging);
  if (published == "fits-with-paging") return e.verdict == Verdict::fits_with_paging;
  if (published == "OOM") return e.verdict == Verdict::oom;
  return false;
}

double weights_bytes(const Estimate& e) {
  double b = 0;
  for (const auto& t : e.terms)
    if (t.key == "weights" || t.key == "quant_constants" || t.key == "embeddings_lm_head" || t.key == "norms_biases")
      for (double x : t.bytes) b += x;
  return b;
}

// ---- spec files ----

namespace {

std::string toml_value_text(const toml::node& n, const std::string& where) {
  if (auto s = n.value<std::string>()) return *s;
  if (n.is_integer()) return std::to_string(*n.value<std::int64_t>());
  if (n.is_floating_point()) return fmt::format("{}", *n.value<double>());
  if (n.is_boolean()) return *n.value<bool>() ? "true" : "false";
  if (const auto* arr = n.as_array()) {
    std::string out;
    for (const auto& x : *arr) out += (out.empty() ? "" : ",") + toml_value_text(x, where);
    return out;
  }
  throw InputError(where + ": unsupported value type");
}

void apply_row_key(SpecRow& row, const std::string& key, const std::string& value, const std::string& where) {
  try {
    if (key == "model") row.model = value;
    else if (key == "label") row.label = value;
    else if (key == "note") row.note = value;
    else if (key == "published") row.published = normalize_published(value);
    else if (key == "published_weights_gb") row.published_weights_gb = to_double(key, value);
    else apply_setting(row.settings, key, value);
  } catch (const UsageError& e) {
    throw InputError(where + ": " + e.what());
  }
}

std::vector<std::string> split_csv_line(const std::string& line) {
  std::vector<std::string> out;
  std::string cur;
  bool quoted = false;
  for (std::size_t i = 0; i < line.size(); ++i) {
    const char ch = line[i];
    if (quoted) {
      if (ch == '"' && i + 1 < line.size() && line[i + 1] == '"') cur += '"', ++i;
      else if (ch == '"') quoted = false;
      else cur += ch;
    } else if (ch == '"') quoted = true;
    else if (ch == ',') out.push_back(cur), cur.clear();
    else if (ch != '\r') cur += ch;
  }
  out.push_back(cur);
  for (auto& s : out) {
    while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.erase(s.begin());
    while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.pop_back();
  }
  return out;
}

}  // namespace

Spec load_spec(const std::string& path) {
  Spec spec;
  std::ifstream probe(path);
  if (!probe) throw InputError("cannot read table '" + path + "'");
  if (path.ends_with(".csv")) {
    std::string line;
    std::vector<std::string> header;
    int lineno = 0;
    while (std::getline(probe, line)) {
      ++lineno;
      if (line.empty() || line[0] == '#') continue;
      auto cells = split_csv_line(line);
      if (header.empty()) {
        header = cells;
        continue;
      }
      if (cells.size() != header.size())
        throw InputError(fmt::format("{}:{}: {} cells, header has {}", path, lineno, cells.size(), header.size()));
      SpecRow row;
      for (std::size_t k = 0; k < cells.size(); ++k)
        if (!cells[k].empty()) apply_row_key(row, header[k], cells[k], fmt::format("{}:{}", path, lineno));
      if (row.model.empty()) throw InputError(fmt::format("{}:{}: row has no model", path, lineno));
      spec.rows.push_back(std::move(row));
    }
  } else {
    toml::table t;
    try {
      t = toml::parse_file(path);
    } catch (const toml::parse_error& e) {
      throw InputError(fmt::format("{}:{}: {}", path, e.source().begin.line, e.description()));
    }
    spec.title = t["title"].value_or(std::string());
    spec.source = t["source"].value_or(std::string());
    SpecRow defaults;
    if (const auto* d = t["defaults"].as_table())
      for (const auto& [k, v] : *d) apply_row_key(defaults, std::string(k.str()), toml_value_text(v, path), path + " [defaults]");
    const auto* rows = t["row"].as_array();
    if (!rows || rows->empty()) throw InputError(path + ": no [[row]] entries");
    int n = 0;
    for (const auto& node : *rows) {
      ++n;
      const auto* rt = node.as_table();
      const std::string where = fmt::format("{} row {}", path, n);
      if (!rt) throw InputError(where + ": not a table");
      SpecRow row = defaults;
      for (const auto& [k, v] : *rt) apply_row_key(row, std::string(k.str()), toml_value_text(v, where), where);
      if (row.model.empty()) throw InputError(where + ": row has no model");
      spec.rows.push_back(std::move(row));
    }
    for (const auto& [k, v] : t)
      if (k.str() != "title" && k.str() != "source" && k.str() != "defaults" && k.str() != "row")
        throw InputError(path + ": unknown top-level key '" + std::string(k.str()) + "'");
  }
  if (spec.rows.empty()) throw InputError(path + ": no rows");
  return spec;
}

// ---- the memory results table ----

std::vector<std::string> term_keys() {
  return {"weights",           "quant_constants",   "embeddings_lm_head", "norms_biases",     "lora_params",
          "gradients",         "optimizer_states",  "optimizer_step_temp", "act_checkpoints", "act_norms",
          "act_linear_inputs", "act_lora",          "act_attention",      "act_mlp",          "act_dropout",
          "forward_workspace", "backward_workspace", "logits_loss",      "dequant_workspace",  "kv_cache",         "prefill_workspace",
          "allocator_overhead", "cuda_context"};
}

harness::Table memory_schema() {
  harness::Table t("memory", "GPU memory of one configuration: lowbit's estimate per term and, where measured, "
                             "torch.cuda.max_memory_allocated / max_memory_reserved (lowbit memory, measure_memory.py)");
  using CT = ColumnType;
  t.add_column("label", CT::string, "", "row label (published table's method text or measurement id)")
      .add_column("model", CT::string, "", "catalog name or config.json path")
      .add_column("params", CT::int64, "1", "parameters computed from the architecture (tied weights once)")
      .add_column("trainable", CT::int64, "1", "trainable parameters")
      .add_column("mode", CT::string, "", "train | infer")
      .add_column("method", CT::string, "", "full | lora | qlora")
      .add_column("weights", CT::string, "", "weight format (registry name)")
      .add_column("weight_bits", CT::float64, "bit", "registry bits per parameter of the Linear weights incl. scales")
      .add_column("compute", CT::string, "", "compute dtype")
      .add_column("optimizer", CT::string, "", "optimizer")
      .add_column("attention", CT::string, "", "eager | sdpa")
      .add_column("stack", CT::string, "", "library versions modelled: current (torch 2.11, transformers 5.17, peft 0.21, bnb 0.50.2) | may2023")
      .add_column("batch", CT::int64, "1", "micro-batch size")
      .add_column("seq_len", CT::int64, "token", "sequence length (padded)")
      .add_column("grad_accum", CT::int64, "1", "gradient accumulation steps")
      .add_column("grad_ckpt", CT::boolean, "", "gradient checkpointing")
      .add_column("lora_rank", CT::int64, "1", "LoRA rank (0: no adapters)")
      .add_column("lora_targets", CT::string, "", "LoRA target modules, comma-separated")
      .add_column("kbit_prep", CT::boolean, "", "prepare_model_for_kbit_training (non-quantized params in fp32)")
      .add_column("gpu", CT::string, "", "GPU name or size")
      .add_column("gpus", CT::int64, "1", "GPUs, layers split as device_map=auto");
  for (const auto& k : term_keys())
    t.add_column(k + "_bytes", CT::float64, "B", "memory term '" + k + "' on the busiest GPU (0: not present)");
  t.add_column("est_allocated_bytes", CT::float64, "B", "estimated peak allocated (compare max_memory_allocated)")
      .add_column("est_reserved_bytes", CT::float64, "B", "estimated peak reserved (compare max_memory_reserved)")
      .add_column("est_total_bytes", CT::float64, "B", "estimated reserved + CUDA context")
      .add_column("usable_bytes", CT::float64, "B", "GPU memory usable by the process (torch total_memory)")
      .add_column("headroom_bytes", CT::float64, "B", "usable − est_total (negative: does not fit)")
      .add_column("peak_phase", CT::string, "", "F end of forward, B backward, S optimizer step, P prefill")
      .add_column("verdict", CT::string, "", "fits | fits-with-paging | OOM")
      .add_column("published", CT::string, "", "published result (empty when none)")
      .add_column("agree", CT::boolean, "", "verdict agrees with the published result (false when none)")
      .add_column("measured_allocated_bytes", CT::float64, "B", "torch.cuda.max_memory_allocated (NaN: not measured)")
      .add_column("measured_reserved_bytes", CT::float64, "B", "torch.cuda.max_memory_reserved (NaN: not measured)")
      .add_column("status", CT::string, "", "estimated | ok | oom | error: … (measurement outcome)");
  return t;
}

void add_memory_row(harness::Table& t, const Estimate& e, const std::string& label, const std::string& published,
                    double measured_allocated, double measured_reserved, const std::string& status) {
  const Settings& s = e.settings;
  std::vector<harness::Cell> cells = {
      label,
      e.arch.name,
      static_cast<std::int64_t>(e.parameters),
      static_cast<std::int64_t>(e.trainable),
      to_string(s.mode),
      to_string(s.method),
      e.weights,
      e.linear_bits,
      s.compute,
      to_string(s.optimizer),
      to_string(s.attention),
      to_string(s.stack),
      static_cast<std::int64_t>(s.batch),
      static_cast<std::int64_t>(s.seq_len),
      static_cast<std::int64_t>(s.grad_accum),
      s.grad_ckpt,
      static_cast<std::int64_t>(e.lora_targets.empty() ? 0 : s.lora_rank),
      fmt::format("{}", fmt::join(e.lora_targets, ",")),
      e.kbit_prep,
      s.gpu,
      static_cast<std::int64_t>(s.gpus)};
  for (const auto& k : term_keys()) {
    double b = e.term(k);
    if (k == "optimizer_states") b += e.term("optimizer_states_paged");
    cells.emplace_back(b);
  }
  const int w = e.worst_gpu;
  cells.emplace_back(e.allocated[w]);
  cells.emplace_back(e.reserved[w]);
  cells.emplace_back(e.total[w]);
  cells.emplace_back(e.usable);
  cells.emplace_back(e.headroom);
  cells.emplace_back(e.peak_phase[w]);
  cells.emplace_back(to_string(e.verdict));
  cells.emplace_back(published);
  cells.emplace_back(!published.empty() && verdict_agrees(published, e));
  cells.emplace_back(measured_allocated);
  cells.emplace_back(measured_reserved);
  cells.emplace_back(status);
  t.add_row(cells);
}

}  // namespace lowbit::memory
