// kernels/cuda/minifloat_convert.cuh — elementwise fp32 → minifloat codes
// and back on the GPU, from the same __host__ __device__ encode/decode as the
// CPU (formats/minifloat.hpp). CPU reference: lowbit::encode / decode in a loop.
#pragma once

#include <cstddef>
#include <cstdint>

#include "lowbit/formats/minifloat.hpp"

namespace lowbit::cuda {

// Encodes n fp32 values to codes of `spec` (one code per uint8 for formats
// of at most 8 bits). Stochastic rounding draws its random bits from
// splitmix64(seed ^ index), so results do not depend on the launch shape.
// Returns the CUDA error of the launch (cudaSuccess = 0).
int encode_u8(const FormatSpec& spec, const float* d_in, std::uint8_t* d_out, std::size_t n,
              const ConvertOptions& options, std::uint64_t seed, void* stream = nullptr);

// Decodes n codes of `spec` to fp32.
int decode_u8(const FormatSpec& spec, const std::uint8_t* d_in, float* d_out, std::size_t n, void* stream = nullptr);

}  // namespace lowbit::cuda
