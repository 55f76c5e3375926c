// experiments/drivers/quant_error.hpp — the quant-error grid, shared by
// `lowbit quant-error` and `lowbit compare`.
//
// Grid (cell order = the `cell` column):
//   for each source (--dist, in order)
//     synthetic: for each sample size, for each seed
//     weights:   pooled (one selection) or, with --per-tensor, each tensor
//       for each format
// A cell's data depend on the run seed and the cell's own parameters only:
//   cell_seed = derive_seed(seed, "<canonical distribution>;n=<samples>;cols=<cols>")
// (not on the format, so all formats see the same sample — paired
// comparisons — and not on the grid position or shard).
// --shard i/N runs the cells with cell % N == i (i = 0 … N−1).
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "experiments/harness/results.hpp"

namespace lowbit::harness {

struct QuantErrorGrid {
  std::vector<std::string> formats;  // registry names as given
  std::vector<std::string> dists;    // --dist specs as given
  std::vector<std::uint64_t> samples{1'000'000};
  std::vector<std::uint64_t> seeds{0};
  std::size_t cols = 0;          // 0: automatic (sources/source.hpp)
  bool per_tensor = false;       // weights: one row per tensor
  bool weights_2d_only = false;  // weights: skip tensors with fewer than 2 dimensions
  // > 0: also the table `quant_error_hist`, per cell a histogram of
  // log10(|q − x| / rms(x)) over finite inputs: bin 0 counts exact values
  // (q == x), bins 1 … B split [-8, 1) evenly, values outside clamp to the
  // first / last of them.
  int histogram_bins = 0;
  std::size_t shard_index = 0, shard_count = 1;
  bool quiet = false;
  // Called with the grid hash before any work; returning true skips the
  // run (`--skip-complete`: the output already holds this shard).
  std::function<bool(const std::string& grid_hash, std::uint64_t shard_cells)> skip_if;
};

struct QuantErrorRun {
  Table table;                 // the quant_error rows of this shard
  std::string grid_hash;       // hex of the canonical grid description
  std::uint64_t grid_cells = 0, shard_cells = 0;
  std::uint64_t values_quantized = 0;  // Σ cells' sample sizes
  double seconds = 0;                  // wall time of the cells
  std::vector<std::string> warnings;   // NaN/inf in inputs etc. (already printed unless quiet)
  std::optional<Table> histograms;     // quant_error_hist, with histogram_bins > 0
  bool skipped = false;                // skip_if said the output is already complete
};

Table quant_error_schema();
Table quant_error_hist_schema();
// Validates everything (formats, dists, files, shapes) before any work;
// throws UsageError / InputError / FormatError.
QuantErrorRun run_quant_error(const QuantErrorGrid& grid);

// "i/N" → {i, N}; throws UsageError ("--shard must be i/N with 0 <= i < N").
std::pair<std::size_t, std::size_t> parse_shard(const std::string& text);

// Root attributes that `lowbit merge` checks: grid_hash, grid_cells,
// shard_index, shard_count, shard_cells.
void set_shard_attributes(ResultsWriter& w, const std::string& grid_hash, std::uint64_t grid_cells,
                          std::size_t shard_index, std::size_t shard_count, std::uint64_t shard_cells);

}  // namespace lowbit::harness
