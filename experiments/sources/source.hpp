// experiments/sources/source.hpp — the --dist argument: a distribution or
// real weights, and the matrix shape of a sample.
//
//   --dist normal | normal:mu=0,sigma=2 | student-t:nu=3 | laplace | uniform
//          | lognormal | outliers:p=0.001,k=20 | outlier-cols:p=0.01,k=20
//          | weights:PATH[:GLOB]
//
// `weights:PATH[:GLOB]` selects tensors of a .safetensors / .npy / .h5 file
// by a shell glob (default '*'). The GLOB is what follows the last ':' when
// the text before it names an existing file; otherwise the whole rest is
// the path.
//
// Shape of a synthetic sample of n values: rows × cols, row-major, with
//   cols = the --cols option when given (n must then be a multiple of it),
//   else 4096 when it divides n (a typical hidden size), else the largest
//   divisor of n not above 4096 that is a multiple of 64 (so blocks of
//   16/32/64 and MX/NVFP4 blocks tile the rows), else the largest divisor
//   of n not above 4096. 4,000,000 samples are 1250 × 3200.
// Real tensors keep their own shape (tensors.hpp).
#pragma once

#include <cstddef>
#include <filesystem>
#include <string>
#include <string_view>
#include <utility>

#include "experiments/sources/distributions.hpp"

namespace lowbit::sources {

struct SourceSpec {
  std::string text;  // as given, trimmed — the `dist` column
  bool is_weights = false;
  Distribution dist;           // synthetic
  std::filesystem::path path;  // weights
  std::string glob = "*";      // weights
};

// Throws InputError (bad spec) — the file itself is opened later.
SourceSpec parse_source(std::string_view text);

// {rows, cols} of a synthetic sample of n values (see above). cols_option 0
// means automatic. Throws UsageError when n is 0 or not a multiple of cols_option.
std::pair<std::size_t, std::size_t> sample_shape(std::size_t n, std::size_t cols_option = 0);

}  // namespace lowbit::sources
