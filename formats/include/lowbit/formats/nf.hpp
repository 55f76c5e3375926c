// lowbit/formats/nf.hpp — NF-k (NormalFloat, k = 2 … 8), generated the QLoRA way.
//
// bitsandbytes' create_normal_map(offset = 0.9677083, use_extra_value=True)
// for k bits: 2^(k−1) positive values Φ⁻¹(p) at p = linspace(offset, 0.5,
// 2^(k−1) + 1) without its last point, 2^(k−1) − 1 negative values −Φ⁻¹(p)
// at linspace(offset, 0.5, 2^(k−1)) without its last point, and 0; sorted
// and divided by the largest. The asymmetry buys an exact zero.
//
// Each step is done in the arithmetic bnb's code does it in, so k = 4
// reproduces nf4.hpp's table to the float (a test): the quantile points in
// float32 (torch.linspace's scalar formula: start + step·i for the first
// half, end − step·(n−1−i) for the rest), Φ⁻¹ in binary64 (scipy), rounded to
// float32, divided in float32. Host-only (std::erfc, std::log).
#pragma once

#include <cmath>
#include <stdexcept>
#include <string>
#include <utility>

#include "lowbit/formats/codebook.hpp"

namespace lowbit {

// Φ⁻¹(p), the standard normal quantile, to binary64 accuracy: Acklam's
// rational approximation (relative error < 1.2e-9) polished by one Halley
// step on Φ(x) − p with Φ from std::erfc (cubic convergence: ~1e-16).
inline double normal_quantile(double p) {
  if (!(p > 0.0 && p < 1.0)) {
    if (p == 0.0) return -HUGE_VAL;
    if (p == 1.0) return HUGE_VAL;
    return std::nan("");
  }
  static constexpr double a[] = {-3.969683028665376e+01, 2.209460984245205e+02, -2.759285104469687e+02,
                                 1.383577518672690e+02,  -3.066479806614716e+01, 2.506628277459239e+00};
  static constexpr double b[] = {-5.447609879822406e+01, 1.615858368580409e+02, -1.556989798598866e+02,
                                 6.680131188771972e+01,  -1.328068155288572e+01};
  static constexpr double c[] = {-7.784894002430293e-03, -3.223964580411365e-01, -2.400758277161838e+00,
                                 -2.549732539343734e+00, 4.374664141464968e+00,  2.938163982698783e+00};
  static constexpr double d[] = {7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e+00,
                                 3.754408661907416e+00};
  constexpr double p_low = 0.02425;
  double x;
  if (p < p_low) {
    const double q = std::sqrt(-2 * std::log(p));
    x = (((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) /
        ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1);
  } else if (p <= 1 - p_low) {
    const double q = p - 0.5, r = q * q;
    x = (((((a[0] * r + a[1]) * r + a[2]) * r + a[3]) * r + a[4]) * r + a[5]) * q /
        (((((b[0] * r + b[1]) * r + b[2]) * r + b[3]) * r + b[4]) * r + 1);
  } else {
    const double q = std::sqrt(-2 * std::log1p(-p));
    x = -(((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) /
        ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1);
  }
  // Halley: e = Φ(x) − p, u = e / φ(x), x ← x − u / (1 + x·u/2). Twice: the
  // second step only confirms the last bit.
  for (int i = 0; i < 2; ++i) {
    const double e = 0.5 * std::erfc(-x / std::sqrt(2.0)) - p;
    const double u = e * 2.5066282746310002  /* √(2π) */ * std::exp(x * x / 2);
    x = x - u / (1 + x * u / 2);
  }
  return x;
}

namespace detail {
// torch.linspace(start, end, steps) in float32, scalar path.
inline float torch_linspace_f32(float start, float end, int steps, int i) {
  const float step = (end - start) / static_cast<float>(steps - 1);
  if (i < steps / 2) return start + step * static_cast<float>(i);
  return end - step * static_cast<float>(steps - 1 - i);
}
}  // namespace detail

inline constexpr double nf_default_offset = 0.9677083;

// NF-k for k = 2 … 8 (code = rank; ties to the lower value, as nf4).
inline Codebook normal_float_codebook(int k, double offset = nf_default_offset) {
  if (k < 2 || k > 8) throw std::invalid_argument("nf" + std::to_string(k) + ": NF-k needs 2 <= k <= 8");
  const int half = 1 << (k - 1);
  float v[256];
  int n = 0;
  const float off = static_cast<float>(offset);
  for (int i = 0; i < half; ++i)  // linspace(offset, 0.5, half + 1)[:-1]
    v[n++] = static_cast<float>(normal_quantile(detail::torch_linspace_f32(off, 0.5f, half + 1, i)));
  for (int i = 0; i + 1 < half; ++i)  // −linspace(offset, 0.5, half)[:-1]
    v[n++] = static_cast<float>(-normal_quantile(detail::torch_linspace_f32(off, 0.5f, half, i)));
  v[n++] = 0.0f;
  float vmax = 0;
  for (int i = 0; i < n; ++i) vmax = v[i] > vmax ? v[i] : vmax;
  for (int i = 0; i < n; ++i) v[i] = v[i] / vmax;
  for (int i = 1; i < n; ++i)  // sort: code = rank
    for (int j = i; j > 0 && v[j] < v[j - 1]; --j) std::swap(v[j], v[j - 1]);
  return make_codebook(v, n, k, TieRule::lower_value, {}, 0);
}

}  // namespace lowbit
