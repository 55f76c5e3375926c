// fp16 and bf16 against Eigen::half / Eigen::bfloat16: every bit pattern
// decoded, and encode (round to nearest even, overflow to inf) over every
// boundary and 10^7 random fp32 values.
#include <gtest/gtest.h>

#include <Eigen/Core>
#include <cmath>

#include "lowbit/formats/minifloats.hpp"
#include "support/oracle_inputs.hpp"

namespace {
using namespace lowbit;

// Eigen's conversions are IEEE round-to-nearest-even with overflow to inf.
constexpr ConvertOptions ieee_rne = [] {
  ConvertOptions o;
  o.overflow = Overflow::special;
  o.inf_under_saturation = InfUnderSaturation::keep_inf;
  return o;
}();

float eigen_half_to_float(std::uint16_t bits) { return static_cast<float>(Eigen::numext::bit_cast<Eigen::half>(bits)); }
float eigen_bf16_to_float(std::uint16_t bits) { return static_cast<float>(Eigen::numext::bit_cast<Eigen::bfloat16>(bits)); }
std::uint16_t eigen_half_bits(float x) { return Eigen::numext::bit_cast<std::uint16_t>(Eigen::half(x)); }
std::uint16_t eigen_bf16_bits(float x) { return Eigen::numext::bit_cast<std::uint16_t>(Eigen::bfloat16(x)); }

TEST(EigenOracle, DecodeEveryFp16AndBf16Pattern) {
  for (std::uint32_t c = 0; c < 65536; ++c) {
    const auto b = static_cast<std::uint16_t>(c);
    const float h = eigen_half_to_float(b), bf = eigen_bf16_to_float(b);
    if (std::isnan(h)) EXPECT_TRUE(std::isnan(decode<float>(fp16, c))) << c;
    else EXPECT_EQ(decode<float>(fp16, c), h) << "fp16 code " << c;
    if (std::isnan(bf)) EXPECT_TRUE(std::isnan(decode<float>(bf16, c))) << c;
    else EXPECT_EQ(decode<float>(bf16, c), bf) << "bf16 code " << c;
    // The compile-time binding is the same algorithm.
    if (!std::isnan(h)) {
      EXPECT_EQ((decode<fp16, float>(c)), h);
    }
  }
}

void expect_encode_matches(const FormatSpec& spec, std::uint16_t (*eigen)(float), const std::vector<float>& xs) {
  std::size_t bad = 0;
  for (float x : xs) {
    const std::uint32_t got = encode(spec, x, ieee_rne);
    const std::uint16_t want = eigen(x);
    const bool both_nan = std::isnan(x) && spec.is_nan_code(got) && spec.is_nan_code(want);
    if (!both_nan && got != want && ++bad <= 5)
      ADD_FAILURE() << "x=" << x << " (" << std::hexfloat << x << std::defaultfloat << ") eigen 0x" << std::hex << want
                    << " lowbit 0x" << got;
  }
  EXPECT_EQ(bad, 0u);
}

TEST(EigenOracle, EncodeFp16) {
  expect_encode_matches(fp16, eigen_half_bits, test::boundary_inputs(fp16));
  expect_encode_matches(fp16, eigen_half_bits, test::all_fp16_bf16_values());
  expect_encode_matches(fp16, eigen_half_bits, test::random_inputs(10'000'000, 16));
}

TEST(EigenOracle, EncodeBf16) {
  expect_encode_matches(bf16, eigen_bf16_bits, test::all_fp16_bf16_values());
  expect_encode_matches(bf16, eigen_bf16_bits, test::random_inputs(10'000'000, 17, 1e-30));
  // bf16 boundaries: ±1 ulp around every midpoint of the top and bottom binades.
  std::vector<float> xs;
  for (std::uint32_t c = 0; c < 0x7F80u; c += 1) {
    const float mid = test::f32_from_bits((c << 16) | 0x8000u);  // exact midpoint to c+1
    xs.insert(xs.end(), {mid, std::nextafter(mid, 0.0f), std::nextafter(mid, INFINITY), -mid});
  }
  expect_encode_matches(bf16, eigen_bf16_bits, xs);
}

}  // namespace
