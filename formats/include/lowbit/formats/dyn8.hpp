// lowbit/formats/dyn8.hpp — bitsandbytes' signed 8-bit dynamic map
// (create_dynamic_map(signed=True, max_exponent_bits=7, total_bits=8)), the
// code of 8-bit optimizers, quantize_blockwise and QLoRA's double
// quantization.
//
// For i = 0 … 6 the map holds ±10^(i−6) · m for the 2^i midpoints m of
// linspace(0.1, 1, 2^i + 1), plus 0 and 1: 254 + 2 = 256 values, code = rank.
// lowbit evaluates the formula in binary64 and rounds each value once to
// binary32. bitsandbytes builds it with torch.linspace in float32, whose
// last bit depends on the CPU's vector width (AVX2 vs AVX-512), so a handful
// of its entries can differ from these by one ulp on a given machine; the
// bnb golden test checks this table against the one bnb actually used.
//
// Ties go to the even rank: bnb's kernel (dQuantize) binary-searches 127 ±
// 64 ± … ± 1, always lands on an even index, and keeps it on a tie.
#pragma once

#include "lowbit/formats/codebook.hpp"

namespace lowbit {

namespace detail {
struct Dyn8Table {
  float v[256] = {};
};
constexpr Dyn8Table make_dyn8_values() {
  Dyn8Table t{};
  int n = 0;
  constexpr double decades[7] = {1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0};  // correctly rounded, as Python's 10 ** k
  for (int i = 0; i < 7; ++i) {
    const double decade = decades[i];
    const int points = (1 << i) + 1;  // linspace(0.1, 1, points)
    for (int j = 0; j + 1 < points; ++j) {
      const double b0 = 0.1 + 0.9 * j / (points - 1), b1 = 0.1 + 0.9 * (j + 1) / (points - 1);
      const double m = decade * ((b0 + b1) / 2.0);
      t.v[n++] = static_cast<float>(m);
      t.v[n++] = static_cast<float>(-m);
    }
  }
  t.v[n++] = 0.0f;
  t.v[n++] = 1.0f;
  // Sort ascending so that code = rank, as bnb's map.
  for (int i = 1; i < n; ++i)
    for (int j = i; j > 0 && t.v[j] < t.v[j - 1]; --j) {
      const float tmp = t.v[j];
      t.v[j] = t.v[j - 1];
      t.v[j - 1] = tmp;
    }
  return t;
}
inline constexpr Dyn8Table dyn8_table = make_dyn8_values();
}  // namespace detail

inline constexpr const float (&dyn8_values)[256] = detail::dyn8_table.v;

// NaN: the search falls to index 0 (−0.99297…), as in bnb's kernel.
inline constexpr Codebook dyn8 = make_codebook(detail::dyn8_table.v, 256, 8, TieRule::even_rank, nullptr, 0);

static_assert(dyn8.value[255] == 1.0f && dyn8.value[127] == 0.0f);
static_assert(dyn8.zero_code == 127);

}  // namespace lowbit
