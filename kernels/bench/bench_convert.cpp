// Scalar encode/decode throughput (elements per second), fp32 → e4m3fn /
// e5m2 / e2m1fn and back, with the spec bound at compile time (kernels) and
// at run time (registry/CLI). One thread; the SIMD versions come later.
#include <benchmark/benchmark.h>

#include <cstdint>
#include <random>
#include <vector>

#include "lowbit/formats/minifloats.hpp"

namespace {
using namespace lowbit;

std::vector<float> normal_data(std::size_t n) {
  std::mt19937 rng(7);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  std::vector<float> v(n);
  for (auto& x : v) x = dist(rng) * 8.0f;  // spread across the FP8 binades
  return v;
}

constexpr std::size_t kN = 1 << 16;

template <FormatSpec S>
void encode_compile_time(benchmark::State& state) {
  const auto in = normal_data(kN);
  std::vector<std::uint8_t> out(kN);
  for (auto _ : state) {
    for (std::size_t i = 0; i < kN; ++i) out[i] = static_cast<std::uint8_t>(encode<S>(in[i]));
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * kN));
}

void encode_run_time(benchmark::State& state, FormatSpec spec) {
  const auto in = normal_data(kN);
  std::vector<std::uint8_t> out(kN);
  for (auto _ : state) {
    for (std::size_t i = 0; i < kN; ++i) out[i] = static_cast<std::uint8_t>(encode(spec, in[i]));
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * kN));
}

template <FormatSpec S>
void decode_compile_time(benchmark::State& state) {
  const auto in = normal_data(kN);
  std::vector<std::uint8_t> codes(kN);
  for (std::size_t i = 0; i < kN; ++i) codes[i] = static_cast<std::uint8_t>(encode<S>(in[i]));
  std::vector<float> out(kN);
  for (auto _ : state) {
    for (std::size_t i = 0; i < kN; ++i) out[i] = decode<S, float>(codes[i]);
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * kN));
}

BENCHMARK(encode_compile_time<e4m3fn>)->Name("encode/fp32->e4m3fn/compile-time");
BENCHMARK(encode_compile_time<e5m2>)->Name("encode/fp32->e5m2/compile-time");
BENCHMARK(encode_compile_time<e2m1fn>)->Name("encode/fp32->e2m1fn/compile-time");
BENCHMARK_CAPTURE(encode_run_time, e4m3fn, e4m3fn)->Name("encode/fp32->e4m3fn/run-time");
BENCHMARK_CAPTURE(encode_run_time, e5m2, e5m2)->Name("encode/fp32->e5m2/run-time");
BENCHMARK_CAPTURE(encode_run_time, e2m1fn, e2m1fn)->Name("encode/fp32->e2m1fn/run-time");
BENCHMARK(decode_compile_time<e4m3fn>)->Name("decode/e4m3fn->fp32/compile-time");
BENCHMARK(decode_compile_time<e5m2>)->Name("decode/e5m2->fp32/compile-time");
BENCHMARK(decode_compile_time<e2m1fn>)->Name("decode/e2m1fn->fp32/compile-time");

}  // namespace

BENCHMARK_MAIN();
