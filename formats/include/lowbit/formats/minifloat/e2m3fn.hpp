// lowbit/formats/minifloat/e2m3fn.hpp — OCP MX FP6 E2M3: every code finite, no inf, no NaN.
#pragma once

#include "lowbit/formats/format_spec.hpp"

namespace lowbit {

inline constexpr FormatSpec e2m3fn{.exp_bits = 2, .man_bits = 3, .bias = 1, .special = Special::finite};

static_assert(spec_error(e2m3fn) == nullptr);
static_assert(e2m3fn.max_finite_magnitude() == 0b11'111);  // 1.875 * 2^2 = 7.5
static_assert(e2m3fn.max_finite() == 7.5);
static_assert(e2m3fn.min_normal() == 1.0);
static_assert(e2m3fn.min_positive() == 0x1p-3);

}  // namespace lowbit
