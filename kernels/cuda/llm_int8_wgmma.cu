// kernels/cuda/llm_int8_wgmma.cu — LLM.int8's int8 × int8 GEMM on Hopper's
// wgmma, with the dequantization (row absmax × column absmax / 127²) and the
// outlier columns' 16-bit product in its epilogue: the int32 product never
// goes to memory. The cuBLASLt path writes it (4 bytes per output) and an
// epilogue kernel reads it back: at M = K = N = 8192 that is 512 MB of the
// layer's ~900 MB of traffic. cuBLASLt itself has no int8 kernel with a float
// output (its heuristic returns NOT_SUPPORTED for int8 → bf16 / fp32 with
// scale vectors: kernels/NOTES.md, issue 11, session 11).
//
// CPU reference: kernels/cpu/llm_int8.cpp. The dequantization is epilogue_kernel's
// (llm_int8.cu) operation for operation, so without outlier columns both paths
// agree bit for bit; the outlier columns' product runs on the tensor cores
// (tf32, W as hi + lo parts) and agrees to within one unit in the last place
// of the 16-bit output plus 2^-20 of the outlier products' magnitude
// (tests/test_cuda_llm_int8.cpp, WgmmaPathAgreesWithCublasLtPath).
//
// A CTA owns 128 tokens × 256 output features. Two consumer warpgroups take 64
// tokens each: wgmma.m64n256k32.s8 with both operands in shared memory (K-major,
// 128-byte swizzle), 128 int32 sums per thread. One producer thread streams
// 128-byte K steps of X (128 × 128 B) and W (256 × 128 B) by TMA into a ring
// of 4 stages (192 KB), on mbarriers: `full` (the copies' bytes), `empty` (the
// 8 consumer warps done with the stage). The epilogue dequantizes in registers,
// adds the outlier product (one pair of tf32 wgmma per 8 outlier columns, the
// columns staged in the free ring) and passes the 16-bit rows through shared
// memory so that each warp writes whole rows. CTAs are rastered in
// groups of 16 token tiles, so the tiles a wave works on (16 MB of X, ~16 MB
// of W at K = 8192) stay in L2. Built for sm_90a only (like gemm4_wgmma.cu); the host takes this
// path only where int8_wgmma_available().
#include "kernels/cuda/llm_int8_parts.cuh"

#include <cuda.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "kernels/cuda/hopper.cuh"

