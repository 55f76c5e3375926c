// Golden facts (../shared/facts.md), spec-derived value tables, and rounding
// properties checked against a brute-force search over each format's values.
#include <gtest/gtest.h>
#include <rapidcheck/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <random>
#include <set>
#include <vector>

#include "lowbit/formats/minifloat_names.hpp"
#include "support/oracle_inputs.hpp"

namespace {
using namespace lowbit;

// ---- facts.md ------------------------------------------------------------------

TEST(Facts, PublishedRanges) {
  EXPECT_EQ(e4m3fn.max_finite(), 448.0);
  EXPECT_EQ(decode(e4m3fn, encode(e4m3fn, -1e9f)), -448.0);  // saturating default
  EXPECT_EQ(e5m2.max_finite(), 57344.0);
  EXPECT_EQ(decode(e5m2, encode(e5m2, -57344.0f)), -57344.0);
  EXPECT_EQ(fp16.max_finite(), 65504.0);
  // "10k·10k overflows" fp16, not bf16.
  const ConvertOptions ieee{.overflow = Overflow::special, .inf_under_saturation = InfUnderSaturation::keep_inf};
  EXPECT_TRUE(std::isinf(decode(fp16, encode(fp16, 1e4f * 1e4f, ieee))));
  EXPECT_FALSE(std::isinf(decode(bf16, encode(bf16, 1e4f * 1e4f, ieee))));
  EXPECT_EQ(bf16.exp_bits, 8);
  EXPECT_EQ(bf16.man_bits, 7);
  EXPECT_EQ(tf32.total_bits(), 19);
  EXPECT_EQ(bf16.max_finite(), 0x1.fep127);  // fp32's range
}

TEST(Facts, PlainReadingWorkedExample) {
  // FP4 E2M1 with bias 0: bits 1101 → −1 · 2^2 · (1 + 2^-1) = −6.
  const FormatSpec e2m1_bias0 = *find_minifloat("e2m1b0");
  EXPECT_EQ(e2m1_bias0.bias, 0);
  EXPECT_EQ(decode(e2m1_bias0, 0b1101), -6.0);
  EXPECT_EQ(encode(e2m1_bias0, -6.0f), 0b1101u);
  // Mantissa bits 1010 → 2^-1 + 2^-3 = 0.625 (as the fraction of 1.f at exponent 0).
  EXPECT_EQ(decode(e3m4, (3u << 4) | 0b1010u), 1.625);
}

TEST(Facts, OcpE2m1ValueSet) {
  std::set<double> values;
  for (std::uint32_t c = 0; c < 16; ++c) values.insert(decode(e2m1fn, c));
  const std::set<double> expected{-6, -4, -3, -2, -1.5, -1, -0.5, 0, 0.5, 1, 1.5, 2, 3, 4, 6};
  EXPECT_EQ(values, expected);
}

TEST(Facts, Fp4VariantsValueSets) {
  std::set<double> e3m0_values, e1m2_values;
  for (std::uint32_t c = 0; c < 16; ++c) {
    e3m0_values.insert(decode(e3m0, c));
    e1m2_values.insert(decode(e1m2, c));
  }
  EXPECT_EQ(e3m0_values, (std::set<double>{-16, -8, -4, -2, -1, -0.5, -0.25, 0, 0.25, 0.5, 1, 2, 4, 8, 16}));
  EXPECT_EQ(e1m2_values, (std::set<double>{-3.5, -3, -2.5, -2, -1.5, -1, -0.5, 0, 0.5, 1, 1.5, 2, 2.5, 3, 3.5}));
}

TEST(Limits, FiniteValueCountsFromTheSpecs) {
  // Counted from the OCP / IEEE code tables: codes minus NaNs, infs and the duplicate zero.
  EXPECT_EQ(e4m3fn.finite_value_count(), 256u - 2 - 1);
  EXPECT_EQ(e5m2.finite_value_count(), 256u - 6 - 2 - 1);
  EXPECT_EQ(e4m3fnuz.finite_value_count(), 256u - 1);
  EXPECT_EQ(e2m3fn.finite_value_count(), 64u - 1);
  EXPECT_EQ(e2m1fn.finite_value_count(), 15u);
  EXPECT_EQ(e8m0fnu.finite_value_count(), 255u);
  EXPECT_EQ(fp16.finite_value_count(), 65536u - 2 * 1023 - 2 - 1);
  EXPECT_DOUBLE_EQ(e4m3fn.dynamic_range_binades(), std::log2(448.0 / 0x1p-9));
  EXPECT_DOUBLE_EQ(e8m0fnu.dynamic_range_binades(), 254.0);
  EXPECT_EQ(e4m3fn.epsilon(), 0.125);
  EXPECT_EQ(e5m2fnuz.min_positive(), 0x1p-17);
}

// Every code of every named format of at most 8 bits against a decoder
// written from the spec text: (−1)^s · 2^(e − bias) · (1 + f/2^M), subnormal
// 2^(1 − bias) · f/2^M, specials by policy.
TEST(Decode, EveryCodeOfEveryNamedNarrowFormat) {
  for (const auto& n : named_minifloats) {
    const FormatSpec& s = n.spec;
    if (s.total_bits() > 8) continue;
    for (std::uint32_t c = 0; c < s.code_count(); ++c) {
      const int sign_bit = s.is_signed() ? static_cast<int>(c >> (s.exp_bits + s.man_bits)) : 0;
      const int e = static_cast<int>((c >> s.man_bits) & ((1u << s.exp_bits) - 1));
      const int f = static_cast<int>(c & ((1u << s.man_bits) - 1));
      const bool top_exp = e == (1 << s.exp_bits) - 1;
      const bool all_ones = top_exp && f == (1 << s.man_bits) - 1;
      double want;
      if ((s.special == Special::ieee && top_exp && f != 0) || (s.special == Special::fn && all_ones) ||
          (s.special == Special::fnuz && sign_bit && e == 0 && f == 0) ||
          (s.special == Special::unsigned_scale && all_ones)) {
        want = std::numeric_limits<double>::quiet_NaN();
      } else if (s.special == Special::ieee && top_exp) {
        want = HUGE_VAL;
      } else if (e == 0 && s.has_subnormals()) {
        want = std::ldexp(f, 1 - s.bias - s.man_bits);
      } else {
        want = std::ldexp(1.0 + std::ldexp(f, -s.man_bits), e - s.bias);
      }
      if (sign_bit) want = -want;
      const double got = decode(s, c);
      if (std::isnan(want)) EXPECT_TRUE(std::isnan(got)) << n.name << " code " << c;
      else EXPECT_EQ(got, want) << n.name << " code " << c;
    }
  }
}

TEST(Names, RoundTripAndRunTimeSpellings) {
  for (const auto& n : named_minifloats) {
    EXPECT_EQ(minifloat_name(n.spec), n.name);
    EXPECT_EQ(*find_minifloat(n.name), n.spec);
  }
  EXPECT_EQ(*find_minifloat("e4m3b11fnuz"), (FormatSpec{4, 3, 11, Special::fnuz}));
  EXPECT_EQ(*find_minifloat("e5m10"), fp16);
  EXPECT_EQ(*find_minifloat("e3m2"), e3m2fn);  // sub-byte: every code finite, as OCP
  EXPECT_EQ(find_minifloat("e6m1")->special, Special::ieee);
  for (const char* name : {"e4m3b11fnuz", "e2m1b0", "e4m3fin", "e2m1ieee", "e6m9", "e3m4fn"})
    EXPECT_EQ(minifloat_name(*find_minifloat(name)), name);
  EXPECT_FALSE(find_minifloat("nf4").has_value());
  EXPECT_FALSE(find_minifloat("e4x3").has_value());
  EXPECT_THROW(find_minifloat("e12m3"), FormatError);
  EXPECT_THROW(find_minifloat("e4m24"), FormatError);
  EXPECT_THROW(find_minifloat("e1m0ieee"), FormatError);
}

TEST(Policies, SignedZeroFnuzFlushAndE8m0Edges) {
  EXPECT_EQ(encode(e4m3fn, -0.0f), 0x80u);
  EXPECT_EQ(encode(e4m3fnuz, -0.0f), 0x00u);       // fnuz has no −0 ...
  EXPECT_EQ(encode(e4m3fnuz, -0x1p-20f), 0x00u);   // ... not even after underflow
  EXPECT_EQ(encode(e4m3fnuz, std::nanf("")), 0x80u);
  ConvertOptions flush;
  flush.flush_subnormals = true;
  EXPECT_EQ(encode(e4m3fn, 0x1p-8f, flush), 0x00u);   // subnormal in e4m3fn
  EXPECT_EQ(encode(e4m3fn, -0x1p-8f, flush), 0x80u);
  EXPECT_EQ(encode(e4m3fn, 0x1p-6f, flush), 0x08u);   // min normal kept
  EXPECT_EQ(encode(e4m3fn, 0x1p-8f), 0x02u);
  // E8M0: ml_dtypes turns zero/negatives into NaN, CUDA clamps |x|.
  EXPECT_EQ(encode(e8m0fnu, 0.0f, presets::ml_dtypes(true)), 0xFFu);
  EXPECT_EQ(encode(e8m0fnu, -2.0f, presets::ml_dtypes(true)), 0xFFu);
  EXPECT_EQ(encode(e8m0fnu, 0.0f, presets::cuda(true)), 0x00u);
  EXPECT_EQ(encode(e8m0fnu, -2.0f, presets::cuda(true)), 128u);
  EXPECT_EQ(encode(e8m0fnu, 3.0f, presets::ml_dtypes(true)), 129u);  // tie 3 = 1.5·2 → 4
  // Non-saturating e4m3fn: 464 is the tie between 448 (even) and the NaN code.
  const ConvertOptions nosat{.overflow = Overflow::special};
  EXPECT_EQ(encode(e4m3fn, 464.0f, nosat), 0x7Eu);
  EXPECT_EQ(encode(e4m3fn, 464.01f, nosat), 0x7Fu);
  EXPECT_EQ(encode(e5m2, 61440.0f, nosat), 0x7Cu);  // tie 57344|65536 → even = inf
  // Rounding toward zero never overflows to inf (IEEE 754 §7.4).
  EXPECT_EQ(encode(e5m2, 1e6f, ConvertOptions{.rounding = Rounding::toward_zero, .overflow = Overflow::special}), 0x7Bu);
}

// ---- rounding properties against brute force ---------------------------------

// The two neighbours of x among the finite values of s (by brute force).
struct Bracket { double below, above; };
Bracket bracket(const std::vector<double>& sorted_values, double x) {
  auto hi = std::lower_bound(sorted_values.begin(), sorted_values.end(), x);
  if (hi != sorted_values.end() && *hi == x) return {x, x};
  return {*(hi - 1), *hi};
}

std::vector<double> all_finite_values(const FormatSpec& s) {
  auto pos = test::positive_values(s);
  std::vector<double> v;
  for (double p : pos) v.push_back(-p);
  v.insert(v.end(), pos.begin(), pos.end());
  std::sort(v.begin(), v.end());
  v.erase(std::unique(v.begin(), v.end()), v.end());
  return v;
}

const FormatSpec kPropertyFormats[] = {e4m3fn, e5m2, e4m3fnuz, e3m4, e2m3fn, e3m2fn, e2m1fn, e3m0, e1m2, fp16, bf16};

RC_GTEST_PROP(Rounding, EveryModePicksTheRightNeighbour, ()) {
  const FormatSpec s = *rc::gen::elementOf(std::vector<FormatSpec>(std::begin(kPropertyFormats), std::end(kPropertyFormats)));
  const auto values = all_finite_values(s);
  const double max = s.max_finite();
  // x strictly inside the finite range so both neighbours exist.
  const double u = *rc::gen::inRange(0, 1'000'000) / 1e6;
  const int octave = *rc::gen::inRange(-12, 12);
  double x = std::min(max * 0.999, std::ldexp(0.5 + u, octave) * std::sqrt(max * s.min_positive()));
  if (*rc::gen::arbitrary<bool>()) x = -x;
  const float xf = static_cast<float>(x);
  const auto [lo, hi] = bracket(values, xf);
  auto q = [&](Rounding r) { return decode(s, encode(s, xf, ConvertOptions{.rounding = r})); };
  const double toward_zero = std::fabs(lo) < std::fabs(hi) ? lo : hi;
  const double away = std::fabs(lo) < std::fabs(hi) ? hi : lo;
  RC_ASSERT(q(Rounding::toward_zero) == toward_zero || (lo == hi && q(Rounding::toward_zero) == lo));
  RC_ASSERT(q(Rounding::away_from_zero) == away || (lo == hi && q(Rounding::away_from_zero) == lo));
  const double dlo = xf - lo, dhi = hi - xf;
  const double nearest = q(Rounding::nearest_even);
  if (dlo != dhi) RC_ASSERT(nearest == (dlo < dhi ? lo : hi));
  else RC_ASSERT(nearest == lo || nearest == hi);
  const double st = decode(s, encode(s, xf, ConvertOptions{.rounding = Rounding::stochastic}, *rc::gen::arbitrary<std::uint32_t>()));
  RC_ASSERT(st == lo || st == hi);
}

TEST(Rounding, TiesGoToEvenOrAway) {
  EXPECT_EQ(decode(e2m1fn, encode(e2m1fn, 2.5f)), 2.0);   // 2 = 0b100 even
  EXPECT_EQ(decode(e2m1fn, encode(e2m1fn, 3.5f)), 4.0);   // 4 = 0b110 even
  EXPECT_EQ(decode(e2m1fn, encode(e2m1fn, 2.5f, ConvertOptions{.rounding = Rounding::nearest_away})), 3.0);
  EXPECT_EQ(decode(e2m1fn, encode(e2m1fn, 0.25f)), 0.0);  // tie 0 | 0.5 → 0
}

// Stochastic rounding is unbiased: E[q(x)] = x. With N draws the mean's
// standard deviation is at most ulp/(2√N); allow 5 of them.
TEST(Rounding, StochasticIsUnbiased) {
  std::mt19937 rng(20261126);
  const int n = 1'000'000;
  for (const FormatSpec& s : {e4m3fn, e2m1fn, e5m2, bf16}) {
    for (float x : {0.3f, -1.1f, 0.01f, 2.6f, 5.9f}) {
      if (std::fabs(x) > s.max_finite()) continue;
      double sum = 0;
      for (int i = 0; i < n; ++i)
        sum += decode(s, encode(s, x, ConvertOptions{.rounding = Rounding::stochastic}, static_cast<std::uint32_t>(rng())));
      const auto values = all_finite_values(s);
      const auto [lo, hi] = bracket(values, x);
      const double tolerance = 5 * (hi - lo) / (2 * std::sqrt(n));
      EXPECT_NEAR(sum / n, x, tolerance) << minifloat_name(s) << " x=" << x;
    }
  }
}

TEST(Binding, CompileTimeAndRunTimeAgree) {
  const auto xs = test::random_inputs(200'000, 99);
  for (float x : xs) {
    ASSERT_EQ(encode<e4m3fn>(x), encode(e4m3fn, x));
    ASSERT_EQ(encode<e2m1fn>(x, presets::cuda(true)), encode(e2m1fn, x, presets::cuda(true)));
  }
}

}  // namespace
