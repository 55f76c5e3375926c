// Tests of the shared experiment harness: suggestions, counter-based random
// bits, .npy I/O, the HDF5 results writer, atomic files, option parsing.
// Expected numbers come from the formats' specifications (NumPy's .npy
// format document, SplitMix64's published outputs), never from lowbit.
#include <gtest/gtest.h>
#include <hdf5.h>
#include <unistd.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>

#include "experiments/harness/atomic_file.hpp"
#include "experiments/harness/cli.hpp"
#include "experiments/harness/errors.hpp"
#include "experiments/harness/npy.hpp"
#include "experiments/harness/progress.hpp"
#include "experiments/harness/random.hpp"
#include "experiments/harness/results.hpp"

namespace fs = std::filesystem;
using namespace lowbit::harness;

namespace {

// A fresh directory per test, removed afterwards.
struct TempDir {
  fs::path path;
  TempDir() {
    path = fs::temp_directory_path() / ("lowbit_test_harness_" + std::to_string(::getpid()) + "_" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~TempDir() { fs::remove_all(path); }
  std::vector<std::string> entries() const {
    std::vector<std::string> names;
    for (const auto& e : fs::directory_iterator(path)) names.push_back(e.path().filename().string());
    std::sort(names.begin(), names.end());
    return names;
  }
};

std::vector<char> slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void spit(const fs::path& p, std::string_view bytes) {
  std::ofstream out(p, std::ios::binary);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

// A version-1.0 .npy file as the NumPy format document describes it: magic,
// version, little-endian uint16 header length, the dict, the data.
std::string npy_v1(const std::string& dict, std::string_view data) {
  std::string header = dict;
  while ((10 + header.size() + 1) % 64) header += ' ';
  header += '\n';
  std::string f = "\x93NUMPY";
  f += '\x01';
  f += '\x00';
  f += static_cast<char>(header.size() & 0xff);
  f += static_cast<char>(header.size() >> 8);
  return f + header + std::string(data);
}

}  // namespace

// ---- suggestions ------------------------------------------------------------------------

TEST(Suggest, EditDistanceCountsAdjacentSwapsOnce) {
  EXPECT_EQ(edit_distance("kitten", "sitting"), 3u);  // the textbook Levenshtein example
  EXPECT_EQ(edit_distance("fromats", "formats"), 1u);  // one transposition
  EXPECT_EQ(edit_distance("", "abc"), 3u);
  EXPECT_EQ(edit_distance("same", "same"), 0u);
}

TEST(Suggest, ClosestNameOrNothing) {
  const std::vector<std::string> subs{"convert", "formats", "memory"};
  EXPECT_EQ(closest_name("fromats", subs), "formats");
  EXPECT_EQ(closest_name("conver", subs), "convert");
  EXPECT_EQ(closest_name("mem", subs), "memory");  // unique prefix
  EXPECT_EQ(closest_name("quantize", subs), "");   // nothing plausible
  EXPECT_EQ(closest_name("e4m3fx", {"e4m3fn", "e5m2", "e4m3fnuz"}), "e4m3fn");
  EXPECT_EQ(did_you_mean("satruate", {"saturate", "seed"}), " (did you mean 'saturate'?)");
}

TEST(Suggest, SplitList) {
  EXPECT_EQ(split_list(" e4m3fn, e5m2,,e2m1fn "), (std::vector<std::string>{"e4m3fn", "e5m2", "e2m1fn"}));
  EXPECT_TRUE(split_list("").empty());
}

// ---- counter-based random bits ---------------------------------------------------------------

TEST(Random, MatchesPublishedSplitMix64Outputs) {
  // SplitMix64 from state 0: first outputs 0xe220a8397b1dcdaf, 0x6e789e6aa1b965f4.
  EXPECT_EQ(counter_random(0, 0), 0xe220a8397b1dcdafull);
  EXPECT_EQ(counter_random(0, 1), 0x6e789e6aa1b965f4ull);
  // From state 1234567 (the example in Vigna's splitmix64.c test vectors).
  EXPECT_EQ(counter_random(1234567, 0), 6457827717110365317ull);
  EXPECT_EQ(counter_random(1234567, 1), 3203168211198807973ull);
  EXPECT_EQ(stochastic_bits(0, 0), 0xe220a839u);
}

// ---- .npy ------------------------------------------------------------------------------

TEST(Npy, ReadsWhatNumpyWrites) {
  TempDir dir;
  // np.save(p, np.array([[1, -2, 3], [4, 5, -6]], dtype='<i2'))
  const std::int16_t v[] = {1, -2, 3, 4, 5, -6};
  spit(dir.path / "a.npy", npy_v1("{'descr': '<i2', 'fortran_order': False, 'shape': (2, 3), }",
                                  std::string_view(reinterpret_cast<const char*>(v), sizeof v)));
  const NpyArray a = read_npy(dir.path / "a.npy");
  EXPECT_EQ(a.dtype, "<i2");
  EXPECT_EQ(a.shape, (std::vector<std::size_t>{2, 3}));
  EXPECT_EQ(a.as<double>(), (std::vector<double>{1, -2, 3, 4, 5, -6}));
}

TEST(Npy, HalfPrecisionWidensExactly) {
  TempDir dir;
  // IEEE binary16: 0x3c00 = 1, 0xc000 = -2, 0x7bff = 65504, 0x0001 = 2^-24, 0x7c00 = inf.
  const std::uint16_t h[] = {0x3c00, 0xc000, 0x7bff, 0x0001, 0x7c00};
  spit(dir.path / "h.npy", npy_v1("{'descr': '<f2', 'fortran_order': False, 'shape': (5,), }",
                                  std::string_view(reinterpret_cast<const char*>(h), sizeof h)));
  const auto f = read_npy(dir.path / "h.npy").as<float>();
  ASSERT_EQ(f.size(), 5u);
  EXPECT_EQ(f[0], 1.0f);
  EXPECT_EQ(f[1], -2.0f);
  EXPECT_EQ(f[2], 65504.0f);
  EXPECT_EQ(f[3], std::ldexp(1.0f, -24));
  EXPECT_TRUE(std::isinf(f[4]));
}

TEST(Npy, WriterFollowsTheFormatDocument) {
  const float x[] = {1.5f, -2.0f, 0.25f};
  const auto bytes = format_npy("<f4", {3}, x);
  const std::string s(reinterpret_cast<const char*>(bytes.data()), bytes.size());
  ASSERT_EQ(s.substr(0, 8), std::string("\x93NUMPY\x01\x00", 8));
  const std::size_t header_len = static_cast<unsigned char>(s[8]) | static_cast<unsigned char>(s[9]) << 8;
  EXPECT_EQ((10 + header_len) % 64, 0u);  // data aligned as NumPy does
  const std::string dict = "{'descr': '<f4', 'fortran_order': False, 'shape': (3,), }";
  EXPECT_EQ(s.substr(10, dict.size()), dict);
  EXPECT_EQ(s.find_first_not_of(' ', 10 + dict.size()), 10 + header_len - 1);  // space padding
  EXPECT_EQ(s[10 + header_len - 1], '\n');
  EXPECT_EQ(s.substr(10 + header_len), std::string(reinterpret_cast<const char*>(x), sizeof x));
}

TEST(Npy, RoundTripEveryDtypeAndVersion) {
  TempDir dir;
  const std::vector<std::pair<std::string, std::size_t>> dtypes{
      {"<f2", 2}, {"<f4", 4}, {"<f8", 8}, {"|u1", 1}, {"<u2", 2}, {"<u4", 4}, {"<u8", 8},
      {"|i1", 1}, {"<i2", 2}, {"<i4", 4}, {"<i8", 8}, {"|V2", 2}};
  for (int version : {1, 2, 3}) {
    for (const auto& [dtype, size] : dtypes) {
      for (const std::vector<std::size_t>& shape : {std::vector<std::size_t>{}, {7}, {2, 3}, {2, 0, 4}}) {
        std::size_t n = 1;
        for (auto d : shape) n *= d;
        std::vector<std::byte> data(n * size);
        for (std::size_t i = 0; i < data.size(); ++i) data[i] = static_cast<std::byte>(i * 37 + 11);
        const fs::path p = dir.path / "rt.npy";
        write_npy(p, dtype, shape, data.data(), version);
        const auto raw = slurp(p);
        ASSERT_EQ(static_cast<unsigned char>(raw.at(6)), version);
        const NpyArray a = read_npy(p);
        EXPECT_EQ(a.dtype, dtype) << dtype << " v" << version;
        EXPECT_EQ(a.shape, shape) << dtype << " v" << version;
        EXPECT_EQ(a.data, data) << dtype << " v" << version;
      }
    }
  }
  EXPECT_EQ(dir.entries(), std::vector<std::string>{"rt.npy"});  // no temporaries left
}

TEST(Npy, AcceptsNumpySpellings) {
  TempDir dir;
  const std::uint8_t b[] = {1, 0, 1};
  spit(dir.path / "b.npy", npy_v1("{'descr': '|b1', 'fortran_order': False, 'shape': (3,), }",
                                  std::string_view(reinterpret_cast<const char*>(b), 3)));
  EXPECT_EQ(read_npy(dir.path / "b.npy").as<float>(), (std::vector<float>{1, 0, 1}));
  // ml_dtypes' bfloat16 is '<V2'; one-dimensional Fortran order equals C order.
  spit(dir.path / "v.npy", npy_v1("{'descr': '<V2', 'fortran_order': True, 'shape': (1,), }", "\x80\x3f"));
  const NpyArray v = read_npy(dir.path / "v.npy");
  EXPECT_EQ(v.dtype, "|V2");
  EXPECT_THROW(v.as<float>(), InputError);
}

TEST(Npy, RejectsWhatItCannotRead) {
  TempDir dir;
  const std::string four(16, '\0');
  auto rejects = [&](const std::string& bytes, const std::string& expected_words) {
    spit(dir.path / "bad.npy", bytes);
    try {
      read_npy(dir.path / "bad.npy");
      ADD_FAILURE() << "accepted: " << expected_words;
    } catch (const InputError& e) {
      EXPECT_NE(std::string(e.what()).find(expected_words), std::string::npos) << e.what();
    }
  };
  rejects("PK\x03\x04 not numpy at all", "bad magic");
  rejects(npy_v1("{'descr': '>f4', 'fortran_order': False, 'shape': (4,), }", four), "big-endian");
  rejects(npy_v1("{'descr': '<f4', 'fortran_order': True, 'shape': (2, 2), }", four), "Fortran");
  rejects(npy_v1("{'descr': '|O', 'fortran_order': False, 'shape': (2,), }", four), "unsupported dtype");
  rejects(npy_v1("{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (4,), }", four), "structured");
  rejects(npy_v1("{'descr': '<f4', 'fortran_order': False, 'shape': (5,), }", four), "truncated data");
  rejects(npy_v1("{'descr': '<f4', 'fortran_order': False, 'shape': (3,), }", four), "unexpected bytes");
  rejects(npy_v1("{'descr': '<f4', 'fortran_order': False, 'shape': (4,), }", four).substr(0, 30), "truncated header");
  std::string v4 = npy_v1("{'descr': '<f4', 'fortran_order': False, 'shape': (4,), }", four);
  v4[6] = '\x04';
  rejects(v4, "version 4");
  EXPECT_THROW(read_npy(dir.path / "missing.npy"), InputError);
}

// ---- atomic files ------------------------------------------------------------------------------

TEST(AtomicFile, UncommittedLeavesNothingCommittedReplaces) {
  TempDir dir;
  const fs::path target = dir.path / "x.bin";
  {
    AtomicFile f(target);
    spit(f.temp_path(), "half");
    EXPECT_EQ(f.temp_path().parent_path(), dir.path);
  }  // destroyed without commit
  EXPECT_TRUE(dir.entries().empty());
  spit(target, "old");
  {
    AtomicFile f(target);
    spit(f.temp_path(), "new");
    f.commit();
  }
  EXPECT_EQ(dir.entries(), std::vector<std::string>{"x.bin"});
  EXPECT_EQ(std::string(slurp(target).data(), 3), "new");
}

TEST(AtomicFile, UnwritableTargetsAreUsageErrors) {
  TempDir dir;
  EXPECT_THROW(check_writable("/nonexistent/dir/x.h5"), UsageError);
  EXPECT_THROW(check_writable(dir.path), UsageError);  // a directory
  EXPECT_NO_THROW(check_writable(dir.path / "ok.h5"));
  EXPECT_TRUE(dir.entries().empty());  // the probe is gone
  if (::geteuid() != 0) {  // root writes anywhere
    fs::create_directory(dir.path / "ro");
    fs::permissions(dir.path / "ro", fs::perms::owner_read | fs::perms::owner_exec);
    EXPECT_THROW(check_writable(dir.path / "ro" / "x.h5"), UsageError);
  }
}

// ---- results writer ------------------------------------------------------------------------------

namespace {

Table sample_table(int first, int count) {
  Table t("errors", "a test table");
  t.add_column("format", ColumnType::string, "", "format name")
      .add_column("block", ColumnType::int64, "1", "block size")
      .add_column("count", ColumnType::uint64, "1", "elements")
      .add_column("mse", ColumnType::float64, "1", "mean squared error")
      .add_column("ok", ColumnType::boolean, "", "passed");
  for (int i = first; i < first + count; ++i)
    t.add_row({std::string(static_cast<std::size_t>(i % 4 + 1), 'a' + static_cast<char>(i)), std::int64_t{-i},
               std::uint64_t(1) << 40 | static_cast<std::uint64_t>(i), 1.0 / (i + 3), i % 2 == 0});
  return t;
}

std::string string_attribute(hid_t obj, const char* name) {
  const hid_t a = H5Aopen(obj, name, H5P_DEFAULT);
  if (a < 0) return "<missing>";
  const hid_t t = H5Tcopy(H5T_C_S1);
  H5Tset_size(t, H5T_VARIABLE);
  H5Tset_cset(t, H5T_CSET_UTF8);
  char* p = nullptr;
  H5Aread(a, t, &p);
  std::string s = p ? p : "";
  H5free_memory(p);
  H5Tclose(t);
  H5Aclose(a);
  return s;
}

}  // namespace

TEST(Results, WritesCompoundTableReadableWithTheCApi) {
  TempDir dir;
  const fs::path p = dir.path / "r.h5";
  ResultsWriter w(p, "unit-test", ResultsWriter::Mode::create, 42);
  w.add(sample_table(0, 5));
  Array a{"values/x", {2, 3}, std::vector<double>{1, 2, 3, 4, 5, 6}, "1", "a 2-D array", {{"format", std::string("x")}}};
  w.add(std::move(a));
  w.commit();
  ASSERT_EQ(dir.entries(), std::vector<std::string>{"r.h5"});

  // Read the mse column with the plain HDF5 C API: a compound of one member.
  const hid_t f = H5Fopen(p.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  ASSERT_GE(f, 0);
  const hid_t ds = H5Dopen2(f, "errors", H5P_DEFAULT);
  ASSERT_GE(ds, 0);
  const hid_t mt = H5Tcreate(H5T_COMPOUND, sizeof(double));
  H5Tinsert(mt, "mse", 0, H5T_NATIVE_DOUBLE);
  double mse[5];
  ASSERT_GE(H5Dread(ds, mt, H5S_ALL, H5S_ALL, H5P_DEFAULT, mse), 0);
  for (int i = 0; i < 5; ++i) EXPECT_EQ(mse[i], 1.0 / (i + 3));
  EXPECT_EQ(string_attribute(ds, "mse.unit"), "1");
  EXPECT_EQ(string_attribute(ds, "mse.description"), "mean squared error");
  EXPECT_EQ(string_attribute(f, "experiment"), "unit-test");
  EXPECT_EQ(string_attribute(f, "lowbit_version"), LOWBIT_VERSION);
  EXPECT_EQ(string_attribute(f, "gpu").empty(), false);
  const std::string start = string_attribute(f, "start_time");
  EXPECT_EQ(start.size(), 20u);  // 2024-05-01T12:34:56Z
  EXPECT_EQ(start[10], 'T');
  EXPECT_EQ(start.back(), 'Z');
  std::uint64_t seed = 0;
  const hid_t sa = H5Aopen(f, "seed", H5P_DEFAULT);
  H5Aread(sa, H5T_NATIVE_UINT64, &seed);
  EXPECT_EQ(seed, 42u);
  H5Aclose(sa);
  const hid_t arr = H5Dopen2(f, "values/x", H5P_DEFAULT);
  double v[6];
  ASSERT_GE(H5Dread(arr, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, v), 0);
  EXPECT_EQ(v[5], 6.0);
  H5Dclose(arr);
  H5Tclose(mt);
  H5Dclose(ds);
  H5Fclose(f);

  // And the whole table back through lowbit's reader.
  const Table t = read_table(p, "errors");
  ASSERT_EQ(t.rows(), 5u);
  EXPECT_EQ(t.column("format").strings[3], "dddd");
  EXPECT_EQ(t.column("block").int64s[4], -4);
  EXPECT_EQ(t.column("count").uint64s[2], (std::uint64_t{1} << 40) + 2);
  EXPECT_EQ(t.column("ok").bools[1], 0);
  EXPECT_EQ(t.column("block").unit, "1");
  EXPECT_EQ(read_table(p, "runs").rows(), 1u);
}

TEST(Results, AppendAddsRowsAndWidensStrings) {
  TempDir dir;
  const fs::path p = dir.path / "r.h5";
  {
    ResultsWriter w(p, "unit-test");
    w.add(sample_table(0, 1));  // names of width 1
    w.commit();
  }
  {
    ResultsWriter w(p, "unit-test", ResultsWriter::Mode::append);
    const Table more = sample_table(1, 3);
    EXPECT_NO_THROW(w.check_schema(more));
    w.add(more);
    w.commit();
  }
  const Table t = read_table(p, "errors");
  ASSERT_EQ(t.rows(), 4u);
  EXPECT_EQ(t.column("format").strings[0], "a");
  EXPECT_EQ(t.column("format").strings[3], "dddd");
  EXPECT_EQ(t.column("mse").float64s[3], 1.0 / 6);
  EXPECT_EQ(read_table(p, "runs").rows(), 2u);
  EXPECT_EQ(dir.entries(), std::vector<std::string>{"r.h5"});
}

TEST(Results, AppendWithAnotherSchemaFailsAndLeavesTheFile) {
  TempDir dir;
  const fs::path p = dir.path / "r.h5";
  {
    ResultsWriter w(p, "unit-test");
    w.add(sample_table(0, 2));
    w.commit();
  }
  const auto before = slurp(p);
  Table other("errors", "");
  other.add_column("format", ColumnType::string, "", "").add_column("mse", ColumnType::float64, "dB", "");
  other.add_row({std::string("x"), 1.0});
  ResultsWriter w(p, "unit-test", ResultsWriter::Mode::append);
  EXPECT_THROW(w.check_schema(other), UsageError);
  w.add(other);
  EXPECT_THROW(w.commit(), InputError);
  EXPECT_EQ(slurp(p), before);
  EXPECT_EQ(dir.entries(), std::vector<std::string>{"r.h5"});
}

TEST(Results, FailingCommitLeavesNoFileAndKeepsTheOldOne) {
  TempDir dir;
  const fs::path p = dir.path / "r.h5";
  auto failing_run = [&] {
    ResultsWriter w(p, "unit-test");
    w.add(sample_table(0, 3));
    w.add(Array{"broken", {4}, std::vector<double>{1, 2}, "1", "shape and data disagree", {}});
    w.commit();  // throws while writing the temporary
  };
  EXPECT_THROW(failing_run(), std::logic_error);
  EXPECT_TRUE(dir.entries().empty());

  spit(p, "precious bytes");
  EXPECT_THROW(failing_run(), std::logic_error);
  EXPECT_EQ(dir.entries(), std::vector<std::string>{"r.h5"});
  const auto after = slurp(p);
  EXPECT_EQ(std::string(after.begin(), after.end()), "precious bytes");
}

TEST(Results, BadPathsFailBeforeTheRun) {
  TempDir dir;
  EXPECT_THROW(ResultsWriter("/nonexistent/dir/x.h5", "t"), UsageError);
  EXPECT_THROW(ResultsWriter(dir.path / "missing.h5", "t", ResultsWriter::Mode::append), UsageError);
  spit(dir.path / "text.h5", "not hdf5");
  EXPECT_THROW(ResultsWriter(dir.path / "text.h5", "t", ResultsWriter::Mode::append), UsageError);
  EXPECT_EQ(dir.entries(), std::vector<std::string>{"text.h5"});
}

TEST(Results, RowsMustMatchTheSchema) {
  Table t = sample_table(0, 0);
  EXPECT_THROW(t.add_row({std::string("x")}), std::logic_error);
  EXPECT_THROW(t.add_row({1.0, std::int64_t{1}, std::uint64_t{1}, 1.0, true}), std::logic_error);
  EXPECT_THROW(t.add_row({std::string("x"), std::int64_t{1}, std::int64_t{-1}, 1.0, true}), std::logic_error);
  t.add_row({std::string("x"), std::int64_t{1}, std::int64_t{7}, std::int64_t{2}, true});  // exact conversions
  EXPECT_EQ(t.column("count").uint64s[0], 7u);
  EXPECT_EQ(t.column("mse").float64s[0], 2.0);
}

// ---- options ------------------------------------------------------------------------------------------

namespace po = boost::program_options;

TEST(Options, UnknownOptionSuggestsTheClosest) {
  OptionParser p("demo", "[options]", "a demo");
  p.add()("saturate", po::bool_switch(), "")("seed", po::value<int>(), "");
  try {
    p.parse({"--satruate"});
    FAIL() << "accepted an unknown option";
  } catch (const UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("did you mean '--saturate'?"), std::string::npos) << e.what();
  }
  EXPECT_THROW(p.parse({"--sat"}), UsageError);  // no silent prefix guessing
  EXPECT_THROW(p.parse({"--seed", "x"}), UsageError);
  EXPECT_FALSE(p.parse({"--help"}).has_value());
}

TEST(Options, ConfigFileWithCommandLineWinning) {
  TempDir dir;
  spit(dir.path / "c.cfg", "# comment\nseed = 5\nformat = e2m1fn\n");
  OptionParser p("demo", "[options]", "a demo");
  p.add()("seed", po::value<int>(), "")("format", po::value<std::string>(), "");
  const auto vm = p.parse({"--config", (dir.path / "c.cfg").string(), "--seed", "9"});
  ASSERT_TRUE(vm.has_value());
  EXPECT_EQ((*vm)["seed"].as<int>(), 9);
  EXPECT_EQ((*vm)["format"].as<std::string>(), "e2m1fn");
  spit(dir.path / "bad.cfg", "sede = 5\n");
  try {
    p.parse({"--config", (dir.path / "bad.cfg").string()});
    FAIL();
  } catch (const UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("did you mean 'seed'?"), std::string::npos) << e.what();
  }
  EXPECT_THROW(p.parse({"--config", (dir.path / "none.cfg").string()}), UsageError);
}

TEST(Progress, DurationsAndCounting) {
  EXPECT_EQ(Progress::format_duration(5), "5s");
  EXPECT_EQ(Progress::format_duration(65), "1m05s");
  EXPECT_EQ(Progress::format_duration(3 * 3600 + 120), "3h02m");
  Progress bar("t", 100, /*quiet=*/true);
  std::vector<std::thread> threads;
  for (int i = 0; i < 4; ++i)
    threads.emplace_back([&] {
      for (int k = 0; k < 1000; ++k) bar.add();
    });
  for (auto& t : threads) t.join();
  EXPECT_EQ(bar.done(), 4000u);
}
