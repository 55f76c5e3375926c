// lowbit/formats/minifloat/e8m0fnu.hpp — OCP MX E8M0 scale: unsigned powers of two 2^-127 … 2^127, 0xFF is NaN, no zero.
#pragma once

#include "lowbit/formats/format_spec.hpp"

namespace lowbit {

inline constexpr FormatSpec e8m0fnu{.exp_bits = 8, .man_bits = 0, .bias = 127, .special = Special::unsigned_scale};

static_assert(spec_error(e8m0fnu) == nullptr);
static_assert(e8m0fnu.max_finite_magnitude() == 0b1111'1110);  // 2^127
static_assert(e8m0fnu.max_finite() == 0x1p127);
static_assert(e8m0fnu.min_normal() == 0x1p-127);
static_assert(e8m0fnu.min_positive() == 0x1p-127);

}  // namespace lowbit
