#include "experiments/harness/npy.hpp"

#include <bit>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <iterator>

#include "experiments/harness/atomic_file.hpp"
#include "experiments/harness/errors.hpp"
#include "lowbit/formats/minifloat.hpp"
#include "lowbit/formats/minifloats.hpp"

namespace lowbit::harness {

static_assert(std::endian::native == std::endian::little, "the .npy code assumes a little-endian host");

namespace {

constexpr char magic[] = "\x93NUMPY";
constexpr std::size_t magic_len = 6;

// Canonical spelling, or "" if unsupported. Byte order of one-byte types
// is irrelevant; '=' means native (little) order.
std::string normalise_dtype(std::string_view d) {
  if (d.size() < 3) return "";
  const char order = d[0];
  const std::string_view kind = d.substr(1);
  auto with_order = [&](char o) {
    std::string out(1, o);
    out.append(kind);
    return out;
  };
  if (kind == "u1" || kind == "i1" || kind == "b1") return with_order('|');
  if (kind.starts_with("V") && kind.size() > 1 && kind.find_first_not_of("0123456789", 1) == std::string_view::npos)
    return with_order('|');
  if (order != '<' && order != '=') return "";
  for (std::string_view k : {"f2", "f4", "f8", "i2", "i4", "i8", "u2", "u4", "u8"})
    if (kind == k) return with_order('<');
  return "";
}

// A tiny reader for the header's Python dict literal:
//   {'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }
struct HeaderParser {
  std::string_view s;
  std::string file;
  std::size_t pos = 0;

