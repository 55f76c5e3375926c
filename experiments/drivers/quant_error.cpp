// lowbit quant-error — quantization error of formats × data sources.
//
//   lowbit quant-error --formats e4m3fn@tensor,nf4@64 --dist normal --samples 4000000 --seed 7 -o out.h5
//   lowbit quant-error --formats nf4@64,int8@row --dist 'weights:model.safetensors:*.q_proj.*' --per-tensor
//   lowbit quant-error ... --shard 3/8 -o parts/part-3.h5   then   lowbit merge parts/*.h5 -o all.h5
//
// Writes the table `quant_error`, one row per cell (quant_error.hpp has the
// grid and seeding; experiments/metrics/metrics.hpp the metric definitions,
// which are also the column descriptions). A bare minifloat name (e4m3fn)
// is a plain conversion without scaling; e4m3fn@tensor scales the tensor's
// absmax to the format's max (registry.hpp).
#include "experiments/drivers/quant_error.hpp"

#include <fmt/format.h>
#ifdef _OPENMP
#include <omp.h>
#endif
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <iostream>
#include <limits>
#include <memory>

#include "experiments/harness/cli.hpp"
#include "experiments/harness/shard_part.hpp"
#include "experiments/harness/errors.hpp"
#include "experiments/harness/progress.hpp"
#include "experiments/harness/text_table.hpp"
#include "experiments/metrics/metrics.hpp"
#include "experiments/sources/distributions.hpp"
#include "experiments/sources/random.hpp"
#include "experiments/sources/source.hpp"
#include "experiments/sources/tensors.hpp"
#include "lowbit/formats/registry.hpp"

