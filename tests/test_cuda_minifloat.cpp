// GPU minifloat conversion == CPU reference, bit for bit, for every named
// ≤ 8-bit format, every rounding mode (stochastic with the same random bits)
// and both overflow policies. Runs on the GPU machine; skips without a GPU.
#include <gtest/gtest.h>

#include "lowbit/formats/minifloat_names.hpp"
#include "support/oracle_inputs.hpp"

#ifndef LOWBIT_HAVE_CUDA
TEST(CudaMinifloat, Skipped) { GTEST_SKIP() << "built without CUDA: GPU tests skipped"; }
#else
#include <cuda_runtime.h>

#include "kernels/cuda/minifloat_convert.cuh"
#include "support/cuda_test_util.hpp"

namespace {
using namespace lowbit;

using test::have_gpu;

std::uint64_t splitmix64(std::uint64_t x) {  // the kernel's generator, restated
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}


TEST(CudaMinifloat, EncodeDecodeEqualsCpuBitForBit) {
  if (!have_gpu()) GTEST_SKIP() << "no CUDA device: GPU tests skipped";
  for (const auto& named : named_minifloats) {
    const FormatSpec& s = named.spec;
    if (s.total_bits() > 8) continue;
    auto xs = test::boundary_inputs(s);
    const auto rnd = test::random_inputs(1 << 20, 5, std::sqrt(s.max_finite() * s.min_positive()));
    xs.insert(xs.end(), rnd.begin(), rnd.end());
    const std::size_t n = xs.size();
    float* d_in = nullptr;
    std::uint8_t* d_codes = nullptr;
    float* d_out = nullptr;
    CUDA_OK(cudaMalloc(&d_in, n * sizeof(float)));
    CUDA_OK(cudaMalloc(&d_codes, n));
    CUDA_OK(cudaMalloc(&d_out, n * sizeof(float)));
    CUDA_OK(cudaMemcpy(d_in, xs.data(), n * sizeof(float), cudaMemcpyHostToDevice));
    for (Rounding r : {Rounding::nearest_even, Rounding::nearest_away, Rounding::toward_zero,
                       Rounding::away_from_zero, Rounding::stochastic}) {
      for (Overflow ov : {Overflow::saturate, Overflow::special}) {
        const ConvertOptions o{.rounding = r, .overflow = ov};
        const std::uint64_t seed = 42;
        CUDA_OK(cudaMemset(d_codes, 0xA5, n));  // poison: every element must be written
        CUDA_OK(cuda::encode_u8(s, d_in, d_codes, n, o, seed));
        CUDA_OK(cuda::decode_u8(s, d_codes, d_out, n));
        std::vector<std::uint8_t> codes(n);
        std::vector<float> out(n);
        CUDA_OK(cudaMemcpy(codes.data(), d_codes, n, cudaMemcpyDeviceToHost));
        CUDA_OK(cudaMemcpy(out.data(), d_out, n * sizeof(float), cudaMemcpyDeviceToHost));
        std::size_t bad = 0;
        for (std::size_t i = 0; i < n; ++i) {
          const auto bits = static_cast<std::uint32_t>(splitmix64(seed ^ i) >> 32);
          const std::uint32_t want = encode(s, xs[i], o, bits);
          const float want_value = decode<float>(s, want);
          const bool same_value = bit_cast<std::uint32_t>(want_value) == bit_cast<std::uint32_t>(out[i]) ||
                                  (std::isnan(want_value) && std::isnan(out[i]));
          if ((codes[i] != want || !same_value) && ++bad <= 3)
            ADD_FAILURE() << named.name << " x=" << xs[i] << " gpu 0x" << std::hex << int(codes[i]) << " cpu 0x" << want;
        }
        EXPECT_EQ(bad, 0u) << named.name;
      }
    }
    cudaFree(d_in);
    cudaFree(d_codes);
    cudaFree(d_out);
  }
}

}  // namespace
#endif
