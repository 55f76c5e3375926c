// experiments/memory/estimate.hpp — the GPU memory model of `lowbit memory`.
//
// Every byte the model counts is a named Term with its formula and source
// (see shared/memory-notes.md beside the repository). The peak is the largest sum over the
// phases of a step in which the terms are alive together:
//   training:  F = end of forward (saved activations, logits, loss buffers),
//              B = backward through one block (F + that block's gradient
//                  workspace), S = optimizer step (gradients + step temporaries);
//   inference: P = prefill (KV cache, one block's workspace, logits).
// Static terms (weights, adapters, optimizer states) are alive in every phase.
// The allocator's overhead is a fraction of the phase's dynamic bytes; the
// CUDA context comes on top; the sum is compared with the GPU's usable memory.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "experiments/memory/architecture.hpp"

namespace lowbit::memory {

enum class Mode { train, infer };
enum class Method { full, lora, qlora };
enum class Optimizer { adamw, adamw32, adamw8, paged_adamw32, paged_adamw8, sgd, adafactor };
enum class Attention { eager, sdpa };
enum class Verdict { fits, fits_with_paging, oom };
// The library versions whose behaviour the activation and logits terms follow
// (see estimate.cpp, "stack"):
//   current: torch 2.11, transformers 5.17, peft 0.21, bitsandbytes 0.50.2 (measured on an H200);
//   may2023: torch 2.0, transformers 4.29/4.30, peft 0.3, bitsandbytes 0.39 (the T4 table, QLoRA paper).
enum class Stack { current, may2023 };

std::string to_string(Mode);
std::string to_string(Method);
std::string to_string(Optimizer);
std::string to_string(Attention);
std::string to_string(Verdict);
std::string to_string(Stack);
Stack parse_stack(const std::string&);
Mode parse_mode(const std::string&);
Method parse_method(const std::string&);
Optimizer parse_optimizer(const std::string&);
Attention parse_attention(const std::string&);
int dtype_bytes(const std::string& compute);  // fp16/bf16 → 2, fp32 → 4; throws UsageError

struct Gpu {
  std::string name, description;
  double usable_mib = 0;  // torch total_memory
  bool bf16 = true;
};
// A catalog name (t4, a100-80, …) or an explicit size ("24GiB", "24", "40GB").
Gpu find_gpu(const std::string& name);
std::vector<std::string> gpu_names();

struct Settings {
  Mode mode = Mode::train;
  Method method = Method::lora;
  std::string weights;          // registry name; empty: compute dtype (full/lora), nf4@64+dq (qlora)
  std::string compute = "bf16"; // compute dtype: fp16 | bf16 | fp32
  Optimizer optimizer = Optimizer::adamw32;
  std::int64_t batch = 1, seq_len = 512, grad_accum = 1;
  bool grad_ckpt = false;
  std::int64_t lora_rank = 8;
  double lora_alpha = 16, lora_dropout = 0.05;
  std::vector<std::string> lora_targets;  // empty: PEFT's default for the model type; "all-linear"
  std::string adapter_dtype = "fp32";     // PEFT creates adapters in fp32
  // PEFT prepare_model_for_kbit_training: every non-quantized parameter
  // (embeddings, lm_head, norms, biases) cast to fp32 (memory-notes pitfall 4).
  // Unset: on for training on a quantized base (what PEFT/QLoRA recipes do), off otherwise.
  std::optional<bool> kbit_prep;
  Attention attention = Attention::eager;
  Stack stack = Stack::current;
  std::string gpu = "a100-80";
  int gpus = 1;
  double cuda_context_mib = 500;  // see estimate.cpp: fixed overheads
  // reserved − allocated: this fraction of the transient bytes of all phases (+ 6 % of the
  // long-lived dynamic bytes); fitted to the H200 measurement (estimate.cpp: Allocator).
  double allocator_overhead = 0.18;
};

struct Term {
  std::string key;      // stable column name: weights, quant_constants, …
  std::string label;    // for people
  std::string formula;  // how it was computed, with the numbers
  std::string source;   // where the formula comes from
  std::string phases;   // "*" static (all phases) or letters of F, B, S, P
  std::vector<double> bytes;  // per GPU
  bool static_term() const { return phases == "*"; }
};

struct Estimate {
  Architecture arch;
  Settings settings;
  Gpu gpu;
  std::string weights;           // resolved registry name
  double linear_bits = 0;        // registry bits/param over the quantized Linears (weighted mean)
  std::int64_t parameters = 0, trainable = 0;
  std::vector<std::string> lora_targets;  // resolved
  bool kbit_prep = false;                 // resolved
  std::vector<int> layers_per_gpu;
  std::vector<Term> terms;
  // Per GPU:
  std::vector<double> allocated, reserved, total;  // peak allocated, + allocator, + CUDA context
  std::vector<std::string> peak_phase;
  int worst_gpu = 0;
  double usable = 0;  // bytes
  double total_without_paged = 0;  // worst GPU's total with paged optimizer states evicted
  Verdict verdict = Verdict::oom;
  double headroom = 0;  // usable − total (worst GPU), bytes
  std::vector<std::string> warnings;
  double term(const std::string& key) const;  // bytes on the worst GPU, 0 if absent
};

// Validates settings (throws UsageError / InputError) and evaluates the model.
Estimate estimate(const Architecture& arch, const Settings& settings);

// Largest seq_len (or batch) in [1, limit] whose verdict is `fits`; 0 if none.
std::int64_t max_fitting(const Architecture& arch, Settings settings, bool search_seq_len, std::int64_t limit = 1 << 20);

}  // namespace lowbit::memory
