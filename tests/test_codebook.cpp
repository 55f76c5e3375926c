// Codebooks: nf4 / nfK / fp4-bnb / dyn8 / user tables. Expected values come
// from facts.md, bitsandbytes' kernel source (csrc/kernels.cu, transcribed
// here as an independent oracle), and hand derivation.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <fstream>
#include <random>
#include <vector>

#include "lowbit/formats/codebook_file.hpp"
#include "lowbit/formats/dyn8.hpp"
#include "lowbit/formats/fp4_bnb.hpp"
#include "lowbit/formats/nf.hpp"
#include "lowbit/formats/nf4.hpp"

using namespace lowbit;

namespace {

// facts.md's NF4 table, as doubles.
const double kNf4Facts[16] = {-1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453,
                              -0.28444138169288635, -0.18477343022823334, -0.09105003625154495, 0.0,
                              0.07958029955625534, 0.16093020141124725, 0.24611230194568634, 0.33791524171829224,
                              0.44070982933044434, 0.5626170039176941, 0.7229568362236023, 1.0};

// bitsandbytes' dQuantizeNF4 decision tree (csrc/kernels.cu), transcribed.
unsigned char bnb_quantize_nf4(float x) {
  if (x > 0.03979014977812767f)
    if (x > 0.3893125355243683f)
      if (x > 0.6427869200706482f) return x > 0.8614784181118011f ? 0b1111 : 0b1110;
      else return x > 0.5016634166240692f ? 0b1101 : 0b1100;
    else if (x > 0.2035212516784668f) return x > 0.2920137718319893f ? 0b1011 : 0b1010;
    else return x > 0.1202552504837513f ? 0b1001 : 0b1000;
  else if (x > -0.33967943489551544f)
    if (x > -0.13791173323988914f) return x > -0.045525018125772476f ? 0b0111 : 0b0110;
    else return x > -0.23460740596055984f ? 0b0101 : 0b0100;
  else if (x > -0.6106329262256622f) return x > -0.4599952697753906f ? 0b0011 : 0b0010;
  else return x > -0.8480964004993439f ? 0b0001 : 0b0000;
}

// bitsandbytes' dQuantizeFP4 (csrc/kernels.cu), transcribed.
unsigned char bnb_quantize_fp4(float x) {
  const int sign = x < 0 ? 0b1000 : 0b0000;
  x = std::fabs(x);
  if (x > 0.29166667f)
    if (x > 0.583333f) return (x > 0.8333333f ? 0b0011 : 0b0010) + sign;
    else return (x > 0.4166667f ? 0b101 : 0b100) + sign;
  else if (x > 0.0859375f) return (x > 0.20833333f ? 0b0111 : 0b0110) + sign;
  else if (x > 0.00260417f) return 0b0001 + sign;
  else return 0b0000 + sign;
}

// bitsandbytes' dQuantize<0> (8-bit binary search over a 256-entry code), transcribed.
unsigned char bnb_quantize_8bit(const float* code, float x) {
  int pivot = 127, upper_pivot = 255, lower_pivot = 0;
  float lower = -1.0f, upper = 1.0f, val = code[pivot];
  for (int i = 64; i > 0; i >>= 1) {
    if (x > val) { lower_pivot = pivot; lower = val; pivot += i; }
    else { upper_pivot = pivot; upper = val; pivot -= i; }
    val = code[pivot];
  }
  if (upper_pivot == 255) upper = code[upper_pivot];
  if (lower_pivot == 0) lower = code[lower_pivot];
  if (x > val) return (x > (upper + val) * 0.5f) ? upper_pivot : pivot;
  return (x < (lower + val) * 0.5f) ? lower_pivot : pivot;
}

// Probes: random values, every threshold, and its float neighbours.
std::vector<float> probes(const Codebook& cb, std::uint32_t seed) {
  std::vector<float> xs;
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(-1.1f, 1.1f);
  for (int i = 0; i < 200000; ++i) xs.push_back(u(rng));
  for (int k = 0; k + 1 < cb.size; ++k)
    for (float t : {cb.threshold[k], std::nextafter(cb.threshold[k], 2.0f), std::nextafter(cb.threshold[k], -2.0f)}) {
      xs.push_back(t);
      xs.push_back(std::nextafter(t, 2.0f));
      xs.push_back(std::nextafter(t, -2.0f));
    }
  for (int c = 0; c < cb.size; ++c) xs.push_back(cb.value[c]);
  for (float v : {0.0f, -0.0f, 1.0f, -1.0f, 1e-30f, -1e-30f, 5.0f, -5.0f, INFINITY, -INFINITY}) xs.push_back(v);
  return xs;
}

}  // namespace

