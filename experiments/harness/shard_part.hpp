// experiments/harness/shard_part.hpp — what a results file says about the
// shard of a sharded run it holds: the run metadata and the shard
// attributes that `lowbit merge` checks and `--skip-complete` compares.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace lowbit::harness {

struct ShardPart {
  std::string path;
  std::map<std::string, std::string> meta;  // experiment, times, command line, commit, ...
  std::optional<std::string> grid_hash;     // absent: not written with --shard
  std::optional<std::int64_t> grid_cells, shard_index, shard_count, shard_cells;
  std::vector<std::string> tables;          // root compound datasets except /runs
};

// Reads a part's root attributes and table names. Throws InputError for a
// missing, unreadable (truncated) or non-lowbit file, or one with no table.
ShardPart read_shard_part(const std::string& path);

}  // namespace lowbit::harness
