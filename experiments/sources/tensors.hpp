// experiments/sources/tensors.hpp — real tensors from files.
//
// Three containers, chosen by extension:
//   .safetensors   8-byte little-endian header length, a JSON header parsed
//                  with nlohmann-json ({name: {dtype, shape, data_offsets}},
//                  "__metadata__" ignored), data memory-mapped. dtypes F64,
//                  F32, F16, BF16, I32, I16, I8, U8.
//   .npy           one tensor, named after the file's stem (harness/npy.hpp).
//   .h5 / .hdf5    every numeric dataset, named by its path without the
//                  leading '/' ("layer0/weight"); HDF5 converts to float.
//
// A tensor is used as a matrix: its last dimension is the columns, the
// product of the others the rows (1-D: one row; a scalar: 1×1), which is
// the layout of a PyTorch nn.Linear weight ([out_features, in_features]),
// so row-wise scaling is per output channel and blocks run along the input
// dimension.
//
// Every failure (missing/unreadable file, bad header, offsets outside the
// file, size not matching the shape, unsupported dtype, no tensor matching
// a glob) throws harness::InputError naming the file.
#pragma once

#include <cstddef>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace lowbit::sources {

struct TensorInfo {
  std::string name;
  std::string dtype;  // as the file names it: "F32", "BF16", "<f4", "float32", ...
  std::vector<std::size_t> shape;
  std::size_t element_count() const;
  std::size_t rows() const;  // product of all but the last dimension
  std::size_t cols() const;  // the last dimension (1 for a scalar)
};

struct Tensor {
  TensorInfo info;
  std::vector<float> data;  // rows() * cols() values, row-major
};

class TensorFile {
 public:
  virtual ~TensorFile() = default;
  // By extension (see above); throws InputError.
  static std::unique_ptr<TensorFile> open(const std::filesystem::path& path);

  const std::filesystem::path& path() const { return path_; }
  // Every tensor, in the file's order (safetensors: sorted by name).
  const std::vector<TensorInfo>& tensors() const { return tensors_; }
  // The tensor's values converted to float (exact for F32/F16/BF16; F64 rounds to nearest).
  virtual Tensor load(const std::string& name) const = 0;

 protected:
  std::filesystem::path path_;
  std::vector<TensorInfo> tensors_;
};

// Shell-style match (fnmatch without flags: '*' also matches '.' and '/').
bool glob_match(std::string_view pattern, std::string_view name);

// The tensors whose name matches `glob`, in file order. Throws InputError
// (naming the file, the pattern and a few tensor names) when none does.
std::vector<TensorInfo> select_tensors(const TensorFile& file, std::string_view glob);

}  // namespace lowbit::sources
