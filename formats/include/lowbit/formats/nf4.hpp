// lowbit/formats/nf4.hpp — NF4 (QLoRA NormalFloat, 4 bits): 16 quantiles of
// N(0, 1) normalised to [−1, 1] with an exact zero, code = rank.
//
// The values are bitsandbytes' table (facts.md), which is what
// `normal_float_codebook(4)` (nf.hpp) regenerates to the float. Encoding uses
// bitsandbytes' kernel constants (dQuantizeNF4's tree of `x > t` tests, so a
// tie goes to the lower value). They are the binary64 midpoints printed to
// 16 digits; where a midpoint falls exactly halfway between two floats the
// float literal rounds the printed decimal, not the midpoint, so four of them
// (k = 0, 8, 12, 14) sit one ulp off fl32(midpoint): kept, to equal bnb.
#pragma once

#include "lowbit/formats/codebook.hpp"

namespace lowbit {

inline constexpr float nf4_values[16] = {
    -1.0f,                  // 0b0000
    -0.6961928009986877f,   // 0b0001
    -0.5250730514526367f,   // 0b0010
    -0.39491748809814453f,  // 0b0011
    -0.28444138169288635f,  // 0b0100
    -0.18477343022823334f,  // 0b0101
    -0.09105003625154495f,  // 0b0110
    0.0f,                   // 0b0111
    0.07958029955625534f,   // 0b1000
    0.16093020141124725f,   // 0b1001
    0.24611230194568634f,   // 0b1010
    0.33791524171829224f,   // 0b1011
    0.44070982933044434f,   // 0b1100
    0.5626170039176941f,    // 0b1101
    0.7229568362236023f,    // 0b1110
    1.0f,                   // 0b1111
};

// csrc/kernels.cu dQuantizeNF4's constants, ascending.
inline constexpr float nf4_midpoints[15] = {
    -0.8480964004993439f,  -0.6106329262256622f, -0.4599952697753906f, -0.33967943489551544f,
    -0.23460740596055984f, -0.13791173323988914f, -0.045525018125772476f, 0.03979014977812767f,
    0.1202552504837513f,   0.2035212516784668f,  0.2920137718319893f,  0.3893125355243683f,
    0.5016634166240692f,   0.6427869200706482f,  0.8614784181118011f,
};

// NaN: every `x > t` is false, so bitsandbytes stores code 0 (−1.0).
inline constexpr Codebook nf4 = make_codebook(nf4_values, 16, 4, TieRule::lower_value, nf4_midpoints, 0b0000);

static_assert(nf4.zero_code == 0b0111);
static_assert(nf4.threshold[7] == 0.03979014977812767f);  // bitsandbytes' first tree constant

}  // namespace lowbit
