// kernels/cuda/llm_int8.cu — see llm_int8.cuh for the algorithm.
#include "kernels/cuda/llm_int8.cuh"

#include "kernels/cuda/device_util.cuh"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>

namespace lowbit::cuda {
namespace {

constexpr int kThreads = 256;
constexpr int kEpilogueRows = 4;      // output rows per epilogue block (more: 118 registers, 25 % occupancy)
constexpr int kEpilogueCols = 4;      // output columns per epilogue thread (one 16-byte int32 load)
constexpr int kGatheredCapacity = 512;  // outlier weight columns kept dequantized and contiguous

using detail::load1;
using detail::store1;
using detail::block_max;

// int8 = round(x · 127 / absmax), half away from zero, saturated to ±127 —
// kernels/cpu's round_clamp (clamp first, NaN → −127, then round) with no
// conversion instructions, which run at a quarter of the FP32 rate. The
// result is the two's-complement int8 in the low byte. floor(|c| + 0.5)
// comes from two round-toward-zero adds: RZ never rounds past an integer, so
// the first add's rounding cannot change the floor, and the second leaves it
// in the low mantissa bits of 1.5·2^23 + floor(·).
__device__ __forceinline__ std::uint32_t int8_byte(float x, float scale) {
  const float c = fminf(fmaxf(x * scale, -127.0f), 127.0f);
  const std::uint32_t n = __float_as_uint(__fadd_rz(__fadd_rz(fabsf(c), 0.5f), 12582912.0f));
  const std::uint32_t s = static_cast<std::uint32_t>(__float_as_int(c) >> 31);  // 0 or all ones
  return (n ^ s) - s;
}
__device__ __forceinline__ std::int8_t quantize_int8(float x, float scale) {
  return static_cast<std::int8_t>(int8_byte(x, scale) & 0xFFu);
}

// Four low bytes into one word, first argument lowest.
__device__ __forceinline__ std::uint32_t pack_bytes(std::uint32_t a, std::uint32_t b, std::uint32_t c, std::uint32_t d) {
  return __byte_perm(__byte_perm(a, b, 0x0040), __byte_perm(c, d, 0x0040), 0x5410);
}

// Per-row quantization of W: the same rule with threshold +inf.
template <class T>
__global__ void quantize_weight_kernel(const T* __restrict__ w, int k, int k_padded, std::int8_t* __restrict__ q,
                                       float* __restrict__ absmax) {
  const int row = blockIdx.x;
  const T* wr = w + static_cast<std::size_t>(row) * k;
  float amax = 0.0f;
  for (int c = threadIdx.x; c < k; c += kThreads) amax = fmaxf(amax, fabsf(load1(wr + c)));
  amax = block_max<kThreads>(amax);
  const float scale = amax > 0.0f ? 127.0f / amax : 0.0f;
  std::int8_t* qr = q + static_cast<std::size_t>(row) * k_padded;
  for (int c = threadIdx.x; c < k_padded; c += kThreads) qr[c] = c < k ? quantize_int8(load1(wr + c), scale) : 0;
  if (threadIdx.x == 0) absmax[row] = amax;
}

// 8 consecutive 16-bit values (p 16-byte aligned), through the read-only
// cache: the row quantizer reads each row twice.
template <class T>
__device__ __forceinline__ void load8(const T* p, float (&v)[8]) {
  detail::load8<true>(p, v);
}

// Step 1: flag every column of X holding an element with |x| >= threshold
// (one byte per column, plain stores: every writer writes 1), then the LAST
// block to finish turns the flags into an ascending column list and a count —
// one launch, no host sync.
// Grid: x over column groups of 8 × kThreads, y strides over rows (capped, so
// that the completion counter sees few hundred arrivals, not one per row).
__device__ __forceinline__ int byte_count_nonzero(std::uint64_t v) {
  // bytes are 0 or 1: their sum is the count
  v = (v & 0x00FF00FF00FF00FFull) + ((v >> 8) & 0x00FF00FF00FF00FFull);
  v = (v & 0x0000FFFF0000FFFFull) + ((v >> 16) & 0x0000FFFF0000FFFFull);
  return static_cast<int>((v & 0xFFFFFFFFull) + (v >> 32));
}

// One block compacts flags[0, k_alloc) (k_alloc % 8 == 0) into cols/count
// (the epilogue clears the flags, after quantize_rows has read them). Each thread owns 8 consecutive columns per step; a block-wide
// exclusive scan (warp shuffles, then the warp totals) gives each its offset.
__device__ void compact_flags_block(std::uint8_t* flags, int k_alloc, int* __restrict__ cols, int* __restrict__ count) {
  __shared__ int warp_total[kThreads / 32];
  __shared__ int base;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  if (threadIdx.x == 0) base = 0;
  __syncthreads();
  for (int start = 0; start < k_alloc; start += kThreads * 8) {
    const int c = start + threadIdx.x * 8;
    // written by other blocks: read through L2 (__ldcg), never a stale L1 line
    const std::uint64_t f = c < k_alloc ? __ldcg(reinterpret_cast<const unsigned long long*>(flags + c)) : 0ull;
    const int mine = byte_count_nonzero(f);
    int incl = mine;
    for (int o = 1; o < 32; o <<= 1) {
      const int t = __shfl_up_sync(0xffffffffu, incl, o);
      if (lane >= o) incl += t;
    }
    if (lane == 31) warp_total[warp] = incl;
    __syncthreads();
    int offset = base;
    for (int w = 0; w < warp; ++w) offset += warp_total[w];
    offset += incl - mine;
    if (f != 0ull) {
      for (int e = 0; e < 8; ++e)
        if ((f >> (8 * e)) & 0xFFu) cols[offset++] = c + e;
    }
    __syncthreads();
    if (threadIdx.x == kThreads - 1) base = offset;
    __syncthreads();
  }
  if (threadIdx.x == 0) *count = base;
}

template <class T>
__global__ void __launch_bounds__(kThreads) flag_and_compact_kernel(const T* __restrict__ x, int m, int k, float threshold,
                                                                    std::uint8_t* flags, int k_alloc, int* __restrict__ cols,
                                                                    int* __restrict__ count, unsigned* done) {
  // The row quantizer may start now: it loads its rows before it waits for the flags.
  detail::allow_next_grid_to_start();
  const int c8 = (blockIdx.x * kThreads + threadIdx.x) * 8;
  if (c8 < k) {
    // A bit per column over this thread's rows, flags written once at the
    // end: a store per outlier element sends every row's store to the same
    // few L2 lines (M = 8192, 0.1 % outlier columns: 65 536 stores to 8 bytes).
    unsigned hit = 0u;
    const int cols = min(8, k - c8);
#pragma unroll 8
    for (int row = blockIdx.y; row < m; row += gridDim.y) {
      const T* xr = x + static_cast<std::size_t>(row) * k;
      if (k % 8 == 0) {
        float v[8];
        load8(xr + c8, v);
#pragma unroll
        for (int e = 0; e < 8; ++e) hit |= (fabsf(v[e]) >= threshold ? 1u : 0u) << e;
      } else {
        for (int e = 0; e < cols; ++e) hit |= (fabsf(load1(xr + c8 + e)) >= threshold ? 1u : 0u) << e;
      }
    }
    for (int e = 0; e < cols; ++e)
      if ((hit >> e) & 1u) flags[c8 + e] = 1;
  }
  // The last block to arrive compacts (threadfence reduction pattern).
  __shared__ bool last;
  __threadfence();
  __syncthreads();
  if (threadIdx.x == 0) last = atomicAdd(done, 1u) == gridDim.x * gridDim.y - 1;
  __syncthreads();
  if (!last) return;
  __threadfence();
  compact_flags_block(flags, k_alloc, cols, count);
  if (threadIdx.x == 0) *done = 0u;  // ready for the next call
}

// Outlier columns of the weight, contiguous: wc[j][n_padded] fp32 for the
// first kGatheredCapacity outlier columns (the epilogue reads beyond that
// directly); columns n … n_padded−1 are 0, so the epilogue loads 4 at a time.
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
};

// The outlier columns of the weight (step 2's extra blocks: `block` counts
// from 0, blockDim.x columns each).
template <class T>
__device__ __forceinline__ void gather_outlier_weights(const LayerView<T>& g, int block) {
  const int col = block * blockDim.x + threadIdx.x;
  if (col >= g.n_padded) return;
  const int used = min(*g.count, kGatheredCapacity);
  // 8 columns at a time, all loads issued before the stores: the weight
  // reads are one sector each (row-major W), so a loop of dependent
  // load → store pairs would wait out a DRAM latency per outlier column.
  for (int j0 = 0; j0 < used; j0 += 8) {
    float v[8];
#pragma unroll
    for (int t = 0; t < 8; ++t)
      v[t] = (j0 + t < used && col < g.n) ? outlier_weight(g.w16, g.k, g.wq, g.w_absmax, g.k_padded, col, g.cols[j0 + t]) : 0.0f;
#pragma unroll
    for (int t = 0; t < 8; ++t)
      if (j0 + t < used) g.wc[static_cast<std::size_t>(j0 + t) * g.n_padded + col] = v[t];
  }
}

// X[row, col] of an outlier column into xo at its place in the ascending
// list (binary search; the list is small and the same for every block, so
// it stays in L1).
template <class T>
__device__ __forceinline__ void store_outlier_x(const LayerView<T>& g, int row, int col, float v) {
  int lo = 0, hi = min(*g.count, kGatheredCapacity);
  while (lo < hi) {
    const int mid = (lo + hi) / 2;
    if (__ldg(g.cols + mid) < col) lo = mid + 1;
    else hi = mid;
  }
  if (lo < min(*g.count, kGatheredCapacity)) g.xo[static_cast<std::size_t>(row) * g.xo_stride + lo] = v;
}

// Step 2, one launch: blocks 0 … m−1 quantize one row each; the blocks after
// them gather the outlier weight columns (both need only step 1's list).
// The row absmax skips outlier columns, whose int8 entries are zero (they go
// through the 16-bit path), as in kernels/cpu/llm_int8.cpp. flags == nullptr:
// no outlier columns.
//
// The usual form (K % 8 == 0, K ≤ kResidentMaxK): the block's threads hold
// the row in registers, kRowChunks 16-byte chunks each (chunk c of the row in
// thread c mod blockDim.x), so X is read once; 8 flag bytes per chunk.
constexpr int kRowChunks = 4;
constexpr int kResidentMaxThreads = 1024;
constexpr int kResidentMaxK = 8 * kRowChunks * kResidentMaxThreads - 16;  // k_padded's chunks fit too
template <class T>
__global__ void __launch_bounds__(kResidentMaxThreads) quantize_rows_resident_kernel(
    const T* __restrict__ x, int m, int k, int k_padded, const std::uint8_t* __restrict__ flags,
    std::int8_t* __restrict__ q, float* __restrict__ row_absmax, LayerView<T> gather) {
  if (static_cast<int>(blockIdx.x) >= m) {
    detail::wait_for_previous_grid();  // the outlier list
    gather_outlier_weights(gather, blockIdx.x - m);
    return;
  }
  const int row = blockIdx.x, chunks = k / 8, padded_chunks = k_padded / 8;
  const uint4* xr = reinterpret_cast<const uint4*>(x + static_cast<std::size_t>(row) * k);
  uint4 raw[kRowChunks];
  std::uint64_t f[kRowChunks];  // flag bytes, 1 = outlier column
#pragma unroll
  for (int i = 0; i < kRowChunks; ++i) {
    const int c = threadIdx.x + i * blockDim.x;
    raw[i] = c < chunks ? __ldcs(xr + c) : make_uint4(0u, 0u, 0u, 0u);
  }
  detail::wait_for_previous_grid();  // the flags: X's loads above are already in flight
#pragma unroll
  for (int i = 0; i < kRowChunks; ++i) {
    const int c = threadIdx.x + i * blockDim.x;
    f[i] = (flags && c < chunks) ? *reinterpret_cast<const std::uint64_t*>(flags + 8 * c) : 0ull;
  }
  float amax = 0.0f;
#pragma unroll
  for (int i = 0; i < kRowChunks; ++i) {
    float v[8];
    detail::unpack8(raw[i], x, v);
#pragma unroll
    for (int e = 0; e < 8; ++e) amax = fmaxf(amax, ((f[i] >> (8 * e)) & 0xFFu) ? 0.0f : fabsf(v[e]));
  }
  amax = block_max<kResidentMaxThreads>(amax, blockDim.x);
  const float scale = amax > 0.0f ? 127.0f / amax : 0.0f;
  uint2* qr = reinterpret_cast<uint2*>(q + static_cast<std::size_t>(row) * k_padded);
#pragma unroll
  for (int i = 0; i < kRowChunks; ++i) {
    const int c = threadIdx.x + i * blockDim.x;
    if (c >= padded_chunks) break;
    float v[8];
    detail::unpack8(raw[i], x, v);  // zeros past k
    std::uint32_t b[8];
#pragma unroll
    for (int e = 0; e < 8; ++e) b[e] = int8_byte(v[e], scale);
    // outlier columns → 0: flag bytes are 0 or 1, so f · 0xFF masks whole bytes
    const std::uint64_t keep = ~((f[i] << 8) - f[i]);
    __stcs(qr + c, make_uint2(pack_bytes(b[0], b[1], b[2], b[3]) & static_cast<std::uint32_t>(keep),
                              pack_bytes(b[4], b[5], b[6], b[7]) & static_cast<std::uint32_t>(keep >> 32)));
    if (f[i] != 0ull) {  // outlier columns (rare): their x, in list order, for the epilogue
#pragma unroll
      for (int e = 0; e < 8; ++e)
        if ((f[i] >> (8 * e)) & 0xFFu) store_outlier_x(gather, row, 8 * c + e, v[e]);
    }
  }
  if (threadIdx.x == 0) row_absmax[row] = amax;
}

// The general form (any K): each row read twice, the second time from cache.
template <class T>
__global__ void __launch_bounds__(kThreads) quantize_rows_kernel(
    const T* __restrict__ x, int m, int k, int k_padded, const std::uint8_t* __restrict__ flags,
    std::int8_t* __restrict__ q, float* __restrict__ row_absmax, LayerView<T> gather) {
  detail::wait_for_previous_grid();
  if (static_cast<int>(blockIdx.x) >= m) {
    gather_outlier_weights(gather, blockIdx.x - m);
    return;
  }
  const int row = blockIdx.x;
  const T* xr = x + static_cast<std::size_t>(row) * k;
  std::int8_t* qr = q + static_cast<std::size_t>(row) * k_padded;
  // 8 flag bytes of columns c … c+7 (flags are allocated to a multiple of 16)
  auto flags8 = [&](int c) -> std::uint64_t { return flags ? *reinterpret_cast<const std::uint64_t*>(flags + c) : 0ull; };
  auto kept = [](std::uint64_t f, int e) { return ((f >> (8 * e)) & 0xFFu) == 0u; };
  float amax = 0.0f;
  if (k % 8 == 0) {
    for (int c = threadIdx.x * 8; c < k; c += kThreads * 8) {
      float v[8];
      load8(xr + c, v);
      const std::uint64_t f = flags8(c);
#pragma unroll
      for (int e = 0; e < 8; ++e)
        if (kept(f, e)) amax = fmaxf(amax, fabsf(v[e]));
    }
  } else {
    for (int c = threadIdx.x; c < k; c += kThreads)
      if (!flags || flags[c] == 0) amax = fmaxf(amax, fabsf(load1(xr + c)));
  }
  amax = block_max<kThreads>(amax);
  const float scale = amax > 0.0f ? 127.0f / amax : 0.0f;
  if (k % 8 == 0) {  // k_padded is a multiple of 16: whole 8-byte groups
    for (int c = threadIdx.x * 8; c < k_padded; c += kThreads * 8) {
      alignas(8) std::int8_t out[8] = {};
      if (c < k) {
        float v[8];
        load8(xr + c, v);
        const std::uint64_t f = flags8(c);
#pragma unroll
        for (int e = 0; e < 8; ++e) out[e] = kept(f, e) ? quantize_int8(v[e], scale) : std::int8_t{0};
      }
      *reinterpret_cast<uint2*>(qr + c) = *reinterpret_cast<const uint2*>(out);
    }
  } else {
    for (int c = threadIdx.x; c < k_padded; c += kThreads)
      qr[c] = (c < k && (!flags || flags[c] == 0)) ? quantize_int8(load1(xr + c), scale) : std::int8_t{0};
  }
  if (flags) {
    const int used = min(*gather.count, kGatheredCapacity);
    for (int j = threadIdx.x; j < used; j += kThreads)
      gather.xo[static_cast<std::size_t>(row) * gather.xo_stride + j] = load1(xr + gather.cols[j]);
  }
  if (threadIdx.x == 0) row_absmax[row] = amax;
}

// Step 4: dequantize the int32 product and add the outlier columns' product.
// Each thread owns kEpilogueCols consecutive columns of kEpilogueRows rows:
// 16-byte loads of the int32 product and of the gathered outlier weights,
// one 8-byte store per row where N % 4 == 0. blockDim.x is 64 … 256 (small M:
// narrower blocks, so that more SMs take part). Grid: x over row groups, y
// over column ranges, so the blocks an SM runs one after another share their
// columns' gathered outlier weights in L1 (with x over columns every block
// read them from L2 again: 32 KB per block at 8 outlier columns).
// The int32 loads are issued first and stay in flight through the outlier
// part. kOutliers = false: plain vector-wise int8 (fewer registers). Block
// (0, 0) clears the outlier flags for the next call (quantize_rows has read them).
template <class T, bool kOutliers>
__global__ void __launch_bounds__(kThreads, 3) epilogue_kernel(
    const std::int32_t* __restrict__ c32, int n_padded, const float* __restrict__ row_absmax,
    const float* __restrict__ w_absmax, const T* __restrict__ x, int k, LayerView<T> g, std::uint8_t* __restrict__ flags,
    T* __restrict__ y, int m, int n) {
  // n_padded, w_absmax, k and n repeat g's as scalars: reading them from the
  // view costs the outlier-free form 4 registers (44, one CTA per SM less).
  const int col0 = (blockIdx.y * blockDim.x + threadIdx.x) * kEpilogueCols;
  const int m0 = blockIdx.x * kEpilogueRows;
  const bool active = col0 < n;
  // Written before the GEMM started: safe to read before the wait.
  float ra[kEpilogueRows], ca[kEpilogueCols];  // w_absmax has n_padded entries: col0 + 3 is in range
#pragma unroll
  for (int i = 0; i < kEpilogueRows; ++i) ra[i] = m0 + i < m ? row_absmax[m0 + i] : 0.0f;
#pragma unroll
  for (int c = 0; c < kEpilogueCols; ++c) ca[c] = active ? w_absmax[col0 + c] : 0.0f;
  detail::wait_for_previous_grid();  // the GEMM's int32 product
  int4 qv[kEpilogueRows];
#pragma unroll
  for (int i = 0; i < kEpilogueRows; ++i) {
    const int row = m0 + i;
    // n_padded % 16 == 0 and col0 % 4 == 0: an aligned 16-byte load.
    qv[i] = (active && row < m) ? __ldcs(reinterpret_cast<const int4*>(c32 + static_cast<std::size_t>(row) * n_padded + col0))
                                : make_int4(0, 0, 0, 0);
  }
  float acc[kEpilogueRows][kEpilogueCols] = {};
  if constexpr (kOutliers) {
    const int count = *g.count, direct = min(count, kGatheredCapacity);
    if (blockIdx.x == 0 && blockIdx.y == 0)
      for (int j = threadIdx.x; j < count; j += blockDim.x) flags[g.cols[j]] = 0;
    // 4 outlier columns per step: each row's 4 x values in one 16-byte load
    // of xo, the 4 columns' weights in four of wc — independent loads, hits
    // in L1 after the first block on this SM (every block of the same rows or
    // columns reads the same lines). (2 per step: 1160 instead of 1100 µs at
    // M = K = N = 8192, H200.)
    for (int j0 = 0; j0 < direct; j0 += 4) {
      float xv[kEpilogueRows][4], wv[4][kEpilogueCols];
#pragma unroll
      for (int i = 0; i < kEpilogueRows; ++i) {
        const float4 v = m0 + i < m ? __ldg(reinterpret_cast<const float4*>(g.xo + static_cast<std::size_t>(m0 + i) * g.xo_stride + j0))
                                    : make_float4(0.0f, 0.0f, 0.0f, 0.0f);
        // past `direct` xo holds stale values: 0 there (the weights may be stale too)
        xv[i][0] = v.x; xv[i][1] = j0 + 1 < direct ? v.y : 0.0f;
        xv[i][2] = j0 + 2 < direct ? v.z : 0.0f; xv[i][3] = j0 + 3 < direct ? v.w : 0.0f;
      }
#pragma unroll
      for (int t = 0; t < 4; ++t) {
        // col0 + 3 < n_padded: zeros past n
        const float4 w4 = (active && j0 + t < direct)
                              ? __ldg(reinterpret_cast<const float4*>(g.wc + static_cast<std::size_t>(j0 + t) * n_padded + col0))
                              : make_float4(0.0f, 0.0f, 0.0f, 0.0f);
        wv[t][0] = w4.x; wv[t][1] = w4.y; wv[t][2] = w4.z; wv[t][3] = w4.w;
      }
#pragma unroll
      for (int t = 0; t < 4; ++t)
#pragma unroll
        for (int i = 0; i < kEpilogueRows; ++i)
#pragma unroll
          for (int c = 0; c < kEpilogueCols; ++c) acc[i][c] = fmaf(xv[i][t], wv[t][c], acc[i][c]);
    }
    // Past the gathered capacity (more than 512 outlier columns): straight from X and W.
    for (int j = direct; j < count && active; ++j) {
      const int col = g.cols[j];
#pragma unroll
      for (int i = 0; i < kEpilogueRows; ++i) {
        if (m0 + i >= m) break;
        const float xv = load1(x + static_cast<std::size_t>(m0 + i) * k + col);
#pragma unroll
        for (int c = 0; c < kEpilogueCols; ++c)
          if (col0 + c < n) acc[i][c] = fmaf(xv, outlier_weight(g.w16, k, g.wq, g.w_absmax, g.k_padded, col0 + c, col), acc[i][c]);
      }
    }
  }
  if (!active) return;
  constexpr float inv_127_sq = 1.0f / (127.0f * 127.0f);
#pragma unroll
  for (int i = 0; i < kEpilogueRows; ++i) {
    const int row = m0 + i;
    if (row >= m) break;
    const int q[kEpilogueCols] = {qv[i].x, qv[i].y, qv[i].z, qv[i].w};
    alignas(8) T out[kEpilogueCols];
#pragma unroll
    for (int c = 0; c < kEpilogueCols; ++c) {
      // The CPU reference's dequantization, operation for operation (no FMA).
      const float dq = __fmul_rn(static_cast<float>(q[c]), __fmul_rn(__fmul_rn(ra[i], ca[c]), inv_127_sq));
      store1(out + c, dq + acc[i][c]);
    }
    T* yr = y + static_cast<std::size_t>(row) * n + col0;
    if (n % kEpilogueCols == 0) {
      __stcs(reinterpret_cast<uint2*>(yr), *reinterpret_cast<const uint2*>(out));
    } else {
      for (int c = 0; c < kEpilogueCols && col0 + c < n; ++c) yr[c] = out[c];
    }
  }
}

template <class T>
__global__ void plant_outlier_columns_kernel(T* __restrict__ x, std::size_t m, int k, int every, float scale) {
  const std::size_t total = m * static_cast<std::size_t>(k);
  for (std::size_t i = blockIdx.x * std::size_t{kThreads} + threadIdx.x; i < total;
       i += static_cast<std::size_t>(gridDim.x) * kThreads)
    if (static_cast<int>(i % k) % every == every / 2) store1(x + i, load1(x + i) * scale);
}

int round_up(int v, int to) { return (v + to - 1) / to * to; }

template <class F>
void dispatch(Act act, F&& f) {
  if (act == Act::bf16) f(__nv_bfloat16{});
  else f(__half{});
}

}  // namespace

