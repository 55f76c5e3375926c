// lowbit/formats/integer.hpp — k-bit integers as quantization elements, k = 2 … 8.
//
//   intK     symmetric: q ∈ [−(2^(k−1) − 1), 2^(k−1) − 1] (the most negative
//            two's-complement code is never produced, so ±q are both
//            representable and 0 is exact); code = q in k-bit two's complement.
//   intK-zp  asymmetric (zero-point): q ∈ [0, 2^k − 1], an integer zero-point
//            z per scale group, value = (q − z) · scale; 0 is exactly q = z.
//
// Rounding is to nearest, ties away from zero (C's round(), the LLM.int8
// blog's arithmetic: round(0.3 · 127) = 38). bitsandbytes' int8 kernels round
// ties to even instead; ties need an input exactly on a half step.
#pragma once

#include <cmath>
#include <cstdint>

#include "lowbit/formats/config.hpp"

namespace lowbit {

struct IntFormat {
  int bits = 8;
  bool zero_point = false;

  friend constexpr bool operator==(const IntFormat&, const IntFormat&) = default;

  // Largest |q| of the symmetric form, largest q of the zero-point form.
  LOWBIT_HD constexpr int qmax() const { return zero_point ? (1 << bits) - 1 : (1 << (bits - 1)) - 1; }
  LOWBIT_HD constexpr std::uint32_t code_mask() const { return (1u << bits) - 1u; }
};

// Round to nearest, ties away, and clamp to [lo, hi]; NaN must be handled by
// the caller (it gives lo). Clamping first keeps huge values and ±inf safe.
LOWBIT_HD LOWBIT_FORCEINLINE int round_clamp(float y, int lo, int hi) {
  const float c = fminf(fmaxf(y, static_cast<float>(lo)), static_cast<float>(hi));
  return static_cast<int>(roundf(c));
}

// Symmetric: q = round(y) clamped to ±qmax, y already divided by the scale.
LOWBIT_HD LOWBIT_FORCEINLINE std::uint32_t encode_int_symmetric(const IntFormat& f, float y) {
  return static_cast<std::uint32_t>(round_clamp(y, -f.qmax(), f.qmax())) & f.code_mask();
}
LOWBIT_HD LOWBIT_FORCEINLINE int decode_int_symmetric(const IntFormat& f, std::uint32_t code) {
  const int shift = 32 - f.bits;  // sign-extend the k-bit two's complement code
  return static_cast<int>(code << shift) >> shift;
}

// Zero-point: q = round(y) + z clamped to [0, qmax].
LOWBIT_HD LOWBIT_FORCEINLINE std::uint32_t encode_int_zero_point(const IntFormat& f, float y, int zero_point) {
  return static_cast<std::uint32_t>(round_clamp(y + static_cast<float>(zero_point), 0, f.qmax()));
}

static_assert(IntFormat{8, false}.qmax() == 127 && IntFormat{8, true}.qmax() == 255);
static_assert(IntFormat{4, false}.qmax() == 7 && IntFormat{2, false}.qmax() == 1);

}  // namespace lowbit
