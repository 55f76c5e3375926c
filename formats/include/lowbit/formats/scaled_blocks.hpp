// lowbit/formats/scaled_blocks.hpp — the fixed block layouts, as structs.
//
// Where a scaled format has one fixed block shape, its bytes are spelled out
// here (in the spirit of llama.cpp's block_q4_0), so a kernel or a file reader
// sees the layout in the type. Element codes follow packing.hpp (4-bit: the
// first element in the high nibble; 6-bit: a little-endian bit stream). The
// QuantizedTensor of the registry keeps codes and scales in separate arrays
// (bitsandbytes' layout); these structs are the interleaved form, and the
// functions below read one element from them.
#pragma once

#include <cstdint>

#include "lowbit/formats/minifloats.hpp"
#include "lowbit/formats/packing.hpp"

namespace lowbit {

// OCP MX v1.0, k = 32 elements sharing one E8M0 scale X = 2^(code − 127).
struct MxFp4Block {           // mxfp4 = e2m1fn@32:e8m0 — 17 bytes, 4.25 bits/element
  std::uint8_t scale_e8m0;    // 0xFF = NaN
  std::uint8_t codes[16];     // 32 × E2M1, element 2j in the high nibble of codes[j]
};
struct MxFp6Block {           // mxfp6 = e2m3fn@32:e8m0 (also e3m2fn) — 25 bytes, 6.25 bits
  std::uint8_t scale_e8m0;
  std::uint8_t codes[24];     // 32 × 6 bits, little-endian bit stream
};
struct MxFp8Block {           // mxfp8 = e4m3fn@32:e8m0 (also e5m2) — 33 bytes, 8.25 bits
  std::uint8_t scale_e8m0;
  std::uint8_t codes[32];
};
// NVFP4: 16 E2M1 elements share one E4M3 scale; a tensor carries one fp32
// encode scale S besides (decoded value = e2m1 · e4m3 / S).
struct NvFp4Block {           // nvfp4 = e2m1fn@16:e4m3fn — 9 bytes, 4.5 bits
  std::uint8_t scale_e4m3;
  std::uint8_t codes[8];
};
// bitsandbytes' 4-bit block of 64 (nf4@64, fp4-bnb@64), interleaved; bnb
// itself stores absmax[] and the codes in two arrays.
struct Bnb4Block64 {          // 36 bytes, 4.5 bits
  float absmax;
  std::uint8_t codes[32];
};

static_assert(sizeof(MxFp4Block) == 17 && sizeof(MxFp6Block) == 25 && sizeof(MxFp8Block) == 33);
static_assert(sizeof(NvFp4Block) == 9 && sizeof(Bnb4Block64) == 36);

LOWBIT_HD inline float mx_scale(std::uint8_t scale_e8m0) { return decode<float>(e8m0fnu, scale_e8m0); }

LOWBIT_HD inline float decode_element(const MxFp4Block& b, int i) {
  return decode<float>(e2m1fn, unpack_code(b.codes, static_cast<std::size_t>(i), 4)) * mx_scale(b.scale_e8m0);
}
LOWBIT_HD inline float decode_element(const MxFp6Block& b, int i, const FormatSpec& element = e2m3fn) {
  return decode<float>(element, unpack_code(b.codes, static_cast<std::size_t>(i), 6)) * mx_scale(b.scale_e8m0);
}
LOWBIT_HD inline float decode_element(const MxFp8Block& b, int i, const FormatSpec& element = e4m3fn) {
  return decode<float>(element, b.codes[i]) * mx_scale(b.scale_e8m0);
}
// `tensor_decode_scale` = 1 / S.
LOWBIT_HD inline float decode_element(const NvFp4Block& b, int i, float tensor_decode_scale) {
  return decode<float>(e2m1fn, unpack_code(b.codes, static_cast<std::size_t>(i), 4)) *
         (decode<float>(e4m3fn, b.scale_e4m3) * tensor_decode_scale);
}

}  // namespace lowbit
