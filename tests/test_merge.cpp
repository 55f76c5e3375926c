// tests/test_merge.cpp — `--shard i/N` + `lowbit merge` equal one run, value
// for value; merge refuses bad part sets (issue 10) with exit 2 and leaves
// its output untouched.
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "experiments/harness/results.hpp"
#include "support/scratch_dir.hpp"

namespace fs = std::filesystem;
using lowbit::harness::read_table;
using lowbit::harness::Table;

namespace {

fs::path dir() { return lowbit::test::scratch_dir("merge"); }

struct Result {
  int rc;
  std::string err;
};
Result run_lowbit(const std::string& args) {
  const auto errf = dir() / "stderr.txt";
  const int st = std::system(
      fmt::format("cd '{}' && '{}' {} >/dev/null 2>'{}'", dir().string(), std::getenv("LOWBIT_BIN"), args, errf.string()).c_str());
  std::ifstream in(errf);
  return {WIFEXITED(st) ? WEXITSTATUS(st) : -1, std::string((std::istreambuf_iterator<char>(in)), {})};
}

void expect_tables_equal(const Table& a, const Table& b) {
  ASSERT_EQ(a.schema_difference(b), "");
  ASSERT_EQ(a.rows(), b.rows());
  for (const auto& c : a.columns())
    for (std::size_t r = 0; r < a.rows(); ++r) {
      const auto x = c.cell(r), y = b.column(c.name).cell(r);
      if (c.type == lowbit::harness::ColumnType::float64 && std::isnan(std::get<double>(x)))
        EXPECT_TRUE(std::isnan(std::get<double>(y))) << c.name << " row " << r;
      else
        EXPECT_EQ(x, y) << c.name << " row " << r;
    }
}

const std::string grid = "--formats e4m3fn@tensor,nf4@64,int8@row,mxfp4 --dist normal --dist 'outliers:p=0.01,k=10' "
                         "--samples 65536,12800 --seed 3,4 -q";

}  // namespace

TEST(Merge, ShardsMergedEqualOneRun) {
  if (!std::getenv("LOWBIT_BIN")) GTEST_SKIP() << "LOWBIT_BIN not set";
  ASSERT_EQ(run_lowbit("quant-error " + grid + " -o one.h5").rc, 0);
  for (int i = 0; i < 4; ++i)
    ASSERT_EQ(run_lowbit(fmt::format("quant-error {} --shard {}/4 -o part-{}.h5", grid, i, i)).rc, 0);
  // Parts in any order.
  const auto r = run_lowbit("merge part-2.h5 part-0.h5 part-3.h5 part-1.h5 -o all.h5");
  ASSERT_EQ(r.rc, 0) << r.err;
  const Table one = read_table(dir() / "one.h5", "quant_error"), all = read_table(dir() / "all.h5", "quant_error");
  EXPECT_EQ(one.rows(), 32u);
  expect_tables_equal(one, all);
  const Table parts = read_table(dir() / "all.h5", "merged_parts");
  EXPECT_EQ(parts.rows(), 4u);

  // matmul-error shards too.
  const std::string mm = "matmul-error --methods fp16,int8-vectorwise,llm-int8,nf4@64 --shape 16x256x128 -q";
  ASSERT_EQ(run_lowbit(mm + " -o mm-one.h5").rc, 0);
  ASSERT_EQ(run_lowbit(mm + " --shard 0/2 -o mm-0.h5").rc, 0);
  ASSERT_EQ(run_lowbit(mm + " --shard 1/2 -o mm-1.h5").rc, 0);
  ASSERT_EQ(run_lowbit("merge mm-0.h5 mm-1.h5 -o mm-all.h5").rc, 0);
  expect_tables_equal(read_table(dir() / "mm-one.h5", "matmul_error"), read_table(dir() / "mm-all.h5", "matmul_error"));
}

TEST(Merge, RefusesBadPartSetsAndLeavesOutputUntouched) {
  if (!std::getenv("LOWBIT_BIN")) GTEST_SKIP() << "LOWBIT_BIN not set";
  for (int i = 0; i < 3; ++i)
    ASSERT_EQ(run_lowbit(fmt::format("quant-error {} --shard {}/3 -o p{}.h5", grid, i, i)).rc, 0);
  ASSERT_EQ(run_lowbit("quant-error --formats nf4@64 --samples 4096 -q --shard 2/3 -o other.h5").rc, 0);
  {
    std::ifstream in(dir() / "p2.h5", std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(in)), {});
    std::ofstream(dir() / "trunc.h5", std::ios::binary) << bytes.substr(0, bytes.size() / 2);
  }
  std::ofstream(dir() / "out.h5") << "precious";
  struct Case {
    std::string parts, expect;
  };
  for (const Case& c : std::vector<Case>{
           {"p0.h5 p1.h5", "missing shard 2/3"},
           {"p0.h5 p1.h5 p1.h5 p2.h5", "given twice"},
           {"p0.h5 p1.h5 other.h5", "different grids"},
           {"p0.h5 p1.h5 trunc.h5", "trunc.h5"},
           {"p0.h5 p1.h5 nothere.h5", "nothere.h5"},
       }) {
    const auto r = run_lowbit("merge " + c.parts + " -o out.h5 --force");
    EXPECT_EQ(r.rc, 2) << c.parts << ": " << r.err;
    EXPECT_NE(r.err.find(c.expect), std::string::npos) << c.parts << ": " << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  }
  // An existing output is kept unless --force.
  auto r = run_lowbit("merge p0.h5 p1.h5 p2.h5 -o out.h5");
  EXPECT_EQ(r.rc, 2);
  EXPECT_NE(r.err.find("--force"), std::string::npos) << r.err;
  std::ifstream in(dir() / "out.h5");
  EXPECT_EQ(std::string((std::istreambuf_iterator<char>(in)), {}), "precious");
  r = run_lowbit("merge p0.h5 p1.h5 p2.h5 -o out.h5 --force");
  EXPECT_EQ(r.rc, 0) << r.err;
  EXPECT_EQ(read_table(dir() / "out.h5", "quant_error").rows(), 32u);
}
