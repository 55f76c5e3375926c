// lowbit kernel-bench — times lowbit's CUDA kernels and the ceilings they are
// judged against, in one run on one GPU.
//
//   lowbit kernel-bench                       # the default set (issue 8's shapes)
//   lowbit kernel-bench --ops dequant,gemm --shapes 8192x8192 --m 1,16
//   lowbit kernel-bench --quick -o kb.h5 --json kb.json
//   lowbit kernel-bench --ops matmul,fp8quant   # issue 11: int8 / LLM.int8 / FP8 matmuls on LLM layer shapes
//   lowbit kernel-bench --ops matmul --matmul-shapes 8192x8192 --matmul-m 1,2048 --outliers 0.001
//
// Every operation is timed two ways (kernels/cuda/timing.cuh): eager (events
// around `--calls` launches from the host, per call) and graph (the same
// launches captured in a CUDA graph, each replay timed); --warmup rounds, then
// --reps (≥ 50) timed rounds; median, p10/p90, min/max. Inputs are random
// (never zeros) and rotated over enough copies that together they exceed 4×
// the L2 cache. The ceilings are measured first, in the same run: the
// device-to-device copy rate (bytes read + written), the read rate (a kernel
// that only reads) and cuBLASLt's bf16 GEMM rate at 8192³; each row gives
// GB/s, % of the copy rate and its time over its bytes' ideal — at the read
// rate for the 4-bit GEMM (its bytes are the weight's, read; issue 8 states
// its target "at the measured read rate"), at the copy rate otherwise.
//
// The matmul ops (issue 11) compare candidates whose clocks drift (large
// GEMMs run at the power limit): the candidates of one shape are interleaved
// round by round and each graph figure is the median of the rounds' medians
// (see run_interleaved).
//
// Output: the `kernel_bench` table of an HDF5 results file (-o; GPU name,
// clocks, driver and CUDA version as root attributes) and, where lowbit was
// built with Google Benchmark, the same rows as Google Benchmark JSON
// (--json), its runner carrying the CUDA-event medians as manual times.
// Exit status: 0 measured; 77 no CUDA device or built without CUDA (nothing
// measured, said on stderr); 2 bad options; 1 a CUDA failure (said).
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <fstream>
#include <iostream>
#include <memory>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "experiments/harness/cli.hpp"
#include "experiments/harness/results.hpp"
#include "experiments/harness/text_table.hpp"
#include "lowbit/formats/registry.hpp"

#ifdef LOWBIT_HAVE_CUDA
#include <cuda_runtime.h>

#include "kernels/cpu/quantize.hpp"
#include "kernels/cuda/blockwise.cuh"
#include "kernels/cuda/cublaslt_gemm.cuh"
#include "kernels/cuda/fp8_quantize.cuh"
#include "kernels/cuda/gemm4.cuh"
#include "kernels/cuda/scaled_quantize.cuh"
#include "kernels/cuda/llm_int8.cuh"
#include "kernels/cuda/minifloat_convert.cuh"
#include "kernels/cuda/timing.cuh"
#endif
#ifdef LOWBIT_HAVE_GBENCH
#include <benchmark/benchmark.h>
#endif

namespace lowbit::harness {
namespace {

[[maybe_unused]] Table kernel_bench_schema() {
  using enum ColumnType;
  Table t("kernel_bench", "GPU kernel timings: lowbit's CUDA kernels, cuBLASLt and the copy ceiling (and, from "
                          "scripts/peer_bench.py, PyTorch and bitsandbytes), median per call over timed rounds; "
                          "matmul / linear rows: candidates of one shape interleaved round by round, the median of "
                          "the rounds' medians");
  t.add_column("op", string, "", "operation: copy, read (the read ceiling), gemm (16-bit reference GEMM), dequantize, quantize, gemm4 (fused 4-bit "
                                 "GEMV/GEMM), dequant_gemm (dequantize to bf16 then cuBLASLt), matmul (issue 11: one GEMM "
                                 "on operands already in its format: bf16, int8 -> int32, e4m3fn, e5m2 x e4m3fn -> bf16), "
                                 "linear (a whole layer from bf16 activations: int8@row vector-wise, llm.int8, "
                                 "e4m3fn@tensor = quantize with amax + FP8 GEMM)")
      .add_column("impl", string, "", "implementation: lowbit (lowbit-delayed: FP8 delayed scaling), cublaslt, cuda "
                                      "(cudaMemcpy), torch, torch.compile, torch._int_mm, torch._scaled_mm, tinygemm, bnb")
      .add_column("format", string, "", "quantizer name (registry), or the dtype for 16-bit references")
      .add_column("dtype", string, "", "activation / output dtype (dequantize: output; quantize: input)")
      .add_column("elements", uint64, "1", "elements (de)quantized per call; M*K*... not used for GEMMs")
      .add_column("M", uint64, "1", "GEMM rows of x and y (tokens); 0 for elementwise ops")
      .add_column("K", uint64, "1", "GEMM reduction size (in features); 0 for elementwise ops")
      .add_column("N", uint64, "1", "GEMM output features; 0 for elementwise ops")
      .add_column("mode", string, "", "eager (one host launch per call) or graph (calls captured in a CUDA graph)")
      .add_column("median_us", float64, "us", "median time per call")
      .add_column("p10_us", float64, "us", "10th percentile time per call")
      .add_column("p90_us", float64, "us", "90th percentile time per call")
      .add_column("min_us", float64, "us", "fastest timed round, per call")
      .add_column("max_us", float64, "us", "slowest timed round, per call")
      .add_column("reps", int64, "1", "timed rounds (matmul / linear graph rows: replays per interleaved round x rounds)")
      .add_column("calls", int64, "1", "calls per timed round")
      .add_column("rotation", int64, "1", "input buffer sets rotated over (L2 defeated)")
      .add_column("bytes", float64, "B", "fewest bytes the op must move per call: each input read once, each output written once")
      .add_column("flops", float64, "FLOP", "floating-point operations per call (2*M*N*K for GEMMs, 0 otherwise)")
      .add_column("gbps", float64, "GB/s", "bytes / median time (1e9 B/s)")
      .add_column("tflops", float64, "TFLOP/s", "flops / median time")
      .add_column("pct_copy", float64, "%", "gbps as % of the device-to-device copy rate measured in the same run")
      .add_column("ideal_us", float64, "us",
                  "bytes at the measured rate: the memory floor (gemm4, which mostly reads its weight: the read "
                  "rate; every other op: the copy rate)")
      .add_column("x_ideal", float64, "1", "median time / ideal_us")
      .add_column("gpu", string, "", "GPU name")
      .add_column("outlier_frac", float64, "1",
                  "planted outlier columns of the activations (llm.int8 rows; 0 elsewhere): every column c with "
                  "c % e == e / 2, e = round(1 / outlier_frac), multiplied by 20 (plant_outlier_columns)")
      .add_column("rounds", int64, "1",
                  "interleaved rounds: median_us is the median of this many rounds' medians (matmul / linear graph "
                  "rows); 1 where timed once");
  return t;
}

#ifndef LOWBIT_HAVE_CUDA

int run_cli(const std::vector<std::string>& args) {
  OptionParser parser("kernel-bench", "[options]", "Time lowbit's CUDA kernels (needs a CUDA build).");
  parser.add()("output,o", boost::program_options::value<std::string>(), "results file");
  if (!parser.parse(args)) return 0;
  std::cerr << "kernel-bench: this lowbit was built without CUDA (no nvcc at configure time); nothing measured\n";
  return 77;
}

#else

using namespace lowbit::cuda;

struct Options {
  std::vector<std::string> ops;
  std::vector<std::pair<std::size_t, std::size_t>> shapes;  // K × N
  std::vector<std::size_t> ms;
  std::vector<std::string> dequant_formats, quant_formats, gemm_formats;
  std::size_t elements = std::size_t{1} << 28;
  TimingConfig timing;
  // matmul / fp8quant (issue 11)
  std::vector<std::pair<std::size_t, std::size_t>> matmul_shapes;  // K × N
  std::vector<std::size_t> matmul_ms;
  std::vector<double> outliers;  // planted outlier-column fractions for llm.int8
  std::vector<std::string> matmul_formats;  // matmul candidates to time (by format); empty: all
  int rounds = 5;                // interleaved rounds
  bool quick = false;
  bool quiet = false;
};

struct Bench {
  Options opt;
  DeviceInfo dev;
  double copy_gbps = 0;
  double read_gbps = 0;  // 0 until measured: then gemm4's floor (its bytes are nearly all reads)
  Table table = kernel_bench_schema();
  cudaStream_t stream = nullptr;
  struct Summary {
    std::string label;
    Timing eager, graph;
    double bytes, flops;
    bool has_graph = true;
  };
  std::vector<Summary> summary;

