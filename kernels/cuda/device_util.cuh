// kernels/cuda/device_util.cuh — small device helpers shared by the kernels:
// 8-wide loads/stores of fp32/fp16/bf16 and streaming cache hints.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <cstdlib>
#include <utility>

#include "lowbit/formats/minifloats.hpp"  // fp16: the decoder for NaN inputs

namespace lowbit::cuda::detail {

using lowbit::decode;
using lowbit::fp16;

__device__ __forceinline__ std::uint32_t pack_bf16x2(float lo, float hi) {
  const __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);  // .x = lo (lower address)
  return *reinterpret_cast<const std::uint32_t*>(&v);
}
__device__ __forceinline__ std::uint32_t pack_f16x2(float lo, float hi) {
  const __half2 v = __floats2half2_rn(lo, hi);
  return *reinterpret_cast<const std::uint32_t*>(&v);
}

// Store 8 consecutive values (p aligned to 8 elements).
__device__ __forceinline__ void store8(float* p, const float (&v)[8]) {
  __stcs(reinterpret_cast<float4*>(p), make_float4(v[0], v[1], v[2], v[3]));
  __stcs(reinterpret_cast<float4*>(p) + 1, make_float4(v[4], v[5], v[6], v[7]));
}
__device__ __forceinline__ void store8(__nv_bfloat16* p, const float (&v)[8]) {
  uint4 w;
  w.x = pack_bf16x2(v[0], v[1]); w.y = pack_bf16x2(v[2], v[3]);
  w.z = pack_bf16x2(v[4], v[5]); w.w = pack_bf16x2(v[6], v[7]);
  __stcs(reinterpret_cast<uint4*>(p), w);
}
__device__ __forceinline__ void store8(__half* p, const float (&v)[8]) {
  uint4 w;
  w.x = pack_f16x2(v[0], v[1]); w.y = pack_f16x2(v[2], v[3]);
  w.z = pack_f16x2(v[4], v[5]); w.w = pack_f16x2(v[6], v[7]);
  __stcs(reinterpret_cast<uint4*>(p), w);
}
__device__ __forceinline__ void store1(float* p, float v) { *p = v; }
__device__ __forceinline__ void store1(__nv_bfloat16* p, float v) { *p = __float2bfloat16_rn(v); }
__device__ __forceinline__ void store1(__half* p, float v) { *p = __float2half_rn(v); }

// 16 bytes: streamed (evict first: read once) or, with kKeep, through the
// read-only cache (data the kernel reads again).
template <bool kKeep, class V>
__device__ __forceinline__ V ld16(const V* p) {
  if constexpr (kKeep) return __ldg(p);
  else return __ldcs(p);
}

// Load 8 consecutive values as float (p aligned to 8 elements); exact.
template <bool kKeep = false>
__device__ __forceinline__ void load8(const float* p, float (&v)[8]) {
  const float4 a = ld16<kKeep>(reinterpret_cast<const float4*>(p)), b = ld16<kKeep>(reinterpret_cast<const float4*>(p) + 1);
  v[0] = a.x; v[1] = a.y; v[2] = a.z; v[3] = a.w; v[4] = b.x; v[5] = b.y; v[6] = b.z; v[7] = b.w;
}
__device__ __forceinline__ float bf16_lo(std::uint32_t w) { return __uint_as_float(w << 16); }
__device__ __forceinline__ float bf16_hi(std::uint32_t w) { return __uint_as_float(w & 0xFFFF0000u); }
// 8 packed 16-bit values (one 16-byte load) → float, exactly.
__device__ __forceinline__ void unpack8(const uint4& w, const __nv_bfloat16*, float (&v)[8]) {
  v[0] = bf16_lo(w.x); v[1] = bf16_hi(w.x); v[2] = bf16_lo(w.y); v[3] = bf16_hi(w.y);
  v[4] = bf16_lo(w.z); v[5] = bf16_hi(w.z); v[6] = bf16_lo(w.w); v[7] = bf16_hi(w.w);
}
// fp16 bits → fp32 exactly as the CPU reference decodes them: the hardware
// conversion returns the canonical NaN (sign and payload lost), so a NaN
// takes the shared decoder (rare: one branch per value otherwise).
__device__ __forceinline__ float f16_to_float(std::uint16_t h) {
  const float f = __half2float(__ushort_as_half(h));
  return f == f ? f : decode<fp16, float>(h);
}
__device__ __forceinline__ void unpack8(const uint4& w, const __half*, float (&v)[8]) {
  const std::uint32_t ws[4] = {w.x, w.y, w.z, w.w};
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    v[2 * i] = f16_to_float(static_cast<std::uint16_t>(ws[i]));
    v[2 * i + 1] = f16_to_float(static_cast<std::uint16_t>(ws[i] >> 16));
  }
}
template <bool kKeep = false, class T>
__device__ __forceinline__ void load8(const T* p, float (&v)[8]) {
  unpack8(ld16<kKeep>(reinterpret_cast<const uint4*>(p)), p, v);
}
__device__ __forceinline__ float load1(const float* p) { return *p; }
__device__ __forceinline__ float load1(const __nv_bfloat16* p) { return __bfloat162float(*p); }
__device__ __forceinline__ float load1(const __half* p) { return f16_to_float(__half_as_ushort(*p)); }

