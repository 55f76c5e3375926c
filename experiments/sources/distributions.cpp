// experiments/sources/distributions.cpp — see distributions.hpp.
#include "experiments/sources/distributions.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <limits>
#include <vector>

#include "experiments/harness/cli.hpp"
#include "experiments/harness/errors.hpp"
#include "experiments/sources/random.hpp"

namespace lowbit::sources {
namespace {

using harness::InputError;

struct Kind {
  const char* name;
  std::vector<std::pair<const char*, double>> defaults;
};

const std::vector<Kind>& kinds() {
  static const std::vector<Kind> k = {
      {"normal", {{"mu", 0.0}, {"sigma", 1.0}}},
      {"uniform", {{"lo", -1.0}, {"hi", 1.0}}},
      {"laplace", {{"mu", 0.0}, {"b", 1.0}}},
      {"student-t", {{"nu", 3.0}}},
      {"lognormal", {{"mu", 0.0}, {"sigma", 1.0}}},
      {"outliers", {{"p", 0.001}, {"k", 20.0}}},
      {"outlier-cols", {{"p", 0.01}, {"k", 20.0}}},
  };
  return k;
}

std::string trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return std::string(s);
}

double parse_number(std::string_view text, std::string_view what) {
  const std::string t = trim(text);
  double v = 0;
  const auto [ptr, ec] = std::from_chars(t.data(), t.data() + t.size(), v);
  if (t.empty() || ec != std::errc() || ptr != t.data() + t.size() || !std::isfinite(v))
    throw InputError(fmt::format("{}: '{}' is not a finite number", what, t));
  return v;
}

void check(bool ok, const Distribution& d, const char* rule) {
  if (!ok) throw InputError(fmt::format("distribution '{}': parameters must satisfy {}", d.canonical(), rule));
}

// Student's t by Bailey's polar method (Bailey 1994): exact for any nu > 0.
double student_t(Stream& s, double nu) {
  for (;;) {
    const double u = s.symmetric(), v = s.symmetric();
    const double w = u * u + v * v;
    if (w >= 1.0 || w == 0.0) continue;
    return u * std::sqrt(nu * (std::pow(w, -2.0 / nu) - 1.0) / w);
  }
}

double laplace(Stream& s, double mu, double b) {
  const double u = s.uniform() - 0.5;  // (-0.5, 0.5), never ±0.5
  return mu - b * (u < 0 ? -1.0 : 1.0) * std::log1p(-2.0 * std::fabs(u));
}

}  // namespace

const std::vector<std::string>& distribution_names() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> n;
    for (const auto& k : kinds()) n.emplace_back(k.name);
    return n;
  }();
  return names;
}

std::string Distribution::canonical() const {
  std::string out = name;
  char sep = ':';
  for (const auto& [k, v] : params) {
    out += fmt::format("{}{}={}", sep, k, v);
    sep = ',';
  }
  return out;
}

Distribution parse_distribution(std::string_view spec) {
  const std::string text = trim(spec);
  const auto colon = text.find(':');
  Distribution d;
  d.name = trim(std::string_view(text).substr(0, colon));
  const auto kind = std::find_if(kinds().begin(), kinds().end(), [&](const Kind& k) { return d.name == k.name; });
  if (d.name.empty() || kind == kinds().end()) {
    std::vector<std::string> all = distribution_names();
    all.push_back("weights");
    throw InputError(fmt::format("unknown distribution '{}'{}; known: normal, uniform, laplace, student-t, lognormal, "
                                 "outliers, outlier-cols, weights:PATH[:GLOB]",
                                 d.name, harness::did_you_mean(d.name, all)));
  }
  for (const auto& [k, v] : kind->defaults) d.params[k] = v;
  if (colon != std::string::npos) {
    std::vector<std::string> seen;
    const std::string rest = text.substr(colon + 1);
    std::size_t pos = 0;
    while (pos <= rest.size()) {
      const auto comma = std::min(rest.find(',', pos), rest.size());
      const std::string item = trim(std::string_view(rest).substr(pos, comma - pos));
      pos = comma + 1;
      if (item.empty()) throw InputError(fmt::format("distribution '{}': empty parameter", text));
      const auto eq = item.find('=');
      if (eq == std::string::npos)
        throw InputError(fmt::format("distribution '{}': parameter '{}' is not of the form name=value", text, item));
      const std::string key = trim(std::string_view(item).substr(0, eq));
      std::vector<std::string> keys;
      for (const auto& [k, v] : kind->defaults) keys.emplace_back(k);
      if (!d.params.count(key))
        throw InputError(fmt::format("distribution '{}': unknown parameter '{}'{} (parameters of {}: {})", text, key,
                                     harness::did_you_mean(key, keys), d.name, fmt::join(keys, ", ")));
      if (std::find(seen.begin(), seen.end(), key) != seen.end())
        throw InputError(fmt::format("distribution '{}': parameter '{}' given twice", text, key));
      seen.push_back(key);
      d.params[key] = parse_number(std::string_view(item).substr(eq + 1), fmt::format("distribution '{}', {}", text, key));
    }
  }
  if (d.name == "normal" || d.name == "lognormal") check(d.param("sigma") > 0, d, "sigma > 0");
  if (d.name == "uniform") check(d.param("hi") > d.param("lo"), d, "hi > lo");
  if (d.name == "laplace") check(d.param("b") > 0, d, "b > 0");
  if (d.name == "student-t") check(d.param("nu") > 0, d, "nu > 0");
  if (d.name == "outliers" || d.name == "outlier-cols")
    check(d.param("p") >= 0 && d.param("p") <= 1 && d.param("k") > 0, d, "0 <= p <= 1 and k > 0");
  return d;
}

