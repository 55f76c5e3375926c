// lowbit/formats/minifloat/e4m3.hpp — FP8 E4M3 read IEEE-style: top exponent holds inf and NaN (ml_dtypes float8_e4m3).
#pragma once

#include "lowbit/formats/format_spec.hpp"

namespace lowbit {

inline constexpr FormatSpec e4m3{.exp_bits = 4, .man_bits = 3, .bias = 7, .special = Special::ieee};

static_assert(spec_error(e4m3) == nullptr);
static_assert(e4m3.max_finite_magnitude() == 0b1110'111);  // 1.875 * 2^7 = 240
static_assert(e4m3.max_finite() == 240.0);
static_assert(e4m3.min_normal() == 0x1p-6);
static_assert(e4m3.min_positive() == 0x1p-9);

}  // namespace lowbit
