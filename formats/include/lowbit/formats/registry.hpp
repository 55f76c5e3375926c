// lowbit/formats/registry.hpp — every format by name: parse_quantizer("nf4@64+dq").
//
// Grammar (canonical spellings; name() returns them):
//
//   quantizer   := element [ '@' granularity [ ':' scale ] [ '+dq' ] ] [ '~bnb' ]  |  alias
//   element     := minifloat (e4m3fn, e5m2, fp16, bf16, any eXmY…: minifloat_names.hpp)
//                | nf4 | nfK (K = 2…8) | fp4-bnb | dyn8 | intK | intK-zp (K = 2…8)
//                | table:PATH  (a user codebook file: codebook_file.hpp)
//   granularity := tensor | row | col | B  (block of B >= 2 consecutive elements
//                  of the row-major tensor, the last block possibly partial)
//   scale       := fp32 (default, omitted in canonical names) | fp16 | bf16 | e8m0 | e4m3fn
//   alias       := mxfp4 = e2m1fn@32:e8m0, mxfp6 = e2m3fn@32:e8m0,
//                  mxfp8 = e4m3fn@32:e8m0, nvfp4 = e2m1fn@16:e4m3fn
//
// A bare minifloat name is plain element conversion (no scale, s = 1); a bare
// codebook or integer name means per-tensor absmax scaling (`nf4` =
// `nf4@tensor`, `int8` = `int8@tensor`). `+dq` (QLoRA double quantization)
// replaces the fp32 scale; `~bnb` selects bitsandbytes' edge arithmetic
// (codebook elements with fp32/dq scales only). What each scale format means,
// and the edge cases, are in scaled.hpp.
//
// Host-only (std::string, exceptions). quantize / dequantize / fake_quantize
// are the CPU reference, defined in kernels/cpu/quantize.cpp: link
// lowbit::kernels_cpu to call them.
#pragma once

#include <algorithm>
#include <charconv>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "lowbit/formats/codebook_file.hpp"
#include "lowbit/formats/dyn8.hpp"
#include "lowbit/formats/fp4_bnb.hpp"
#include "lowbit/formats/minifloat_names.hpp"
#include "lowbit/formats/nf.hpp"
#include "lowbit/formats/nf4.hpp"
#include "lowbit/formats/packing.hpp"
#include "lowbit/formats/scaled.hpp"

namespace lowbit {

struct QuantStats {
  std::uint64_t n_nan_out = 0;  // NaN in the dequantized output
  std::uint64_t n_inf_out = 0;  // ±inf in the dequantized output
  std::uint64_t n_clipped = 0;  // |x / s| beyond the element's largest value, saturated (±inf into a format without inf included)
  std::uint64_t n_nan_in = 0;
  std::uint64_t n_inf_in = 0;

  QuantStats& operator+=(const QuantStats& o) {
    n_nan_out += o.n_nan_out; n_inf_out += o.n_inf_out; n_clipped += o.n_clipped;
    n_nan_in += o.n_nan_in; n_inf_in += o.n_inf_in;
    return *this;
  }
  friend bool operator==(const QuantStats&, const QuantStats&) = default;
};

// A quantized rows × cols row-major tensor: codes and scales in separate
// arrays (bitsandbytes' layout; scaled_blocks.hpp has interleaved structs).
struct QuantizedTensor {
  std::size_t rows = 0, cols = 0;
  int element_bits = 0;
  std::vector<std::uint8_t> codes;          // packed per packing.hpp, element order = memory order
  // Per scale group (tensor: 1, row: rows, col: cols, block B: ⌈n/B⌉; none: empty):
  std::vector<float> scales;                // s that decoding multiplies by (after scale-format rounding, tensor scale, dq)
  std::vector<std::uint32_t> scale_codes;   // s in its storage format's bits (fp32 bits, fp16, bf16, e8m0, e4m3fn);
                                            // for +dq the exact fp32 absmax bits the codes were computed with (not stored by bnb)
  std::vector<std::uint8_t> zero_points;    // intK-zp only
  float tensor_encode_scale = 1.0f;         // e4m3fn scales: the fp32 tensor scale S (s = s8 · (1/S))
  // +dq (QLoRA): the group scales minus dq_offset, dyn8-coded in blocks of 256.
  std::vector<std::uint8_t> dq_codes;
  std::vector<float> dq_absmax;
  float dq_offset = 0.0f;
};

class Quantizer {
 public:
  Quantizer() = default;

  std::string name() const { return name_; }                  // canonical name
  std::string element_name() const { return element_name_; }  // e.g. "nf4", "e4m3fn", "int8"
  int element_bits() const { return element_.bits(); }
  const ElementFormat& element() const { return element_; }
  Granularity granularity() const { return granularity_; }
  std::size_t block_size() const { return block_; }  // block granularity only
  ScaleFormat scale_format() const { return scale_; }
  bool double_quantized() const { return scale_ == ScaleFormat::dq; }
  EdgeMode edge_mode() const { return edge_; }

