// tests/test_quant_error.cpp — `lowbit quant-error` end to end, against
// numerical integrals (tests/support/mse_integrator) and facts.md.
//
// Each test runs the lowbit binary (LOWBIT_BIN), reads the quant_error
// table, regenerates the cell's sample from its `cell_seed` column where the
// integral needs the sample's absmax, and compares with the integral.
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <limits>
#include <string>
#include <vector>

#include "experiments/harness/npy.hpp"
#include "experiments/harness/results.hpp"
#include "support/scratch_dir.hpp"
#include "experiments/sources/distributions.hpp"
#include "support/mse_integrator.hpp"

namespace fs = std::filesystem;
namespace lt = lowbit::testing;
using lowbit::harness::read_table;
using lowbit::harness::Table;

namespace {

struct Result {
  int rc;
  std::string err;
};

fs::path dir() { return lowbit::test::scratch_dir("qe"); }

Result run_lowbit(const std::string& args) {
  const char* bin = std::getenv("LOWBIT_BIN");
  if (!bin) return {-1, "LOWBIT_BIN not set"};
  const auto errf = dir() / "stderr.txt";
  const int st = std::system(fmt::format("'{}' {} >/dev/null 2>'{}'", bin, args, errf.string()).c_str());
  std::ifstream in(errf);
  std::string err((std::istreambuf_iterator<char>(in)), {});
  return {WIFEXITED(st) ? WEXITSTATUS(st) : -1, err};
}

#define REQUIRE_BIN() \
  if (!std::getenv("LOWBIT_BIN")) GTEST_SKIP() << "LOWBIT_BIN not set (run through ctest)"

double absmax_of_cell(const Table& t, std::size_t row, const std::string& dist) {
  const std::size_t rows = t.column("rows").uint64s[row], cols = t.column("cols").uint64s[row];
  std::vector<float> x(rows * cols);
  lowbit::sources::generate(lowbit::sources::parse_distribution(dist), t.column("cell_seed").uint64s[row], rows, cols,
                            x.data());
  double m = 0;
  for (float v : x) m = std::max(m, static_cast<double>(std::fabs(v)));
  return m;
}

std::size_t row_of(const Table& t, const std::string& format) {
  const auto& f = t.column("format").strings;
  const auto it = std::find(f.begin(), f.end(), format);
  EXPECT_NE(it, f.end()) << format;
  return static_cast<std::size_t>(it - f.begin());
}

}  // namespace

// Issue 4: SQNR of e4m3fn and e5m2 on N(0,1) with per-tensor absmax scaling
// matches the integrated value to 0.1 dB.
TEST(QuantError, Fp8SqnrMatchesIntegral) {
  REQUIRE_BIN();
  const auto out = dir() / "fp8.h5";
  const auto r = run_lowbit(fmt::format("quant-error --formats e4m3fn@tensor,e5m2@tensor --dist normal --samples 4194304 "
                                    "--seed 11 -q -o '{}'",
                                    out.string()));
  ASSERT_EQ(r.rc, 0) << r.err;
  const Table t = read_table(out, "quant_error");
  const double amax = absmax_of_cell(t, 0, "normal");
  const double e4m3 = lt::sqnr_db_normal_scaled(lt::float_format_values(4, 3, lt::Special::fn), amax);
  const double e5m2 = lt::sqnr_db_normal_scaled(lt::float_format_values(5, 2, lt::Special::ieee), amax);
  std::cout << fmt::format("absmax {:.4f}: e4m3fn measured {:.4f} dB, integral {:.4f} dB; e5m2 measured {:.4f} dB, integral {:.4f} dB\n",
                           amax, t.column("sqnr_db").float64s[row_of(t, "e4m3fn@tensor")], e4m3,
                           t.column("sqnr_db").float64s[row_of(t, "e5m2@tensor")], e5m2);
  EXPECT_NEAR(t.column("sqnr_db").float64s[row_of(t, "e4m3fn@tensor")], e4m3, 0.1);
  EXPECT_NEAR(t.column("sqnr_db").float64s[row_of(t, "e5m2@tensor")], e5m2, 0.1);
  // The two differ by about one mantissa bit (6 dB): the test can tell them apart.
  EXPECT_GT(e4m3 - e5m2, 5.0);
}