  [[noreturn]] void fail(const std::string& why) const {
    throw InputError("'" + file + "' is not a valid .npy file: " + why);
  }
  void skip_ws() {
    while (pos < s.size() && (s[pos] == ' ' || s[pos] == '\n' || s[pos] == '\t')) ++pos;
  }
  bool eat(char c) {
    skip_ws();
    if (pos < s.size() && s[pos] == c) return ++pos, true;
    return false;
  }
  void expect(char c) {
    if (!eat(c)) fail(std::string("header: expected '") + c + "'");
  }
  std::string string_literal() {
    skip_ws();
    if (pos >= s.size() || (s[pos] != '\'' && s[pos] != '"')) fail("header: expected a string");
    const char q = s[pos++];
    const auto end = s.find(q, pos);
    if (end == std::string_view::npos) fail("header: unterminated string");
    std::string out(s.substr(pos, end - pos));
    pos = end + 1;
    return out;
  }
  std::string word() {
    skip_ws();
    const auto start = pos;
    while (pos < s.size() && std::isalnum(static_cast<unsigned char>(s[pos]))) ++pos;
    return std::string(s.substr(start, pos - start));
  }
};

struct Header {
  std::string dtype;
  bool fortran = false;
  std::vector<std::size_t> shape;
};

Header parse_header(std::string_view text, const std::string& file) {
  HeaderParser p{text, file};
  Header h;
  bool have_descr = false, have_order = false, have_shape = false;
  p.expect('{');
  while (!p.eat('}')) {
    const std::string key = p.string_literal();
    p.expect(':');
    if (key == "descr") {
      p.skip_ws();
      if (p.pos < text.size() && text[p.pos] == '[') p.fail("structured dtypes are not supported");
      const std::string raw = p.string_literal();
      h.dtype = normalise_dtype(raw);
      if (raw.size() >= 2 && raw[0] == '>' && raw.substr(1) != "u1" && raw.substr(1) != "i1" && raw.substr(1) != "b1")
        p.fail("big-endian dtype '" + raw + "' is not supported (use arr.astype(arr.dtype.newbyteorder('<')))");
      if (h.dtype.empty()) p.fail("unsupported dtype '" + raw + "'");
      have_descr = true;
    } else if (key == "fortran_order") {
      const std::string w = p.word();
      if (w != "True" && w != "False") p.fail("header: fortran_order must be True or False");
      h.fortran = w == "True";
      have_order = true;
    } else if (key == "shape") {
      p.expect('(');
      while (!p.eat(')')) {
        p.skip_ws();
        std::size_t v = 0;
        const auto start = p.pos;
        while (p.pos < text.size() && std::isdigit(static_cast<unsigned char>(text[p.pos]))) {
          if (v > (SIZE_MAX - 9) / 10) p.fail("header: dimension too large");
          v = v * 10 + static_cast<std::size_t>(text[p.pos++] - '0');
        }
        if (p.pos == start) p.fail("header: bad shape");
        p.skip_ws();
        if (p.pos < text.size() && text[p.pos] == 'L') ++p.pos;  // Python 2 long
        h.shape.push_back(v);
        if (!p.eat(',')) {
          p.expect(')');
          break;
        }
      }
      have_shape = true;
    } else {
      p.fail("header: unknown key '" + key + "'");
    }
    if (!p.eat(',')) {
      p.expect('}');
      break;
    }
  }
  if (!have_descr || !have_order || !have_shape) p.fail("header lacks descr, fortran_order or shape");
  if (h.fortran && h.shape.size() > 1) p.fail("Fortran-order arrays are not supported (save with np.ascontiguousarray)");
  return h;
}

template <class T, class Out>
void convert_all(const std::byte* src, std::size_t n, Out* out) {
  for (std::size_t i = 0; i < n; ++i) {
    T v;
    std::memcpy(&v, src + i * sizeof(T), sizeof(T));
    out[i] = static_cast<Out>(v);
  }
}

}  // namespace

std::size_t npy_item_size(std::string_view dtype) {
  if (dtype.size() < 3) return 0;
  if (dtype.starts_with("|V")) return static_cast<std::size_t>(std::stoul(std::string(dtype.substr(2))));
  const char n = dtype[2];
  return dtype.size() == 3 && n >= '1' && n <= '8' ? static_cast<std::size_t>(n - '0') : 0;
}

std::size_t NpyArray::item_size() const { return npy_item_size(dtype); }

std::size_t NpyArray::element_count() const {
  std::size_t n = 1;
  for (auto d : shape) n *= d;
  return n;
}

template <class T>
std::vector<T> NpyArray::as() const {
  const std::size_t n = element_count();
  std::vector<T> out(n);
  const std::byte* p = data.data();
  const std::string_view k = std::string_view(dtype).substr(1);
  if (k == "f2") {
    for (std::size_t i = 0; i < n; ++i) {
      std::uint16_t bits;
      std::memcpy(&bits, p + 2 * i, 2);
      out[i] = lowbit::decode<T>(lowbit::fp16, bits);  // exact
    }
  } else if (k == "f4") convert_all<float>(p, n, out.data());
  else if (k == "f8") convert_all<double>(p, n, out.data());
  else if (k == "i1") convert_all<std::int8_t>(p, n, out.data());
  else if (k == "i2") convert_all<std::int16_t>(p, n, out.data());
  else if (k == "i4") convert_all<std::int32_t>(p, n, out.data());
  else if (k == "i8") convert_all<std::int64_t>(p, n, out.data());
  else if (k == "u1" || k == "b1") convert_all<std::uint8_t>(p, n, out.data());
  else if (k == "u2") convert_all<std::uint16_t>(p, n, out.data());
  else if (k == "u4") convert_all<std::uint32_t>(p, n, out.data());
  else if (k == "u8") convert_all<std::uint64_t>(p, n, out.data());
  else throw InputError("cannot convert .npy dtype '" + dtype + "' to numbers");
  return out;
}
template std::vector<float> NpyArray::as<float>() const;
template std::vector<double> NpyArray::as<double>() const;

NpyArray parse_npy(const std::vector<std::byte>& file, const std::string& name) {
  auto fail = [&](const std::string& why) -> void { throw InputError("'" + name + "' is not a valid .npy file: " + why); };
  if (file.size() < magic_len + 2 || std::memcmp(file.data(), magic, magic_len) != 0) fail("bad magic (not a .npy file)");
  const auto major = static_cast<unsigned>(file[6]);
  const std::size_t len_bytes = major == 1 ? 2 : 4;
  if (major < 1 || major > 3) fail("unsupported format version " + std::to_string(major) + ".x");
  if (file.size() < 8 + len_bytes) fail("truncated header");
  std::size_t header_len = 0;
  for (std::size_t i = 0; i < len_bytes; ++i) header_len |= static_cast<std::size_t>(file[8 + i]) << (8 * i);
  const std::size_t data_start = 8 + len_bytes + header_len;
  if (file.size() < data_start) fail("truncated header");
  const std::string_view text(reinterpret_cast<const char*>(file.data()) + 8 + len_bytes, header_len);
  const Header h = parse_header(text, name);

  NpyArray a{h.dtype, h.shape, {}};
  std::size_t n = 1;
  for (auto d : a.shape) {
    if (d != 0 && n > SIZE_MAX / d) fail("shape too large");
    n *= d;
  }
  const std::size_t item = a.item_size();
  if (item == 0 || (n != 0 && n > SIZE_MAX / item)) fail("bad dtype or shape");
  const std::size_t bytes = n * item;
  const std::size_t have = file.size() - data_start;
  if (have < bytes) fail("truncated data (" + std::to_string(have) + " of " + std::to_string(bytes) + " bytes)");
  if (have > bytes) fail(std::to_string(have - bytes) + " unexpected bytes after the data");
  a.data.assign(file.begin() + static_cast<std::ptrdiff_t>(data_start), file.end());
  return a;
}

NpyArray read_npy(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::error_code ec;
  if (!in || std::filesystem::is_directory(path, ec)) throw InputError("cannot read '" + path.string() + "'");
  std::vector<char> raw((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad()) throw InputError("cannot read '" + path.string() + "'");
  std::vector<std::byte> bytes(raw.size());
  std::memcpy(bytes.data(), raw.data(), raw.size());
  return parse_npy(bytes, path.string());
}

std::vector<std::byte> format_npy(std::string_view dtype_in, const std::vector<std::size_t>& shape, const void* data,
                                  int version) {
  const std::string dtype = normalise_dtype(dtype_in);
  if (dtype.empty()) throw std::invalid_argument("write_npy: unsupported dtype '" + std::string(dtype_in) + "'");
  std::string header = "{'descr': '" + dtype + "', 'fortran_order': False, 'shape': (";
  std::size_t n = 1;
  for (auto d : shape) header += std::to_string(d) + ", ", n *= d;
  if (shape.size() > 1) header.resize(header.size() - 1);  // (3, 4) but (3,)
  else if (shape.size() == 1) header.pop_back();
  header += "), }";
  if (version == 0) version = header.size() + 12 > 65535 ? 2 : 1;
  if (version < 1 || version > 3) throw std::invalid_argument("write_npy: version must be 1, 2 or 3");
  const std::size_t prefix = 8 + (version == 1 ? 2 : 4);
  // Pad with spaces and end with '\n' so the data starts on a 64-byte boundary.
  const std::size_t total = (prefix + header.size() + 1 + 63) / 64 * 64;
  header.append(total - prefix - header.size() - 1, ' ');
  header += '\n';
  if (version == 1 && header.size() > 65535) throw std::invalid_argument("write_npy: header too long for version 1.0");

  const std::size_t bytes = n * npy_item_size(dtype);
  std::vector<std::byte> out(total + bytes);
  std::memcpy(out.data(), magic, magic_len);
  out[6] = static_cast<std::byte>(version);
  out[7] = std::byte{0};
  for (std::size_t i = 0; i < prefix - 8; ++i) out[8 + i] = static_cast<std::byte>((header.size() >> (8 * i)) & 0xff);
  std::memcpy(out.data() + prefix, header.data(), header.size());
  if (bytes) std::memcpy(out.data() + total, data, bytes);
  return out;
}

void write_npy(const std::filesystem::path& path, std::string_view dtype, const std::vector<std::size_t>& shape,
               const void* data, int version) {
  const auto bytes = format_npy(dtype, shape, data, version);
  AtomicFile file(path);
  {
    std::ofstream out(file.temp_path(), std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
    out.close();
    if (!out) throw InputError("cannot write '" + path.string() + "'");
  }
  file.commit();
}

}  // namespace lowbit::harness
