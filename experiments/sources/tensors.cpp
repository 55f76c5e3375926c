// experiments/sources/tensors.cpp — see tensors.hpp.
#include "experiments/sources/tensors.hpp"

#include <fcntl.h>
#include <fmt/format.h>
#include <fnmatch.h>
#include <hdf5.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <nlohmann/json.hpp>

#include "experiments/harness/errors.hpp"
#include "experiments/harness/npy.hpp"
#include "lowbit/formats/minifloats.hpp"

namespace lowbit::sources {
namespace {

using harness::InputError;
namespace fs = std::filesystem;

std::size_t product(const std::vector<std::size_t>& shape, std::size_t from, std::size_t to) {
  std::size_t p = 1;
  for (std::size_t i = from; i < to; ++i) p *= shape[i];
  return p;
}

// ---- safetensors ----------------------------------------------------------

std::size_t safetensors_item_size(const std::string& dtype) {
  if (dtype == "F64" || dtype == "I64") return 8;
  if (dtype == "F32" || dtype == "I32") return 4;
  if (dtype == "F16" || dtype == "BF16" || dtype == "I16") return 2;
  if (dtype == "I8" || dtype == "U8") return 1;
  return 0;
}

class SafetensorsFile final : public TensorFile {
 public:
  explicit SafetensorsFile(const fs::path& p) {
    path_ = p;
    const std::string name = p.string();
    fd_ = ::open(name.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd_ < 0) throw InputError(fmt::format("cannot open '{}': {}", name, std::strerror(errno)));
    struct stat st {};
    if (::fstat(fd_, &st) != 0 || !S_ISREG(st.st_mode)) {
      ::close(fd_);
      throw InputError(fmt::format("'{}' is not a regular file", name));
    }
    size_ = static_cast<std::size_t>(st.st_size);
    if (size_ < 8) fail("file shorter than the 8-byte header length");
    map_ = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd_, 0);
    if (map_ == MAP_FAILED) {
      map_ = nullptr;
      fail(std::string("mmap failed: ") + std::strerror(errno));
    }
    const auto* bytes = static_cast<const unsigned char*>(map_);
    std::uint64_t hlen = 0;
    for (int i = 7; i >= 0; --i) hlen = (hlen << 8) | bytes[i];
    if (hlen > size_ - 8) fail(fmt::format("header length {} exceeds the file size {}", hlen, size_));
    data_begin_ = 8 + hlen;
    nlohmann::json header;
    try {
      header = nlohmann::json::parse(reinterpret_cast<const char*>(bytes) + 8,
                                     reinterpret_cast<const char*>(bytes) + 8 + hlen);
    } catch (const nlohmann::json::exception& e) {
      fail(fmt::format("header is not valid JSON ({})", e.what()));
    }
    if (!header.is_object()) fail("header is not a JSON object");
    const std::size_t data_size = size_ - data_begin_;
    for (const auto& [key, value] : header.items()) {
      if (key == "__metadata__") continue;
      try {
        TensorInfo t;
        t.name = key;
        t.dtype = value.at("dtype").get<std::string>();
        for (const auto& d : value.at("shape")) t.shape.push_back(d.get<std::size_t>());
        const auto& off = value.at("data_offsets");
        if (!off.is_array() || off.size() != 2) fail(fmt::format("tensor '{}': data_offsets is not [begin, end]", key));
        const auto b = off[0].get<std::size_t>(), e = off[1].get<std::size_t>();
        const std::size_t item = safetensors_item_size(t.dtype);
        if (item == 0) fail(fmt::format("tensor '{}': unsupported dtype '{}' (F64, F32, F16, BF16, I32, I16, I8, U8)", key, t.dtype));
        if (b > e || e > data_size)
          fail(fmt::format("tensor '{}': data_offsets [{}, {}] outside the {} data bytes (truncated file?)", key, b, e,
                           data_size));
        if (e - b != t.element_count() * item)
          fail(fmt::format("tensor '{}': {} bytes for shape of {} {} elements", key, e - b, t.element_count(), t.dtype));
        offsets_.emplace_back(b);
        tensors_.push_back(std::move(t));
      } catch (const nlohmann::json::exception& e) {
        fail(fmt::format("tensor '{}': malformed entry ({})", key, e.what()));
      }
    }
    // nlohmann::json objects iterate in sorted key order: tensors_ is sorted by name.
  }
  ~SafetensorsFile() override {
    if (map_) ::munmap(map_, size_);
    if (fd_ >= 0) ::close(fd_);
  }