namespace lowbit::cuda::llm_int8_parts {
namespace {

using namespace lowbit::cuda::hopper;

constexpr int kBM = 128;           // tokens per CTA: two consumer warpgroups of 64
constexpr int kBN = 256;           // output features per CTA: wgmma's N
constexpr int kBK = 128;           // K bytes per stage: one swizzle row, 4 wgmma k32 steps
constexpr int kStages = 4;
constexpr int kXBytes = kBM * kBK;  // 16 KB
constexpr int kWBytes = kBN * kBK;  // 32 KB
constexpr int kStageBytes = kXBytes + kWBytes;
constexpr int kThreads = 384;      // 2 consumer warpgroups + 1 producer warpgroup (one thread of it works)
constexpr int kConsumers = 256;
constexpr int kGroupM = 16;        // token tiles per raster group
// The outlier columns' product runs on the tensor cores as tf32 k8 steps, 8 columns ("a chunk") each: W's
// 256 features as hi + lo (hi = W rounded to tf32, lo = the rest: ~2^-21 relative, where tf32 alone would
// keep 2^-11 of a weight that is int8-dequantized), then X's 128 tokens. The producer warpgroup's idle warps
// stage the first chunk during the main loop into its own region past the ring; the rest go, 4 chunks at a
// time, into the ring once the main loop is done. Then the outputs, rounded, pass through the ring so that
// each warp writes whole rows.
constexpr int kChunkCols = 8;
constexpr int kChunkWBytes = kBN * kChunkCols * 4;             // W hi (or lo): 8 KB
constexpr int kChunkXAt = 2 * kChunkWBytes;                    // then X: 4 KB
constexpr int kChunkBytes = kChunkXAt + kBM * kChunkCols * 4;  // 20 KB
constexpr int kRingChunks = 4;
constexpr int kOutAt = kRingChunks * kChunkBytes;              // the staged outputs, after the ring's chunks
constexpr int kOutPitch = kBN + 8;                             // 16-bit outputs per staged row (no bank conflicts)
static_assert(kOutAt + kBM * kOutPitch * 2 <= kStages * kStageBytes, "the epilogue's arrays fit in the ring");
static_assert(kOutAt % 1024 == 0 && kOutAt + kBM * kBN * 2 <= kStages * kStageBytes, "the TMA store's boxes");
constexpr int kStagers = 96;                                   // warps 1 … 3 of the producer warpgroup
constexpr int kChunk0At = kStages * kStageBytes + 128;         // from the ring: past it and its barriers
// The epilogue's scales and outlier count, put in shared memory by the stagers during the main loop (read
// from global memory after it they cost the epilogue L2 round trips: 3.4 / 4.3 µs a tile without / with
// outliers against 2.9 / 3.3, of ~48, H100, per-CTA %globaltimer stamps).
constexpr int kScalesAt = kChunk0At + kChunkBytes;             // [kBN] column scales, [kBM] row scales, count
constexpr int kScalesBytes = (kBN + kBM + 4) * 4;
constexpr int kSmemBytes = kScalesAt + kScalesBytes + 1024;    // + the ring's alignment slack
static_assert(2 * kStages * 8 <= 128, "the barriers fit before the first chunk");
static_assert(kSmemBytes <= 227 * 1024, "shared memory");

#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
// The 128 accumulator registers of an m64n256 wgmma: "%0, …, %127" and the operand list with constraint C.
#define LOWBIT_D16(b)                                                                                        \
  "%" #b "0, %" #b "1, %" #b "2, %" #b "3, %" #b "4, %" #b "5, %" #b "6, %" #b "7, %" #b "8, %" #b "9, "
#define LOWBIT_D8(C, b) C(d[b]), C(d[b + 1]), C(d[b + 2]), C(d[b + 3]), C(d[b + 4]), C(d[b + 5]), C(d[b + 6]), C(d[b + 7])
#define LOWBIT_D128(C)                                                                                          \
  LOWBIT_D8(C, 0), LOWBIT_D8(C, 8), LOWBIT_D8(C, 16), LOWBIT_D8(C, 24), LOWBIT_D8(C, 32), LOWBIT_D8(C, 40),     \
      LOWBIT_D8(C, 48), LOWBIT_D8(C, 56), LOWBIT_D8(C, 64), LOWBIT_D8(C, 72), LOWBIT_D8(C, 80), LOWBIT_D8(C, 88), \
      LOWBIT_D8(C, 96), LOWBIT_D8(C, 104), LOWBIT_D8(C, 112), LOWBIT_D8(C, 120)
#define LOWBIT_REGS128                                                                                      \
  "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, " LOWBIT_D16(1) LOWBIT_D16(2) LOWBIT_D16(3) LOWBIT_D16(4)          \
      LOWBIT_D16(5) LOWBIT_D16(6) LOWBIT_D16(7) LOWBIT_D16(8) LOWBIT_D16(9) LOWBIT_D16(10) LOWBIT_D16(11)     \
          "%120, %121, %122, %123, %124, %125, %126, %127"

// d += A · B: 64 tokens × 256 features × 32 k, int8 in, int32 sums (exact); both operands by descriptor.
// accumulate = 0: d = A · B (the first step; no instruction but wgmma may define d in the pipeline, C7515).
__device__ __forceinline__ void wgmma_m64n256k32_s8(std::int32_t (&d)[128], std::uint64_t a, std::uint64_t b,
                                                    int accumulate) {
  asm volatile(
      "{\n .reg .pred p;\n setp.ne.b32 p, %130, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n256k32.s32.s8.s8 {" LOWBIT_REGS128 "}, %128, %129, p;\n}\n"
      : LOWBIT_D128("+r")
      : "l"(a), "l"(b), "r"(accumulate));
}
// Keeps the compiler from moving accesses to the sums across the asynchronous wgmma.
__device__ __forceinline__ void pin(std::int32_t (&r)[128]) {
#pragma unroll
  for (int i = 0; i < 128; ++i) asm volatile("" : "+r"(r[i])::"memory");
}
__device__ __forceinline__ void pin(float (&r)[128]) {
#pragma unroll
  for (int i = 0; i < 128; ++i) asm volatile("" : "+f"(r[i])::"memory");
}
// d += A · B: 64 tokens × 256 features × 8 k in tf32 (fp32 words, the tensor cores ignore their low 13
// mantissa bits), fp32 sums; both operands by descriptor (K-major; tf32 has no transposed form).
__device__ __forceinline__ void wgmma_m64n256k8_tf32(float (&d)[128], std::uint64_t a, std::uint64_t b) {
  asm volatile("wgmma.mma_async.sync.aligned.m64n256k8.f32.tf32.tf32 {" LOWBIT_REGS128 "}, %128, %129, 1, 1, 1;\n"
               : LOWBIT_D128("+f")
               : "l"(a), "l"(b));
}
#undef LOWBIT_REGS128
#undef LOWBIT_D128
#undef LOWBIT_D8
#undef LOWBIT_D16
#endif

__device__ __forceinline__ std::uint32_t pack2(__nv_bfloat16*, float lo, float hi) { return detail::pack_bf16x2(lo, hi); }
__device__ __forceinline__ std::uint32_t pack2(__half*, float lo, float hi) { return detail::pack_f16x2(lo, hi); }

// Byte offset of (row, k) in an 8-column tf32 step, K-major without swizzle: core matrices of 8 rows ×
// 16 bytes, the two of an 8-row group 128 bytes apart (the descriptor's leading byte offset), 8-row groups
// 256 bytes apart (its stride byte offset).
__device__ __forceinline__ int core_offset(int row, int k) {
  return (row >> 3) * 256 + (k >> 2) * 128 + (row & 7) * 16 + (k & 3) * 4;
}

// Stages the chunk of outlier columns j0 … j0 + 7 (zeros from `count` on, for rows past m and features past
// n) for the tile at (m0, n0), by `threads` threads of which this is `first`: the gather's copies (wc, xo)
// for the first kGatheredCapacity columns, X and the layer's weight themselves past those. kUnroll loads at
// a time (2 where the caller holds its 128 sums in registers: 4 spilled them).
template <int kUnroll, class T>
__device__ __forceinline__ void stage_chunk(unsigned char* dst, int j0, int count, int m0, int n0, int m,
                                            const LayerView<T>& g, const T* __restrict__ x, int first, int threads) {
#pragma unroll kUnroll
  for (int i = first; i < kChunkCols * kBN; i += threads) {
    const int c = i / kBN, f = i % kBN, j = j0 + c, n = n0 + f;
    float w = 0.0f;  // wc's columns n … n_padded − 1 are 0
    if (j < count && n < g.n_padded)
      w = j < kGatheredCapacity ? g.wc[static_cast<std::size_t>(j) * g.n_padded + n]
          : n < g.n             ? outlier_weight(g.w16, g.k, g.wq, g.w_absmax, g.k_padded, n, g.cols[j])
                                : 0.0f;
    std::uint32_t hi;
    asm("cvt.rna.tf32.f32 %0, %1;" : "=r"(hi) : "f"(w));
    *reinterpret_cast<std::uint32_t*>(dst + core_offset(f, c)) = hi;
    *reinterpret_cast<float*>(dst + kChunkWBytes + core_offset(f, c)) = w - __uint_as_float(hi);
  }
#pragma unroll kUnroll
  for (int i = first; i < kBM * kChunkCols; i += threads) {
    const int row = i / kChunkCols, c = i % kChunkCols, j = j0 + c, tok = m0 + row;
    *reinterpret_cast<float*>(dst + kChunkXAt + core_offset(row, c)) = j < count && tok < m ? outlier_x(g, x, tok, j) : 0.0f;
  }
}

#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
// out += the chunk's product for this warpgroup's 64 tokens: X · W_hiᵀ + X · W_loᵀ.
__device__ __forceinline__ void multiply_chunk(float (&out)[128], const unsigned char* chunk, int wg) {
  const std::uint64_t da = wg_desc_plain(chunk + kChunkXAt + wg * (64 / 8) * 256, 128, 256);
  wgmma_m64n256k8_tf32(out, da, wg_desc_plain(chunk, 128, 256));
  wgmma_m64n256k8_tf32(out, da, wg_desc_plain(chunk + kChunkWBytes, 128, 256));
}
#endif

template <class T, bool kOutliers>
__global__ void __launch_bounds__(kThreads, 1)
    int8_gemm_wgmma_kernel(const __grid_constant__ CUtensorMap x_map, const __grid_constant__ CUtensorMap w_map,
                           const __grid_constant__ CUtensorMap y_map, int tma_store,
                           const float* __restrict__ row_absmax, int m, LayerView<T> g, const T* __restrict__ x,
                           std::uint8_t* __restrict__ flags, T* __restrict__ y) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  extern __shared__ unsigned char smem_raw[];
  // TMA's 128-byte swizzle needs 1024-byte-aligned boxes.
  unsigned char* ring = smem_raw + ((1024u - (smem_addr(smem_raw) & 1023u)) & 1023u);
  std::uint64_t* full = reinterpret_cast<std::uint64_t*>(ring + kStages * kStageBytes);
  std::uint64_t* empty = full + kStages;
  const int tid = static_cast<int>(threadIdx.x);
  const int wg = __shfl_sync(0xffffffffu, tid / 128, 0);  // warp-uniform in the compiler's eyes (else wgmma serializes)
  const int ksteps = (g.k_padded + kBK - 1) / kBK;
  const int tiles_m = (m + kBM - 1) / kBM, tiles_n = (g.n_padded + kBN - 1) / kBN;
  const int per_group = kGroupM * tiles_n, b = static_cast<int>(blockIdx.x);
  const int first_m = b / per_group * kGroupM, gm = min(kGroupM, tiles_m - first_m), local = b % per_group;
  const int m0 = (first_m + local % gm) * kBM, n0 = local / gm * kBN;
  auto stage = [&](int s) { return ring + (s % kStages) * kStageBytes; };
  if (tid == 0) {
    for (int i = 0; i < kStages; ++i) {
      mbar_init(&full[i], 1);
      mbar_init(&empty[i], kConsumers / 32);  // lane 0 of every consumer warp
    }
    asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
  }
  __syncthreads();
  if (wg == 2) {
    // ---- producer: W's first box before the quantizer's X exists (it does not depend on it); then each
    // stage whole, in order, so that the first stage lands first. (All four of W's boxes before the wait put
    // X's first box behind 96 KB more of W: a CTA's first stage landed 2.4 µs after its start instead of 2.0,
    // H100, per-CTA %globaltimer stamps; only the first wave waits for the previous kernel.)
    if (tid == 2 * 128) {
      const int head = ksteps < kStages ? ksteps : kStages;
      mbar_arrive_expect_tx(&full[0], kStageBytes);
      tma_2d(stage(0) + kXBytes, &w_map, 0, n0, &full[0]);
      detail::wait_for_previous_grid();
      tma_2d(stage(0), &x_map, 0, m0, &full[0]);
      for (int s = 1; s < head; ++s) {
        mbar_arrive_expect_tx(&full[s], kStageBytes);
        tma_2d(stage(s), &x_map, s * kBK, m0, &full[s]);
        tma_2d(stage(s) + kXBytes, &w_map, s * kBK, n0, &full[s]);
      }
      for (int s = kStages; s < ksteps; ++s) {
        mbar_wait(&empty[s % kStages], ((s / kStages) - 1) & 1);
        std::uint64_t* bar = &full[s % kStages];
        mbar_arrive_expect_tx(bar, kStageBytes);
        tma_2d(stage(s) + kXBytes, &w_map, s * kBK, n0, bar);
        tma_2d(stage(s), &x_map, s * kBK, m0, bar);
      }
    }
    if (tid >= 3 * 128 - kStagers) {  // warps 1 … 3, during the main loop: the epilogue's scales, then the
                                      // first chunk of outlier columns
      const int i = tid - (3 * 128 - kStagers);
      float* col_scale = reinterpret_cast<float*>(ring + kScalesAt);
      float* row_scale = col_scale + kBN;
      for (int f = i; f < kBN; f += kStagers) col_scale[f] = n0 + f < g.n_padded ? g.w_absmax[n0 + f] : 0.0f;
      detail::wait_for_previous_grid();  // the row absmax, the gather's list and copies
      for (int r = i; r < kBM; r += kStagers) row_scale[r] = m0 + r < m ? row_absmax[m0 + r] : 0.0f;
      int count = 0;
      if constexpr (kOutliers) count = *g.count;
      if (i == 0) *reinterpret_cast<int*>(row_scale + kBM) = count;
      asm volatile("bar.arrive 3, %0;\n" ::"n"(kConsumers + kStagers) : "memory");
      if (kOutliers && count > 0) {
        stage_chunk<4>(ring + kChunk0At, 0, count, m0, n0, m, g, x, i, kStagers);
        asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");  // visible to the tensor cores
        asm volatile("bar.arrive 2, %0;\n" ::"n"(kConsumers + kStagers) : "memory");
      }
    }
    return;
  }
  // ---- consumers
  std::int32_t acc[128];  // defined by the first step's wgmma (accumulate = 0)
  for (int s = 0; s < ksteps; ++s) {
    mbar_wait(&full[s % kStages], (s / kStages) & 1);
    const unsigned char* st = stage(s);
    const std::uint64_t da = wg_desc(st + wg * 64 * kBK), db = wg_desc(st + kXBytes);
    wg_fence();
#pragma unroll
    for (int kk = 0; kk < 4; ++kk) wgmma_m64n256k32_s8(acc, da + 2 * kk, db + 2 * kk, s | kk);  // +32 bytes of K
    wg_commit();
    wg_wait<1>();  // step s − 1's products are done: its stage is free (no touching acc here: C7514)
    if (s > 0 && (tid & 31) == 0) mbar_arrive(&empty[(s - 1) % kStages]);
  }
  wg_wait<0>();
  pin(acc);

