// kernels/cuda/gemm4_parts.cuh — pieces the 4-bit GEMM kernels share
// (gemm4.cu: mma.sync kernels; gemm4_wgmma.cu: the wgmma kernel): the
// 256-entry table of value pairs, double-quantized block scales, mbarriers,
// cp.async copies (mbarriers, TMA, tensor maps: hopper.cuh). Internal to kernels/cuda.
#pragma once

#include <cuda.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <cudaTypedefs.h>

#include <cstddef>
#include <cstdint>

#include "kernels/cuda/device_util.cuh"
#include "kernels/cuda/gemm4.cuh"
#include "kernels/cuda/hopper.cuh"

namespace lowbit::cuda::gemm4_parts {

using namespace lowbit::cuda::hopper;

struct Dyn8Table {
  float v[256];
};

template <class ActT>
__device__ __forceinline__ std::uint32_t pack2(float lo, float hi);
template <>
__device__ __forceinline__ std::uint32_t pack2<__nv_bfloat16>(float lo, float hi) {
  return detail::pack_bf16x2(lo, hi);
}
template <>
__device__ __forceinline__ std::uint32_t pack2<__half>(float lo, float hi) {
  return detail::pack_f16x2(lo, hi);
}

template <class ActT>
__device__ __forceinline__ void store_act(ActT* p, float v);
template <>
__device__ __forceinline__ void store_act<__nv_bfloat16>(__nv_bfloat16* p, float v) {
  *p = __float2bfloat16_rn(v);
}
template <>
__device__ __forceinline__ void store_act<__half>(__half* p, float v) {
  *p = __float2half_rn(v);
}

// A double-quantized block scale: the dyn8 code of block b (byte b % 4 of its word) times
// the absmax of its 256 blocks, plus the offset — dequantize_4bit's arithmetic.
// Table: const float* or anything else with operator[] (the TMA kernel keeps it in its table's gaps).
template <class Table>
__device__ __forceinline__ float dq_scale(const Table& dyn8, std::uint32_t code_word, unsigned b, float absmax,
                                          float offset) {
  return __fadd_rn(__fmul_rn(dyn8[(code_word >> (8u * (b & 3u))) & 0xFFu], absmax), offset);
}

constexpr int kCoreLutBytes = 256 * 256;

// That table (shared with the TMA kernel below): built 16 bytes per store by `threads` threads, and the
// pair of code byte `byte` of word for the lane whose 4·lane is lane4 (offset byte 0 = 4·lane, byte 1 =
// the code byte, bytes 2–3 = 0: one PRMT).
template <class ActT>
__device__ __forceinline__ void build_row_table(unsigned char* lut, const float* values, int tid, int threads) {
  for (int f = tid; f < 256 * 8; f += threads) {
    const int byte = f >> 3;
    const std::uint32_t v = pack2<ActT>(values[byte >> 4], values[byte & 15]);  // high nibble low
    *reinterpret_cast<uint4*>(lut + byte * 256 + (f & 7) * 16) = make_uint4(v, v, v, v);
  }
}
__device__ __forceinline__ std::uint32_t row_table_pair(const unsigned char* lut, std::uint32_t word,
                                                        std::uint32_t lane4, unsigned byte) {
  return *reinterpret_cast<const std::uint32_t*>(lut + __byte_perm(word, lane4, 0x5504u | (byte << 4)));
}

__device__ __forceinline__ unsigned char* tma_gap(unsigned char* lut, int h) { return lut + 256 * h + 128; }

struct GapDyn8 {
  const unsigned char* lut;
  __device__ float operator[](unsigned c) const {
    return *reinterpret_cast<const float*>(lut + 256 * (1 + (c >> 5)) + 128 + 4 * (c & 31u));
  }
};

__device__ __forceinline__ void cp_async16(void* smem, const void* gmem, int src_bytes) {
  const unsigned s = static_cast<unsigned>(__cvta_generic_to_shared(smem));
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(s), "l"(gmem), "r"(src_bytes));
}
__device__ __forceinline__ void cp_async4(void* smem, const void* gmem, int src_bytes) {
  const unsigned s = static_cast<unsigned>(__cvta_generic_to_shared(smem));
  asm volatile("cp.async.ca.shared.global [%0], [%1], 4, %2;\n" ::"r"(s), "l"(gmem), "r"(src_bytes));
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }
template <int N>
__device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N));
}
// The wgmma kernel (gemm4_wgmma.cu; M ≤ 64 tokens, block 64, K % 256 == 0,
// the TMA kernel's domain): whether this build and device run it (it needs
// the sm_90a code), and its launch. act_bf16: bf16 (else fp16) x and y.
bool wgmma_available();
int launch_wgmma(const void* x, bool act_bf16, int M, const Weight4& w, const Dyn8Table& dq, void* y,
                 cudaStream_t st);

}  // namespace lowbit::cuda::gemm4_parts