  Tensor load(const std::string& name) const override {
    const auto it = std::find_if(tensors_.begin(), tensors_.end(), [&](const TensorInfo& t) { return t.name == name; });
    if (it == tensors_.end()) throw InputError(fmt::format("'{}': no tensor named '{}'", path_.string(), name));
    const std::size_t idx = static_cast<std::size_t>(it - tensors_.begin());
    Tensor t{*it, {}};
    const std::size_t n = it->element_count();
    t.data.resize(n);
    const auto* p = static_cast<const unsigned char*>(map_) + data_begin_ + offsets_[idx];
    const std::string& dt = it->dtype;
    auto le = [&](std::size_t i, std::size_t w) {
      std::uint64_t v = 0;
      for (std::size_t k = w; k-- > 0;) v = (v << 8) | p[i * w + k];
      return v;
    };
    for (std::size_t i = 0; i < n; ++i) {
      float v;
      if (dt == "F32") {
        const auto bits = static_cast<std::uint32_t>(le(i, 4));
        std::memcpy(&v, &bits, 4);
      } else if (dt == "F64") {
        const auto bits = le(i, 8);
        double d;
        std::memcpy(&d, &bits, 8);
        v = static_cast<float>(d);
      } else if (dt == "F16") {
        v = lowbit::decode<float>(lowbit::fp16, static_cast<std::uint32_t>(le(i, 2)));
      } else if (dt == "BF16") {
        const auto bits = static_cast<std::uint32_t>(le(i, 2)) << 16;
        std::memcpy(&v, &bits, 4);
      } else if (dt == "I64") {
        v = static_cast<float>(static_cast<std::int64_t>(le(i, 8)));
      } else if (dt == "I32") {
        v = static_cast<float>(static_cast<std::int32_t>(le(i, 4)));
      } else if (dt == "I16") {
        v = static_cast<float>(static_cast<std::int16_t>(le(i, 2)));
      } else if (dt == "I8") {
        v = static_cast<float>(static_cast<std::int8_t>(p[i]));
      } else {
        v = static_cast<float>(p[i]);
      }
      t.data[i] = v;
    }
    return t;
  }

 private:
  [[noreturn]] void fail(const std::string& why) const {
    throw InputError(fmt::format("'{}' is not a valid .safetensors file: {}", path_.string(), why));
  }
  int fd_ = -1;
  void* map_ = nullptr;
  std::size_t size_ = 0, data_begin_ = 0;
  std::vector<std::size_t> offsets_;
};

// ---- npy ------------------------------------------------------------------

class NpyFile final : public TensorFile {
 public:
  explicit NpyFile(const fs::path& p) : array_(harness::read_npy(p)) {
    path_ = p;
    if (array_.dtype.rfind("|V", 0) == 0)
      throw InputError(fmt::format("'{}': raw dtype '{}' holds no numbers lowbit can read", p.string(), array_.dtype));
    tensors_.push_back(TensorInfo{p.stem().string(), array_.dtype, array_.shape});
  }
  Tensor load(const std::string& name) const override {
    if (name != tensors_[0].name) throw InputError(fmt::format("'{}': no tensor named '{}'", path_.string(), name));
    return Tensor{tensors_[0], array_.as<float>()};
  }

