// lowbit/formats/format_spec.hpp — a minifloat format as a small value.
//
// A FormatSpec says how a bit pattern of 1 + E + M bits (sign, exponent,
// mantissa; no sign bit for unsigned scales) reads as a real number, and what
// the top codes mean. It is a structural type, so the same value serves as a
// template argument (`encode<e4m3fn>(x)`, folded at compile time in kernels)
// and as a run-time value (`encode(spec, x)`, the registry and the CLI).
//
// Every limit (max finite, min normal, ...) is a constexpr function of the
// spec, derived from the code that holds it, never typed in by hand.
#pragma once

#include <cstdint>

#include "lowbit/formats/config.hpp"

namespace lowbit {

// What the codes with the top exponent (and a few others) mean.
enum class Special : std::uint8_t {
  ieee,            // top exponent: mantissa 0 = ±inf, else NaN (E5M2, FP16, BF16)
  fn,              // finite; only S.1111.111 is NaN (OCP E4M3 = e4m3fn)
  fnuz,            // finite; no −0: 1.0000.000 is the single NaN (e4m3fnuz)
  finite,          // every code is a finite number (OCP FP6/FP4: e2m3fn, e2m1fn)
  unsigned_scale,  // no sign, no zero, no subnormals; all-ones is NaN (E8M0)
};

LOWBIT_HD constexpr const char* special_name(Special s) noexcept {
  switch (s) {
    case Special::ieee: return "ieee";
    case Special::fn: return "fn";
    case Special::fnuz: return "fnuz";
    case Special::finite: return "finite";
    case Special::unsigned_scale: return "unsigned_scale";
  }
  return "?";
}

struct FormatSpec {
  int exp_bits = 0;   // E >= 1
  int man_bits = 0;   // M >= 0 (stored fraction bits, the implicit 1 not counted)
  int bias = 0;       // value = 2^(exp_field - bias) * 1.mantissa for normals
  Special special = Special::ieee;

  friend constexpr bool operator==(const FormatSpec&, const FormatSpec&) = default;

  // ---- layout -------------------------------------------------------------
  LOWBIT_HD constexpr bool is_signed() const { return special != Special::unsigned_scale; }
  LOWBIT_HD constexpr bool has_subnormals() const { return special != Special::unsigned_scale; }
  LOWBIT_HD constexpr bool has_zero() const { return special != Special::unsigned_scale; }
  LOWBIT_HD constexpr bool has_negative_zero() const {
    return is_signed() && special != Special::fnuz;
  }
  LOWBIT_HD constexpr bool has_inf() const { return special == Special::ieee; }
  LOWBIT_HD constexpr bool has_nan() const { return special != Special::finite; }
  LOWBIT_HD constexpr int total_bits() const { return (is_signed() ? 1 : 0) + exp_bits + man_bits; }
  LOWBIT_HD constexpr std::uint32_t code_count() const { return std::uint32_t{1} << total_bits(); }
  LOWBIT_HD constexpr std::uint32_t sign_mask() const {
    return is_signed() ? std::uint32_t{1} << (exp_bits + man_bits) : 0u;
  }
  LOWBIT_HD constexpr std::uint32_t magnitude_mask() const {
    return (std::uint32_t{1} << (exp_bits + man_bits)) - 1u;
  }
  LOWBIT_HD constexpr std::uint32_t exp_field_max() const { return (std::uint32_t{1} << exp_bits) - 1u; }

  // Exponent of the smallest normal binade (its exponent field is 1, or 0
  // for formats without subnormals).
  LOWBIT_HD constexpr int min_normal_exp() const { return (has_subnormals() ? 1 : 0) - bias; }

  // Magnitude bits (exponent and mantissa, no sign) of the largest finite value.
  LOWBIT_HD constexpr std::uint32_t max_finite_magnitude() const {
    switch (special) {
      case Special::ieee: return ((exp_field_max() - 1u) << man_bits) | ((1u << man_bits) - 1u);
      case Special::fn: return magnitude_mask() - 1u;  // all ones is NaN
      case Special::fnuz:
      case Special::finite: return magnitude_mask();
      case Special::unsigned_scale: return magnitude_mask() - 1u;
    }
    return 0;
  }

