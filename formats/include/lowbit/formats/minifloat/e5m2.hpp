// lowbit/formats/minifloat/e5m2.hpp — OCP FP8 E5M2 (IEEE-style: inf and NaN in the top exponent); gradients.
#pragma once

#include "lowbit/formats/format_spec.hpp"

namespace lowbit {

inline constexpr FormatSpec e5m2{.exp_bits = 5, .man_bits = 2, .bias = 15, .special = Special::ieee};

static_assert(spec_error(e5m2) == nullptr);
static_assert(e5m2.max_finite_magnitude() == 0b11110'11);  // 1.75 * 2^15 = 57344
static_assert(e5m2.max_finite() == 57344.0);
static_assert(e5m2.min_normal() == 0x1p-14);
static_assert(e5m2.min_positive() == 0x1p-16);

}  // namespace lowbit
