// kernels/cpu/llm_int8.cpp — see llm_int8.hpp.
#include "kernels/cpu/llm_int8.hpp"

#include <Eigen/Dense>
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>

#include "lowbit/formats/integer.hpp"
#include "lowbit/formats/minifloat.hpp"
#include "lowbit/formats/minifloat/fp16.hpp"

namespace lowbit::cpu {
namespace {

using RowMajorF = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using RowMajorI = Eigen::Matrix<std::int32_t, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

float to_fp16(float x) { return quantize(fp16, x); }

// round(127 · x / absmax), ties away; 0 for an all-zero vector.
int quantize_int8(float x, float absmax) { return absmax > 0.0f ? round_clamp(x * (127.0f / absmax), -127, 127) : 0; }

// Vector-wise int8 product of A restricted to columns `keep` (mask) and B
// restricted to the same rows; A's rows as int8_rows() quantizes them.
RowMajorF vectorwise(const float* a, const float* b, std::size_t m, std::size_t k, std::size_t n,
                     const std::vector<bool>& keep, RowAbsmax rule, float threshold) {
  const Int8Rows rows = int8_rows(a, m, k, keep, rule, threshold);
  const std::vector<float>& row_absmax = rows.absmax;
  std::vector<float> col_absmax(n, 0.0f);
  for (std::size_t t = 0; t < k; ++t)
    if (keep[t])
      for (std::size_t j = 0; j < n; ++j) col_absmax[j] = std::max(col_absmax[j], std::fabs(b[t * n + j]));
  RowMajorI aq(static_cast<Eigen::Index>(m), static_cast<Eigen::Index>(k));
  RowMajorI bq(static_cast<Eigen::Index>(k), static_cast<Eigen::Index>(n));
  for (std::size_t i = 0; i < m; ++i)
    for (std::size_t t = 0; t < k; ++t) aq(i, t) = rows.q[i * k + t];
  for (std::size_t t = 0; t < k; ++t)
    for (std::size_t j = 0; j < n; ++j) bq(t, j) = keep[t] ? quantize_int8(b[t * n + j], col_absmax[j]) : 0;
  const RowMajorI c32 = aq * bq;
  RowMajorF c(static_cast<Eigen::Index>(m), static_cast<Eigen::Index>(n));
  constexpr float inv_127_sq = 1.0f / (127.0f * 127.0f);
  for (std::size_t i = 0; i < m; ++i)
    for (std::size_t j = 0; j < n; ++j)
      c(i, j) = static_cast<float>(c32(i, j)) * (row_absmax[i] * col_absmax[j] * inv_127_sq);
  return c;
}

}  // namespace

std::vector<std::size_t> outlier_columns(const float* a, std::size_t m, std::size_t k, float threshold) {
  std::vector<std::size_t> cols;
  for (std::size_t t = 0; t < k; ++t)
    for (std::size_t i = 0; i < m; ++i)
      if (std::fabs(a[i * k + t]) >= threshold) {
        cols.push_back(t);
        break;
      }
  return cols;
}

Int8Rows int8_rows(const float* a, std::size_t m, std::size_t k, const std::vector<bool>& keep, RowAbsmax rule,
                   float threshold) {
  Int8Rows r;
  r.absmax.assign(m, 0.0f);
  r.q.assign(m * k, 0);
  const bool by_column = rule == RowAbsmax::outlier_columns_excluded;
  for (std::size_t i = 0; i < m; ++i) {
    for (std::size_t t = 0; t < k; ++t) {
      const float v = std::fabs(a[i * k + t]);  // std::max below ignores NaN
      if (by_column ? keep[t] : !(v >= threshold)) r.absmax[i] = std::max(r.absmax[i], v);
    }
    for (std::size_t t = 0; t < k; ++t)
      if (keep[t]) r.q[i * k + t] = static_cast<std::int8_t>(quantize_int8(a[i * k + t], r.absmax[i]));
  }
  return r;
}

std::vector<float> int8_vectorwise_matmul(const float* a, const float* b, std::size_t m, std::size_t k,
                                          std::size_t n) {
  const RowMajorF c = vectorwise(a, b, m, k, n, std::vector<bool>(k, true), RowAbsmax::outlier_columns_excluded,
                                 std::numeric_limits<float>::infinity());
  return std::vector<float>(c.data(), c.data() + c.size());
}

LlmInt8Result llm_int8_matmul(const float* a, const float* b, std::size_t m, std::size_t k, std::size_t n,
                              float threshold, OutlierPrecision precision, RowAbsmax rule) {
  LlmInt8Result r;
  r.outlier_cols = outlier_columns(a, m, k, threshold);
  std::vector<bool> keep(k, true);
  for (std::size_t t : r.outlier_cols) keep[t] = false;
  RowMajorF c = vectorwise(a, b, m, k, n, keep, rule, threshold);
  const bool half = precision == OutlierPrecision::fp16;
  if (!r.outlier_cols.empty()) {
    const auto ko = static_cast<Eigen::Index>(r.outlier_cols.size());
    RowMajorF ao(static_cast<Eigen::Index>(m), ko), bo(ko, static_cast<Eigen::Index>(n));
    for (Eigen::Index o = 0; o < ko; ++o) {
      const std::size_t t = r.outlier_cols[static_cast<std::size_t>(o)];
      for (std::size_t i = 0; i < m; ++i) ao(i, o) = half ? to_fp16(a[i * k + t]) : a[i * k + t];
      for (std::size_t j = 0; j < n; ++j) bo(o, j) = half ? to_fp16(b[t * n + j]) : b[t * n + j];
    }
    const RowMajorF co = ao * bo;
    for (Eigen::Index i = 0; i < c.rows(); ++i)
      for (Eigen::Index j = 0; j < c.cols(); ++j)
        c(i, j) = half ? to_fp16(to_fp16(c(i, j)) + to_fp16(co(i, j))) : c(i, j) + co(i, j);
  } else if (half) {
    for (Eigen::Index i = 0; i < c.size(); ++i) c.data()[i] = to_fp16(c.data()[i]);
  }
  r.c.assign(c.data(), c.data() + c.size());
  return r;
}

std::vector<double> matmul_fp64(const float* a, const float* b, std::size_t m, std::size_t k, std::size_t n) {
  using RowMajorD = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  const RowMajorD ad = Eigen::Map<const RowMajorF>(a, static_cast<Eigen::Index>(m), static_cast<Eigen::Index>(k)).cast<double>();
  const RowMajorD bd = Eigen::Map<const RowMajorF>(b, static_cast<Eigen::Index>(k), static_cast<Eigen::Index>(n)).cast<double>();
  const RowMajorD c = ad * bd;
  return std::vector<double>(c.data(), c.data() + c.size());
}

}  // namespace lowbit::cpu