  std::size_t rotation_for(double bytes_per_call) const {
    const double target = 4.0 * static_cast<double>(dev.l2_bytes ? dev.l2_bytes : (50u << 20));
    const auto r = static_cast<std::size_t>(std::ceil(target / std::max(bytes_per_call, 1.0)));
    return std::clamp<std::size_t>(r, 2, 16);
  }

  void add(const std::string& op, const std::string& impl, const std::string& format, const std::string& dtype,
           std::uint64_t elements, std::uint64_t M, std::uint64_t K, std::uint64_t N, const Timing& t,
           const char* mode, std::size_t rotation, double bytes, double flops, double outlier_frac = 0,
           int rounds = 1) {
    const double s = t.median_us * 1e-6;
    const double gbps = bytes / s / 1e9;
    const double rate = op == "gemm4" && read_gbps > 0 ? read_gbps : copy_gbps;
    const double ideal_us = rate > 0 ? bytes / (rate * 1e9) * 1e6 : 0.0;
    table.add_row({op, impl, format, dtype, elements, M, K, N, std::string(mode), t.median_us, t.p10_us, t.p90_us,
                   t.min_us, t.max_us, std::int64_t{t.reps}, std::int64_t{t.calls}, static_cast<std::int64_t>(rotation),
                   bytes, flops, gbps, flops / s / 1e12, copy_gbps > 0 ? 100.0 * gbps / copy_gbps : 0.0, ideal_us,
                   ideal_us > 0 ? t.median_us / ideal_us : 0.0, dev.name, outlier_frac, std::int64_t{rounds}});
  }

