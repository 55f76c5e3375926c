// lowbit/formats/codebook.hpp — an element format given by a table of values.
//
// A codebook maps a code (0 … size−1) to a value by lookup. Encoding picks the
// nearest value: the table is sorted once, the midpoints between neighbours
// become thresholds, and the rank of x is the number of thresholds below x.
// What happens to an x exactly on a midpoint is the codebook's TieRule, folded
// into the thresholds when the codebook is built (a tie that must go up moves
// its threshold one float lower), so encoding is one comparison per
// threshold: a 15-compare sum for 4-bit tables (vectorises), an 8-step
// branch-free binary search for 8-bit tables.
//
// The struct is trivially copyable and holds no pointers: kernels copy it to
// constant memory; the built-in tables are constexpr (nf4.hpp, fp4_bnb.hpp,
// dyn8.hpp). Encoding never allocates, never throws, and is LOWBIT_HD.
#pragma once

#include <cstdint>
#include <span>

#include "lowbit/formats/config.hpp"

namespace lowbit {

// Where a value exactly on the midpoint of two neighbours goes.
enum class TieRule : std::uint8_t {
  lower_value,       // to the smaller value (bitsandbytes' NF4 kernel: `x > midpoint` goes up)
  smaller_magnitude, // to the value nearer zero (bitsandbytes' FP4 kernel: sign, then |x| > midpoint)
  even_rank,         // to the even position in sorted order (bitsandbytes' 8-bit binary search)
};

struct Codebook {
  static constexpr int capacity = 256;
  int bits = 0;  // width of a code
  int size = 0;  // number of codes (<= 2^bits)
  // value[c]: the value of code c.
  float value[capacity] = {};
  // Sorted thresholds with the tie rule folded in: rank(x) = #{k : x > threshold[k]}.
  // Unused slots hold +inf so an 8-step search works for any size.
  float threshold[capacity - 1] = {};
  // code_of_rank[r]: the code of the r-th smallest value.
  std::uint8_t code_of_rank[capacity] = {};
  std::uint8_t zero_code = 0;     // the code nearest 0 (what exact mode stores for NaN and zero blocks)
  std::uint8_t bnb_nan_code = 0;  // the code bitsandbytes' kernel produces for a NaN input
  float max_magnitude = 0;        // max |value|: 1 for the normalised built-in tables
};

namespace detail {
LOWBIT_HD constexpr float next_below(float t) {
  const std::uint32_t b = bit_cast<std::uint32_t>(t);
  if (t > 0.0f) return bit_cast<float>(b - 1u);
  if (t == 0.0f) return bit_cast<float>(0x8000'0001u);  // −smallest subnormal
  return bit_cast<float>(b + 1u);
}
LOWBIT_HD constexpr float fabs_c(float x) { return x < 0.0f ? -x : x; }
LOWBIT_HD constexpr bool before(float a, std::uint32_t ca, float b, std::uint32_t cb) {
  // Sort by value; −0 before +0 (so a sign-magnitude table keeps −0 on the negative side); then by code.
  if (a != b) return a < b;
  const bool na = (bit_cast<std::uint32_t>(a) >> 31) != 0, nb = (bit_cast<std::uint32_t>(b) >> 31) != 0;
  if (na != nb) return na;
  return ca < cb;
}
}  // namespace detail

// Build a codebook from the value of each code. `midpoints`, if given, are the
// size−1 thresholds in sorted order to use instead of fl32((a+b)/2) — for
// tables whose reference implementation uses its own rounded constants
// (bitsandbytes' FP4). Values must be distinct except for ±0.
LOWBIT_HD constexpr Codebook make_codebook(const float* values, int size, int bits, TieRule tie,
                                           std::span<const float> midpoints = {}, std::uint8_t bnb_nan_code = 0) {
  Codebook cb{};
  cb.bits = bits;
  cb.size = size;
  for (int c = 0; c < size; ++c) {
    cb.value[c] = values[c];
    cb.code_of_rank[c] = static_cast<std::uint8_t>(c);
    if (detail::fabs_c(values[c]) > cb.max_magnitude) cb.max_magnitude = detail::fabs_c(values[c]);
  }
  for (int i = 1; i < size; ++i) {  // insertion sort: runs once, at compile time for built-ins
    const std::uint8_t c = cb.code_of_rank[i];
    int j = i;
    while (j > 0 && detail::before(values[c], c, values[cb.code_of_rank[j - 1]], cb.code_of_rank[j - 1])) {
      cb.code_of_rank[j] = cb.code_of_rank[j - 1];
      --j;
    }
    cb.code_of_rank[j] = c;
  }
  for (int k = 0; k < Codebook::capacity - 1; ++k) cb.threshold[k] = bit_cast<float>(0x7F80'0000u);  // +inf
  for (int k = 0; k + 1 < size; ++k) {
    const float lo = values[cb.code_of_rank[k]], hi = values[cb.code_of_rank[k + 1]];
    // (lo + hi) / 2 in binary64 is exact for two floats; one rounding to float.
    // (A span, not a nullable pointer: GCC's UBSan makes `ptr != nullptr` non-constant.)
    float t = !midpoints.empty() ? midpoints[static_cast<std::size_t>(k)] : static_cast<float>((static_cast<double>(lo) + hi) * 0.5);
    bool up = false;
    switch (tie) {
      case TieRule::lower_value: up = false; break;
      case TieRule::smaller_magnitude: up = t <= 0.0f; break;
      case TieRule::even_rank: up = (k % 2) == 1; break;
    }
    cb.threshold[k] = up ? detail::next_below(t) : t;
  }
  // The code nearest zero: the rank of 0 under the table's own rule.
  int r = 0;
  while (r < size - 1 && 0.0f > cb.threshold[r]) ++r;
  cb.zero_code = cb.code_of_rank[r];
  cb.bnb_nan_code = bnb_nan_code;
  return cb;
}

// Rank of x among the sorted values (NaN: 0, the smallest).
LOWBIT_HD LOWBIT_FORCEINLINE int codebook_rank(const Codebook& cb, float x) {
  if (cb.size <= 16) {
    int r = 0;
    for (int k = 0; k < 15; ++k) r += x > cb.threshold[k];
    return r;
  }
  int r = 0;
  for (int step = 128; step > 0; step >>= 1) r += (x > cb.threshold[r + step - 1]) ? step : 0;
  return r;
}

// The code of the value nearest x (ties per the codebook's rule). Values
// beyond the table saturate to its ends; NaN gives the code of the smallest
// value (what bitsandbytes' NF4 and 8-bit kernels do) — callers that want
// another NaN rule handle NaN before calling.
LOWBIT_HD LOWBIT_FORCEINLINE std::uint32_t encode(const Codebook& cb, float x) {
  return cb.code_of_rank[codebook_rank(cb, x)];
}

LOWBIT_HD LOWBIT_FORCEINLINE float decode(const Codebook& cb, std::uint32_t code) { return cb.value[code]; }

}  // namespace lowbit