  // ---- epilogue. Thread (warp v of the warpgroup, lane 4·gq + q) holds rows r0 = 64·wg + 16·v + gq and
  // r0 + 8, features 8j + 2q and + 1: acc[4j + 0 … 3].
  const int lane = tid & 31, q = lane & 3;
  const int r0 = wg * 64 + ((tid & 127) >> 5) * 16 + (lane >> 2), r1 = r0 + 8;
  // Both warpgroups are done with the ring; the stagers have put the scales in shared memory.
  asm volatile("bar.sync 3, %0;\n" ::"n"(kConsumers + kStagers) : "memory");
  const float* col_scale = reinterpret_cast<const float*>(ring + kScalesAt);
  const float* row_scale = col_scale + kBN;
  const int count = *reinterpret_cast<const int*>(row_scale + kBM);  // outlier columns
  if constexpr (kOutliers) {
    if (b == 0)  // the quantizer and the gather are done with the list (this grid waited for them)
      release_outlier_list(g, flags, count, tid, kConsumers);
  }
  // Dequantize in registers: epilogue_kernel's float operations (dequantize_int32), so with no outlier
  // columns the paths agree bit for bit.
  const float ra0 = row_scale[r0], ra1 = row_scale[r1];  // 0 past m
  float out[128];
#pragma unroll
  for (int j = 0; j < 32; ++j) {
    const float2 ca = *reinterpret_cast<const float2*>(col_scale + 8 * j + 2 * q);  // 0 past n_padded
    out[4 * j] = dequantize_int32(acc[4 * j], ra0, ca.x);
    out[4 * j + 1] = dequantize_int32(acc[4 * j + 1], ra0, ca.y);
    out[4 * j + 2] = dequantize_int32(acc[4 * j + 2], ra1, ca.x);
    out[4 * j + 3] = dequantize_int32(acc[4 * j + 3], ra1, ca.y);
  }
  if constexpr (kOutliers) {
    if (count > 0) {
      // out += X[:, outliers] · W[:, outliers]ᵀ on the tensor cores (fp32 sums in their order: within a
      // stated tolerance of epilogue_kernel's sequential FMAs, tests/test_cuda_llm_int8.cpp). The first
      // chunk is the stagers' (waiting for them here); the rest pass through the ring, 4 chunks at a time.
      asm volatile("bar.sync 2, %0;\n" ::"n"(kConsumers + kStagers) : "memory");
      wg_fence();
      multiply_chunk(out, ring + kChunk0At, wg);
      wg_commit();
      wg_wait<0>();
      for (int j0 = kChunkCols; j0 < count; j0 += kRingChunks * kChunkCols) {
        asm volatile("bar.sync 1, %0;\n" ::"n"(kConsumers) : "memory");  // both warpgroups done with the ring
        for (int c = 0; c < kRingChunks && j0 + c * kChunkCols < count; ++c)
          stage_chunk<2>(ring + c * kChunkBytes, j0 + c * kChunkCols, count, m0, n0, m, g, x, tid, kConsumers);
        asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
        asm volatile("bar.sync 1, %0;\n" ::"n"(kConsumers) : "memory");
        wg_fence();
        for (int c = 0; c < kRingChunks && j0 + c * kChunkCols < count; ++c) multiply_chunk(out, ring + c * kChunkBytes, wg);
        wg_commit();
        wg_wait<0>();
      }
      pin(out);
    }
  }
  T* staged = reinterpret_cast<T*>(ring + kOutAt);
  if (tma_store) {
    // Round to T and stage the tile as 4 boxes of 64 features × 128 rows in TMA's 128-byte swizzle (16-byte
    // chunk c of row r at chunk c ^ (r % 8): a warp's 8 rows × 4 words in 32 different banks), then one
    // thread stores the boxes with TMA: the CTA waits only until they have been read from shared memory
    // (the store loop below took ~1.5 µs of a tile, its per-thread loads and stores in turn).
    unsigned char* boxes = ring + kOutAt;
#pragma unroll
    for (int j = 0; j < 32; ++j) {
      unsigned char* box = boxes + (j >> 3) * (kBM * 128) + 4 * q;
      *reinterpret_cast<std::uint32_t*>(box + r0 * 128 + (((j & 7) ^ (r0 & 7)) << 4)) =
          pack2(staged, out[4 * j], out[4 * j + 1]);
      *reinterpret_cast<std::uint32_t*>(box + r1 * 128 + (((j & 7) ^ (r1 & 7)) << 4)) =
          pack2(staged, out[4 * j + 2], out[4 * j + 3]);
    }
    asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");  // visible to the TMA unit
    asm volatile("bar.sync 1, %0;\n" ::"n"(kConsumers) : "memory");
    if (tid == 0) {
      for (int bx = 0; bx < kBN / 64 && n0 + 64 * bx < g.n; ++bx) tma_store_2d(&y_map, n0 + 64 * bx, m0, boxes + bx * (kBM * 128));
      asm volatile("cp.async.bulk.commit_group;\n" ::: "memory");
      asm volatile("cp.async.bulk.wait_group.read 0;\n" ::: "memory");  // shared memory read: the CTA may end
    }
    return;
  }
  // Round to T and stage the rows: word (r, 4j + q) of a 132-word row — 32 different banks per store.
#pragma unroll
  for (int j = 0; j < 32; ++j) {
    *reinterpret_cast<std::uint32_t*>(staged + r0 * kOutPitch + 8 * j + 2 * q) = pack2(staged, out[4 * j], out[4 * j + 1]);
    *reinterpret_cast<std::uint32_t*>(staged + r1 * kOutPitch + 8 * j + 2 * q) = pack2(staged, out[4 * j + 2], out[4 * j + 3]);
  }
  asm volatile("bar.sync 1, %0;\n" ::"n"(kConsumers) : "memory");
  const int n = g.n, f = n0 + 8 * lane;
  if (f >= n) return;
#pragma unroll 1
  for (int row = tid >> 5; row < kBM; row += kConsumers / 32) {
    const int tok = m0 + row;
    if (tok >= m) break;
    const uint4 v = *reinterpret_cast<const uint4*>(staged + row * kOutPitch + 8 * lane);
    T* yr = y + static_cast<std::size_t>(tok) * n + f;
    if (n % 8 == 0) {  // f + 8 <= n and 16-byte aligned
      *reinterpret_cast<uint4*>(yr) = v;
    } else {
      const T* e8 = reinterpret_cast<const T*>(&v);
      for (int e = 0; e < 8 && f + e < n; ++e) yr[e] = e8[e];
    }
  }
#endif
}

template <class T, bool kOutliers>
cudaError_t launch_t(const CUtensorMap& xm, const CUtensorMap& wm, const CUtensorMap& ym, int tma_store,
                     const float* row_absmax, int m, const LayerView<T>& g, const T* x, std::uint8_t* flags, T* y,
                     bool overlap, cudaStream_t stream) {
  auto kernel = int8_gemm_wgmma_kernel<T, kOutliers>;
  static const cudaError_t attr = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, kSmemBytes);
  if (attr != cudaSuccess) return attr;
  const int tiles = ((m + kBM - 1) / kBM) * ((g.n_padded + kBN - 1) / kBN);
  return detail::launch_after_previous_starts_ex(overlap, 1u, kSmemBytes, kernel, dim3(static_cast<unsigned>(tiles)),
                                                 dim3(kThreads), stream, xm, wm, ym, tma_store, row_absmax, m, g, x,
                                                 flags, y);
}