  // Time `launch` both ways and record two rows.
  void measure(const std::string& op, const std::string& impl, const std::string& format, const std::string& dtype,
               std::uint64_t elements, std::uint64_t M, std::uint64_t K, std::uint64_t N, std::size_t rotation,
               double bytes, double flops, const LaunchFn& launch, TimingConfig cfg = {}) {
    if (cfg.reps == TimingConfig{}.reps && cfg.calls == TimingConfig{}.calls) cfg = opt.timing;
    const Timing e = time_eager(launch, cfg, stream);
    const Timing g = time_graph(launch, cfg, stream);
    add(op, impl, format, dtype, elements, M, K, N, e, "eager", rotation, bytes, flops);
    add(op, impl, format, dtype, elements, M, K, N, g, "graph", rotation, bytes, flops);
    const std::string shape = M ? fmt::format("M={} K={} N={}", M, K, N) : fmt::format("n={}", elements);
    summary.push_back({fmt::format("{:<12} {:<9} {:<16} {:<5} {}", op, impl, format, dtype, shape), e, g, bytes, flops});
    if (!opt.quiet)
      std::cerr << fmt::format("  {:<70} eager {:9.2f} us  graph {:9.2f} us  {:7.1f} GB/s ({:5.1f} % copy)\n",
                               summary.back().label, e.median_us, g.median_us, bytes / (g.median_us * 1e3),
                               copy_gbps > 0 ? 100.0 * bytes / (g.median_us * 1e3) / copy_gbps : 0.0);
  }
};

// The quantizer's 4-bit table (codebook, or a 4-bit minifloat's / int4's values).
Table16 table4(const Quantizer& q) {
  const ElementFormat& e = q.element();
  if (e.kind == ElementKind::codebook) return make_table16(e.codebook);
  Table16 t{};
  for (std::uint32_t c = 0; c < 16; ++c) t.value[c] = decode_element(e, c);
  t.max_magnitude = e.max_value();
  return t;
}

bool is_mx8(const Quantizer& q) {
  return q.element().kind == ElementKind::minifloat && q.element_bits() == 8 && q.scale_format() == ScaleFormat::e8m0 &&
         q.granularity() == Granularity::block && q.block_size() == 32;
}
bool is_4bit_fp32_block(const Quantizer& q) {
  return q.element_bits() == 4 && q.granularity() == Granularity::block &&
         (q.scale_format() == ScaleFormat::fp32 || q.scale_format() == ScaleFormat::dq) &&
         q.element().kind != ElementKind::int_zero_point;
}

// A 4-bit blockwise tensor on the device: codes and scales (plain or dq) from
// random normal data, quantized by lowbit's own GPU kernel (exact mode); dq
// scales by the CPU reference from the GPU's absmax.
struct Quantized4 {
  DeviceBuffer codes, absmax, dq_codes, dq_absmax;
  BlockScales scales;
};
Quantized4 make_quantized4(const Quantizer& q, std::size_t n, std::uint64_t seed, cudaStream_t st) {
  Quantized4 t;
  const std::size_t B = q.block_size(), blocks = (n + B - 1) / B;
  DeviceBuffer x(n * 2, "bf16 source");
  fill_random_normal(x.get(), n, 2, 1.0f, seed, st);
  t.codes = DeviceBuffer((n + 1) / 2, "4-bit codes");
  t.absmax = DeviceBuffer(blocks * 4, "absmax");
  const ElementFormat& e = q.element();
  if (e.kind == ElementKind::codebook) {
    check(quantize_4bit(table4(q), x.get(), DType::bf16, n, B, EdgeMode::exact, t.codes.as<std::uint8_t>(),
                        t.absmax.as<float>(), st),
          "quantize_4bit");
  } else {  // int4 / e2m1fn: random codes, random positive scales (the kernels time the same either way)
    fill_random_bytes(t.codes.get(), t.codes.bytes(), seed + 1, st);
    fill_random_uniform_f32(t.absmax.as<float>(), blocks, 0.01f, 0.2f, seed + 2, st);
  }
  if (q.double_quantized()) {
    std::vector<float> a(blocks);
    check(cudaMemcpyAsync(a.data(), t.absmax.get(), blocks * 4, cudaMemcpyDeviceToHost, st), "absmax to host");
    check(cudaStreamSynchronize(st), "absmax to host");
    const cpu::DoubleQuantized dq = cpu::double_quantize(a.data(), blocks, cpu::mean_offset(a.data(), blocks));
    t.dq_codes = DeviceBuffer(dq.codes.size(), "dq codes");
    t.dq_absmax = DeviceBuffer(dq.absmax.size() * 4, "dq absmax");
    check(cudaMemcpy(t.dq_codes.get(), dq.codes.data(), dq.codes.size(), cudaMemcpyHostToDevice), "dq codes");
    check(cudaMemcpy(t.dq_absmax.get(), dq.absmax.data(), dq.absmax.size() * 4, cudaMemcpyHostToDevice), "dq absmax");
    t.scales.dq_codes = t.dq_codes.as<std::uint8_t>();
    t.scales.dq_absmax = t.dq_absmax.as<float>();
    t.scales.dq_offset = dq.offset;
  } else {
    t.scales.absmax = t.absmax.as<float>();
  }
  check(cudaStreamSynchronize(st), "make_quantized4");
  return t;
}

// Bytes of n elements in q's quantized form: codes, scales and constants
// (Quantizer::bits_per_parameter of the flattened tensor).
double quantized_bytes(const Quantizer& q, std::size_t n) {
  return q.bits_per_parameter(1, n) * static_cast<double>(n) / 8.0;
}

void run_ceilings(Bench& b) {
  double gbps = 0;
  TimingConfig c = b.opt.timing;
  const std::size_t bytes = std::size_t{1} << 30;
  const Timing t = time_copy(bytes, c, b.stream, &gbps);
  b.copy_gbps = gbps;
  b.add("copy", "cuda", "", "", bytes, 0, 0, 0, t, "eager", 1, 2.0 * bytes, 0);
  if (!b.opt.quiet)
    std::cerr << fmt::format("  copy ceiling: {:.1f} GB/s (1 GiB device-to-device, read + written; median {:.1f} us)\n",
                             gbps, t.median_us);
  double read_gbps = 0;
  const Timing r = time_read(bytes, c, b.stream, &read_gbps);
  b.add("read", "cuda", "", "", bytes, 0, 0, 0, r, "eager", 1, static_cast<double>(bytes), 0);
  b.read_gbps = read_gbps;  // after its own row, whose % copy and ideal are then against the copy rate
  if (!b.opt.quiet)
    std::cerr << fmt::format("  read ceiling: {:.1f} GB/s (1 GiB read by a streaming kernel; median {:.1f} us)\n",
                             read_gbps, r.median_us);
  // cuBLASLt bf16 GEMM 8192³ (the matrix ceiling).
  const std::size_t S = 8192;
  DeviceBuffer x(S * S * 2, "gemm x"), w(S * S * 2, "gemm w"), y(S * S * 2, "gemm y");
  fill_random_normal(x.get(), S * S, 2, 1.0f, 3, b.stream);
  fill_random_normal(w.get(), S * S, 2, 1.0f, 4, b.stream);
  LtMatmul mm(S, S, S, true);
  TimingConfig g{.warmup = 3, .reps = std::max(20, b.opt.timing.reps / 2), .calls = 3};
  b.measure("gemm", "cublaslt", "bf16", "bf16", 0, S, S, S, 1, 3.0 * S * S * 2, 2.0 * S * S * S,
            [&](void* st, int) { mm.run(x.get(), w.get(), y.get(), st); }, g);
}

// Formats without a fast kernel take the generic path (scaled_quantize.cuh),
// timed as impl "lowbit-generic". The n elements are viewed as rows × 8192
// (when 8192 divides n) so that row and column scales mean something; bytes
// = the input or output at its dtype + the quantized form at the format's
// bits per parameter (codes, scales, zero points, constants).
struct GenericSet {
  DeviceBuffer codes, scales, scale_codes, zero_points, tensor_scale, dq_codes, dq_absmax, dq_offset;
  explicit GenericSet(const ScaledLayout& l)
      : codes(std::max<std::size_t>(l.code_bytes, 1), "codes"),
        scales(4 * std::max<std::size_t>(l.groups, 1), "scales"),
        scale_codes(4 * std::max<std::size_t>(l.groups, 1), "scale codes"),
        zero_points(std::max<std::size_t>(l.groups, 1), "zero points"),
        tensor_scale(4, "tensor scale"),
        dq_codes(std::max<std::size_t>(l.groups, 1), "dq codes"),
        dq_absmax(4 * std::max<std::size_t>(l.dq_blocks, 1), "dq absmax"),
        dq_offset(4, "dq offset"),
        has_zp(l.zero_points), has_dq(l.dq) {}
  bool has_zp, has_dq;
  DeviceQuantized out() const {
    return {codes.as<std::uint8_t>(), scales.as<float>(), scale_codes.as<std::uint32_t>(),
            has_zp ? zero_points.as<std::uint8_t>() : nullptr, tensor_scale.as<float>(),
            has_dq ? dq_codes.as<std::uint8_t>() : nullptr, has_dq ? dq_absmax.as<float>() : nullptr,
            has_dq ? dq_offset.as<float>() : nullptr};
  }
  DeviceQuantizedView view() const {
    return {codes.as<std::uint8_t>(), scales.as<float>(), has_zp ? zero_points.as<std::uint8_t>() : nullptr};
  }
};

void run_generic(Bench& b, const Quantizer& q, bool quantize) {
  const std::size_t n = b.opt.elements;
  const std::size_t cols = n % 8192 == 0 ? 8192 : n, rows = n / cols;
  const ScaledDesc d = make_scaled_desc(q);
  const ScaledLayout l = scaled_layout(d, rows, cols);
  const double packed = q.bits_per_parameter(rows, cols) * static_cast<double>(n) / 8.0;  // row / column scales count per row / column
  const std::size_t rot = 2;
  std::vector<DeviceBuffer> xs;
  std::vector<GenericSet> sets;
  for (std::size_t r = 0; r < rot; ++r) {
    xs.emplace_back(n * 2, "bf16 source");
    fill_random_normal(xs.back().get(), n, 2, 1.0f, 40 + r, b.stream);
    sets.emplace_back(l);
    check(quantize_scaled(d, xs.back().get(), DType::bf16, rows, cols, sets.back().out(), b.stream), "quantize_scaled");
  }
  if (quantize) {
    b.measure("quantize", "lowbit-generic", q.name(), "bf16", n, 0, 0, 0, rot, 2.0 * n + packed, 0,
              [&](void* st, int i) {
                check(quantize_scaled(d, xs[i % rot].get(), DType::bf16, rows, cols, sets[i % rot].out(), st),
                      "quantize_scaled");
              });
  } else {
    DeviceBuffer out(n * 2, "dequantize output");
    b.measure("dequantize", "lowbit-generic", q.name(), "bf16", n, 0, 0, 0, rot, packed + 2.0 * n, 0,
              [&](void* st, int i) {
                check(dequantize_scaled(d, sets[i % rot].view(), rows, cols, out.get(), DType::bf16, st),
                      "dequantize_scaled");
              });
  }
}

void run_dequant(Bench& b) {
  const std::size_t n = b.opt.elements;
  for (const auto& name : b.opt.dequant_formats) {
    const Quantizer q = parse_quantizer(name);
    std::vector<DType> outs = {DType::bf16};
    if (name == "nf4@64") outs = {DType::bf16, DType::f16, DType::f32};
    if (is_mx8(q)) {
      const std::size_t rot = 2;
      std::vector<DeviceBuffer> codes, scales;
      for (std::size_t r = 0; r < rot; ++r) {
        DeviceBuffer x(n * 2, "bf16 source");
        fill_random_normal(x.get(), n, 2, 1.0f, 10 + r, b.stream);
        codes.emplace_back(n, "mx8 codes");
        scales.emplace_back(n / 32 + 1, "mx8 scales");
        check(quantize_mx8(q.element().spec, x.get(), DType::bf16, n, codes.back().as<std::uint8_t>(),
                           scales.back().as<std::uint8_t>(), b.stream),
              "quantize_mx8");
      }
      for (DType o : outs) {
        DeviceBuffer out(n * dtype_bytes(o), "dequantize output");
        const double bytes = quantized_bytes(q, n) + static_cast<double>(n) * dtype_bytes(o);
        b.measure("dequantize", "lowbit", q.name(), dtype_name(o), n, 0, 0, 0, rot, bytes, 0, [&](void* st, int i) {
          check(dequantize_mx8(q.element().spec, codes[i % rot].as<std::uint8_t>(), scales[i % rot].as<std::uint8_t>(),
                               n, out.get(), o, st),
                "dequantize_mx8");
        });
      }
      continue;
    }
    if (!is_4bit_fp32_block(q)) {
      run_generic(b, q, false);
      continue;
    }
    const std::size_t rot = 2;
    std::vector<Quantized4> sets;
    for (std::size_t r = 0; r < rot; ++r) sets.push_back(make_quantized4(q, n, 20 + r, b.stream));
    const Table16 t = table4(q);
    for (DType o : outs) {
      DeviceBuffer out(n * dtype_bytes(o), "dequantize output");
      const double bytes = quantized_bytes(q, n) + static_cast<double>(n) * dtype_bytes(o);
      b.measure("dequantize", "lowbit", q.name(), dtype_name(o), n, 0, 0, 0, rot, bytes, 0, [&](void* st, int i) {
        const Quantized4& s = sets[i % rot];
        check(dequantize_4bit(t, s.codes.as<std::uint8_t>(), s.scales, n, q.block_size(), out.get(), o, st),
              "dequantize_4bit");
      });
    }
  }
}

void run_quant(Bench& b) {
  const std::size_t n = b.opt.elements;
  for (const auto& name : b.opt.quant_formats) {
    const Quantizer q = parse_quantizer(name);
    const bool mx8 = is_mx8(q);
    if (!mx8 && !(is_4bit_fp32_block(q) && q.element().kind == ElementKind::codebook && !q.double_quantized())) {
      run_generic(b, q, true);
      continue;
    }
    std::vector<DType> ins = {DType::bf16};
    if (mx8 || name == "nf4@64") ins = {DType::bf16, DType::f32};
    for (DType in : ins) {
      const std::size_t rot = 2;
      std::vector<DeviceBuffer> xs;
      for (std::size_t r = 0; r < rot; ++r) {
        xs.emplace_back(n * dtype_bytes(in), "quantize input");
        fill_random_normal(xs.back().get(), n, in == DType::f32 ? 0 : 2, 1.0f, 30 + r, b.stream);
      }
      const std::size_t B = q.block_size();
      DeviceBuffer codes(mx8 ? n : (n + 1) / 2, "codes"), scales((n / B + 1) * 4, "scales");
      const double bytes = static_cast<double>(n) * dtype_bytes(in) + quantized_bytes(q, n);
      const Table16 t = mx8 ? Table16{} : table4(q);
      b.measure("quantize", "lowbit", q.name(), dtype_name(in), n, 0, 0, 0, rot, bytes, 0, [&](void* st, int i) {
        if (mx8)
          check(quantize_mx8(q.element().spec, xs[i % rot].get(), in, n, codes.as<std::uint8_t>(),
                             scales.as<std::uint8_t>(), st),
                "quantize_mx8");
        else
          check(quantize_4bit(t, xs[i % rot].get(), in, n, B, q.edge_mode(), codes.as<std::uint8_t>(),
                              scales.as<float>(), st),
                "quantize_4bit");
      });
    }
  }
}

void run_gemm(Bench& b) {
  for (const auto& [K, N] : b.opt.shapes) {
    // bf16 references: cuBLASLt on bf16 weights (rotated).
    const double wbytes16 = 2.0 * K * N;
    const std::size_t rot16 = b.rotation_for(wbytes16);
    std::vector<DeviceBuffer> w16;
    for (std::size_t r = 0; r < rot16; ++r) {
      w16.emplace_back(K * N * 2, "bf16 weight");
      fill_random_normal(w16.back().get(), K * N, 2, 0.02f, 40 + r, b.stream);
    }
    const std::size_t maxM = *std::max_element(b.opt.ms.begin(), b.opt.ms.end());
    std::vector<DeviceBuffer> xs;
    for (std::size_t r = 0; r < 16; ++r) {
      xs.emplace_back(maxM * K * 2, "activations");
      fill_random_normal(xs.back().get(), maxM * K, 2, 1.0f, 60 + r, b.stream);
    }
    DeviceBuffer y(maxM * N * 4, "gemm output");
    for (std::size_t M : b.opt.ms) {
      LtMatmul mm(M, N, K, true);
      const double bytes = wbytes16 + 2.0 * M * K + 2.0 * M * N;
      b.measure("gemm", "cublaslt", "bf16", "bf16", 0, M, K, N, rot16, bytes, 2.0 * M * N * K,
                [&](void* st, int i) { mm.run(xs[i % 16].get(), w16[i % rot16].get(), y.get(), st); });
    }
    w16.clear();
    for (const auto& name : b.opt.gemm_formats) {
      const Quantizer q = parse_quantizer(name);
      if (!is_4bit_fp32_block(q) || q.block_size() % 64 != 0 || K % 64 != 0) {
        std::cerr << "  kernel-bench: gemm4 " << name << ": needs a 4-bit format with fp32/dq blocks of 64k; skipped\n";
        continue;
      }
      const std::size_t n = K * N;
      const double wbytes = quantized_bytes(q, n);
      const std::size_t rot = b.rotation_for(wbytes);
      std::vector<Quantized4> sets;
      for (std::size_t r = 0; r < rot; ++r) sets.push_back(make_quantized4(q, n, 80 + r, b.stream));
      const Table16 t = table4(q);
      DeviceBuffer deq(n * 2, "dequantized weight");
      // Only the primary format at every M; the others at M = 1.
      const bool primary = name == b.opt.gemm_formats.front();
      for (std::size_t M : b.opt.ms) {
        if (!primary && M != b.opt.ms.front()) continue;
        // The automatic kernel (bf16, and fp16 at M = 1), then the other versions for NOTES.md.
        struct Run { const char* label; DType act; Gemm4Variant variant; };
        std::vector<Run> runs = {{"lowbit", DType::bf16, Gemm4Variant::automatic}};
        if (primary && M == 1) runs.push_back({"lowbit", DType::f16, Gemm4Variant::automatic});
        if (primary) {
          runs.push_back({"lowbit-pipe", DType::bf16, Gemm4Variant::pipelined});
          if (M <= 16) runs.push_back({"lowbit-pipe16", DType::bf16, Gemm4Variant::pipelined16});
          if (M == 1) runs.push_back({"lowbit-cores", DType::bf16, Gemm4Variant::cores});
          runs.push_back({"lowbit-v1", DType::bf16, Gemm4Variant::registers});
          if (M > 1) runs.push_back({"lowbit-tiled", DType::bf16, Gemm4Variant::tiled});
          // the mma.sync TMA kernel where automatic takes wgmma, and wgmma where it takes TMA
          if (M > 32) runs.push_back({"lowbit-tma", DType::bf16, Gemm4Variant::tma});
          else if (M > 4) runs.push_back({"lowbit-wgmma", DType::bf16, Gemm4Variant::wgmma});
        }
        for (const Run& r : runs) {
          const double bytes = wbytes + 2.0 * M * K + 2.0 * M * N;
          b.measure("gemm4", r.label, q.name(), dtype_name(r.act), 0, M, K, N, rot, bytes, 2.0 * M * N * K,
                    [&, r](void* st, int i) {
                      const Quantized4& s = sets[i % rot];
                      Weight4 w;
                      w.codes = s.codes.as<std::uint8_t>();
                      w.scales = s.scales;
                      w.block = q.block_size();
                      w.N = N;
                      w.K = K;
                      w.table = t;
                      check(gemm_4bit(xs[i % 16].get(), r.act, M, w, y.get(), st, r.variant), "gemm_4bit");
                    });
        }
        if (primary) {  // dequantize to bf16, then cuBLASLt: the unfused way
          LtMatmul mm(M, N, K, true);
          const double bytes = wbytes + 2.0 * M * K + 2.0 * M * N;
          b.measure("dequant_gemm", "lowbit+cublaslt", q.name(), "bf16", 0, M, K, N, rot, bytes, 2.0 * M * N * K,
                    [&](void* st, int i) {
                      const Quantized4& s = sets[i % rot];
                      check(dequantize_4bit(t, s.codes.as<std::uint8_t>(), s.scales, n, q.block_size(), deq.get(),
                                            DType::bf16, st),
                            "dequantize_4bit");
                      mm.run(xs[i % 16].get(), deq.get(), y.get(), st);
                    });
        }
      }
    }
  }
}

// ---------------------------------------------------------------------------
// Matmuls of LLM layers (issue 11): ops `matmul` and `fp8quant`.
//
// Large GEMMs run at the card's power limit and their clocks swing by about
// ±8 % between runs, so the candidates of one shape are interleaved round by
// round: each round times every candidate once in a CUDA graph (median per
// call over the round's replays), and the graph row's median is the median of
// the rounds' medians (its p10 / p90 are those of the round medians, its
// min / max the fastest / slowest replay of all rounds). The eager row is
// timed once per candidate, right after its first (plan-tuning) call.

// One candidate of an interleaved comparison.
struct Candidate {
  std::string op, impl, format, dtype;
  double outlier_frac = 0, bytes = 0, flops = 0;
  LaunchFn launch;
  Timing eager;
  std::vector<Timing> rounds;
  bool ok = true;
};

// The graph row of an interleaved candidate: the median (p10, p90) of the
// rounds' medians; min / max over every replay of every round.
Timing of_rounds(const std::vector<Timing>& rounds) {
  std::vector<double> med;
  for (const Timing& r : rounds) med.push_back(r.median_us);
  Timing t = summarize(med, rounds.front().calls);
  t.reps = 0;
  t.min_us = rounds.front().min_us;
  t.max_us = rounds.front().max_us;
  for (const Timing& r : rounds) {
    t.min_us = std::min(t.min_us, r.min_us);
    t.max_us = std::max(t.max_us, r.max_us);
    t.reps += r.reps;
  }
  return t;
}

// A failed candidate is said and dropped; a CUDA error that outlives the
// call (a fault: the context is gone) ends the run.
void drop(Candidate& c, const std::string& where, const std::exception& e) {
  cudaGetLastError();
  if (cudaDeviceSynchronize() != cudaSuccess) throw CudaError(-1, c.format + " " + where + ": " + e.what());
  cudaGetLastError();
  c.ok = false;
  std::cerr << fmt::format("  kernel-bench: {} {} {}: skipped ({}: {})\n", c.op, c.impl, c.format, where, e.what());
}

void run_interleaved(Bench& b, std::vector<Candidate>& cs, std::uint64_t elements, std::uint64_t M, std::uint64_t K,
                     std::uint64_t N, std::size_t rotation, const TimingConfig& cfg) {
  for (Candidate& c : cs) {
    try {
      c.launch(b.stream, 0);  // the first call tunes the candidate's cuBLASLt plan: never inside a capture
      check(cudaStreamSynchronize(b.stream), "first call");
      c.eager = time_eager(c.launch, cfg, b.stream);
    } catch (const std::exception& e) {
      drop(c, "first call", e);
    }
  }
  // Each round after the first runs the candidates in a new order (a fixed-seed shuffle): a GEMM at the
  // power limit runs up to 15 % slower right after another heavy one than after a light one, so a fixed
  // order would hand each candidate the same neighbour, and the same bias, in every round.
  std::vector<std::size_t> order(cs.size());
  std::iota(order.begin(), order.end(), std::size_t{0});
  std::mt19937 shuffle_rng(20261127);
  for (int r = 0; r < b.opt.rounds; ++r) {
    if (r > 0) std::shuffle(order.begin(), order.end(), shuffle_rng);
    for (const std::size_t j : order) {
      Candidate& c = cs[j];
      if (!c.ok) continue;
      try {
        c.rounds.push_back(time_graph(c.launch, cfg, b.stream));
      } catch (const std::exception& e) {
        drop(c, "graph", e);
      }
    }
  }
  for (const Candidate& c : cs) {
    if (c.eager.reps == 0) continue;  // never ran
    const bool graph = c.ok && !c.rounds.empty();
    b.add(c.op, c.impl, c.format, c.dtype, elements, M, K, N, c.eager, "eager", rotation, c.bytes, c.flops,
          c.outlier_frac, 1);
    const Timing g = graph ? of_rounds(c.rounds) : Timing{};
    if (graph)
      b.add(c.op, c.impl, c.format, c.dtype, elements, M, K, N, g, "graph", rotation, c.bytes, c.flops,
            c.outlier_frac, static_cast<int>(c.rounds.size()));
    const std::string shape = M ? fmt::format("M={} K={} N={}", M, K, N) : fmt::format("n={}", elements);
    const std::string outl = c.format == "llm.int8" ? fmt::format(" outliers {:g} %", 100 * c.outlier_frac) : "";
    b.summary.push_back({fmt::format("{:<8} {:<14} {:<14} {:<5} {}{}", c.op, c.impl, c.format, c.dtype, shape, outl),
                         c.eager, g, c.bytes, c.flops, graph});
    const double t = graph ? g.median_us : c.eager.median_us;
    if (!b.opt.quiet)
      std::cerr << fmt::format("  {:<74} eager {:9.2f} us  graph {} {:7.1f} {}\n", b.summary.back().label,
                               c.eager.median_us,
                               graph ? fmt::format("{:9.2f} us ({} rounds)", g.median_us, c.rounds.size())
                                     : std::string("n/a"),
                               c.flops > 0 ? c.flops / (t * 1e6) : c.bytes / (t * 1e3), c.flops > 0 ? "TFLOP/s" : "GB/s");
  }
}

// int8 weights from quantize_weight, freed with the shape.
struct OwnedInt8Weight {
  Int8Weight w;
  explicit OwnedInt8Weight(Int8Weight q) : w(q) {}
  ~OwnedInt8Weight() { free_weight(w); }
  OwnedInt8Weight(const OwnedInt8Weight&) = delete;
  OwnedInt8Weight& operator=(const OwnedInt8Weight&) = delete;
};

// Planted-outlier column period for a fraction (0: none): plant_outlier_columns' `every`.
int outlier_every(double frac) { return frac > 0 ? static_cast<int>(std::lround(1.0 / frac)) : 0; }

// Per-round timing of the matmul candidates: bench_matmul_cuda's settings
// (20 replays per round; 2 calls per replay for M >= 2048, else 10).
TimingConfig matmul_timing(const Options& o, std::size_t M) {
  return TimingConfig{.warmup = 3, .reps = o.quick ? 10 : 20, .calls = M >= 2048 ? 2 : 10};
}

void run_matmul(Bench& b) {
  const cudaStream_t st = b.stream;
  LtGemm gemm;
  const std::size_t max_m = *std::max_element(b.opt.matmul_ms.begin(), b.opt.matmul_ms.end());
  for (const auto& [K, N] : b.opt.matmul_shapes) {
    const int k = static_cast<int>(K), n = static_cast<int>(N), mm = static_cast<int>(max_m);
    // Weights rotate over enough sets that the smallest form (int8 / e4m3, K·N bytes) defeats L2.
    const std::size_t rot = b.rotation_for(static_cast<double>(K) * N);
    // Scalars, each in its own 64-byte slot (cuBLASLt's scale pointers): per set the e4m3 weight's amax and
    // dequantization factor; then x's (e4m3), x's for the FP8 layer, and 1.0 for the e5m2 activations.
    DeviceBuffer scal((2 * rot + 5) * 64, "scales");
    auto slot = [&](std::size_t i) { return scal.as<float>() + 16 * i; };
    float* x_amax = slot(2 * rot);
    float* x_scale = slot(2 * rot + 1);
    float* layer_amax = slot(2 * rot + 2);
    float* layer_scale = slot(2 * rot + 3);
    float* one = slot(2 * rot + 4);
    const float one_h = 1.0f;
    check(cudaMemcpy(one, &one_h, sizeof one_h, cudaMemcpyHostToDevice), "scale 1.0");
    DeviceBuffer layer_cta_slots(4 * kCurrentScalingCtaSlots, "CTA maxima");  // the FP8 layer's current scaling

    std::vector<DeviceBuffer> w16, wf8;
    std::vector<std::unique_ptr<OwnedInt8Weight>> w8;
    std::vector<std::unique_ptr<LlmInt8Layer>> vec, llm;
    for (std::size_t r = 0; r < rot; ++r) {
      w16.emplace_back(K * N * 2, "bf16 weight");
      fill_random_normal(w16.back().get(), K * N, 2, 0.05f, 200 + r, st);
      wf8.emplace_back(K * N, "e4m3 weight");
      quantize_e4m3_current(Act::bf16, w16.back().get(), K * N, wf8.back().as<std::uint8_t>(), slot(2 * r),
                            slot(2 * r + 1), st);
      w8.push_back(std::make_unique<OwnedInt8Weight>(quantize_weight(Act::bf16, w16.back().get(), n, k, st)));
      // Plain vector-wise int8 (threshold +inf) and LLM.int8 proper (threshold 6, 16-bit outlier weights).
      vec.push_back(std::make_unique<LlmInt8Layer>(gemm, w8.back()->w, Act::bf16, mm, INFINITY));
      llm.push_back(std::make_unique<LlmInt8Layer>(gemm, w8.back()->w, Act::bf16, mm, 6.0f, w16.back().get()));
    }
    // Activations: bf16 N(0, 1) (one copy per outlier fraction, planted), int8 random, e4m3 from x, e5m2 from
    // an fp32 N(0, 1) tensor.
    DeviceBuffer x(max_m * K * 2, "x"), y(max_m * N * 2, "y"), c32(max_m * N * 4, "int32 y");
    fill_random_normal(x.get(), max_m * K, 2, 1.0f, 1, st);
    std::vector<DeviceBuffer> xo;
    for (double f : b.opt.outliers) {
      xo.emplace_back(f > 0 ? max_m * K * 2 : 0, "x with outliers");
      if (f == 0) continue;
      check(cudaMemcpyAsync(xo.back().get(), x.get(), x.bytes(), cudaMemcpyDeviceToDevice, st), "copy x");
      plant_outlier_columns(Act::bf16, xo.back().get(), mm, k, outlier_every(f), 20.0f, st);
    }
    DeviceBuffer q8x(max_m * K, "int8 x"), f8x(max_m * K, "e4m3 x"), f8x_layer(max_m * K, "e4m3 x (layer)"),
        e5x(max_m * K, "e5m2 x");
    fill_random_bytes(q8x.get(), q8x.bytes(), 3, st);
    quantize_e4m3_current(Act::bf16, x.get(), max_m * K, f8x.as<std::uint8_t>(), x_amax, x_scale, st);
    {
      DeviceBuffer x32(max_m * K * 4, "fp32 x");
      fill_random_normal(x32.get(), max_m * K, 0, 1.0f, 5, st);
      check(encode_u8(lowbit::e5m2, x32.as<float>(), e5x.as<std::uint8_t>(), max_m * K, ConvertOptions{}, 0, st),
            "encode e5m2");
      // The layers clear their buffers with cudaMemset on the legacy stream, which this non-blocking
      // stream does not wait for: wait for the whole device.
      check(cudaDeviceSynchronize(), "matmul setup");
    }

    for (const std::size_t M : b.opt.matmul_ms) {
      const int m = static_cast<int>(M);
      const double flops = 2.0 * M * N * K;
      const double act16 = 2.0 * M * K, out16 = 2.0 * M * N, wb = static_cast<double>(K) * N;
      auto wi = [rot](int i) { return static_cast<std::size_t>(i) % rot; };
      std::vector<Candidate> cs;
      auto add = [&](std::string op, std::string impl, std::string format, std::string dtype, double frac,
                     double bytes, LaunchFn f) {
        const auto& keep = b.opt.matmul_formats;
        if (!keep.empty() && std::find(keep.begin(), keep.end(), format) == keep.end()) return;
        Candidate c;
        c.op = std::move(op);
        c.impl = std::move(impl);
        c.format = std::move(format);
        c.dtype = std::move(dtype);
        c.outlier_frac = frac;
        c.bytes = bytes;
        c.flops = flops;
        c.launch = std::move(f);
        cs.push_back(std::move(c));
      };
      add("matmul", "cublaslt", "bf16", "bf16", 0, 2 * wb + act16 + out16, [&, m](void* s, int i) {
        gemm.run(GemmKind::bf16_bf16_bf16, m, n, k, x.get(), w16[wi(i)].get(), y.get(), static_cast<cudaStream_t>(s));
      });
      add("matmul", "lowbit", "int8", "int32", 0, wb + M * K + 4.0 * M * N, [&, m](void* s, int i) {
        gemm.run(GemmKind::int8_int32, m, n, k, q8x.get(), w8[wi(i)]->w.data, c32.get(), static_cast<cudaStream_t>(s));
      });
      add("matmul", "lowbit", "e4m3fn", "bf16", 0, wb + M * K + out16, [&, m](void* s, int i) {
        gemm.run(GemmKind::e4m3_e4m3_bf16, m, n, k, f8x.get(), wf8[wi(i)].get(), y.get(), static_cast<cudaStream_t>(s),
                 x_scale, slot(2 * wi(i) + 1));
      });
      add("matmul", "lowbit", "e5m2xe4m3fn", "bf16", 0, wb + M * K + out16, [&, m](void* s, int i) {
        gemm.run(GemmKind::e5m2_e4m3_bf16, m, n, k, e5x.get(), wf8[wi(i)].get(), y.get(), static_cast<cudaStream_t>(s),
                 one, slot(2 * wi(i) + 1));
      });
      // Layers: int8 weight + its per-row absmax, bf16 in and out.
      const double layer_bytes = wb + 4.0 * N + act16 + out16;
      // The layers' automatic path and, where that is the small-M or the wgmma one, the cuBLASLt path
      // for comparison in the same rounds ("lowbit-cublaslt": flag and quantize launches, cuBLASLt's
      // int8 GEMM, the epilogue).
      std::vector<std::pair<const char*, Int8Path>> paths = {{"lowbit", Int8Path::automatic}};
      llm[0]->set_path(Int8Path::automatic);  // an earlier candidate may have left another
      if (llm[0]->path_for(m) != Int8Path::cublaslt) paths.push_back({"lowbit-cublaslt", Int8Path::cublaslt});
      for (const auto& impl_path : paths) {
        const char* impl = impl_path.first;
        const Int8Path path = impl_path.second;
        add("linear", impl, "int8@row", "bf16", 0, layer_bytes, [&, m, path](void* s, int i) {
          vec[wi(i)]->set_path(path);
          vec[wi(i)]->forward(x.get(), y.get(), m, static_cast<cudaStream_t>(s));
        });
        for (std::size_t j = 0; j < b.opt.outliers.size(); ++j) {
          const void* xin = b.opt.outliers[j] > 0 ? xo[j].get() : x.get();
          add("linear", impl, "llm.int8", "bf16", b.opt.outliers[j], layer_bytes, [&, m, xin, path](void* s, int i) {
            llm[wi(i)]->set_path(path);
            llm[wi(i)]->forward(xin, y.get(), m, static_cast<cudaStream_t>(s));
          });
        }
      }
      add("linear", "lowbit", "e4m3fn@tensor", "bf16", 0, wb + act16 + out16, [&, m, M](void* s, int i) {
        const auto t = static_cast<cudaStream_t>(s);
        quantize_e4m3_current(Act::bf16, x.get(), M * K, f8x_layer.as<std::uint8_t>(), layer_amax, layer_scale, t,
                              layer_cta_slots.as<float>());
        gemm.run(GemmKind::e4m3_e4m3_bf16, m, n, k, f8x_layer.get(), wf8[wi(i)].get(), y.get(), t, layer_scale,
                 slot(2 * wi(i) + 1));
      });
      run_interleaved(b, cs, 0, M, K, N, rot, matmul_timing(b.opt, M));
      if (!b.opt.quiet) {
        for (const auto& [kind, label] : {std::pair{GemmKind::int8_int32, "int8"}, std::pair{GemmKind::e4m3_e4m3_bf16, "e4m3"}}) {
          const auto [chosen, returned] = gemm.chosen(kind, m, n, k);
          if (chosen >= 0)
            std::cerr << fmt::format("  ({} plan: candidate {} of {} heuristic results)\n", label, chosen, returned);
        }
      }
    }
  }
}

// Quantize with amax, bf16 -> e4m3fn, per-tensor scale: current scaling
// against delayed scaling (one pass; the scale from the previous amax, this
// amax recorded) and a device-to-device copy of the same bytes (1.5 n read,
// 1.5 n written: the copy ceiling's rate at this size), interleaved; at an
// LLM layer's activations (2048 tokens × 8192, 32 MiB: current scaling's
// one-pass kernel, the tensor held in shared memory) and at --elements
// (512 MiB by default: two passes over DRAM).
void run_fp8quant_at(Bench& b, std::size_t n) {
  const double bytes = 3.0 * n;  // 2 B read + 1 B written per element
  const std::size_t rot = b.rotation_for(bytes);
  std::vector<DeviceBuffer> xs;
  for (std::size_t r = 0; r < rot; ++r) {
    xs.emplace_back(n * 2, "bf16 tensor");
    fill_random_normal(xs.back().get(), n, 2, 1.0f, 300 + r, b.stream);
  }
  DeviceBuffer out(n, "e4m3 tensor"), scal(4 * 64, "scales"), cta_slots(4 * kCurrentScalingCtaSlots, "CTA maxima");
  DeviceBuffer copy_out(n * 3 / 2, "copy destination");
  float* amax = scal.as<float>();
  float* scale = amax + 16;
  float* amax_next = amax + 32;
  float* scale_delayed = amax + 48;
  // The delayed candidate's previous amax: this data's own (every set is N(0, 1)).
  quantize_e4m3_current(Act::bf16, xs[0].get(), n, out.as<std::uint8_t>(), amax, scale, b.stream);
  DeviceBuffer amax_prev(64, "previous amax");
  check(cudaMemcpyAsync(amax_prev.get(), amax, sizeof(float), cudaMemcpyDeviceToDevice, b.stream), "amax");
  check(cudaStreamSynchronize(b.stream), "fp8quant setup");
  std::vector<Candidate> cs(3);
  cs[0].launch = [&](void* s, int i) {
    quantize_e4m3_current(Act::bf16, xs[i % rot].get(), n, out.as<std::uint8_t>(), amax, scale,
                          static_cast<cudaStream_t>(s), cta_slots.as<float>());
  };
  cs[0].impl = "lowbit";
  cs[1].launch = [&](void* s, int i) {
    quantize_e4m3_delayed(Act::bf16, xs[i % rot].get(), n, out.as<std::uint8_t>(), amax_prev.as<float>(), amax_next,
                          scale_delayed, static_cast<cudaStream_t>(s));
  };
  cs[1].impl = "lowbit-delayed";
  cs[2].launch = [&](void* s, int i) {
    check(cudaMemcpyAsync(copy_out.get(), xs[i % rot].get(), n * 3 / 2, cudaMemcpyDeviceToDevice,
                          static_cast<cudaStream_t>(s)),
          "same-size copy");
  };
  cs[2].impl = "cuda";
  for (Candidate& c : cs) {
    c.op = "quantize";
    c.format = "e4m3fn@tensor";
    c.dtype = "bf16";
    c.bytes = bytes;
  }
  cs[2].op = "copy";  // the same bytes moved (read + written), as the ceiling counts them
  run_interleaved(b, cs, n, 0, 0, 0, rot, TimingConfig{.warmup = 3, .reps = b.opt.quick ? 10 : 20, .calls = 5});
}
void run_fp8quant(Bench& b) {
  const std::size_t activations = std::size_t{2048} * 8192;
  if (b.opt.elements != activations) run_fp8quant_at(b, activations);
  run_fp8quant_at(b, b.opt.elements);
}

// KxN items; K a multiple of k_multiple, N of n_multiple.
std::vector<std::pair<std::size_t, std::size_t>> parse_shapes(const std::vector<std::string>& items, const char* option,
                                                              std::size_t k_multiple, std::size_t n_multiple,
                                                              const char* why) {
  std::vector<std::pair<std::size_t, std::size_t>> out;
  for (const auto& s : items) {
    const auto x = s.find('x');
    std::size_t k = 0, n = 0;
    try {
      if (x == std::string::npos) throw std::invalid_argument(s);
      std::size_t used = 0;
      k = std::stoull(s.substr(0, x), &used);
      if (used != x) throw std::invalid_argument(s);
      n = std::stoull(s.substr(x + 1), &used);
      if (used != s.size() - x - 1) throw std::invalid_argument(s);
    } catch (const std::exception&) {
      throw UsageError(fmt::format("kernel-bench: {}: '{}' is not KxN (e.g. 8192x28672)", option, s));
    }
    if (k == 0 || n == 0 || k % k_multiple != 0 || n % n_multiple != 0 || k > (1u << 17) || n > (1u << 17))
      throw UsageError(fmt::format("kernel-bench: {}: '{}': {}", option, s, why));
    out.emplace_back(k, n);
  }
  return out;
}

std::size_t parse_size(const std::string& s, const char* what) {
  try {
    std::size_t used = 0;
    const double v = std::stod(s, &used);
    if (used != s.size() || !(v >= 1) || v > 1e12 || v != std::floor(v)) throw std::invalid_argument(s);
    return static_cast<std::size_t>(v);
  } catch (const std::exception&) {
    throw UsageError(std::string("kernel-bench: ") + what + ": '" + s + "' is not a positive integer");
  }
}

#ifdef LOWBIT_HAVE_GBENCH
class NullReporter : public benchmark::BenchmarkReporter {
 public:
  bool ReportContext(const Context&) override { return true; }
  void ReportRuns(const std::vector<Run>&) override {}
};

void write_gbench_json(const Bench& b, const std::string& path) {
  for (const auto& s : b.summary) {
    for (int g = 0; g < (s.has_graph ? 2 : 1); ++g) {
      const Timing t = g ? s.graph : s.eager;
      const double bytes = s.bytes, flops = s.flops;
      benchmark::RegisterBenchmark((s.label + (g ? " graph" : " eager")).c_str(),
                                   [t, bytes, flops](benchmark::State& st) {
                                     for (auto _ : st) st.SetIterationTime(t.median_us * 1e-6);
                                     st.counters["p10_us"] = t.p10_us;
                                     st.counters["p90_us"] = t.p90_us;
                                     st.counters["reps"] = t.reps;
                                     st.counters["bytes"] = bytes;
                                     st.counters["GBps"] = bytes / (t.median_us * 1e3);
                                     if (flops > 0) st.counters["TFLOPps"] = flops / (t.median_us * 1e6);
                                   })
          ->UseManualTime()
          ->Iterations(1)
          ->Unit(benchmark::kMicrosecond);
    }
  }
  std::string out_flag = "--benchmark_out=" + path, fmt_flag = "--benchmark_out_format=json";
  std::vector<char*> argv = {const_cast<char*>("lowbit-kernel-bench"), out_flag.data(), fmt_flag.data()};
  int argc = static_cast<int>(argv.size());
  benchmark::Initialize(&argc, argv.data());
  NullReporter display;
  benchmark::JSONReporter file;
  benchmark::RunSpecifiedBenchmarks(&display, &file);
  benchmark::Shutdown();
}
#endif

int run_cli(const std::vector<std::string>& args) {
  namespace po = boost::program_options;
  OptionParser parser("kernel-bench", "[options]",
                      "Time lowbit's CUDA kernels (blockwise dequantize / quantize, fused 4-bit GEMV/GEMM, and with "
                      "--ops matmul,fp8quant the int8 / LLM.int8 / FP8 matmuls of issue 11) against the copy and "
                      "cuBLASLt ceilings measured in the same run; eager and CUDA-graph times. Exit 77 when there is "
                      "no CUDA device.");
  parser.add()("ops", po::value<std::string>()->default_value("ceiling,dequant,quant,gemm")->value_name("LIST"),
               "what to time: ceiling (copy, read + cuBLASLt 8192^3; always run when other ops are), dequant, quant, gemm, "
               "matmul (per --matmul-shapes x --matmul-m, interleaved over --rounds: cuBLASLt bf16, int8 -> int32, "
               "e4m3 and e5m2 x e4m3 GEMMs, int8 vector-wise / LLM.int8 (per --outliers) / FP8 layers), fp8quant "
               "(bf16 -> e4m3 with amax, current vs delayed scaling, at 2048 x 8192 and --elements)")(
      "matmul-shapes", po::value<std::string>()->default_value("4096x4096,8192x8192,8192x28672,28672x8192")->value_name("KxN,..."),
      "matmul shapes, K (in features) x N (out features), multiples of 16")(
      "matmul-m", po::value<std::string>()->default_value("1,16,128,2048,8192")->value_name("LIST"),
      "matmul batch sizes (tokens), 1 to 65536")(
      "outliers", po::value<std::string>()->default_value("0,0.001,0.01")->value_name("LIST"),
      "fractions of activation columns planted as outliers (x20) for the LLM.int8 layer, each in [0, 0.5] "
      "(0.001 = 0.1 %; the unit of matmul-error's --outlier-frac)")(
      "matmul-formats", po::value<std::string>()->default_value("all")->value_name("LIST"),
      "matmul candidates to time, by format: bf16, int8, e4m3fn, e5m2xe4m3fn, int8@row, llm.int8, e4m3fn@tensor "
      "(all: every one; fewer candidates change what runs between them, and so the clocks a GEMM at the power "
      "limit gets)")(
      "rounds", po::value<int>()->default_value(5)->value_name("R"),
      "matmul / fp8quant: interleaved rounds; the reported graph median is the median of the rounds' medians")(
      "shapes", po::value<std::string>()->default_value("4096x4096,4096x11008,8192x8192,8192x28672,28672x8192")->value_name("KxN,..."),
      "GEMM shapes, K (in features) x N (out features)")(
      "m", po::value<std::string>()->default_value("1,4,16,64")->value_name("LIST"), "GEMM batch sizes (tokens)")(
      "elements,n", po::value<std::string>()->default_value("268435456")->value_name("N"),
      "elements per (de)quantize call (default 2^28: 512 MiB of bf16)")(
      "dequant-formats", po::value<std::string>()->default_value("nf4@64,nf4@4096,fp4-bnb@64,nf4@64+dq,int4@64,e2m1fn@32,mxfp8,nvfp4,int8@row")->value_name("LIST"),
      "formats for dequantize")(
      "quant-formats", po::value<std::string>()->default_value("nf4@64,nf4@4096,nf4@64~bnb,mxfp8,nvfp4,nf4@64+dq,int8@row")->value_name("LIST"),
      "formats for quantize")(
      "gemm-formats", po::value<std::string>()->default_value("nf4@64,int4@64,nf4@64+dq")->value_name("LIST"),
      "4-bit weight formats for gemm4 (the first at every M, the rest at the first M)")(
      "reps", po::value<int>()->default_value(50)->value_name("R"), "timed rounds (>= 50 for reported numbers)")(
      "warmup", po::value<int>()->default_value(5)->value_name("W"), "untimed warm-up rounds")(
      "calls", po::value<int>()->default_value(20)->value_name("C"), "calls per timed round (and per graph)")(
      "quick", po::bool_switch(), "a small set: 2^26 elements, shape 8192x8192, M = 1,16 (matmul: 16,2048, 3 rounds "
                                  "of 10 replays), reps 20")(
      "output,o", po::value<std::string>()->default_value("kernel_bench.h5")->value_name("FILE"), "results file")(
      "json", po::value<std::string>()->value_name("FILE"), "Google Benchmark JSON file (default: none)")(
      "quiet,q", po::bool_switch(), "no per-measurement lines on stderr");
  const auto vm = parser.parse(args);
  if (!vm) return 0;
  Options o;
  o.ops = split_list((*vm)["ops"].as<std::string>());
  const std::vector<std::string> known_ops = {"ceiling", "dequant", "quant", "gemm", "matmul", "fp8quant"};
  for (const auto& op : o.ops)
    if (std::find(known_ops.begin(), known_ops.end(), op) == known_ops.end())
      throw UsageError("kernel-bench: --ops: unknown '" + op + "'" + did_you_mean(op, known_ops));
  o.shapes = parse_shapes(split_list((*vm)["shapes"].as<std::string>()), "--shapes", 64, 1,
                          "K and N must be positive (at most 131072) and K a multiple of 64");
  for (const auto& m : split_list((*vm)["m"].as<std::string>())) o.ms.push_back(parse_size(m, "--m"));
  if (o.ms.empty()) throw UsageError("kernel-bench: --m needs at least one batch size");
  o.elements = parse_size((*vm)["elements"].as<std::string>(), "--elements");
  o.matmul_shapes = parse_shapes(split_list((*vm)["matmul-shapes"].as<std::string>()), "--matmul-shapes", 16, 16,
                                 "K and N must be positive multiples of 16 (cuBLASLt's int8 and FP8 kernels), at "
                                 "most 131072");
  if (o.matmul_shapes.empty()) throw UsageError("kernel-bench: --matmul-shapes needs at least one KxN");
  for (const auto& m : split_list((*vm)["matmul-m"].as<std::string>())) {
    o.matmul_ms.push_back(parse_size(m, "--matmul-m"));
    if (o.matmul_ms.back() > 65536) throw UsageError("kernel-bench: --matmul-m: '" + m + "' is above 65536");
  }
  if (o.matmul_ms.empty()) throw UsageError("kernel-bench: --matmul-m needs at least one batch size");
  for (const std::size_t m : o.matmul_ms)  // the LLM.int8 layer indexes M × K activations with 32 bits
    for (const auto& [k, n] : o.matmul_shapes)
      if (m * k >= (std::size_t{1} << 31))
        throw UsageError(fmt::format("kernel-bench: --matmul-m {} with K = {}: M · K must be below 2^31", m, k));
  if (const auto f = (*vm)["matmul-formats"].as<std::string>(); f != "all") {
    const std::vector<std::string> known = {"bf16", "int8", "e4m3fn", "e5m2xe4m3fn", "int8@row", "llm.int8", "e4m3fn@tensor"};
    for (const auto& name : split_list(f)) {
      if (std::find(known.begin(), known.end(), name) == known.end())
        throw UsageError("kernel-bench: --matmul-formats: unknown format '" + name + "' (one of bf16, int8, e4m3fn, "
                         "e5m2xe4m3fn, int8@row, llm.int8, e4m3fn@tensor, or all)");
      o.matmul_formats.push_back(name);
    }
    if (o.matmul_formats.empty()) throw UsageError("kernel-bench: --matmul-formats needs at least one format");
  }
  for (const auto& f : split_list((*vm)["outliers"].as<std::string>())) {
    double v = -1;
    try {
      std::size_t used = 0;
      v = std::stod(f, &used);
      if (used != f.size()) v = -1;
    } catch (const std::exception&) {
      v = -1;
    }
    if (!(v >= 0 && v <= 0.5))
      throw UsageError("kernel-bench: --outliers: '" + f + "' is not a fraction in [0, 0.5] (0.001 = 0.1 % of the columns)");
    for (const auto& [k, n] : o.matmul_shapes)
      if (v > 0 && static_cast<std::size_t>(outlier_every(v) / 2) >= k)
        throw UsageError(fmt::format("kernel-bench: --outliers: {} plants no column at K = {} (every {}th column "
                                     "from the {}th)", f, k, outlier_every(v), outlier_every(v) / 2));
    o.outliers.push_back(v);
  }
  o.rounds = (*vm)["rounds"].as<int>();
  if (o.rounds < 1) throw UsageError("kernel-bench: --rounds must be >= 1");
  o.dequant_formats = split_list((*vm)["dequant-formats"].as<std::string>());
  o.quant_formats = split_list((*vm)["quant-formats"].as<std::string>());
  o.gemm_formats = split_list((*vm)["gemm-formats"].as<std::string>());
  for (auto* list : {&o.dequant_formats, &o.quant_formats, &o.gemm_formats})
    for (const auto& f : *list) (void)parse_quantizer(f);  // unknown names: FormatError → exit 2 with suggestions
  o.timing.reps = (*vm)["reps"].as<int>();
  o.timing.warmup = (*vm)["warmup"].as<int>();
  o.timing.calls = (*vm)["calls"].as<int>();
  if (o.timing.reps < 1 || o.timing.warmup < 0 || o.timing.calls < 1)
    throw UsageError("kernel-bench: --reps and --calls must be >= 1, --warmup >= 0");
  if ((*vm)["quick"].as<bool>()) {
    o.quick = true;
    o.elements = std::size_t{1} << 26;
    o.shapes = {{8192, 8192}};
    o.ms = {1, 16};
    o.timing.reps = std::min(o.timing.reps, 20);
    o.matmul_shapes = {{8192, 8192}};
    o.matmul_ms = {16, 2048};
    o.rounds = std::min(o.rounds, 3);
  }
  o.quiet = (*vm)["quiet"].as<bool>();
  const std::string out_path = (*vm)["output"].as<std::string>();

  Bench b;
  b.opt = o;
  b.dev = device_info();
  if (!b.dev.present) {
    std::cerr << "kernel-bench: no CUDA device visible (cudaGetDeviceCount found none); nothing measured\n";
    return 77;
  }
  ResultsWriter writer(out_path, "kernel-bench");  // fails now on an unwritable path
  auto has = [&](const char* op) { return std::find(o.ops.begin(), o.ops.end(), op) != o.ops.end(); };
  try {
    check(cudaStreamCreateWithFlags(&b.stream, cudaStreamNonBlocking), "cudaStreamCreate");
    if (!o.quiet)
      std::cerr << fmt::format("kernel-bench on {} ({} SMs, {} MHz SM, {} MHz memory, L2 {} MiB, driver {}, runtime {})\n",
                               b.dev.name, b.dev.sm_count, b.dev.sm_clock_mhz, b.dev.mem_clock_mhz,
                               b.dev.l2_bytes >> 20, b.dev.driver_version, b.dev.runtime_version);
    run_ceilings(b);
    if (has("dequant")) run_dequant(b);
    if (has("quant")) run_quant(b);
    if (has("gemm")) run_gemm(b);
    if (has("matmul")) run_matmul(b);
    if (has("fp8quant")) run_fp8quant(b);
  } catch (const CudaError& e) {
    std::cerr << "kernel-bench: CUDA failure: " << e.what() << "\n";
    return 1;
  }
  writer.set_root_attribute("gpu_name", b.dev.name);
  writer.set_root_attribute("gpu_sm_count", std::int64_t{b.dev.sm_count});
  writer.set_root_attribute("gpu_sm_clock_mhz", std::int64_t{b.dev.sm_clock_mhz});
  writer.set_root_attribute("gpu_mem_clock_mhz", std::int64_t{b.dev.mem_clock_mhz});
  writer.set_root_attribute("gpu_l2_bytes", static_cast<std::uint64_t>(b.dev.l2_bytes));
  writer.set_root_attribute("cuda_driver_version", std::int64_t{b.dev.driver_version});
  writer.set_root_attribute("cuda_runtime_version", std::int64_t{b.dev.runtime_version});
  writer.set_root_attribute("copy_gbps", b.copy_gbps);
  writer.set_root_attribute("read_gbps", b.read_gbps);
  b.table.set_attribute("copy_gbps", b.copy_gbps);
  b.table.set_attribute("read_gbps", b.read_gbps);
  b.table.set_attribute("timing", fmt::format("warmup {} rounds, {} timed rounds of {} calls; eager: events around the "
                                              "calls; graph: the calls captured once, replays timed. matmul / linear "
                                              "and fp8quant rows: candidates of a shape interleaved over {} rounds of "
                                              "3 warm-up + {} timed graph replays of 10 calls (2 for M >= 2048; "
                                              "fp8quant 5), graph median = median of the rounds' medians; eager "
                                              "timed once per candidate with the same settings",
                                              o.timing.warmup, o.timing.reps, o.timing.calls, o.rounds,
                                              o.quick ? 10 : 20));
  writer.add(std::move(b.table));
  writer.commit();
  if (!o.quiet) std::cerr << "wrote " << out_path << "\n";
  if (vm->count("json")) {
#ifdef LOWBIT_HAVE_GBENCH
    write_gbench_json(b, (*vm)["json"].as<std::string>());
    if (!o.quiet) std::cerr << "wrote " << (*vm)["json"].as<std::string>() << "\n";
#else
    std::cerr << "kernel-bench: built without Google Benchmark; --json not written\n";
#endif
  }
  if (b.stream) cudaStreamDestroy(b.stream);
  return 0;
}

#endif  // LOWBIT_HAVE_CUDA

const Registrar reg{"kernel-bench", "time lowbit's CUDA kernels against the copy / cuBLASLt ceilings (eager and graph)",
                    run_cli};

}  // namespace
}  // namespace lowbit::harness
