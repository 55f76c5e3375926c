// lowbit/formats/minifloat/e1m2.hpp — FP4 E1M2: ±{0, 0.5, …, 3.5} in even steps, an int-like FP4 variant.
#pragma once

#include "lowbit/formats/format_spec.hpp"

namespace lowbit {

inline constexpr FormatSpec e1m2{.exp_bits = 1, .man_bits = 2, .bias = 0, .special = Special::finite};

static_assert(spec_error(e1m2) == nullptr);
static_assert(e1m2.max_finite_magnitude() == 0b1'11);  // 1.75 * 2^1 = 3.5
static_assert(e1m2.max_finite() == 3.5);
static_assert(e1m2.min_normal() == 2.0);
static_assert(e1m2.min_positive() == 0.5);

}  // namespace lowbit
