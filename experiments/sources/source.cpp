// experiments/sources/source.cpp — see source.hpp.
#include "experiments/sources/source.hpp"

#include <fmt/format.h>

#include "experiments/harness/errors.hpp"

namespace lowbit::sources {

SourceSpec parse_source(std::string_view text_in) {
  std::string_view t = text_in;
  while (!t.empty() && std::isspace(static_cast<unsigned char>(t.front()))) t.remove_prefix(1);
  while (!t.empty() && std::isspace(static_cast<unsigned char>(t.back()))) t.remove_suffix(1);
  SourceSpec s;
  s.text = std::string(t);
  constexpr std::string_view prefix = "weights";
  if (t.substr(0, prefix.size()) == prefix && (t.size() == prefix.size() || t[prefix.size()] == ':')) {
    s.is_weights = true;
    std::string rest = t.size() > prefix.size() ? std::string(t.substr(prefix.size() + 1)) : std::string();
    if (rest.empty()) throw harness::InputError(fmt::format("--dist '{}': give the file, weights:PATH[:GLOB]", s.text));
    const auto colon = rest.rfind(':');
    std::error_code ec;
    if (colon != std::string::npos && std::filesystem::is_regular_file(rest.substr(0, colon), ec)) {
      s.path = rest.substr(0, colon);
      s.glob = rest.substr(colon + 1);
      if (s.glob.empty()) throw harness::InputError(fmt::format("--dist '{}': empty tensor glob after ':'", s.text));
    } else {
      s.path = rest;
    }
    return s;
  }
  s.dist = parse_distribution(t);
  return s;
}

std::pair<std::size_t, std::size_t> sample_shape(std::size_t n, std::size_t cols_option) {
  if (n == 0) throw harness::UsageError("--samples must be positive");
  if (cols_option != 0) {
    if (n % cols_option != 0)
      throw harness::UsageError(fmt::format("--samples {} is not a multiple of --cols {}", n, cols_option));
    return {n / cols_option, cols_option};
  }
  constexpr std::size_t preferred = 4096;
  if (n % preferred == 0) return {n / preferred, preferred};
  std::size_t best64 = 0, best = 1;
  for (std::size_t c = std::min(n, preferred); c >= 1; --c) {
    if (n % c != 0) continue;
    if (best == 1) best = c;
    if (c % 64 == 0) {
      best64 = c;
      break;
    }
  }
  const std::size_t cols = best64 ? best64 : best;
  return {n / cols, cols};
}

}  // namespace lowbit::sources