// The 8 values at x[i0 …], zeros past n (a tensor's ragged end).
template <class T>
__device__ __forceinline__ void load8_or_tail(const T* x, std::size_t i0, std::size_t n, float (&v)[8]) {
  if (i0 + 8 <= n) {
    load8(x + i0, v);
  } else {
#pragma unroll
    for (int k = 0; k < 8; ++k) v[k] = i0 + k < n ? load1(x + i0 + k) : 0.0f;
  }
}

// Non-negative floats order like their bit patterns: atomicMax on the bits
// (*addr starts at +0; NaN must not be passed).
__device__ __forceinline__ void atomic_max_nonneg(float* addr, float v) {
  atomicMax(reinterpret_cast<int*>(addr), __float_as_int(v));
}

// Max of v over a block of `threads` threads (a multiple of 32, at most
// kMaxThreads), returned to every thread. Non-negative inputs (absolute
// values): 0 is the identity.
template <int kMaxThreads>
__device__ __forceinline__ float block_max(float v, int threads = kMaxThreads) {
  __shared__ float warp_max[kMaxThreads / 32];
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  if ((threadIdx.x & 31) == 0) warp_max[threadIdx.x >> 5] = v;
  __syncthreads();
  float r = 0.0f;
  for (int w = 0; w < threads / 32; ++w) r = fmaxf(r, warp_max[w]);
  __syncthreads();  // warp_max may be reused by the next call
  return r;
}