// LOWBIT_TMA_STORE=0 in the environment takes the per-thread store loop everywhere (to measure what the
// TMA store gives).
bool tma_store_enabled() {
  static const bool on = detail::switched_on("LOWBIT_TMA_STORE");
  return on;
}

}  // namespace

bool int8_wgmma_available() {
  static const bool ok =
      sm90a_kernel_runs(reinterpret_cast<const void*>(int8_gemm_wgmma_kernel<__nv_bfloat16, false>));
  return ok;
}

template <class T>
cudaError_t launch_int8_wgmma(const std::int8_t* xq, const float* row_absmax, int m, const LayerView<T>& g,
                              const T* x, bool outliers, std::uint8_t* flags, T* y, bool overlap, cudaStream_t stream) {
  // Tensor maps per call (host-side encoding, ~1 µs; graph capture bakes them in).
  CUtensorMap xm{}, wm{};
  const cuuint64_t kp = static_cast<cuuint64_t>(g.k_padded);
  const cuuint64_t xdims[2] = {kp, static_cast<cuuint64_t>(m)}, wdims[2] = {kp, static_cast<cuuint64_t>(g.n_padded)};
  const cuuint64_t pitch[1] = {kp};
  const cuuint32_t xbox[2] = {kBK, kBM}, wbox[2] = {kBK, kBN};
  if (!encode_map(&xm, CU_TENSOR_MAP_DATA_TYPE_UINT8, xq, 2, xdims, pitch, xbox) ||
      !encode_map(&wm, CU_TENSOR_MAP_DATA_TYPE_UINT8, g.wq, 2, wdims, pitch, wbox))
    return cudaErrorInvalidValue;
  // The output through TMA stores where its rows are whole 16-byte units (else a store per thread and row).
  CUtensorMap ym{};
  const cuuint64_t ydims[2] = {static_cast<cuuint64_t>(g.n), static_cast<cuuint64_t>(m)};
  const cuuint64_t ypitch[1] = {static_cast<cuuint64_t>(g.n) * 2};
  const cuuint32_t ybox[2] = {64, kBM};
  const int tma_store = g.n % 8 == 0 && reinterpret_cast<std::uintptr_t>(y) % 16 == 0 && tma_store_enabled() &&
                        encode_map(&ym, CU_TENSOR_MAP_DATA_TYPE_UINT16, y, 2, ydims, ypitch, ybox);
  return outliers ? launch_t<T, true>(xm, wm, ym, tma_store, row_absmax, m, g, x, flags, y, overlap, stream)
                  : launch_t<T, false>(xm, wm, ym, tma_store, row_absmax, m, g, x, flags, y, overlap, stream);
}

template cudaError_t launch_int8_wgmma<__nv_bfloat16>(const std::int8_t*, const float*, int,
                                                      const LayerView<__nv_bfloat16>&, const __nv_bfloat16*, bool,
                                                      std::uint8_t*, __nv_bfloat16*, bool, cudaStream_t);
template cudaError_t launch_int8_wgmma<__half>(const std::int8_t*, const float*, int, const LayerView<__half>&,
                                               const __half*, bool, std::uint8_t*, __half*, bool, cudaStream_t);

}  // namespace lowbit::cuda::llm_int8_parts