namespace lowbit::harness {
namespace {

namespace po = boost::program_options;
using sources::TensorInfo;

struct DataGroup {
  std::size_t source = 0;
  bool weights = false;
  std::uint64_t samples = 0, seed = 0, cell_seed = 0;
  std::size_t rows = 0, cols = 0;
  std::string tensor;               // weights: glob (pooled) or tensor name
  std::vector<TensorInfo> tensors;  // weights
};

std::uint64_t parse_count(const std::string& text, const char* option) {
  double v = 0;
  const auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (text.empty() || ec != std::errc() || p != text.data() + text.size() || !(v >= 1) || v > 1e15 || v != std::floor(v))
    throw UsageError(fmt::format("{} '{}' is not a positive whole number", option, text));
  return static_cast<std::uint64_t>(v);
}

std::uint64_t parse_seed(const std::string& text) {
  std::uint64_t v = 0;
  const auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (text.empty() || ec != std::errc() || p != text.data() + text.size())
    throw UsageError(fmt::format("--seed '{}' is not a non-negative integer", text));
  return v;
}

}  // namespace

std::pair<std::size_t, std::size_t> parse_shard(const std::string& text) {
  const auto slash = text.find('/');
  std::size_t i = 0, n = 0;
  bool ok = slash != std::string::npos;
  if (ok) {
    const auto a = std::from_chars(text.data(), text.data() + slash, i);
    const auto b = std::from_chars(text.data() + slash + 1, text.data() + text.size(), n);
    ok = a.ec == std::errc() && a.ptr == text.data() + slash && b.ec == std::errc() &&
         b.ptr == text.data() + text.size() && slash > 0 && n >= 1 && i < n;
  }
  if (!ok)
    throw UsageError(fmt::format("--shard '{}' must be i/N with 0 <= i < N (shards are numbered from 0, "
                                 "e.g. --shard $SLURM_ARRAY_TASK_ID/$SLURM_ARRAY_TASK_COUNT)",
                                 text));
  return {i, n};
}

void set_shard_attributes(ResultsWriter& w, const std::string& grid_hash, std::uint64_t grid_cells,
                          std::size_t shard_index, std::size_t shard_count, std::uint64_t shard_cells) {
  w.set_root_attribute("grid_hash", grid_hash);
  w.set_root_attribute("grid_cells", static_cast<std::int64_t>(grid_cells));
  w.set_root_attribute("shard_index", static_cast<std::int64_t>(shard_index));
  w.set_root_attribute("shard_count", static_cast<std::int64_t>(shard_count));
  w.set_root_attribute("shard_cells", static_cast<std::int64_t>(shard_cells));
}

Table quant_error_schema() {
  Table t("quant_error", "quantization error, one row per cell (format x data source x size x seed); lowbit quant-error");
  using enum ColumnType;
  t.add_column("cell", uint64, "1", "index of the cell in the whole grid (shards merged sort by it)")
      .add_column("format", string, "", "quantizer, canonical registry name (bare minifloat: unscaled conversion)")
      .add_column("dist", string, "", "data source as given to --dist")
      .add_column("tensor", string, "", "weights: tensor name, or the glob of a pooled selection; empty for distributions")
      .add_column("rows", uint64, "1", "rows of the sample matrix (weights: of the tensor; 0 for a pooled selection)")
      .add_column("cols", uint64, "1", "columns of the sample matrix (weights: of the tensor; 0 for a pooled selection)")
      .add_column("samples", uint64, "1", "number of values quantized")
      .add_column("seed", uint64, "1", "run seed (--seed)")
      .add_column("cell_seed", uint64, "1", "seed of this cell's data: derive_seed(seed, canonical dist;n;cols)");
  for (const auto& c : metrics::quant_error_metric_columns())
    t.add_column(c.name, std::string(c.name).rfind("n_", 0) == 0 ? uint64 : float64, c.unit, c.description);
  t.set_attribute("tiny", "mean_rel_err excludes |x| < 2^-126");
  return t;
}

Table quant_error_hist_schema() {
  Table t("quant_error_hist", "error histograms: per cell, counts of log10(|q-x| / rms(x)) over finite inputs; lowbit quant-error --histogram");
  using enum ColumnType;
  t.add_column("cell", uint64, "1", "cell of the quant_error table")
      .add_column("format", string, "", "quantizer, canonical registry name")
      .add_column("dist", string, "", "data source as given to --dist")
      .add_column("tensor", string, "", "weights: tensor name or glob; empty for distributions")
      .add_column("bin", int64, "1", "0: exact (q == x); 1..B: log10(|q-x|/rms(x)) in [log10_lo, log10_hi), the ends clamped")
      .add_column("log10_lo", float64, "1", "lower edge, log10 of |q-x| / rms(x) (-inf for bin 0 and the first bin)")
      .add_column("log10_hi", float64, "1", "upper edge (+inf for the last bin)")
      .add_column("count", uint64, "1", "number of finite inputs in the bin");
  return t;
}

namespace {
// Bin counts of log10(|q−x|/rms) (see quant_error.hpp), chunked and merged in order.
std::vector<std::uint64_t> error_histogram(const float* x, const float* q, std::size_t n, double rms, int bins) {
  std::vector<std::uint64_t> h(static_cast<std::size_t>(bins) + 1, 0);
  if (!(rms > 0)) rms = 1;
  const double lo = -8, hi = 1, inv_width = bins / (hi - lo);
  for (std::size_t i = 0; i < n; ++i) {
    const double xi = x[i], qi = q[i];
    if (!std::isfinite(xi) || !std::isfinite(qi)) continue;
    const double e = std::fabs(qi - xi);
    if (e == 0) {
      ++h[0];
      continue;
    }
    long b = static_cast<long>(std::floor((std::log10(e / rms) - lo) * inv_width));
    b = std::clamp(b, 0L, static_cast<long>(bins) - 1);
    ++h[static_cast<std::size_t>(b) + 1];
  }
  return h;
}
double rms_of(const float* x, std::size_t n) {
  double s = 0;
  std::size_t k = 0;
  for (std::size_t i = 0; i < n; ++i)
    if (std::isfinite(x[i])) s += static_cast<double>(x[i]) * x[i], ++k;
  return k ? std::sqrt(s / static_cast<double>(k)) : 0.0;
}
}  // namespace

QuantErrorRun run_quant_error(const QuantErrorGrid& g) {
  if (g.formats.empty()) throw UsageError("no formats: give --formats NAME[,NAME...] (see `lowbit formats --list`)");
  if (g.dists.empty()) throw UsageError("no data: give --dist SPEC");
  // Parse everything first: a bad name fails before any work.
  std::vector<Quantizer> quantizers;
  for (const auto& f : g.formats) quantizers.push_back(parse_quantizer(f));
  std::vector<sources::SourceSpec> specs;
  std::vector<std::unique_ptr<sources::TensorFile>> files;
  for (const auto& d : g.dists) {
    specs.push_back(sources::parse_source(d));
    files.push_back(specs.back().is_weights ? sources::TensorFile::open(specs.back().path) : nullptr);
  }

  std::vector<DataGroup> groups;
  std::string grid_text = "quant-error;formats=";
  for (const auto& q : quantizers) grid_text += q.name() + ",";
  for (std::size_t s = 0; s < specs.size(); ++s) {
    const auto& spec = specs[s];
    if (!spec.is_weights) {
      grid_text += ";dist=" + spec.dist.canonical();
      for (auto n : g.samples) {
        const auto [rows, cols] = sources::sample_shape(n, g.cols);
        for (auto seed : g.seeds) {
          DataGroup d;
          d.source = s;
          d.samples = n;
          d.rows = rows;
          d.cols = cols;
          d.seed = seed;
          d.cell_seed = sources::derive_seed(seed, fmt::format("{};n={};cols={}", spec.dist.canonical(), n, cols));
          groups.push_back(std::move(d));
        }
      }
    } else {
      auto selected = sources::select_tensors(*files[s], spec.glob);
      if (g.weights_2d_only)
        std::erase_if(selected, [](const TensorInfo& t) { return t.shape.size() < 2; });
      if (selected.empty())
        throw InputError(fmt::format("--dist '{}': no 2-D tensor matches '{}'", spec.text, spec.glob));
      for (const auto& t : selected)
        if (t.element_count() == 0)
          throw InputError(fmt::format("--dist '{}': tensor '{}' is empty", spec.text, t.name));
      grid_text += ";weights=" + spec.path.string() + ":" + spec.glob;
      auto add = [&](std::vector<TensorInfo> ts, std::string name, std::size_t rows, std::size_t cols) {
        DataGroup d;
        d.source = s;
        d.weights = true;
        d.seed = g.seeds.front();
        for (const auto& t : ts) d.samples += t.element_count(), grid_text += "," + t.name;
        d.rows = rows;
        d.cols = cols;
        d.tensor = std::move(name);
        d.tensors = std::move(ts);
        groups.push_back(std::move(d));
      };
      if (g.per_tensor)
        for (const auto& t : selected) add({t}, t.name, t.rows(), t.cols());
      else
        add(selected, spec.glob, 0, 0);
    }
  }
  grid_text += fmt::format(";samples={};seeds={};cols={};per_tensor={};two_d={}", fmt::join(g.samples, ","),
                           fmt::join(g.seeds, ","), g.cols, g.per_tensor, g.weights_2d_only);

  if (g.histogram_bins < 0 || g.histogram_bins > 100000) throw UsageError("--histogram must be between 1 and 100000 bins");
  if (g.histogram_bins) grid_text += fmt::format(";hist={}", g.histogram_bins);
  QuantErrorRun run{quant_error_schema(), fmt::format("{:016x}", sources::hash_text(grid_text)), 0, 0, 0, 0, {}, {}};
  if (g.histogram_bins) run.histograms = quant_error_hist_schema();
  const std::size_t nf = quantizers.size();
  run.grid_cells = groups.size() * nf;
  auto in_shard = [&](std::size_t cell) { return cell % g.shard_count == g.shard_index; };
  for (std::size_t c = 0; c < run.grid_cells; ++c) run.shard_cells += in_shard(c);
  if (g.skip_if && g.skip_if(run.grid_hash, run.shard_cells)) {
    run.skipped = true;
    return run;
  }

  const auto start = std::chrono::steady_clock::now();
  Progress progress("quant-error", run.shard_cells, g.quiet);
  std::vector<float> x, q;
  for (std::size_t gi = 0; gi < groups.size(); ++gi) {
    const DataGroup& d = groups[gi];
    bool any = false;
    for (std::size_t f = 0; f < nf; ++f) any = any || in_shard(gi * nf + f);
    if (!any) continue;
    const auto& spec = specs[d.source];
    std::vector<sources::Tensor> tensors;
    if (d.weights) {
      for (const auto& t : d.tensors) tensors.push_back(files[d.source]->load(t.name));
    } else {
      x.resize(d.samples);
      sources::generate(spec.dist, d.cell_seed, d.rows, d.cols, x.data());
    }
    bool warned = false;
    double rms = 0;  // of the whole group's data, for the histograms
    if (g.histogram_bins) {
      double ss = 0, cnt = 0;
      if (d.weights) {
        for (const auto& t : tensors) {
          const double r = rms_of(t.data.data(), t.data.size());
          ss += r * r * static_cast<double>(t.data.size()), cnt += static_cast<double>(t.data.size());
        }
      } else {
        const double r = rms_of(x.data(), x.size());
        ss = r * r, cnt = 1;
      }
      rms = std::sqrt(ss / cnt);
    }
    for (std::size_t f = 0; f < nf; ++f) {
      const std::size_t cell = gi * nf + f;
      if (!in_shard(cell)) continue;
      const Quantizer& qz = quantizers[f];
      metrics::ErrorSums sums;
      QuantStats stats;
      double bits = 0;
      std::vector<std::uint64_t> hist(static_cast<std::size_t>(g.histogram_bins) + 1, 0);
      auto add_hist = [&](const float* xs, const float* qs, std::size_t n) {
        if (!g.histogram_bins) return;
        const auto h = error_histogram(xs, qs, n, rms, g.histogram_bins);
        for (std::size_t b = 0; b < h.size(); ++b) hist[b] += h[b];
      };
      if (d.weights) {
        for (const auto& t : tensors) {
          q.resize(t.data.size());
          QuantStats st;
          qz.fake_quantize(t.data.data(), t.info.rows(), t.info.cols(), q.data(), &st);
          sums.merge(metrics::accumulate(t.data.data(), q.data(), t.data.size()));
          add_hist(t.data.data(), q.data(), t.data.size());
          stats += st;
          bits += qz.bits_per_parameter(t.info.rows(), t.info.cols()) * static_cast<double>(t.data.size());
        }
        bits /= static_cast<double>(d.samples);
      } else {
        q.resize(x.size());
        qz.fake_quantize(x.data(), d.rows, d.cols, q.data(), &stats);
        sums = metrics::accumulate(x.data(), q.data(), x.size());
        add_hist(x.data(), q.data(), x.size());
        bits = qz.bits_per_parameter(d.rows, d.cols);
      }
      const auto m = metrics::finish(sums);
      if (m.n_nonfinite_in && !warned) {
        warned = true;
        run.warnings.push_back(fmt::format("--dist '{}'{}: {} NaN/inf input values (excluded from the error sums; "
                                           "column n_nonfinite_in)",
                                           spec.text, d.tensor.empty() ? "" : " tensor " + d.tensor, m.n_nonfinite_in));
        if (!g.quiet) std::cerr << "lowbit: warning: " << run.warnings.back() << "\n";
      }
      if (m.n == 0)
        throw InputError(fmt::format("--dist '{}'{}: no finite input values", spec.text,
                                     d.tensor.empty() ? "" : " tensor " + d.tensor));
      run.table.add_row({std::uint64_t{cell}, qz.name(), spec.text, d.tensor, std::uint64_t{d.rows},
                         std::uint64_t{d.cols}, d.samples, d.seed, d.cell_seed, m.mse, m.rmse, m.max_abs_err,
                         m.mean_rel_err, m.sqnr_db, bits, m.n_nan, stats.n_clipped, m.n_nonfinite_in});
      run.values_quantized += d.samples;
      if (g.histogram_bins) {
        const double inf = std::numeric_limits<double>::infinity(), w = 9.0 / g.histogram_bins;
        for (int b = 0; b <= g.histogram_bins; ++b) {
          const double lo = b <= 1 ? -inf : -8 + (b - 1) * w, hi = b == 0 ? -inf : b == g.histogram_bins ? inf : -8 + b * w;
          run.histograms->add_row({std::uint64_t{cell}, qz.name(), spec.text, d.tensor, std::int64_t{b}, lo, hi,
                                   hist[static_cast<std::size_t>(b)]});
        }
      }
      progress.add(1);
    }
  }
  run.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return run;
}

namespace {

int run_cli(const std::vector<std::string>& args) {
  OptionParser parser("quant-error", "--formats LIST --dist SPEC [options]",
                      "Quantization error of formats on seeded distributions or real weights: one row per "
                      "cell (format x source x sample size x seed) in the table `quant_error`.\n"
                      "--dist: normal[:mu=0,sigma=1] | uniform[:lo=-1,hi=1] | laplace[:mu=0,b=1] | "
                      "student-t[:nu=3] | lognormal[:mu=0,sigma=1] | outliers[:p=0.001,k=20] (each value x k "
                      "with probability p) | outlier-cols[:p=0.01,k=20] (whole columns) | weights:PATH[:GLOB] "
                      "(.safetensors, .npy, .h5). A sample of n values is a rows x cols matrix: cols = --cols, "
                      "else 4096 if it divides n, else the largest divisor <= 4096 that is a multiple of 64.");
  parser.add()("formats,f", po::value<std::vector<std::string>>()->value_name("LIST"),
               "formats, comma-separated, repeatable (e4m3fn@tensor, nf4@64, int8@row, mxfp4, ...)")(
      "dist,d", po::value<std::vector<std::string>>()->value_name("SPEC"),
      "data source, repeatable (default normal)")(
      "samples,n", po::value<std::vector<std::string>>()->value_name("N[,N...]"),
      "values per synthetic sample (default 1000000; 4e6 accepted)")(
      "seed", po::value<std::vector<std::string>>()->value_name("S[,S...]"), "run seed(s) (default 0)")(
      "cols", po::value<std::size_t>()->default_value(0)->value_name("C"), "columns of a synthetic sample (0: automatic)")(
      "per-tensor", po::bool_switch(), "weights: one row per tensor instead of one per selection")(
      "histogram", po::value<int>()->default_value(0)->value_name("B"),
      "also write quant_error_hist: per cell, B bins of log10(|q-x|/rms(x)) over [-8, 1) plus a bin of exact values")(
      "shard", po::value<std::string>()->value_name("i/N"), "run only the i-th of N disjoint parts of the grid (i from 0)")(
      "output,o", po::value<std::string>()->default_value("quant_error.h5")->value_name("FILE"), "results file")(
      "append", po::bool_switch(), "append rows to an existing results file")(
      "skip-complete", po::bool_switch(),
      "exit at once if the output already holds this grid's shard, complete (resuming a Slurm array)")(
      "threads", po::value<int>()->default_value(0)->value_name("N"), "worker threads (0: all cores; Slurm: $SLURM_CPUS_PER_TASK)")(
      "quiet,q", po::bool_switch(), "no progress bar or summary");
  const auto vm = parser.parse(args);
  if (!vm) return 0;
  QuantErrorGrid g;
  auto lists = [&](const char* name) {
    std::vector<std::string> out;
    if (vm->count(name))
      for (const auto& item : (*vm)[name].as<std::vector<std::string>>())
        for (auto& s : split_list(item)) out.push_back(s);
    return out;
  };
  g.formats = lists("formats");
  if (g.formats.empty()) throw UsageError("quant-error: give --formats NAME[,NAME...] (see `lowbit formats --list`)");
  if (vm->count("dist"))
    for (const auto& d : (*vm)["dist"].as<std::vector<std::string>>()) g.dists.push_back(d);  // specs contain commas
  if (g.dists.empty()) g.dists = {"normal"};
  if (auto s = lists("samples"); !s.empty()) {
    g.samples.clear();
    for (const auto& t : s) g.samples.push_back(parse_count(t, "--samples"));
  }
  if (auto s = lists("seed"); !s.empty()) {
    g.seeds.clear();
    for (const auto& t : s) g.seeds.push_back(parse_seed(t));
  }
  g.cols = (*vm)["cols"].as<std::size_t>();
  g.per_tensor = (*vm)["per-tensor"].as<bool>();
  g.histogram_bins = (*vm)["histogram"].as<int>();
  g.quiet = (*vm)["quiet"].as<bool>();
  if (vm->count("shard")) std::tie(g.shard_index, g.shard_count) = parse_shard((*vm)["shard"].as<std::string>());
  const int threads = (*vm)["threads"].as<int>();
  if (threads < 0) throw UsageError("quant-error: --threads must be >= 0 (0: all cores)");
#ifdef _OPENMP
  if (threads > 0) omp_set_num_threads(threads);
#endif
  const std::string output = (*vm)["output"].as<std::string>();
  if ((*vm)["skip-complete"].as<bool>()) {
    if ((*vm)["append"].as<bool>()) throw UsageError("quant-error: --skip-complete and --append contradict each other");
    g.skip_if = [&](const std::string& hash, std::uint64_t shard_cells) {
      std::error_code ec;
      if (!std::filesystem::exists(output, ec)) return false;
      try {  // complete = same grid, same shard, every cell's row present
        const ShardPart p = read_shard_part(output);
        return p.grid_hash == hash && p.shard_index == static_cast<std::int64_t>(g.shard_index) &&
               p.shard_count == static_cast<std::int64_t>(g.shard_count) &&
               read_table(output, "quant_error").rows() == shard_cells;
      } catch (const InputError&) {
        return false;  // unreadable or foreign: run again and replace it
      }
    };
  }

  ResultsWriter writer((*vm)["output"].as<std::string>(), "quant-error",
                       (*vm)["append"].as<bool>() ? ResultsWriter::Mode::append : ResultsWriter::Mode::create,
                       g.seeds.front());
  writer.check_schema(quant_error_schema());
  auto run = run_quant_error(g);
  if (run.skipped) {
    if (!g.quiet) std::cerr << "quant-error: " << output << " already holds shard " << g.shard_index << "/" << g.shard_count
                            << " of this grid, complete; nothing to do\n";
    return 0;
  }
  const std::size_t rows = run.table.rows();
  if (!g.quiet) {
    if (rows <= 60) {
      Table brief("quant_error");
      for (const char* c : {"format", "dist", "tensor", "samples", "sqnr_db", "mse", "max_abs_err", "bits_per_param", "n_clipped"}) {
        const auto& col = run.table.column(c);
        brief.add_column(col.name, col.type, col.unit, col.description);
      }
      for (std::size_t r = 0; r < rows; ++r) {
        std::vector<Cell> cells;
        for (const auto& col : brief.columns()) cells.push_back(run.table.column(col.name).cell(r));
        brief.add_row(cells);
      }
      print_table(std::cout, brief);
    }
    std::cerr << fmt::format("quant-error: {} cells ({} of {} in shard {}/{}), {:.3g} values in {:.2f} s = {:.3g} values/s\n",
                             rows, run.shard_cells, run.grid_cells, g.shard_index, g.shard_count,
                             static_cast<double>(run.values_quantized), run.seconds,
                             static_cast<double>(run.values_quantized) / run.seconds);
  }
  set_shard_attributes(writer, run.grid_hash, run.grid_cells, g.shard_index, g.shard_count, run.shard_cells);
  writer.set_root_attribute("grid", fmt::format("formats={}; dist={}; samples={}; seeds={}; cols={}; per_tensor={}",
                                                fmt::join(g.formats, ","), fmt::join(g.dists, " | "),
                                                fmt::join(g.samples, ","), fmt::join(g.seeds, ","), g.cols, g.per_tensor));
  writer.add(std::move(run.table));
  if (run.histograms) writer.add(std::move(*run.histograms));
  writer.commit();
  if (!g.quiet) std::cerr << "wrote " << (*vm)["output"].as<std::string>() << "\n";
  return 0;
}

const Registrar reg{"quant-error", "quantization error of formats on distributions and real weights", run_cli};

}  // namespace
}  // namespace lowbit::harness
