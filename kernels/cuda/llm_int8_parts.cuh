// kernels/cuda/llm_int8_parts.cuh — what llm_int8.cu and llm_int8_wgmma.cu
// share: the layer's buffers as the kernels see them, the outlier weight
// value and the dequantization of an int32 product (one definition, so the
// paths agree bit for bit), and the wgmma GEMM's entry points. Internal to
// kernels/cuda.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "kernels/cuda/device_util.cuh"

namespace lowbit::cuda::llm_int8_parts {

using detail::load1;

constexpr int kGatheredCapacity = 512;  // outlier weight columns kept dequantized and contiguous

// The int32 product of row and column back to a float: the CPU reference's
// operations in its order (no FMA). The epilogue and the fused small-M GEMM
// both call this, so their outputs agree bit for bit.
__device__ __forceinline__ float dequantize_int32(int q, float row_absmax, float col_absmax) {
  constexpr float inv_127_sq = 1.0f / (127.0f * 127.0f);
  return __fmul_rn(static_cast<float>(q), __fmul_rn(__fmul_rn(row_absmax, col_absmax), inv_127_sq));
}

// The outlier weight value W[n, c]: 16-bit when given, else int8 dequantized.
template <class T>
__device__ __forceinline__ float outlier_weight(const T* __restrict__ w16, int k, const std::int8_t* __restrict__ wq,
                                                const float* __restrict__ w_absmax, int k_padded, int n, int c) {
  if (w16) return load1(w16 + static_cast<std::size_t>(n) * k + c);
  return wq[static_cast<std::size_t>(n) * k_padded + c] * (w_absmax[n] / 127.0f);
}

// The layer's weight and outlier buffers as the kernels see them (one
// argument instead of a dozen; every step takes it).
template <class T>
struct LayerView {
  const T* w16;
  const std::int8_t* wq;
  const float* w_absmax;
  int n, n_padded, k, k_padded;
  const int* cols;   // ascending outlier columns
  const int* count;  // how many
  float* wc;         // [kGatheredCapacity][n_padded]: W[:, cols[j]] (see outlier_weight)
  float* xo;         // [m][xo_stride]: X[row, cols[j]] for j < kGatheredCapacity
  int xo_stride;     // min(k, kGatheredCapacity) rounded up to 4 (16-byte rows)
  // The columns wc holds: wc_cols[0, *wc_used) (*wc_used = −1: none yet). The gather skips the weight
  // columns when the new list's first min(count, kGatheredCapacity) entries are these; the list's consumer
  // records them (release_outlier_list).
  int* wc_cols;
  int* wc_used;
};

// What the outlier list's consumer does once the gather grid has finished (one block: `threads` of its
// threads, of which this is `first`): clear the columns' flags for the next call and record which columns
// wc now holds.
template <class T>
__device__ __forceinline__ void release_outlier_list(const LayerView<T>& g, std::uint8_t* flags, int count, int first,
                                                     int threads) {
  for (int j = first; j < count; j += threads) flags[g.cols[j]] = 0;
  const int used = min(count, kGatheredCapacity);
  for (int j = first; j < used; j += threads) g.wc_cols[j] = g.cols[j];
  if (first == 0) *g.wc_used = used;
}

// X[token, cols[j]], outlier column j of the list: the gather's copy (xo) for the
// first kGatheredCapacity columns, X itself past those.
template <class T>
__device__ __forceinline__ float outlier_x(const LayerView<T>& g, const T* __restrict__ x, int token, int j) {
  return j < kGatheredCapacity ? g.xo[static_cast<std::size_t>(token) * g.xo_stride + j]
                               : load1(x + static_cast<std::size_t>(token) * g.k + g.cols[j]);
}

// The int8 GEMM with LLM.int8's dequantization and outlier product in its
// epilogue (llm_int8_wgmma.cu, sm_90a): whether this build and device run it,
// and its launch: y (m × g.n) = dequantize(xq · g.wqᵀ) + X[:, outliers] ·
// W[:, outliers]ᵀ for any number of outlier columns (the gather's copies for
// the first kGatheredCapacity, x and g's weights past those). The
// dequantization is epilogue_kernel's float operations; the outlier product
// runs on the tensor cores (tf32, W as hi + lo). xq is m × g.k_padded, x the
// 16-bit activations (m × g.k). CTA 0 releases the outlier list. overlap:
// programmatic dependent launch.
bool int8_wgmma_available();
template <class T>
cudaError_t launch_int8_wgmma(const std::int8_t* xq, const float* row_absmax, int m, const LayerView<T>& g,
                              const T* x, bool outliers, std::uint8_t* flags, T* y, bool overlap, cudaStream_t stream);

}  // namespace lowbit::cuda::llm_int8_parts
