// lowbit/formats/minifloat/e3m2fn.hpp — OCP MX FP6 E3M2: every code finite, no inf, no NaN.
#pragma once

#include "lowbit/formats/format_spec.hpp"

namespace lowbit {

inline constexpr FormatSpec e3m2fn{.exp_bits = 3, .man_bits = 2, .bias = 3, .special = Special::finite};

static_assert(spec_error(e3m2fn) == nullptr);
static_assert(e3m2fn.max_finite_magnitude() == 0b111'11);  // 1.75 * 2^4 = 28
static_assert(e3m2fn.max_finite() == 28.0);
static_assert(e3m2fn.min_normal() == 0x1p-2);
static_assert(e3m2fn.min_positive() == 0x1p-4);

}  // namespace lowbit
