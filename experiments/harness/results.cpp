#include "experiments/harness/results.hpp"

#include <hdf5.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <fstream>
#include <memory>
#include <stdexcept>

#include "experiments/harness/atomic_file.hpp"
#include "experiments/harness/cli.hpp"
#include "experiments/harness/errors.hpp"

namespace lowbit::harness {

// ---- Table ------------------------------------------------------------------------

const char* column_type_name(ColumnType t) {
  switch (t) {
    case ColumnType::string: return "string";
    case ColumnType::int64: return "int64";
    case ColumnType::uint64: return "uint64";
    case ColumnType::float64: return "float64";
    case ColumnType::boolean: return "bool";
  }
  return "?";
}

std::size_t Column::size() const {
  switch (type) {
    case ColumnType::string: return strings.size();
    case ColumnType::int64: return int64s.size();
    case ColumnType::uint64: return uint64s.size();
    case ColumnType::float64: return float64s.size();
    case ColumnType::boolean: return bools.size();
  }
  return 0;
}

Cell Column::cell(std::size_t r) const {
  switch (type) {
    case ColumnType::string: return strings.at(r);
    case ColumnType::int64: return int64s.at(r);
    case ColumnType::uint64: return uint64s.at(r);
    case ColumnType::float64: return float64s.at(r);
    case ColumnType::boolean: return bools.at(r) != 0;
  }
  return {};
}

Table::Table(std::string name, std::string description) : name_(std::move(name)), description_(std::move(description)) {}

Table::Table(std::string name, std::string description, std::vector<Column> columns)
    : name_(std::move(name)), description_(std::move(description)), columns_(std::move(columns)) {
  for (const auto& c : columns_)
    if (c.size() != rows()) throw std::logic_error("Table " + name_ + ": columns of different lengths");
}

Table& Table::add_column(std::string name, ColumnType type, std::string unit, std::string description) {
  if (rows() != 0) throw std::logic_error("Table " + name_ + ": columns must be declared before rows");
  for (const auto& c : columns_)
    if (c.name == name) throw std::logic_error("Table " + name_ + ": duplicate column " + name);
  columns_.push_back(Column{std::move(name), type, std::move(unit), std::move(description), {}, {}, {}, {}, {}});
  return *this;
}

namespace {

template <class To>
bool integral_fits(const Cell& c, To& out) {
  if (const auto* i = std::get_if<std::int64_t>(&c)) {
    if constexpr (std::is_same_v<To, std::uint64_t>) {
      if (*i < 0) return false;
    }
    out = static_cast<To>(*i);
    return true;
  }
  if (const auto* u = std::get_if<std::uint64_t>(&c)) {
    if constexpr (std::is_same_v<To, std::int64_t>) {
      if (*u > static_cast<std::uint64_t>(INT64_MAX)) return false;
    }
    out = static_cast<To>(*u);
    return true;
  }
  return false;
}

void push_cell(Column& col, const Cell& c, const std::string& table) {
  auto mismatch = [&] {
    throw std::logic_error("Table " + table + ": a value of the wrong type for " + column_type_name(col.type) +
                           " column " + col.name);
  };
  switch (col.type) {
    case ColumnType::string:
      if (!std::holds_alternative<std::string>(c)) mismatch();
      col.strings.push_back(std::get<std::string>(c));
      break;
    case ColumnType::int64: {
      std::int64_t v;
      if (!integral_fits(c, v)) mismatch();
      col.int64s.push_back(v);
      break;
    }
    case ColumnType::uint64: {
      std::uint64_t v;
      if (!integral_fits(c, v)) mismatch();
      col.uint64s.push_back(v);
      break;
    }
    case ColumnType::float64:
      if (const auto* d = std::get_if<double>(&c)) col.float64s.push_back(*d);
      else if (const auto* i = std::get_if<std::int64_t>(&c)) col.float64s.push_back(static_cast<double>(*i));
      else if (const auto* u = std::get_if<std::uint64_t>(&c)) col.float64s.push_back(static_cast<double>(*u));
      else mismatch();
      break;
    case ColumnType::boolean:
      if (!std::holds_alternative<bool>(c)) mismatch();
      col.bools.push_back(std::get<bool>(c) ? 1 : 0);
      break;
  }
}

}  // namespace

void Table::add_row(const std::vector<Cell>& cells) {
  if (cells.size() != columns_.size())
    throw std::logic_error("Table " + name_ + ": row of " + std::to_string(cells.size()) + " cells for " +
                           std::to_string(columns_.size()) + " columns");
  for (std::size_t i = 0; i < cells.size(); ++i) push_cell(columns_[i], cells[i], name_);
}

std::string Table::schema_difference(const Table& other) const {
  if (columns_.size() != other.columns_.size())
    return std::to_string(other.columns_.size()) + " columns instead of " + std::to_string(columns_.size());
  for (std::size_t i = 0; i < columns_.size(); ++i) {
    const auto &a = columns_[i], &b = other.columns_[i];
    if (a.name != b.name) return "column " + std::to_string(i) + " is '" + b.name + "' instead of '" + a.name + "'";
    if (a.type != b.type)
      return "column '" + a.name + "' is " + column_type_name(b.type) + " instead of " + column_type_name(a.type);
    if (a.unit != b.unit) return "column '" + a.name + "' has unit '" + b.unit + "' instead of '" + a.unit + "'";
  }
  return "";
}

void Table::append_rows(const Table& other) {
  if (const auto why = schema_difference(other); !why.empty())
    throw InputError("cannot append to table '" + name_ + "': " + why);
  for (std::size_t r = 0; r < other.rows(); ++r)
    for (std::size_t i = 0; i < columns_.size(); ++i) push_cell(columns_[i], other.columns_[i].cell(r), name_);
}

const Column& Table::column(std::string_view name) const {
  for (const auto& c : columns_)
    if (c.name == name) return c;
  throw std::out_of_range("Table " + name_ + " has no column " + std::string(name));
}

// ---- HDF5 plumbing ------------------------------------------------------------------

namespace {

// An HDF5 identifier closed by its matching H5?close.
class Id {
 public:
  Id() = default;
  Id(hid_t id, herr_t (*close)(hid_t), const char* what) : id_(id), close_(close) {
    if (id < 0) throw std::runtime_error(std::string("HDF5: ") + what + " failed");
  }
  Id(Id&& o) noexcept : id_(std::exchange(o.id_, H5I_INVALID_HID)), close_(o.close_) {}
  Id& operator=(Id&& o) noexcept {
    reset();
    id_ = std::exchange(o.id_, H5I_INVALID_HID);
    close_ = o.close_;
    return *this;
  }
  ~Id() { reset(); }
  operator hid_t() const { return id_; }

