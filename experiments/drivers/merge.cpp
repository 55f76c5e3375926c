// lowbit merge — join the part files of a sharded run.
//
//   lowbit merge parts/part-*.h5 -o all.h5 [--force]
//
// Concatenates every table of the parts (root-level compound datasets,
// except /runs), sorted by the `cell` column where there is one, so the
// merged tables equal those of a single-process run row for row. Each
// part's run metadata (its root attributes) becomes one row of the table
// `merged_parts`.
//
// Parts written with --shard carry grid_hash, grid_cells, shard_index,
// shard_count and shard_cells (root attributes). merge refuses, naming the
// culprit, with exit status 2 and the output untouched:
//   * parts of different grids (grid_hash or shard_count differ),
//   * a missing shard or the same shard twice,
//   * an incomplete part (fewer/more rows than shard_cells) or a file that
//     HDF5 cannot open (truncated on disk),
//   * tables whose columns differ,
//   * an existing output file, unless --force.
// Parts without shard attributes are simply concatenated.
#include <fmt/format.h>
#include <hdf5.h>

#include <algorithm>
#include <filesystem>
#include <iostream>
#include <map>
#include <numeric>
#include <optional>

#include "experiments/drivers/quant_error.hpp"
#include "experiments/harness/cli.hpp"
#include "experiments/harness/errors.hpp"
#include "experiments/harness/results.hpp"
#include "experiments/harness/shard_part.hpp"

namespace lowbit::harness {
namespace {

namespace po = boost::program_options;

// Tables with one row per cell (checked for completeness and duplicates);
// other tables with a `cell` column (quant_error_hist) are only sorted.
bool one_row_per_cell(const std::string& name) { return name == "quant_error" || name == "matmul_error"; }

Table sorted_by_cell(const Table& t) {
  const Column* cell = nullptr;
  for (const auto& c : t.columns())
    if (c.name == "cell" && c.type == ColumnType::uint64) cell = &c;
  if (!cell) return t;
  std::vector<std::size_t> order(t.rows());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](auto a, auto b) { return cell->uint64s[a] < cell->uint64s[b]; });
  for (std::size_t i = 1; i < order.size() && one_row_per_cell(t.name()); ++i)
    if (cell->uint64s[order[i]] == cell->uint64s[order[i - 1]])
      throw InputError(fmt::format("table '{}': cell {} appears twice across the parts", t.name(), cell->uint64s[order[i]]));
  Table out(t.name(), t.description());
  for (const auto& c : t.columns()) out.add_column(c.name, c.type, c.unit, c.description);
  for (const auto& [k, v] : t.attributes()) out.set_attribute(k, v);
  for (auto r : order) {
    std::vector<Cell> row;
    for (const auto& c : t.columns()) row.push_back(c.cell(r));
    out.add_row(row);
  }
  return out;
}

