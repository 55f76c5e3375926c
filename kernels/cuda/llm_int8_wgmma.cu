// kernels/cuda/llm_int8_wgmma.cu — LLM.int8's int8 × int8 GEMM on Hopper's
// wgmma, with the dequantization (row absmax × column absmax / 127²) and the
// outlier columns' 16-bit product in its epilogue: the int32 product never
// goes to memory. The cuBLASLt path writes it (4 bytes per output) and an
// epilogue kernel reads it back: at M = K = N = 8192 that is 512 MB of the
// layer's ~900 MB of traffic. cuBLASLt itself has no int8 kernel with a float
// output (its heuristic returns NOT_SUPPORTED for int8 → bf16 / fp32 with
// scale vectors: kernels/NOTES.md, issue 11, session 11).
//
// CPU reference: kernels/cpu/llm_int8.cpp; the epilogue is epilogue_kernel's
// (llm_int8.cu) operation for operation, so both paths agree bit for bit
// (tests/test_cuda_llm_int8.cpp, WgmmaPathEqualsCublasLtPathBitForBit).
//
// A CTA owns 128 tokens × 256 output features. Two consumer warpgroups take 64
// tokens each: wgmma.m64n256k32.s8 with both operands in shared memory (K-major,
// 128-byte swizzle), 128 int32 sums per thread. One producer thread streams
// 128-byte K steps of X (128 × 128 B) and W (256 × 128 B) by TMA into a ring
// of 4 stages (192 KB), on mbarriers: `full` (the copies' bytes), `empty` (the
// 8 consumer warps done with the stage). The epilogue passes the sums through
// shared memory so that each warp writes whole rows. CTAs are rastered in
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
constexpr int kSumPitch = kBN + 4;  // int32 sums per row in shared memory after the main loop (fewer bank conflicts)
constexpr int kSumBytes = kBM * kSumPitch * 4;
constexpr int kStagedCols = 32;     // outlier columns the epilogue reads from shared memory
static_assert(kMaxEpilogueOutliers <= kStagedCols, "the epilogue stages every outlier column it takes");
constexpr int kRegCols = 8;         // of those, held in registers (0.1 % of K = 8192 is 8 columns)
static_assert(kSumBytes + kStagedCols * (kBN + kBM) * 4 + kBM * 4 <= kStages * kStageBytes,
              "the epilogue's arrays fit in the ring");
constexpr int kSmemBytes = kStages * kStageBytes + 2 * kStages * 8 + 1024;  // + barriers + alignment slack
static_assert(kSmemBytes <= 227 * 1024, "shared memory");

