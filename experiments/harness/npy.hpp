// experiments/harness/npy.hpp — the NumPy .npy file format, versions 1.0–3.0.
//
// Supported: little-endian (or byte-order-free) plain dtypes in C order:
//   <f2 <f4 <f8   <i1 <i2 <i4 <i8   <u1 <u2 <u4 <u8   |b1   |V<n> (raw bytes)
// One-byte types are normalised to "|u1", "|i1", "|b1". bfloat16 has no npy
// dtype of its own: ml_dtypes writes it as "|V2", and callers that read
// bfloat16 bits from "<u2" decide so themselves (lowbit convert
// --input-dtype bf16). Big-endian data, Fortran order, object and
// structured dtypes, bad magic and truncated or over-long files are
// rejected with an InputError naming the file and the reason.
#pragma once

#include <cstddef>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

namespace lowbit::harness {

struct NpyArray {
  std::string dtype;               // normalised descr, e.g. "<f4", "|u1"
  std::vector<std::size_t> shape;  // C order; {} for a scalar
  std::vector<std::byte> data;     // element_count() * item_size() bytes

  std::size_t item_size() const;
  std::size_t element_count() const;

  // The elements converted to float or double (exactly where the target
  // holds them: f2 -> f4, anything -> f8 except 64-bit integers beyond
  // 2^53). Throws InputError for raw |V dtypes.
  template <class T> std::vector<T> as() const;
};

// Size in bytes of a normalised dtype, or 0 if unsupported.
std::size_t npy_item_size(std::string_view dtype);

NpyArray read_npy(const std::filesystem::path& path);
NpyArray parse_npy(const std::vector<std::byte>& file, const std::string& name_for_errors);

// Write atomically (temporary + rename). `version` 1, 2 or 3; 0 picks the
// smallest that fits the header (1.0 unless the header exceeds 64 KiB).
// `data` holds product(shape) elements of `dtype`.
void write_npy(const std::filesystem::path& path, std::string_view dtype, const std::vector<std::size_t>& shape,
               const void* data, int version = 0);
std::vector<std::byte> format_npy(std::string_view dtype, const std::vector<std::size_t>& shape, const void* data,
                                  int version = 0);

extern template std::vector<float> NpyArray::as<float>() const;
extern template std::vector<double> NpyArray::as<double>() const;

}  // namespace lowbit::harness