// Programmatic dependent launch (sm_90): a kernel started by
// launch_after_previous_starts() may run while the previous kernel of its
// stream is still running; wait_for_previous_grid() blocks until that kernel
// has finished and its writes are visible (a no-op for a normal launch).
// What a kernel does before the wait must not depend on the previous kernel.
__device__ __forceinline__ void wait_for_previous_grid() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}
// Lets the next kernel (if launched as above) start now.
__device__ __forceinline__ void allow_next_grid_to_start() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
}
// A kernel feature the environment can switch off (NAME=0) to measure what it gives; on otherwise.
inline bool switched_on(const char* name) {
  const char* v = std::getenv(name);
  return !(v && v[0] == '0');
}
// LOWBIT_PDL=0 in the environment launches such kernels normally (to measure what the overlap gives).
inline bool pdl_enabled() {
  static const bool on = switched_on("LOWBIT_PDL");
  return on;
}
// overlap = false: a normal launch (the caller's judgement: measured, an
// early start pays for a kernel of one wave, where launch latency is a large
// part of its time, not for one of many waves). cluster > 1: thread block
// clusters of that many blocks along x (above 8 the kernel needs
// cudaFuncAttributeNonPortableClusterSizeAllowed). cooperative: every block
// resident at once (a grid-wide barrier; cudaErrorCooperativeLaunchTooLarge
// where the SMs cannot all take one). smem: dynamic shared memory bytes.
template <class... Params, class... Args>
cudaError_t launch_with(bool overlap, unsigned cluster, bool cooperative, std::size_t smem, void (*kernel)(Params...),
                        dim3 grid, dim3 block, cudaStream_t stream, Args&&... args) {
  cudaLaunchAttribute attr[3]{};
  unsigned count = 0;
  if (cluster > 1) {
    attr[count].id = cudaLaunchAttributeClusterDimension;
    attr[count].val.clusterDim.x = cluster;
    attr[count].val.clusterDim.y = 1;
    attr[count].val.clusterDim.z = 1;
    ++count;
  }
  if (cooperative) {
    attr[count].id = cudaLaunchAttributeCooperative;
    attr[count].val.cooperative = 1;
    ++count;
  }
  if (overlap && pdl_enabled()) {
    attr[count].id = cudaLaunchAttributeProgrammaticStreamSerialization;
    attr[count].val.programmaticStreamSerializationAllowed = 1;
    ++count;
  }
  cudaLaunchConfig_t cfg{};
  cfg.gridDim = grid;
  cfg.blockDim = block;
  cfg.dynamicSmemBytes = smem;
  cfg.stream = stream;
  cfg.attrs = attr;
  cfg.numAttrs = count;
  return cudaLaunchKernelEx(&cfg, kernel, std::forward<Args>(args)...);
}
template <class... Params, class... Args>
cudaError_t launch_after_previous_starts_ex(bool overlap, unsigned cluster, std::size_t smem,
                                            void (*kernel)(Params...), dim3 grid, dim3 block, cudaStream_t stream,
                                            Args&&... args) {
  return launch_with(overlap, cluster, false, smem, kernel, grid, block, stream, std::forward<Args>(args)...);
}
template <class... Params, class... Args>
cudaError_t launch_clusters_after_previous_starts(bool overlap, unsigned cluster, void (*kernel)(Params...), dim3 grid,
                                                  dim3 block, cudaStream_t stream, Args&&... args) {
  return launch_after_previous_starts_ex(overlap, cluster, 0, kernel, grid, block, stream, std::forward<Args>(args)...);
}
template <class... Params, class... Args>
cudaError_t launch_after_previous_starts(bool overlap, void (*kernel)(Params...), dim3 grid, dim3 block,
                                         cudaStream_t stream, Args&&... args) {
  return launch_after_previous_starts_ex(overlap, 1u, 0, kernel, grid, block, stream, std::forward<Args>(args)...);
}

inline int sm_count() {
  static int n = [] {
    int dev = 0, v = 0;
    if (cudaGetDevice(&dev) != cudaSuccess || cudaDeviceGetAttribute(&v, cudaDevAttrMultiProcessorCount, dev) != cudaSuccess)
      return 132;
    return v;
  }();
  return n;
}

// One CTA per per_cta items, all of them launched (the kernels' grid-stride loops only matter past 2^31 − 1
// CTAs). For streaming kernels this beats a persistent grid of a few CTAs per SM: NF4 dequantize 2^28 → bf16
// at 95 % of the copy rate against 87 % with 8 CTAs per SM (H200, kernels/NOTES.md, session 8).
inline unsigned grid_one_pass(std::size_t work_items, std::size_t per_cta) {
  const std::size_t g = (work_items + per_cta - 1) / per_cta, cap = 0x7FFFFFFFu;
  return static_cast<unsigned>(g == 0 ? 1 : g < cap ? g : cap);
}

// grid_one_pass capped at ctas_per_sm CTAs per SM: a persistent grid whose CTAs loop over the rest.
inline unsigned grid_for(std::size_t work_items, std::size_t per_cta, int ctas_per_sm) {
  const std::size_t g = grid_one_pass(work_items, per_cta);
  const std::size_t cap = static_cast<std::size_t>(sm_count()) * static_cast<std::size_t>(ctas_per_sm);
  return static_cast<unsigned>(g < cap ? g : cap);
}

}  // namespace lowbit::cuda::detail