  // Number of scale groups of a rows × cols tensor.
  std::size_t group_count(std::size_t rows, std::size_t cols) const {
    const std::size_t n = rows * cols;
    switch (granularity_) {
      case Granularity::none: return 0;
      case Granularity::tensor: return 1;
      case Granularity::row: return rows;
      case Granularity::col: return cols;
      case Granularity::block: return (n + block_ - 1) / block_;
    }
    return 0;
  }
  // Group of the element at flat index i.
  std::size_t group_of(std::size_t i, std::size_t cols) const {
    switch (granularity_) {
      case Granularity::row: return i / cols;
      case Granularity::col: return i % cols;
      case Granularity::block: return i / block_;
      default: return 0;
    }
  }

  // Storage cost including scales and constants, for a rows × cols matrix
  // (row-major; blocks run over the flattened tensor, as bitsandbytes does).
  //   elements: n · element_bits; per group: the scale (fp32 32, fp16/bf16
  //   16, e8m0/e4m3fn/dq 8) and, for zero-point integers, a k-bit zero point;
  //   per tensor: 32 for the e4m3fn tensor scale; +dq: 32 per 256 groups and
  //   32 for the mean. nf4@64 = 4.5, nf4@64+dq = 4.127 (+32/n), mxfp4 =
  //   4.25, nvfp4 = 4.5 + 32/n, int8@row = 8 + 32/cols.
  double bits_per_parameter(std::size_t rows, std::size_t cols) const {
    const double n = static_cast<double>(rows) * static_cast<double>(cols);
    if (n == 0) return element_bits();
    const double groups = static_cast<double>(group_count(rows, cols));
    double scale_bits = 0;
    switch (scale_) {
      case ScaleFormat::fp32: scale_bits = 32; break;
      case ScaleFormat::fp16: case ScaleFormat::bf16: scale_bits = 16; break;
      case ScaleFormat::e8m0: case ScaleFormat::e4m3fn: case ScaleFormat::dq: scale_bits = 8; break;
    }
    if (granularity_ == Granularity::none) scale_bits = 0;
    double per_group = scale_bits + (element_.kind == ElementKind::int_zero_point ? element_bits() : 0);
    double constants = 0;
    if (scale_ == ScaleFormat::e4m3fn) constants += 32;
    if (scale_ == ScaleFormat::dq) constants += 32 * std::ceil(groups / 256.0) + 32;
    return (n * element_bits() + groups * per_group + constants) / n;
  }

  // CPU reference (kernels/cpu/quantize.cpp). x is row-major rows × cols.
  QuantizedTensor quantize(const float* x, std::size_t rows, std::size_t cols, QuantStats* stats = nullptr) const;
  void dequantize(const QuantizedTensor& q, float* out) const;
  // quantize then dequantize into out (out may equal x); identical to
  // dequantize(quantize(x)), multi-threaded, and the same on any thread count.
  void fake_quantize(const float* x, std::size_t rows, std::size_t cols, float* out,
                     QuantStats* stats = nullptr) const;

  friend Quantizer parse_quantizer(std::string_view name);

 private:
  std::string name_, element_name_;
  ElementFormat element_{};
  Granularity granularity_ = Granularity::none;
  std::size_t block_ = 0;
  ScaleFormat scale_ = ScaleFormat::fp32;
  EdgeMode edge_ = EdgeMode::exact;
};

namespace detail {

struct QuantizerAlias {
  std::string_view alias, expansion;
};
inline constexpr QuantizerAlias quantizer_aliases[] = {
    {"mxfp4", "e2m1fn@32:e8m0"},
    {"mxfp6", "e2m3fn@32:e8m0"},
    {"mxfp8", "e4m3fn@32:e8m0"},
    {"nvfp4", "e2m1fn@16:e4m3fn"},
};

// Edit distance counting insertions, deletions, substitutions and swaps of
// two adjacent characters (optimal string alignment): "e4m3nf" is one edit
// from "e4m3fn". The one implementation of name suggestions (the CLI's too).
inline std::size_t edit_distance(std::string_view a, std::string_view b) {
  const std::size_t n = b.size();
  std::vector<std::size_t> prev2(n + 1), prev(n + 1), cur(n + 1);
  for (std::size_t j = 0; j <= n; ++j) prev[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (std::size_t j = 1; j <= n; ++j) {
      const std::size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1]) cur[j] = std::min(cur[j], prev2[j - 2] + 1);
    }
    std::swap(prev2, prev);
    std::swap(prev, cur);
  }
  return prev[n];
}

