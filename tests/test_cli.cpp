// Tests of the `lowbit` command as a user runs it: exit codes, one-line
// errors with suggestions, and `lowbit convert` on the golden values of
// shared/facts.md and the OCP FP8 / MX specifications.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>

#include "experiments/harness/npy.hpp"

namespace fs = std::filesystem;

namespace {

struct Result {
  int rc = -1;
  std::string out, err;
};

std::string read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

struct Cli : ::testing::Test {
  fs::path dir;
  std::string bin;

  void SetUp() override {
    const char* b = std::getenv("LOWBIT_BIN");
    if (!b) GTEST_SKIP() << "LOWBIT_BIN is not set (run through ctest)";
    bin = b;
    dir = fs::temp_directory_path() / ("lowbit_test_cli_" + std::to_string(::getpid()) + "_" +
                                       ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir);
    fs::create_directories(dir);
  }
  void TearDown() override {
    if (!dir.empty()) fs::remove_all(dir);
  }

  // Run `lowbit <args>` (args are passed through sh) with `input` on stdin.
  Result run(const std::string& args, const std::string& input = "") {
    std::ofstream(dir / ".stdin") << input;
    const std::string cmd = "cd '" + dir.string() + "' && '" + bin + "' " + args + " <.stdin >.stdout 2>.stderr";
    const int status = std::system(cmd.c_str());
    Result r;
    r.rc = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    r.out = read_file(dir / ".stdout");
    r.err = read_file(dir / ".stderr");
    for (const char* f : {".stdin", ".stdout", ".stderr"}) fs::remove(dir / f);
    return r;
  }

  std::vector<std::string> entries() const {
    std::vector<std::string> names;
    for (const auto& e : fs::directory_iterator(dir)) names.push_back(e.path().filename().string());
    std::sort(names.begin(), names.end());
    return names;
  }
};

// A user error: exit 2, nothing on stdout, one line on stderr containing `words`.
void expect_usage_error(const Result& r, const std::string& words) {
  EXPECT_EQ(r.rc, 2) << r.err;
  EXPECT_EQ(r.out, "");
  EXPECT_TRUE(r.err.starts_with("lowbit: error: ")) << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  EXPECT_NE(r.err.find(words), std::string::npos) << r.err;
}

}  // namespace

TEST_F(Cli, HelpAndVersion) {
  const Result h = run("--help");
  EXPECT_EQ(h.rc, 0);
  EXPECT_NE(h.out.find("formats"), std::string::npos);
  EXPECT_NE(h.out.find("convert"), std::string::npos);
  const Result v = run("--version");
  EXPECT_EQ(v.rc, 0);
  EXPECT_TRUE(v.out.starts_with("lowbit " LOWBIT_VERSION " (git ")) << v.out;
  for (const char* sub : {"formats", "convert"}) {
    const Result s = run(std::string(sub) + " --help");
    EXPECT_EQ(s.rc, 0);
    EXPECT_NE(s.out.find("--config"), std::string::npos) << sub;
  }
  EXPECT_EQ(run("").rc, 2);  // no command: usage on stderr
}

TEST_F(Cli, UnknownCommandSuggests) {
  expect_usage_error(run("fromats"), "unknown command 'fromats' (did you mean 'formats'?)");
  expect_usage_error(run("convet"), "did you mean 'convert'?");
  expect_usage_error(run("--verison"), "did you mean '--version'?");
}

TEST_F(Cli, UnknownOptionSuggests) {
  expect_usage_error(run("formats --valeus"), "did you mean '--values'?");
  expect_usage_error(run("convert --format e4m3fn --satruate", "1"), "did you mean '--saturate'?");
  expect_usage_error(run("convert --format e4m3fn --rounding nearst", "1"), "did you mean 'nearest'?");
}

TEST_F(Cli, BadFormatNames) {
  expect_usage_error(run("formats e4m3fx"), "unknown format 'e4m3fx'; did you mean e4m3fn");
  expect_usage_error(run("convert --format e4m3fm", "1"), "did you mean 'e4m3fn'?");
  expect_usage_error(run("formats e12m3"), "exponent bits");  // malformed eXmY
  expect_usage_error(run("formats fp32 --values"), "at most 16 bits");
}

TEST_F(Cli, UnwritableOutputFailsAtOnceAndLeavesNothing) {
  expect_usage_error(run("formats -o /nonexistent/dir/x.h5"), "/nonexistent/dir");
  expect_usage_error(run("formats -o missing/x.h5"), "does not exist");
  expect_usage_error(run("convert --format e4m3fn -o missing/x.npy", "1"), "does not exist");
  expect_usage_error(run("convert --format e4m3fn --codes /nonexistent/c.npy", "1"), "/nonexistent");
  expect_usage_error(run("formats --append -o none.h5"), "--append");
  EXPECT_FALSE(fs::exists("/nonexistent/dir/x.h5"));
  EXPECT_TRUE(entries().empty());
}

