// kernels/cuda/gemm4_parts.cuh — pieces the 4-bit GEMM kernels share
// (gemm4.cu: mma.sync kernels; gemm4_wgmma.cu: the wgmma kernel): the
// 256-entry table of value pairs, double-quantized block scales, mbarriers,
// TMA copies and tensor maps. Internal to kernels/cuda.
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

namespace lowbit::cuda::gemm4_parts {

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
__device__ __forceinline__ unsigned smem_addr(const void* p) {
  return static_cast<unsigned>(__cvta_generic_to_shared(p));
}
__device__ __forceinline__ void mbar_init(std::uint64_t* bar, unsigned count) {
  asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" ::"r"(smem_addr(bar)), "r"(count));
}
__device__ __forceinline__ void mbar_arrive_expect_tx(std::uint64_t* bar, unsigned bytes) {
  asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;\n" ::"r"(smem_addr(bar)), "r"(bytes)
               : "memory");
}
__device__ __forceinline__ void mbar_wait(std::uint64_t* bar, unsigned parity) {
  asm volatile(
      "{\n .reg .pred p;\n"
      "W: mbarrier.try_wait.parity.shared::cta.b64 p, [%0], %1;\n"
      " @!p bra W;\n}\n" ::"r"(smem_addr(bar)),
      "r"(parity)
      : "memory");
}
// TMA copies of one box of a 2-D / 3-D tensor map at (c0 innermost, c1, c2) into shared memory, completing on bar.
__device__ __forceinline__ void tma_2d(void* dst, const CUtensorMap* map, int c0, int c1, std::uint64_t* bar) {
  asm volatile(
      "cp.async.bulk.tensor.2d.shared::cluster.global.tile.mbarrier::complete_tx::bytes [%0], [%1, {%2, %3}], "
      "[%4];\n" ::"r"(smem_addr(dst)),
      "l"(reinterpret_cast<std::uint64_t>(map)), "r"(c0), "r"(c1), "r"(smem_addr(bar))
      : "memory");
}
__device__ __forceinline__ void tma_3d(void* dst, const CUtensorMap* map, int c0, int c1, int c2,
                                       std::uint64_t* bar) {
  asm volatile(
      "cp.async.bulk.tensor.3d.shared::cluster.global.tile.mbarrier::complete_tx::bytes [%0], [%1, {%2, %3, %4}], "
      "[%5];\n" ::"r"(smem_addr(dst)),
      "l"(reinterpret_cast<std::uint64_t>(map)), "r"(c0), "r"(c1), "r"(c2), "r"(smem_addr(bar))
      : "memory");
}
// Byte offset of (row, 16-byte chunk) in a 128-byte-swizzled box of 128-byte rows.
__device__ __forceinline__ int swz128(int row, int chunk) { return row * 128 + ((chunk ^ (row & 7)) << 4); }

// cuTensorMapEncodeTiled from the driver (no libcuda link needed).
inline PFN_cuTensorMapEncodeTiled_v12000 tensor_map_encoder() {
  static const PFN_cuTensorMapEncodeTiled_v12000 fn = [] {
    void* p = nullptr;
    cudaDriverEntryPointQueryResult q{};
    if (cudaGetDriverEntryPointByVersion("cuTensorMapEncodeTiled", &p, 12000, cudaEnableDefault, &q) != cudaSuccess ||
        q != cudaDriverEntryPointSuccess)
      p = nullptr;
    return reinterpret_cast<PFN_cuTensorMapEncodeTiled_v12000>(p);
  }();
  return fn;
}

// A row-major tensor of `rank` dimensions (dims innermost first, pitches in bytes of dims 1 …) with
// 128-byte-swizzled boxes; out-of-range elements read as zero.
inline bool encode_map(CUtensorMap* map, CUtensorMapDataType type, const void* base, int rank,
                       const cuuint64_t* dims, const cuuint64_t* pitches, const cuuint32_t* box) {
  const auto encode = tensor_map_encoder();
  const cuuint32_t estr[3] = {1, 1, 1};
  return encode != nullptr &&
         encode(map, type, rank, const_cast<void*>(base), dims, pitches, box, estr, CU_TENSOR_MAP_INTERLEAVE_NONE,
                CU_TENSOR_MAP_SWIZZLE_128B, CU_TENSOR_MAP_L2_PROMOTION_L2_256B,
                CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE) == CUDA_SUCCESS;
}

// The wgmma kernel (gemm4_wgmma.cu; M ≤ 64 tokens, block 64, K % 256 == 0,
// the TMA kernel's domain): whether this build and device run it (it needs
// the sm_90a code), and its launch. act_bf16: bf16 (else fp16) x and y.
bool wgmma_available();
int launch_wgmma(const void* x, bool act_bf16, int M, const Weight4& w, const Dyn8Table& dq, void* y,
                 cudaStream_t st);

}  // namespace lowbit::cuda::gemm4_parts
