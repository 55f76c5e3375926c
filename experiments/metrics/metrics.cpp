// experiments/metrics/metrics.cpp — see metrics.hpp.
#include "experiments/metrics/metrics.hpp"

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <limits>

namespace lowbit::metrics {

void ErrorSums::merge(const ErrorSums& o) {
  n += o.n;
  n_rel += o.n_rel;
  n_nonfinite_in += o.n_nonfinite_in;
  n_nonfinite_out += o.n_nonfinite_out;
  n_broken += o.n_broken;
  sum_sq_err += o.sum_sq_err;
  sum_sq_x += o.sum_sq_x;
  sum_rel_err += o.sum_rel_err;
  max_abs_err = std::max(max_abs_err, o.max_abs_err);
}

namespace {
ErrorSums accumulate_chunk(const float* x, const float* q, std::size_t n) {
  ErrorSums s;
  double sse = 0, ssx = 0, srel = 0, mx = 0;
  std::uint64_t nf = 0, nrel = 0;
  for (std::size_t i = 0; i < n; ++i) {
    const double xi = x[i], qi = q[i];
    if (!std::isfinite(qi)) ++s.n_nonfinite_out;
    if (!std::isfinite(xi)) {
      ++s.n_nonfinite_in;
      continue;
    }
    ++nf;
    if (!std::isfinite(qi)) {
      ++s.n_broken;
      continue;
    }
    const double e = std::fabs(xi - qi);
    sse += e * e;
    ssx += xi * xi;
    mx = std::max(mx, e);
    if (std::fabs(xi) >= FLT_MIN) {
      srel += e / std::fabs(xi);
      ++nrel;
    }
  }
  s.n = nf;
  s.n_rel = nrel;
  s.sum_sq_err = sse;
  s.sum_sq_x = ssx;
  s.sum_rel_err = srel;
  s.max_abs_err = mx;
  return s;
}
}  // namespace

ErrorSums accumulate(const float* x, const float* q, std::size_t n) {
  const std::size_t chunks = (n + chunk_size - 1) / chunk_size;
  std::vector<ErrorSums> parts(chunks);
  const auto nc = static_cast<std::int64_t>(chunks);
#pragma omp parallel for schedule(static) if (chunks > 8)
  for (std::int64_t c = 0; c < nc; ++c) {
    const std::size_t b = static_cast<std::size_t>(c) * chunk_size;
    parts[static_cast<std::size_t>(c)] = accumulate_chunk(x + b, q + b, std::min(chunk_size, n - b));
  }
  ErrorSums total;
  for (const auto& p : parts) total.merge(p);
  return total;
}

double sqnr_db(double signal, double noise) {
  if (noise == 0) return std::numeric_limits<double>::infinity();
  return 10.0 * std::log10(signal / noise);
}

ErrorMetrics finish(const ErrorSums& s) {
  constexpr double inf = std::numeric_limits<double>::infinity();
  constexpr double nan = std::numeric_limits<double>::quiet_NaN();
  ErrorMetrics m{};
  m.n = s.n;
  m.n_nan = s.n_nonfinite_out;
  m.n_nonfinite_in = s.n_nonfinite_in;
  if (s.n == 0) {
    m.mse = m.rmse = m.max_abs_err = m.mean_rel_err = m.sqnr_db = nan;
    return m;
  }
  if (s.n_broken > 0) {
    m.mse = m.rmse = m.max_abs_err = inf;
    m.sqnr_db = -inf;
    m.mean_rel_err = inf;
    return m;
  }
  m.mse = s.sum_sq_err / static_cast<double>(s.n);
  m.rmse = std::sqrt(m.mse);
  m.max_abs_err = s.max_abs_err;
  m.mean_rel_err = s.n_rel ? s.sum_rel_err / static_cast<double>(s.n_rel) : nan;
  m.sqnr_db = sqnr_db(s.sum_sq_x, s.sum_sq_err);
  return m;
}

const std::vector<ColumnDef>& quant_error_metric_columns() {
  static const std::vector<ColumnDef> c = {
      {"mse", "1", "mean squared error sum((x-q)^2)/n over finite inputs x, q = quantized x, in the data's unit squared"},
      {"rmse", "1", "root mean squared error sqrt(mse), in the data's unit"},
      {"max_abs_err", "1", "maximum |x-q| over finite inputs, in the data's unit"},
      {"mean_rel_err", "1", "mean of |x-q|/|x| over finite inputs with |x| >= 2^-126 (FLT_MIN)"},
      {"sqnr_db", "dB", "signal-to-quantization-noise ratio 10*log10(sum x^2 / sum (x-q)^2); +inf if q == x"},
      {"bits_per_param", "bit", "storage cost per value including scales and their metadata"},
      {"n_nan", "1", "outputs that are NaN or +-inf (finite inputs giving one make mse/rmse/max_abs_err inf, sqnr -inf)"},
      {"n_clipped", "1", "finite inputs saturated to the largest representable magnitude"},
      {"n_nonfinite_in", "1", "inputs that are NaN or +-inf (excluded from the error sums, still quantized)"},
  };
  return c;
}

MatmulErrors matmul_errors(const double* c_ref, const double* c, std::size_t n) {
  double se = 0, sr = 0, mx = 0, mref = 0;
  std::uint64_t bad = 0;
  for (std::size_t i = 0; i < n; ++i) {
    if (!std::isfinite(c[i])) {
      ++bad;
      continue;
    }
    const double e = std::fabs(c[i] - c_ref[i]);
    se += e * e;
    sr += c_ref[i] * c_ref[i];
    mx = std::max(mx, e);
    mref = std::max(mref, std::fabs(c_ref[i]));
  }
  MatmulErrors m{};
  m.n_nan = bad;
  if (bad) {
    m.rel_fro_err = m.max_abs_err = m.max_rel_err = std::numeric_limits<double>::infinity();
    return m;
  }
  m.rel_fro_err = sr > 0 ? std::sqrt(se / sr) : (se > 0 ? std::numeric_limits<double>::infinity() : 0.0);
  m.max_abs_err = mx;
  m.max_rel_err = mref > 0 ? mx / mref : (mx > 0 ? std::numeric_limits<double>::infinity() : 0.0);
  return m;
}

const std::vector<ColumnDef>& matmul_error_metric_columns() {
  static const std::vector<ColumnDef> c = {
      {"rel_fro_err", "1", "relative Frobenius error ||C - C_ref||_F / ||C_ref||_F, C_ref = A*B in fp64 on the unquantized inputs"},
      {"max_abs_err", "1", "maximum |C - C_ref| over all entries"},
      {"max_rel_err", "1", "maximum |C - C_ref| divided by max |C_ref|"},
      {"n_nan", "1", "entries of C that are NaN or +-inf (make the errors inf)"},
  };
  return c;
}

}  // namespace lowbit::metrics
