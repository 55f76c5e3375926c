// lowbit/formats/minifloat/tf32.hpp — NVIDIA TensorFloat-32: 19 bits, fp32's range, fp16's precision.
#pragma once

#include "lowbit/formats/format_spec.hpp"

namespace lowbit {

inline constexpr FormatSpec tf32{.exp_bits = 8, .man_bits = 10, .bias = 127, .special = Special::ieee};

static_assert(spec_error(tf32) == nullptr);
static_assert(tf32.max_finite_magnitude() == 0b11111110'1111111111);  // (2 - 2^-10) * 2^127
static_assert(tf32.max_finite() == 0x1.ffcp127);
static_assert(tf32.min_normal() == 0x1p-126);
static_assert(tf32.min_positive() == 0x1p-136);

}  // namespace lowbit
