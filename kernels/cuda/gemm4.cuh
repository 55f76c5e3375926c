// kernels/cuda/gemm4.cuh — fused 4-bit weight × 16-bit activation GEMV /
// small-batch GEMM (M = 1 … 64 tokens per launch; larger M loops), the decode
// step of 4-bit LLM inference.
//
//   y[m, n] = Σ_k x[m, k] · value[code(n, k)] · s(n, k)
//
// The weight is an N × K matrix (row n = output feature, K contiguous)
// quantized blockwise over its flattened row-major order, exactly as
// bitsandbytes' quantize_4bit stores a Linear weight: ⌈N·K/2⌉ packed bytes
// (first element in the high nibble), one fp32 absmax per block or QLoRA's
// double quantization (blockwise.cuh's BlockScales). Any ≤ 16-entry codebook
// (nf4, fp4-bnb, e2m1fn's values, int4's values, a user table).
//
// Arithmetic: the codebook values are rounded to the activation type (bf16 /
// fp16, as bitsandbytes' GEMV does); products and sums run on the tensor
// cores (mma.sync m16n8k16, fp32 accumulate) over 64-element chunks, and
// each chunk's sum is multiplied by its fp32 block scale in fp32; y is
// rounded once to the activation type. So y matches an fp64 reference of the
// dequantized weight to about 2^-8 relative (bf16) / 2^-10 (fp16) of the
// row's |x|·|w| sum; the tests state the tolerance. The `tma` kernel (M ≤ 4:
// the same mma with K windows in the token columns) and the M = 1 `cores`
// kernel (the FP32 units) multiply the same rounded values: exact products,
// fp32 sums in another order, the same bound.
//
// Requirements: K % 64 == 0, block % 64 == 0, x and y 16-byte aligned,
// codes 16-byte aligned.
//
// The `tma` kernel starts before the previous kernel of its stream finishes
// (programmatic dependent launch; LOWBIT_PDL=0 turns it off): it reads the
// weight and its scales before it waits for that kernel, x only after. So the
// weight must not be written by the kernel just before it in the stream
// (lowbit's own quantizers let their successor start only at their end). Returns a cudaError_t as int (cudaErrorInvalidValue
// for unsupported shapes).
#pragma once

#include <cstddef>
#include <cstdint>

#include "kernels/cuda/blockwise.cuh"

namespace lowbit::cuda {

struct Weight4 {
  const std::uint8_t* codes = nullptr;  // N·K/2 bytes
  BlockScales scales;
  std::size_t block = 64;
  std::size_t N = 0, K = 0;
  Table16 table{};
};

// Kernel versions (kernel-bench times both; NOTES.md says why):
//   automatic  wgmma for M = 33 … 64 where it applies, else tma (outside its domain cores for M = 1, pipelined16 for M <= 4, pipelined for
//              M <= 16, registers up to 32, tiled above where its grid fills its waves, else
//              registers): the fastest, measured
//   cores      M = 1: the FP32 units instead of the tensor cores, 4 rows per warp (other M: pipelined16)
//   pipelined  cp.async ring of 64-element chunks per warp in shared memory, 8 warps per CTA
//   pipelined16  the same with 16 warps per CTA (3 stages): more warps in flight for M <= 16
//   registers  the first version: each warp's loads of a step in registers, used at once
//   tiled      a CTA-wide cp.async ring shares x among the warps of 64 (or 32) rows; the weight
//              enters the mma as dequantize_4bit writes it (fl32(value·s) rounded once to bf16/fp16)
//   tma        codes and x arrive by TMA, persistent CTAs; M <= 4: the mma's token columns carry K
//              windows, M = 5 … 32: token columns, M > 32: 32-token pieces (block 64 and
//              K % 256 == 0; else as automatic)
//   wgmma      any M <= 64 on wgmma (sm_90a): x in shared memory once per CTA of 64, 128 or 192
//              rows, the tensor cores' B operand; the CTAs of a cluster split K. With 192 rows the
//              weight enters as dequantize_4bit writes it, as in `tiled` (TMA domain and an sm_90
//              device; else as automatic)
enum class Gemm4Variant : std::uint8_t { automatic, pipelined, pipelined16, registers, cores, tiled, tma, wgmma };

// act: DType::bf16 or DType::f16 (x and y). x: M × K row-major; y: M × N row-major.
int gemm_4bit(const void* x, DType act, std::size_t M, const Weight4& w, void* y, void* stream = nullptr,
              Gemm4Variant variant = Gemm4Variant::automatic);

}  // namespace lowbit::cuda