// Issue 4: uniform 16-level and 16-level Lloyd–Max quantizers on 10^7 N(0,1)
// samples, MSE within 1 % of the integral. Given to lowbit as user tables
// (`table:FILE`, absmax-scaled per tensor: the effective levels are the
// table × absmax / max|table|).
TEST(QuantError, CodebookMseMatchesIntegral) {
  REQUIRE_BIN();
  const auto uni = lt::uniform_levels(16, 0.3352), lm = lt::lloyd_max_normal(16);
  auto write = [](const fs::path& p, const std::vector<double>& v) {
    std::ofstream o(p);
    for (double x : v) o << fmt::format("{:.17g}\n", x);
  };
  write(dir() / "uniform16.txt", uni);
  write(dir() / "lloydmax16.txt", lm);
  const auto out = dir() / "cb.h5";
  const auto r = run_lowbit(fmt::format("quant-error --formats 'table:{0}/uniform16.txt,table:{0}/lloydmax16.txt' "
                                    "--dist normal --samples 10000000 --seed 5 -q -o '{1}'",
                                    dir().string(), out.string()));
  ASSERT_EQ(r.rc, 0) << r.err;
  const Table t = read_table(out, "quant_error");
  ASSERT_EQ(t.rows(), 2u);
  const double amax = absmax_of_cell(t, 0, "normal");
  for (std::size_t i = 0; i < 2; ++i) {
    auto levels = i == 0 ? uni : lm;
    const double top = *std::max_element(levels.begin(), levels.end());
    for (auto& v : levels) v *= amax / top;
    const double expected = lt::expected_mse_normal(levels);
    std::cout << fmt::format("{}: measured MSE {:.6g}, integral {:.6g}\n", t.column("format").strings[i], t.column("mse").float64s[i], expected);
    EXPECT_NEAR(t.column("mse").float64s[i], expected, 0.01 * expected) << t.column("format").strings[i];
  }
}

// NF4 with one absmax per tensor against the integral of facts.md's table.
TEST(QuantError, Nf4TensorMseMatchesFactsTable) {
  REQUIRE_BIN();
  const std::vector<double> nf4 = {-1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453,
                                   -0.28444138169288635, -0.18477343022823334, -0.09105003625154495, 0.0,
                                   0.07958029955625534, 0.16093020141124725, 0.24611230194568634, 0.33791524171829224,
                                   0.44070982933044434, 0.5626170039176941, 0.7229568362236023, 1.0};
  const auto out = dir() / "nf4.h5";
  const auto r = run_lowbit(fmt::format("quant-error --formats nf4@tensor,nf4@64,nf4@64+dq --dist normal --samples 4194304 -q -o '{}'", out.string()));
  ASSERT_EQ(r.rc, 0) << r.err;
  const Table t = read_table(out, "quant_error");
  const double amax = absmax_of_cell(t, 0, "normal");
  std::vector<double> levels = nf4;
  for (auto& v : levels) v *= amax;
  const double expected = lt::expected_mse_normal(levels);
  EXPECT_NEAR(t.column("mse").float64s[row_of(t, "nf4@tensor")], expected, 0.01 * expected);
  // facts.md storage: 4 + 32/64 = 4.5 bits; double quantization 8/64 + 32/(64*256) = 0.127.
  EXPECT_DOUBLE_EQ(t.column("bits_per_param").float64s[row_of(t, "nf4@64")], 4.5);
  EXPECT_NEAR(t.column("bits_per_param").float64s[row_of(t, "nf4@64+dq")], 4 + 8.0 / 64 + 32.0 / (64 * 256), 1e-4);
}

TEST(QuantError, NonFiniteInputsAreCountedAndReported) {
  REQUIRE_BIN();
  const float nan = std::numeric_limits<float>::quiet_NaN(), inf = std::numeric_limits<float>::infinity();
  const std::vector<float> x = {0.5f, nan, -1.25f, inf, 2.0f, -inf, 0.75f, 1.0f};
  lowbit::harness::write_npy(dir() / "bad.npy", "<f4", {2, 4}, x.data());
  const auto out = dir() / "nan.h5";
  const auto r = run_lowbit(fmt::format("quant-error --formats e4m3fn,int8@row --dist 'weights:{}' -o '{}'",
                                    (dir() / "bad.npy").string(), out.string()));
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_NE(r.err.find("3 NaN/inf input values"), std::string::npos) << r.err;
  const Table t = read_table(out, "quant_error");
  for (std::size_t i = 0; i < t.rows(); ++i) {
    EXPECT_EQ(t.column("n_nonfinite_in").uint64s[i], 3u);
    EXPECT_EQ(t.column("samples").uint64s[i], 8u);
    EXPECT_TRUE(std::isfinite(t.column("mse").float64s[i]));
  }
  // e4m3fn keeps NaN as NaN (it has no inf: ±inf saturate or become NaN per policy): at least the NaN input is non-finite out.
  EXPECT_GE(t.column("n_nan").uint64s[row_of(t, "e4m3fn")], 1u);
  // Exact values: 0.5, -1.25, 2, 0.75, 1 are all e4m3fn numbers.
  EXPECT_EQ(t.column("mse").float64s[row_of(t, "e4m3fn")], 0.0);
}