TEST_F(Cli, FormatsPrintsTheSpecLimits) {
  const Result r = run("formats e4m3fn e5m2 e2m1fn fp16");
  ASSERT_EQ(r.rc, 0) << r.err;
  std::istringstream lines(r.out);
  std::string header, line;
  std::getline(lines, header);
  EXPECT_TRUE(header.starts_with("name")) << header;
  // name bits E M bias policy max_finite ...: OCP FP8 (448, 57344), FP4 (6), IEEE half (65504).
  const std::vector<std::pair<std::string, std::string>> expected{
      {"e4m3fn", "448"}, {"e5m2", "57344"}, {"e2m1fn", "6"}, {"fp16", "65504"}};
  for (const auto& [name, max] : expected) {
    ASSERT_TRUE(std::getline(lines, line));
    std::istringstream fields(line);
    std::string n, bits, e, m, bias, policy, max_finite;
    fields >> n >> bits >> e >> m >> bias >> policy >> max_finite;
    EXPECT_EQ(n, name);
    EXPECT_EQ(max_finite, max) << line;
  }
  const Result l = run("formats --list");
  EXPECT_EQ(l.rc, 0);
  EXPECT_NE(l.out.find("e8m0fnu"), std::string::npos);
}

// Scaled names report their storage cost: QLoRA's 4 + 32/64 = 4.5 and
// 4 + 8/64 + 32/(64·256) = 4.127 (plus one fp32 mean per tensor), MX's
// 4 + 8/32 = 4.25, NVFP4's 4 + 8/16 (+ one fp32 tensor scale), int8@row's 8 + 32/cols.
TEST_F(Cli, FormatsReportsBitsPerParameterOfScaledNames) {
  const Result r = run("formats nf4@64 nf4@64+dq mxfp4 nvfp4 int8@row --shape 1024x2048");
  ASSERT_EQ(r.rc, 0) << r.err;
  const double n = 1024.0 * 2048.0;
  const std::vector<std::pair<std::string, double>> expected{
      {"nf4@64", 4.5}, {"nf4@64+dq", 4 + 8.0 / 64 + 32.0 / (64 * 256) + 32 / n}, {"mxfp4", 4.25},
      {"nvfp4", 4.5 + 32 / n}, {"int8@row", 8 + 32.0 / 2048}};
  std::istringstream lines(r.out);
  std::string line;
  std::getline(lines, line);  // header
  for (const auto& [name, bits] : expected) {
    ASSERT_TRUE(std::getline(lines, line));
    std::istringstream fields(line);
    std::string given, canonical, element, element_bits, granularity, block, scale, rows, cols;
    double bpp = 0;
    fields >> given >> canonical >> element >> element_bits >> granularity >> block >> scale >> rows >> cols >> bpp;
    EXPECT_EQ(given, name);
    EXPECT_NEAR(bpp, bits, 1e-12) << line;
  }
  const Result l = run("formats --list");
  for (const char* name : {"\nnf4@64+dq\t", "\nmxfp4\t", "\nint8@row\t", "\nfp4-bnb\t"})
    EXPECT_NE(l.out.find(name), std::string::npos) << name;
  expect_usage_error(run("formats nf4@64 --shape 12"), "--shape");
  expect_usage_error(run("formats nf4@6x4"), "nf4@6x4");
}

TEST_F(Cli, FormatsValuesOfE2M1) {
  const Result r = run("formats e2m1fn --values");
  ASSERT_EQ(r.rc, 0) << r.err;
  // OCP MX E2M1: codes 0..7 are 0, 0.5, 1, 1.5, 2, 3, 4, 6; 8..15 their negatives (0x8 is -0).
  for (const char* l : {"\n0x0 0\n", "\n0x1 0.5\n", "\n0x5 3\n", "\n0x7 6\n", "\n0x8 -0\n", "\n0xf -6\n"})
    EXPECT_NE(r.out.find(l), std::string::npos) << l;
}