  // ---- special codes --------------------------------------------------------
  LOWBIT_HD constexpr std::uint32_t inf_code(bool negative) const {  // only when has_inf()
    return (negative ? sign_mask() : 0u) | (exp_field_max() << man_bits);
  }
  // The NaN this library produces: quiet (top mantissa bit set) for ieee,
  // all ones for fn / unsigned scales, 0x80.. for fnuz.
  LOWBIT_HD constexpr std::uint32_t nan_code(bool negative) const {
    switch (special) {
      case Special::ieee:
        return (negative ? sign_mask() : 0u) | (exp_field_max() << man_bits) | (1u << (man_bits - 1));
      case Special::fn: return (negative ? sign_mask() : 0u) | magnitude_mask();
      case Special::fnuz: return sign_mask();
      case Special::unsigned_scale: return magnitude_mask();
      case Special::finite: return 0;  // no NaN; callers never ask
    }
    return 0;
  }
  LOWBIT_HD constexpr bool is_nan_code(std::uint32_t code) const {
    const std::uint32_t mag = code & magnitude_mask();
    switch (special) {
      case Special::ieee: return (mag >> man_bits) == exp_field_max() && (mag & ((1u << man_bits) - 1u)) != 0;
      case Special::fn: return mag == magnitude_mask();
      case Special::fnuz: return code == sign_mask();
      case Special::unsigned_scale: return mag == magnitude_mask();
      case Special::finite: return false;
    }
    return false;
  }
  LOWBIT_HD constexpr bool is_inf_code(std::uint32_t code) const {
    return has_inf() && (code & magnitude_mask()) == (exp_field_max() << man_bits);
  }

  // ---- values of magnitude codes (exact in binary64) -----------------------
  LOWBIT_HD constexpr double magnitude_value(std::uint32_t mag) const {
    const std::uint32_t exp_field = mag >> man_bits;
    const std::uint32_t frac = mag & ((1u << man_bits) - 1u);
    if (has_subnormals() && exp_field == 0) return frac * pow2(1 - bias - man_bits);
    return ((std::uint64_t{1} << man_bits) + frac) * pow2(static_cast<int>(exp_field) - bias - man_bits);
  }

  // ---- limits -----------------------------------------------------------------
  LOWBIT_HD constexpr double max_finite() const { return magnitude_value(max_finite_magnitude()); }
  LOWBIT_HD constexpr double min_normal() const { return pow2(min_normal_exp()); }
  // Smallest positive value (the smallest subnormal, or the smallest normal
  // for formats without subnormals).
  LOWBIT_HD constexpr double min_positive() const {
    return has_subnormals() && man_bits > 0 ? pow2(min_normal_exp() - man_bits) : min_normal();
  }
  LOWBIT_HD constexpr double min_subnormal() const { return min_positive(); }
  // Distance from 1.0 to the next larger value (2^-M), the usual machine epsilon.
  LOWBIT_HD constexpr double epsilon() const { return pow2(-man_bits); }
  // Number of distinct finite values (−0 and +0 count as one value).
  LOWBIT_HD constexpr std::uint32_t finite_value_count() const {
    const std::uint32_t positive_magnitudes = max_finite_magnitude() + 1u;  // codes 0..max
    if (!is_signed()) return positive_magnitudes;
    return 2u * positive_magnitudes - (has_zero() ? 1u : 0u);
  }
  // log2(max finite / min positive): how many binades the format spans.
  LOWBIT_HD constexpr double dynamic_range_binades() const {
    // Both limits are exact, so the ratio is exact; log2 of an exact value.
    const double ratio = max_finite() / min_positive();
    int e = 0;
    double m = ratio;
    while (m >= 2.0) { m *= 0.5; ++e; }
    // log2(m) for m in [1, 2) by the series-free bisection of 52 bits.
    double frac = 0.0, bit = 0.5;
    for (int i = 0; i < 52; ++i) {
      m *= m;
      if (m >= 2.0) { m *= 0.5; frac += bit; }
      bit *= 0.5;
    }
    return e + frac;
  }
};

// The standard bias of an E-bit exponent: 2^(E-1) − 1 (fnuz: 2^(E-1)).
LOWBIT_HD constexpr int standard_bias(int exp_bits, Special special) {
  return (1 << (exp_bits - 1)) - (special == Special::fnuz ? 0 : 1);
}

// Why a spec cannot be used, or nullptr if it can. Limits: codes of at most
// 32 bits, at most fp32's 23 mantissa bits (encoders take fp32 and fp64
// input), and every value exact in binary64.
LOWBIT_HD constexpr const char* spec_error(const FormatSpec& s) {
  if (s.exp_bits < 1) return "exponent bits must be >= 1";
  if (s.man_bits < 0) return "mantissa bits must be >= 0";
  if (s.man_bits > 23) return "more than 23 mantissa bits (fp32's) are not supported";
  if (s.exp_bits > 11) return "more than 11 exponent bits do not fit binary64";
  if (s.total_bits() > 32) return "formats wider than 32 bits are not supported";
  if (s.special == Special::ieee && s.man_bits < 1) return "ieee policy needs >= 1 mantissa bit (NaN and inf share the top exponent)";
  if (s.special == Special::ieee && s.exp_bits < 2) return "ieee policy needs >= 2 exponent bits";
  if (s.special == Special::fn && s.exp_bits + s.man_bits < 2) return "fn policy needs >= 2 magnitude bits";
  // Every value must be exact in binary64.
  const int top_exp = static_cast<int>(s.exp_field_max()) - s.bias;
  if (top_exp > 1023) return "largest exponent exceeds binary64's range";
  if (s.min_normal_exp() - s.man_bits < -1074) return "smallest value is below binary64's range";
  return nullptr;
}

}  // namespace lowbit
