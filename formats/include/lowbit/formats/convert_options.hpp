// lowbit/formats/convert_options.hpp — every policy of a conversion, named.
//
// Libraries disagree on the corner cases of narrowing conversions (what NaN
// becomes in a format without NaN, whether +inf saturates, ...). lowbit makes
// each choice an explicit field and ships presets that reproduce each
// library bit for bit, so differential tests can match any of them.
#pragma once

#include <cstdint>

#include "lowbit/formats/config.hpp"

namespace lowbit {

enum class Rounding : std::uint8_t {
  nearest_even,    // IEEE roundTiesToEven (default)
  nearest_away,    // IEEE roundTiesToAway (ml_dtypes' E8M0)
  toward_zero,     // truncate the magnitude
  away_from_zero,  // any discarded bit rounds the magnitude up
  stochastic,      // up with probability (discarded fraction); caller gives the random bits
};

enum class Overflow : std::uint8_t {
  saturate,  // finite values beyond max finite become ±max finite
  special,   // ... become ±inf (ieee) or NaN (fn, fnuz, E8M0); formats with neither saturate
};

// A NaN input into a format that has no NaN (finite policy: FP6, FP4).
enum class NanToFinite : std::uint8_t {
  positive_max,       // +max finite (CUDA's __nv_cvt_*_to_fp6/fp4)
  zero_flipped_sign,  // ∓0, sign inverted (ml_dtypes 0.6)
};

// Infinite inputs when overflow saturates.
enum class InfUnderSaturation : std::uint8_t {
  to_max,    // ±inf → ±max finite (CUDA __NV_SATFINITE)
  keep_inf,  // ±inf stays ±inf where the format has inf
};

// NaN outputs from NaN inputs (an overflowed number that becomes NaN keeps its sign).
enum class NanSign : std::uint8_t {
  preserve,  // the input NaN's sign (ml_dtypes)
  positive,  // always the positive NaN code (CUDA)
};

// Which NaN code an ieee-policy format produces.
enum class IeeeNanCode : std::uint8_t {
  quiet,     // exponent all ones, top mantissa bit only: 0x7E for E5M2 (ml_dtypes)
  all_ones,  // exponent and mantissa all ones: 0x7F for E5M2 (CUDA)
};

// Inputs an unsigned scale (E8M0) cannot hold: zero and negative numbers.
enum class UnsignedScaleEdge : std::uint8_t {
  nan,              // zero and negatives become NaN (ml_dtypes)
  magnitude_clamp,  // use |x|; zero and tiny values clamp to the smallest scale (CUDA)
};

struct ConvertOptions {
  Rounding rounding = Rounding::nearest_even;
  Overflow overflow = Overflow::saturate;
  bool flush_subnormals = false;  // a result that is subnormal in the target becomes ±0
  NanToFinite nan_to_finite = NanToFinite::positive_max;
  InfUnderSaturation inf_under_saturation = InfUnderSaturation::to_max;
  NanSign nan_sign = NanSign::preserve;
  IeeeNanCode ieee_nan_code = IeeeNanCode::quiet;
  UnsignedScaleEdge unsigned_edge = UnsignedScaleEdge::magnitude_clamp;

  friend constexpr bool operator==(const ConvertOptions&, const ConvertOptions&) = default;
};

namespace presets {

// lowbit's default: round to nearest even, saturate (what quantization wants).
inline constexpr ConvertOptions lowbit{};

// OCP 8-bit FP / MX v1.0 with the saturating conversion the MX spec requires
// for element formats; NaN stays NaN where the format has one.
inline constexpr ConvertOptions ocp{};

// CUDA's host/device conversions (cuda_fp8.h, cuda_fp6.h, cuda_fp4.h).
// `saturate` selects __NV_SATFINITE vs __NV_NOSAT for FP8 and E8M0. CUDA's
// fp32 and fp64 paths differ on NaN inputs: __nv_cvt_float_to_fp8 gives the
// positive all-ones NaN (0x7F) for every NaN, __nv_cvt_double_to_fp8 keeps
// the sign and gives the quiet NaN (0x7E for E5M2); pass fp64_input to match.
LOWBIT_HD constexpr ConvertOptions cuda(bool saturate, Rounding rounding = Rounding::nearest_even,
                                        bool fp64_input = false) {
  ConvertOptions o;
  o.rounding = rounding;
  o.overflow = saturate ? Overflow::saturate : Overflow::special;
  o.nan_to_finite = NanToFinite::positive_max;
  o.inf_under_saturation = InfUnderSaturation::to_max;
  o.nan_sign = fp64_input ? NanSign::preserve : NanSign::positive;
  o.ieee_nan_code = fp64_input ? IeeeNanCode::quiet : IeeeNanCode::all_ones;
  o.unsigned_edge = UnsignedScaleEdge::magnitude_clamp;
  return o;
}

// ml_dtypes 0.6 `astype`: non-saturating, NaN keeps its sign, E8M0 rounds
// ties away from zero and turns zero and negatives into NaN.
LOWBIT_HD constexpr ConvertOptions ml_dtypes(bool is_e8m0 = false) {
  ConvertOptions o;
  o.rounding = is_e8m0 ? Rounding::nearest_away : Rounding::nearest_even;
  o.overflow = Overflow::special;
  o.nan_to_finite = NanToFinite::zero_flipped_sign;
  o.inf_under_saturation = InfUnderSaturation::keep_inf;
  o.nan_sign = NanSign::preserve;
  o.ieee_nan_code = IeeeNanCode::quiet;
  o.unsigned_edge = UnsignedScaleEdge::nan;
  return o;
}

}  // namespace presets
}  // namespace lowbit
