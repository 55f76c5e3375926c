// experiments/harness/format_lookup.hpp — format names as the CLI sees them.
//
// known_formats() is the one list behind `lowbit formats --list` and every
// "did you mean" for a format name. Today it lists the named minifloats;
// when the run-time registry of codebooks and scaled formats lands, only
// this function's body changes.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "lowbit/formats/format_spec.hpp"

namespace lowbit::harness {

struct FormatListing {
  std::string name;
  std::string kind;  // "minifloat", later "codebook", "integer", "scaled"
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