TEST(Nf4, TableIsFactsTable) {
  for (int c = 0; c < 16; ++c) EXPECT_EQ(nf4.value[c], static_cast<float>(kNf4Facts[c])) << c;
  EXPECT_EQ(nf4.bits, 4);
  EXPECT_EQ(nf4.zero_code, 7);
}

TEST(Nf4, EncodeEqualsBitsandbytesTreeIncludingTies) {
  for (float x : probes(nf4, 1)) ASSERT_EQ(encode(nf4, x), bnb_quantize_nf4(x)) << std::hexfloat << x;
  EXPECT_EQ(encode(nf4, NAN), bnb_quantize_nf4(NAN));  // 0: −1.0
}

TEST(Nf4, NearestValue) {
  // Away from midpoints the code is the nearest table value (checked in binary64).
  std::mt19937 rng(2);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  for (int i = 0; i < 100000; ++i) {
    const float x = u(rng);
    int best = 0;
    for (int c = 1; c < 16; ++c)
      if (std::fabs(x - kNf4Facts[c]) < std::fabs(x - kNf4Facts[best])) best = c;
    ASSERT_EQ(encode(nf4, x), static_cast<std::uint32_t>(best)) << x;
  }
}

TEST(NfK, GeneratedNf4MatchesTableToTheFloat) {
  const Codebook g = normal_float_codebook(4);
  for (int c = 0; c < 16; ++c) EXPECT_EQ(g.value[c], nf4.value[c]) << c;
}

TEST(NfK, InverseNormalCdf) {
  // Φ⁻¹ at textbook points (tables of the normal distribution, 16+ digits).
  EXPECT_DOUBLE_EQ(normal_quantile(0.5), 0.0);
  EXPECT_NEAR(normal_quantile(0.975), 1.959963984540054, 1e-15);
  EXPECT_NEAR(normal_quantile(0.8413447460685429), 1.0, 1e-14);
  EXPECT_NEAR(normal_quantile(0.001), -3.090232306167814, 1e-14);
  EXPECT_NEAR(normal_quantile(1e-10), -6.361340902404056, 1e-12);
  for (double p : {1e-8, 0.01, 0.2, 0.7, 0.99, 1 - 1e-9})  // round trip through erfc
    EXPECT_NEAR(0.5 * std::erfc(-normal_quantile(p) / std::sqrt(2.0)), p, 4e-16 + 1e-15 * p) << p;
}

TEST(NfK, ShapeForEveryK) {
  for (int k = 2; k <= 8; ++k) {
    const Codebook g = normal_float_codebook(k);
    ASSERT_EQ(g.size, 1 << k);
    EXPECT_EQ(g.value[0], -1.0f);
    EXPECT_EQ(g.value[g.size - 1], 1.0f);
    // 2^(k−1) − 1 negative values, one exact zero, 2^(k−1) positive ones.
    EXPECT_EQ(g.value[(1 << (k - 1)) - 1], 0.0f) << k;
    for (int c = 1; c < g.size; ++c) EXPECT_LT(g.value[c - 1], g.value[c]) << k;
  }
  // nf2 by hand: {Φ⁻¹(q)/Φ⁻¹(o), 0, Φ⁻¹(m)/Φ⁻¹(o), 1} with o = 0.9677083,
  // m = fl32 midpoint of (o, 0.5) = 0.73385417: {−1, 0, 0.34089…, 1}.
  const Codebook g2 = normal_float_codebook(2);
  EXPECT_NEAR(g2.value[2], 0.6245 / 1.8481, 2e-3);
  EXPECT_THROW(normal_float_codebook(9), std::invalid_argument);
}

TEST(Fp4Bnb, ValuesPerBitsandbytes) {
  // peers.md: E2M1 (bnb's bias-3 reading) scaled by 1/12, code 0b001 = 0.0625/12.
  const double twelfths[8] = {0, 0.0625, 8, 12, 4, 6, 2, 3};
  for (int c = 0; c < 8; ++c) {
    EXPECT_NEAR(fp4_bnb.value[c], twelfths[c] / 12, 3e-8) << c;  // bnb's float literals
    EXPECT_NEAR(fp4_bnb.value[c + 8], -twelfths[c] / 12, 3e-8) << c;
  }
  EXPECT_TRUE(std::signbit(fp4_bnb.value[8]));
}

