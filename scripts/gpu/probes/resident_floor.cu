// scripts/gpu/probes/resident_floor.cu — what a 4096² M = 1 GEMV could reach if each CTA held its whole
// weight share in shared memory (kernels/NOTES.md, session 19). Issue 8 asks for ≤ 1.15× the weight bytes
// at the read rate: 3.5 µs at 4096² (nf4@64, 9.44 MB), 0.5 µs above a bare read.
//
// One CTA per 32 rows (128 CTAs). Each CTA, launched early (programmatic dependent launch),
// copies its 64 KB of codes and 8 KB of block scales into shared memory with bulk copies, builds a
// 32 KB lane-copied pair table (128-byte rows), then waits for the previous call, reads x (8 KB, written
// by that call), waits for its copies and
//   mode 0: touches the codes (one 16-byte read a thread) and writes y — no arithmetic: the floor of the
//           structure itself;
//   mode 1: does the decode's shared-memory work for every code byte — one table lookup (PRMT, SHR, LDS)
//           and a bf16x2 FMA with x — reduces over the warps and writes y;
//   mode 2: the table lookups alone (XORed together, no x);
//   mode 3: int4's arithmetic decode alone (a shift and a LOP3 a pair of weights, XORed together), a
//           format that needs no table.
// Modes 1–3 share one straightforward pass (16-byte code reads, a shuffle reduction per row), so they
// show what this pass costs, not a lower bound on the decode; mode 0 is the bound on the structure.
// Each with 8 warps, and with 16 (two warps a K slice, 16 rows each).
// With 114 704 bytes of shared memory two CTAs fit on an SM, so the next call's CTA copies its weight
// while this one computes; with 150 000 one does. Per call, in a CUDA graph of 20 dependent calls (y of
// one is x of the next), weights rotated over 4× the L2 (at most 16 buffers).
// Build and run on the GPU machine: bash scripts/gpu/probes/run.sh
#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <tuple>
#include <vector>
#include "graph_timing.cuh"

constexpr int kK = 4096, kN = 4096, kRows = 32;
constexpr int kCodeBytes = kRows * kK / 2, kScaleBytes = kRows * kK / 64 * 4, kTableBytes = 256 * 128;
constexpr int kXBytes = kK * 2, kSmemUsed = kCodeBytes + kScaleBytes + kTableBytes + kXBytes + 16;

__device__ __forceinline__ unsigned saddr(const void* p) { return static_cast<unsigned>(__cvta_generic_to_shared(p)); }