inline bool parse_small_int(std::string_view s, int& out) {
  if (s.empty()) return false;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc{} && p == s.data() + s.size();
}

}  // namespace detail

// Every built-in name and alias (for `lowbit formats --list`), plus the
// scaled forms the literature uses.
inline std::vector<std::string> registry_names() {
  std::vector<std::string> names;
  for (const auto& m : named_minifloats) names.emplace_back(m.name);
  for (int k = 2; k <= 8; ++k) names.push_back("nf" + std::to_string(k));
  names.push_back("fp4-bnb");
  names.push_back("dyn8");
  for (int k = 2; k <= 8; ++k) names.push_back("int" + std::to_string(k));
  for (int k = 2; k <= 8; ++k) names.push_back("int" + std::to_string(k) + "-zp");
  for (const auto& a : detail::quantizer_aliases) names.emplace_back(a.alias);
  for (const char* s : {"nf4@64", "nf4@64+dq", "fp4-bnb@64", "fp4-bnb@64+dq", "nf3@64", "dyn8@256", "int8@row",
                        "int8@col", "int8-zp@tensor", "int4@128", "int4@64", "e4m3fn@tensor", "e5m2@tensor",
                        "e3m2fn@32:e8m0", "e5m2@32:e8m0"})
    names.emplace_back(s);
  return names;
}

namespace detail {

[[noreturn]] inline void unknown_name(std::string_view name, const std::string& why) {
  std::vector<std::pair<std::size_t, std::string>> scored;
  for (auto& n : registry_names()) scored.emplace_back(edit_distance(name, n), n);
  std::stable_sort(scored.begin(), scored.end(), [](auto& a, auto& b) { return a.first < b.first; });
  std::string msg = "unknown format '" + std::string(name) + "'";
  if (!why.empty()) msg += " (" + why + ")";
  msg += "; did you mean ";
  for (std::size_t i = 0; i < 3 && i < scored.size(); ++i) msg += (i ? ", " : "") + scored[i].second;
  msg += "? (`lowbit formats --list` lists all; scaled forms: ELEMENT@{tensor,row,col,B}[:{fp16,bf16,e8m0,e4m3fn}][+dq])";
  throw FormatError(msg);
}

// Element part of a name; sets kind, spec/codebook/int and the canonical element name.
inline void parse_element(std::string_view full, std::string_view s, ElementFormat& e, std::string& name) {
  if (s.rfind("table:", 0) == 0) {
    const std::string path(s.substr(6));
    if (path.empty()) throw FormatError("format '" + std::string(full) + "': table: needs a file path");
    e.kind = ElementKind::codebook;
    e.codebook = load_codebook(path);
    name = "table:" + path;
    return;
  }
  if (s == "fp4-bnb" || s == "fp4_bnb" || s == "bnb-fp4") {
    e.kind = ElementKind::codebook; e.codebook = fp4_bnb; name = "fp4-bnb"; return;
  }
  if (s == "dyn8" || s == "dynamic8") {
    e.kind = ElementKind::codebook; e.codebook = dyn8; name = "dyn8"; return;
  }
  int k = 0;
  if (s.rfind("nf", 0) == 0 && parse_small_int(s.substr(2), k)) {
    if (k < 2 || k > 8) unknown_name(full, "NF-k needs 2 <= k <= 8");
    e.kind = ElementKind::codebook;
    e.codebook = k == 4 ? nf4 : normal_float_codebook(k);
    name = "nf" + std::to_string(k);
    return;
  }
  if (s.rfind("int", 0) == 0) {
    std::string_view digits = s.substr(3);
    const bool zp = digits.size() > 3 && digits.substr(digits.size() - 3) == "-zp";
    if (zp) digits.remove_suffix(3);
    if (parse_small_int(digits, k)) {
      if (k < 2 || k > 8) unknown_name(full, "intK needs 2 <= K <= 8");
      e.kind = zp ? ElementKind::int_zero_point : ElementKind::int_symmetric;
      e.integer = IntFormat{k, zp};
      name = "int" + std::to_string(k) + (zp ? "-zp" : "");
      return;
    }
  }
  if (auto spec = find_minifloat(s)) {
    if (!spec->is_signed() && s != full)  // plain conversion to e8m0fnu is fine; scaling into it is not
      throw FormatError("format '" + std::string(full) + "': " + minifloat_name(*spec) +
                        " is unsigned (a scale format), not an element format");
    e.kind = ElementKind::minifloat;
    e.spec = *spec;
    name = minifloat_name(*spec);
    return;
  }
  unknown_name(full, "");
}

}  // namespace detail

