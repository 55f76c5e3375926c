// lowbit memory — does this configuration fit? A GPU memory model whose every
// term is visible (experiments/memory/estimate.hpp).
//
//   lowbit memory --model llama-7b --method qlora --weights nf4@64+dq --compute bf16
//                 --seq-len 1024 --grad-ckpt --lora-rank 64 --gpu t4
//   lowbit memory --table reports/specs/qlora-t4.toml -o t4.h5
//   lowbit memory --model llama-13b --method qlora --gpu rtx3090 --max-seq-len
//   lowbit memory --validate measured.h5        (from scripts/measure_memory.py)
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <iostream>

#include "experiments/harness/cli.hpp"
#include "experiments/harness/errors.hpp"
#include "experiments/harness/results.hpp"
#include "experiments/memory/estimate.hpp"
#include "experiments/memory/spec.hpp"

namespace lowbit::harness {
namespace {

namespace mem = lowbit::memory;
namespace po = boost::program_options;
constexpr double kMiB = 1024.0 * 1024.0;

std::string mib(double bytes) { return fmt::format("{:.0f}", bytes / kMiB); }
std::string gib(double bytes) { return fmt::format("{:.2f}", bytes / (kMiB * 1024)); }

void print_estimate(std::ostream& os, const mem::Estimate& e) {
  const auto& s = e.settings;
  const bool train = s.mode == mem::Mode::train;
  os << fmt::format("model     {} ({}): {:.3f} B parameters, {:.3f} B in block Linears\n", e.arch.name,
                    e.arch.model_type, e.parameters / 1e9, e.arch.linear_parameters() / 1e9);
  os << fmt::format("run       {}{}, weights {} ({:.4f} bits/param incl. constants), compute {}{}\n",
                    mem::to_string(s.mode), train ? " " + mem::to_string(s.method) : "", e.weights, e.linear_bits,
                    s.compute, e.kbit_prep ? ", non-quantized params fp32 (kbit prep)" : "");
  os << fmt::format("          batch {} x seq {}{}{}, attention {}, stack {}\n", s.batch, s.seq_len,
                    train ? fmt::format(", grad accum {}", s.grad_accum) : "",
                    train ? (s.grad_ckpt ? ", grad checkpointing" : ", no grad checkpointing") : "",
                    mem::to_string(s.attention), mem::to_string(s.stack));
  if (train)
    os << fmt::format("          optimizer {}, {:.2f} M trainable{}\n", mem::to_string(s.optimizer), e.trainable / 1e6,
                      e.lora_targets.empty() ? ""
                                             : fmt::format(", LoRA r={} alpha={:g} dropout={:g} on {}", s.lora_rank,
                                                           s.lora_alpha, s.lora_dropout, fmt::join(e.lora_targets, ",")));
  os << fmt::format("GPU       {} x {} ({}), usable {} MiB each\n", s.gpus, e.gpu.name, e.gpu.description,
                    mib(e.usable));
  if (s.gpus > 1) {
    os << "          layers per GPU:";
    for (int g = 0; g < s.gpus; ++g) os << " " << e.layers_per_gpu[g];
    os << "; peak per GPU (MiB):";
    for (int g = 0; g < s.gpus; ++g) os << " " << mib(e.total[g]);
    os << fmt::format("; breakdown below for GPU {}\n", e.worst_gpu);
  }
  for (const auto& w : e.warnings) os << "warning   " << w << "\n";
  os << "\n";
  std::size_t wl = 10;
  for (const auto& t : e.terms) wl = std::max(wl, t.label.size());
  wl = std::min<std::size_t>(wl, 58);
  os << fmt::format("  {:<{}} {:>9}  {:<6} {}\n", "term", wl, "MiB", "phases", "formula — source");
  const int g = e.worst_gpu;
  for (const auto& t : e.terms) {
    if (t.bytes[g] == 0 && t.key != "cuda_context") continue;
    os << fmt::format("  {:<{}} {:>9}  {:<6} {} — {}\n", t.label, wl, mib(t.bytes[g]), t.phases, t.formula, t.source);
  }
  const std::string phase = e.peak_phase[g];
  const char* phase_name = phase == "F" ? "end of forward" : phase == "B" ? "backward" : phase == "S" ? "optimizer step" : "prefill";
  os << fmt::format("\n  peak allocated ({}: {}) {:>9} MiB\n", phase, phase_name, mib(e.allocated[g]));
  os << fmt::format("  + allocator = peak reserved      {:>9} MiB\n", mib(e.reserved[g]));
  os << fmt::format("  + CUDA context = total           {:>9} MiB  ({} GiB)\n", mib(e.total[g]), gib(e.total[g]));
  os << fmt::format("  usable                           {:>9} MiB\n", mib(e.usable));
  os << fmt::format("verdict   {} (headroom {} MiB{})\n", mem::to_string(e.verdict), mib(e.headroom),
                    e.verdict == mem::Verdict::fits_with_paging
                        ? fmt::format("; {} MiB without the paged optimizer states", mib(e.usable - e.total_without_paged))
                        : "");
}

// Display width of UTF-8 text (code points; "×" is one column).
std::size_t width(const std::string& s) {
  return static_cast<std::size_t>(std::count_if(s.begin(), s.end(), [](char ch) { return (static_cast<unsigned char>(ch) & 0xC0) != 0x80; }));
}

std::string gpu_text(const mem::Settings& s) {
  std::string g = s.gpu;
  std::transform(g.begin(), g.end(), g.begin(), [](unsigned char ch) { return std::toupper(ch); });
  return fmt::format("{}×{}", s.gpus, g);
}

int run_table(const std::string& path, const std::string& output) {
  const mem::Spec spec = mem::load_spec(path);
  if (!output.empty()) check_writable(output);
  Table table = mem::memory_schema();
  struct Line {
    std::string model, gpus, method, seq, published, verdict, peak, headroom, agree;
  };
  std::vector<Line> lines;
  int with_published = 0, agreeing = 0;
  for (std::size_t k = 0; k < spec.rows.size(); ++k) {
    const auto& row = spec.rows[k];
    mem::Estimate e;
    try {
      e = mem::estimate(mem::load_architecture(row.model), row.settings);
    } catch (const std::exception& ex) {
      throw InputError(fmt::format("{} row {} ({}): {}", path, k + 1, row.model, ex.what()));
    }
    std::string published = row.published, agree = "";
    if (!published.empty()) {
      ++with_published;
      const bool ok = mem::verdict_agrees(published, e);
      agreeing += ok;
      agree = ok ? "yes" : "NO";
    }
    if (row.published_weights_gb) {
      const double w = mem::weights_bytes(e) / 1e9;
      const double rel = std::abs(w - *row.published_weights_gb) / *row.published_weights_gb;
      ++with_published;
      agreeing += rel <= 0.10;
      published += (published.empty() ? "" : ", ") + fmt::format("weights {:g} GB", *row.published_weights_gb);
      agree += (agree.empty() ? "" : ", ") + fmt::format("{} ({:.1f} GB, {:+.1f} %)", rel <= 0.10 ? "yes" : "NO", w,
                                                         100 * (w - *row.published_weights_gb) / *row.published_weights_gb);
    }
    const std::string label = row.label.empty() ? mem::to_string(row.settings.method) : row.label;
    lines.push_back({row.model, gpu_text(row.settings), label, std::to_string(row.settings.seq_len),
                     row.published.empty() ? (row.published_weights_gb ? published : "-")
                                           : (row.published == "fits" ? "no OOM" : row.published) +
                                                 (row.published_weights_gb ? published.substr(row.published.size()) : ""),
                     mem::to_string(e.verdict) == "fits" ? "no OOM" : mem::to_string(e.verdict), gib(e.total[e.worst_gpu]),
                     gib(e.headroom), agree.empty() ? "-" : agree});
    mem::add_memory_row(table, e, label, row.published);
  }
  if (!spec.title.empty()) std::cout << spec.title << "\n";
  if (!spec.source.empty()) std::cout << "source: " << spec.source << "\n";
  std::cout << "\n";
  const std::vector<std::string> head = {"model", "GPUs", "method", "seq len", "published", "lowbit", "peak GiB",
                                         "headroom GiB", "agree"};
  std::vector<std::size_t> w(head.size());
  for (std::size_t c = 0; c < head.size(); ++c) w[c] = head[c].size();
  auto cells = [](const Line& l) {
    return std::vector<std::string>{l.model, l.gpus, l.method, l.seq, l.published, l.verdict, l.peak, l.headroom, l.agree};
  };
  for (const auto& l : lines) {
    auto c = cells(l);
    for (std::size_t i = 0; i < c.size(); ++i) w[i] = std::max(w[i], width(c[i]));
  }
  auto print_row = [&](const std::vector<std::string>& c) {
    std::cout << "|";
    for (std::size_t i = 0; i < c.size(); ++i) std::cout << " " << c[i] << std::string(w[i] - width(c[i]), ' ') << " |";
    std::cout << "\n";
  };
  print_row(head);
  std::cout << "|";
  for (auto x : w) std::cout << std::string(x + 2, '-') << "|";
  std::cout << "\n";
  for (const auto& l : lines) print_row(cells(l));
  std::cout << fmt::format("\nagreement: {}/{} published results\n", agreeing, with_published);
  if (!output.empty()) {
    ResultsWriter writer(output, "memory");
    table.set_attribute("spec", path);
    table.set_attribute("agreement", fmt::format("{}/{}", agreeing, with_published));
    writer.add(std::move(table));
    writer.commit();
    std::cerr << "wrote " << output << "\n";
  }
  return 0;
}

double median(std::vector<double> v) {
  if (v.empty()) return std::nan("");
  std::sort(v.begin(), v.end());
  const std::size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

// Re-estimates every measured row of a `memory` table and reports the error.
int run_validate(const std::string& path, const std::string& output) {
  const Table in = read_table(path, "memory");
  if (!output.empty()) check_writable(output);
  Table out = mem::memory_schema();
  auto str = [&](const char* col, std::size_t r) { return std::get<std::string>(in.column(col).cell(r)); };
  auto i64 = [&](const char* col, std::size_t r) { return std::get<std::int64_t>(in.column(col).cell(r)); };
  auto f64 = [&](const char* col, std::size_t r) { return std::get<double>(in.column(col).cell(r)); };
  std::vector<double> err_alloc, err_res;
  std::size_t verdict_n = 0, verdict_ok = 0;
  std::cout << fmt::format("{:<60} {:>9} {:>9} {:>7}  {:>9} {:>9} {:>7}  {}\n", "configuration", "est alloc", "meas", "err %",
                           "est resv", "meas", "err %", "status");
  for (std::size_t r = 0; r < in.rows(); ++r) {
    const std::string status = str("status", r);
    mem::Settings s;
    s.mode = mem::parse_mode(str("mode", r));
    s.method = mem::parse_method(str("method", r));
    s.weights = str("weights", r);
    s.compute = str("compute", r);
    s.optimizer = mem::parse_optimizer(str("optimizer", r));
    s.attention = mem::parse_attention(str("attention", r));
    // Measured files name the stack they ran on (the current one when the column is absent).
    {
      const auto& cols = in.columns();
      if (std::any_of(cols.begin(), cols.end(), [](const auto& c) { return c.name == "stack"; }) &&
          !str("stack", r).empty())
        s.stack = mem::parse_stack(str("stack", r));
    }
    s.batch = i64("batch", r);
    s.seq_len = i64("seq_len", r);
    s.grad_accum = i64("grad_accum", r);
    s.grad_ckpt = std::get<bool>(in.column("grad_ckpt").cell(r));
    s.lora_rank = std::max<std::int64_t>(1, i64("lora_rank", r));
    s.lora_targets = split_list(str("lora_targets", r));
    s.kbit_prep = std::get<bool>(in.column("kbit_prep").cell(r));
    s.gpu = str("gpu", r);
    s.gpus = static_cast<int>(i64("gpus", r));
    // The measuring script runs without LoRA dropout unless it says otherwise.
    s.lora_dropout = 0;
    const mem::Estimate e = mem::estimate(mem::load_architecture(str("model", r)), s);
    const double ma = f64("measured_allocated_bytes", r), mr = f64("measured_reserved_bytes", r);
    const std::string label = str("label", r);
    if (status == "ok" && ma > 0) {
      const double ea = e.allocated[e.worst_gpu], er = e.reserved[e.worst_gpu];
      err_alloc.push_back((ea - ma) / ma);
      err_res.push_back((er - mr) / mr);
      std::cout << fmt::format("{:<60} {:>9} {:>9} {:>+7.1f}  {:>9} {:>9} {:>+7.1f}  {}\n", label.substr(0, 60), mib(ea),
                               mib(ma), 100 * err_alloc.back(), mib(er), mib(mr), 100 * err_res.back(), status);
    } else {
      std::cout << fmt::format("{:<60} {:>9} {:>9} {:>7}  {:>9} {:>9} {:>7}  {}\n", label.substr(0, 60),
                               mib(e.allocated[e.worst_gpu]), "-", "", mib(e.reserved[e.worst_gpu]), "-", "", status);
    }
    if (status == "ok" || status == "oom") {  // verdict at the measured GPU's capacity
      ++verdict_n;
      verdict_ok += (status == "ok") == (e.verdict != mem::Verdict::oom);
    }
    mem::add_memory_row(out, e, label, "", ma, mr, status);
  }
  auto summary = [&](const char* what, std::vector<double> v) {
    for (auto& x : v) x = std::abs(x);
    const double worst = v.empty() ? std::nan("") : *std::max_element(v.begin(), v.end());
    std::cout << fmt::format("{}: median |error| {:.1f} %, worst {:.1f} % over {} measured configurations\n", what,
                             100 * median(v), 100 * worst, v.size());
  };
  std::cout << "\n";
  summary("peak allocated", err_alloc);
  summary("peak reserved ", err_res);
  std::cout << fmt::format("verdict agreement at the measured GPU's capacity: {}/{}\n", verdict_ok, verdict_n);
  if (!output.empty()) {
    ResultsWriter writer(output, "memory");
    writer.add(std::move(out));
    writer.commit();
  }
  return 0;
}

int run(const std::vector<std::string>& args) {
  OptionParser parser(
      "memory", "--model NAME|config.json [options] | --table SPEC.toml|.csv | --validate MEASURED.h5",
      "GPU memory model: every term (weights, quantization constants, LoRA, gradients, optimizer states,\n"
      "activations, logits, workspaces, KV cache, CUDA context) with its formula and source; the peak, the\n"
      "usable memory, the verdict (fits / fits-with-paging / OOM) and the headroom. Weight formats are\n"
      "registry names (bf16, fp16, fp32, int8@row = LLM.int8, nf4@64, nf4@64+dq, fp4-bnb@64, ...).\n"
      "Models: catalog names in experiments/memory/models/ or a Hugging Face config.json.");
  std::string kbit = "auto";
  parser.add()("model,m", po::value<std::string>(), "catalog name (llama-7b, ...) or path to a config.json")(
      "mode", po::value<std::string>()->default_value("train"), "train | infer")(
      "method", po::value<std::string>()->default_value("lora"), "full | lora | qlora")(
      "weights", po::value<std::string>()->default_value(""),
      "weight format (registry name); default: the compute dtype, nf4@64+dq for qlora")(
      "compute", po::value<std::string>()->default_value("bf16"), "compute dtype: fp16 | bf16 | fp32")(
      "optimizer", po::value<std::string>()->default_value("adamw"),
      "adamw (torch, states in param dtype) | adamw32 | adamw8 | paged-adamw32 | paged-adamw8 | sgd | adafactor")(
      "batch", po::value<std::int64_t>()->default_value(1), "micro-batch size")(
      "seq-len", po::value<std::int64_t>()->default_value(512), "sequence length (training) / context (inference)")(
      "grad-accum", po::value<std::int64_t>()->default_value(1), "gradient accumulation steps")(
      "grad-ckpt", po::bool_switch(), "gradient checkpointing (per decoder layer, as HF)")(
      "lora-rank", po::value<std::int64_t>()->default_value(8), "LoRA rank r")(
      "lora-alpha", po::value<double>()->default_value(16), "LoRA alpha (no memory effect)")(
      "lora-dropout", po::value<double>()->default_value(0.05), "LoRA dropout (> 0 saves a mask and a copy)")(
      "lora-targets", po::value<std::string>()->default_value(""),
      "comma-separated module names, or all-linear; default: PEFT's default for the model type")(
      "adapter-dtype", po::value<std::string>()->default_value("fp32"), "LoRA weight dtype (PEFT: fp32)")(
      "kbit-prep", po::value<std::string>(&kbit)->default_value("auto"),
      "on | off | auto: PEFT prepare_model_for_kbit_training casts non-quantized params to fp32; auto = on for "
      "LoRA on a quantized base")(
      "attention", po::value<std::string>()->default_value("eager"), "eager (s² scores kept) | sdpa (flash)")(
      "stack", po::value<std::string>()->default_value("current"),
      "library versions whose behaviour is modelled: current (torch 2.11, transformers 5.17, peft 0.21, "
      "bitsandbytes 0.50.2) | may2023 (transformers 4.29/4.30, bitsandbytes 0.39: MatMul4Bit saves its input, "
      "no logits upcast, shift_logits copy)")(
      "gpu", po::value<std::string>()->default_value("a100-80"), "GPU name (t4, a100-80, ...) or size (24GiB)")(
      "gpus", po::value<int>()->default_value(1), "number of GPUs (layers split as device_map=\"auto\")")(
      "cuda-context-mib", po::value<double>()->default_value(500), "CUDA context + libraries per GPU (MiB)")(
      "allocator-overhead", po::value<double>()->default_value(0.18),
      "reserved − allocated as a fraction of the dynamic (non-static) bytes")(
      "max-seq-len", po::bool_switch(), "print the largest sequence length that fits")(
      "max-batch", po::bool_switch(), "print the largest batch that fits")(
      "table", po::value<std::string>(), "evaluate a spec of configurations (TOML or CSV)")(
      "validate", po::value<std::string>(), "compare with a measured `memory` table (scripts/measure_memory.py)")(
      "output,o", po::value<std::string>(), "write the `memory` table to this HDF5 file");
  const auto parsed = parser.parse(args);
  if (!parsed) return 0;
  const auto& vm = *parsed;
  const std::string output = vm.count("output") ? vm["output"].as<std::string>() : "";
  if (vm.count("table")) return run_table(vm["table"].as<std::string>(), output);
  if (vm.count("validate")) return run_validate(vm["validate"].as<std::string>(), output);
  if (!vm.count("model")) throw UsageError("memory: give --model NAME|config.json, --table FILE or --validate FILE");

  mem::Settings s;
  auto set = [&](const char* key, const char* opt) { mem::apply_setting(s, key, vm[opt].as<std::string>()); };
  set("mode", "mode");
  set("method", "method");
  s.weights = vm["weights"].as<std::string>();
  set("compute", "compute");
  set("optimizer", "optimizer");
  s.batch = vm["batch"].as<std::int64_t>();
  s.seq_len = vm["seq-len"].as<std::int64_t>();
  s.grad_accum = vm["grad-accum"].as<std::int64_t>();
  s.grad_ckpt = vm["grad-ckpt"].as<bool>();
  s.lora_rank = vm["lora-rank"].as<std::int64_t>();
  s.lora_alpha = vm["lora-alpha"].as<double>();
  s.lora_dropout = vm["lora-dropout"].as<double>();
  set("lora_targets", "lora-targets");
  set("adapter_dtype", "adapter-dtype");
  mem::apply_setting(s, "kbit_prep", kbit);
  set("attention", "attention");
  set("stack", "stack");
  s.gpu = vm["gpu"].as<std::string>();
  s.gpus = vm["gpus"].as<int>();
  s.cuda_context_mib = vm["cuda-context-mib"].as<double>();
  s.allocator_overhead = vm["allocator-overhead"].as<double>();
  if (!output.empty()) check_writable(output);

  const mem::Architecture arch = mem::load_architecture(vm["model"].as<std::string>());
  const mem::Estimate e = mem::estimate(arch, s);  // validates everything first
  print_estimate(std::cout, e);
  if (vm["max-seq-len"].as<bool>())
    std::cout << fmt::format("max seq len that fits: {}\n", mem::max_fitting(arch, s, true));
  if (vm["max-batch"].as<bool>())
    std::cout << fmt::format("max batch that fits: {}\n", mem::max_fitting(arch, s, false));
  if (!output.empty()) {
    Table t = mem::memory_schema();
    mem::add_memory_row(t, e, mem::to_string(s.method), "");
    ResultsWriter writer(output, "memory");
    writer.add(std::move(t));
    writer.commit();
  }
  return 0;
}

const Registrar registrar{"memory", "GPU memory model: does a training / inference configuration fit?", run};

}  // namespace
}  // namespace lowbit::harness
