// lowbit's encoder and decoder against CUDA's own host-callable conversions
// (cuda_fp8.h, cuda_fp6.h, cuda_fp4.h compile with g++ and need no GPU).
// Zero mismatches allowed, over: every fp16 and bf16 value, every midpoint
// between neighbouring codes and ±1 ulp around it, overflow thresholds,
// subnormal boundaries, specials, and 10^7 random fp32 values.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "lowbit/formats/minifloats.hpp"
#include "support/oracle_inputs.hpp"

#ifndef LOWBIT_HAVE_CUDA_HEADERS
TEST(CudaOracle, Skipped) { GTEST_SKIP() << "CUDA headers (cuda_fp8.h) not found: oracle tests skipped"; }
#else
#include <cuda_fp4.h>
#include <cuda_fp6.h>
#include <cuda_fp8.h>

namespace {
using namespace lowbit;
using lowbit::test::f32_from_bits;

// One CUDA conversion, adapted to "float (or double) in, code out".
struct Oracle {
  std::string name;
  FormatSpec spec;
  ConvertOptions options;  // the lowbit preset that must reproduce it
  std::uint32_t (*from_float)(float);
  std::uint32_t (*from_double)(double);
};

template <__nv_saturation_t Sat, __nv_fp8_interpretation_t Kind>
std::uint32_t cuda_fp8(float x) { return __nv_cvt_float_to_fp8(x, Sat, Kind); }
template <__nv_saturation_t Sat, __nv_fp8_interpretation_t Kind>
std::uint32_t cuda_fp8_d(double x) { return __nv_cvt_double_to_fp8(x, Sat, Kind); }
template <__nv_fp6_interpretation_t Kind, cudaRoundMode R>
std::uint32_t cuda_fp6(float x) { return __nv_cvt_float_to_fp6(x, Kind, R); }
template <__nv_fp6_interpretation_t Kind, cudaRoundMode R>
std::uint32_t cuda_fp6_d(double x) { return __nv_cvt_double_to_fp6(x, Kind, R); }
template <cudaRoundMode R>
std::uint32_t cuda_fp4(float x) { return __nv_cvt_float_to_fp4(x, __NV_E2M1, R); }
template <cudaRoundMode R>
std::uint32_t cuda_fp4_d(double x) { return __nv_cvt_double_to_fp4(x, __NV_E2M1, R); }
template <__nv_saturation_t Sat, cudaRoundMode R>
std::uint32_t cuda_e8m0(float x) { return __nv_cvt_float_to_e8m0(x, Sat, R); }
template <__nv_saturation_t Sat, cudaRoundMode R>
std::uint32_t cuda_e8m0_d(double x) { return __nv_cvt_double_to_e8m0(x, Sat, R); }

std::vector<Oracle> oracles() {
  const auto rn = Rounding::nearest_even, rz = Rounding::toward_zero, ru = Rounding::away_from_zero;
  return {
      {"e4m3fn satfinite", e4m3fn, presets::cuda(true), cuda_fp8<__NV_SATFINITE, __NV_E4M3>, cuda_fp8_d<__NV_SATFINITE, __NV_E4M3>},
      {"e4m3fn nosat", e4m3fn, presets::cuda(false), cuda_fp8<__NV_NOSAT, __NV_E4M3>, cuda_fp8_d<__NV_NOSAT, __NV_E4M3>},
      {"e5m2 satfinite", e5m2, presets::cuda(true), cuda_fp8<__NV_SATFINITE, __NV_E5M2>, cuda_fp8_d<__NV_SATFINITE, __NV_E5M2>},
      {"e5m2 nosat", e5m2, presets::cuda(false), cuda_fp8<__NV_NOSAT, __NV_E5M2>, cuda_fp8_d<__NV_NOSAT, __NV_E5M2>},
      {"e2m3fn rn", e2m3fn, presets::cuda(true, rn), cuda_fp6<__NV_E2M3, cudaRoundNearest>, cuda_fp6_d<__NV_E2M3, cudaRoundNearest>},
      {"e2m3fn rz", e2m3fn, presets::cuda(true, rz), cuda_fp6<__NV_E2M3, cudaRoundZero>, cuda_fp6_d<__NV_E2M3, cudaRoundZero>},
      {"e3m2fn rn", e3m2fn, presets::cuda(true, rn), cuda_fp6<__NV_E3M2, cudaRoundNearest>, cuda_fp6_d<__NV_E3M2, cudaRoundNearest>},
      {"e3m2fn rz", e3m2fn, presets::cuda(true, rz), cuda_fp6<__NV_E3M2, cudaRoundZero>, cuda_fp6_d<__NV_E3M2, cudaRoundZero>},
      {"e2m1fn rn", e2m1fn, presets::cuda(true, rn), cuda_fp4<cudaRoundNearest>, cuda_fp4_d<cudaRoundNearest>},
      {"e2m1fn rz", e2m1fn, presets::cuda(true, rz), cuda_fp4<cudaRoundZero>, cuda_fp4_d<cudaRoundZero>},
      {"e8m0fnu satfinite rz", e8m0fnu, presets::cuda(true, rz), cuda_e8m0<__NV_SATFINITE, cudaRoundZero>, cuda_e8m0_d<__NV_SATFINITE, cudaRoundZero>},
      {"e8m0fnu nosat rz", e8m0fnu, presets::cuda(false, rz), cuda_e8m0<__NV_NOSAT, cudaRoundZero>, cuda_e8m0_d<__NV_NOSAT, cudaRoundZero>},
      {"e8m0fnu satfinite ru", e8m0fnu, presets::cuda(true, ru), cuda_e8m0<__NV_SATFINITE, cudaRoundPosInf>, cuda_e8m0_d<__NV_SATFINITE, cudaRoundPosInf>},
      {"e8m0fnu nosat ru", e8m0fnu, presets::cuda(false, ru), cuda_e8m0<__NV_NOSAT, cudaRoundPosInf>, cuda_e8m0_d<__NV_NOSAT, cudaRoundPosInf>},
  };
}

// Counts mismatches and prints the first few.
template <class F>
std::size_t mismatches(const Oracle& o, const std::vector<F>& xs, std::uint32_t (*cuda)(F)) {
  ConvertOptions options = o.options;
  if constexpr (std::is_same_v<F, double>) {  // CUDA's fp64 path keeps NaN signs (convert_options.hpp)
    options = presets::cuda(o.options.overflow == Overflow::saturate, o.options.rounding, true);
  }
  std::size_t bad = 0;
  for (F x : xs) {
    const std::uint32_t want = cuda(x);
    const std::uint32_t got = encode(o.spec, x, options);
    if (want != got && ++bad <= 5) {
      std::fprintf(stderr, "  %s: x=%.9g (bits %a): cuda 0x%02x lowbit 0x%02x\n", o.name.c_str(),
                   static_cast<double>(x), static_cast<double>(x), want, got);
    }
  }
  return bad;
}

class CudaOracle : public ::testing::TestWithParam<Oracle> {};

TEST_P(CudaOracle, EncodeBoundariesAndSpecials) {
  const Oracle& o = GetParam();
  const auto xs = lowbit::test::boundary_inputs(o.spec);
  ASSERT_GT(xs.size(), 20u);
  EXPECT_EQ(mismatches(o, xs, o.from_float), 0u) << o.name;
  std::vector<double> xd(xs.begin(), xs.end());
  // In fp64, ±1 fp64-ulp around each point as well.
  for (float x : xs) {
    xd.push_back(std::nextafter(static_cast<double>(x), 0.0));
    xd.push_back(std::nextafter(static_cast<double>(x), HUGE_VAL));
  }
  EXPECT_EQ(mismatches(o, xd, o.from_double), 0u) << o.name << " (fp64 input)";
}

TEST_P(CudaOracle, EncodeEveryFp16AndBf16Value) {
  const Oracle& o = GetParam();
  EXPECT_EQ(mismatches(o, lowbit::test::all_fp16_bf16_values(), o.from_float), 0u) << o.name;
}

TEST_P(CudaOracle, EncodeTenMillionRandomFp32) {
  const Oracle& o = GetParam();
  // Random bit patterns plus log-uniform magnitudes centred on the format's range.
  const double centre = std::sqrt(o.spec.max_finite() * o.spec.min_positive());
  EXPECT_EQ(mismatches(o, lowbit::test::random_inputs(10'000'000, 0x10b17 + o.spec.total_bits(), centre),
                       o.from_float), 0u) << o.name;
}

INSTANTIATE_TEST_SUITE_P(AllCudaConversions, CudaOracle, ::testing::ValuesIn(oracles()),
                         [](const auto& info) {
                           std::string n = info.param.name;
                           for (char& c : n) if (c == ' ') c = '_';
                           return n;
                         });

// ---- decode: every code against CUDA's widening conversions ----------------

double half_to_double(__half_raw h) {
  return decode<double>(fp16, h.x);  // fp16 decode itself is checked against Eigen
}

TEST(CudaOracleDecode, EveryFp8Fp6Fp4Code) {
  struct Case { FormatSpec spec; double (*cuda)(std::uint32_t); };
  const Case cases[] = {
      {e4m3fn, [](std::uint32_t c) { return half_to_double(__nv_cvt_fp8_to_halfraw(static_cast<__nv_fp8_storage_t>(c), __NV_E4M3)); }},
      {e5m2, [](std::uint32_t c) { return half_to_double(__nv_cvt_fp8_to_halfraw(static_cast<__nv_fp8_storage_t>(c), __NV_E5M2)); }},
      {e2m3fn, [](std::uint32_t c) { return half_to_double(__nv_cvt_fp6_to_halfraw(static_cast<__nv_fp6_storage_t>(c), __NV_E2M3)); }},
      {e3m2fn, [](std::uint32_t c) { return half_to_double(__nv_cvt_fp6_to_halfraw(static_cast<__nv_fp6_storage_t>(c), __NV_E3M2)); }},
      {e2m1fn, [](std::uint32_t c) { return half_to_double(__nv_cvt_fp4_to_halfraw(static_cast<__nv_fp4_storage_t>(c), __NV_E2M1)); }},
      {e8m0fnu, [](std::uint32_t c) {
         const __nv_bfloat16_raw b = __nv_cvt_e8m0_to_bf16raw(static_cast<__nv_fp8_storage_t>(c));
         return static_cast<double>(f32_from_bits(static_cast<std::uint32_t>(b.x) << 16));
       }},
  };
  for (const Case& c : cases) {
    for (std::uint32_t code = 0; code < c.spec.code_count(); ++code) {
      const double want = c.cuda(code);
      const double got = decode<double>(c.spec, code);
      if (std::isnan(want)) {
        EXPECT_TRUE(std::isnan(got)) << "spec E" << c.spec.exp_bits << "M" << c.spec.man_bits << " code " << code;
      } else {
        EXPECT_EQ(got, want) << "spec E" << c.spec.exp_bits << "M" << c.spec.man_bits << " code " << code;
      }
    }
  }
}

}  // namespace
#endif
