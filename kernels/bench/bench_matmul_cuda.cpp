// GPU matmul benchmark (issue 11): cuBLASLt bf16 (the baseline), tuned
// int8→int32 GEMM, vector-wise int8 and LLM.int8 layers (no host sync), FP8
// e4m3 GEMM and the FP8 quantize-with-amax kernels, on LLM layer shapes.
//
// Large GEMMs run at the card's power limit and their clocks swing by ~±8 %
// between runs, so candidates are interleaved round by round: each round
// times every candidate once (CUDA-graph replays, median per call over
// `reps`), and the figure is the median of the rounds. Eager times are taken
// once per candidate. Output: a table on stdout and a CSV (argv[1], default
// bench_matmul.csv) with one row per candidate, mode and shape.
//
//   bench_matmul_cuda [out.csv] [--quick]
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <functional>
#include <string>
#include <vector>

#include "kernels/cuda/cublaslt_gemm.cuh"
#include "kernels/cuda/fp8_quantize.cuh"
#include "kernels/cuda/llm_int8.cuh"
#include "kernels/cuda/timing.cuh"

using namespace lowbit::cuda;

namespace {

struct Candidate {
  std::string name;
  double bytes, flops;
  LaunchFn launch;
  std::vector<double> round_medians;
  Timing eager;
};

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? NAN : (v.size() % 2 ? v[v.size() / 2] : 0.5 * (v[v.size() / 2 - 1] + v[v.size() / 2]));
}

// A candidate that fails (e.g. no cuBLASLt algorithm for a shape) is
// reported and dropped; the others go on.
void run_interleaved(std::vector<Candidate>& cs, int rounds, TimingConfig cfg, cudaStream_t st) {
  std::vector<Candidate> ok;
  for (auto& c : cs) {
    try {
      c.launch(st, 0);
      check(cudaStreamSynchronize(st), c.name.c_str());
      c.eager = time_eager(c.launch, cfg, st);
      ok.push_back(std::move(c));
    } catch (const std::exception& e) {
      cudaGetLastError();
      std::printf("%-22s failed: %s\n", c.name.c_str(), e.what());
    }
  }
  cs = std::move(ok);
  for (int r = 0; r < rounds; ++r)
    for (auto& c : cs) c.round_medians.push_back(time_graph(c.launch, cfg, st).median_us);
}

}  // namespace