#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
// d += A · B: 64 tokens × 256 features × 32 k, int8 in, int32 sums (exact); both operands by descriptor.
// accumulate = 0: d = A · B (the first step; no instruction but wgmma may define d in the pipeline, C7515).
__device__ __forceinline__ void wgmma_m64n256k32_s8(std::int32_t (&d)[128], std::uint64_t a, std::uint64_t b,
                                                    int accumulate) {
  asm volatile(
      "{\n .reg .pred p;\n setp.ne.b32 p, %130, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n256k32.s32.s8.s8 {"
      "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, "
      "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, "
      "%32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, "
      "%48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63, "
      "%64, %65, %66, %67, %68, %69, %70, %71, %72, %73, %74, %75, %76, %77, %78, %79, "
      "%80, %81, %82, %83, %84, %85, %86, %87, %88, %89, %90, %91, %92, %93, %94, %95, "
      "%96, %97, %98, %99, %100, %101, %102, %103, %104, %105, %106, %107, %108, %109, %110, %111, "
      "%112, %113, %114, %115, %116, %117, %118, %119, %120, %121, %122, %123, %124, %125, %126, %127"
      "}, %128, %129, p;\n}\n"
      :
        "+r"(d[0]), "+r"(d[1]), "+r"(d[2]), "+r"(d[3]), "+r"(d[4]), "+r"(d[5]), "+r"(d[6]), "+r"(d[7]),
        "+r"(d[8]), "+r"(d[9]), "+r"(d[10]), "+r"(d[11]), "+r"(d[12]), "+r"(d[13]), "+r"(d[14]), "+r"(d[15]),
        "+r"(d[16]), "+r"(d[17]), "+r"(d[18]), "+r"(d[19]), "+r"(d[20]), "+r"(d[21]), "+r"(d[22]), "+r"(d[23]),
        "+r"(d[24]), "+r"(d[25]), "+r"(d[26]), "+r"(d[27]), "+r"(d[28]), "+r"(d[29]), "+r"(d[30]), "+r"(d[31]),
        "+r"(d[32]), "+r"(d[33]), "+r"(d[34]), "+r"(d[35]), "+r"(d[36]), "+r"(d[37]), "+r"(d[38]), "+r"(d[39]),
        "+r"(d[40]), "+r"(d[41]), "+r"(d[42]), "+r"(d[43]), "+r"(d[44]), "+r"(d[45]), "+r"(d[46]), "+r"(d[47]),
        "+r"(d[48]), "+r"(d[49]), "+r"(d[50]), "+r"(d[51]), "+r"(d[52]), "+r"(d[53]), "+r"(d[54]), "+r"(d[55]),
        "+r"(d[56]), "+r"(d[57]), "+r"(d[58]), "+r"(d[59]), "+r"(d[60]), "+r"(d[61]), "+r"(d[62]), "+r"(d[63]),
        "+r"(d[64]), "+r"(d[65]), "+r"(d[66]), "+r"(d[67]), "+r"(d[68]), "+r"(d[69]), "+r"(d[70]), "+r"(d[71]),
        "+r"(d[72]), "+r"(d[73]), "+r"(d[74]), "+r"(d[75]), "+r"(d[76]), "+r"(d[77]), "+r"(d[78]), "+r"(d[79]),
        "+r"(d[80]), "+r"(d[81]), "+r"(d[82]), "+r"(d[83]), "+r"(d[84]), "+r"(d[85]), "+r"(d[86]), "+r"(d[87]),
        "+r"(d[88]), "+r"(d[89]), "+r"(d[90]), "+r"(d[91]), "+r"(d[92]), "+r"(d[93]), "+r"(d[94]), "+r"(d[95]),
        "+r"(d[96]), "+r"(d[97]), "+r"(d[98]), "+r"(d[99]), "+r"(d[100]), "+r"(d[101]), "+r"(d[102]), "+r"(d[103]),
        "+r"(d[104]), "+r"(d[105]), "+r"(d[106]), "+r"(d[107]), "+r"(d[108]), "+r"(d[109]), "+r"(d[110]), "+r"(d[111]),
        "+r"(d[112]), "+r"(d[113]), "+r"(d[114]), "+r"(d[115]), "+r"(d[116]), "+r"(d[117]), "+r"(d[118]), "+r"(d[119]),
        "+r"(d[120]), "+r"(d[121]), "+r"(d[122]), "+r"(d[123]), "+r"(d[124]), "+r"(d[125]), "+r"(d[126]), "+r"(d[127])
      : "l"(a), "l"(b), "r"(accumulate));
}
// Keeps the compiler from moving accesses to the sums across the asynchronous wgmma.
__device__ __forceinline__ void pin(std::int32_t (&r)[128]) {
#pragma unroll
  for (int i = 0; i < 128; ++i) asm volatile("" : "+r"(r[i])::"memory");
}
#endif

__device__ __forceinline__ std::uint32_t pack2(__nv_bfloat16*, float lo, float hi) { return detail::pack_bf16x2(lo, hi); }
__device__ __forceinline__ std::uint32_t pack2(__half*, float lo, float hi) { return detail::pack_f16x2(lo, hi); }

