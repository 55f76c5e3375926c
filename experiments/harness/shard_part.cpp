// experiments/harness/shard_part.cpp — see shard_part.hpp.
#include "experiments/harness/shard_part.hpp"

#include <fmt/format.h>
#include <hdf5.h>

#include <filesystem>

#include "experiments/harness/errors.hpp"

namespace lowbit::harness {
namespace {

std::optional<std::string> attr_string(hid_t file, const char* name) {
  if (H5Aexists(file, name) <= 0) return std::nullopt;
  const hid_t a = H5Aopen(file, name, H5P_DEFAULT);
  if (a < 0) return std::nullopt;
  const hid_t type = H5Aget_type(a);
  std::optional<std::string> out;
  if (H5Tget_class(type) == H5T_STRING) {
    if (H5Tis_variable_str(type) > 0) {
      char* s = nullptr;
      const hid_t mem = H5Tcopy(H5T_C_S1);
      H5Tset_size(mem, H5T_VARIABLE);
      H5Tset_cset(mem, H5Tget_cset(type));
      if (H5Aread(a, mem, &s) >= 0 && s) out = std::string(s);
      if (s) {
        const hid_t space = H5Aget_space(a);
        H5Dvlen_reclaim(mem, space, H5P_DEFAULT, &s);
        H5Sclose(space);
      }
      H5Tclose(mem);
    } else {
      std::string buf(H5Tget_size(type), '\0');
      if (H5Aread(a, type, buf.data()) >= 0) out = buf.substr(0, buf.find('\0'));
    }
  } else if (H5Tget_class(type) == H5T_INTEGER) {
    std::int64_t v = 0;
    if (H5Aread(a, H5T_NATIVE_INT64, &v) >= 0) out = std::to_string(v);
  } else if (H5Tget_class(type) == H5T_FLOAT) {
    double v = 0;
    if (H5Aread(a, H5T_NATIVE_DOUBLE, &v) >= 0) out = fmt::format("{}", v);
  }
  H5Tclose(type);
  H5Aclose(a);
  return out;
}

std::optional<std::int64_t> attr_int(hid_t file, const char* name) {
  if (H5Aexists(file, name) <= 0) return std::nullopt;
  const hid_t a = H5Aopen(file, name, H5P_DEFAULT);
  std::int64_t v = 0;
  const herr_t rc = H5Aread(a, H5T_NATIVE_INT64, &v);
  H5Aclose(a);
  if (rc < 0) return std::nullopt;
  return v;
}

herr_t collect_tables(hid_t group, const char* name, const H5L_info_t*, void* out) {
  H5O_info_t info;
#if H5_VERSION_GE(1, 12, 0)
  if (H5Oget_info_by_name3(group, name, &info, H5O_INFO_BASIC, H5P_DEFAULT) < 0) return 0;
#else
  if (H5Oget_info_by_name(group, name, &info, H5P_DEFAULT) < 0) return 0;
#endif
  if (info.type != H5O_TYPE_DATASET) return 0;
  const hid_t ds = H5Dopen2(group, name, H5P_DEFAULT);
  if (ds < 0) return 0;
  const hid_t type = H5Dget_type(ds);
  if (H5Tget_class(type) == H5T_COMPOUND && std::string(name) != "runs")
    static_cast<std::vector<std::string>*>(out)->push_back(name);
  H5Tclose(type);
  H5Dclose(ds);
  return 0;
}

}  // namespace

ShardPart read_shard_part(const std::string& path) {
  ShardPart p;
  p.path = path;
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) throw InputError(fmt::format("part '{}': no such file", path));
  H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
  const hid_t f = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  if (f < 0) throw InputError(fmt::format("part '{}': not a readable HDF5 file (truncated or incomplete?)", path));
  for (const char* k : {"experiment", "start_time", "end_time", "command_line", "lowbit_version", "git_commit", "seed",
                        "hostname", "cpu", "gpu", "grid"})
    p.meta[k] = attr_string(f, k).value_or("");
  p.grid_hash = attr_string(f, "grid_hash");
  p.grid_cells = attr_int(f, "grid_cells");
  p.shard_index = attr_int(f, "shard_index");
  p.shard_count = attr_int(f, "shard_count");
  p.shard_cells = attr_int(f, "shard_cells");
#if H5_VERSION_GE(1, 12, 0)
  H5Literate2(f, H5_INDEX_NAME, H5_ITER_INC, nullptr,
              [](hid_t g, const char* n, const H5L_info2_t*, void* o) { return collect_tables(g, n, nullptr, o); },
              &p.tables);
#else
  H5Literate(f, H5_INDEX_NAME, H5_ITER_INC, nullptr, collect_tables, &p.tables);
#endif
  const bool has_runs = H5Lexists(f, "runs", H5P_DEFAULT) > 0;
  H5Fclose(f);
  if (!has_runs) throw InputError(fmt::format("part '{}' is not a lowbit results file (no /runs)", path));
  if (p.tables.empty()) throw InputError(fmt::format("part '{}' holds no result table (incomplete?)", path));
  return p;
}


}  // namespace lowbit::harness
