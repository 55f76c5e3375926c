// kernels/cuda/minifloat_convert.cu — see minifloat_convert.cuh.
#include "kernels/cuda/minifloat_convert.cuh"

#include <cuda_runtime.h>

namespace lowbit::cuda {
namespace {

__host__ __device__ inline std::uint64_t splitmix64(std::uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

__global__ void encode_u8_kernel(FormatSpec spec, const float* __restrict__ in, std::uint8_t* __restrict__ out,
                                 std::size_t n, ConvertOptions options, std::uint64_t seed) {
  for (std::size_t i = blockIdx.x * std::size_t{blockDim.x} + threadIdx.x; i < n;
       i += std::size_t{gridDim.x} * blockDim.x) {
    const auto bits = static_cast<std::uint32_t>(splitmix64(seed ^ i) >> 32);
    out[i] = static_cast<std::uint8_t>(encode(spec, in[i], options, bits));
  }
}

__global__ void decode_u8_kernel(FormatSpec spec, const std::uint8_t* __restrict__ in, float* __restrict__ out,
                                 std::size_t n) {
  for (std::size_t i = blockIdx.x * std::size_t{blockDim.x} + threadIdx.x; i < n;
       i += std::size_t{gridDim.x} * blockDim.x)
    out[i] = decode<float>(spec, in[i]);
}

unsigned grid_for(std::size_t n) {
  const std::size_t blocks = (n + 255) / 256;
  return static_cast<unsigned>(blocks < 65535 * 8 ? (blocks ? blocks : 1) : 65535 * 8);
}

}  // namespace

int encode_u8(const FormatSpec& spec, const float* d_in, std::uint8_t* d_out, std::size_t n,
              const ConvertOptions& options, std::uint64_t seed, void* stream) {
  encode_u8_kernel<<<grid_for(n), 256, 0, static_cast<cudaStream_t>(stream)>>>(spec, d_in, d_out, n, options, seed);
  return static_cast<int>(cudaGetLastError());
}

int decode_u8(const FormatSpec& spec, const std::uint8_t* d_in, float* d_out, std::size_t n, void* stream) {
  decode_u8_kernel<<<grid_for(n), 256, 0, static_cast<cudaStream_t>(stream)>>>(spec, d_in, d_out, n);
  return static_cast<int>(cudaGetLastError());
}

}  // namespace lowbit::cuda
