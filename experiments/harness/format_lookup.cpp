#include "experiments/harness/format_lookup.hpp"

#include "experiments/harness/cli.hpp"
#include "experiments/harness/errors.hpp"
#include "lowbit/formats/minifloat_names.hpp"
#include "lowbit/formats/registry.hpp"

namespace lowbit::harness {

std::vector<FormatListing> known_formats() {
  std::vector<FormatListing> out;
  for (const auto& n : named_minifloats) out.push_back({std::string(n.name), "minifloat", std::string(n.description)});
  // Then the rest of the registry: codebooks, integers and scaled forms.
  for (const auto& name : registry_names()) {
    if (find_minifloat(name)) continue;
    const Quantizer q = parse_quantizer(name);
    const ElementKind k = q.element().kind;
    const char* kind = q.granularity() == Granularity::tensor && name.find('@') == std::string::npos
                           ? (k == ElementKind::codebook ? "codebook" : "integer")
                           : "scaled";
    out.push_back({name, kind, q.name() == name ? "" : "= " + q.name()});
  }
  return out;
}

std::vector<std::string> known_format_names() {
  std::vector<std::string> names;
  for (const auto& f : known_formats()) names.push_back(f.name);
  return names;
}

FormatSpec minifloat_or_error(std::string_view name) {
  if (auto spec = find_minifloat(name)) return *spec;
  throw UsageError("unknown format '" + std::string(name) + "'" + did_you_mean(name, known_format_names()) +
                   "; 'lowbit formats --list' lists them, and any eXmY spells a minifloat");
}

}  // namespace lowbit::harness
