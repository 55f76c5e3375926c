// lowbit/formats/minifloat/e5m2fnuz.hpp — FP8 E5M2 with bias 16, no inf, no −0, 0x80 the one NaN (ml_dtypes float8_e5m2fnuz).
#pragma once

#include "lowbit/formats/format_spec.hpp"

namespace lowbit {

inline constexpr FormatSpec e5m2fnuz{.exp_bits = 5, .man_bits = 2, .bias = 16, .special = Special::fnuz};

static_assert(spec_error(e5m2fnuz) == nullptr);
static_assert(e5m2fnuz.max_finite_magnitude() == 0b11111'11);  // 1.75 * 2^15 = 57344
static_assert(e5m2fnuz.max_finite() == 57344.0);
static_assert(e5m2fnuz.min_normal() == 0x1p-15);
static_assert(e5m2fnuz.min_positive() == 0x1p-17);

}  // namespace lowbit
