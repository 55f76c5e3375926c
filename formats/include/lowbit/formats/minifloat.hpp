// lowbit/formats/minifloat.hpp — the one encode and one decode algorithm.
//
// encode(spec, x, options, random_bits) turns an fp32 or fp64 value into a
// code of any FormatSpec; decode(spec, code) turns it back. Both are integer
// arithmetic on the bit pattern, branch-light, and usable at two binding
// times with the same body:
//
//   encode(lowbit::e4m3fn, x)         spec at run time (registry, CLI)
//   encode<lowbit::e4m3fn>(x)         spec a template argument: every
//                                      spec-derived constant folds away
//
// The steps of encode, in order:
//   1. split the input into sign, exponent e and integer significand m
//      (implicit bit made explicit, input subnormals normalised);
//   2. NaN, ±inf, zero and values an unsigned scale cannot hold go to their
//      policy (convert_options.hpp) and return;
//   3. pick the target quantum at this magnitude: 2^(max(e, emin) − M);
//   4. drop the d bits of m below that quantum and round (nearest-even,
//      ties-away, toward zero, away from zero, or stochastic);
//   5. assemble the magnitude code; a carry out of the mantissa moves into
//      the exponent field for free, subnormals need no special case;
//   6. overflow (code beyond max finite) and subnormal flushing per policy,
//      then the sign (fnuz has no −0).
#pragma once

#include <cstdint>

#include "lowbit/formats/config.hpp"
#include "lowbit/formats/convert_options.hpp"
#include "lowbit/formats/format_spec.hpp"

