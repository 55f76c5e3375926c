// lowbit/formats/fp4_bnb.hpp — bitsandbytes' FP4 ("fp4" in quantize_4bit).
//
// A sign bit over a 3-bit magnitude code. The magnitudes are E2M1-like
// values divided by 12 (bnb's "bias 3" reading: 0.0625, 2, 3, 4, 6, 8, 12),
// so, unlike OCP E2M1 (e2m1fn.hpp), code 0b001 is 0.0625/12 and the largest
// value is 1. Layout checked against bitsandbytes' CUDA kernels
// (csrc/kernels.cu, dQuantizeFP4 / fp4_dequantization_lut):
//
//   magnitude code  0b000 0b001      0b010 0b011 0b100 0b101 0b110 0b111
//   value × 12      0     0.0625     8     12    4     6     2     3
//
// Encoding reproduces bnb's decision tree: sign = (x < 0), then |x| against
// its literal constants (0.00260417f, …, 0.8333333f — not all equal to the
// fl32 midpoints); a tie goes to the smaller magnitude. −0.0, +0.0 and NaN
// all give code 0 (+0), as in bnb.
#pragma once

#include "lowbit/formats/codebook.hpp"

namespace lowbit {

// bitsandbytes' float literals (fp4_dequantization_lut), code order.
inline constexpr float fp4_bnb_values[16] = {
    0.0f,  0.005208333333f,  0.66666667f,  1.0f,  0.33333333f,  0.5f,  0.16666667f,  0.25f,
    -0.0f, -0.005208333333f, -0.66666667f, -1.0f, -0.33333333f, -0.5f, -0.16666667f, -0.25f,
};

// bnb's tree constants on |x|, ascending, mirrored for the negative side;
// the 0 between −0 and +0 sends ±0 to +0 (smaller-magnitude ties go up there).
inline constexpr float fp4_bnb_midpoints[15] = {
    -0.8333333f, -0.583333f, -0.4166667f, -0.29166667f, -0.20833333f, -0.0859375f, -0.00260417f, 0.0f,
    0.00260417f, 0.0859375f, 0.20833333f, 0.29166667f,  0.4166667f,   0.583333f,   0.8333333f,
};

inline constexpr Codebook fp4_bnb =
    make_codebook(fp4_bnb_values, 16, 4, TieRule::smaller_magnitude, fp4_bnb_midpoints, 0b0000);

static_assert(fp4_bnb.zero_code == 0b0000);
static_assert(fp4_bnb.code_of_rank[0] == 0b1011 && fp4_bnb.code_of_rank[15] == 0b0011);

}  // namespace lowbit