template <int kMode, int kWarps>
__global__ void __launch_bounds__(kWarps * 32, 1) resident_kernel(const unsigned char* __restrict__ codes,
                                                               const float* __restrict__ scales,
                                                               const __nv_bfloat16* __restrict__ x,
                                                               __nv_bfloat16* __restrict__ y) {
  extern __shared__ __align__(128) unsigned char sm[];
  unsigned char* s_codes = sm;
  float* s_scales = reinterpret_cast<float*>(sm + kCodeBytes);
  unsigned char* s_table = sm + kCodeBytes + kScaleBytes;
  __nv_bfloat16* s_x = reinterpret_cast<__nv_bfloat16*>(s_table + kTableBytes);
  auto* bar = reinterpret_cast<std::uint64_t*>(sm + kSmemUsed - 16);
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
  if (tid == 0) {
    asm volatile("mbarrier.init.shared::cta.b64 [%0], 1;" ::"r"(saddr(bar)));
    asm volatile("fence.mbarrier_init.release.cluster;" ::: "memory");
    asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;" ::"r"(saddr(bar)),
                 "r"(kCodeBytes + kScaleBytes) : "memory");
    const unsigned char* src = codes + static_cast<std::size_t>(blockIdx.x) * kCodeBytes;
    for (int c = 0; c < 4; ++c)
      asm volatile("cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1], %2, [%3];"
                   ::"r"(saddr(s_codes + c * kCodeBytes / 4)), "l"(src + c * kCodeBytes / 4), "r"(kCodeBytes / 4),
                   "r"(saddr(bar)) : "memory");
    asm volatile("cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1], %2, [%3];"
                 ::"r"(saddr(s_scales)), "l"(scales + static_cast<std::size_t>(blockIdx.x) * kScaleBytes / 4),
                 "r"(kScaleBytes), "r"(saddr(bar)) : "memory");
  }
  // The pair table: entry b (high nibble first) in row b, one copy per lane.
  for (int f = tid; f < 256 * 8; f += kWarps * 32) {
    const int b = f >> 3;
    const float lo = -1.0f + (b >> 4) / 7.5f, hi = -1.0f + (b & 15) / 7.5f;
    const __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
    const unsigned u = *reinterpret_cast<const unsigned*>(&v);
    *reinterpret_cast<uint4*>(s_table + b * 128 + (f & 7) * 16) = make_uint4(u, u, u, u);
  }
  asm volatile("griddepcontrol.wait;" ::: "memory");
  for (int i = tid; i < kXBytes / 16; i += kWarps * 32)
    reinterpret_cast<uint4*>(s_x)[i] = reinterpret_cast<const uint4*>(x)[i];
  __syncthreads();
  asm volatile("{\n .reg .pred p;\n W: mbarrier.try_wait.parity.shared::cta.b64 p, [%0], 0;\n @!p bra W;\n}\n"
               ::"r"(saddr(bar)) : "memory");
  if constexpr (kMode == 0) {
    const uint4 v = reinterpret_cast<const uint4*>(s_codes)[tid];
    const float s = s_scales[tid] + __bfloat162float(s_x[tid]);
    if (tid < kRows) y[blockIdx.x * kRows + tid] = __float2bfloat16((s + static_cast<float>(v.x & 1u)) * 1e-3f);
  } else {
    // Warp w: K slice w % 8 (elements 512 (w % 8) … + 511: 256 code bytes a row) of rows rbase …
    // rbase + kRowsW − 1; lanes 0–15 take row rbase + 2i, 16–31 row rbase + 2i + 1, 16 bytes each. Lane
    // (h, c): bytes 16c … 16c + 15 of its row's slice.
    constexpr int kRowsW = kRows * 8 / kWarps;
    const int slice = warp % 8, rbase = (warp / 8) * kRowsW;
    const int h = lane >> 4, c = lane & 15, k0 = slice * 512 + c * 32;
    const std::uint32_t lane8 = static_cast<std::uint32_t>(lane) * 8u;
    __nv_bfloat162 xv[16];
#pragma unroll
    for (int j = 0; j < 16; ++j) xv[j] = reinterpret_cast<const __nv_bfloat162*>(s_x + k0)[j];
    float mine = 0.0f;
#pragma unroll 4
    for (int i = 0; i < kRowsW / 2; ++i) {
      const int row = rbase + 2 * i + h;
      const uint4 w = *reinterpret_cast<const uint4*>(s_codes + row * (kK / 2) + slice * 256 + c * 16);
      const std::uint32_t word[4] = {w.x, w.y, w.z, w.w};
      __nv_bfloat162 acc = __floats2bfloat162_rn(0.0f, 0.0f);
      std::uint32_t bits = 0;
#pragma unroll
      for (int j = 0; j < 16; ++j) {
        const std::uint32_t a = __byte_perm(word[j / 4], lane8, 0x5504u | ((j % 4) << 4)) >> 1;
        if constexpr (kMode == 1) {
          acc = __hfma2(*reinterpret_cast<const __nv_bfloat162*>(s_table + a), xv[j], acc);
        } else if constexpr (kMode == 3) {  // nibbles j % 4 and j % 4 + 4 of the word as 128 + n in bf16
          bits ^= ((word[j / 4] >> (4 * (j % 4))) & 0x000F000Fu) | 0x43004300u;
        } else {
          bits ^= *reinterpret_cast<const std::uint32_t*>(s_table + a);
        }
      }
      if constexpr (kMode >= 2) acc = *reinterpret_cast<const __nv_bfloat162*>(&bits);
      float v = (__low2float(acc) + __high2float(acc)) * s_scales[row * (kK / 64) + k0 / 64];
#pragma unroll
      for (int o = 8; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
      if (c == i) mine = v;  // lane (h, i) keeps row rbase + 2i + h's sum over this warp's slice
    }
    __syncthreads();  // every warp is done with the scales, which now hold the warps' row sums
    float* red = s_scales;
    if (c < kRowsW / 2) red[slice * kRows + rbase + 2 * c + h] = mine;
    __syncthreads();
    if (tid < kRows) {
      float s = 0.0f;
      for (int w = 0; w < 8; ++w) s += red[w * kRows + tid];
      y[blockIdx.x * kRows + tid] = __float2bfloat16(s * 1e-3f);
    }
  }
}