 private:
  void reset() {
    if (id_ >= 0 && close_) close_(id_);
    id_ = H5I_INVALID_HID;
  }
  hid_t id_ = H5I_INVALID_HID;
  herr_t (*close_)(hid_t) = nullptr;
};

void check(herr_t status, const char* what) {
  if (status < 0) throw std::runtime_error(std::string("HDF5: ") + what + " failed");
}

// lowbit reports HDF5 failures itself, in one line.
void silence_hdf5() {
  static const bool done = [] {
    H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
    return true;
  }();
  (void)done;
}

Id vlen_string_type() {
  Id t(H5Tcopy(H5T_C_S1), H5Tclose, "H5Tcopy");
  check(H5Tset_size(t, H5T_VARIABLE), "H5Tset_size");
  check(H5Tset_cset(t, H5T_CSET_UTF8), "H5Tset_cset");
  return t;
}

Id fixed_string_type(std::size_t width) {
  Id t(H5Tcopy(H5T_C_S1), H5Tclose, "H5Tcopy");
  check(H5Tset_size(t, std::max<std::size_t>(width, 1)), "H5Tset_size");
  check(H5Tset_strpad(t, H5T_STR_NULLPAD), "H5Tset_strpad");
  check(H5Tset_cset(t, H5T_CSET_UTF8), "H5Tset_cset");
  return t;
}

// h5py's bool: an int8 enum {FALSE = 0, TRUE = 1}.
Id bool_type() {
  Id t(H5Tenum_create(H5T_NATIVE_INT8), H5Tclose, "H5Tenum_create");
  const std::int8_t f = 0, tr = 1;
  check(H5Tenum_insert(t, "FALSE", &f), "H5Tenum_insert");
  check(H5Tenum_insert(t, "TRUE", &tr), "H5Tenum_insert");
  return t;
}

void write_attribute(hid_t obj, const std::string& name, const Attribute& value) {
  if (H5Aexists(obj, name.c_str()) > 0) check(H5Adelete(obj, name.c_str()), "H5Adelete");
  Id space(H5Screate(H5S_SCALAR), H5Sclose, "H5Screate");
  if (const auto* s = std::get_if<std::string>(&value)) {
    Id type = vlen_string_type();
    Id attr(H5Acreate2(obj, name.c_str(), type, space, H5P_DEFAULT, H5P_DEFAULT), H5Aclose, "H5Acreate");
    const char* p = s->c_str();
    check(H5Awrite(attr, type, &p), "H5Awrite");
  } else if (const auto* i = std::get_if<std::int64_t>(&value)) {
    Id attr(H5Acreate2(obj, name.c_str(), H5T_STD_I64LE, space, H5P_DEFAULT, H5P_DEFAULT), H5Aclose, "H5Acreate");
    check(H5Awrite(attr, H5T_NATIVE_INT64, i), "H5Awrite");
  } else if (const auto* u = std::get_if<std::uint64_t>(&value)) {
    Id attr(H5Acreate2(obj, name.c_str(), H5T_STD_U64LE, space, H5P_DEFAULT, H5P_DEFAULT), H5Aclose, "H5Acreate");
    check(H5Awrite(attr, H5T_NATIVE_UINT64, u), "H5Awrite");
  } else {
    const double d = std::get<double>(value);
    Id attr(H5Acreate2(obj, name.c_str(), H5T_IEEE_F64LE, space, H5P_DEFAULT, H5P_DEFAULT), H5Aclose, "H5Acreate");
    check(H5Awrite(attr, H5T_NATIVE_DOUBLE, &d), "H5Awrite");
  }
}

std::optional<std::string> read_string_attribute(hid_t obj, const std::string& name) {
  if (H5Aexists(obj, name.c_str()) <= 0) return std::nullopt;
  Id attr(H5Aopen(obj, name.c_str(), H5P_DEFAULT), H5Aclose, "H5Aopen");
  Id ftype(H5Aget_type(attr), H5Tclose, "H5Aget_type");
  if (H5Tget_class(ftype) != H5T_STRING) return std::nullopt;
  if (H5Tis_variable_str(ftype) > 0) {
    Id type = vlen_string_type();
    char* p = nullptr;
    check(H5Aread(attr, type, &p), "H5Aread");
    std::string s = p ? p : "";
    H5free_memory(p);
    return s;
  }
  const std::size_t n = H5Tget_size(ftype);
  Id type = fixed_string_type(n);
  std::string s(n, '\0');
  check(H5Aread(attr, type, s.data()), "H5Aread");
  s.resize(std::strlen(s.c_str()));
  return s;
}

// Every attribute of obj that is a scalar string, integer or float.
std::map<std::string, Attribute> read_attributes(hid_t obj) {
  std::vector<std::string> names;
  H5Aiterate2(
      obj, H5_INDEX_NAME, H5_ITER_INC, nullptr,
      [](hid_t, const char* n, const H5A_info_t*, void* out) -> herr_t {
        static_cast<std::vector<std::string>*>(out)->emplace_back(n);
        return 0;
      },
      &names);
  std::map<std::string, Attribute> attrs;
  for (const auto& n : names) {
    Id attr(H5Aopen(obj, n.c_str(), H5P_DEFAULT), H5Aclose, "H5Aopen");
    Id type(H5Aget_type(attr), H5Tclose, "H5Aget_type");
    Id space(H5Aget_space(attr), H5Sclose, "H5Aget_space");
    if (H5Sget_simple_extent_npoints(space) != 1) continue;
    switch (H5Tget_class(type)) {
      case H5T_STRING:
        if (auto s = read_string_attribute(obj, n)) attrs[n] = *s;
        break;
      case H5T_INTEGER:
        if (H5Tget_sign(type) == H5T_SGN_NONE) {
          std::uint64_t v = 0;
          check(H5Aread(attr, H5T_NATIVE_UINT64, &v), "H5Aread");
          attrs[n] = v;
        } else {
          std::int64_t v = 0;
          check(H5Aread(attr, H5T_NATIVE_INT64, &v), "H5Aread");
          attrs[n] = v;
        }
        break;
      case H5T_FLOAT: {
        double v = 0;
        check(H5Aread(attr, H5T_NATIVE_DOUBLE, &v), "H5Aread");
        attrs[n] = v;
        break;
      }
      default: break;
    }
  }
  return attrs;
}

bool link_exists(hid_t file, const std::string& path) {
  // H5Lexists needs every intermediate group to exist: check them in turn.
  std::size_t pos = 0;
  while (true) {
    pos = path.find('/', pos + 1);
    const std::string prefix = path.substr(0, pos);
    if (H5Lexists(file, prefix.c_str(), H5P_DEFAULT) <= 0) return false;
    if (pos == std::string::npos) return true;
  }
}

Id link_creation_with_groups() {
  Id lcpl(H5Pcreate(H5P_LINK_CREATE), H5Pclose, "H5Pcreate");
  check(H5Pset_create_intermediate_group(lcpl, 1), "H5Pset_create_intermediate_group");
  return lcpl;
}

void write_table(hid_t file, const Table& t) {
  const auto& cols = t.columns();
  const std::size_t rows = t.rows();
  // Packed row layout; numpy reads unaligned structured dtypes directly.
  std::vector<std::size_t> offsets, sizes;
  std::vector<Id> types;
  std::size_t row_size = 0;
  for (const auto& c : cols) {
    std::size_t size = 8;
    switch (c.type) {
      case ColumnType::string: {
        std::size_t w = 1;
        for (const auto& s : c.strings) w = std::max(w, s.size());
        types.push_back(fixed_string_type(w));
        size = w;
        break;
      }
      case ColumnType::int64: types.emplace_back(H5Tcopy(H5T_STD_I64LE), H5Tclose, "H5Tcopy"); break;
      case ColumnType::uint64: types.emplace_back(H5Tcopy(H5T_STD_U64LE), H5Tclose, "H5Tcopy"); break;
      case ColumnType::float64: types.emplace_back(H5Tcopy(H5T_IEEE_F64LE), H5Tclose, "H5Tcopy"); break;
      case ColumnType::boolean: types.push_back(bool_type()), size = 1; break;
    }
    offsets.push_back(row_size);
    sizes.push_back(size);
    row_size += size;
  }
  if (cols.empty()) throw std::logic_error("Table " + t.name() + " has no columns");
  Id compound(H5Tcreate(H5T_COMPOUND, row_size), H5Tclose, "H5Tcreate");
  for (std::size_t i = 0; i < cols.size(); ++i)
    check(H5Tinsert(compound, cols[i].name.c_str(), offsets[i], types[i]), "H5Tinsert");

  std::vector<std::byte> buf(std::max<std::size_t>(rows * row_size, 1));
  for (std::size_t r = 0; r < rows; ++r) {
    std::byte* row = buf.data() + r * row_size;
    for (std::size_t i = 0; i < cols.size(); ++i) {
      std::byte* p = row + offsets[i];
      const auto& c = cols[i];
      switch (c.type) {
        case ColumnType::string: std::memcpy(p, c.strings[r].data(), c.strings[r].size()); break;
        case ColumnType::int64: std::memcpy(p, &c.int64s[r], 8); break;
        case ColumnType::uint64: std::memcpy(p, &c.uint64s[r], 8); break;
        case ColumnType::float64: std::memcpy(p, &c.float64s[r], 8); break;
        case ColumnType::boolean: std::memcpy(p, &c.bools[r], 1); break;
      }
    }
  }
  const hsize_t dims[1] = {rows};
  Id space(H5Screate_simple(1, dims, nullptr), H5Sclose, "H5Screate_simple");
  Id lcpl = link_creation_with_groups();
  Id ds(H5Dcreate2(file, t.name().c_str(), compound, space, lcpl, H5P_DEFAULT, H5P_DEFAULT), H5Dclose,
        "H5Dcreate (table)");
  if (rows) check(H5Dwrite(ds, compound, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf.data()), "H5Dwrite");
  write_attribute(ds, "schema_version", results_schema_version);
  write_attribute(ds, "description", t.description());
  for (const auto& c : cols) {
    write_attribute(ds, c.name + ".unit", c.unit);
    write_attribute(ds, c.name + ".description", c.description);
  }
  for (const auto& [k, v] : t.attributes()) write_attribute(ds, k, v);
}

template <class T> hid_t native_type();
template <> hid_t native_type<double>() { return H5T_NATIVE_DOUBLE; }
template <> hid_t native_type<float>() { return H5T_NATIVE_FLOAT; }
template <> hid_t native_type<std::int64_t>() { return H5T_NATIVE_INT64; }
template <> hid_t native_type<std::uint64_t>() { return H5T_NATIVE_UINT64; }
template <> hid_t native_type<std::uint32_t>() { return H5T_NATIVE_UINT32; }
template <> hid_t native_type<std::uint8_t>() { return H5T_NATIVE_UINT8; }
template <class T> hid_t file_type();
template <> hid_t file_type<double>() { return H5T_IEEE_F64LE; }
template <> hid_t file_type<float>() { return H5T_IEEE_F32LE; }
template <> hid_t file_type<std::int64_t>() { return H5T_STD_I64LE; }
template <> hid_t file_type<std::uint64_t>() { return H5T_STD_U64LE; }
template <> hid_t file_type<std::uint32_t>() { return H5T_STD_U32LE; }
template <> hid_t file_type<std::uint8_t>() { return H5T_STD_U8LE; }

void write_array(hid_t file, const Array& a) {
  std::vector<hsize_t> dims(a.shape.begin(), a.shape.end());
  std::size_t n = 1;
  for (auto d : a.shape) n *= d;
  std::visit(
      [&](const auto& v) {
        using T = typename std::decay_t<decltype(v)>::value_type;
        if (v.size() != n) throw std::logic_error("Array " + a.name + ": data size does not match its shape");
        Id space(H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr), H5Sclose, "H5Screate_simple");
        Id lcpl = link_creation_with_groups();
        Id ds(H5Dcreate2(file, a.name.c_str(), file_type<T>(), space, lcpl, H5P_DEFAULT, H5P_DEFAULT), H5Dclose,
              "H5Dcreate (array)");
        if (n) check(H5Dwrite(ds, native_type<T>(), H5S_ALL, H5S_ALL, H5P_DEFAULT, v.data()), "H5Dwrite");
        write_attribute(ds, "unit", a.unit);
        write_attribute(ds, "description", a.description);
        for (const auto& [k, val] : a.attributes) write_attribute(ds, k, val);
      },
      a.data);
}

template <class T>
T load(const std::byte* p) {
  T v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

Table read_table_from(hid_t file, const std::string& name, const std::string& file_name) {
  auto fail = [&](const std::string& why) -> void {
    throw InputError("'" + file_name + "': table '" + name + "': " + why);
  };
  if (!link_exists(file, name)) fail("not found");
  Id ds(H5Dopen2(file, name.c_str(), H5P_DEFAULT), H5Dclose, "H5Dopen");
  Id ftype(H5Dget_type(ds), H5Tclose, "H5Dget_type");
  if (H5Tget_class(ftype) != H5T_COMPOUND) fail("not a compound dataset");
  Id space(H5Dget_space(ds), H5Sclose, "H5Dget_space");
  if (H5Sget_simple_extent_ndims(space) != 1) fail("not one-dimensional");
  hsize_t rows = 0;
  H5Sget_simple_extent_dims(space, &rows, nullptr);

  std::vector<Column> columns;
  const int members = H5Tget_nmembers(ftype);
  // Read each member on its own, converted by HDF5 to lowbit's column type.
  for (int i = 0; i < members; ++i) {
    char* raw_name = H5Tget_member_name(ftype, static_cast<unsigned>(i));
    Column c;
    c.name = raw_name;
    H5free_memory(raw_name);
    Id mtype(H5Tget_member_type(ftype, static_cast<unsigned>(i)), H5Tclose, "H5Tget_member_type");
    std::size_t width = 8;
    switch (H5Tget_class(mtype)) {
      case H5T_STRING:
        if (H5Tis_variable_str(mtype) > 0) fail("variable-length string column '" + c.name + "' is not supported");
        c.type = ColumnType::string, width = H5Tget_size(mtype);
        break;
      case H5T_INTEGER: c.type = H5Tget_sign(mtype) == H5T_SGN_NONE ? ColumnType::uint64 : ColumnType::int64; break;
      case H5T_FLOAT: c.type = ColumnType::float64; break;
      case H5T_ENUM: c.type = ColumnType::boolean, width = 1; break;
      default: fail("column '" + c.name + "' has an unsupported type");
    }
    c.unit = read_string_attribute(ds, c.name + ".unit").value_or("");
    c.description = read_string_attribute(ds, c.name + ".description").value_or("");
    Id elem = c.type == ColumnType::string    ? fixed_string_type(width)
              : c.type == ColumnType::boolean ? bool_type()
              : c.type == ColumnType::int64   ? Id(H5Tcopy(H5T_NATIVE_INT64), H5Tclose, "H5Tcopy")
              : c.type == ColumnType::uint64  ? Id(H5Tcopy(H5T_NATIVE_UINT64), H5Tclose, "H5Tcopy")
                                              : Id(H5Tcopy(H5T_NATIVE_DOUBLE), H5Tclose, "H5Tcopy");
    Id one(H5Tcreate(H5T_COMPOUND, width), H5Tclose, "H5Tcreate");
    check(H5Tinsert(one, c.name.c_str(), 0, elem), "H5Tinsert");
    std::vector<std::byte> buf(std::max<std::size_t>(rows * width, 1));
    if (rows) check(H5Dread(ds, one, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf.data()), "H5Dread");
    for (hsize_t r = 0; r < rows; ++r) {
      const std::byte* p = buf.data() + r * width;
      switch (c.type) {
        case ColumnType::string: {
          std::string s(reinterpret_cast<const char*>(p), width);
          s.resize(std::strlen(s.c_str()));  // strip the null padding
          c.strings.push_back(std::move(s));
          break;
        }
        case ColumnType::int64: c.int64s.push_back(load<std::int64_t>(p)); break;
        case ColumnType::uint64: c.uint64s.push_back(load<std::uint64_t>(p)); break;
        case ColumnType::float64: c.float64s.push_back(load<double>(p)); break;
        case ColumnType::boolean: c.bools.push_back(load<std::uint8_t>(p) != 0); break;
      }
    }
    columns.push_back(std::move(c));
  }
  Table t(name, read_string_attribute(ds, "description").value_or(""), std::move(columns));
  // Keep the table's own attributes; the per-column ones live in the columns.
  for (auto& [k, v] : read_attributes(ds)) {
    const bool per_column = k.ends_with(".unit") || k.ends_with(".description");
    if (!per_column && k != "schema_version" && k != "description") t.set_attribute(k, std::move(v));
  }
  return t;
}

Id open_results_file(const std::filesystem::path& path, unsigned flags) {
  silence_hdf5();
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) throw InputError("cannot read '" + path.string() + "': no such file");
  if (H5Fis_hdf5(path.c_str()) <= 0) throw InputError("'" + path.string() + "' is not an HDF5 file");
  const hid_t f = H5Fopen(path.c_str(), flags, H5P_DEFAULT);
  if (f < 0) throw InputError("cannot open '" + path.string() + "' as HDF5");
  return Id(f, H5Fclose, "H5Fopen");
}

std::string read_first_line_field(const char* file, const char* key) {
  std::ifstream in(file);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(key, 0) == 0) {
      const auto colon = line.find(':');
      if (colon == std::string::npos) continue;
      auto v = line.substr(colon + 1);
      v.erase(0, v.find_first_not_of(" \t"));
      return v;
    }
  }
  return "";
}

