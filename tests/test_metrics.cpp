// tests/test_metrics.cpp — metric definitions against hand-computed values,
// and the numerical integrator against closed forms and published constants.
#include <gtest/gtest.h>
#include <omp.h>

#include <cmath>
#include <limits>
#include <vector>

#include "experiments/metrics/metrics.hpp"
#include "experiments/sources/distributions.hpp"
#include "lowbit/formats/codebook.hpp"
#include "support/mse_integrator.hpp"

using namespace lowbit::metrics;
namespace lt = lowbit::testing;

TEST(Metrics, HandComputedExample) {
  // x = [1, -2, 4, 0.5], q = [1, -1.5, 3, 0.5]: errors 0, 0.5, 1, 0.
  const float x[] = {1, -2, 4, 0.5f}, q[] = {1, -1.5f, 3, 0.5f};
  const auto m = finish(accumulate(x, q, 4));
  EXPECT_DOUBLE_EQ(m.mse, (0.25 + 1.0) / 4);
  EXPECT_DOUBLE_EQ(m.rmse, std::sqrt(1.25 / 4));
  EXPECT_DOUBLE_EQ(m.max_abs_err, 1.0);
  EXPECT_DOUBLE_EQ(m.mean_rel_err, (0 + 0.25 + 0.25 + 0) / 4);
  EXPECT_DOUBLE_EQ(m.sqnr_db, 10 * std::log10((1 + 4 + 16 + 0.25) / 1.25));
  EXPECT_EQ(m.n, 4u);
  EXPECT_EQ(m.n_nan, 0u);
}

TEST(Metrics, NonFiniteInputsAreCountedAndExcluded) {
  const float nan = std::numeric_limits<float>::quiet_NaN(), inf = std::numeric_limits<float>::infinity();
  const float x[] = {1, nan, inf, 2, 0}, q[] = {1.5f, nan, 448, 2, 0};
  const auto m = finish(accumulate(x, q, 5));
  EXPECT_EQ(m.n, 3u);
  EXPECT_EQ(m.n_nonfinite_in, 2u);
  EXPECT_EQ(m.n_nan, 1u);
  EXPECT_DOUBLE_EQ(m.mse, 0.25 / 3);
  EXPECT_DOUBLE_EQ(m.mean_rel_err, 0.5 / 2);  // x = 0 is excluded from the relative error
}

TEST(Metrics, FiniteInputTurnedNonFiniteIsNeverAFiniteNumber) {
  const float x[] = {1e5f, 1}, q[] = {std::numeric_limits<float>::infinity(), 1};
  const auto m = finish(accumulate(x, q, 2));
  EXPECT_TRUE(std::isinf(m.mse));
  EXPECT_TRUE(std::isinf(m.max_abs_err));
  EXPECT_EQ(m.sqnr_db, -std::numeric_limits<double>::infinity());
  EXPECT_EQ(m.n_nan, 1u);
}

TEST(Metrics, ExactAndEmpty) {
  const float x[] = {1, 2};
  EXPECT_EQ(finish(accumulate(x, x, 2)).sqnr_db, std::numeric_limits<double>::infinity());
  EXPECT_TRUE(std::isnan(finish(accumulate(x, x, 0)).mse));
}

TEST(Metrics, IndependentOfThreadCount) {
  const std::size_t n = 1'000'003;
  std::vector<float> x(n), q(n);
  lowbit::sources::generate(lowbit::sources::parse_distribution("laplace"), 3, 1, n, x.data());
  for (std::size_t i = 0; i < n; ++i) q[i] = std::round(x[i] * 8) / 8;
  omp_set_num_threads(1);
  const auto a = accumulate(x.data(), q.data(), n);
  omp_set_num_threads(2);
  const auto b = accumulate(x.data(), q.data(), n);
  omp_set_num_threads(5);
  const auto c = accumulate(x.data(), q.data(), n);
  EXPECT_EQ(a.sum_sq_err, b.sum_sq_err);
  EXPECT_EQ(a.sum_sq_err, c.sum_sq_err);
  EXPECT_EQ(a.sum_rel_err, c.sum_rel_err);
}

