// GPU quantize / dequantize for every registry quantizer (kernels/cuda/
// scaled_quantize.cuh) == the CPU reference (Quantizer::quantize /
// dequantize) byte for byte: codes, scales, scale codes, zero points, the
// e4m3fn tensor scale, dq codes / absmax / offset; dequantized output equal
// to the CPU's fp32 value (rounded once to fp16 / bf16), NaN == NaN.
// Every element family × granularity × scale format × edge mode, fp32 / fp16
// / bf16 input and output, data with a zero group, NaN, ±inf, a
// subnormal-only group, a huge group, partial final blocks, odd lengths.
// Runs on the GPU machine; the GPU tests skip without a GPU (the name and
// layout checks run anywhere).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#ifndef LOWBIT_HAVE_CUDA
TEST(CudaScaled, Skipped) { GTEST_SKIP() << "built without CUDA: GPU tests skipped"; }
#else
#include <cuda_runtime.h>
#include <unistd.h>

#include "kernels/cuda/scaled_quantize.cuh"
#include "support/cuda_test_util.hpp"
#include "lowbit/formats/minifloats.hpp"
#include "lowbit/formats/registry.hpp"

namespace {
using namespace lowbit;
using cuda::DType;

using test::Dev;
using test::have_gpu;

// A 5-value user table (3-bit codes, not normalised) in a temporary file.
std::string user_table_path() {
  static const std::string path = [] {
    const auto p = std::filesystem::temp_directory_path() / ("lowbit_cuda_scaled_table_" + std::to_string(::getpid()) + ".txt");
    std::ofstream(p) << "# test table\n-3.0, -1.0, 0.0, 0.5, 2.5\n";
    return p.string();
  }();
  return path;
}

struct Case {
  std::string name;
  std::size_t rows, cols;
};

// Every family × granularity × scale format the registry has.
std::vector<Case> cases() {
  const std::string tab = "table:" + user_table_path();
  return {
      // minifloats: unscaled, tensor / row / col / block, every scale format
      {"e4m3fn", 37, 129},          {"e5m2", 37, 129},          {"e2m1fn@32", 41, 1001},
      {"mxfp4", 64, 1024 + 7},      {"mxfp6", 33, 999},         {"mxfp8", 64, 1024 + 3},
      {"nvfp4", 50, 1000 + 3},      {"e3m2fn@row:bf16", 40, 517}, {"e5m2@32:e8m0", 17, 4099},
      {"e4m3fn@tensor", 29, 311},   {"e4m3fnuz@64:fp16", 21, 3003}, {"e2m3fn@col", 300, 45},
      {"e5m2fnuz@col:e8m0", 123, 19}, {"fp16@row", 19, 333},    {"e3m4@100:bf16", 11, 7777},
      // codebooks: nf4 (plain, +dq, ~bnb, both), nfK, fp4-bnb, dyn8, user tables
      {"nf4@64", 64, 3000 + 5},     {"nf4@64+dq", 100, 3001},   {"nf4@64~bnb", 32, 2049},
      {"nf4@64+dq~bnb", 100, 3001}, {"nf3@128", 40, 1283},      {"nf2@32:fp16", 33, 1001},
      {"nf8@256", 16, 4099},        {"fp4-bnb@64", 32, 2047},   {"fp4-bnb@256+dq", 256, 1027},
      {"dyn8@4096", 9, 16397}, {"dyn8@256~bnb", 40, 2061}, {"nf4@row", 64, 515},
      {"nf4@col:bf16", 257, 63},    {"nf4", 31, 333},           {"nf5@100:e8m0", 13, 9001},
      {"nf4@16:e4m3fn", 64, 1001},  {"nf6@4096+dq", 64, 4096 + 1}, {tab + "@64", 31, 1111},
      {tab + "@32+dq", 41, 2222},   {tab + "@row:fp16", 20, 301},
      // integers: symmetric and zero-point
      {"int8@row", 64, 1001},       {"int8@col", 300, 77},      {"int8@tensor", 33, 999},
      {"int4@32", 64, 1001},        {"int4-zp@64", 64, 1001},   {"int3-zp@128", 40, 1283},
      {"int2@64:e8m0", 32, 1025},   {"int8-zp@row:bf16", 40, 300}, {"int5-zp@col", 257, 31},
      {"int4@64+dq", 100, 3001},    {"int6@16:e4m3fn", 40, 1001}, {"int7-zp@tensor", 17, 171},
      {"int8-zp@64+dq~bnb", 1, 1}};  // last: rejected (~bnb is codebook-only) — filtered below
}

// Random normal data with the edge cases placed per group: a zero group, NaN,
// ±inf, a subnormal-only group, a huge group (block: blocks 2, 4, 5; row: rows;
// col: columns; tensor / none: scattered values only).
std::vector<float> test_data(const Quantizer& q, std::size_t rows, std::size_t cols, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  const std::size_t n = rows * cols;
  std::vector<float> x(n);
  for (auto& v : x) v = nd(rng);
  auto each_of_group = [&](std::size_t g, auto&& f) {
    switch (q.granularity()) {
      case Granularity::block:
        for (std::size_t i = g * q.block_size(); i < std::min(n, (g + 1) * q.block_size()); ++i) f(x[i]);
        break;
      case Granularity::row:
        for (std::size_t c = 0; c < cols; ++c) f(x[g * cols + c]);
        break;
      case Granularity::col:
        for (std::size_t r = 0; r < rows; ++r) f(x[r * cols + g]);
        break;
      default: break;
    }
  };
  const std::size_t groups = q.group_count(rows, cols);
  if (groups >= 8) {
    each_of_group(2, [](float& v) { v = 0.0f; });
    each_of_group(4, [](float& v) { v *= 1e-40f; });
    each_of_group(5, [](float& v) { v *= 1e30f; });
  } else {  // tensor / none: a few subnormals and huge values
    for (std::size_t i = 10; i < std::min(n, std::size_t{20}); ++i) x[i] *= 1e-40f;
    if (n > 40) x[40] = 3e37f;
  }
  if (n > 64) {
    x[n / 3] = NAN;
    x[n / 2 + 1] = INFINITY;
    x[n / 2 + 7] = -INFINITY;
    x[2 * n / 3 + 5] = -NAN;
    x[n - 1] = -0.0f;
  }
  return x;
}

// The CPU float rounded once to a 16-bit type (as __float2bfloat16_rn / __float2half_rn).
std::uint16_t to16(float v, DType t) {
  ConvertOptions o{};
  o.overflow = Overflow::special;
  o.inf_under_saturation = InfUnderSaturation::keep_inf;
  return static_cast<std::uint16_t>(encode(t == DType::bf16 ? bf16 : fp16, v, o));
}
bool is_nan16(std::uint16_t b, DType t) {
  return t == DType::bf16 ? ((b & 0x7F80) == 0x7F80 && (b & 0x7F)) : ((b & 0x7C00) == 0x7C00 && (b & 0x3FF));
}

bool same_float(float a, float b) {
  return (a != a && b != b) || bit_cast<std::uint32_t>(a) == bit_cast<std::uint32_t>(b);
}
::testing::AssertionResult same_floats(const std::vector<float>& cpu, const std::vector<float>& gpu, const char* what) {
  if (cpu.size() != gpu.size()) return ::testing::AssertionFailure() << what << ": sizes " << cpu.size() << " vs " << gpu.size();
  for (std::size_t i = 0; i < cpu.size(); ++i)
    if (!same_float(cpu[i], gpu[i]))
      return ::testing::AssertionFailure() << what << "[" << i << "]: cpu " << cpu[i] << " (" << std::hexfloat << cpu[i]
                                           << ") gpu " << gpu[i] << std::defaultfloat;
  return ::testing::AssertionSuccess();
}
template <class T>
::testing::AssertionResult same_bytes(const std::vector<T>& cpu, const std::vector<T>& gpu, const char* what) {
  if (cpu.size() != gpu.size()) return ::testing::AssertionFailure() << what << ": sizes " << cpu.size() << " vs " << gpu.size();
  for (std::size_t i = 0; i < cpu.size(); ++i)
    if (std::memcmp(&cpu[i], &gpu[i], sizeof(T)) != 0)
      return ::testing::AssertionFailure() << what << "[" << i << "] of " << cpu.size() << ": cpu "
                                           << static_cast<std::uint64_t>(cpu[i]) << " gpu " << static_cast<std::uint64_t>(gpu[i]);
  return ::testing::AssertionSuccess();
}

// Compare a GPU output of type t against the CPU fp32 values; NaN == NaN.
::testing::AssertionResult same_output(const std::vector<float>& cpu, const std::vector<std::uint8_t>& gpu, DType t) {
  std::size_t bad = 0, first = 0;
  for (std::size_t i = 0; i < cpu.size(); ++i) {
    bool ok;
    if (t == DType::f32) {
      float g;
      std::memcpy(&g, gpu.data() + 4 * i, 4);
      ok = same_float(cpu[i], g);
    } else {
      std::uint16_t g;
      std::memcpy(&g, gpu.data() + 2 * i, 2);
      const std::uint16_t c = to16(cpu[i], t);
      ok = is_nan16(c, t) ? is_nan16(g, t) : g == c;
    }
    if (!ok && bad++ == 0) first = i;
  }
  if (bad == 0) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << bad << " of " << cpu.size() << " differ, first at " << first << " (cpu "
                                       << cpu[first] << ")";
}

// GPU arrays sized like the CPU's QuantizedTensor.
struct DevQuantized {
  Dev<std::uint8_t> codes;
  Dev<float> scales;
  Dev<std::uint32_t> scale_codes;
  Dev<std::uint8_t> zero_points;
  Dev<float> tensor_s;
  Dev<std::uint8_t> dq_codes;
  Dev<float> dq_absmax;
  Dev<float> dq_offset;
  explicit DevQuantized(const cuda::ScaledLayout& l)
      : codes(l.code_bytes), scales(l.groups), scale_codes(l.groups), zero_points(l.zero_points ? l.groups : 0),
        tensor_s(1), dq_codes(l.dq ? l.groups : 0), dq_absmax(l.dq_blocks), dq_offset(l.dq ? 1 : 0) {}
  cuda::DeviceQuantized view() const {
    return {codes.p, scales.p, scale_codes.p, zero_points.p, tensor_s.p, dq_codes.p, dq_absmax.p, dq_offset.p};
  }
};

// One quantizer, one input type: quantize on both sides, compare every array,
// then dequantize into each output type.
void check_case(const Quantizer& q, std::size_t rows, std::size_t cols, DType in_t, std::uint64_t seed) {
  const std::size_t n = rows * cols;
  auto x = test_data(q, rows, cols, seed);
  std::vector<std::uint8_t> xin(n * cuda::dtype_bytes(in_t));
  for (std::size_t i = 0; i < n; ++i) {
    if (in_t == DType::f32) {
      std::memcpy(xin.data() + 4 * i, &x[i], 4);
    } else {  // the CPU quantizes exactly the values the GPU reads
      const std::uint16_t b = to16(x[i], in_t);
      std::memcpy(xin.data() + 2 * i, &b, 2);
      x[i] = decode<float>(in_t == DType::bf16 ? bf16 : fp16, b);
    }
  }
  const QuantizedTensor t = q.quantize(x.data(), rows, cols);
  std::vector<float> ref(n);
  q.dequantize(t, ref.data());

  const cuda::ScaledDesc d = cuda::make_scaled_desc(q);
  const cuda::ScaledLayout l = cuda::scaled_layout(d, rows, cols);
  ASSERT_EQ(l.code_bytes, t.codes.size());
  ASSERT_EQ(l.groups, t.scales.size());
  ASSERT_EQ(l.zero_points ? l.groups : 0, t.zero_points.size());
  ASSERT_EQ(l.dq ? l.groups : 0, t.dq_codes.size());
  ASSERT_EQ(l.dq_blocks, t.dq_absmax.size());

  Dev<std::uint8_t> dx(xin.size());
  dx.up(xin.data());
  DevQuantized g(l);
  CUDA_OK(cuda::quantize_scaled(d, dx.p, in_t, rows, cols, g.view()));
  CUDA_OK(cudaDeviceSynchronize());
  EXPECT_TRUE(same_bytes(t.codes, g.codes.down(), "codes"));
  EXPECT_TRUE(same_floats(t.scales, g.scales.down(), "scales"));
  EXPECT_TRUE(same_bytes(t.scale_codes, g.scale_codes.down(), "scale_codes"));
  EXPECT_TRUE(same_bytes(t.zero_points, g.zero_points.down(), "zero_points"));
  EXPECT_TRUE(same_floats({t.tensor_encode_scale}, g.tensor_s.down(), "tensor_encode_scale"));
  EXPECT_TRUE(same_bytes(t.dq_codes, g.dq_codes.down(), "dq_codes"));
  EXPECT_TRUE(same_floats(t.dq_absmax, g.dq_absmax.down(), "dq_absmax"));
  if (l.dq) {
    EXPECT_TRUE(same_floats({t.dq_offset}, g.dq_offset.down(), "dq_offset"));
  }

  for (DType out_t : {DType::f32, DType::f16, DType::bf16}) {
    SCOPED_TRACE(std::string("out ") + cuda::dtype_name(out_t));
    Dev<std::uint8_t> out(n * cuda::dtype_bytes(out_t));
    CUDA_OK(cuda::dequantize_scaled(d, {g.codes.p, g.scales.p, g.zero_points.p}, rows, cols, out.p, out_t));
    CUDA_OK(cudaDeviceSynchronize());
    EXPECT_TRUE(same_output(ref, out.down(), out_t));
  }
}

}  // namespace

