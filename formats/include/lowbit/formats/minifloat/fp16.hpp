// lowbit/formats/minifloat/fp16.hpp — IEEE binary16 (half).
#pragma once

#include "lowbit/formats/format_spec.hpp"

namespace lowbit {

inline constexpr FormatSpec fp16{.exp_bits = 5, .man_bits = 10, .bias = 15, .special = Special::ieee};

static_assert(spec_error(fp16) == nullptr);
static_assert(fp16.max_finite_magnitude() == 0b11110'1111111111);  // (2 - 2^-10) * 2^15 = 65504
static_assert(fp16.max_finite() == 65504.0);
static_assert(fp16.min_normal() == 0x1p-14);
static_assert(fp16.min_positive() == 0x1p-24);

}  // namespace lowbit