TEST_F(Cli, ConvertGoldenValues) {
  // OCP FP8: 448 is E4M3's max (S.1111.110 = 0x7e); 465 rounds past it: saturated
  // to 0x7e, or NaN (0x7f) without saturation.
  EXPECT_EQ(run("convert --format e4m3fn", "448\n").out, "448 0x7e 448\n");
  EXPECT_EQ(run("convert --format e4m3fn", "465").out, "465 0x7e 448\n");
  EXPECT_EQ(run("convert --format e4m3fn --no-saturate", "465").out, "465 0x7f nan\n");
  // E5M2: 57344 = 0x7b; beyond it inf (0x7c) without saturation.
  EXPECT_EQ(run("convert --format e5m2 --no-saturate", "57344 1e6 -1e6").out,
            "57344 0x7b 57344\n1000000 0x7c inf\n-1000000 0xfc -inf\n");
  // facts.md: FP4 E2M1 bits 1101... as -6 is the OCP element's code 0xf; 0.3
  // lies between 0 and 0.5 (nearer 0.5); 0.25 is a tie -> even (0); 0.75 -> 1 (even).
  EXPECT_EQ(run("convert --format e2m1fn", "-6 0.3 0.25 0.75 7").out,
            "-6 0xf -6\n0.3 0x1 0.5\n0.25 0x0 0\n0.75 0x2 1\n7 0x7 6\n");
  EXPECT_EQ(run("convert --format e2m1fn --rounding zero", "0.3 -5.9").out, "0.3 0x0 0\n-5.9 0xe -4\n");
  EXPECT_EQ(run("convert --format e2m1fn --rounding away", "0.3 -4.1").out, "0.3 0x1 0.5\n-4.1 0xf -6\n");
  // Subnormal flush: 2^-9 is E4M3's smallest subnormal (code 0x01).
  EXPECT_EQ(run("convert --format e4m3fn", "0.001953125").out, "0.001953125 0x01 0.001953125\n");
  EXPECT_EQ(run("convert --format e4m3fn --flush-subnormals", "0.001953125").out, "0.001953125 0x00 0\n");
}

TEST_F(Cli, ConvertTextErrors) {
  expect_usage_error(run("convert --format e4m3fn", "1 two 3"), "'two'");
  expect_usage_error(run("convert --format e4m3fn", " \n"), "no input values");
  expect_usage_error(run("convert", "1"), "--format");
  expect_usage_error(run("convert --format e4m3fn --saturate --no-saturate", "1"), "contradict");
  expect_usage_error(run("convert --format e4m3fn -i missing.npy"), "missing.npy");
}

TEST_F(Cli, StochasticRoundingIsSeededAndPicksANeighbour) {
  std::string input;
  for (int i = 0; i < 400; ++i) input += "0.3 ";
  const Result a = run("convert --format e2m1fn --rounding stochastic --seed 7", input);
  const Result b = run("convert --format e2m1fn --rounding stochastic --seed 7", input);
  const Result c = run("convert --format e2m1fn --rounding stochastic --seed 8", input);
  ASSERT_EQ(a.rc, 0) << a.err;
  EXPECT_EQ(a.out, b.out);
  EXPECT_NE(a.out, c.out);
  // Only the neighbours 0 and 0.5; 0.3 is 60 % of the way, so ~240 of 400 round up.
  std::istringstream lines(a.out);
  std::string v, code, dec;
  int up = 0, n = 0;
  while (lines >> v >> code >> dec) {
    ++n;
    ASSERT_TRUE(dec == "0" || dec == "0.5") << dec;
    up += dec == "0.5";
  }
  EXPECT_EQ(n, 400);
  EXPECT_NEAR(up, 240, 40);  // 4 standard deviations (sqrt(400 * 0.6 * 0.4) ~ 9.8)
}

TEST_F(Cli, ConfigFileSuppliesOptions) {
  std::ofstream(dir / "c.cfg") << "format = e2m1fn\nrounding = zero\n";
  EXPECT_EQ(run("convert --config c.cfg", "0.3").out, "0.3 0x0 0\n");
  EXPECT_EQ(run("convert --config c.cfg --rounding nearest", "0.3").out, "0.3 0x1 0.5\n");
}

