// tests/test_memory.cpp — the memory model against independent numbers:
// published parameter counts, facts.md (T4 OOM table, headline facts),
// memory-notes.md (LoRA sizes, KV cache), the format registry.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>

#include <algorithm>
#include <array>
#include <set>
#include <sys/wait.h>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "experiments/harness/errors.hpp"
#include "experiments/harness/cli.hpp"
#include "experiments/harness/results.hpp"
#include "experiments/memory/architecture.hpp"
#include "experiments/memory/estimate.hpp"
#include "experiments/memory/spec.hpp"
#include "lowbit/formats/registry.hpp"

namespace mem = lowbit::memory;

namespace {

std::string source_dir() {
  const char* env = std::getenv("LOWBIT_SOURCE_DIR");
  return env ? env : LOWBIT_SOURCE_DIR;
}

// Published parameter counts (model cards / papers / HF num_parameters()).
struct Published {
  const char* model;
  double params;
  const char* source;
};
constexpr Published kPublished[] = {
    {"llama-7b", 6.74e9, "LLaMA paper Table 2 (6.7B); HF huggyllama/llama-7b 6,738,415,616"},
    {"llama-13b", 13.0e9, "LLaMA paper (13.0B)"},
    {"llama-33b", 32.5e9, "LLaMA paper (32.5B)"},
    {"llama-65b", 65.2e9, "LLaMA paper (65.2B)"},
    {"llama-2-70b", 68.98e9, "issue 5 / Llama-2-70b-hf 68,976,648,192"},
    {"llama-3-8b", 8.03e9, "Meta-Llama-3-8B model card (8.03B)"},
    {"llama-3-70b", 70.6e9, "Meta-Llama-3-70B model card (70.6B)"},
    {"mistral-7b", 7.24e9, "Mistral-7B-v0.1 (7.24B)"},
    {"bloom-176b", 176.2e9, "BLOOM paper / model card (176,247,271,424)"},
    {"bloom-560m", 559.2e6, "bigscience/bloom-560m model card (559,214,592)"},
    {"gpt-neox-20b", 20.55e9, "GPT-NeoX-20B paper Table 1 (20,554,567,680)"},
    {"gpt2", 124.44e6, "HF gpt2 num_parameters() 124,439,808"},
    {"gpt2-xl", 1557.6e6, "HF gpt2-xl num_parameters() 1,557,611,200"},
    {"opt-125m", 125.2e6, "HF facebook/opt-125m 125,239,296"},
    {"opt-350m", 331.2e6, "HF facebook/opt-350m 331,196,416"},
    {"opt-1.3b", 1315.8e6, "HF facebook/opt-1.3b 1,315,758,080"},
    {"opt-6.7b", 6.658e9, "HF facebook/opt-6.7b 6,658,473,984"},
    {"opt-175b", 175e9, "OPT paper (175B)"},
    {"t5-small", 60.5e6, "HF t5-small 60,506,624"},
    {"t5-base", 222.9e6, "HF t5-base 222,903,552"},
    {"t5-3b", 2.85e9, "HF t5-3b 2,851,598,336"},
    {"t5-11b", 11.3e9, "HF t5-11b 11,307,321,344"},
    {"tinyllama-1.1b", 1.1e9, "TinyLlama model card (1.1B: 1,100,048,384)"},
    {"open-llama-3b", 3.43e9, "OpenLLaMA 3B (3,426,473,600)"},
};

}  // namespace