// Host-only: every name of the list parses (except the one meant to be
// rejected), and the layout helper agrees with the CPU's QuantizedTensor.
TEST(CudaScaled, NamesParseAndLayoutsMatchCpu) {
  std::size_t parsed = 0;
  for (const Case& c : cases()) {
    SCOPED_TRACE(c.name);
    if (c.name == "int8-zp@64+dq~bnb") {
      EXPECT_THROW(parse_quantizer(c.name), FormatError);
      continue;
    }
    const Quantizer q = parse_quantizer(c.name);
    ++parsed;
    const auto x = test_data(q, c.rows, c.cols, 3);
    const QuantizedTensor t = q.quantize(x.data(), c.rows, c.cols);
    const cuda::ScaledLayout l = cuda::scaled_layout(cuda::make_scaled_desc(q), c.rows, c.cols);
    EXPECT_EQ(l.code_bytes, t.codes.size());
    EXPECT_EQ(l.groups, t.scales.size());
    EXPECT_EQ(l.zero_points ? l.groups : 0, t.zero_points.size());
    EXPECT_EQ(l.dq_blocks, t.dq_absmax.size());
  }
  EXPECT_GE(parsed, 45u);
}

TEST(CudaScaled, QuantizeDequantizeEqualCpuForEveryQuantizer) {
  if (!have_gpu()) GTEST_SKIP() << "no CUDA device: GPU tests skipped";
  std::uint64_t seed = 1;
  for (const Case& c : cases()) {
    if (c.name == "int8-zp@64+dq~bnb") continue;
    const Quantizer q = parse_quantizer(c.name);
    for (DType in_t : {DType::f32, DType::f16, DType::bf16}) {
      SCOPED_TRACE(c.name + " " + std::to_string(c.rows) + "x" + std::to_string(c.cols) + " in " + cuda::dtype_name(in_t));
      check_case(q, c.rows, c.cols, in_t, ++seed);
    }
  }
}