template <class T, bool kOutliers>
__global__ void __launch_bounds__(kThreads, 1)
    int8_gemm_wgmma_kernel(const __grid_constant__ CUtensorMap x_map, const __grid_constant__ CUtensorMap w_map,
                           const float* __restrict__ row_absmax, int m, LayerView<T> g,
                           std::uint8_t* __restrict__ flags, std::int32_t* __restrict__ c32, T* __restrict__ y) {
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
    // ---- producer: W's first stages before the quantizer's X exists (they do not depend on it)
    if (tid == 2 * 128) {
      const int head = ksteps < kStages ? ksteps : kStages;
      for (int s = 0; s < head; ++s) {
        mbar_arrive_expect_tx(&full[s], kStageBytes);
        tma_2d(stage(s) + kXBytes, &w_map, s * kBK, n0, &full[s]);
      }
      detail::wait_for_previous_grid();
      for (int s = 0; s < head; ++s) tma_2d(stage(s), &x_map, s * kBK, m0, &full[s]);
      for (int s = kStages; s < ksteps; ++s) {
        mbar_wait(&empty[s % kStages], ((s / kStages) - 1) & 1);
        std::uint64_t* bar = &full[s % kStages];
        mbar_arrive_expect_tx(bar, kStageBytes);
        tma_2d(stage(s) + kXBytes, &w_map, s * kBK, n0, bar);
        tma_2d(stage(s), &x_map, s * kBK, m0, bar);
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

  // ---- epilogue: the sums go through shared memory (the ring is free once both warpgroups are past their
  // last wgmma), so that a warp then owns one token's 256 features, 8 per lane: 16-byte loads and stores,
  // one broadcast load per outlier column, no sums held in registers. Thread (warp v of the warpgroup,
  // lane 4·gq + q) holds rows 64·wg + 16·v + gq and + 8, features 8j + 2q and + 1: acc[4j + 0 … 3].
  asm volatile("bar.sync 1, %0;\n" ::"n"(kConsumers) : "memory");
  std::int32_t* sums = reinterpret_cast<std::int32_t*>(ring);
  float* staged_w = reinterpret_cast<float*>(ring + kSumBytes);          // [kStagedCols][kBN]
  float* staged_x = staged_w + kStagedCols * kBN;                          // [kBM][kStagedCols]
  {
    const int lane = tid & 31, row = wg * 64 + ((tid & 127) >> 5) * 16 + (lane >> 2), col = 2 * (lane & 3);
#pragma unroll
    for (int j = 0; j < 32; ++j) {
      *reinterpret_cast<int2*>(sums + row * kSumPitch + 8 * j + col) = make_int2(acc[4 * j], acc[4 * j + 1]);
      *reinterpret_cast<int2*>(sums + (row + 8) * kSumPitch + 8 * j + col) = make_int2(acc[4 * j + 2], acc[4 * j + 3]);
    }
  }
  asm volatile("bar.sync 1, %0;\n" ::"n"(kConsumers) : "memory");
  float* staged_r = reinterpret_cast<float*>(ring + kSumBytes + kStagedCols * (kBN + kBM) * 4);  // [kBM]
  if (tid < kBM) staged_r[tid] = m0 + tid < m ? row_absmax[m0 + tid] : 0.0f;
  int count = 0;  // outlier columns, ≤ kMaxEpilogueOutliers here: all staged in shared memory
  if constexpr (kOutliers) {
    count = *g.count;
    if (count > kMaxEpilogueOutliers) {
      // Too many outlier columns for this epilogue (it runs while the SM's tensor cores wait: 1 % of
      // K = 8192 made the layer 3× slower): the sums go out as int32, for epilogue_kernel (launched after
      // this grid, idle otherwise) to finish as on the cuBLASLt path.
      const int lane = tid & 31;
      for (int row = tid >> 5; row < kBM && m0 + row < m; row += kConsumers / 32) {
        const int col = n0 + 8 * lane;
        if (col >= g.n_padded) continue;
        const int4* src = reinterpret_cast<const int4*>(sums + row * kSumPitch + 8 * lane);
        int4* dst = reinterpret_cast<int4*>(c32 + static_cast<std::size_t>(m0 + row) * g.n_padded + col);
        dst[0] = src[0];
        dst[1] = src[1];
      }
      return;
    }
    if (b == 0)  // the quantizer has read the flags (this grid waited for it): clear them for the next call
      for (int j = tid; j < count; j += kConsumers) flags[g.cols[j]] = 0;
    // The outlier columns' weights (this CTA's 256 features) and x (its 128 tokens) into the ring's free
    // part: every row reads them, from shared memory instead of L2. Zeros up to kRegCols columns: the
    // register block below multiplies them in (fmaf(0, 0, o) == o).
    const int filled = count > 0 ? max(count, kRegCols) : 0;
    for (int i = tid; i < filled * kBN; i += kConsumers) {
      const int c = i / kBN, col = n0 + i % kBN;
      staged_w[i] = c < count && col < g.n_padded ? g.wc[static_cast<std::size_t>(c) * g.n_padded + col] : 0.0f;
    }
    for (int i = tid; i < kBM * filled; i += kConsumers) {
      const int row = i / filled, c = i % filled;
      staged_x[row * kStagedCols + c] =
          c < count && m0 + row < m ? g.xo[static_cast<std::size_t>(m0 + row) * g.xo_stride + c] : 0.0f;
    }
  }
  asm volatile("bar.sync 1, %0;\n" ::"n"(kConsumers) : "memory");  // staged arrays written
  const int n = g.n, lane = tid & 31, f = n0 + 8 * lane;
  if (f >= n) return;
  float ca[8];  // w_absmax has n_padded (a multiple of 16) entries: f + 7 is in range
  {
    const float4 c0 = *reinterpret_cast<const float4*>(g.w_absmax + f), c1 = *reinterpret_cast<const float4*>(g.w_absmax + f + 4);
    ca[0] = c0.x; ca[1] = c0.y; ca[2] = c0.z; ca[3] = c0.w; ca[4] = c1.x; ca[5] = c1.y; ca[6] = c1.z; ca[7] = c1.w;
  }
  // The first kRegCols outlier columns' weights for this lane's 8 features stay in registers (the sums'
  // registers are free now): per row and column one broadcast x and 8 FMAs, no weight loads.
  float wr[kRegCols][8];
  if constexpr (kOutliers) {
#pragma unroll
    for (int c = 0; c < kRegCols; ++c) {
      const float4 w0 = count > 0 ? *reinterpret_cast<const float4*>(staged_w + c * kBN + 8 * lane) : float4{};
      const float4 w1 = count > 0 ? *reinterpret_cast<const float4*>(staged_w + c * kBN + 8 * lane + 4) : float4{};
      wr[c][0] = w0.x; wr[c][1] = w0.y; wr[c][2] = w0.z; wr[c][3] = w0.w;
      wr[c][4] = w1.x; wr[c][5] = w1.y; wr[c][6] = w1.z; wr[c][7] = w1.w;
    }
  }
  // One loop iteration per row, not unrolled: with the outlier loops in it, 16 copies overflowed the
  // instruction cache (Nsight Compute: 23 % of the stall samples "no instruction", +23 % time at M = 2048).
#pragma unroll 1
  for (int row = tid >> 5; row < kBM; row += kConsumers / 32) {
    const int tok = m0 + row;
    if (tok >= m) break;
    const float r = staged_r[row];
    const int4 s0 = *reinterpret_cast<const int4*>(sums + row * kSumPitch + 8 * lane);
    const int4 s1 = *reinterpret_cast<const int4*>(sums + row * kSumPitch + 8 * lane + 4);
    const int q[8] = {s0.x, s0.y, s0.z, s0.w, s1.x, s1.y, s1.z, s1.w};
    float o[8] = {0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f};
    if constexpr (kOutliers) {
      const float* xs = staged_x + row * kStagedCols;
      if (count > 0) {
        const float4 x0 = *reinterpret_cast<const float4*>(xs), x1 = *reinterpret_cast<const float4*>(xs + 4);
        const float xr[kRegCols] = {x0.x, x0.y, x0.z, x0.w, x1.x, x1.y, x1.z, x1.w};
#pragma unroll
        for (int c = 0; c < kRegCols; ++c)
#pragma unroll
          for (int e = 0; e < 8; ++e) o[e] = fmaf(xr[c], wr[c][e], o[e]);
      }
#pragma unroll 4
      for (int c = kRegCols; c < count; ++c) {
        const float x = xs[c];  // a broadcast
        const float4 w0 = *reinterpret_cast<const float4*>(staged_w + c * kBN + 8 * lane);
        const float4 w1 = *reinterpret_cast<const float4*>(staged_w + c * kBN + 8 * lane + 4);
        o[0] = fmaf(x, w0.x, o[0]); o[1] = fmaf(x, w0.y, o[1]); o[2] = fmaf(x, w0.z, o[2]); o[3] = fmaf(x, w0.w, o[3]);
        o[4] = fmaf(x, w1.x, o[4]); o[5] = fmaf(x, w1.y, o[5]); o[6] = fmaf(x, w1.z, o[6]); o[7] = fmaf(x, w1.w, o[7]);
      }
    }
    T* yr = y + static_cast<std::size_t>(tok) * n + f;
    if (n % 8 == 0) {  // f + 8 <= n and 16-byte aligned
      uint4 v;
      v.x = pack2(yr, dequantize_int32(q[0], r, ca[0]) + o[0], dequantize_int32(q[1], r, ca[1]) + o[1]);
      v.y = pack2(yr, dequantize_int32(q[2], r, ca[2]) + o[2], dequantize_int32(q[3], r, ca[3]) + o[3]);
      v.z = pack2(yr, dequantize_int32(q[4], r, ca[4]) + o[4], dequantize_int32(q[5], r, ca[5]) + o[5]);
      v.w = pack2(yr, dequantize_int32(q[6], r, ca[6]) + o[6], dequantize_int32(q[7], r, ca[7]) + o[7]);
      *reinterpret_cast<uint4*>(yr) = v;
    } else {
#pragma unroll
      for (int e = 0; e < 8; ++e)
        if (f + e < n) detail::store1(yr + e, dequantize_int32(q[e], r, ca[e]) + o[e]);
    }
  }
#endif
}

template <class T, bool kOutliers>
cudaError_t launch_t(const CUtensorMap& xm, const CUtensorMap& wm, const float* row_absmax, int m,
                     const LayerView<T>& g, std::uint8_t* flags, std::int32_t* c32, T* y, bool overlap,
                     cudaStream_t stream) {
  auto kernel = int8_gemm_wgmma_kernel<T, kOutliers>;
  static const cudaError_t attr = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, kSmemBytes);
  if (attr != cudaSuccess) return attr;
  const int tiles = ((m + kBM - 1) / kBM) * ((g.n_padded + kBN - 1) / kBN);
  return detail::launch_after_previous_starts_ex(overlap, 1u, kSmemBytes, kernel, dim3(static_cast<unsigned>(tiles)),
                                                 dim3(kThreads), stream, xm, wm, row_absmax, m, g, flags, c32, y);
}

}  // namespace

