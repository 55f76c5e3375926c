// experiments/memory/spec.hpp — tables of configurations (`lowbit memory
// --table FILE`) and the `memory` results table shared with
// scripts/measure_memory.py.
//
// A spec is TOML:
//   title = "…"            source = "…"
//   [defaults]             any row key, applied to every row
//   [[row]]                model = "llama-7b", label = "LLM.int8 + GC", seq_len = 512,
//                          published = "OOM" | "no OOM" | "fits" | "fits-with-paging", …
// or CSV with a header of the same keys (empty cell = default).
// Row keys: model, label, published, published_weights_gb, note, and the
// settings: mode method weights compute optimizer batch seq_len grad_accum
// grad_ckpt lora_rank lora_alpha lora_dropout lora_targets adapter_dtype
// kbit_prep attention gpu gpus cuda_context_mib allocator_overhead.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "experiments/harness/results.hpp"
#include "experiments/memory/estimate.hpp"

namespace lowbit::memory {

struct SpecRow {
  std::string model, label, published, note;  // published: "", "fits", "OOM", "fits-with-paging"
  std::optional<double> published_weights_gb;  // a size fact: weights (all parameters) in GB
  Settings settings;
};

struct Spec {
  std::string title, source;
  std::vector<SpecRow> rows;
};

Spec load_spec(const std::string& path);

// Sets one setting from text; throws UsageError naming `key` on bad values
// and for unknown keys (with a suggestion).
void apply_setting(Settings& s, const std::string& key, const std::string& value);
std::vector<std::string> setting_keys();

// "no OOM" / "fits" / "yes" → "fits"; "OOM" → "OOM"; "fits-with-paging".
std::string normalize_published(const std::string& text);
// A published "fits" agrees with fits, and with fits-with-paging when the
// optimizer is paged (the published run used paging); "OOM" only with OOM.
bool verdict_agrees(const std::string& published, const Estimate& e);

// Bytes of all weights (quantized Linears, constants, 16-bit modules) on all GPUs.
double weights_bytes(const Estimate& e);

// The `memory` table: configuration columns, one column per memory term
// (bytes, worst GPU), peak / verdict, published result, measured columns.
harness::Table memory_schema();
std::vector<std::string> term_keys();
void add_memory_row(harness::Table& t, const Estimate& e, const std::string& label, const std::string& published,
                    double measured_allocated = std::nan(""), double measured_reserved = std::nan(""),
                    const std::string& status = "estimated");

}  // namespace lowbit::memory