Int8Weight quantize_weight(Act act, const void* w, int n, int k, cudaStream_t stream) {
  if (n <= 0 || k <= 0) throw std::invalid_argument("quantize_weight: empty weight " + std::to_string(n) + "x" + std::to_string(k));
  Int8Weight q;
  q.n = n;
  q.k = k;
  q.n_padded = round_up(n, 16);
  q.k_padded = round_up(k, 16);
  check_cuda(cudaMalloc(&q.data, static_cast<std::size_t>(q.n_padded) * q.k_padded), "cudaMalloc(int8 weight)");
  check_cuda(cudaMalloc(&q.absmax, sizeof(float) * q.n_padded), "cudaMalloc(weight absmax)");
  check_cuda(cudaMemsetAsync(q.data, 0, static_cast<std::size_t>(q.n_padded) * q.k_padded, stream), "memset");
  check_cuda(cudaMemsetAsync(q.absmax, 0, sizeof(float) * q.n_padded, stream), "memset");
  dispatch(act, [&](auto t) {
    using T = decltype(t);
    quantize_weight_kernel<T><<<n, kThreads, 0, stream>>>(static_cast<const T*>(w), k, q.k_padded, q.data, q.absmax);
  });
  check_cuda(cudaGetLastError(), "quantize_weight_kernel");
  return q;
}