// Parse a quantizer name (grammar above). Throws FormatError with the reason
// and the closest valid names.
inline Quantizer parse_quantizer(std::string_view name) {
  const std::string_view full = name;
  if (name.empty()) throw FormatError("empty format name; try `lowbit formats --list`");
  Quantizer q;
  std::string_view s = name;
  for (const auto& a : detail::quantizer_aliases)
    if (s == a.alias) s = a.expansion;

  auto strip_suffix = [&](std::string_view suffix) {
    if (s.size() > suffix.size() && s.substr(s.size() - suffix.size()) == suffix) {
      s.remove_suffix(suffix.size());
      return true;
    }
    return false;
  };
  const bool bnb = strip_suffix("~bnb");
  const bool dq = strip_suffix("+dq");

  const auto at = s.rfind('@');
  std::string_view element = s.substr(0, at);
  std::string_view gran, scale;
  if (at != std::string_view::npos) {
    gran = s.substr(at + 1);
    if (const auto colon = gran.find(':'); colon != std::string_view::npos) {
      scale = gran.substr(colon + 1);
      gran = gran.substr(0, colon);
    }
  }
  detail::parse_element(full, element, q.element_, q.element_name_);
  const bool minifloat = q.element_.kind == ElementKind::minifloat;

  // Granularity.
  if (at == std::string_view::npos) {
    q.granularity_ = minifloat ? Granularity::none : Granularity::tensor;
  } else if (gran == "tensor") {
    q.granularity_ = Granularity::tensor;
  } else if (gran == "row") {
    q.granularity_ = Granularity::row;
  } else if (gran == "col") {
    q.granularity_ = Granularity::col;
  } else {
    int b = 0;
    if (!detail::parse_small_int(gran, b))
      throw FormatError("format '" + std::string(full) + "': granularity '" + std::string(gran) +
                        "' is not tensor, row, col or a block size");
    if (b < 2) throw FormatError("format '" + std::string(full) + "': block size must be >= 2, got " + std::to_string(b));
    q.granularity_ = Granularity::block;
    q.block_ = static_cast<std::size_t>(b);
  }

  // Scale format.
  if (scale.empty() || scale == "fp32" || scale == "float32") q.scale_ = ScaleFormat::fp32;
  else if (scale == "fp16" || scale == "half") q.scale_ = ScaleFormat::fp16;
  else if (scale == "bf16") q.scale_ = ScaleFormat::bf16;
  else if (scale == "e8m0" || scale == "e8m0fnu") q.scale_ = ScaleFormat::e8m0;
  else if (scale == "e4m3fn") q.scale_ = ScaleFormat::e4m3fn;
  else
    throw FormatError("format '" + std::string(full) + "': scale format '" + std::string(scale) +
                      "' is not one of fp32, fp16, bf16, e8m0, e4m3fn");
  if (dq) {
    if (q.scale_ != ScaleFormat::fp32)
      throw FormatError("format '" + std::string(full) + "': +dq double-quantizes fp32 scales; drop ':" +
                        std::string(scale) + "'");
    if (q.granularity_ == Granularity::none)
      throw FormatError("format '" + std::string(full) + "': +dq needs a granularity, e.g. @64");
    q.scale_ = ScaleFormat::dq;
  }
  if (q.element_.kind == ElementKind::int_zero_point &&
      (q.scale_ == ScaleFormat::e8m0 || q.scale_ == ScaleFormat::e4m3fn))
    throw FormatError("format '" + std::string(full) + "': zero-point integers take fp32/fp16/bf16 scales");
  if (bnb) {
    if (q.element_.kind != ElementKind::codebook || !(q.scale_ == ScaleFormat::fp32 || q.scale_ == ScaleFormat::dq) ||
        q.granularity_ == Granularity::none)
      throw FormatError("format '" + std::string(full) + "': ~bnb applies to codebooks with fp32 or +dq scales");
    q.edge_ = EdgeMode::bnb;
  }

  // Canonical name.
  std::string canon = q.element_name_;
  switch (q.granularity_) {
    case Granularity::none: break;
    case Granularity::tensor: canon += "@tensor"; break;
    case Granularity::row: canon += "@row"; break;
    case Granularity::col: canon += "@col"; break;
    case Granularity::block: canon += "@" + std::to_string(q.block_); break;
  }
  switch (q.scale_) {
    case ScaleFormat::fp32: break;
    case ScaleFormat::fp16: canon += ":fp16"; break;
    case ScaleFormat::bf16: canon += ":bf16"; break;
    case ScaleFormat::e8m0: canon += ":e8m0"; break;
    case ScaleFormat::e4m3fn: canon += ":e4m3fn"; break;
    case ScaleFormat::dq: canon += "+dq"; break;
  }
  if (q.edge_ == EdgeMode::bnb) canon += "~bnb";
  for (const auto& a : detail::quantizer_aliases)
    if (canon == a.expansion) canon = std::string(a.alias);
  q.name_ = canon;
  return q;
}

}  // namespace lowbit