 private:
  harness::NpyArray array_;
};

// ---- HDF5 -----------------------------------------------------------------

class Hdf5File final : public TensorFile {
 public:
  explicit Hdf5File(const fs::path& p) {
    path_ = p;
    H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
    file_ = H5Fopen(p.string().c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
    if (file_ < 0) throw InputError(fmt::format("cannot open '{}' as an HDF5 file (missing, unreadable or truncated)", p.string()));
    #if H5_VERSION_GE(1, 12, 0)
    H5Ovisit3(file_, H5_INDEX_NAME, H5_ITER_INC, &Hdf5File::visit, this, H5O_INFO_BASIC);
#else
    H5Ovisit(file_, H5_INDEX_NAME, H5_ITER_INC, &Hdf5File::visit, this);
#endif
  }
  ~Hdf5File() override {
    if (file_ >= 0) H5Fclose(file_);
  }
  Tensor load(const std::string& name) const override {
    const auto it = std::find_if(tensors_.begin(), tensors_.end(), [&](const TensorInfo& t) { return t.name == name; });
    if (it == tensors_.end()) throw InputError(fmt::format("'{}': no dataset named '{}'", path_.string(), name));
    Tensor t{*it, std::vector<float>(it->element_count())};
    const hid_t ds = H5Dopen2(file_, name.c_str(), H5P_DEFAULT);
    const herr_t rc = ds < 0 ? -1 : H5Dread(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, t.data.data());
    if (ds >= 0) H5Dclose(ds);
    if (rc < 0) throw InputError(fmt::format("'{}': cannot read dataset '{}' as float", path_.string(), name));
    return t;
  }

 private:
  #if H5_VERSION_GE(1, 12, 0)
  using ObjectInfo = H5O_info2_t;
#else
  using ObjectInfo = H5O_info_t;
#endif
  static herr_t visit(hid_t obj, const char* name, const ObjectInfo* info, void* self_) {
    auto* self = static_cast<Hdf5File*>(self_);
    if (info->type != H5O_TYPE_DATASET) return 0;
    const hid_t ds = H5Dopen2(obj, name, H5P_DEFAULT);
    if (ds < 0) return 0;
    const hid_t type = H5Dget_type(ds);
    const H5T_class_t cls = H5Tget_class(type);
    if (cls == H5T_FLOAT || cls == H5T_INTEGER) {
      const hid_t space = H5Dget_space(ds);
      const int rank = H5Sget_simple_extent_ndims(space);
      if (rank >= 0) {
        std::vector<hsize_t> dims(static_cast<std::size_t>(rank));
        H5Sget_simple_extent_dims(space, dims.data(), nullptr);
        TensorInfo t;
        t.name = name;
        t.dtype = fmt::format("{}{}", cls == H5T_FLOAT ? "float" : "int", 8 * H5Tget_size(type));
        for (auto d : dims) t.shape.push_back(static_cast<std::size_t>(d));
        self->tensors_.push_back(std::move(t));
      }
      H5Sclose(space);
    }
    H5Tclose(type);
    H5Dclose(ds);
    return 0;
  }
  hid_t file_ = -1;
};

}  // namespace

std::size_t TensorInfo::element_count() const { return product(shape, 0, shape.size()); }
std::size_t TensorInfo::rows() const { return shape.empty() ? 1 : product(shape, 0, shape.size() - 1); }
std::size_t TensorInfo::cols() const { return shape.empty() ? 1 : shape.back(); }

std::unique_ptr<TensorFile> TensorFile::open(const fs::path& path) {
  std::error_code ec;
  if (!fs::exists(path, ec)) throw InputError(fmt::format("'{}': no such file", path.string()));
  if (fs::is_directory(path, ec)) throw InputError(fmt::format("'{}' is a directory, not a tensor file", path.string()));
  std::string ext = path.extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  if (ext == ".safetensors") return std::make_unique<SafetensorsFile>(path);
  if (ext == ".npy") return std::make_unique<NpyFile>(path);
  if (ext == ".h5" || ext == ".hdf5") return std::make_unique<Hdf5File>(path);
  throw InputError(fmt::format("'{}': unknown tensor file type '{}' (.safetensors, .npy, .h5, .hdf5)", path.string(), ext));
}

bool glob_match(std::string_view pattern, std::string_view name) {
  return ::fnmatch(std::string(pattern).c_str(), std::string(name).c_str(), 0) == 0;
}

std::vector<TensorInfo> select_tensors(const TensorFile& file, std::string_view glob) {
  std::vector<TensorInfo> out;
  for (const auto& t : file.tensors())
    if (glob_match(glob, t.name)) out.push_back(t);
  if (out.empty()) {
    std::vector<std::string> some;
    for (std::size_t i = 0; i < file.tensors().size() && i < 4; ++i) some.push_back(file.tensors()[i].name);
    throw InputError(fmt::format("'{}': no tensor matches '{}' ({} tensors{}{})", file.path().string(), glob,
                                 file.tensors().size(), some.empty() ? "" : ", e.g. ", fmt::join(some, ", ")));
  }
  return out;
}

}  // namespace lowbit::sources
