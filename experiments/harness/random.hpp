// experiments/harness/random.hpp — counter-based random bits.
//
// counter_random(seed, i) is the i-th output (i = 0, 1, ...) of SplitMix64
// (Steele, Lea & Flood 2014) started from state `seed`:
//   z = seed + (i + 1) * 0x9E3779B97F4A7C15, then the SplitMix64 finaliser.
// Random access by index makes results reproducible and independent of how
// elements are split across threads or shards.
#pragma once

#include <cstdint>

namespace lowbit::harness {

constexpr std::uint64_t splitmix64_mix(std::uint64_t z) {
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

constexpr std::uint64_t counter_random(std::uint64_t seed, std::uint64_t index) {
  return splitmix64_mix(seed + (index + 1) * 0x9E3779B97F4A7C15ull);
}

// 32 random bits for stochastic rounding of element `index`: the high half.
constexpr std::uint32_t stochastic_bits(std::uint64_t seed, std::uint64_t index) {
  return static_cast<std::uint32_t>(counter_random(seed, index) >> 32);
}

}  // namespace lowbit::harness
