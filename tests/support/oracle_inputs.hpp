// Input sets for differential conversion tests: the values where encoders
// go wrong (every midpoint between neighbours, ±1 ulp around it, overflow
// thresholds, subnormal boundaries, specials) plus every fp16/bf16 value and
// random fp32 bit patterns.
#pragma once

#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <vector>

#include "lowbit/formats/minifloats.hpp"

namespace lowbit::test {

inline float f32_from_bits(std::uint32_t b) { return lowbit::bit_cast<float>(b); }

// Every finite non-negative value of s, ascending (from the spec, via decode).
inline std::vector<double> positive_values(const FormatSpec& s) {
  std::vector<double> v;
  for (std::uint32_t mag = 0; mag <= s.max_finite_magnitude(); ++mag) v.push_back(decode<double>(s, mag));
  return v;
}

// fp32 values at and next to every rounding boundary of s (both signs):
// midpoints between neighbours, the boundary one ulp of the target above max
// finite (where overflow starts), half the smallest positive value, and the
// values themselves. Each point p is emitted with nextafter(p, ±inf).
inline std::vector<float> boundary_inputs(const FormatSpec& s) {
  std::vector<double> points;
  const auto vals = positive_values(s);
  for (std::size_t i = 0; i < vals.size(); ++i) {
    points.push_back(vals[i]);
    if (i + 1 < vals.size()) points.push_back(0.5 * (vals[i] + vals[i + 1]));
  }
  // Beyond max finite: the would-be next value's midpoint, the next binade.
  const double max = vals.back();
  const double ulp_at_max = s.man_bits > 0 ? max - vals[vals.size() - 2] : max / 2;
  points.push_back(max + 0.5 * ulp_at_max);
  points.push_back(max + ulp_at_max);
  points.push_back(2 * max);
  points.push_back(0.5 * s.min_positive());
  points.push_back(0.25 * s.min_positive());
  points.push_back(0.75 * s.min_positive());
  std::vector<float> out;
  for (double p : points) {
    const float f = static_cast<float>(p);  // exact for every format here
    for (float q : {f, std::nextafter(f, 0.0f), std::nextafter(f, std::numeric_limits<float>::infinity())})
      for (float sign : {1.0f, -1.0f}) out.push_back(sign * q);
  }
  const float inf = std::numeric_limits<float>::infinity();
  for (float special : {inf, -inf, std::numeric_limits<float>::quiet_NaN(), -std::numeric_limits<float>::quiet_NaN(),
                        0.0f, -0.0f, std::numeric_limits<float>::max(), -std::numeric_limits<float>::max(),
                        std::numeric_limits<float>::denorm_min(), -std::numeric_limits<float>::denorm_min(),
                        std::numeric_limits<float>::min(), f32_from_bits(0x7F80'0001u) /* signalling NaN */})
    out.push_back(special);
  return out;
}

// Every fp16 and every bf16 value as fp32 (exact), specials included.
inline std::vector<float> all_fp16_bf16_values() {
  std::vector<float> out;
  out.reserve(2 * 65536);
  for (std::uint32_t c = 0; c < 65536; ++c) {
    out.push_back(static_cast<float>(decode<double>(fp16, c)));
    out.push_back(f32_from_bits(c << 16));  // bf16 is the top half of fp32
  }
  return out;
}

// n random fp32 values: half uniformly random bit patterns (every exponent,
// NaNs included), half log-uniform magnitudes within ±2^±20 of `centre`.
inline std::vector<float> random_inputs(std::size_t n, std::uint64_t seed, double centre = 1.0) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> expo(-20.0, 20.0);
  std::vector<float> out(n);
  for (std::size_t i = 0; i < n; ++i) {
    const std::uint64_t r = rng();
    if (i % 2 == 0) {
      out[i] = f32_from_bits(static_cast<std::uint32_t>(r));
    } else {
      const float mag = static_cast<float>(centre * std::exp2(expo(rng)));
      out[i] = (r >> 63) ? -mag : mag;
    }
  }
  return out;
}

}  // namespace lowbit::test
