// lowbit matmul-error — error of low-precision matrix products C = A·B.
//
//   lowbit matmul-error                                   default methods, 64x1024x1024, outliers 0 and 0.5 %
//   lowbit matmul-error --methods int8-vectorwise,llm-int8 --outlier-frac 0.01 --outlier-scale 20 -o mm.h5
//
// A (m × k) are activations: N(0,1), with round(frac·k) planted outlier
// columns (chosen by the seed) multiplied by --outlier-scale (20: most
// entries of such a column have |a| >= 6, as in LLM hidden states).
// B (k × n) are weights: N(0, 1/k). Weight formats quantize W = Bᵀ (n × k,
// PyTorch's [out_features, in_features]), so rows are output channels and
// blocks run along the input dimension, then B = Wᵀ again.
// Methods:
//   fp16, bf16        A and B rounded to the format, fp32 accumulation, C rounded to the format
//   int8-vectorwise   row-wise absmax int8 A × column-wise absmax int8 B, int32 accumulation
//                     (kernels/cpu/llm_int8.hpp)
//   llm-int8          LLM.int8(): A's columns with any |a| >= --threshold (6) and B's matching
//                     rows in fp16, the rest int8-vectorwise, summed in fp16; A's row absmax over
//                     its values below the threshold (bitsandbytes' rule, one pass on the GPU)
//   llm-int8-paper    the same with A's row absmax over the non-outlier columns (the paper's X^{h\O})
//   fp8-e4m3          A and W each e4m3fn with one per-tensor absmax scale (e4m3fn@tensor), fp32 accumulation
//   any registry name weight-only: W quantized by that format (nf4@64, int4@64, mxfp4, int8@row, ...),
//                     A rounded to fp16, fp32 accumulation, C rounded to fp16
// Reference: the fp64 product of the unquantized A and B. Metrics are in
// experiments/metrics/metrics.hpp (rel_fro_err, max_abs_err, max_rel_err).
// Seeds: A from derive_seed(seed, "A;m;k;frac;scale"), B from derive_seed(seed, "B;k;n"),
// so every method sees the same matrices and shards merge exactly.
#include <fmt/format.h>

#include <Eigen/Dense>
#include <charconv>
#include <iostream>
#include <numeric>

#include "experiments/drivers/quant_error.hpp"
#include "experiments/harness/cli.hpp"
#include "experiments/harness/errors.hpp"
#include "experiments/harness/progress.hpp"
#include "experiments/harness/text_table.hpp"
#include "experiments/metrics/metrics.hpp"
#include "experiments/sources/distributions.hpp"
#include "experiments/sources/random.hpp"
#include "kernels/cpu/llm_int8.hpp"
#include "lowbit/formats/minifloats.hpp"
#include "lowbit/formats/registry.hpp"

