// lowbit/formats/minifloat/e3m4.hpp — FP8 E3M4, IEEE-style (ml_dtypes float8_e3m4).
#pragma once

#include "lowbit/formats/format_spec.hpp"

namespace lowbit {

inline constexpr FormatSpec e3m4{.exp_bits = 3, .man_bits = 4, .bias = 3, .special = Special::ieee};

static_assert(spec_error(e3m4) == nullptr);
static_assert(e3m4.max_finite_magnitude() == 0b110'1111);  // 1.9375 * 2^3 = 15.5
static_assert(e3m4.max_finite() == 15.5);
static_assert(e3m4.min_normal() == 0x1p-2);
static_assert(e3m4.min_positive() == 0x1p-6);

}  // namespace lowbit
