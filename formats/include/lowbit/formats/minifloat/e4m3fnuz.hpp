// lowbit/formats/minifloat/e4m3fnuz.hpp — FP8 E4M3 with bias 8, no −0, 0x80 the one NaN (Graphcore/AMD; ml_dtypes float8_e4m3fnuz).
#pragma once

#include "lowbit/formats/format_spec.hpp"

namespace lowbit {

inline constexpr FormatSpec e4m3fnuz{.exp_bits = 4, .man_bits = 3, .bias = 8, .special = Special::fnuz};

static_assert(spec_error(e4m3fnuz) == nullptr);
static_assert(e4m3fnuz.max_finite_magnitude() == 0b1111'111);  // 1.875 * 2^7 = 240
static_assert(e4m3fnuz.max_finite() == 240.0);
static_assert(e4m3fnuz.min_normal() == 0x1p-7);
static_assert(e4m3fnuz.min_positive() == 0x1p-10);

}  // namespace lowbit