int main() {
  int l2;
  cudaDeviceGetAttribute(&l2, cudaDevAttrL2CacheSize, 0);
  const std::size_t code_bytes = std::size_t{kN} * kK / 2, scale_bytes = std::size_t{kN} * kK / 64 * 4;
  const std::size_t bytes = code_bytes + scale_bytes;
  const std::size_t nbuf = std::min<std::size_t>(16, std::max<std::size_t>(4, (4 * (std::size_t)l2 + bytes - 1) / bytes));
  std::vector<unsigned char*> cb(nbuf);
  std::vector<float*> sb(nbuf);
  std::vector<unsigned char> host(code_bytes);
  std::vector<float> hs(scale_bytes / 4);
  unsigned st = 12345u;
  for (auto& v : host) v = static_cast<unsigned char>((st = st * 1664525u + 1013904223u) >> 24);
  for (auto& v : hs) v = 0.5f + ((st = st * 1664525u + 1013904223u) >> 8) * 0x1p-24f;
  for (std::size_t i = 0; i < nbuf; ++i) {
    CK(cudaMalloc(&cb[i], code_bytes));
    CK(cudaMalloc(&sb[i], scale_bytes));
    CK(cudaMemcpy(cb[i], host.data(), code_bytes, cudaMemcpyHostToDevice));
    CK(cudaMemcpy(sb[i], hs.data(), scale_bytes, cudaMemcpyHostToDevice));
  }
  __nv_bfloat16* xy[2];
  std::vector<__nv_bfloat16> hx(kK);
  for (auto& v : hx) v = __float2bfloat16(((st = st * 1664525u + 1013904223u) >> 8) * 0x1p-24f - 0.5f);
  for (auto& p : xy) {
    CK(cudaMalloc(&p, kK * 2));
    CK(cudaMemcpy(p, hx.data(), kK * 2, cudaMemcpyHostToDevice));
  }
  cudaStream_t s;
  CK(cudaStreamCreate(&s));
  auto run = [&](auto kernel, int warps, const char* name) {
    const int threads = warps * 32;
    CK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, 150000));
    for (int smem : {kSmemUsed, 150000}) {
      int per_sm = 0;
      CK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, kernel, threads, smem));
      const float t = graph_us(s, kernel, dim3(kN / kRows), dim3(threads), smem, 1, [&](int c) {
        return std::make_tuple(static_cast<const unsigned char*>(cb[c % nbuf]), static_cast<const float*>(sb[c % nbuf]),
                               static_cast<const __nv_bfloat16*>(xy[c % 2]), xy[(c + 1) % 2]);
      });
      printf("resident 4096^2 %-26s %2d warps, %6d B smem, %d CTA/SM: %5.2f us per call (%.2f MB at %.0f GB/s)\n",
             name, warps, smem, per_sm, t, bytes / 1e6, bytes / t / 1e3);
    }
  };
  run(resident_kernel<0, 8>, 8, "mode 0 (no arithmetic)");
  run(resident_kernel<1, 8>, 8, "mode 1 (lookups + FMA)");
  run(resident_kernel<2, 8>, 8, "mode 2 (lookups alone)");
  run(resident_kernel<3, 8>, 8, "mode 3 (int4 decode alone)");
  run(resident_kernel<1, 16>, 16, "mode 1 (lookups + FMA)");
  run(resident_kernel<2, 16>, 16, "mode 2 (lookups alone)");
  run(resident_kernel<3, 16>, 16, "mode 3 (int4 decode alone)");
}