TEST(MemoryArchitecture, ParameterCountsMatchPublished) {
  for (const auto& p : kPublished) {
    const auto a = mem::load_architecture(p.model);
    EXPECT_NEAR(static_cast<double>(a.parameters()), p.params, 0.005 * p.params) << p.model << " — " << p.source;
  }
  // Exact counts where HF publishes them.
  EXPECT_EQ(mem::load_architecture("llama-7b").parameters(), 6'738'415'616);
  EXPECT_EQ(mem::load_architecture("llama-2-70b").parameters(), 68'976'648'192);
  EXPECT_EQ(mem::load_architecture("bloom-176b").parameters(), 176'247'271'424);
  EXPECT_EQ(mem::load_architecture("gpt-neox-20b").parameters(), 20'554'567'680);
  EXPECT_EQ(mem::load_architecture("gpt2").parameters(), 124'439'808);
  EXPECT_EQ(mem::load_architecture("t5-small").parameters(), 60'506'624);
  EXPECT_EQ(mem::load_architecture("opt-350m").parameters(), 331'196'416);
}

TEST(MemoryArchitecture, ConfigErrorsAreInputErrors) {
  nlohmann::json j = {{"model_type", "llamaa"}, {"hidden_size", 8}};
  EXPECT_THROW(mem::architecture_from_config(j, "x"), lowbit::harness::InputError);
  nlohmann::json k = {{"model_type", "llama"}, {"hidden_size", 64}};  // no num_hidden_layers
  EXPECT_THROW(mem::architecture_from_config(k, "x"), lowbit::harness::InputError);
  EXPECT_THROW(mem::load_architecture("llama-8b"), lowbit::harness::InputError);
}

TEST(MemoryModel, LoraParameterCountsFromNotes) {
  const auto a = mem::load_architecture("llama-7b");
  mem::Settings s;
  s.gpu = "a100-80";
  s.lora_rank = 64;
  s.lora_targets = {"all-linear"};
  EXPECT_EQ(mem::estimate(a, s).trainable, 159'907'840);  // 32·64·(4·8192 + 2·15104 + 15104)
  s.lora_rank = 8;
  s.lora_targets = {"q_proj", "v_proj"};
  EXPECT_EQ(mem::estimate(a, s).trainable, 4'194'304);  // matches litgpt
}

TEST(MemoryModel, BitsPerParameterComeFromTheRegistry) {
  const auto a = mem::load_architecture("llama-7b");
  mem::Settings s;
  s.method = mem::Method::qlora;
  s.weights = "nf4@64+dq";
  s.gpu = "t4";
  const auto e = mem::estimate(a, s);
  EXPECT_NEAR(e.linear_bits, 4.127, 0.0005);  // QLoRA §3
  // Weights + constants equal the registry's cost tensor by tensor.
  const auto q = lowbit::parse_quantizer("nf4@64+dq");
  double expect = 0;
  for (const auto& b : a.blocks)
    for (const auto& l : b.linears)
      expect += static_cast<double>(l.in) * l.out * q.bits_per_parameter(l.out, l.in) / 8;
  EXPECT_NEAR(e.term("weights") + e.term("quant_constants"), expect, 1.0);
  s.weights = "nf4@64";
  EXPECT_NEAR(mem::estimate(a, s).linear_bits, 4.5, 1e-9);
  s.method = mem::Method::lora;
  s.weights = "int8@row";
  EXPECT_NEAR(mem::estimate(a, s).linear_bits, lowbit::parse_quantizer("int8@row").bits_per_parameter(4096, 4096), 0.01);
}

TEST(MemoryModel, KvCacheGqaFromNotes) {
  // memory-notes: Llama-3.1-8B fp16, 1024 tokens = 2·32·8·128·2·1024 B = 0.125 GiB.
  mem::Settings s;
  s.mode = mem::Mode::infer;
  s.compute = "fp16";
  s.weights = "fp16";
  s.seq_len = 1024;
  const auto e = mem::estimate(mem::load_architecture("llama-3-8b"), s);
  EXPECT_DOUBLE_EQ(e.term("kv_cache"), 0.125 * 1024 * 1024 * 1024);
}

TEST(MemoryModel, Bloom176bWeightsFromBlog) {
  // LLM.int8 blog: 176·10^9 × 2 bytes = 352 GB in bf16.
  mem::Settings s;
  s.mode = mem::Mode::infer;
  s.weights = "bf16";
  s.gpu = "a100-80";
  s.gpus = 8;
  const auto e = mem::estimate(mem::load_architecture("bloom-176b"), s);
  EXPECT_NEAR(mem::weights_bytes(e) / 1e9, 352.5, 0.5);
}

// The T4 OOM table (facts.md). The honest model agrees with 12 of the 14
// published results. The two disagreements are the rows memory-notes pitfall 3
// predicts: both published OOMs happen with 4+ GB of headroom by any
// first-principles count (gpu_poor agrees), so something in the unpublished May-2023
// script is unaccounted for; they are listed here, not tuned away.
TEST(MemoryTable, T4TableAgreement) {
  const auto spec = mem::load_spec(source_dir() + "/reports/specs/qlora-t4.toml");
  ASSERT_EQ(spec.rows.size(), 14u);
  const std::set<std::size_t> expected_disagreements = {
      1,   // llama-7b LLM.int8 + GC, 1024: published OOM, model ~5.2 GiB headroom
      12,  // llama-13b NF4 fp16 GC 1024 (no NQ): published OOM, model ~4.6 GiB headroom
  };
  int agree = 0;
  for (std::size_t k = 0; k < spec.rows.size(); ++k) {
    const auto& row = spec.rows[k];
    const auto e = mem::estimate(mem::load_architecture(row.model), row.settings);
    const bool ok = mem::verdict_agrees(row.published, e);
    agree += ok;
    EXPECT_EQ(ok, !expected_disagreements.count(k)) << "row " << k + 1 << ": " << row.model << " " << row.label << " "
                                                    << row.settings.seq_len << " → " << mem::to_string(e.verdict);
  }
  EXPECT_EQ(agree, 12);
}

// The estimator against the committed measurement (scripts/measure_memory.py on an H200, torch
// 2.11 / transformers 5.17 / peft 0.21 / bitsandbytes 0.50.2; 26 training configurations), as
// `lowbit memory --validate` computes it. Issue 5's goal: median |error| <= 5 %, worst <= 15 %.
// Allocated meets it; reserved (allocator model) reaches median 3.8 %, worst 17.0 % (the goal's
// worst is not met for reserved: fragmentation of the 0.5B/3B QLoRA+GC and the math-attention row).
TEST(MemoryValidate, MeasuredH200Errors) {
  const auto in = lowbit::harness::read_table(source_dir() + "/reports/data/memory_measured_h200.h5", "memory");
  auto col = [&](const char* name) -> const lowbit::harness::Column& { return in.column(name); };
  std::vector<double> ea, er;
  int verdicts = 0;
  for (std::size_t r = 0; r < in.rows(); ++r) {
    if (col("status").strings.at(r) != "ok") continue;
    mem::Settings s;
    s.mode = mem::parse_mode(col("mode").strings.at(r));
    s.method = mem::parse_method(col("method").strings.at(r));
    s.weights = col("weights").strings.at(r);
    s.compute = col("compute").strings.at(r);
    s.optimizer = mem::parse_optimizer(col("optimizer").strings.at(r));
    s.attention = mem::parse_attention(col("attention").strings.at(r));
    s.batch = col("batch").int64s.at(r);
    s.seq_len = col("seq_len").int64s.at(r);
    s.grad_accum = col("grad_accum").int64s.at(r);
    s.grad_ckpt = col("grad_ckpt").bools.at(r);
    s.lora_rank = std::max<std::int64_t>(1, col("lora_rank").int64s.at(r));
    s.lora_targets = lowbit::harness::split_list(col("lora_targets").strings.at(r));
    s.kbit_prep = static_cast<bool>(col("kbit_prep").bools.at(r));
    s.gpu = col("gpu").strings.at(r);
    s.lora_dropout = 0;
    const auto e = mem::estimate(mem::load_architecture(col("model").strings.at(r)), s);
    const double ma = col("measured_allocated_bytes").float64s.at(r), mr = col("measured_reserved_bytes").float64s.at(r);
    ea.push_back(std::abs(e.allocated[e.worst_gpu] - ma) / ma);
    er.push_back(std::abs(e.reserved[e.worst_gpu] - mr) / mr);
    verdicts += e.verdict == mem::Verdict::fits;
  }
  ASSERT_EQ(ea.size(), 26u);
  auto median = [](std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return 0.5 * (v[v.size() / 2 - 1] + v[v.size() / 2]);
  };
  const double ma = median(ea), wa = *std::max_element(ea.begin(), ea.end());
  const double mr = median(er), wr = *std::max_element(er.begin(), er.end());
  std::printf("allocated: median %.2f %%, worst %.2f %%; reserved: median %.2f %%, worst %.2f %%\n", 100 * ma, 100 * wa,
              100 * mr, 100 * wr);
  EXPECT_LE(ma, 0.010);  // achieved 0.7 %
  EXPECT_LE(wa, 0.040);  // achieved 3.9 %
  EXPECT_LE(mr, 0.040);  // achieved 3.8 %
  EXPECT_LE(wr, 0.175);  // achieved 17.0 % (goal 15 % not met for reserved)
  EXPECT_EQ(verdicts, 26);
}

TEST(MemoryTable, HeadlineFactsAgree) {
  const auto spec = mem::load_spec(source_dir() + "/reports/specs/headline-facts.toml");
  for (const auto& row : spec.rows) {
    const auto e = mem::estimate(mem::load_architecture(row.model), row.settings);
    if (!row.published.empty()) EXPECT_TRUE(mem::verdict_agrees(row.published, e)) << row.label;
    if (row.published_weights_gb)
      EXPECT_NEAR(mem::weights_bytes(e) / 1e9, *row.published_weights_gb, 0.1 * *row.published_weights_gb) << row.label;
  }
}

TEST(MemoryModel, MonotoneAndSearch) {
  const auto a = mem::load_architecture("llama-7b");
  mem::Settings s;
  s.method = mem::Method::qlora;
  s.gpu = "t4";
  s.grad_ckpt = true;
  const auto n = mem::max_fitting(a, s, true);
  ASSERT_GT(n, 0);
  s.seq_len = n;
  EXPECT_EQ(mem::estimate(a, s).verdict, mem::Verdict::fits);
  s.seq_len = n + 1;
  EXPECT_NE(mem::estimate(a, s).verdict, mem::Verdict::fits);
}

// ---- the command line: bad configurations exit 2 with one line ----

namespace {
struct Run {
  int status;
  std::string err;
};
Run run_lowbit(const std::string& args) {
  const char* bin = std::getenv("LOWBIT_BIN");
  if (!bin) return {-1, "LOWBIT_BIN not set"};
  // One file per process: CTest runs these tests in parallel.
  const std::string errfile = testing::TempDir() + "/memory_err_" + std::to_string(::getpid()) + ".txt";
  const std::string cmd = std::string(bin) + " memory " + args + " >/dev/null 2>" + errfile;
  const int rc = std::system(cmd.c_str());
  std::ifstream in(errfile);
  std::string err((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::remove(errfile.c_str());
  return {WIFEXITED(rc) ? WEXITSTATUS(rc) : -1, err};
}
void expect_usage_error(const std::string& args, const std::string& needle) {
  const Run r = run_lowbit(args);
  if (r.status == -1 && r.err == "LOWBIT_BIN not set") GTEST_SKIP() << "LOWBIT_BIN not set";
  EXPECT_EQ(r.status, 2) << args << "\n" << r.err;
  EXPECT_NE(r.err.find("lowbit: error:"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find(needle), std::string::npos) << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << "one line: " << r.err;
}
}  // namespace

TEST(MemoryCli, UnknownArchitectureKey) {
  const std::string path = testing::TempDir() + "/bad_config_" + std::to_string(::getpid()) + ".json";
  std::ofstream(path) << R"({"model_type": "falcon_x", "hidden_size": 64})";
  expect_usage_error("--model " + path, "unknown architecture");
}
TEST(MemoryCli, NegativeBatch) { expect_usage_error("--model llama-7b --batch=-1", "--batch"); }
TEST(MemoryCli, LoraOnMissingModule) { expect_usage_error("--model llama-7b --lora-targets q_proj,qkv_proj", "qkv_proj"); }
TEST(MemoryCli, UnknownGpu) { expect_usage_error("--model llama-7b --gpu a100-90", "unknown GPU"); }
TEST(MemoryCli, UnknownModel) { expect_usage_error("--model llama-8b", "unknown model"); }
TEST(MemoryCli, FullFinetuneOfQuantizedWeights) {
  expect_usage_error("--model llama-7b --method full --weights nf4@64", "full finetuning");
}
