// kernels/cuda/fp8_quantize.cuh — 16-bit activations → FP8 e4m3fn with a
// per-tensor scale, feeding cuBLASLt's FP8 GEMM (cublaslt_gemm.cuh).
// CPU reference: lowbit::encode(e4m3fn, x · s) with s = 448 / amax
// (formats/minifloat.hpp); the GPU uses the cvt.rn.satfinite instruction,
// which equals it bit for bit (tests/test_cuda_fp8.cpp).
//
// current scaling: s from this tensor's amax, no host synchronisation: one
//                  pass over DRAM where the tensor fits in the SMs' shared
//                  memory plus 16 MiB of L2 (a cooperative kernel that keeps
//                  it on chip between amax and quantize; LOWBIT_FP8_ONE_PASS=0
//                  turns it off), two passes (amax, then quantize) otherwise;
// delayed scaling: s from the previous step's amax — one pass that also
//                  records this tensor's amax for the next step.
// Both write the dequantization factor 1/s (= amax/448) where cuBLASLt's
// scale pointer reads it. An all-zero tensor gets s = 1.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

#include "kernels/cuda/llm_int8.cuh"  // Act

namespace lowbit::cuda {

// amax receives the tensor's amax, dequant_scale 1/s (one device float each).
// cta_maxima (optional): kCurrentScalingCtaSlots device floats of scratch,
// not shared with a concurrent call. With it the one-pass kernel's CTAs
// exchange their maxima there and the call is one launch; without it *amax
// is zeroed by a memset first (a second node in a CUDA graph, ~1.4 µs on an
// H100). The two-pass path always zeroes *amax.
inline constexpr int kCurrentScalingCtaSlots = 256;
void quantize_e4m3_current(Act act, const void* x, std::size_t n, std::uint8_t* out, float* amax,
                           float* dequant_scale, cudaStream_t stream, float* cta_maxima = nullptr);

// Whether quantize_e4m3_current takes the one-pass kernel for n values here
// (x 16-byte aligned; the SMs free for a cooperative launch).
bool quantize_e4m3_current_one_pass(Act act, std::size_t n);

// amax_prev: last step's amax (read); amax_next: this tensor's amax (written;
// may equal neither). dequant_scale receives amax_prev/448.
void quantize_e4m3_delayed(Act act, const void* x, std::size_t n, std::uint8_t* out, const float* amax_prev,
                           float* amax_next, float* dequant_scale, cudaStream_t stream);

}  // namespace lowbit::cuda
