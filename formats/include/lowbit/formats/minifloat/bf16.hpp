// lowbit/formats/minifloat/bf16.hpp — bfloat16: fp32's exponent range with 7 mantissa bits.
#pragma once

#include "lowbit/formats/format_spec.hpp"

namespace lowbit {

inline constexpr FormatSpec bf16{.exp_bits = 8, .man_bits = 7, .bias = 127, .special = Special::ieee};

static_assert(spec_error(bf16) == nullptr);
static_assert(bf16.max_finite_magnitude() == 0b11111110'1111111);  // (2 - 2^-7) * 2^127 ≈ 3.39e38
static_assert(bf16.max_finite() == 0x1.fep127);
static_assert(bf16.min_normal() == 0x1p-126);
static_assert(bf16.min_positive() == 0x1p-133);

}  // namespace lowbit