TEST(Metrics, MatmulErrors) {
  const double ref[] = {3, -4}, c[] = {3, -3};
  const auto m = matmul_errors(ref, c, 2);
  EXPECT_DOUBLE_EQ(m.rel_fro_err, 1.0 / 5);
  EXPECT_DOUBLE_EQ(m.max_abs_err, 1.0);
  EXPECT_DOUBLE_EQ(m.max_rel_err, 0.25);
}

// ---- the integrator itself ----

TEST(Integrator, QuadratureMatchesClosedForm) {
  for (const auto& v : {lt::uniform_levels(16, 0.3352), lt::lloyd_max_normal(16), std::vector<double>{0.0},
                        lt::float_format_values(2, 1, lt::Special::finite)}) {
    const double a = lt::expected_mse_normal(v), b = lt::expected_mse_normal_closed_form(v);
    EXPECT_NEAR(a, b, 1e-10 * b);
  }
  // One level at 0: the MSE is the variance.
  EXPECT_NEAR(lt::expected_mse_normal({0.0}), 1.0, 1e-12);
}

TEST(Integrator, ReproducesMaxsTable) {
  // J. Max, "Quantizing for minimum distortion", IRE Trans. IT-6 (1960):
  // 16 levels, N(0,1): optimal uniform step 0.3352 with MSE 0.01154;
  // Lloyd–Max MSE 0.009497, outermost level 2.733. (Max's hand-computed
  // table is good to about 4 digits: the converged optimum is 0.0095010.)
  EXPECT_NEAR(lt::expected_mse_normal(lt::uniform_levels(16, 0.3352)), 0.01154, 0.00001);
  const auto lm = lt::lloyd_max_normal(16);
  EXPECT_NEAR(lt::expected_mse_normal(lm), 0.009497, 0.00001);
  EXPECT_NEAR(lm.back(), 2.733, 0.001);
}

TEST(Integrator, FloatFormatValues) {
  const auto e4m3 = lt::float_format_values(4, 3, lt::Special::fn);
  EXPECT_EQ(e4m3.back(), 448.0);          // facts.md
  EXPECT_EQ(e4m3.size(), 253u);           // 256 codes − 2 NaN − (−0)
  const auto e5m2 = lt::float_format_values(5, 2, lt::Special::ieee);
  EXPECT_EQ(e5m2.back(), 57344.0);        // facts.md
  const auto e2m1 = lt::float_format_values(2, 1, lt::Special::finite);
  EXPECT_EQ(e2m1, (std::vector<double>{-6, -4, -3, -2, -1.5, -1, -0.5, 0, 0.5, 1, 1.5, 2, 3, 4, 6}));  // facts.md
}

// The analytic check of issue 4 on lowbit's generator, codebook encoder and
// metrics: measured MSE on 10^7 N(0,1) samples within 1 % of the integral.
TEST(Integrator, MeasuredMseOfCodebooksMatchesIntegral) {
  const std::size_t n = 10'000'000;
  std::vector<float> x(n), q(n);
  lowbit::sources::generate(lowbit::sources::parse_distribution("normal"), 2024, 1, n, x.data());
  for (const auto& levels : {lt::uniform_levels(16, 0.3352), lt::lloyd_max_normal(16)}) {
    std::vector<float> values(levels.begin(), levels.end());
    const auto cb = lowbit::make_codebook(values.data(), 16, 4, lowbit::TieRule::lower_value);
#pragma omp parallel for
    for (std::int64_t i = 0; i < static_cast<std::int64_t>(n); ++i)
      q[static_cast<std::size_t>(i)] = lowbit::decode(cb, lowbit::encode(cb, x[static_cast<std::size_t>(i)]));
    const double measured = finish(accumulate(x.data(), q.data(), n)).mse;
    const double expected = lt::expected_mse_normal(levels);
    EXPECT_NEAR(measured, expected, 0.01 * expected);
  }
}