bool on_path(const std::string& exe) {
  const char* path = std::getenv("PATH");
  if (!path) return false;
  std::string p = path;
  std::size_t start = 0;
  while (start <= p.size()) {
    const auto end = p.find(':', start);
    const std::string dir = p.substr(start, end == std::string::npos ? std::string::npos : end - start);
    if (!dir.empty() && ::access((dir + "/" + exe).c_str(), X_OK) == 0) return true;
    if (end == std::string::npos) break;
    start = end + 1;
  }
  return false;
}

std::string run_capture(const char* command) {
  std::string out;
  if (FILE* f = ::popen(command, "r")) {
    std::array<char, 4096> buf;
    std::size_t n;
    while ((n = std::fread(buf.data(), 1, buf.size(), f)) > 0) out.append(buf.data(), n);
    ::pclose(f);
  }
  return out;
}

std::string trim(std::string s) {
  s.erase(0, s.find_first_not_of(" \t\r\n"));
  s.erase(s.find_last_not_of(" \t\r\n") + 1);
  return s;
}

Table runs_table_schema() {
  Table t("runs", "one row per run that wrote or appended to this file");
  for (const char* c : {"experiment", "start_time", "end_time", "command_line", "lowbit_version", "git_commit", "seed",
                        "hostname", "cpu", "gpu", "gpu_driver", "cuda_version"})
    t.add_column(c, ColumnType::string, "", "");
  return t;
}

}  // namespace

