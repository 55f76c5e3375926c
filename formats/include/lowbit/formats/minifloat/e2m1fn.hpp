// lowbit/formats/minifloat/e2m1fn.hpp — OCP MX FP4 E2M1: values ±{0, 0.5, 1, 1.5, 2, 3, 4, 6}, no inf, no NaN.
#pragma once

#include "lowbit/formats/format_spec.hpp"

namespace lowbit {

inline constexpr FormatSpec e2m1fn{.exp_bits = 2, .man_bits = 1, .bias = 1, .special = Special::finite};

static_assert(spec_error(e2m1fn) == nullptr);
static_assert(e2m1fn.max_finite_magnitude() == 0b11'1);  // 1.5 * 2^2 = 6
static_assert(e2m1fn.max_finite() == 6.0);
static_assert(e2m1fn.min_normal() == 1.0);
static_assert(e2m1fn.min_positive() == 0.5);

}  // namespace lowbit
