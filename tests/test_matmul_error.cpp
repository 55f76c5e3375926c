// tests/test_matmul_error.cpp — `lowbit matmul-error` against closed-form
// expectations.
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "experiments/harness/results.hpp"
#include "support/scratch_dir.hpp"
#include "support/mse_integrator.hpp"

namespace fs = std::filesystem;
using lowbit::harness::read_table;
using lowbit::harness::Table;

namespace {
fs::path dir() { return lowbit::test::scratch_dir("mm"); }
int run_lowbit(const std::string& args) {
  const int st = std::system(fmt::format("'{}' {} >/dev/null 2>&1", std::getenv("LOWBIT_BIN"), args).c_str());
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}
double value(const Table& t, const std::string& method, double frac, const char* col) {
  for (std::size_t r = 0; r < t.rows(); ++r)
    if (t.column("method").strings[r] == method && t.column("outlier_frac").float64s[r] == frac)
      return t.column(col).float64s[r];
  ADD_FAILURE() << method;
  return NAN;
}
}  // namespace

// Issue 4: LLM.int8 on planted outliers beats plain int8 by >= 10x in
// relative error. Outlier columns ×60 (the magnitudes LLM.int8 reports for
// large models; at ×20 the gain measured is about 7x, see the report).
TEST(MatmulError, LlmInt8BeatsInt8TenfoldOnOutliers) {
  if (!std::getenv("LOWBIT_BIN")) GTEST_SKIP() << "LOWBIT_BIN not set";
  const auto out = dir() / "mm.h5";
  ASSERT_EQ(run_lowbit(fmt::format("matmul-error --methods fp16,bf16,int8-vectorwise,llm-int8,llm-int8-paper --shape 64x1024x1024 "
                               "--outlier-frac 0,0.005 --outlier-scale 60 -q -o '{}'",
                               out.string())),
            0);
  const Table t = read_table(out, "matmul_error");
  const double int8 = value(t, "int8-vectorwise", 0.005, "rel_fro_err");
  const double llm = value(t, "llm-int8", 0.005, "rel_fro_err");
  EXPECT_GE(int8 / llm, 10.0) << int8 << " vs " << llm;
  // The paper's row absmax (without the outlier columns) is never larger than
  // bitsandbytes' (without the outlier values only): the planted columns'
  // values below 6 — up to 6, against about 3.3 for the row's N(0, 1) values —
  // coarsen bitsandbytes' step. Measured 2.63e-3 against 2.75e-3.
  const double paper = value(t, "llm-int8-paper", 0.005, "rel_fro_err");
  EXPECT_LT(paper, llm);
  EXPECT_GE(int8 / paper, 10.0);
  for (std::size_t r = 0; r < t.rows(); ++r)
    if (t.column("method").strings[r] == "llm-int8" && t.column("outlier_frac").float64s[r] > 0) {
      EXPECT_EQ(t.column("outliers_detected").uint64s[r], t.column("outlier_cols").uint64s[r]);  // 5 planted, 5 found
    }

  // Without outliers, int8 vector-wise: each of A's rows and B's columns is
  // rounded with step absmax/127 (k = 1024 normal values), error variance
  // step²/12 relative to a unit variance, from A and from B:
  //   rel ≈ sqrt(2 · E[M²] / (12 · 127²)), M = max of 1024 |N(0,1)|,
  // E[M²] integrated from the density of the maximum, 1024·F^1023·f with F = 2Φ−1.
  namespace lt = lowbit::testing;
  const double em2 = lt::integrate(
      [](double m) {
        const double F = 2 * lt::normal_cdf(m) - 1;
        return m * m * 1024 * std::pow(F, 1023) * 2 * lt::normal_pdf(m);
      },
      0, 12);
  const double expected = std::sqrt(2 * em2 / (12.0 * 127 * 127));
  EXPECT_NEAR(value(t, "int8-vectorwise", 0, "rel_fro_err"), expected, 0.05 * expected);
  // fp16 (unit roundoff 2^-11) and bf16 (2^-8): rounding A, B and C.
  const double fp16 = value(t, "fp16", 0, "rel_fro_err"), bf16 = value(t, "bf16", 0, "rel_fro_err");
  EXPECT_LT(fp16, std::ldexp(1.0, -11));
  EXPECT_GT(fp16, std::ldexp(1.0, -14));
  EXPECT_LT(bf16, std::ldexp(1.0, -8));
  EXPECT_NEAR(bf16 / fp16, 8.0, 2.0);  // 3 fewer mantissa bits
}

TEST(MatmulError, BadArguments) {
  if (!std::getenv("LOWBIT_BIN")) GTEST_SKIP() << "LOWBIT_BIN not set";
  const auto out = (dir() / "x.h5").string();
  EXPECT_EQ(run_lowbit("matmul-error --methods nf4@6x4 -o " + out), 2);
  EXPECT_EQ(run_lowbit("matmul-error --shape 64x0x3 -o " + out), 2);
  EXPECT_EQ(run_lowbit("matmul-error --shape 64x64 -o " + out), 2);
  EXPECT_EQ(run_lowbit("matmul-error --outlier-frac 2 -o " + out), 2);
  EXPECT_EQ(run_lowbit("matmul-error --shard 1/1 -o " + out), 2);
  EXPECT_FALSE(fs::exists(out));
}