void generate(const Distribution& d, std::uint64_t key, std::size_t rows, std::size_t cols, float* out) {
  const std::size_t n = rows * cols;
  const std::size_t pairs = (n + 1) / 2;
  enum { NORMAL, UNIFORM, LAPLACE, STUDENT, LOGNORMAL, OUTLIERS, OUTLIER_COLS } kind = NORMAL;
  if (d.name == "uniform") kind = UNIFORM;
  else if (d.name == "laplace") kind = LAPLACE;
  else if (d.name == "student-t") kind = STUDENT;
  else if (d.name == "lognormal") kind = LOGNORMAL;
  else if (d.name == "outliers") kind = OUTLIERS;
  else if (d.name == "outlier-cols") kind = OUTLIER_COLS;
  double a = 0, b = 1;
  if (kind == NORMAL || kind == LOGNORMAL) a = d.param("mu"), b = d.param("sigma");
  if (kind == UNIFORM) a = d.param("lo"), b = d.param("hi");
  if (kind == LAPLACE) a = d.param("mu"), b = d.param("b");
  if (kind == STUDENT) a = d.param("nu");
  if (kind == OUTLIERS || kind == OUTLIER_COLS) a = d.param("p"), b = d.param("k");

  const std::int64_t np = static_cast<std::int64_t>(pairs);
#pragma omp parallel for schedule(static)
  for (std::int64_t j = 0; j < np; ++j) {
    Stream s(key, static_cast<std::uint64_t>(j));
    double v[2] = {0, 0};
    switch (kind) {
      case NORMAL: s.normal_pair(v[0], v[1]); v[0] = a + b * v[0]; v[1] = a + b * v[1]; break;
      case LOGNORMAL: s.normal_pair(v[0], v[1]); v[0] = std::exp(a + b * v[0]); v[1] = std::exp(a + b * v[1]); break;
      case UNIFORM: v[0] = a + (b - a) * s.uniform(); v[1] = a + (b - a) * s.uniform(); break;
      case LAPLACE: v[0] = laplace(s, a, b); v[1] = laplace(s, a, b); break;
      case STUDENT: v[0] = student_t(s, a); v[1] = student_t(s, a); break;
      case OUTLIERS:
        s.normal_pair(v[0], v[1]);
        if (s.uniform() < a) v[0] *= b;
        if (s.uniform() < a) v[1] *= b;
        break;
      case OUTLIER_COLS: s.normal_pair(v[0], v[1]); break;
    }
    const std::size_t i = 2 * static_cast<std::size_t>(j);
    out[i] = static_cast<float>(v[0]);
    if (i + 1 < n) out[i + 1] = static_cast<float>(v[1]);
  }
  if (kind == OUTLIER_COLS) {
    const std::uint64_t col_key = key ^ 0xC01D'C01D'C01D'C01Dull;
    for (std::size_t c = 0; c < cols; ++c) {
      Stream s(col_key, c);
      if (!(s.uniform() < a)) continue;
      for (std::size_t r = 0; r < rows; ++r) out[r * cols + c] = static_cast<float>(b * out[r * cols + c]);
    }
  }
}

}  // namespace lowbit::sources
