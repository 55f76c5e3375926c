// lowbit/formats/minifloat/e3m0.hpp — FP4 E3M0: ±{0, 0.25, 0.5, 1, 2, 4, 8, 16}, powers of two only (a literature FP4 variant).
#pragma once

#include "lowbit/formats/format_spec.hpp"

namespace lowbit {

inline constexpr FormatSpec e3m0{.exp_bits = 3, .man_bits = 0, .bias = 3, .special = Special::finite};

static_assert(spec_error(e3m0) == nullptr);
static_assert(e3m0.max_finite_magnitude() == 0b111);  // 2^4 = 16
static_assert(e3m0.max_finite() == 16.0);
static_assert(e3m0.min_normal() == 0x1p-2);
static_assert(e3m0.min_positive() == 0x1p-2);

}  // namespace lowbit
