// experiments/sources/random.hpp — counter-based random numbers and seeds.
//
// Every random value lowbit generates is a pure function of (key, index):
// value i of a data set depends on nothing but the data set's key and i, so
// the same seed gives the same data on any machine, with any number of
// threads, in any order of evaluation, and a shard of a sweep computes
// exactly the numbers the whole sweep would.
//
//   key     = derive_seed(run_seed, "<canonical cell parameters>")
//   stream  = Stream(key, i)       an independent splitmix64 sequence for
//                                  index i (pair of values, column, ...)
//
// splitmix64 (Steele, Lea, Flood 2014; the seeding generator of
// xoshiro) passes BigCrush; Stream(key, i) starts it from mix64(key ^
// mix64(i)), so neighbouring indices start from unrelated states.
#pragma once

#include <cmath>
#include <cstdint>
#include <string_view>

#include "experiments/harness/random.hpp"

namespace lowbit::sources {

// The splitmix64 output function: a bijective 64-bit mixer (the one in
// harness/random.hpp).
constexpr std::uint64_t mix64(std::uint64_t z) { return harness::splitmix64_mix(z); }

// FNV-1a over the bytes of `text`, then mixed: a stable 64-bit hash (the
// same on every platform and compiler, unlike std::hash).
constexpr std::uint64_t hash_text(std::string_view text) {
  std::uint64_t h = 0xCBF29CE484222325ull;
  for (char c : text) {
    h ^= static_cast<unsigned char>(c);
    h *= 0x100000001B3ull;
  }
  return mix64(h);
}

// The seed of one cell: a function of the run seed and the text that names
// the cell's parameters (its canonical description), never of its position
// in the grid or the shard it runs in.
constexpr std::uint64_t derive_seed(std::uint64_t run_seed, std::string_view cell_parameters) {
  return mix64(mix64(run_seed + 0x9E3779B97F4A7C15ull) ^ hash_text(cell_parameters));
}

// A splitmix64 sequence started at (key, index).
class Stream {
 public:
  constexpr Stream(std::uint64_t key, std::uint64_t index) : state_(mix64(key ^ mix64(index + 0x632BE59BD9B4E019ull))) {}

  constexpr std::uint64_t next() {
    state_ += 0x9E3779B97F4A7C15ull;
    return mix64(state_);
  }
  // Uniform on the open interval (0, 1): 53 random bits, never 0 or 1.
  double uniform() { return (static_cast<double>(next() >> 11) + 0.5) * 0x1.0p-53; }
  // Uniform on (-1, 1).
  double symmetric() { return 2.0 * uniform() - 1.0; }
  // Two independent N(0, 1) values (Box–Muller).
  void normal_pair(double& a, double& b) {
    const double r = std::sqrt(-2.0 * std::log(uniform()));
    const double t = 6.283185307179586476925 * uniform();
    a = r * std::cos(t);
    b = r * std::sin(t);
  }

 private:
  std::uint64_t state_;
};

}  // namespace lowbit::sources
