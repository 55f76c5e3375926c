// kernels/cpu/quantize.hpp — CPU reference pieces behind Quantizer::quantize
// (lowbit/formats/registry.hpp), exposed for kernels and tests that need one
// step at a time: bitsandbytes-style blockwise codebook quantization and
// QLoRA double quantization of the scales.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "lowbit/formats/codebook.hpp"
#include "lowbit/formats/dyn8.hpp"
#include "lowbit/formats/registry.hpp"

namespace lowbit::cpu {

// bitsandbytes' quantize_blockwise / quantize_4bit arithmetic (its CUDA
// kernels), one code per element (unpacked): subnormals flushed to zero,
// absmax[b] = max |x| over block b (NaN skipped, ±inf kept), codes =
// encode(x · (1/absmax)) with NaN → bnb_nan_code.
void quantize_blockwise_bnb(const Codebook& cb, const float* x, std::size_t n, std::size_t block,
                            std::uint8_t* codes, float* absmax);
// out[i] = value(code) · absmax[i / block], flushed to zero if subnormal (bnb's FTZ).
void dequantize_blockwise(const Codebook& cb, const std::uint8_t* codes, const float* absmax, std::size_t n,
                          std::size_t block, float* out);

// QLoRA double quantization of n fp32 scales.
struct DoubleQuantized {
  std::vector<std::uint8_t> codes;  // one per scale
  std::vector<float> absmax;        // one per block of `block` scales
  float offset = 0.0f;              // subtracted before, added after
};
// The mean of the scales, summed in binary64 and rounded once (bnb takes
// torch's float32 mean, which may differ in the last bit). The sum's order is
// fixed: chunks of mean_chunk consecutive scales summed sequentially, then
// the chunk sums sequentially (the GPU's double quantization does the same).
inline constexpr std::size_t mean_chunk = 1024;
float mean_offset(const float* scales, std::size_t n);
// bnb: quantize_blockwise(scales − offset, code=dyn8, blocksize=256).
DoubleQuantized double_quantize(const float* scales, std::size_t n, float offset, const Codebook& cb = dyn8,
                                std::size_t block = 256, EdgeMode mode = EdgeMode::exact);
// scale[i] = fl(fl(value(code) · absmax) + offset): two roundings, no FMA
// (GPU code: __fmul_rn / __fadd_rn); bnb mode flushes subnormals as well.
void double_dequantize(const DoubleQuantized& dq, std::size_t n, float* scales, const Codebook& cb = dyn8,
                       std::size_t block = 256, EdgeMode mode = EdgeMode::exact);

}  // namespace lowbit::cpu
