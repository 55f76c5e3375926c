// experiments/sources/distributions.hpp — seeded synthetic data.
//
// A distribution is named by a spec string, as on the command line:
//
//   normal                       N(mu, sigma²); params mu=0, sigma=1
//   uniform                      U(lo, hi); lo=-1, hi=1
//   laplace                      Laplace(mu, b); mu=0, b=1
//   student-t                    Student's t with nu degrees of freedom; nu=3
//   lognormal                    exp(N(mu, sigma²)); mu=0, sigma=1
//   outliers                     N(0,1) where each value, with probability p,
//                                is multiplied by k; p=0.001, k=20
//   outlier-cols                 N(0,1) where each column of the sample
//                                matrix, with probability p, is multiplied by
//                                k (LLM activation outliers); p=0.01, k=20
//
// Parameters follow a colon, comma-separated: `normal:mu=0,sigma=2`,
// `student-t:nu=3`, `outliers:p=0.001,k=20`. Unknown names, unknown or
// repeated parameters, non-numbers and out-of-range values (sigma <= 0,
// nu <= 0, p outside [0,1], hi <= lo, ...) throw InputError with one line.
//
// Values are generated in pairs: pair j (elements 2j, 2j+1) comes from
// Stream(key, j), so element i is a function of (key, i) alone (see
// random.hpp). Column outliers use Stream(key ^ column-salt, column).
// Values are computed in double and rounded once to float.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace lowbit::sources {

struct Distribution {
  std::string name;                      // "normal", "student-t", ...
  std::map<std::string, double> params;  // every parameter, defaults filled in

  // "normal:mu=0,sigma=1" — every parameter, sorted, shortest round-trip
  // decimal; the text cell seeds are derived from.
  std::string canonical() const;
  double param(const std::string& key) const { return params.at(key); }
};

// Parse a spec (see above). Throws InputError.
Distribution parse_distribution(std::string_view spec);

// The distribution names, for suggestions.
const std::vector<std::string>& distribution_names();

// Fill out[0, rows*cols) with the values of the rows × cols sample matrix
// (row-major) for `key`. Multi-threaded; the result is the same for any
// number of threads.
void generate(const Distribution& d, std::uint64_t key, std::size_t rows, std::size_t cols, float* out);

}  // namespace lowbit::sources
