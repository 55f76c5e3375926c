// lowbit/formats/config.hpp — portability macros shared by every format header.
//
// Everything in formats/ compiles as plain C++20 (g++, clang) and as CUDA
// (nvcc): functions are marked LOWBIT_HD so kernels and host code call the
// very same conversion routines.
#pragma once

#include <cstdint>

#if defined(__CUDACC__)
#define LOWBIT_HD __host__ __device__
#define LOWBIT_FORCEINLINE __forceinline__
#else
#define LOWBIT_HD
#define LOWBIT_FORCEINLINE inline __attribute__((always_inline))
#endif

namespace lowbit {

// std::bit_cast is not callable from device code under every nvcc; the
// builtin is, and it is constexpr on g++ >= 11, clang and nvcc.
template <class To, class From>
LOWBIT_HD constexpr To bit_cast(const From& from) noexcept {
  static_assert(sizeof(To) == sizeof(From));
  return __builtin_bit_cast(To, from);
}

// Number of significant bits of v (0 for v == 0); constexpr on host and device.
LOWBIT_HD constexpr int bit_width(std::uint64_t v) noexcept {
  int n = 0;
  if (v >> 32) { n += 32; v >>= 32; }
  if (v >> 16) { n += 16; v >>= 16; }
  if (v >> 8) { n += 8; v >>= 8; }
  if (v >> 4) { n += 4; v >>= 4; }
  if (v >> 2) { n += 2; v >>= 2; }
  if (v >> 1) { n += 1; v >>= 1; }
  return n + static_cast<int>(v);
}

// Exact 2^e as a double for -1074 <= e <= 1023, built from the bit pattern so
// that it is constexpr (std::ldexp is not).
LOWBIT_HD constexpr double pow2(int e) noexcept {
  if (e >= -1022) return bit_cast<double>(static_cast<std::uint64_t>(e + 1023) << 52);
  return bit_cast<double>(std::uint64_t{1} << (e + 1074));  // binary64 subnormal
}

}  // namespace lowbit