namespace lowbit {

// IEEE binary interchange formats an encoder reads.
template <class F> struct ieee_source;
template <> struct ieee_source<float> {
  using bits_t = std::uint32_t;
  static constexpr int exp_bits = 8, man_bits = 23, bias = 127, width = 32;
  static constexpr bits_t inf = 0x7F80'0000u, quiet_nan = 0x7FC0'0000u;
};
template <> struct ieee_source<double> {
  using bits_t = std::uint64_t;
  static constexpr int exp_bits = 11, man_bits = 52, bias = 1023, width = 64;
  static constexpr bits_t inf = 0x7FF0'0000'0000'0000u, quiet_nan = 0x7FF8'0000'0000'0000u;
};

namespace detail {

// Step 4: the rounding decision. m >> d is the truncated magnitude; returns
// 1 when it must be incremented. d may exceed 63 (then m >> d is 0).
LOWBIT_HD LOWBIT_FORCEINLINE std::uint32_t round_increment(std::uint64_t m, int d, std::uint64_t truncated,
                                                           Rounding rounding, std::uint32_t random_bits) {
  if (d <= 0) return 0;
  const bool all_dropped = d >= 64;
  const std::uint64_t rem = all_dropped ? m : (m & ((std::uint64_t{1} << d) - 1));
  switch (rounding) {
    case Rounding::toward_zero: return 0;
    case Rounding::away_from_zero: return rem != 0;
    case Rounding::nearest_even:
    case Rounding::nearest_away: {
      if (all_dropped) return 0;  // rem < 2^63 <= half
      const std::uint64_t half = std::uint64_t{1} << (d - 1);
      if (rem != half) return rem > half;
      return rounding == Rounding::nearest_away ? 1u : static_cast<std::uint32_t>(truncated & 1u);
    }
    case Rounding::stochastic: {
      // Round up with probability rem / 2^d, resolved to 32 bits: the
      // dropped fraction as a 32-bit fixed-point number plus 32 random bits
      // carries into bit 32 exactly that often. Exact for d <= 32.
      std::uint64_t frac32;
      if (d <= 32) frac32 = rem << (32 - d);
      else if (d - 32 < 64) frac32 = rem >> (d - 32);
      else frac32 = 0;
      return static_cast<std::uint32_t>((frac32 + random_bits) >> 32);
    }
  }
  return 0;
}

LOWBIT_HD LOWBIT_FORCEINLINE std::uint32_t nan_result(const FormatSpec& s, bool negative, const ConvertOptions& o) {
  const bool neg = o.nan_sign == NanSign::preserve && negative;
  switch (s.special) {
    case Special::finite:
      if (o.nan_to_finite == NanToFinite::positive_max) return s.max_finite_magnitude();
      return negative ? 0u : s.sign_mask();  // ∓0
    case Special::ieee:
      if (o.ieee_nan_code == IeeeNanCode::all_ones) return (neg ? s.sign_mask() : 0u) | s.magnitude_mask();
      return s.nan_code(neg);
    default: return s.nan_code(neg);
  }
}

// Overflow of a finite value (or ±inf when `is_inf`).
LOWBIT_HD LOWBIT_FORCEINLINE std::uint32_t overflow_result(const FormatSpec& s, bool negative, bool is_inf,
                                                           const ConvertOptions& o) {
  const std::uint32_t sign = negative ? s.sign_mask() : 0u;
  const std::uint32_t max_code = sign | s.max_finite_magnitude();
  if (s.special == Special::finite) return max_code;  // nothing else to become
  // IEEE 754: rounding toward zero never rounds a finite value to infinity.
  const bool saturate = o.overflow == Overflow::saturate || (!is_inf && o.rounding == Rounding::toward_zero);
  if (saturate && !(is_inf && o.inf_under_saturation == InfUnderSaturation::keep_inf && s.has_inf()))
    return max_code;
  if (s.has_inf()) return s.inf_code(negative);
  return s.nan_code(negative);  // an overflowed value keeps its sign (CUDA, ml_dtypes)
}

}  // namespace detail

// Encode x (fp32 or fp64) into spec s. `random_bits` is used only by
// Rounding::stochastic; pass 32 uniformly random bits per call.
template <class F>
LOWBIT_HD LOWBIT_FORCEINLINE std::uint32_t encode(const FormatSpec& s, F x, const ConvertOptions& o = {},
                                                  std::uint32_t random_bits = 0) {
  using src = ieee_source<F>;
  using bits_t = typename src::bits_t;
  constexpr bits_t sign_bit = bits_t{1} << (src::width - 1);
  constexpr bits_t inf_bits = ((bits_t{1} << src::exp_bits) - 1) << src::man_bits;
  constexpr bits_t man_mask = (bits_t{1} << src::man_bits) - 1;

  // Step 1: split.
  const bits_t bits = bit_cast<bits_t>(x);
  const bool negative = (bits & sign_bit) != 0;
  const bits_t abs = bits & ~sign_bit;
  const std::uint32_t sign_code = negative ? s.sign_mask() : 0u;

  // Step 2: special inputs.
  if (abs > inf_bits) return detail::nan_result(s, negative, o);
  if (!s.is_signed() && (negative || abs == 0) && o.unsigned_edge == UnsignedScaleEdge::nan)
    return s.nan_code(false);  // an unsigned scale holds neither zero nor negatives
  if (abs == inf_bits) return detail::overflow_result(s, negative, true, o);
  if (abs == 0) {
    if (!s.has_zero()) return 0;  // no zero: clamp to the smallest scale
    return s.has_negative_zero() ? sign_code : 0u;
  }

  int e;  // unbiased exponent of the leading bit
  std::uint64_t m = abs & man_mask;
  const int exp_field = static_cast<int>(abs >> src::man_bits);
  if (exp_field != 0) {
    m |= std::uint64_t{1} << src::man_bits;
    e = exp_field - src::bias;
  } else {  // input subnormal: normalise so the leading bit sits at man_bits
    const int shift = src::man_bits + 1 - bit_width(m);
    m <<= shift;
    e = 1 - src::bias - shift;
  }
  // Now |x| = m * 2^(e - man_bits) with 2^man_bits <= m < 2^(man_bits+1).

  // Far above the format's range: overflow before any shift can misbehave.
  const int emin = s.min_normal_exp();
  const int top_exp = static_cast<int>(s.exp_field_max()) - s.bias;
  if (e > top_exp + 1) return detail::overflow_result(s, negative, false, o);

  // Step 3: quantum exponent; d bits of m lie below it.
  const int e_eff = e > emin ? e : emin;
  const int d = e_eff - s.man_bits - (e - src::man_bits);

  // Step 4: truncate and round.
  const std::uint64_t truncated = d >= 64 ? 0 : (m >> d);
  const std::uint64_t r = truncated + detail::round_increment(m, d, truncated, o.rounding, random_bits);

  // Step 5: assemble. For e >= emin, r in [2^M, 2^(M+1)] and the field
  // arithmetic below carries into the exponent; below emin r is a subnormal
  // count in [0, 2^M] (with subnormals) or must clamp (E8M0).
  std::uint64_t mag;
  if (s.has_subnormals()) {
    mag = (static_cast<std::uint64_t>(e_eff - emin) << s.man_bits) + r;
  } else {
    if (e < emin || r < (std::uint64_t{1} << s.man_bits)) {
      mag = 0;  // below the smallest scale: clamp to it
    } else {
      mag = (static_cast<std::uint64_t>(e_eff - emin) << s.man_bits) + r - (std::uint64_t{1} << s.man_bits);
    }
  }

  // Step 6: overflow, flushing, sign.
  if (mag > s.max_finite_magnitude()) return detail::overflow_result(s, negative, false, o);
  if (o.flush_subnormals && s.has_subnormals() && mag < (std::uint64_t{1} << s.man_bits)) mag = 0;
  if (mag == 0 && s.has_zero()) return s.has_negative_zero() ? sign_code : 0u;
  return sign_code | static_cast<std::uint32_t>(mag);
}

// Decode a code of spec s to a float type F (float or double). The result is
// exact when the value is representable in F (always for double; for float
// when the spec's range and precision fit binary32).
template <class F = double>
LOWBIT_HD LOWBIT_FORCEINLINE F decode(const FormatSpec& s, std::uint32_t code) {
  const std::uint32_t mag = code & s.magnitude_mask();
  const bool negative = (code & s.sign_mask()) != 0;
  using bits = ieee_source<F>;
  if (s.is_nan_code(code)) {
    const F nan = bit_cast<F>(bits::quiet_nan);
    return negative ? -nan : nan;
  }
  if (s.is_inf_code(code)) {
    const F inf = bit_cast<F>(bits::inf);
    return negative ? -inf : inf;
  }
  const std::uint32_t exp_field = mag >> s.man_bits;
  const std::uint32_t frac = mag & ((1u << s.man_bits) - 1u);
  F v;
  if (s.has_subnormals() && exp_field == 0) {
    v = static_cast<F>(frac) * static_cast<F>(pow2(1 - s.bias - s.man_bits));
  } else {
    v = static_cast<F>((std::uint64_t{1} << s.man_bits) + frac) *
        static_cast<F>(pow2(static_cast<int>(exp_field) - s.bias - s.man_bits));
  }
  return negative ? -v : v;
}

// ---- compile-time binding -----------------------------------------------------

template <FormatSpec S, class F>
LOWBIT_HD LOWBIT_FORCEINLINE std::uint32_t encode(F x, const ConvertOptions& o = {}, std::uint32_t random_bits = 0) {
  static_assert(spec_error(S) == nullptr, "invalid FormatSpec");
  return encode(S, x, o, random_bits);
}

template <FormatSpec S, class F = double>
LOWBIT_HD LOWBIT_FORCEINLINE F decode(std::uint32_t code) {
  static_assert(spec_error(S) == nullptr, "invalid FormatSpec");
  return decode<F>(S, code);
}

// Round x to the nearest value of s (encode then decode), in the type of x.
template <class F>
LOWBIT_HD LOWBIT_FORCEINLINE F quantize(const FormatSpec& s, F x, const ConvertOptions& o = {},
                                        std::uint32_t random_bits = 0) {
  return decode<F>(s, encode(s, x, o, random_bits));
}

}  // namespace lowbit