// ---- metadata -----------------------------------------------------------------------------

std::string utc_now_iso8601() {
  const std::time_t now = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&now, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

RunMetadata collect_run_metadata(std::string experiment, std::optional<std::uint64_t> seed) {
  RunMetadata m;
  m.experiment = std::move(experiment);
  m.lowbit_version = LOWBIT_VERSION;
  m.git_commit = LOWBIT_GIT_COMMIT;
  m.command_line = command_line();
  m.seed = seed;
  char host[256] = {};
  m.hostname = ::gethostname(host, sizeof host - 1) == 0 ? host : "unknown";
  m.cpu = read_first_line_field("/proc/cpuinfo", "model name");
  if (m.cpu.empty()) m.cpu = "unknown";
  m.gpu = m.gpu_driver = m.cuda_version = "none";
  if (on_path("nvidia-smi")) {
    // One line per GPU: "NVIDIA H100 80GB HBM3, 550.54.15".
    const std::string q = run_capture("nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>/dev/null");
    std::string names, driver;
    std::size_t start = 0;
    while (start < q.size()) {
      const auto end = q.find('\n', start);
      const std::string line = trim(q.substr(start, end - start));
      if (const auto comma = line.rfind(','); comma != std::string::npos) {
        names += (names.empty() ? "" : "; ") + trim(line.substr(0, comma));
        driver = trim(line.substr(comma + 1));
      }
      if (end == std::string::npos) break;
      start = end + 1;
    }
    if (!names.empty()) m.gpu = names, m.gpu_driver = driver;
    const std::string banner = run_capture("nvidia-smi 2>/dev/null");
    if (const auto p = banner.find("CUDA Version:"); p != std::string::npos) {
      const auto v = banner.substr(p + 13, 16);
      m.cuda_version = trim(v.substr(0, v.find_first_of("|\n")));
    }
  }
  m.start_time = utc_now_iso8601();
  return m;
}

// ---- ResultsWriter --------------------------------------------------------------------------

ResultsWriter::ResultsWriter(std::filesystem::path path, std::string experiment, Mode mode,
                             std::optional<std::uint64_t> seed)
    : path_(std::move(path)), mode_(mode) {
  silence_hdf5();
  if (mode_ == Mode::append) {
    try {
      Id f = open_results_file(path_, H5F_ACC_RDONLY);
      if (!link_exists(f, "runs")) throw InputError("'" + path_.string() + "' is not a lowbit results file (no /runs)");
    } catch (const InputError& e) {
      throw UsageError(std::string("--append: ") + e.what());
    }
  }
  check_writable(path_);
  meta_ = collect_run_metadata(std::move(experiment), seed);
}

void ResultsWriter::check_schema(const Table& schema) const {
  if (mode_ != Mode::append) return;
  Id f = open_results_file(path_, H5F_ACC_RDONLY);
  if (!link_exists(f, schema.name())) return;
  const Table existing = read_table_from(f, schema.name(), path_.string());
  if (const auto why = existing.schema_difference(schema); !why.empty())
    throw UsageError("--append: cannot append to table '" + schema.name() + "' of '" + path_.string() + "': " + why);
}

void ResultsWriter::add(Table table, OnExisting on_existing) { tables_.emplace_back(std::move(table), on_existing); }
void ResultsWriter::add(Array array) { arrays_.push_back(std::move(array)); }
void ResultsWriter::set_root_attribute(std::string name, Attribute value) {
  root_attributes_[std::move(name)] = std::move(value);
}

void ResultsWriter::commit() {
  meta_.end_time = utc_now_iso8601();
  AtomicFile out(path_);
  Id file;
  if (mode_ == Mode::append) {
    std::filesystem::copy_file(path_, out.temp_path(), std::filesystem::copy_options::overwrite_existing);
    file = open_results_file(out.temp_path(), H5F_ACC_RDWR);
  } else {
    file = Id(H5Fcreate(out.temp_path().c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT), H5Fclose, "H5Fcreate");
  }

  Table runs = runs_table_schema();
  runs.add_row({meta_.experiment, meta_.start_time, meta_.end_time, meta_.command_line, meta_.lowbit_version,
                meta_.git_commit, meta_.seed ? std::to_string(*meta_.seed) : std::string("none"), meta_.hostname,
                meta_.cpu, meta_.gpu, meta_.gpu_driver, meta_.cuda_version});
  auto tables = tables_;
  tables.emplace_back(std::move(runs), OnExisting::append);
  for (auto& [t, on_existing] : tables) {
    if (mode_ == Mode::append && link_exists(file, t.name()) && on_existing == OnExisting::replace) {
      check(H5Ldelete(file, t.name().c_str(), H5P_DEFAULT), "H5Ldelete");
    } else if (mode_ == Mode::append && link_exists(file, t.name())) {
      // Fixed-length strings may need wider columns: rewrite the whole table.
      Table merged = read_table_from(file, t.name(), path_.string());
      merged.append_rows(t);
      for (const auto& [k, v] : t.attributes()) merged.set_attribute(k, v);
      check(H5Ldelete(file, t.name().c_str(), H5P_DEFAULT), "H5Ldelete");
      t = std::move(merged);
    }
    write_table(file, t);
  }
  for (const auto& a : arrays_) {
    if (mode_ == Mode::append && link_exists(file, a.name)) check(H5Ldelete(file, a.name.c_str(), H5P_DEFAULT), "H5Ldelete");
    write_array(file, a);
  }

  // Root attributes: the run that wrote the file last.
  write_attribute(file, "schema_version", results_schema_version);
  write_attribute(file, "experiment", meta_.experiment);
  write_attribute(file, "lowbit_version", meta_.lowbit_version);
  write_attribute(file, "git_commit", meta_.git_commit);
  write_attribute(file, "command_line", meta_.command_line);
  write_attribute(file, "resolved_config", resolved_config());
  if (meta_.seed) write_attribute(file, "seed", *meta_.seed);
  else if (H5Aexists(file, "seed") > 0) check(H5Adelete(file, "seed"), "H5Adelete");
  write_attribute(file, "hostname", meta_.hostname);
  write_attribute(file, "cpu", meta_.cpu);
  write_attribute(file, "gpu", meta_.gpu);
  write_attribute(file, "gpu_driver", meta_.gpu_driver);
  write_attribute(file, "cuda_version", meta_.cuda_version);
  write_attribute(file, "start_time", meta_.start_time);
  write_attribute(file, "end_time", meta_.end_time);
  for (const auto& [k, v] : root_attributes_) write_attribute(file, k, v);

  check(H5Fflush(file, H5F_SCOPE_GLOBAL), "H5Fflush");
  file = Id();  // close before the rename
  out.commit();
}

Table read_table(const std::filesystem::path& file, const std::string& name) {
  Id f = open_results_file(file, H5F_ACC_RDONLY);
  return read_table_from(f, name, file.string());
}

}  // namespace lowbit::harness
