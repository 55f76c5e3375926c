// Packing: bitsandbytes' nibble order, little-endian bit streams.
#include <gtest/gtest.h>

#include <random>
#include <vector>

#include "lowbit/formats/packing.hpp"

using namespace lowbit;

TEST(Packing, FourBitFirstElementInHighNibble) {
  // bnb (csrc/kernels.cu): qvals[j] = q[2j] << 4 | q[2j+1].
  const std::uint32_t codes[] = {0x1, 0x2, 0xA, 0xF, 0x7};
  std::uint8_t out[3];
  pack_codes(codes, 5, 4, out);
  EXPECT_EQ(out[0], 0x12);
  EXPECT_EQ(out[1], 0xAF);
  EXPECT_EQ(out[2], 0x70);  // odd count: low nibble 0
  EXPECT_EQ(packed_bytes(5, 4), 3u);
}

TEST(Packing, SixBitLittleEndianStream) {
  // Codes a=0b000001, b=0b100000, c=0b111111, d=0b010101 → stream bits
  // (LSB first) a | b<<6 | c<<12 | d<<18 = 0x57F801 → bytes 01 F8 57.
  const std::uint32_t codes[] = {0b000001, 0b100000, 0b111111, 0b010101};
  std::uint8_t out[3];
  pack_codes(codes, 4, 6, out);
  EXPECT_EQ(out[0], 0x01);
  EXPECT_EQ(out[1], 0xF8);
  EXPECT_EQ(out[2], 0x57);
}

TEST(Packing, RoundTripEveryWidth) {
  std::mt19937 rng(5);
  for (int bits = 1; bits <= 32; ++bits) {
    const std::size_t n = 1 + rng() % 97;
    std::vector<std::uint32_t> codes(n), back(n);
    for (auto& c : codes) c = bits == 32 ? static_cast<std::uint32_t>(rng()) : rng() & ((1u << bits) - 1u);
    std::vector<std::uint8_t> packed(packed_bytes(n, bits));
    pack_codes(codes.data(), n, bits, packed.data());
    unpack_codes(packed.data(), n, bits, back.data());
    EXPECT_EQ(codes, back) << bits;
  }
  // 16-bit codes are little-endian words.
  const std::uint32_t w[] = {0xBEEF};
  std::uint8_t b[2];
  pack_codes(w, 1, 16, b);
  EXPECT_EQ(b[0], 0xEF);
  EXPECT_EQ(b[1], 0xBE);
}