namespace lowbit::harness {
namespace {

namespace po = boost::program_options;
using RowMajorF = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

struct Shape {
  std::size_t m, k, n;
};

Shape parse_shape(const std::string& s) {
  Shape sh{};
  std::size_t* f[3] = {&sh.m, &sh.k, &sh.n};
  const char* p = s.data();
  const char* end = s.data() + s.size();
  for (int i = 0; i < 3; ++i) {
    auto r = std::from_chars(p, end, *f[i]);
    if (r.ec != std::errc() || *f[i] == 0 || *f[i] > (1u << 16)) throw UsageError(fmt::format("--shape '{}' must be MxKxN, each 1..65536", s));
    p = r.ptr;
    if (i < 2) {
      if (p == end || *p != 'x') throw UsageError(fmt::format("--shape '{}' must be MxKxN, e.g. 64x1024x1024", s));
      ++p;
    }
  }
  if (p != end) throw UsageError(fmt::format("--shape '{}' must be MxKxN, e.g. 64x1024x1024", s));
  return sh;
}

double parse_double(const std::string& s, const char* opt, double lo, double hi) {
  double v = 0;
  auto r = std::from_chars(s.data(), s.data() + s.size(), v);
  if (s.empty() || r.ec != std::errc() || r.ptr != s.data() + s.size() || !(v >= lo && v <= hi))
    throw UsageError(fmt::format("{} '{}' must be a number in [{}, {}]", opt, s, lo, hi));
  return v;
}

std::vector<float> matmul_f32(const std::vector<float>& a, const std::vector<float>& b, const Shape& s) {
  std::vector<float> c(s.m * s.n);
  Eigen::Map<const RowMajorF> A(a.data(), static_cast<Eigen::Index>(s.m), static_cast<Eigen::Index>(s.k));
  Eigen::Map<const RowMajorF> B(b.data(), static_cast<Eigen::Index>(s.k), static_cast<Eigen::Index>(s.n));
  Eigen::Map<RowMajorF> C(c.data(), static_cast<Eigen::Index>(s.m), static_cast<Eigen::Index>(s.n));
  C.noalias() = A * B;
  return c;
}

std::vector<float> rounded(const std::vector<float>& v, const FormatSpec& spec) {
  std::vector<float> out(v.size());
  for (std::size_t i = 0; i < v.size(); ++i) out[i] = lowbit::quantize(spec, v[i]);
  return out;
}

// Quantize B (k × n) as W = Bᵀ (n × k) with q, return the dequantized B.
std::vector<float> quantize_weights(const Quantizer& q, const std::vector<float>& b, const Shape& s) {
  std::vector<float> w(s.n * s.k), wq(s.n * s.k), out(s.k * s.n);
  for (std::size_t i = 0; i < s.k; ++i)
    for (std::size_t j = 0; j < s.n; ++j) w[j * s.k + i] = b[i * s.n + j];
  q.fake_quantize(w.data(), s.n, s.k, wq.data());
  for (std::size_t i = 0; i < s.k; ++i)
    for (std::size_t j = 0; j < s.n; ++j) out[i * s.n + j] = wq[j * s.k + i];
  return out;
}

Table schema() {
  Table t("matmul_error", "error of C = A*B against an fp64 reference, one row per cell; lowbit matmul-error");
  using enum ColumnType;
  t.add_column("cell", uint64, "1", "index of the cell in the whole grid")
      .add_column("method", string, "", "fp16, bf16, int8-vectorwise, llm-int8, llm-int8-paper, fp8-e4m3, or a weight-only registry format")
      .add_column("m", uint64, "1", "rows of A (tokens)")
      .add_column("k", uint64, "1", "columns of A = rows of B (hidden size)")
      .add_column("n", uint64, "1", "columns of B (output features)")
      .add_column("outlier_frac", float64, "1", "fraction of A's columns planted as outliers")
      .add_column("outlier_scale", float64, "1", "factor applied to the planted outlier columns of A")
      .add_column("outlier_cols", uint64, "1", "number of planted outlier columns")
      .add_column("threshold", float64, "1", "LLM.int8 outlier threshold (llm-int8* only; else NaN)")
      .add_column("outliers_detected", uint64, "1", "columns llm-int8* handled in fp16 (0 for other methods)")
      .add_column("weight_bits", float64, "bit", "storage bits per weight parameter including scales")
      .add_column("seed", uint64, "1", "run seed (--seed)");
  for (const auto& c : metrics::matmul_error_metric_columns())
    t.add_column(c.name, std::string(c.name) == "n_nan" ? uint64 : float64, c.unit, c.description);
  return t;
}

int run_cli(const std::vector<std::string>& args) {
  OptionParser parser("matmul-error", "[options]",
                      "Relative Frobenius and max error of C = A*B (A activations with planted outlier columns, B "
                      "weights) for fp16, bf16, int8 vector-wise, LLM.int8, FP8 e4m3 and weight-only registry "
                      "formats, against an fp64 reference. One row per cell in the table `matmul_error`.");
  parser.add()("methods", po::value<std::string>()->default_value("fp16,bf16,int8-vectorwise,llm-int8,llm-int8-paper,fp8-e4m3,nf4@64,int4@64,mxfp4")->value_name("LIST"),
               "methods (see --help text) and weight-only formats")(
      "shape", po::value<std::vector<std::string>>()->value_name("MxKxN"), "matrix sizes, repeatable (default 64x1024x1024)")(
      "outlier-frac", po::value<std::string>()->default_value("0,0.005")->value_name("F[,F...]"), "fractions of A's columns planted as outliers")(
      "outlier-scale", po::value<std::string>()->default_value("20")->value_name("S[,S...]"), "factor of the outlier columns")(
      "threshold", po::value<double>()->default_value(6.0)->value_name("T"), "LLM.int8 outlier threshold")(
      "seed", po::value<std::uint64_t>()->default_value(0)->value_name("S"), "run seed")(
      "shard", po::value<std::string>()->value_name("i/N"), "run only the i-th of N parts of the grid")(
      "output,o", po::value<std::string>()->default_value("matmul_error.h5")->value_name("FILE"), "results file")(
      "append", po::bool_switch(), "append to an existing results file")(
      "quiet,q", po::bool_switch(), "no progress bar or table");
  const auto vm = parser.parse(args);
  if (!vm) return 0;
  const auto methods = split_list((*vm)["methods"].as<std::string>());
  if (methods.empty()) throw UsageError("--methods is empty");
  const std::vector<std::string> builtin = {"fp16", "bf16", "int8-vectorwise", "llm-int8", "llm-int8-paper", "fp8-e4m3"};
  std::vector<std::optional<Quantizer>> weight_q;
  for (const auto& m : methods)
    weight_q.push_back(std::find(builtin.begin(), builtin.end(), m) != builtin.end() ? std::nullopt
                                                                                      : std::optional(parse_quantizer(m)));
  std::vector<Shape> shapes;
  if (vm->count("shape"))
    for (const auto& s : (*vm)["shape"].as<std::vector<std::string>>())
      for (const auto& t : split_list(s)) shapes.push_back(parse_shape(t));
  if (shapes.empty()) shapes.push_back({64, 1024, 1024});
  std::vector<double> fracs, scales;
  for (const auto& s : split_list((*vm)["outlier-frac"].as<std::string>())) fracs.push_back(parse_double(s, "--outlier-frac", 0, 1));
  for (const auto& s : split_list((*vm)["outlier-scale"].as<std::string>())) scales.push_back(parse_double(s, "--outlier-scale", 1e-6, 1e6));
  if (fracs.empty() || scales.empty()) throw UsageError("--outlier-frac and --outlier-scale need at least one value");
  const double threshold = (*vm)["threshold"].as<double>();
  if (!(threshold > 0)) throw UsageError("--threshold must be positive");
  const std::uint64_t seed = (*vm)["seed"].as<std::uint64_t>();
  std::size_t shard_i = 0, shard_n = 1;
  if (vm->count("shard")) std::tie(shard_i, shard_n) = parse_shard((*vm)["shard"].as<std::string>());
  const bool quiet = (*vm)["quiet"].as<bool>();

  ResultsWriter writer((*vm)["output"].as<std::string>(), "matmul-error",
                       (*vm)["append"].as<bool>() ? ResultsWriter::Mode::append : ResultsWriter::Mode::create, seed);
  Table table = schema();
  writer.check_schema(table);

  struct Group {
    Shape s;
    double frac, scale;
  };
  std::vector<Group> groups;
  for (const auto& s : shapes)
    for (double f : fracs)
      for (double sc : scales) groups.push_back({s, f, sc});
  const std::size_t nm = methods.size();
  const std::uint64_t grid_cells = groups.size() * nm;
  auto in_shard = [&](std::size_t c) { return c % shard_n == shard_i; };
  std::uint64_t shard_cells = 0;
  for (std::size_t c = 0; c < grid_cells; ++c) shard_cells += in_shard(c);
  std::string grid_text = fmt::format("matmul-error;methods={};threshold={};", fmt::join(methods, ","), threshold);
  for (const auto& g : groups) grid_text += fmt::format("{}x{}x{}:{}:{};", g.s.m, g.s.k, g.s.n, g.frac, g.scale);
  const std::string grid_hash = fmt::format("{:016x}", sources::hash_text(grid_text));

  Progress progress("matmul-error", shard_cells, quiet);
  for (std::size_t gi = 0; gi < groups.size(); ++gi) {
    bool any = false;
    for (std::size_t j = 0; j < nm; ++j) any = any || in_shard(gi * nm + j);
    if (!any) continue;
    const auto& g = groups[gi];
    const Shape& s = g.s;
    // A: N(0,1) with planted outlier columns; B: N(0, 1/k).
    const auto normal = sources::parse_distribution("normal");
    std::vector<float> a(s.m * s.k), b(s.k * s.n);
    const std::uint64_t akey = sources::derive_seed(seed, fmt::format("A;{};{};{};{}", s.m, s.k, g.frac, g.scale));
    const std::uint64_t bkey = sources::derive_seed(seed, fmt::format("B;{};{}", s.k, s.n));
    sources::generate(normal, akey, s.m, s.k, a.data());
    sources::generate(sources::parse_distribution(fmt::format("normal:sigma={}", 1.0 / std::sqrt(double(s.k)))), bkey,
                      s.k, s.n, b.data());
    const std::size_t n_out = static_cast<std::size_t>(std::llround(g.frac * static_cast<double>(s.k)));
    std::vector<std::size_t> cols(s.k);
    std::iota(cols.begin(), cols.end(), 0);
    sources::Stream pick(akey ^ 0x0C07'1135ull, 0);
    for (std::size_t i = 0; i < n_out; ++i) {  // partial Fisher–Yates
      const std::size_t j = i + static_cast<std::size_t>(pick.next() % (s.k - i));
      std::swap(cols[i], cols[j]);
    }
    for (std::size_t i = 0; i < n_out; ++i)
      for (std::size_t r = 0; r < s.m; ++r) a[r * s.k + cols[i]] = static_cast<float>(g.scale * a[r * s.k + cols[i]]);
    const auto ref = cpu::matmul_fp64(a.data(), b.data(), s.m, s.k, s.n);

    for (std::size_t mi = 0; mi < nm; ++mi) {
      const std::size_t cell = gi * nm + mi;
      if (!in_shard(cell)) continue;
      const std::string& method = methods[mi];
      std::vector<float> c;
      std::uint64_t detected = 0;
      double wbits = 0, thr = std::numeric_limits<double>::quiet_NaN();
      if (method == "fp16" || method == "bf16") {
        const FormatSpec spec = method == "fp16" ? lowbit::fp16 : lowbit::bf16;
        c = rounded(matmul_f32(rounded(a, spec), rounded(b, spec), s), spec);
        wbits = 16;
      } else if (method == "int8-vectorwise") {
        c = cpu::int8_vectorwise_matmul(a.data(), b.data(), s.m, s.k, s.n);
        wbits = 8 + 32.0 / static_cast<double>(s.k);
      } else if (method == "llm-int8" || method == "llm-int8-paper") {
        auto r = cpu::llm_int8_matmul(a.data(), b.data(), s.m, s.k, s.n, static_cast<float>(threshold),
                                      cpu::OutlierPrecision::fp16,
                                      method == "llm-int8" ? cpu::RowAbsmax::outlier_values_excluded
                                                           : cpu::RowAbsmax::outlier_columns_excluded);
        c = std::move(r.c);
        detected = r.outlier_cols.size();
        thr = threshold;
        wbits = 8 + 32.0 / static_cast<double>(s.k);  // int8 weights + one fp32 absmax per output column (fp16 copies of outlier rows not counted)
      } else if (method == "fp8-e4m3") {
        const auto q = parse_quantizer("e4m3fn@tensor");
        std::vector<float> aq(a.size());
        q.fake_quantize(a.data(), s.m, s.k, aq.data());
        c = matmul_f32(aq, quantize_weights(q, b, s), s);
        wbits = q.bits_per_parameter(s.n, s.k);
      } else {
        const Quantizer& q = *weight_q[mi];
        c = rounded(matmul_f32(rounded(a, lowbit::fp16), quantize_weights(q, b, s), s), lowbit::fp16);
        wbits = q.bits_per_parameter(s.n, s.k);
      }
      std::vector<double> cd(c.begin(), c.end());
      const auto e = metrics::matmul_errors(ref.data(), cd.data(), cd.size());
      table.add_row({std::uint64_t{cell}, weight_q[mi] ? weight_q[mi]->name() : method, std::uint64_t{s.m},
                     std::uint64_t{s.k}, std::uint64_t{s.n}, g.frac, g.scale, std::uint64_t{n_out}, thr, detected,
                     wbits, seed, e.rel_fro_err, e.max_abs_err, e.max_rel_err, e.n_nan});
      progress.add(1);
    }
  }
  if (!quiet) {
    Table brief("matmul_error");
    for (const char* name : {"method", "m", "k", "n", "outlier_cols", "rel_fro_err", "max_abs_err", "weight_bits"}) {
      const auto& col = table.column(name);
      brief.add_column(col.name, col.type, col.unit, col.description);
    }
    for (std::size_t r = 0; r < table.rows() && r < 200; ++r) {
      std::vector<Cell> row;
      for (const auto& col : brief.columns()) row.push_back(table.column(col.name).cell(r));
      brief.add_row(row);
    }
    print_table(std::cout, brief);
  }
  set_shard_attributes(writer, grid_hash, grid_cells, shard_i, shard_n, shard_cells);
  writer.add(std::move(table));
  writer.commit();
  return 0;
}

const Registrar reg{"matmul-error", "error of fp16/bf16/int8/LLM.int8/FP8/weight-only matrix products vs fp64", run_cli};

}  // namespace
}  // namespace lowbit::harness