// Odd and tiny shapes: a single element, an odd 4-bit count (pad nibble),
// fewer elements than one block, one row, one column, a subnormal-only tensor.
TEST(CudaScaled, TinyAndOddShapes) {
  if (!have_gpu()) GTEST_SKIP() << "no CUDA device: GPU tests skipped";
  const Case shapes[] = {{"nf4@64", 1, 1},      {"nf4@64", 1, 7},        {"int4-zp@64", 3, 5},  {"nf3@128", 1, 13},
                         {"mxfp4", 1, 33},      {"nvfp4", 1, 17},        {"int8@row", 1, 9},    {"int8@col", 9, 1},
                         {"nf4@64+dq", 1, 65},  {"e2m1fn@32", 1, 3},     {"nf4@tensor", 5, 3},  {"int3-zp@col", 2, 3},
                         {"nf4@64+dq", 1, 64 * 1030 + 1}};  // > 1024 groups: the chunked dq mean
  std::uint64_t seed = 100;
  for (const Case& c : shapes) {
    const Quantizer q = parse_quantizer(c.name);
    SCOPED_TRACE(c.name + " " + std::to_string(c.rows) + "x" + std::to_string(c.cols));
    check_case(q, c.rows, c.cols, DType::f32, ++seed);
  }
  // A subnormal-only tensor and block groups (scales may be subnormal: x / s path).
  for (const char* name : {"nf4@tensor", "int8@tensor", "nvfp4", "nf4@64+dq", "int4-zp@32"}) {
    SCOPED_TRACE(std::string(name) + " subnormal-only");
    const Quantizer q = parse_quantizer(name);
    const std::size_t n = 1000;
    std::vector<float> x = test_data(q, 1, n, 9);
    for (auto& v : x) v = std::isfinite(v) ? v * 1e-41f : v;
    const QuantizedTensor t = q.quantize(x.data(), 1, n);
    const cuda::ScaledDesc d = cuda::make_scaled_desc(q);
    DevQuantized g(cuda::scaled_layout(d, 1, n));
    Dev<float> dx(n);
    dx.up(x.data());
    CUDA_OK(cuda::quantize_scaled(d, dx.p, DType::f32, 1, n, g.view()));
    CUDA_OK(cudaDeviceSynchronize());
    EXPECT_TRUE(same_bytes(t.codes, g.codes.down(), "codes"));
    EXPECT_TRUE(same_floats(t.scales, g.scales.down(), "scales"));
  }
}

