// lowbit/formats/minifloat/e4m3fn.hpp — OCP FP8 E4M3 (ml_dtypes float8_e4m3fn): no inf, S.1111.111 is NaN; forward-pass FP8.
#pragma once

#include "lowbit/formats/format_spec.hpp"

namespace lowbit {

inline constexpr FormatSpec e4m3fn{.exp_bits = 4, .man_bits = 3, .bias = 7, .special = Special::fn};

static_assert(spec_error(e4m3fn) == nullptr);
static_assert(e4m3fn.max_finite_magnitude() == 0b1111'110);  // 1.75 * 2^8 = 448
static_assert(e4m3fn.max_finite() == 448.0);
static_assert(e4m3fn.min_normal() == 0x1p-6);
static_assert(e4m3fn.min_positive() == 0x1p-9);

}  // namespace lowbit
