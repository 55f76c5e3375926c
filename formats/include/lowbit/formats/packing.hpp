// lowbit/formats/packing.hpp — sub-byte codes packed densely.
//
//   4 bits   two codes per byte, the FIRST element in the HIGH nibble —
//            bitsandbytes' order (its kernels write `q[2j] << 4 | q[2j+1]`),
//            so packed tensors move between bnb and lowbit unchanged. Note:
//            CUDA's __nv_fp4x2 types put the first element in the LOW nibble.
//            An odd count leaves the last low nibble 0.
//   8 bits   one code per byte.
//   other    a little-endian bit stream: code i occupies bits [i·w, (i+1)·w)
//            of the stream, bit j of the stream is bit (j mod 8) of byte
//            j / 8. Six-bit codes: 4 codes in 3 bytes. 16/32-bit codes are
//            therefore little-endian words.
// LOWBIT_HD, no allocation: the caller sizes `out` with packed_bytes().
#pragma once

#include <cstddef>
#include <cstdint>

#include "lowbit/formats/config.hpp"

namespace lowbit {

LOWBIT_HD constexpr std::size_t packed_bytes(std::size_t n, int bits) {
  return (n * static_cast<std::size_t>(bits) + 7) / 8;
}

// Store code (< 2^bits) as element i. The destination bytes must start zeroed
// for widths other than 4 and 8 (bits are OR-ed in).
LOWBIT_HD LOWBIT_FORCEINLINE void pack_code(std::uint8_t* out, std::size_t i, int bits, std::uint32_t code) {
  if (bits == 8) {
    out[i] = static_cast<std::uint8_t>(code);
  } else if (bits == 4) {
    std::uint8_t& b = out[i / 2];
    b = (i % 2 == 0) ? static_cast<std::uint8_t>((b & 0x0F) | (code << 4))
                     : static_cast<std::uint8_t>((b & 0xF0) | (code & 0x0F));
  } else {
    std::size_t bit = i * static_cast<std::size_t>(bits);
    for (int done = 0; done < bits;) {
      const int in_byte = static_cast<int>(bit % 8);
      const int take = (8 - in_byte) < (bits - done) ? (8 - in_byte) : (bits - done);
      const std::uint32_t piece = (code >> done) & ((1u << take) - 1u);
      out[bit / 8] = static_cast<std::uint8_t>(out[bit / 8] | (piece << in_byte));
      bit += static_cast<std::size_t>(take);
      done += take;
    }
  }
}

LOWBIT_HD LOWBIT_FORCEINLINE std::uint32_t unpack_code(const std::uint8_t* in, std::size_t i, int bits) {
  if (bits == 8) return in[i];
  if (bits == 4) return (i % 2 == 0) ? (in[i / 2] >> 4) : (in[i / 2] & 0x0Fu);
  std::uint32_t code = 0;
  std::size_t bit = i * static_cast<std::size_t>(bits);
  for (int done = 0; done < bits;) {
    const int in_byte = static_cast<int>(bit % 8);
    const int take = (8 - in_byte) < (bits - done) ? (8 - in_byte) : (bits - done);
    code |= ((static_cast<std::uint32_t>(in[bit / 8]) >> in_byte) & ((1u << take) - 1u)) << done;
    bit += static_cast<std::size_t>(take);
    done += take;
  }
  return code;
}

// Pack n codes into packed_bytes(n, bits) bytes (zeroed here first).
LOWBIT_HD inline void pack_codes(const std::uint32_t* codes, std::size_t n, int bits, std::uint8_t* out) {
  const std::size_t bytes = packed_bytes(n, bits);
  for (std::size_t b = 0; b < bytes; ++b) out[b] = 0;
  for (std::size_t i = 0; i < n; ++i) pack_code(out, i, bits, codes[i]);
}

LOWBIT_HD inline void unpack_codes(const std::uint8_t* in, std::size_t n, int bits, std::uint32_t* codes) {
  for (std::size_t i = 0; i < n; ++i) codes[i] = unpack_code(in, i, bits);
}

}  // namespace lowbit
