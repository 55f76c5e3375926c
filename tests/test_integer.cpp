// Integer quantization: facts.md's LLM.int8-blog examples, exactly.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "lowbit/formats/registry.hpp"

using namespace lowbit;

TEST(IntAbsmax, BlogExample) {
  // facts.md: absmax 5.4, scale 127/5.4 ≈ 23.5, quantized [28, −12, −101, 28, −73, 19, 56, 127].
  const std::vector<float> x = {1.2f, -0.5f, -4.3f, 1.2f, -3.1f, 0.8f, 2.4f, 5.4f};
  const int expected[] = {28, -12, -101, 28, -73, 19, 56, 127};
  const Quantizer q = parse_quantizer("int8");
  EXPECT_EQ(q.name(), "int8@tensor");
  const QuantizedTensor t = q.quantize(x.data(), 1, x.size());
  ASSERT_EQ(t.codes.size(), 8u);
  for (int i = 0; i < 8; ++i)
    EXPECT_EQ(decode_int_symmetric(IntFormat{8, false}, t.codes[i]), expected[i]) << i;
  EXPECT_FLOAT_EQ(t.scales[0], 5.4f / 127);
  // Dequantized: q · 5.4/127, e.g. −101 · 0.04252 = −4.2945.
  std::vector<float> out(8);
  q.fake_quantize(x.data(), 1, 8, out.data());
  EXPECT_NEAR(out[2], -101 * 5.4 / 127, 1e-6);
  EXPECT_NEAR(out[7], 5.4, 1e-6);
}

TEST(IntAbsmax, RangeOneExample) {
  // facts.md: 0.3 · 127 = 38.1 → 38 → 38/127 = 0.2992. (facts.md, after the
  // blog, says "error 0.008"; 0.3 − 0.2992 is 0.0008 — asserted as derived.)
  const std::vector<float> x = {0.3f, -1.0f};
  std::vector<float> out(2);
  parse_quantizer("int8").fake_quantize(x.data(), 1, 2, out.data());
  EXPECT_NEAR(out[0], 38.0 / 127, 1e-7);
  EXPECT_NEAR(out[0], 0.2992, 5e-5);
  EXPECT_NEAR(x[0] - out[0], 0.0008, 2e-5);
}

TEST(IntAbsmax, RoundsHalfAwayAndNeverUsesMostNegativeCode) {
  // int4: qmax 7; with absmax 7 the scale is 1, so y = x: 2.5 → 3, −2.5 → −3, 0.5 → 1.
  const std::vector<float> x = {7, 2.5f, -2.5f, 0.5f, -7};
  const QuantizedTensor t = parse_quantizer("int4@tensor").quantize(x.data(), 1, x.size());
  const IntFormat f{4, false};
  auto at = [&](std::size_t i) { return decode_int_symmetric(f, unpack_code(t.codes.data(), i, 4)); };
  EXPECT_EQ(at(0), 7);
  EXPECT_EQ(at(1), 3);
  EXPECT_EQ(at(2), -3);
  EXPECT_EQ(at(3), 1);
  EXPECT_EQ(at(4), -7);
  // int2: the values are only −1, 0, 1.
  const std::vector<float> y = {1, 0.49f, 0.51f, -1};
  std::vector<float> out(4);
  parse_quantizer("int2").fake_quantize(y.data(), 1, 4, out.data());
  EXPECT_EQ(out, (std::vector<float>{1, 0, 1, -1}));
}

TEST(IntZeroPoint, ZeroIsExactAndRangeIsFull) {
  // The blog's vector, asymmetric: range [−4.3, 5.4] onto 0 … 255; scale 9.7/255.
  const std::vector<float> x = {1.2f, -0.5f, -4.3f, 1.2f, -3.1f, 0.8f, 2.4f, 5.4f, 0.0f};
  const Quantizer q = parse_quantizer("int8-zp@tensor");
  const QuantizedTensor t = q.quantize(x.data(), 1, x.size());
  ASSERT_EQ(t.zero_points.size(), 1u);
  // z = round(4.3 / (9.7/255)) = round(113.04) = 113.
  EXPECT_EQ(t.zero_points[0], 113);
  EXPECT_EQ(t.codes[2], 0);    // the minimum → 0
  EXPECT_EQ(t.codes[7], 255);  // the maximum → 255 (5.4/0.038039 + 113 = 254.96)
  EXPECT_EQ(t.codes[8], 113);  // 0 → z
  std::vector<float> out(x.size());
  q.fake_quantize(x.data(), 1, x.size(), out.data());
  EXPECT_EQ(out[8], 0.0f);
  for (std::size_t i = 0; i < x.size(); ++i) EXPECT_NEAR(out[i], x[i], 9.7 / 255 / 2 + 1e-6) << i;
  // All-positive data: the range still includes 0, so z = 0.
  const std::vector<float> p = {1, 2, 3};
  EXPECT_EQ(q.quantize(p.data(), 1, 3).zero_points[0], 0);
}