void plant_outlier_columns(Act act, void* x, int m, int k, int every, float scale, cudaStream_t stream) {
  if (every <= 0) throw std::invalid_argument("plant_outlier_columns: every must be > 0");
  dispatch(act, [&](auto t) {
    using T = decltype(t);
    plant_outlier_columns_kernel<T><<<1024, kThreads, 0, stream>>>(static_cast<T*>(x), m, k, every, scale);
  });
  check_cuda(cudaGetLastError(), "plant_outlier_columns");
}

void free_weight(Int8Weight& w) {
  cudaFree(w.data);
  cudaFree(w.absmax);
  w.data = nullptr;
  w.absmax = nullptr;
}

LlmInt8Layer::LlmInt8Layer(LtGemm& gemm, const Int8Weight& w, Act act, int max_m, float threshold, const void* w16)
    : gemm_(gemm), w_(w), act_(act), max_m_(max_m), threshold_(threshold), w16_(w16) {
  if (max_m <= 0) throw std::invalid_argument("LlmInt8Layer: max_m must be > 0");
  check_cuda(cudaMalloc(&x_int8_, static_cast<std::size_t>(max_m) * w.k_padded), "cudaMalloc(int8 activations)");
  check_cuda(cudaMalloc(&row_absmax_, sizeof(float) * max_m), "cudaMalloc(row absmax)");
  check_cuda(cudaMalloc(&c32_, sizeof(std::int32_t) * max_m * static_cast<std::size_t>(w.n_padded)), "cudaMalloc(int32 product)");
  check_cuda(cudaMalloc(&flags_, static_cast<std::size_t>(round_up(w.k, 16))), "cudaMalloc(column flags)");
  check_cuda(cudaMalloc(&done_, sizeof(unsigned)), "cudaMalloc(completion counter)");
  check_cuda(cudaMalloc(&cols_, sizeof(int) * w.k), "cudaMalloc(outlier columns)");
  check_cuda(cudaMalloc(&count_, sizeof(int)), "cudaMalloc(outlier count)");
  check_cuda(cudaMalloc(&gathered_, sizeof(float) * static_cast<std::size_t>(std::min(w.k, kGatheredCapacity)) * w.n_padded),
             "cudaMalloc(gathered outlier weights)");
  check_cuda(cudaMalloc(&outlier_x_, sizeof(float) * static_cast<std::size_t>(max_m) * outlier_x_stride()),
             "cudaMalloc(gathered outlier activations)");
  check_cuda(cudaMemset(flags_, 0, static_cast<std::size_t>(round_up(w.k, 16))), "memset flags");  // the epilogue keeps them clear
  check_cuda(cudaMemset(done_, 0, sizeof(unsigned)), "memset counter");
  check_cuda(cudaMemset(count_, 0, sizeof(int)), "memset count");
}