int run_cli(const std::vector<std::string>& args) {
  OptionParser parser("merge", "PART.h5 [PART.h5 ...] -o OUT.h5 [--force]",
                      "Concatenate the tables of the part files of a sharded run (sorted by `cell`), keep each "
                      "part's run metadata in the table `merged_parts`. Refuses parts of different grids, a "
                      "missing or duplicated shard, an incomplete part, and an existing output (unless --force).");
  parser.add()("parts", po::value<std::vector<std::string>>()->value_name("PART.h5"), "part files")(
      "output,o", po::value<std::string>()->value_name("OUT.h5"), "merged results file")(
      "force", po::bool_switch(), "replace an existing output file");
  parser.positional("parts", -1);
  const auto vm = parser.parse(args);
  if (!vm) return 0;
  if (!vm->count("output")) throw UsageError("merge: give the output file with -o OUT.h5");
  if (!vm->count("parts")) throw UsageError("merge: give the part files");
  const std::string out = (*vm)["output"].as<std::string>();
  const auto paths = (*vm)["parts"].as<std::vector<std::string>>();
  std::error_code ec;
  if (std::filesystem::exists(out, ec) && !(*vm)["force"].as<bool>())
    throw UsageError(fmt::format("merge: output '{}' exists; pass --force to replace it", out));
  for (const auto& p : paths)
    if (std::filesystem::exists(p, ec) && std::filesystem::exists(out, ec) && std::filesystem::equivalent(p, out, ec))
      throw UsageError(fmt::format("merge: output '{}' is also a part", out));

  std::vector<ShardPart> parts;
  for (const auto& p : paths) parts.push_back(read_shard_part(p));

  // Shard checks.
  const bool sharded = parts.front().grid_hash.has_value();
  std::optional<std::int64_t> grid_cells;
  for (const auto& p : parts) {
    if (p.grid_hash.has_value() != sharded)
      throw InputError(fmt::format("part '{}' {} shard attributes but '{}' {}", p.path, sharded ? "lacks" : "has",
                                   parts.front().path, sharded ? "has them" : "does not"));
    if (!sharded) continue;
    if (*p.grid_hash != *parts.front().grid_hash || p.shard_count != parts.front().shard_count ||
        p.meta.at("experiment") != parts.front().meta.at("experiment"))
      throw InputError(fmt::format("parts of different grids: '{}' (grid {}, {} shards, {}) and '{}' (grid {}, {} shards, {})",
                                   parts.front().path, *parts.front().grid_hash, parts.front().shard_count.value_or(0),
                                   parts.front().meta.at("experiment"), p.path, *p.grid_hash, p.shard_count.value_or(0),
                                   p.meta.at("experiment")));
  }
  if (sharded) {
    const std::int64_t n = parts.front().shard_count.value_or(0);
    grid_cells = parts.front().grid_cells;
    std::map<std::int64_t, std::string> seen;
    for (const auto& p : parts) {
      const std::int64_t i = p.shard_index.value_or(-1);
      if (auto it = seen.find(i); it != seen.end())
        throw InputError(fmt::format("shard {}/{} given twice: '{}' and '{}'", i, n, it->second, p.path));
      seen[i] = p.path;
    }
    std::vector<std::string> missing;
    for (std::int64_t i = 0; i < n; ++i)
      if (!seen.count(i)) missing.push_back(fmt::format("{}/{}", i, n));
    if (!missing.empty())
      throw InputError(fmt::format("missing shard{} {} of grid {} ({} parts given)", missing.size() > 1 ? "s" : "",
                                   fmt::join(missing, ", "), *parts.front().grid_hash, parts.size()));
  }

  // Tables.
  std::map<std::string, Table> merged;
  std::vector<std::string> order;
  for (const auto& p : parts) {
    for (const auto& name : p.tables) {
      Table t = read_table(p.path, name);
      if (sharded && one_row_per_cell(name) &&
          static_cast<std::int64_t>(t.rows()) != p.shard_cells.value_or(-1))
        throw InputError(fmt::format("part '{}' is incomplete: table '{}' has {} rows, its shard has {} cells", p.path,
                                     name, t.rows(), p.shard_cells.value_or(-1)));
      if (auto it = merged.find(name); it != merged.end()) {
        if (auto why = it->second.schema_difference(t); !why.empty())
          throw InputError(fmt::format("part '{}': table '{}' differs from the earlier parts: {}", p.path, name, why));
        it->second.append_rows(t);
      } else {
        order.push_back(name);
        merged.emplace(name, std::move(t));
      }
    }
  }

  Table meta("merged_parts", "run metadata of each part file joined by lowbit merge");
  const std::vector<std::string> keys = {"experiment", "start_time", "end_time", "command_line", "lowbit_version",
                                         "git_commit", "seed", "hostname", "cpu", "gpu"};
  meta.add_column("file", ColumnType::string, "", "part file as given to merge");
  meta.add_column("shard_index", ColumnType::int64, "1", "shard i of --shard i/N (-1: not sharded)");
  meta.add_column("shard_count", ColumnType::int64, "1", "N of --shard i/N (-1: not sharded)");
  meta.add_column("grid_hash", ColumnType::string, "", "hash of the grid the part belongs to");
  for (const auto& k : keys) meta.add_column(k, ColumnType::string, "", "root attribute of the part: " + k);
  for (const auto& p : parts) {
    std::vector<Cell> row{p.path, p.shard_index.value_or(-1), p.shard_count.value_or(-1), p.grid_hash.value_or("")};
    for (const auto& k : keys) row.push_back(p.meta.at(k));
    meta.add_row(row);
  }

  std::optional<std::uint64_t> seed;
  if (const auto& s = parts.front().meta.at("seed"); !s.empty()) {
    try {
      seed = std::stoull(s);
    } catch (...) {
    }
  }
  ResultsWriter writer(out, parts.front().meta.at("experiment").empty() ? "merge" : parts.front().meta.at("experiment"),
                       ResultsWriter::Mode::create, seed);
  std::size_t rows = 0;
  for (const auto& name : order) {
    Table t = sorted_by_cell(merged.at(name));
    rows += t.rows();
    writer.add(std::move(t));
  }
  writer.add(std::move(meta));
  if (sharded) {
    const std::int64_t cells = grid_cells.value_or(0);
    set_shard_attributes(writer, *parts.front().grid_hash, static_cast<std::uint64_t>(cells), 0, 1,
                         static_cast<std::uint64_t>(cells));
  }
  if (!parts.front().meta.at("grid").empty()) writer.set_root_attribute("grid", parts.front().meta.at("grid"));
  writer.set_root_attribute("merged_parts", static_cast<std::int64_t>(parts.size()));
  writer.commit();
  std::cerr << fmt::format("merged {} parts, {} rows in {} table{} -> {}\n", parts.size(), rows, order.size(),
                           order.size() == 1 ? "" : "s", out);
  return 0;
}

const Registrar reg{"merge", "join the part files of a sharded run (--shard i/N) into one results file", run_cli};

}  // namespace
}  // namespace lowbit::harness
