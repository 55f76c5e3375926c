// GPU blockwise quantize / dequantize == the CPU reference (Quantizer::quantize
// / dequantize, kernels/cpu/quantize.cpp) bit for bit, and the fused 4-bit
// GEMV/GEMM against an fp64 reference of the CPU-dequantized weight within a
// stated tolerance. Random data with zero blocks, NaN, ±inf, subnormal and
// huge blocks, partial final blocks and odd lengths. Runs on the GPU machine;
// skips without a GPU.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <algorithm>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#ifndef LOWBIT_HAVE_CUDA
TEST(CudaBlockwise, Skipped) { GTEST_SKIP() << "built without CUDA: GPU tests skipped"; }
#else
#include <cuda_runtime.h>

#include "kernels/cuda/blockwise.cuh"
#include "kernels/cuda/gemm4.cuh"
#include "support/cuda_test_util.hpp"
#include "lowbit/formats/minifloats.hpp"
#include "lowbit/formats/registry.hpp"

namespace {
using namespace lowbit;
using cuda::DType;

using test::Dev;
using test::have_gpu;

// Random normal data with the edge cases of issue 8: a zero block, NaN, ±inf,
// a subnormal-only block, a huge block; `block` places them.
std::vector<float> test_data(std::size_t n, std::size_t block, std::uint64_t seed, bool specials = true) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  std::vector<float> x(n);
  for (auto& v : x) v = nd(rng);
  if (!specials || n < 8 * block) return x;
  for (std::size_t i = 2 * block; i < 3 * block; ++i) x[i] = 0.0f;                // zero block
  for (std::size_t i = 4 * block; i < 5 * block; ++i) x[i] *= 1e-40f;             // subnormal block
  for (std::size_t i = 5 * block; i < 6 * block; ++i) x[i] *= 1e30f;              // huge block
  x[block + 3] = NAN;
  x[6 * block + 1] = INFINITY;
  x[7 * block + 2] = -INFINITY;
  x[7 * block + 5] = -NAN;
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

// Compare a GPU output of type t against the CPU fp32 values; NaN == NaN.
::testing::AssertionResult same_output(const std::vector<float>& cpu, const void* gpu_host, DType t) {
  std::size_t bad = 0, first = 0;
  for (std::size_t i = 0; i < cpu.size(); ++i) {
    bool ok;
    if (t == DType::f32) {
      float g;
      std::memcpy(&g, static_cast<const float*>(gpu_host) + i, 4);
      ok = (cpu[i] != cpu[i]) ? (g != g) : (bit_cast<std::uint32_t>(g) == bit_cast<std::uint32_t>(cpu[i]));
    } else {
      const std::uint16_t g = static_cast<const std::uint16_t*>(gpu_host)[i], c = to16(cpu[i], t);
      ok = is_nan16(c, t) ? is_nan16(g, t) : g == c;
    }
    if (!ok && bad++ == 0) first = i;
  }
  if (bad == 0) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << bad << " of " << cpu.size() << " differ, first at " << first
                                       << " (cpu " << cpu[first] << ")";
}

cuda::Table16 table_of(const Quantizer& q) {
  const ElementFormat& e = q.element();
  if (e.kind == ElementKind::codebook) return cuda::make_table16(e.codebook);
  // A 4-bit minifloat or int4: its decode table.
  cuda::Table16 t{};
  for (std::uint32_t c = 0; c < 16; ++c) t.value[c] = decode_element(e, c);
  t.max_magnitude = e.max_value();
  return t;
}

struct Case {
  const char* name;
  std::size_t n;
};

// LOWBIT_TEST_SMALL=1 (the compute-sanitizer runs): sizes / 16, odd sizes kept odd.
std::size_t sized(std::size_t n) {
  if (!std::getenv("LOWBIT_TEST_SMALL")) return n;
  return std::max<std::size_t>(n / 16, 2048) | (n & 1);
}

// ------------------------------------------------------------------ dequantize

TEST(CudaBlockwise, Dequantize4bitEqualsCpu) {
  if (!have_gpu()) GTEST_SKIP() << "no CUDA device: GPU tests skipped";
  const Case cases[] = {{"nf4@64", 1 << 20},      {"nf4@64", 100003},       {"fp4-bnb@64", 1 << 18},
                        {"nf4@4096", (1 << 20) + 77}, {"nf4@32", 65536 + 9}, {"nf4@128", 40000},
                        {"nf4@64+dq", (1 << 20) + 64 * 300 + 5}, {"fp4-bnb@256+dq", 1 << 19},
                        {"nf4@64~bnb", 1 << 16},  {"nf4@64+dq~bnb", 1 << 18}, {"nf4@100", 30001},       {"int4@64", 1 << 16},
                        {"e2m1fn@64", 1 << 16},   {"nf4@6", 999}};
  for (Case c : cases) {
    c.n = sized(c.n);
    SCOPED_TRACE(c.name + std::string(" n=") + std::to_string(c.n));
    const Quantizer q = parse_quantizer(c.name);
    const std::size_t B = q.block_size();
    const auto x = test_data(c.n, B, 7 + c.n);
    const QuantizedTensor t = q.quantize(x.data(), 1, c.n);
    std::vector<float> ref(c.n);
    q.dequantize(t, ref.data());

    Dev<std::uint8_t> codes(t.codes.size());
    codes.up(t.codes.data());
    cuda::BlockScales s;
    s.bnb = q.edge_mode() == EdgeMode::bnb;
    Dev<float> absmax(t.scales.size());
    Dev<std::uint8_t> dq_codes(t.dq_codes.size());
    Dev<float> dq_absmax(t.dq_absmax.size());
    if (q.double_quantized()) {
      dq_codes.up(t.dq_codes.data());
      dq_absmax.up(t.dq_absmax.data());
      s.dq_codes = dq_codes.p;
      s.dq_absmax = dq_absmax.p;
      s.dq_offset = t.dq_offset;
    } else {
      absmax.up(t.scales.data());
      s.absmax = absmax.p;
    }
    const cuda::Table16 table = table_of(q);
    for (DType out_t : {DType::f32, DType::bf16, DType::f16}) {
      SCOPED_TRACE(cuda::dtype_name(out_t));
      Dev<std::uint8_t> out(c.n * cuda::dtype_bytes(out_t));
      out.poison();
      CUDA_OK(cuda::dequantize_4bit(table, codes.p, s, c.n, B, out.p, out_t));
      CUDA_OK(cudaDeviceSynchronize());
      const auto h = out.down();
      EXPECT_TRUE(same_output(ref, h.data(), out_t));
    }
  }
}

// ------------------------------------------------------------------ quantize

// Host only (runs in CI): nf4's grid is small enough for the per-lane copies
// that make its lookups conflict-free (a rounding slip that made it one step
// larger cost 15 % of the quantizer's speed, H200), and fp4-bnb's thresholds
// still get a grid.
TEST(CudaBlockwise, RankGridOfBuiltInTables) {
  const int nf4_cells = cuda::quantize_4bit_grid_cells(cuda::make_table16(parse_quantizer("nf4@64").element().codebook));
  EXPECT_GT(nf4_cells, 0);
  EXPECT_LE(nf4_cells, cuda::quantize_4bit_lane_copies_max_cells());
  EXPECT_GT(cuda::quantize_4bit_grid_cells(cuda::make_table16(parse_quantizer("fp4-bnb@64").element().codebook)), 0);
}

// Blocks 8–11 probe the rank grid of the fast quantizer: each block's first
// element is ±max_magnitude (so y = x exactly when it is 1), the rest sit on
// the codebook's thresholds and up to 3 ulps either side.
void probe_thresholds(std::vector<float>& x, std::size_t B, const Codebook& cb) {
  if (x.size() < 12 * B) return;
  std::size_t p = 0;
  for (std::size_t i = 8 * B; i < 12 * B; ++i) {
    if (i % B == 0) {
      x[i] = (i / B) % 2 ? cb.max_magnitude : -cb.max_magnitude;
      continue;
    }
    const int k = static_cast<int>(p % 15), d = static_cast<int>((p / 15) % 7) - 3;
    ++p;
    float v = cb.threshold[k] < INFINITY ? cb.threshold[k] : 0.0f;
    for (int s = 0; s < (d < 0 ? -d : d); ++s) v = std::nextafter(v, d < 0 ? -INFINITY : INFINITY);
    x[i] = v;
  }
}

TEST(CudaBlockwise, Quantize4bitEqualsCpu) {
  if (!have_gpu()) GTEST_SKIP() << "no CUDA device: GPU tests skipped";
  const Case cases[] = {{"nf4@64", 1 << 20},        {"nf4@64", 100003},       {"nf4@64", (1 << 24) + 4099},       {"fp4-bnb@64", 1 << 18},
                        {"nf4@4096", (1 << 20) + 77}, {"nf4@2048", 1 << 18},   {"nf4@512", 1 << 18},
                        {"nf4@32", 65536 + 9},      {"nf4@8", 4099},          {"nf4@256", 1 << 18},
                        {"nf4@64~bnb", 1 << 18},    {"fp4-bnb@64~bnb", 1 << 18}, {"nf4@4096~bnb", 1 << 20},
                        {"nf4@100", 30001},         {"nf4@6", 999}};
  for (Case c : cases) {
    c.n = sized(c.n);
    SCOPED_TRACE(c.name + std::string(" n=") + std::to_string(c.n));
    const Quantizer q = parse_quantizer(c.name);
    const std::size_t B = q.block_size();
    for (DType in_t : {DType::f32, DType::bf16, DType::f16}) {
      SCOPED_TRACE(cuda::dtype_name(in_t));
      auto x = test_data(c.n, B, 11 + c.n);
      probe_thresholds(x, B, q.element().codebook);
      std::vector<std::uint16_t> x16(c.n);
      if (in_t != DType::f32) {
        for (std::size_t i = 0; i < c.n; ++i) {
          x16[i] = to16(x[i], in_t);
          x[i] = in_t == DType::bf16 ? decode<float>(bf16, x16[i]) : decode<float>(fp16, x16[i]);
        }
      }
      const QuantizedTensor t = q.quantize(x.data(), 1, c.n);
      Dev<std::uint8_t> xd(c.n * cuda::dtype_bytes(in_t));
      if (in_t == DType::f32) cudaMemcpy(xd.p, x.data(), c.n * 4, cudaMemcpyHostToDevice);
      else cudaMemcpy(xd.p, x16.data(), c.n * 2, cudaMemcpyHostToDevice);
      Dev<std::uint8_t> codes(t.codes.size());
      Dev<float> absmax(t.scales.size());
      codes.poison();
      absmax.poison();
      CUDA_OK(cuda::quantize_4bit(cuda::make_table16(q.element().codebook), xd.p, in_t, c.n, B, q.edge_mode(),
                                  codes.p, absmax.p));
      CUDA_OK(cudaDeviceSynchronize());
      const auto hc = codes.down();
      const auto ha = absmax.down();
      std::size_t bad_codes = 0, bad_scales = 0, first = 0;
      for (std::size_t i = 0; i < hc.size(); ++i)
        if (hc[i] != t.codes[i] && bad_codes++ == 0) first = i;
      for (std::size_t i = 0; i < ha.size(); ++i) bad_scales += bit_cast<std::uint32_t>(ha[i]) != t.scale_codes[i];
      EXPECT_EQ(bad_codes, 0u) << "code bytes differ; first byte " << first << " (elements " << 2 * first
                               << ", x = " << x[2 * first] << ", " << (2 * first + 1 < c.n ? x[2 * first + 1] : 0.0f)
                               << ", block " << 2 * first / B << "): gpu " << int(hc[first]) << " cpu "
                               << int(t.codes[first]);
      EXPECT_EQ(bad_scales, 0u) << "scales differ";
    }
  }
}

// ------------------------------------------------------------------ MX 8-bit

TEST(CudaBlockwise, Mx8EqualsCpu) {
  if (!have_gpu()) GTEST_SKIP() << "no CUDA device: GPU tests skipped";
  for (const char* name : {"e4m3fn@32:e8m0", "e5m2@32:e8m0"}) {
    for (std::size_t n0 : {std::size_t{1} << 20, std::size_t{100000 + 17}}) {
      const std::size_t n = sized(n0);
      SCOPED_TRACE(name + std::string(" n=") + std::to_string(n));
      const Quantizer q = parse_quantizer(name);
      const FormatSpec el = q.element().spec;
      for (DType in_t : {DType::f32, DType::bf16, DType::f16}) {
        SCOPED_TRACE(cuda::dtype_name(in_t));
        auto x = test_data(n, 32, 23 + n);
        std::vector<std::uint16_t> x16(n);
        if (in_t != DType::f32)
          for (std::size_t i = 0; i < n; ++i) {
            x16[i] = to16(x[i], in_t);
            x[i] = in_t == DType::bf16 ? decode<float>(bf16, x16[i]) : decode<float>(fp16, x16[i]);
          }
        const QuantizedTensor t = q.quantize(x.data(), 1, n);
        std::vector<float> ref(n);
        q.dequantize(t, ref.data());
        Dev<std::uint8_t> xd(n * cuda::dtype_bytes(in_t));
        if (in_t == DType::f32) cudaMemcpy(xd.p, x.data(), n * 4, cudaMemcpyHostToDevice);
        else cudaMemcpy(xd.p, x16.data(), n * 2, cudaMemcpyHostToDevice);
        Dev<std::uint8_t> codes(n), scales((n + 31) / 32);
        codes.poison();
        scales.poison();
        CUDA_OK(cuda::quantize_mx8(el, xd.p, in_t, n, codes.p, scales.p));
        CUDA_OK(cudaDeviceSynchronize());
        const auto hc = codes.down();
        const auto hs = scales.down();
        std::size_t bad_codes = 0, bad_scales = 0, first = 0;
        for (std::size_t i = 0; i < n; ++i)
          if (hc[i] != t.codes[i] && bad_codes++ == 0) first = i;
        for (std::size_t i = 0; i < hs.size(); ++i) bad_scales += hs[i] != t.scale_codes[i];
        EXPECT_EQ(bad_codes, 0u) << "first at " << first << ": x=" << x[first] << " gpu " << int(hc[first])
                                 << " cpu " << int(t.codes[first]);
        EXPECT_EQ(bad_scales, 0u);
        // Dequantize the CPU's codes and scales.
        Dev<std::uint8_t> cc(n), cs(hs.size());
        cc.up(t.codes.data());
        std::vector<std::uint8_t> sc8(hs.size());
        for (std::size_t i = 0; i < sc8.size(); ++i) sc8[i] = static_cast<std::uint8_t>(t.scale_codes[i]);
        cs.up(sc8.data());
        for (DType out_t : {DType::f32, DType::bf16, DType::f16}) {
          SCOPED_TRACE(cuda::dtype_name(out_t));
          Dev<std::uint8_t> out(n * cuda::dtype_bytes(out_t));
          out.poison();
          CUDA_OK(cuda::dequantize_mx8(el, cc.p, cs.p, n, out.p, out_t));
          CUDA_OK(cudaDeviceSynchronize());
          const auto h = out.down();
          EXPECT_TRUE(same_output(ref, h.data(), out_t));
        }
      }
    }
  }
}

// ------------------------------------------------------------------ GEMV / GEMM

TEST(CudaGemm4, MatchesFp64ReferenceOfDequantizedWeight) {
  if (!have_gpu()) GTEST_SKIP() << "no CUDA device: GPU tests skipped";
  struct G {
    const char* fmt;
    std::size_t N, K;
    std::size_t row_stride = 1;  // > 1: the reference checks every row_stride-th row (at every M)
  };
  for (const G& gcase : {G{"nf4@64", 96, 512}, G{"nf4@64+dq", 200, 1024}, G{"int4@64", 64, 256},
                         G{"fp4-bnb@128", 40, 640}, G{"nf4@256", 33, 4096},
                         // blocks that straddle rows (K not a multiple of the block)
                         G{"nf4@128+dq", 77, 192}, G{"nf4@1024", 50, 320},
                         // M = 1 only: enough rows for the grid sizes the M = 1 kernel tells
                         // apart (≤ 1, ≤ 2 and more CTAs of 32 rows per SM; the small cases
                         // above are the first)
                         G{"nf4@64", 5000, 1088}, G{"nf4@64+dq", 9000, 320},
                         // the TMA kernel's domain (K % 256 == 0): several row pairs per CTA (more
                         // than 132 pairs), a partial last pair, K not a multiple of 8 warps · 256;
                         // the last at every M
                         G{"nf4@64", 9000, 512}, G{"nf4@64+dq", 8200, 2816}, G{"nf4@64+dq", 4300, 256},
                         // the wgmma kernel's K splits: 8 ranks of 2 steps and a partial row block;
                         // 4 ranks of 3, 3, 3, 2 steps
                         G{"nf4@64", 130, 4096}, G{"nf4@64+dq", 300, 2816},
                         // M > 32 where three warpgroups per CTA (the weight scaled into A) fill more
                         // of the GPU than two (on 132 SMs: 46 row blocks × 2 ranks against 68 × 1)
                         G{"nf4@64", 8700, 1024, 37}}) {
    const Quantizer q = parse_quantizer(gcase.fmt);
    const std::size_t N = gcase.N, K = gcase.K;
    const auto w = test_data(N * K, 64, 5 + N, false);
    const QuantizedTensor t = q.quantize(w.data(), N, K);
    std::vector<float> wd(N * K);
    q.dequantize(t, wd.data());
    Dev<std::uint8_t> codes(t.codes.size());
    codes.up(t.codes.data());
    Dev<float> absmax(t.scales.size());
    Dev<std::uint8_t> dqc(t.dq_codes.size());
    Dev<float> dqa(t.dq_absmax.size());
    cuda::Weight4 W;
    W.codes = codes.p;
    W.block = q.block_size();
    W.N = N;
    W.K = K;
    W.table = table_of(q);
    if (q.double_quantized()) {
      dqc.up(t.dq_codes.data());
      dqa.up(t.dq_absmax.data());
      W.scales.dq_codes = dqc.p;
      W.scales.dq_absmax = dqa.p;
      W.scales.dq_offset = t.dq_offset;
    } else {
      absmax.up(t.scales.data());
      W.scales.absmax = absmax.p;
    }
    for (DType act : {DType::bf16, DType::f16}) {
      for (std::size_t M : {1, 2, 3, 4, 8, 9, 16, 31, 64, 80}) {
        if (N * K / gcase.row_stride > 1200000 && M > 1) continue;  // the fp64 reference's time
        SCOPED_TRACE(std::string(gcase.fmt) + " " + cuda::dtype_name(act) + " M=" + std::to_string(M) +
                     " N=" + std::to_string(N) + " K=" + std::to_string(K));
        std::vector<float> x = test_data(M * K, 64, 99 + M, false);
        std::vector<std::uint16_t> x16(M * K);
        for (std::size_t i = 0; i < x.size(); ++i) {
          x16[i] = to16(x[i], act);
          x[i] = decode<float>(act == DType::bf16 ? bf16 : fp16, x16[i]);
        }
        std::vector<double> w16(N * K);  // the weight as dequantize_4bit writes it in this type
        for (std::size_t i = 0; i < w16.size(); ++i)
          w16[i] = decode<double>(act == DType::bf16 ? bf16 : fp16, to16(wd[i], act));
        Dev<std::uint16_t> xd(M * K), yd(M * N);
        xd.up(x16.data());
        for (auto variant : {cuda::Gemm4Variant::automatic, cuda::Gemm4Variant::pipelined,
                             cuda::Gemm4Variant::pipelined16, cuda::Gemm4Variant::registers,
                             cuda::Gemm4Variant::cores, cuda::Gemm4Variant::tiled,
                             cuda::Gemm4Variant::tma, cuda::Gemm4Variant::wgmma}) {
        SCOPED_TRACE("variant " + std::to_string(static_cast<int>(variant)));
        yd.poison();
        CUDA_OK(cuda::gemm_4bit(xd.p, act, M, W, yd.p, nullptr, variant));
        CUDA_OK(cudaDeviceSynchronize());
        const auto y = yd.down();
        std::size_t bad = 0, bad16 = 0;
        double num = 0, den = 0;
        for (std::size_t m = 0; m < M; ++m)
          for (std::size_t n = 0; n < N; n += gcase.row_stride) {
            double ref = 0, mag = 0;
            for (std::size_t k = 0; k < K; ++k) {
              ref += static_cast<double>(x[m * K + k]) * wd[n * K + k];
              mag += std::fabs(static_cast<double>(x[m * K + k]) * wd[n * K + k]);
            }
            const double got = decode<double>(act == DType::bf16 ? bf16 : fp16, y[m * N + n]);
            if (variant == cuda::Gemm4Variant::tiled && M > 1) {
              // tiled: the weight rounded once to the activation type, as dequantize_4bit writes
              // it, then fp32 accumulation: only y's rounding and the summation's error remain.
              double ref16 = 0;
              for (std::size_t k = 0; k < K; ++k)
                ref16 += static_cast<double>(x[m * K + k]) * w16[n * K + k];
              const double tol16 = std::ldexp(std::fabs(ref16), act == DType::bf16 ? -8 : -10) +
                                   std::ldexp(mag, -16) + 1e-6;
              if (!(std::fabs(got - ref16) <= tol16)) ++bad16;
            }
            // Tolerance: table values rounded to the activation type (2^-9 bf16 /
            // 2^-12 fp16 relative each) and y rounded once: 2^-7 of Σ|x·w| covers both.
            const double tol = std::ldexp(mag, act == DType::bf16 ? -7 : -9) + 1e-6;
            if (!(std::fabs(got - ref) <= tol)) ++bad;
            num += (got - ref) * (got - ref);
            den += ref * ref;
          }
        EXPECT_EQ(bad, 0u);
        EXPECT_EQ(bad16, 0u);
        EXPECT_LT(std::sqrt(num / den), act == DType::bf16 ? 1e-2 : 2e-3);
        }
      }
    }
  }
}

TEST(CudaGemm4, RejectsUnsupportedShapes) {
  if (!have_gpu()) GTEST_SKIP() << "no CUDA device: GPU tests skipped";
  cuda::Weight4 W;
  W.N = 16;
  W.K = 100;  // not a multiple of 64
  W.block = 64;
  Dev<std::uint16_t> x(100), y(16);
  Dev<std::uint8_t> c(800);
  W.codes = c.p;
  EXPECT_EQ(cuda::gemm_4bit(x.p, DType::bf16, 1, W, y.p), static_cast<int>(cudaErrorInvalidValue));
  W.K = 128;
  W.block = 32;  // blocks must be multiples of 64
  EXPECT_EQ(cuda::gemm_4bit(x.p, DType::bf16, 1, W, y.p), static_cast<int>(cudaErrorInvalidValue));
}

}  // namespace
#endif
