// kernels/cpu/llm_int8.hpp — LLM.int8() on the CPU: the reference.
//
// C = A · B with A (m × k, activations) and B (k × n, weights), row-major.
//
// Vector-wise int8 (LLM.int8 paper §3.2): each row i of A is scaled by its
// absmax a_i, each column j of B by its absmax b_j, both to [−127, 127]
// (round half away from zero, as integer.hpp); the int32 product is
// dequantized by the outer product: C_ij = (A_q B_q)_ij · a_i · b_j / 127².
//
// LLM.int8() decomposition (§3.3): the columns of A holding any
// |value| >= threshold (6.0) are outliers; those columns of A and the
// matching rows of B are multiplied in 16/32-bit, the rest with vector-wise
// int8 (B's column absmax without the outlier rows), and the two results are
// added. A's row absmax, two rules (RowAbsmax):
//   outlier_values_excluded   (default) over the values |a| < threshold —
//                             bitsandbytes' int8_vectorwise_quant. It needs
//                             only the row, so the GPU quantizes X in one
//                             pass; a row's values below the threshold in an
//                             outlier column still count (they are then
//                             zeroed with the column).
//   outlier_columns_excluded  over the columns that are not outliers — the
//                             paper's X^{h\O}; every row depends on every
//                             other row's outliers, so X is read twice. Fp16 mode rounds the outlier inputs, the two partial
// products and the sum to fp16, as the fp16 GPU path does (fp32 accumulate).
// Products by Eigen; the int32 product is exact (|A_q B_q| < 2^31 for k < 133 000).
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace lowbit::cpu {

enum class OutlierPrecision { fp32, fp16 };
enum class RowAbsmax { outlier_values_excluded, outlier_columns_excluded };

struct LlmInt8Result {
  std::vector<float> c;                  // m × n, row-major
  std::vector<std::size_t> outlier_cols;  // columns of A treated in 16/32-bit
};

// The columns of A (m × k) holding any |a| >= threshold, ascending.
std::vector<std::size_t> outlier_columns(const float* a, std::size_t m, std::size_t k, float threshold);

// A's rows as int8 (m × k, row-major) and their absmax: the absmax by `rule`
// (outlier_columns_excluded: over the columns `keep`; outlier_values_excluded:
// over the values |a| < threshold), int8 = round(a · 127 / absmax), ties away
// from zero, saturated to ±127 (integer.hpp's round_clamp: NaN → −127), and 0
// in the columns not kept. Plain vector-wise int8: every column kept,
// outlier_columns_excluded. The GPU's activation quantizer equals this.
struct Int8Rows {
  std::vector<std::int8_t> q;
  std::vector<float> absmax;
};
Int8Rows int8_rows(const float* a, std::size_t m, std::size_t k, const std::vector<bool>& keep, RowAbsmax rule,
                   float threshold);

// Vector-wise int8 matmul (no outlier handling).
std::vector<float> int8_vectorwise_matmul(const float* a, const float* b, std::size_t m, std::size_t k,
                                          std::size_t n);

// LLM.int8(): outlier columns of A (any |a| >= threshold) in fp32 or fp16, the rest int8.
LlmInt8Result llm_int8_matmul(const float* a, const float* b, std::size_t m, std::size_t k, std::size_t n,
                              float threshold = 6.0f, OutlierPrecision precision = OutlierPrecision::fp16,
                              RowAbsmax rule = RowAbsmax::outlier_values_excluded);

// fp64 reference product.
std::vector<double> matmul_fp64(const float* a, const float* b, std::size_t m, std::size_t k, std::size_t n);

}  // namespace lowbit::cpu
