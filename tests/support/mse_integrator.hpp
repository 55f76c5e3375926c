// tests/support/mse_integrator.hpp — expected quantization error by
// numerical integration, an oracle independent of lowbit's code.
//
// A nearest-value quantizer with sorted values v_0 < … < v_{m-1} maps the
// cell (t_{i-1}, t_i] to v_i, t_i = (v_i + v_{i+1})/2, t_{-1} = −∞,
// t_{m-1} = +∞ (values beyond the ends saturate — also what a saturating
// float format does). Its expected MSE under a density p is
//   Σ_i ∫_{t_{i-1}}^{t_i} (x − v_i)² p(x) dx,
// integrated here by adaptive Gauss–Legendre quadrature cell by cell (the
// integrand is smooth inside a cell), tails cut where p is negligible.
// Ties (a measure-zero set) do not matter.
#pragma once

#include <functional>
#include <vector>

namespace lowbit::testing {

double normal_pdf(double x);
double normal_cdf(double x);

// ∫_a^b f(x) dx, adaptive 16-point Gauss–Legendre, relative tolerance ~1e-12.
double integrate(const std::function<double(double)>& f, double a, double b);

// Expected MSE of the nearest-value quantizer with `values` (any order,
// duplicates allowed) under N(0,1), or under `pdf` supported in [lo, hi].
double expected_mse_normal(std::vector<double> values);
double expected_mse(std::vector<double> values, const std::function<double(double)>& pdf, double lo, double hi);

// Same, closed form for N(0,1) (∫x²φ = Φ − xφ, ∫xφ = −φ): a cross-check of
// the quadrature.
double expected_mse_normal_closed_form(std::vector<double> values);

// The m-level Lloyd–Max quantizer for N(0,1) (iterated to convergence from
// uniform start): sorted reconstruction values.
std::vector<double> lloyd_max_normal(int levels);

// The 2m levels ±(k + ½)·step, k = 0 … m−1 (a uniform mid-rise quantizer).
std::vector<double> uniform_levels(int levels, double step);

// Every finite value of a floating-point format with `exp_bits`, `man_bits`,
// bias 2^(exp_bits-1) − 1 and subnormals, built from the closed form
// ±2^(e−bias)(1 + m/2^M), ±2^(1−bias) m/2^M, with the top exponent field
//   ieee:   reserved for inf/NaN (E5M2, FP16),
//   fn:     numbers except the all-ones pattern, which is NaN (OCP E4M3),
//   finite: numbers throughout (OCP FP6/FP4).
enum class Special { ieee, fn, finite };
std::vector<double> float_format_values(int exp_bits, int man_bits, Special special);

// SQNR in dB of per-tensor absmax scaling: x ↦ Q(x·s)/s with s = fmt_max /
// absmax, for x ~ N(0,1): 10·log10(1 / E[(x − Q(xs)/s)²]).
double sqnr_db_normal_scaled(const std::vector<double>& format_values, double absmax);

}  // namespace lowbit::testing
