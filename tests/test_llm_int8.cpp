// LLM.int8() CPU reference: vector-wise int8 by hand, and the decomposition
// against an fp64 reference on planted outlier columns.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "kernels/cpu/llm_int8.hpp"

using namespace lowbit::cpu;

namespace {
double rel_frobenius(const std::vector<float>& c, const std::vector<double>& ref) {
  double e = 0, s = 0;
  for (std::size_t i = 0; i < c.size(); ++i) e += (c[i] - ref[i]) * (c[i] - ref[i]), s += ref[i] * ref[i];
  return std::sqrt(e / s);
}
}  // namespace

TEST(LlmInt8, VectorwiseByHand) {
  // A = [[1, −2], [4, 0.5]] (row absmax 2, 4), B = [[1, 3], [−1, 6]] (col absmax 1, 6).
  // A_q = [[64 (63.5 → 64), −127], [127, 16 (15.875)]], B_q = [[127, 64 (63.5)], [−127, 127]].
  // C_q[0][0] = 64·127 + 127·127 = 24257 → · 2·1/127² = 3.00787…  (exact: 1·1 + 2·1 = 3).
  const std::vector<float> a = {1, -2, 4, 0.5f}, b = {1, 3, -1, 6};
  const auto c = int8_vectorwise_matmul(a.data(), b.data(), 2, 2, 2);
  EXPECT_NEAR(c[0], 24257.0 * 2 * 1 / (127.0 * 127), 1e-5);
  // C[1][1] = (127·64 + 16·127) · 4·6/127² = 10160 · 24/16129.
  EXPECT_NEAR(c[3], 10160.0 * 24 / 16129, 1e-4);
}

TEST(LlmInt8, DecompositionBeatsVectorwiseTenfoldOnOutliers) {
  const std::size_t m = 64, k = 512, n = 128;
  std::mt19937 rng(17);
  std::normal_distribution<float> d(0.0f, 1.0f);
  std::vector<float> a(m * k), b(k * n);
  for (auto& v : a) v = d(rng) * 0.5f;  // |a| < 6 except in the planted columns
  for (auto& v : b) v = d(rng) * 0.05f;
  for (std::size_t t : {7u, 100u, 333u, 480u})  // outlier features: magnitude 20 … 60
    for (std::size_t i = 0; i < m; ++i) a[i * k + t] = (i % 2 ? 1 : -1) * (20.0f + 40.0f * (i % 7) / 6);
  for (std::size_t i = 0; i < m * k; ++i)
    if (std::fabs(a[i]) >= 6.0f && i % k != 7 && i % k != 100 && i % k != 333 && i % k != 480) a[i] = 5.0f;
  const auto ref = matmul_fp64(a.data(), b.data(), m, k, n);
  const double err_int8 = rel_frobenius(int8_vectorwise_matmul(a.data(), b.data(), m, k, n), ref);
  const auto r16 = llm_int8_matmul(a.data(), b.data(), m, k, n, 6.0f, OutlierPrecision::fp16);
  const auto r32 = llm_int8_matmul(a.data(), b.data(), m, k, n, 6.0f, OutlierPrecision::fp32);
  EXPECT_EQ(r32.outlier_cols, (std::vector<std::size_t>{7, 100, 333, 480}));
  const double err16 = rel_frobenius(r16.c, ref), err32 = rel_frobenius(r32.c, ref);
  std::printf("relative Frobenius error: int8 vector-wise %.3e, LLM.int8 fp16 %.3e (%.1fx), fp32 %.3e (%.1fx)\n",
              err_int8, err16, err_int8 / err16, err32, err_int8 / err32);
  EXPECT_GE(err_int8 / err16, 10.0);
  EXPECT_GE(err_int8 / err32, 10.0);
  // Without outliers the decomposition is plain vector-wise int8 (fp32 mode: identical).
  const auto none = llm_int8_matmul(b.data(), b.data(), 4, 32, 32, 6.0f, OutlierPrecision::fp32);
  EXPECT_TRUE(none.outlier_cols.empty());
  EXPECT_EQ(none.c, int8_vectorwise_matmul(b.data(), b.data(), 4, 32, 32));
}

// The two row-absmax rules by hand. A = [[1, 5, 0.5], [2, 10, 1]], threshold
// 6: column 1 is an outlier column (10). Row 0's absmax is 5 under
// bitsandbytes' rule (its values below 6) and 1 under the paper's (its
// non-outlier columns). B = [1, 0, 0]ᵀ (column absmax 1 → 127), so C[0] is
// the int8 part alone: 25 (round(25.4)) · 127 · 5 · 1 / 127² = 125/127
// against 127 · 127 · 1 · 1 / 127² = 1.
TEST(LlmInt8, RowAbsmaxRulesByHand) {
  const std::vector<float> a = {1, 5, 0.5f, 2, 10, 1}, b = {1, 0, 0};
  const auto values = llm_int8_matmul(a.data(), b.data(), 2, 3, 1, 6.0f, OutlierPrecision::fp32,
                                      RowAbsmax::outlier_values_excluded);
  const auto columns = llm_int8_matmul(a.data(), b.data(), 2, 3, 1, 6.0f, OutlierPrecision::fp32,
                                       RowAbsmax::outlier_columns_excluded);
  EXPECT_EQ(values.outlier_cols, (std::vector<std::size_t>{1}));
  EXPECT_EQ(columns.outlier_cols, (std::vector<std::size_t>{1}));
  EXPECT_NEAR(values.c[0], 125.0 / 127, 1e-6);
  EXPECT_NEAR(columns.c[0], 1.0, 1e-6);
  // Row 1: its only value below 6 outside column 1 is the largest either way (2): the rules agree.
  EXPECT_EQ(values.c[1], columns.c[1]);
}