TEST(Fp4Bnb, EncodeEqualsBitsandbytesTreeIncludingTiesAndSignedZero) {
  for (float x : probes(fp4_bnb, 3)) ASSERT_EQ(encode(fp4_bnb, x), bnb_quantize_fp4(x)) << x;
  EXPECT_EQ(encode(fp4_bnb, -0.0f), 0u);
  EXPECT_EQ(encode(fp4_bnb, -1e-6f), 0b1000u);
  EXPECT_EQ(fp4_bnb.bnb_nan_code, bnb_quantize_fp4(NAN));
}

TEST(Dyn8, Shape) {
  // 7 decades × 2^i means × 2 signs = 254, plus 0 and 1.
  EXPECT_EQ(dyn8.size, 256);
  EXPECT_EQ(dyn8.value[127], 0.0f);
  EXPECT_EQ(dyn8.value[255], 1.0f);
  // Smallest magnitude: 1e−6 · mean(0.1, 1) = 5.5e−7; largest below 1:
  // the last midpoint of linspace(0.1, 1, 65) = 1 − 0.9/128 = 0.99296875.
  EXPECT_FLOAT_EQ(dyn8.value[128], 5.5e-7f);
  EXPECT_FLOAT_EQ(dyn8.value[126], -5.5e-7f);
  EXPECT_FLOAT_EQ(dyn8.value[254], 0.99296875f);
  EXPECT_FLOAT_EQ(dyn8.value[0], -0.99296875f);
  for (int c = 1; c < 256; ++c) EXPECT_LT(dyn8.value[c - 1], dyn8.value[c]);
}

TEST(Dyn8, EncodeEqualsBitsandbytesSearchIncludingTies) {
  for (float x : probes(dyn8, 4)) {
    const float y = std::fmin(std::fmax(x, -1.0f), 1.0f);  // bnb's input is x / absmax ∈ [−1, 1]
    ASSERT_EQ(encode(dyn8, y), bnb_quantize_8bit(dyn8.value, y)) << y;
  }
  EXPECT_EQ(encode(dyn8, NAN), bnb_quantize_8bit(dyn8.value, NAN));
}

TEST(UserTable, TextAndNpy) {
  const std::string txt = testing::TempDir() + "lowbit_table.txt";
  {
    std::ofstream f(txt);
    f << "# a 3-entry table, code order\n-2, 0.5\n  7 # trailing comment\n";
  }
  const Codebook cb = load_codebook(txt);
  EXPECT_EQ(cb.size, 3);
  EXPECT_EQ(cb.bits, 2);
  EXPECT_EQ(cb.value[0], -2.0f);
  EXPECT_EQ(cb.max_magnitude, 7.0f);
  EXPECT_EQ(encode(cb, 3.75f), 1u);  // midpoint of 0.5 and 7: the lower value
  EXPECT_EQ(encode(cb, 3.76f), 2u);
  EXPECT_EQ(encode(cb, -0.75f), 0u);  // midpoint of −2 and 0.5: lower
  EXPECT_EQ(encode(cb, 100.0f), 2u);

  // A .npy written byte by byte (format 1.0, '<f8', shape (4,)).
  const std::string npy = testing::TempDir() + "lowbit_table.npy";
  {
    std::string header = "{'descr': '<f8', 'fortran_order': False, 'shape': (4,), }";
    while ((10 + header.size() + 1) % 64) header += ' ';
    header += '\n';
    std::ofstream f(npy, std::ios::binary);
    f.write("\x93NUMPY\x01\x00", 8);
    const unsigned short len = static_cast<unsigned short>(header.size());
    f.put(static_cast<char>(len & 0xFF));
    f.put(static_cast<char>(len >> 8));
    f << header;
    for (double d : {0.0, 1.0, -1.0, 0.25}) f.write(reinterpret_cast<const char*>(&d), 8);
  }
  const Codebook cn = load_codebook(npy);
  EXPECT_EQ(cn.size, 4);
  EXPECT_EQ(cn.value[3], 0.25f);
  EXPECT_EQ(encode(cn, 0.7f), 1u);
  EXPECT_EQ(encode(cn, 0.6f), 3u);
  EXPECT_EQ(encode(cn, -0.6f), 2u);

  EXPECT_THROW(load_codebook(testing::TempDir() + "does_not_exist.txt"), FormatError);
  {
    std::ofstream f(txt);
    f << "1 2 2\n";
  }
  EXPECT_THROW(load_codebook(txt), FormatError);  // duplicate
  {
    std::ofstream f(txt);
    f << "1 x\n";
  }
  EXPECT_THROW(load_codebook(txt), FormatError);
}
