// lowbit/formats/codebook_file.hpp — user codebooks from a file (host-only).
//
// A table file lists the value of code 0, 1, 2, … in order:
//   * text: numbers separated by whitespace or commas, `#` starts a comment;
//   * .npy: a 1-D little-endian float32 ('<f4') or float64 ('<f8') array
//     (values are rounded to float32).
// 2 … 256 finite, distinct values (±0 count as one); the code width is
// ⌈log2 size⌉. The table is used as given (not normalised): absmax scaling
// maps a group's amax to the table's largest |value|. Ties go to the lower
// value, as NF4. Errors throw FormatError with the file name and the reason.
#pragma once

#include <cmath>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "lowbit/formats/codebook.hpp"
#include "lowbit/formats/minifloat_names.hpp"

namespace lowbit {

namespace detail {
inline std::vector<float> read_npy_1d(const std::string& path, const std::string& bytes) {
  auto fail = [&](const std::string& why) -> std::vector<float> {
    throw FormatError("table '" + path + "': " + why);
  };
  if (bytes.size() < 10 || std::memcmp(bytes.data(), "\x93NUMPY", 6) != 0) return fail("not a .npy file");
  const int major = static_cast<unsigned char>(bytes[6]);
  std::size_t header_len, header_at;
  if (major == 1) {
    header_len = static_cast<unsigned char>(bytes[8]) | (static_cast<unsigned char>(bytes[9]) << 8);
    header_at = 10;
  } else {
    if (bytes.size() < 12) return fail("truncated .npy header");
    header_len = 0;
    for (int i = 0; i < 4; ++i) header_len |= static_cast<std::size_t>(static_cast<unsigned char>(bytes[8 + i])) << (8 * i);
    header_at = 12;
  }
  if (bytes.size() < header_at + header_len) return fail("truncated .npy header");
  const std::string header = bytes.substr(header_at, header_len);
  auto field = [&](const std::string& key) {
    const auto k = header.find("'" + key + "'");
    if (k == std::string::npos) return std::string{};
    auto v = header.find(':', k) + 1;
    while (v < header.size() && header[v] == ' ') ++v;
    const auto end = header[v] == '(' ? header.find(')', v) + 1 : header.find_first_of(",}", v);
    return header.substr(v, end - v);
  };
  const std::string descr = field("descr"), order = field("fortran_order"), shape = field("shape");
  int width = 0;
  if (descr == "'<f4'") width = 4;
  else if (descr == "'<f8'") width = 8;
  else return fail("dtype " + descr + " is not float32/float64 ('<f4'/'<f8')");
  if (order.rfind("True", 0) == 0) return fail("fortran_order arrays are not supported");
  // shape "(n,)" — one dimension only.
  std::size_t n = 0;
  if (std::sscanf(shape.c_str(), "(%zu,)", &n) != 1 || shape.find(',') != shape.rfind(','))
    return fail("shape " + shape + " is not 1-D");
  const std::size_t data_at = header_at + header_len;
  if (bytes.size() < data_at + n * width) return fail("file shorter than its shape says");
  std::vector<float> v(n);
  for (std::size_t i = 0; i < n; ++i) {
    if (width == 4) std::memcpy(&v[i], bytes.data() + data_at + 4 * i, 4);
    else {
      double d;
      std::memcpy(&d, bytes.data() + data_at + 8 * i, 8);
      v[i] = static_cast<float>(d);
    }
  }
  return v;
}

inline std::vector<float> read_text_table(const std::string& path, const std::string& text) {
  std::vector<float> v;
  std::istringstream lines(text);
  std::string line;
  int line_no = 0;
  while (std::getline(lines, line)) {
    ++line_no;
    if (auto hash = line.find('#'); hash != std::string::npos) line.resize(hash);
    for (char& c : line)
      if (c == ',') c = ' ';
    std::istringstream words(line);
    std::string w;
    while (words >> w) {
      char* end = nullptr;
      const double d = std::strtod(w.c_str(), &end);
      if (end == w.c_str() || *end != '\0')
        throw FormatError("table '" + path + "' line " + std::to_string(line_no) + ": '" + w + "' is not a number");
      v.push_back(static_cast<float>(d));
    }
  }
  return v;
}
}  // namespace detail

// Values of a table file, in code order.
inline std::vector<float> read_codebook_values(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw FormatError("table '" + path + "': cannot open file");
  std::ostringstream ss;
  ss << in.rdbuf();
  const std::string bytes = ss.str();
  const bool npy = bytes.size() >= 6 && std::memcmp(bytes.data(), "\x93NUMPY", 6) == 0;
  return npy ? detail::read_npy_1d(path, bytes) : detail::read_text_table(path, bytes);
}

// A codebook from values in code order; throws FormatError naming `origin`.
inline Codebook codebook_from_values(const std::vector<float>& v, const std::string& origin) {
  if (v.size() < 2 || v.size() > 256)
    throw FormatError("table '" + origin + "': " + std::to_string(v.size()) + " values; a codebook needs 2 … 256");
  for (std::size_t i = 0; i < v.size(); ++i) {
    if (!std::isfinite(v[i])) throw FormatError("table '" + origin + "': value " + std::to_string(i) + " is not finite");
    for (std::size_t j = 0; j < i; ++j)
      if (v[i] == v[j])
        throw FormatError("table '" + origin + "': values " + std::to_string(j) + " and " + std::to_string(i) +
                          " are equal (" + std::to_string(v[i]) + ")");
  }
  int bits = 1;
  while ((std::size_t{1} << bits) < v.size()) ++bits;
  return make_codebook(v.data(), static_cast<int>(v.size()), bits, TieRule::lower_value, {}, 0);
}

inline Codebook load_codebook(const std::string& path) { return codebook_from_values(read_codebook_values(path), path); }

}  // namespace lowbit