bool int8_wgmma_available() {
  static const bool ok =
      sm90a_kernel_runs(reinterpret_cast<const void*>(int8_gemm_wgmma_kernel<__nv_bfloat16, false>));
  return ok;
}

template <class T>
cudaError_t launch_int8_wgmma(const std::int8_t* xq, const float* row_absmax, int m, const LayerView<T>& g,
                              bool outliers, std::uint8_t* flags, std::int32_t* c32, T* y,
                              bool overlap, cudaStream_t stream) {
  // Tensor maps per call (host-side encoding, ~1 µs; graph capture bakes them in).
  CUtensorMap xm{}, wm{};
  const cuuint64_t kp = static_cast<cuuint64_t>(g.k_padded);
  const cuuint64_t xdims[2] = {kp, static_cast<cuuint64_t>(m)}, wdims[2] = {kp, static_cast<cuuint64_t>(g.n_padded)};
  const cuuint64_t pitch[1] = {kp};
  const cuuint32_t xbox[2] = {kBK, kBM}, wbox[2] = {kBK, kBN};
  if (!encode_map(&xm, CU_TENSOR_MAP_DATA_TYPE_UINT8, xq, 2, xdims, pitch, xbox) ||
      !encode_map(&wm, CU_TENSOR_MAP_DATA_TYPE_UINT8, g.wq, 2, wdims, pitch, wbox))
    return cudaErrorInvalidValue;
  return outliers ? launch_t<T, true>(xm, wm, row_absmax, m, g, flags, c32, y, overlap, stream)
                  : launch_t<T, false>(xm, wm, row_absmax, m, g, flags, c32, y, overlap, stream);
}

template cudaError_t launch_int8_wgmma<__nv_bfloat16>(const std::int8_t*, const float*, int,
                                                      const LayerView<__nv_bfloat16>&, bool, std::uint8_t*,
                                                      std::int32_t*, __nv_bfloat16*, bool, cudaStream_t);
template cudaError_t launch_int8_wgmma<__half>(const std::int8_t*, const float*, int,
                                               const LayerView<__half>&, bool, std::uint8_t*, std::int32_t*, __half*,
                                               bool, cudaStream_t);

}  // namespace lowbit::cuda::llm_int8_parts
