// experiments/harness/format_lookup.hpp — format names as the CLI sees them.
//
// known_formats() is the one list behind `lowbit formats --list` and every
// "did you mean" for a format name: the named minifloats, then the rest of
// the registry (lowbit/formats/registry.hpp: codebooks, integers, scaled
// forms).
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "lowbit/formats/format_spec.hpp"

namespace lowbit::harness {

struct FormatListing {
  std::string name;
  std::string kind;  // "minifloat", "codebook", "integer", "scaled"
  std::string description;
};

std::vector<FormatListing> known_formats();
std::vector<std::string> known_format_names();

// The minifloat spelled `name` (a named format, an alias such as float16, or
// any eXmY[bB][fn|fnuz|fnu|fin|ieee]). Throws UsageError for an unknown
// name, with the closest known name, and lowbit::FormatError for a
// malformed eXmY (both exit 2).
FormatSpec minifloat_or_error(std::string_view name);

}  // namespace lowbit::harness