int main(int argc, char** argv) {
  const std::string csv_path = argc > 1 && argv[1][0] != '-' ? argv[1] : "bench_matmul.csv";
  bool quick = false;
  for (int i = 1; i < argc; ++i) quick = quick || std::string(argv[i]) == "--quick";
  const DeviceInfo dev = device_info();
  if (!dev.present) {
    std::fprintf(stderr, "bench_matmul_cuda: no CUDA device; nothing measured\n");
    return 77;
  }
  cudaStream_t st;
  check(cudaStreamCreate(&st), "stream");
  FILE* csv = std::fopen(csv_path.c_str(), "w");
  if (!csv) {
    std::fprintf(stderr, "bench_matmul_cuda: cannot write %s\n", csv_path.c_str());
    return 2;
  }
  std::fprintf(csv, "gpu,op,m,k,n,mode,median_us,tops,gbps\n");
  double copy_gbps = 0;
  time_copy(std::size_t{1} << 30, TimingConfig{}, st, &copy_gbps);
  std::printf("%s: copy %.0f GB/s\n", dev.name.c_str(), copy_gbps);

  LtGemm gemm;
  const int K = 8192, N = 8192;
  const std::vector<int> ms = quick ? std::vector<int>{16, 2048} : std::vector<int>{16, 128, 2048, 8192};
  const int max_m = ms.back();
  DeviceBuffer x(std::size_t{2} * max_m * K, "x"), w(std::size_t{2} * N * K, "w"), y(std::size_t{2} * max_m * N, "y");
  DeviceBuffer xo(std::size_t{2} * max_m * K, "x with outliers");
  DeviceBuffer q8x(std::size_t{1} * max_m * K, "int8 x"), q8w(std::size_t{1} * N * K, "int8 w");
  DeviceBuffer c32(std::size_t{4} * max_m * N, "int32 y"), f8x(std::size_t{1} * max_m * K, "e4m3 x"),
      f8w(std::size_t{1} * N * K, "e4m3 w"), scal(64 * 16, "scales");
  fill_random_normal(x.get(), std::size_t{1} * max_m * K, 2, 1.0f, 1, st);
  fill_random_normal(w.get(), std::size_t{1} * N * K, 2, 0.05f, 2, st);
  fill_random_bytes(q8x.get(), q8x.bytes(), 3, st);
  fill_random_bytes(q8w.get(), q8w.bytes(), 4, st);
  check(cudaMemcpyAsync(xo.get(), x.get(), x.bytes(), cudaMemcpyDeviceToDevice, st), "copy");
  plant_outlier_columns(Act::bf16, xo.get(), max_m, K, 1000, 20.0f, st);  // 0.1 % of the columns (8 of 8192)
  // Each scalar in its own 64-byte slot (cuBLASLt's scale pointers).
  float* base = scal.as<float>();
  float* s[9];
  for (int i = 0; i < 9; ++i) s[i] = base + 16 * i;
  quantize_e4m3_current(Act::bf16, x.get(), std::size_t{1} * max_m * K, f8x.as<std::uint8_t>(), s[0], s[1], st);
  quantize_e4m3_current(Act::bf16, w.get(), std::size_t{1} * N * K, f8w.as<std::uint8_t>(), s[2], s[3], st);
  Int8Weight qw = quantize_weight(Act::bf16, w.get(), N, K, st);
  LlmInt8Layer llm(gemm, qw, Act::bf16, max_m, 6.0f, w.get()), vec(gemm, qw, Act::bf16, max_m, INFINITY);
  check(cudaStreamSynchronize(st), "setup");

  std::printf("%-22s %6s %6s %6s | %10s %10s | %9s\n", "op", "M", "K", "N", "graph us", "eager us", "TOP/s");
  for (int m : ms) {
    // run_interleaved's first call of each candidate tunes its cuBLASLt plan, outside any capture.
    const double flops = 2.0 * m * N * K;
    std::vector<Candidate> cs = {
        {"cublaslt bf16", 0, flops, [&](void* t, int) { gemm.run(GemmKind::bf16_bf16_bf16, m, N, K, x.get(), w.get(), y.get(), (cudaStream_t)t); }, {}, {}},
        {"int8 gemm (tuned)", 0, flops, [&](void* t, int) { gemm.run(GemmKind::int8_int32, m, N, K, q8x.get(), q8w.get(), c32.get(), (cudaStream_t)t); }, {}, {}},
        {"int8 vector-wise layer", 0, flops, [&](void* t, int) { vec.forward(x.get(), y.get(), m, (cudaStream_t)t); }, {}, {}},
        {"LLM.int8 layer 0.1%", 0, flops, [&](void* t, int) { llm.forward(xo.get(), y.get(), m, (cudaStream_t)t); }, {}, {}},
        {"fp8 e4m3 gemm", 0, flops, [&](void* t, int) { gemm.run(GemmKind::e4m3_e4m3_bf16, m, N, K, f8x.get(), f8w.get(), y.get(), (cudaStream_t)t, s[1], s[3]); }, {}, {}},
        {"fp8 layer (quant+gemm)", 0, flops, [&](void* t, int) {
           quantize_e4m3_current(Act::bf16, x.get(), std::size_t{1} * m * K, f8x.as<std::uint8_t>(), s[4], s[1], (cudaStream_t)t);
           gemm.run(GemmKind::e4m3_e4m3_bf16, m, N, K, f8x.get(), f8w.get(), y.get(), (cudaStream_t)t, s[1], s[3]); }, {}, {}},
    };
    const TimingConfig cfg{.warmup = 3, .reps = quick ? 10 : 20, .calls = m >= 2048 ? 2 : 10};
    run_interleaved(cs, quick ? 3 : 5, cfg, st);
    for (auto& c : cs) {
      const double g = median(c.round_medians);
      std::printf("%-22s %6d %6d %6d | %10.1f %10.1f | %9.0f\n", c.name.c_str(), m, K, N, g, c.eager.median_us,
                  c.flops / g * 1e-6);
      std::fprintf(csv, "%s,%s,%d,%d,%d,graph,%.3f,%.1f,\n", dev.name.c_str(), c.name.c_str(), m, K, N, g, c.flops / g * 1e-6);
      std::fprintf(csv, "%s,%s,%d,%d,%d,eager,%.3f,%.1f,\n", dev.name.c_str(), c.name.c_str(), m, K, N, c.eager.median_us,
                   c.flops / c.eager.median_us * 1e-6);
    }
    const auto [chosen, returned] = gemm.chosen(GemmKind::int8_int32, m, N, K);
    std::printf("  (int8 plan: candidate %d of %d heuristic results)\n", chosen, returned);
  }

  // Quantize-with-amax bandwidth: 2^28 bf16 elements → e4m3 (2 B read + 1 B written per element).
  const std::size_t n = std::size_t{1} << 28;
  DeviceBuffer big(2 * n, "bf16 tensor"), big8(n, "e4m3 tensor");
  fill_random_normal(big.get(), n, 2, 1.0f, 9, st);
  std::vector<Candidate> qs = {
      {"quantize e4m3 delayed", 3.0 * n, 0, [&](void* t, int) { quantize_e4m3_delayed(Act::bf16, big.get(), n, big8.as<std::uint8_t>(), s[2], s[5], s[6], (cudaStream_t)t); }, {}, {}},
      {"quantize e4m3 current", 3.0 * n, 0, [&](void* t, int) { quantize_e4m3_current(Act::bf16, big.get(), n, big8.as<std::uint8_t>(), s[7], s[8], (cudaStream_t)t); }, {}, {}},
  };
  run_interleaved(qs, 3, TimingConfig{.warmup = 3, .reps = 20, .calls = 5}, st);
  for (auto& c : qs) {
    const double g = median(c.round_medians);
    const double gbps = c.bytes / g * 1e-3;
    std::printf("%-22s n=2^28            | %10.1f %10.1f | %7.0f GB/s = %.1f %% of copy\n", c.name.c_str(), g,
                c.eager.median_us, gbps, 100.0 * gbps / copy_gbps);
    std::fprintf(csv, "%s,%s,%zu,0,0,graph,%.3f,,%.1f\n", dev.name.c_str(), c.name.c_str(), n, g, gbps);
  }
  std::fprintf(csv, "%s,copy,0,0,0,eager,,,%.1f\n", dev.name.c_str(), copy_gbps);
  std::fclose(csv);
  free_weight(qw);
  return 0;
}
