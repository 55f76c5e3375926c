// tests/support/mse_integrator.cpp — see mse_integrator.hpp.
#include "support/mse_integrator.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <stdexcept>

namespace lowbit::testing {
namespace {

constexpr double pi = 3.14159265358979323846;

// Nodes and weights of n-point Gauss–Legendre on [-1, 1] (Newton on P_n).
struct Rule {
  std::array<double, 16> x{}, w{};
  Rule() {
    constexpr int n = 16;
    for (int i = 0; i < n; ++i) {
      double z = std::cos(pi * (i + 0.75) / (n + 0.5)), pp = 0;
      for (int it = 0; it < 100; ++it) {
        double p1 = 1, p2 = 0;
        for (int j = 1; j <= n; ++j) {
          const double p3 = p2;
          p2 = p1;
          p1 = ((2.0 * j - 1) * z * p2 - (j - 1.0) * p3) / j;
        }
        pp = n * (z * p1 - p2) / (z * z - 1);
        const double dz = p1 / pp;
        z -= dz;
        if (std::fabs(dz) < 1e-16) break;
      }
      x[static_cast<std::size_t>(i)] = z;
      w[static_cast<std::size_t>(i)] = 2 / ((1 - z * z) * pp * pp);
    }
  }
};
const Rule& rule() {
  static const Rule r;
  return r;
}

double gl(const std::function<double(double)>& f, double a, double b) {
  const double m = 0.5 * (a + b), h = 0.5 * (b - a);
  double s = 0;
  for (std::size_t i = 0; i < 16; ++i) s += rule().w[i] * f(m + h * rule().x[i]);
  return s * h;
}

double adaptive(const std::function<double(double)>& f, double a, double b, double whole, double tol, int depth) {
  const double m = 0.5 * (a + b);
  const double left = gl(f, a, m), right = gl(f, m, b);
  if (depth <= 0 || std::fabs(left + right - whole) <= tol) return left + right;
  return adaptive(f, a, m, left, tol / 2, depth - 1) + adaptive(f, m, b, right, tol / 2, depth - 1);
}

std::vector<double> sorted_unique(std::vector<double> v) {
  if (v.empty()) throw std::invalid_argument("empty codebook");
  std::sort(v.begin(), v.end());
  v.erase(std::unique(v.begin(), v.end()), v.end());
  return v;
}

}  // namespace

double normal_pdf(double x) { return std::exp(-0.5 * x * x) / std::sqrt(2 * pi); }
double normal_cdf(double x) { return 0.5 * std::erfc(-x / std::sqrt(2.0)); }

double integrate(const std::function<double(double)>& f, double a, double b) {
  if (!(b > a)) return 0;
  const double whole = gl(f, a, b);
  return adaptive(f, a, b, whole, 1e-15 + 1e-12 * std::fabs(whole), 30);
}

double expected_mse(std::vector<double> values, const std::function<double(double)>& pdf, double lo, double hi) {
  const auto v = sorted_unique(std::move(values));
  double total = 0;
  for (std::size_t i = 0; i < v.size(); ++i) {
    double a = i == 0 ? lo : 0.5 * (v[i - 1] + v[i]);
    double b = i + 1 == v.size() ? hi : 0.5 * (v[i] + v[i + 1]);
    a = std::max(a, lo);
    b = std::min(b, hi);
    if (b <= a) continue;
    const double c = v[i];
    total += integrate([&](double x) { return (x - c) * (x - c) * pdf(x); }, a, b);
  }
  return total;
}

double expected_mse_normal(std::vector<double> values) {
  return expected_mse(std::move(values), normal_pdf, -40.0, 40.0);
}

double expected_mse_normal_closed_form(std::vector<double> values) {
  const auto v = sorted_unique(std::move(values));
  // F(x) = antiderivative of (x − c)² φ(x) = (1 + c²)Φ(x) − xφ(x) + 2cφ(x)... written out:
  // ∫(x−c)²φ = ∫x²φ − 2c∫xφ + c²∫φ = (Φ − xφ) + 2cφ + c²Φ.
  auto F = [](double x, double c) {
    if (std::isinf(x)) return x > 0 ? 1.0 + c * c : 0.0;
    return (normal_cdf(x) - x * normal_pdf(x)) + 2 * c * normal_pdf(x) + c * c * normal_cdf(x);
  };
  double total = 0;
  const double inf = INFINITY;
  for (std::size_t i = 0; i < v.size(); ++i) {
    const double a = i == 0 ? -inf : 0.5 * (v[i - 1] + v[i]);
    const double b = i + 1 == v.size() ? inf : 0.5 * (v[i] + v[i + 1]);
    total += F(b, v[i]) - F(a, v[i]);
  }
  return total;
}

std::vector<double> lloyd_max_normal(int levels) {
  std::vector<double> v(static_cast<std::size_t>(levels));
  for (int i = 0; i < levels; ++i) v[static_cast<std::size_t>(i)] = -3.0 + 6.0 * (i + 0.5) / levels;
  for (int it = 0; it < 20000; ++it) {
    double moved = 0;
    std::vector<double> t(static_cast<std::size_t>(levels) + 1);
    t.front() = -INFINITY;
    t.back() = INFINITY;
    for (std::size_t i = 1; i < v.size(); ++i) t[i] = 0.5 * (v[i - 1] + v[i]);
    for (std::size_t i = 0; i < v.size(); ++i) {
      // centroid of N(0,1) on (a, b]: (φ(a) − φ(b)) / (Φ(b) − Φ(a))
      const double pa = std::isinf(t[i]) ? 0 : normal_pdf(t[i]), pb = std::isinf(t[i + 1]) ? 0 : normal_pdf(t[i + 1]);
      const double c = (pa - pb) / (normal_cdf(t[i + 1]) - normal_cdf(t[i]));
      moved = std::max(moved, std::fabs(c - v[i]));
      v[i] = c;
    }
    if (moved < 1e-13) break;
  }
  return v;
}

std::vector<double> uniform_levels(int levels, double step) {
  std::vector<double> v;
  for (int k = 0; k < levels / 2; ++k) {
    v.push_back((k + 0.5) * step);
    v.push_back(-(k + 0.5) * step);
  }
  std::sort(v.begin(), v.end());
  return v;
}

std::vector<double> float_format_values(int exp_bits, int man_bits, Special special) {
  const int bias = (1 << (exp_bits - 1)) - 1;
  const int top = (1 << exp_bits) - 1;  // exponent field all ones
  const double M = std::ldexp(1.0, man_bits);
  std::vector<double> v{0.0};
  for (int m = 1; m < (1 << man_bits); ++m) v.push_back(std::ldexp(m / M, 1 - bias));  // subnormals
  for (int e = 1; e <= top; ++e) {
    if (e == top && special == Special::ieee) break;
    for (int m = 0; m < (1 << man_bits); ++m) {
      if (special == Special::fn && e == top && m == (1 << man_bits) - 1) break;  // FN: all ones is NaN
      v.push_back(std::ldexp(1.0 + m / M, e - bias));
    }
  }
  const std::size_t n = v.size();
  for (std::size_t i = 1; i < n; ++i) v.push_back(-v[i]);
  std::sort(v.begin(), v.end());
  return v;
}

double sqnr_db_normal_scaled(const std::vector<double>& format_values, double absmax) {
  const double fmt_max = *std::max_element(format_values.begin(), format_values.end());
  const double s = fmt_max / absmax;
  std::vector<double> scaled;
  scaled.reserve(format_values.size());
  for (double v : format_values) scaled.push_back(v / s);
  // Integrate on a range wide enough for N(0,1) tails; the cells near zero
  // are tiny (subnormals / s), adaptive quadrature per cell handles them.
  return -10.0 * std::log10(expected_mse_normal(scaled));
}

}  // namespace lowbit::testing