int LlmInt8Layer::outlier_x_stride() const { return round_up(std::min(w_.k, kGatheredCapacity), 4); }

LlmInt8Layer::~LlmInt8Layer() {
  cudaFree(x_int8_);
  cudaFree(row_absmax_);
  cudaFree(c32_);
  cudaFree(flags_);
  cudaFree(done_);
  cudaFree(cols_);
  cudaFree(count_);
  cudaFree(gathered_);
  cudaFree(outlier_x_);
}

void LlmInt8Layer::forward(const void* x, void* y, int m, cudaStream_t stream) {
  if (m <= 0 || m > max_m_)
    throw std::invalid_argument("LlmInt8Layer::forward: m = " + std::to_string(m) + " outside 1.." + std::to_string(max_m_));
  const bool find_outliers = threshold_ < std::numeric_limits<float>::infinity();
  // Programmatic dependent launch for kernels of about one wave (≤ 2048
  // threads per SM): −2 µs each at M = 16 and 128, K = N = 8192; for the
  // many-wave kernels of M = 8192 it measured 0–4 % slower (H200).
  auto one_wave = [](int blocks, int threads) { return static_cast<long>(blocks) * threads <= 2048L * detail::sm_count(); };
  auto view = [&](auto t) {
    using T = decltype(t);
    return LayerView<T>{static_cast<const T*>(w16_), w_.data, w_.absmax, w_.n, w_.n_padded, w_.k, w_.k_padded,
                        cols_, count_, gathered_, outlier_x_, outlier_x_stride()};
  };
  dispatch(act_, [&](auto t) {
    using T = decltype(t);
    const T* xt = static_cast<const T*>(x);
    if (find_outliers) {
      // ≤ ~8 blocks per SM in all (a full SM of threads; the completion counter takes one atomic per block)
      const unsigned gx = static_cast<unsigned>((w_.k + kThreads * 8 - 1) / (kThreads * 8));
      const unsigned gy = std::max(1u, std::min(static_cast<unsigned>(m), 8u * detail::sm_count() / gx));
      flag_and_compact_kernel<T><<<dim3(gx, gy), kThreads, 0, stream>>>(xt, m, w_.k, threshold_, flags_,
                                                                       round_up(w_.k, 16), cols_, count_, done_);
      check_cuda(cudaGetLastError(), "flag_and_compact_kernel");
    }
    // The register-resident quantizer where the row fits: enough threads that
    // each holds ≤ kRowChunks chunks (also with few rows: one chunk per
    // thread, 1024 threads per row, measured 1–5 µs slower at M = 16 and 128,
    // K = N = 8192); else the general one. Blocks past m gather the outlier
    // weight columns, `threads` columns each.
    const bool resident = w_.k % 8 == 0 && w_.k <= kResidentMaxK;
    const int threads = resident ? std::clamp(round_up((w_.k_padded / 8 + kRowChunks - 1) / kRowChunks, 32), 64,
                                              kResidentMaxThreads)
                                 : kThreads;
    const int blocks = m + (find_outliers ? (w_.n_padded + threads - 1) / threads : 0);
    check_cuda(detail::launch_after_previous_starts(one_wave(blocks, threads),
                                                    resident ? quantize_rows_resident_kernel<T> : quantize_rows_kernel<T>,
                                                    dim3(blocks), dim3(threads), stream, xt, m, w_.k, w_.k_padded,
                                                    find_outliers ? flags_ : nullptr, x_int8_, row_absmax_, view(T{})),
               "quantize_rows_kernel");
  });
  gemm_.run(GemmKind::int8_int32, m, w_.n_padded, w_.k_padded, x_int8_, w_.data, c32_, stream);
  // Narrower blocks when there are few output tiles, so that every SM works.
  auto blocks_for = [&](int threads) {
    return ((w_.n + threads * kEpilogueCols - 1) / (threads * kEpilogueCols)) * ((m + kEpilogueRows - 1) / kEpilogueRows);
  };
  int threads = kThreads;
  while (threads > 64 && blocks_for(threads) < 2 * detail::sm_count()) threads /= 2;
  const int cols_per_block = threads * kEpilogueCols;
  const dim3 grid((m + kEpilogueRows - 1) / kEpilogueRows, (w_.n + cols_per_block - 1) / cols_per_block);
  dispatch(act_, [&](auto t) {
    using T = decltype(t);
    auto kernel = find_outliers ? epilogue_kernel<T, true> : epilogue_kernel<T, false>;
    check_cuda(detail::launch_after_previous_starts(one_wave(static_cast<int>(grid.x * grid.y), threads), kernel, grid,
                                                    dim3(threads), stream, c32_, w_.n_padded, row_absmax_, w_.absmax,
                                                    static_cast<const T*>(x), w_.k, view(T{}), flags_,
                                                    static_cast<T*>(y), m, w_.n),
               "epilogue_kernel");
  });
}

}  // namespace lowbit::cuda