// No host synchronisation inside: quantize + dequantize capture into a CUDA
// graph on a non-default stream and replay to the same bytes.
TEST(CudaScaled, CapturesInCudaGraph) {
  if (!have_gpu()) GTEST_SKIP() << "no CUDA device: GPU tests skipped";
  for (const char* name : {"nf4@64+dq", "nvfp4", "int4-zp@col"}) {
    SCOPED_TRACE(name);
    const Quantizer q = parse_quantizer(name);
    const std::size_t rows = 64, cols = 1000, n = rows * cols;
    const auto x = test_data(q, rows, cols, 5);
    const QuantizedTensor t = q.quantize(x.data(), rows, cols);
    std::vector<float> ref(n);
    q.dequantize(t, ref.data());
    const cuda::ScaledDesc d = cuda::make_scaled_desc(q);
    DevQuantized g(cuda::scaled_layout(d, rows, cols));
    Dev<float> dx(n);
    Dev<std::uint8_t> out(n * 2);
    dx.up(x.data());
    cudaStream_t s;
    CUDA_OK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
    cudaGraph_t graph;
    cudaGraphExec_t exec;
    CUDA_OK(cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal));
    const int rq = cuda::quantize_scaled(d, dx.p, DType::f32, rows, cols, g.view(), s);
    const int rd = cuda::dequantize_scaled(d, {g.codes.p, g.scales.p, g.zero_points.p}, rows, cols, out.p, DType::bf16, s);
    CUDA_OK(cudaStreamEndCapture(s, &graph));
    CUDA_OK(rq);
    CUDA_OK(rd);
    CUDA_OK(cudaGraphInstantiate(&exec, graph, 0));
    for (int rep = 0; rep < 2; ++rep) CUDA_OK(cudaGraphLaunch(exec, s));
    CUDA_OK(cudaStreamSynchronize(s));
    EXPECT_TRUE(same_bytes(t.codes, g.codes.down(), "codes"));
    EXPECT_TRUE(same_floats(t.scales, g.scales.down(), "scales"));
    EXPECT_TRUE(same_output(ref, out.down(), DType::bf16));
    cudaGraphExecDestroy(exec);
    cudaGraphDestroy(graph);
    cudaStreamDestroy(s);
  }
}

#endif  // LOWBIT_HAVE_CUDA