TEST_F(Cli, ConvertNpyInAndOut) {
  using lowbit::harness::read_npy;
  using lowbit::harness::write_npy;
  const float x[2][3] = {{448.0f, 465.0f, -6.0f}, {0.3f, 1.0f, -0.0f}};
  write_npy(dir / "x.npy", "<f4", {2, 3}, x);
  const Result r = run("convert -i x.npy --format e4m3fn --codes c.npy -o d.npy");
  ASSERT_EQ(r.rc, 0) << r.err;
  const auto codes = read_npy(dir / "c.npy");
  EXPECT_EQ(codes.dtype, "|u1");
  EXPECT_EQ(codes.shape, (std::vector<std::size_t>{2, 3}));
  // 448 -> 0x7e; 465 saturates; -6 = -1.5 * 2^2 -> 0xcc; 0.3 -> 0.3125 = 1.25 * 2^-2
  // -> 0x2a; 1.0 -> 0x38; -0 -> 0x80.
  const std::vector<std::byte> want{std::byte{0x7e}, std::byte{0x7e}, std::byte{0xcc},
                                    std::byte{0x2a}, std::byte{0x38}, std::byte{0x80}};
  EXPECT_EQ(codes.data, want);
  const auto decoded = read_npy(dir / "d.npy");
  EXPECT_EQ(decoded.dtype, "<f4");
  EXPECT_EQ(decoded.as<float>(), (std::vector<float>{448, 448, -6, 0.3125f, 1, -0.0f}));

  // bfloat16 bits (1.0 = 0x3f80, -2.5 = 0xc020) need --input-dtype bf16.
  const std::uint16_t bf[] = {0x3f80, 0xc020};
  write_npy(dir / "bf.npy", "<u2", {2}, bf);
  expect_usage_error(run("convert -i bf.npy --format e2m1fn"), "--input-dtype bf16");
  EXPECT_EQ(run("convert -i bf.npy --input-dtype bf16 --format e2m1fn").out, "1 0x2 1\n-2.5 0xc -2\n");
  expect_usage_error(run("convert -i x.npy --input-dtype f64 --format e2m1fn"), "<f4");

  // fp16 codes are uint16.
  const Result h = run("convert -i x.npy --format fp16 --codes h.npy");
  ASSERT_EQ(h.rc, 0) << h.err;
  const auto hc = read_npy(dir / "h.npy");
  EXPECT_EQ(hc.dtype, "<u2");
  EXPECT_EQ(hc.as<double>()[0], 0x5f00);  // 448 = 1.75 * 2^8: exponent 23, mantissa 0x300
}

// kernel-bench's matmul options (issue 11) are checked before any GPU is
// looked for: a bad value is exit 2 with the option named, also here without
// a GPU; good values reach the device check (run with every GPU hidden, so
// exit 77 — a measurement would take minutes).
TEST_F(Cli, KernelBenchMatmulOptions) {
  const Result h = run("kernel-bench --help");
  ASSERT_EQ(h.rc, 0) << h.err;
  if (h.out.find("--matmul-m") == std::string::npos) GTEST_SKIP() << "lowbit built without CUDA: kernel-bench has no options";
  for (const char* opt : {"--matmul-shapes", "--outliers", "--rounds", "fp8quant"})
    EXPECT_NE(h.out.find(opt), std::string::npos) << opt;
  expect_usage_error(run("kernel-bench --ops matmul,fp8qunt"), "did you mean 'fp8quant'");
  expect_usage_error(run("kernel-bench --ops matmul --matmul-shapes 8192x100"), "multiples of 16");
  expect_usage_error(run("kernel-bench --ops matmul --matmul-shapes 8192"), "'8192' is not KxN");
  expect_usage_error(run("kernel-bench --ops matmul --matmul-shapes 0x4096"), "multiples of 16");
  expect_usage_error(run("kernel-bench --ops matmul --matmul-m 0"), "--matmul-m: '0' is not a positive integer");
  expect_usage_error(run("kernel-bench --ops matmul --matmul-m 1,2.5"), "--matmul-m: '2.5'");
  expect_usage_error(run("kernel-bench --ops matmul --matmul-m 70000"), "above 65536");
  expect_usage_error(run("kernel-bench --ops matmul --matmul-shapes 131072x16 --matmul-m 16384"), "M · K must be below 2^31");
  expect_usage_error(run("kernel-bench --ops matmul --outliers 0,0.7"), "--outliers: '0.7' is not a fraction");
  expect_usage_error(run("kernel-bench --ops matmul --outliers -0.01"), "--outliers: '-0.01'");
  expect_usage_error(run("kernel-bench --ops matmul --outliers 1%"), "--outliers: '1%'");
  expect_usage_error(run("kernel-bench --ops matmul --outliers nan"), "--outliers: 'nan'");
  expect_usage_error(run("kernel-bench --ops matmul --matmul-shapes 4096x4096 --outliers 0.00001"),
                     "plants no column at K = 4096");
  expect_usage_error(run("kernel-bench --ops matmul --rounds 0"), "--rounds must be >= 1");
  // Valid options get as far as the device check: with every GPU hidden, exit 77 and a message.
  const char* old = std::getenv("CUDA_VISIBLE_DEVICES");
  const std::string saved = old ? old : "";
  ::setenv("CUDA_VISIBLE_DEVICES", "", 1);
  const Result ok = run("kernel-bench --ops matmul,fp8quant --matmul-shapes 4096x4096,8192x28672 --matmul-m 1,16 "
                        "--outliers 0,0.001,0.01 --rounds 3 -o kb.h5");
  if (old) ::setenv("CUDA_VISIBLE_DEVICES", saved.c_str(), 1);
  else ::unsetenv("CUDA_VISIBLE_DEVICES");
  EXPECT_EQ(ok.rc, 77) << ok.err;
  EXPECT_NE(ok.err.find("no CUDA device"), std::string::npos) << ok.err;
}