TEST(QuantError, BadInputIsAOneLineErrorWithExit2) {
  REQUIRE_BIN();
  const auto out = dir() / "never.h5";
  struct Case {
    std::string args, expect;
  };
  std::ofstream(dir() / "empty.safetensors") << "";
  const float none[1] = {0};
  lowbit::harness::write_npy(dir() / "zero.npy", "<f4", {0}, none);
  for (const Case& c : std::vector<Case>{
           {"--formats nf4@46x", "granularity"},
           {"--formats e4m3fx", "did you mean"},
           {"--formats nf4 --dist normall", "did you mean 'normal'"},
           {"--formats nf4 --dist normal:sigma=-1", "sigma > 0"},
           {"--formats nf4 --shard 3/3", "--shard"},
           {"--formats nf4 --shard x", "--shard"},
           {"--formats nf4 --samples 0", "--samples"},
           {"--formats nf4 --samples 1000 --cols 256", "multiple"},
           {"--formats nf4 --dist weights:" + (dir() / "missing.npy").string(), "no such file"},
           {"--formats nf4 --dist weights:" + (dir() / "empty.safetensors").string(), "safetensors"},
           {"--formats nf4 --dist weights:" + (dir() / "zero.npy").string(), "empty"},
           {"--dist normal", "--formats"},
       }) {
    const auto r = run_lowbit("quant-error " + c.args + " -q -o '" + out.string() + "'");
    EXPECT_EQ(r.rc, 2) << c.args << ": " << r.err;
    EXPECT_NE(r.err.find(c.expect), std::string::npos) << c.args << ": " << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << c.args << ": " << r.err;
    EXPECT_FALSE(fs::exists(out)) << c.args;
  }
}

TEST(QuantError, SameSeedSameNumbersAnyThreadCount) {
  REQUIRE_BIN();
  const auto a = dir() / "t1.h5", b = dir() / "t2.h5";
  const std::string args = "quant-error --formats e2m1fn@tensor,nf4@64,int8@row --dist student-t:nu=3 --dist outliers "
                           "--samples 100000 --seed 9 -q -o ";
  ASSERT_EQ(run_lowbit("").rc, 2);  // no subcommand: usage error
  ASSERT_EQ(std::system(fmt::format("OMP_NUM_THREADS=1 '{}' {} '{}'", std::getenv("LOWBIT_BIN"), args, a.string()).c_str()), 0);
  ASSERT_EQ(std::system(fmt::format("OMP_NUM_THREADS=2 '{}' {} '{}'", std::getenv("LOWBIT_BIN"), args, b.string()).c_str()), 0);
  const Table ta = read_table(a, "quant_error"), tb = read_table(b, "quant_error");
  ASSERT_EQ(ta.rows(), 6u);
  for (const char* c : {"mse", "max_abs_err", "mean_rel_err", "sqnr_db"})
    EXPECT_EQ(ta.column(c).float64s, tb.column(c).float64s) << c;
}

// --histogram: per cell the counts add up to the sample; NF4 with blocks of
// 64 reproduces each block's absmax exactly (it maps to the table's ±1), so
// the exact bin holds at least n/64 values.
TEST(QuantError, HistogramsCountEveryValue) {
  REQUIRE_BIN();
  const auto out = dir() / "hist.h5";
  const auto r = run_lowbit(fmt::format("quant-error --formats nf4@64,e4m3fn@tensor --dist laplace --samples 65536 "
                                        "--histogram 36 -q -o '{}'",
                                        out.string()));
  ASSERT_EQ(r.rc, 0) << r.err;
  const Table h = read_table(out, "quant_error_hist");
  ASSERT_EQ(h.rows(), 2u * 37u);
  std::uint64_t total[2] = {0, 0};
  for (std::size_t i = 0; i < h.rows(); ++i) total[h.column("cell").uint64s[i]] += h.column("count").uint64s[i];
  EXPECT_EQ(total[0], 65536u);
  EXPECT_EQ(total[1], 65536u);
  EXPECT_GE(h.column("count").uint64s[0], 65536u / 64);  // cell 0 = nf4@64, bin 0 = exact
}

// --config FILE (issue 10): the same option names; the command line wins.
TEST(QuantError, ConfigFileWithCommandLineOverride) {
  REQUIRE_BIN();
  const auto cfg = dir() / "sweep.cfg", out = dir() / "cfg.h5";
  std::ofstream(cfg) << "formats = nf4@64,int8@row\ndist = student-t:nu=3\ndist = laplace\nsamples = 8192\nseed = 5\n";
  const auto r = run_lowbit(fmt::format("quant-error --config '{}' --seed 6 -q -o '{}'", cfg.string(), out.string()));
  ASSERT_EQ(r.rc, 0) << r.err;
  const Table t = read_table(out, "quant_error");
  ASSERT_EQ(t.rows(), 4u);
  for (std::size_t i = 0; i < t.rows(); ++i) EXPECT_EQ(t.column("seed").uint64s[i], 6u);
  EXPECT_EQ(t.column("dist").strings[3], "laplace");
}
