// experiments/harness/results.hpp — one HDF5 file per run.
//
// File layout (schema_version 1), readable with h5py and pandas alone:
//
//   /                      root attributes: the metadata of the run that
//                          last wrote the file (RunMetadata below:
//                          lowbit_version, git_commit, command_line,
//                          experiment, seed (uint64, only when given), hostname,
//                          cpu, gpu, gpu_driver, cuda_version, start_time,
//                          end_time; times ISO 8601 UTC) and schema_version
//   /runs                  table, one row per run that wrote or appended
//   /<table>               compound dataset, one row per measurement:
//                            pandas.DataFrame(h5py.File(p)["<table>"][:])
//   /<group>/<array>       plain numeric 1-D/2-D datasets
//
// Table column types: string (fixed-length, UTF-8, null-padded: h5py reads
// bytes; `df[c].str.decode()` gives str), int64, uint64, float64, and bool
// (h5py's FALSE/TRUE int8 enum, read as numpy bool). Each table carries the
// attributes `schema_version`, `description`, and per column
// `<column>.unit` and `<column>.description` ("1" is the unit of a
// dimensionless number, "" that of text). Arrays carry `unit` and
// `description`. All string attributes are variable-length UTF-8 (h5py
// reads str).
//
// Atomicity: nothing touches the disk until commit(), which writes a
// temporary in the target's directory and renames it into place (see
// atomic_file.hpp); append mode works on a copy of the existing file.
// The constructor already checks that the target can be written, so a bad
// path fails before the experiment runs.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "experiments/harness/atomic_file.hpp"  // check_writable, for drivers that write results

namespace lowbit::harness {

inline constexpr std::int64_t results_schema_version = 1;

enum class ColumnType { string, int64, uint64, float64, boolean };
const char* column_type_name(ColumnType t);

// One value of a row. Integers convert to a float64 column and between
// int64/uint64 columns when the value fits; nothing else converts.
using Cell = std::variant<std::string, std::int64_t, std::uint64_t, double, bool>;
using Attribute = std::variant<std::string, std::int64_t, std::uint64_t, double>;

struct Column {
  std::string name;
  ColumnType type = ColumnType::float64;
  std::string unit;         // "1" dimensionless, "" text, else e.g. "bit", "s", "B"
  std::string description;  // one line: what the number means
  // Exactly the vector of `type` is filled.
  std::vector<std::string> strings;
  std::vector<std::int64_t> int64s;
  std::vector<std::uint64_t> uint64s;
  std::vector<double> float64s;
  std::vector<std::uint8_t> bools;

  std::size_t size() const;
  Cell cell(std::size_t row) const;
};

class Table {
 public:
  explicit Table(std::string name, std::string description = "");
  // A table from filled columns of equal length (used when reading back).
  Table(std::string name, std::string description, std::vector<Column> columns);

  // Declare the schema, column by column, before adding rows.
  Table& add_column(std::string name, ColumnType type, std::string unit, std::string description);
  // One cell per column, in declaration order.
  void add_row(const std::vector<Cell>& cells);
  // Rows of `other`, whose schema must equal this one's (else InputError).
  void append_rows(const Table& other);

  const std::string& name() const { return name_; }
  const std::string& description() const { return description_; }
  std::size_t rows() const { return columns_.empty() ? 0 : columns_.front().size(); }
  const std::vector<Column>& columns() const { return columns_; }
  const Column& column(std::string_view name) const;  // throws std::out_of_range

  void set_attribute(std::string name, Attribute value) { attributes_[std::move(name)] = std::move(value); }
  const std::map<std::string, Attribute>& attributes() const { return attributes_; }

  // "" if the column names, types and units match, else why not.
  std::string schema_difference(const Table& other) const;

 private:
  std::string name_, description_;
  std::vector<Column> columns_;
  std::map<std::string, Attribute> attributes_;
};

// A plain numeric dataset.
struct Array {
  using Data = std::variant<std::vector<double>, std::vector<float>, std::vector<std::int64_t>,
                            std::vector<std::uint64_t>, std::vector<std::uint32_t>, std::vector<std::uint8_t>>;
  std::string name;  // may contain '/', groups are created
  std::vector<std::size_t> shape;
  Data data;
  std::string unit, description;
  std::map<std::string, Attribute> attributes;
};

struct RunMetadata {
  std::string experiment, lowbit_version, git_commit, command_line;
  std::optional<std::uint64_t> seed;
  std::string hostname, cpu, gpu, gpu_driver, cuda_version;  // "none" without a GPU
  std::string start_time, end_time;                          // ISO 8601 UTC
};

// Gathers everything but end_time (queries nvidia-smi only if on PATH).
RunMetadata collect_run_metadata(std::string experiment, std::optional<std::uint64_t> seed);
std::string utc_now_iso8601();

class ResultsWriter {
 public:
  enum class Mode { create, append };

  // Create mode replaces `path` at commit. Append mode requires `path` to
  // be an existing lowbit results file. Throws UsageError now if the path
  // cannot be written (or, appending, read).
  ResultsWriter(std::filesystem::path path, std::string experiment, Mode mode = Mode::create,
                std::optional<std::uint64_t> seed = std::nullopt);

  // Appending: throws UsageError now if `schema` (rows ignored) cannot be
  // appended to the table of the same name in the existing file.
  void check_schema(const Table& schema) const;

  // In append mode a table of the same name in the file gets the new rows
  // (OnExisting::append) or is replaced (OnExisting::replace, for tables
  // that describe a thing rather than record measurements). Arrays of the
  // same name are always replaced.
  enum class OnExisting { append, replace };
  void add(Table table, OnExisting on_existing = OnExisting::append);
  void add(Array array);
  void set_root_attribute(std::string name, Attribute value);
  const RunMetadata& metadata() const { return meta_; }

  // Write everything (tables appended to existing ones in append mode,
  // arrays replaced) to a temporary and rename it onto the path.
  void commit();

 private:
  std::filesystem::path path_;
  Mode mode_;
  RunMetadata meta_;
  std::vector<std::pair<Table, OnExisting>> tables_;
  std::vector<Array> arrays_;
  std::map<std::string, Attribute> root_attributes_;
};

// Read a table back (tests, append). Throws InputError.
Table read_table(const std::filesystem::path& file, const std::string& name);

}  // namespace lowbit::harness
