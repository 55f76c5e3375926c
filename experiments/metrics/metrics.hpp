// experiments/metrics/metrics.hpp — every error metric lowbit reports,
// defined once. The definitions below are also written, word for word, as
// the column descriptions of the results tables (metric_columns()).
//
// For an input x (n values) and its quantized image q:
//   mse          = Σ (x−q)² / n                         over finite inputs
//   rmse         = √mse
//   max_abs_err  = max |x−q|
//   mean_rel_err = mean of |x−q| / |x| over finite x with |x| ≥ 2^-126
//                  (FLT_MIN; smaller |x| would make the ratio meaningless)
//   sqnr_db      = 10·log10(Σx² / Σ(x−q)²); +inf when q == x exactly
//   n_nan        = outputs that are NaN or ±inf (from any input)
//   n_nonfinite_in = inputs that are NaN or ±inf; they are excluded from the
//                  sums above but still quantized (and counted in n_nan if
//                  the format keeps them non-finite)
// A finite input whose output is NaN/inf makes mse, rmse, max_abs_err
// infinite and sqnr_db −inf: never a silently finite number.
//
// Sums are in double over fixed chunks of `chunk_size` values, combined in
// chunk order, so the result does not depend on the number of threads.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace lowbit::metrics {

inline constexpr std::size_t chunk_size = 1 << 14;

struct ErrorSums {
  std::uint64_t n = 0;               // finite inputs
  std::uint64_t n_rel = 0;           // inputs in mean_rel_err
  std::uint64_t n_nonfinite_in = 0;  // NaN/inf inputs
  std::uint64_t n_nonfinite_out = 0; // NaN/inf outputs
  std::uint64_t n_broken = 0;        // finite input, NaN/inf output
  double sum_sq_err = 0, sum_sq_x = 0, sum_rel_err = 0, max_abs_err = 0;

  void merge(const ErrorSums& o);  // in a fixed order for determinism
};

// Accumulate over x[0..n), q[0..n). Multi-threaded, deterministic.
ErrorSums accumulate(const float* x, const float* q, std::size_t n);

struct ErrorMetrics {
  double mse, rmse, max_abs_err, mean_rel_err, sqnr_db;
  std::uint64_t n, n_nan, n_nonfinite_in;
};
ErrorMetrics finish(const ErrorSums& s);

// The metric columns of the quant_error table: name, unit, description.
struct ColumnDef {
  const char* name;
  const char* unit;
  const char* description;
};
const std::vector<ColumnDef>& quant_error_metric_columns();

// Matrix-product error against an fp64 reference C_ref (n values each):
//   rel_fro_err = ‖C − C_ref‖_F / ‖C_ref‖_F
//   max_abs_err = max |C − C_ref|
//   max_rel_err = max |C − C_ref| / max |C_ref|
struct MatmulErrors {
  double rel_fro_err, max_abs_err, max_rel_err;
  std::uint64_t n_nan;  // non-finite entries of C
};
MatmulErrors matmul_errors(const double* c_ref, const double* c, std::size_t n);
const std::vector<ColumnDef>& matmul_error_metric_columns();

// 10·log10(signal/noise) with the conventions above (noise 0 → +inf).
double sqnr_db(double signal, double noise);

}  // namespace lowbit::metrics
