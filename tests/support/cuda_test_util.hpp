// tests/support/cuda_test_util.hpp — what every GPU test needs: whether a
// CUDA device is there (tests skip without one), a checked-call assertion and
// a device buffer that poisons its bytes, so that a kernel that leaves an
// output unwritten is caught by the comparison.
#pragma once

#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <cstddef>
#include <vector>

namespace lowbit::test {

inline bool have_gpu() {
  int n = 0;
  const bool ok = cudaGetDeviceCount(&n) == cudaSuccess && n > 0;
  cudaGetLastError();  // a failed query must not leak into the first checked call
  return ok;
}

// Device memory for count Ts, filled with 0xA5 bytes; p is null for count 0
// (an absent array) and when the allocation failed (the tests check).
template <class T>
struct Dev {
  T* p = nullptr;
  std::size_t n = 0;
  explicit Dev(std::size_t count) : n(count) {
    if (count && cudaMalloc(&p, count * sizeof(T)) != cudaSuccess) p = nullptr;
    poison();
  }
  Dev(const Dev&) = delete;
  Dev& operator=(const Dev&) = delete;
  ~Dev() { cudaFree(p); }
  void up(const void* h) const {
    if (n) cudaMemcpy(p, h, n * sizeof(T), cudaMemcpyHostToDevice);
  }
  std::vector<T> down() const {
    std::vector<T> h(n);
    if (n) cudaMemcpy(h.data(), p, n * sizeof(T), cudaMemcpyDeviceToHost);
    return h;
  }
  void poison() const {
    if (p) cudaMemset(p, 0xA5, n * sizeof(T));
  }
};

}  // namespace lowbit::test

// ASSERT that a CUDA call (or a lowbit::cuda function returning a cudaError_t as int) succeeded.
#define CUDA_OK(call)                                  \
  ASSERT_EQ(static_cast<int>(call), 0) << #call << ": " \
                                       << cudaGetErrorString(static_cast<cudaError_t>(call))
