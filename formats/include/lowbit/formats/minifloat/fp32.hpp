// lowbit/formats/minifloat/fp32.hpp — IEEE binary32; the identity baseline in comparisons.
#pragma once

#include "lowbit/formats/format_spec.hpp"

namespace lowbit {

inline constexpr FormatSpec fp32{.exp_bits = 8, .man_bits = 23, .bias = 127, .special = Special::ieee};

static_assert(spec_error(fp32) == nullptr);
static_assert(fp32.max_finite_magnitude() == 0b11111110'11111111111111111111111);  // (2 - 2^-23) * 2^127 ≈ 3.40e38
static_assert(fp32.max_finite() == 0x1.fffffep127);
static_assert(fp32.min_normal() == 0x1p-126);
static_assert(fp32.min_positive() == 0x1p-149);

}  // namespace lowbit
