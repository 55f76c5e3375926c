// lowbit/formats/minifloat_names.hpp — minifloat names at run time.
//
// Named formats follow ml_dtypes and the OCP specs. Any other minifloat is
// spelled `eXmY[bB][fn|fnuz|fnu]`:
//   e4m3        E4M3, standard bias, IEEE-style (inf + NaN) for >= 8-bit
//               formats, every code finite for narrower ones (as OCP FP6/FP4)
//   e4m3b11fnuz explicit bias 11, fnuz policy
//   e5m2fn      fn: no inf, all-ones is NaN (for < 8 bits ml_dtypes' "fn"
//               means every code finite, and so it does here)
//   e8m0fnu     unsigned exponent-only scale
//   e4m3fin     every code finite; e2m1ieee: IEEE-style at any width
// Host-only (std::string); the specs it returns are usable anywhere.
#pragma once

#include <array>
#include <charconv>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>

#include "lowbit/formats/minifloats.hpp"

namespace lowbit {

// An unknown or malformed format name; the message is one line and says
// what would have been valid.
struct FormatError : std::invalid_argument {
  using std::invalid_argument::invalid_argument;
};

struct NamedMinifloat {
  std::string_view name;
  FormatSpec spec;
  std::string_view description;
};

inline constexpr std::array<NamedMinifloat, 16> named_minifloats{{
    {"e4m3fn", e4m3fn, "OCP FP8 E4M3 (forward pass), no inf"},
    {"e5m2", e5m2, "OCP FP8 E5M2 (gradients), IEEE-style"},
    {"e4m3fnuz", e4m3fnuz, "FP8 E4M3, bias 8, no -0, one NaN"},
    {"e5m2fnuz", e5m2fnuz, "FP8 E5M2, bias 16, no -0, one NaN"},
    {"e4m3", e4m3, "FP8 E4M3, IEEE-style with inf"},
    {"e3m4", e3m4, "FP8 E3M4, IEEE-style"},
    {"e2m3fn", e2m3fn, "OCP MX FP6 E2M3"},
    {"e3m2fn", e3m2fn, "OCP MX FP6 E3M2"},
    {"e2m1fn", e2m1fn, "OCP MX FP4 E2M1"},
    {"e3m0", e3m0, "FP4 E3M0 (powers of two)"},
    {"e1m2", e1m2, "FP4 E1M2 (int-like)"},
    {"e8m0fnu", e8m0fnu, "OCP MX E8M0 scale"},
    {"fp16", fp16, "IEEE binary16"},
    {"bf16", bf16, "bfloat16"},
    {"tf32", tf32, "TensorFloat-32 (19 bits)"},
    {"fp32", fp32, "IEEE binary32"},
}};

namespace detail {
inline bool parse_int(std::string_view& s, int& out) {
  const auto* end = s.data() + s.size();
  auto [p, ec] = std::from_chars(s.data(), end, out);
  if (ec != std::errc{} || p == s.data()) return false;
  s.remove_prefix(static_cast<std::size_t>(p - s.data()));
  return true;
}
}  // namespace detail

// The spec for a name, or nullopt if the name is not a minifloat. Throws
// FormatError for a name that is a minifloat spelling but an invalid spec
// (e.g. e12m3), with the reason.
inline std::optional<FormatSpec> find_minifloat(std::string_view name) {
  for (const auto& n : named_minifloats)
    if (n.name == name) return n.spec;
  if (name == "half" || name == "float16") return fp16;
  if (name == "bfloat16") return bf16;
  if (name == "float32" || name == "float") return fp32;
  if (name == "e8m0") return e8m0fnu;
  if (name.size() < 4 || name[0] != 'e') return std::nullopt;
  std::string_view rest = name.substr(1);
  int e = 0, m = 0;
  if (!detail::parse_int(rest, e) || rest.empty() || rest[0] != 'm') return std::nullopt;
  rest.remove_prefix(1);
  if (!detail::parse_int(rest, m)) return std::nullopt;
  std::optional<int> bias;
  if (!rest.empty() && rest[0] == 'b') {
    rest.remove_prefix(1);
    int b = 0;
    if (!detail::parse_int(rest, b)) return std::nullopt;
    bias = b;
  }
  FormatSpec s{.exp_bits = e, .man_bits = m};
  const bool byte_or_wider = 1 + e + m >= 8;
  if (rest.empty()) s.special = byte_or_wider ? Special::ieee : Special::finite;
  else if (rest == "fn") s.special = byte_or_wider ? Special::fn : Special::finite;
  else if (rest == "fnuz") s.special = Special::fnuz;
  else if (rest == "fnu") s.special = Special::unsigned_scale;
  else if (rest == "fin") s.special = Special::finite;  // every code finite, any width
  else if (rest == "ieee") s.special = Special::ieee;   // inf + NaN, any width
  else return std::nullopt;
  if (e < 1 || e > 11) throw FormatError("format '" + std::string(name) + "': exponent bits must be 1..11");
  s.bias = bias ? *bias : standard_bias(e, s.special);
  if (const char* why = spec_error(s)) throw FormatError("format '" + std::string(name) + "': " + why);
  return s;
}

// Canonical name: the named format's name, else eXmY with bias and policy
// suffixes as needed to read back the same spec.
inline std::string minifloat_name(const FormatSpec& s) {
  for (const auto& n : named_minifloats)
    if (n.spec == s) return std::string(n.name);
  std::string name = "e" + std::to_string(s.exp_bits) + "m" + std::to_string(s.man_bits);
  if (s.bias != standard_bias(s.exp_bits, s.special)) name += "b" + std::to_string(s.bias);
  const bool byte_or_wider = s.total_bits() >= 8;
  switch (s.special) {
    case Special::ieee: name += byte_or_wider ? "" : "ieee"; break;
    case Special::fn: name += "fn"; break;
    case Special::finite: name += byte_or_wider ? "fin" : ""; break;
    case Special::fnuz: name += "fnuz"; break;
    case Special::unsigned_scale: name += "fnu"; break;
  }
  return name;
}

}  // namespace lowbit
