// kernels/cuda/llm_int8.cu — see llm_int8.cuh for the algorithm.
#include "kernels/cuda/llm_int8.cuh"

#include "kernels/cuda/device_util.cuh"
#include "kernels/cuda/llm_int8_parts.cuh"

#include <cooperative_groups.h>

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>
#include <type_traits>

namespace lowbit::cuda {
namespace {

namespace cg = cooperative_groups;
using namespace llm_int8_parts;

constexpr int kThreads = 256;
constexpr int kEpilogueRows = 4;      // output rows per epilogue block (more: 118 registers, 25 % occupancy)
constexpr int kEpilogueCols = 4;      // output columns per epilogue thread (one 16-byte int32 load)

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

// Step 1, one pass over X, two launches: quantize_rows_kernel quantizes the
// rows and flags their outlier columns (a byte each), and its last block to
// finish turns the flags into an ascending column list and a count;
// outlier_gather_kernel, started early (programmatic dependent launch) and
// waiting for it, zeroes the outlier columns of the int8 rows and gathers
// their x values and the matching weight columns. No host sync, no second
// read of X.
//
// Row rule (kernels/cpu/llm_int8.hpp, RowAbsmax::outlier_values_excluded,
// bitsandbytes' int8_vectorwise_quant): the absmax over the row's values
// |x| < threshold, int8 = round(x · 127 / absmax) half away from zero; the
// values |x| >= threshold are 0, and the gather zeroes the rest of their
// columns, which go through the 16-bit path. (The paper's rule — the absmax
// without whole outlier columns — needs every row's flags before any row is
// quantized: a second pass over X.)

__device__ __forceinline__ int byte_count_nonzero(std::uint64_t v) {
  // bytes are 0 or 1: their sum is the count
  v = (v & 0x00FF00FF00FF00FFull) + ((v >> 8) & 0x00FF00FF00FF00FFull);
  v = (v & 0x0000FFFF0000FFFFull) + ((v >> 16) & 0x0000FFFF0000FFFFull);
  return static_cast<int>((v & 0xFFFFFFFFull) + (v >> 32));
}

// Block-wide exclusive prefix sum of one int per thread (blockDim.x a
// multiple of 32, at most kMaxBlock): returns the sum over the threads
// before this one, `total` the block's.
template <int kMaxBlock>
__device__ __forceinline__ int block_exclusive_sum(int mine, int& total) {
  __shared__ int warp_total[kMaxBlock / 32];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
  int incl = mine;
  for (int o = 1; o < 32; o <<= 1) {
    const int t = __shfl_up_sync(0xffffffffu, incl, o);
    if (lane >= o) incl += t;
  }
  if (lane == 31) warp_total[warp] = incl;
  __syncthreads();
  int before = 0;
  total = 0;
  for (int w = 0; w < warps; ++w) {
    before += w < warp ? warp_total[w] : 0;
    total += warp_total[w];
  }
  __syncthreads();  // warp_total may be reused by the next call
  return before + incl - mine;
}

// One block compacts flags[0, k_alloc) (k_alloc % 8 == 0) into cols/count.
// (Every gather block compacting for itself measured 13 µs at K = 8192,
// M = 128: 264 blocks reading the same 8 KB of flags — most likely queued
// at the few L2 slices that hold it.)
// A thread owns up to kCompactWords consecutive 8-column words per step, all
// loaded at once (K = 8192 with 256 threads: one step, one L2 round trip); a
// block-wide exclusive sum of the counts gives each its place.
constexpr int kCompactWords = 4;
template <int kMaxBlock>
__device__ void compact_flags_block(const std::uint8_t* flags, int k_alloc, int* __restrict__ cols, int* __restrict__ count) {
  const int words = k_alloc / 8, per_step = static_cast<int>(blockDim.x) * kCompactWords;
  int base = 0;
  for (int start = 0; start < words; start += per_step) {
    const int w0 = start + static_cast<int>(threadIdx.x) * kCompactWords;
    std::uint64_t f[kCompactWords];
    int mine = 0;
#pragma unroll
    for (int i = 0; i < kCompactWords; ++i) {
      // written by other blocks of this grid: read through L2 (__ldcg), never a stale L1 line
      f[i] = w0 + i < words ? __ldcg(reinterpret_cast<const unsigned long long*>(flags) + w0 + i) : 0ull;
      mine += byte_count_nonzero(f[i]);
    }
    int step_total;
    int offset = base + block_exclusive_sum<kMaxBlock>(mine, step_total);
#pragma unroll
    for (int i = 0; i < kCompactWords; ++i)
      if (f[i] != 0ull)
        for (int e = 0; e < 8; ++e)
          if ((f[i] >> (8 * e)) & 0xFFu) cols[offset++] = 8 * (w0 + i) + e;
    base += step_total;
  }
  if (threadIdx.x == 0) *count = base;
}

// Flag byte of an outlier column: read first (from L2), so that an outlier
// column present in every row costs a store per row only until the first
// one lands, not M stores to the same few L2 lines.
__device__ __forceinline__ void flag_column(std::uint8_t* flags, int c) {
  if (__ldcg(flags + c) == 0) flags[c] = 1;
}

// 8 consecutive 16-bit values (p 16-byte aligned), through the read-only
// cache: the general row quantizer reads each row twice.
template <class T>
__device__ __forceinline__ void load8(const T* p, float (&v)[8]) {
  detail::load8<true>(p, v);
}

// One row, the usual form (K % 8 == 0, K ≤ kResidentMaxK): the block's
// threads hold the row in registers, kRowChunks 16-byte chunks each (chunk c
// of the row in thread c mod blockDim.x), so X is read once.
constexpr int kRowChunks = 4;
constexpr int kResidentMaxThreads = 1024;
constexpr int kResidentMaxK = 8 * kRowChunks * kResidentMaxThreads - 16;  // k_padded's chunks fit too
// The block takes rows blockIdx.x, + gridDim.x, … (a grid of one wave), so
// that step 1's completion count is one arrival per block, not per row.
// (Nsight Compute, M = 2048, K = 8192, H200: 26–27 µs, as with a block per
// row — about 35 % of DRAM bandwidth either way; an L2 bulk prefetch of the
// next row did not help, and the next row in registers spilled.)
template <class T, bool kOutliers>
__device__ __forceinline__ void quantize_rows_resident(const T* __restrict__ x, int m, int k, int k_padded, float threshold,
                                                       std::uint8_t* flags, std::int8_t* __restrict__ q,
                                                       float* __restrict__ row_absmax) {
  const int chunks = k / 8, padded_chunks = k_padded / 8;
  // A thread's chunks are the same columns in every row: it collects their outlier bits over its rows and
  // flags the columns once, after the last row (flagging per row put an L2 round trip — the flag's read —
  // in every row with an outlier: 24.3–25.2 µs against 21.9–23.0 at M = 2048, K = 8192, 0.1 %, H100).
  std::uint32_t seen = 0u;
  for (int row = blockIdx.x; row < m; row += gridDim.x) {
    const uint4* xr = reinterpret_cast<const uint4*>(x + static_cast<std::size_t>(row) * k);
    uint4 raw[kRowChunks];
#pragma unroll
    for (int i = 0; i < kRowChunks; ++i) {
      const int c = threadIdx.x + i * blockDim.x;
      raw[i] = c < chunks ? __ldcs(xr + c) : make_uint4(0u, 0u, 0u, 0u);
    }
    float amax = 0.0f;
    std::uint32_t hit = 0u;  // bit 8i + e: element e of chunk i is an outlier
#pragma unroll
    for (int i = 0; i < kRowChunks; ++i) {
      float v[8];
      detail::unpack8(raw[i], x, v);
      float chunk_max = 0.0f;  // fmaxf drops NaN, as the CPU's std::max
#pragma unroll
      for (int e = 0; e < 8; ++e) chunk_max = fmaxf(chunk_max, fabsf(v[e]));
      // Outliers are rare: the per-element test only where the chunk holds one.
      // (Testing every element: 25.9 µs against 15.8 without outlier detection,
      // M = 2048, K = 8192, H200; the layer at 0 % outliers went 242 → 231 µs.)
      if (kOutliers && chunk_max >= threshold) {
        chunk_max = 0.0f;
#pragma unroll
        for (int e = 0; e < 8; ++e) {
          const bool outlier = fabsf(v[e]) >= threshold;
          hit |= (outlier ? 1u : 0u) << (8 * i + e);
          chunk_max = fmaxf(chunk_max, outlier ? 0.0f : fabsf(v[e]));
        }
      }
      amax = fmaxf(amax, chunk_max);
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
      const std::uint32_t h = (hit >> (8 * i)) & 0xFFu;
      std::uint32_t b[8];
#pragma unroll
      for (int e = 0; e < 8; ++e) b[e] = int8_byte(v[e], scale);
      uint2 packed = make_uint2(pack_bytes(b[0], b[1], b[2], b[3]), pack_bytes(b[4], b[5], b[6], b[7]));
      if (kOutliers && h != 0u) {  // the rare chunk with outliers: they become 0
        for (int e = 0; e < 8; ++e)
          if ((h >> e) & 1u) (e < 4 ? packed.x : packed.y) &= ~(0xFFu << (8 * (e % 4)));
      }
      __stcs(qr + c, packed);
    }
    seen |= hit;
    if (threadIdx.x == 0) row_absmax[row] = amax;
  }
  if constexpr (kOutliers) {
    for (; seen != 0u; seen &= seen - 1u) {
      const int bit = __ffs(static_cast<int>(seen)) - 1;
      flag_column(flags, 8 * (static_cast<int>(threadIdx.x) + (bit >> 3) * static_cast<int>(blockDim.x)) + (bit & 7));
    }
  }
}

// One row, the general form (any K): read twice, the second time from cache.
template <class T, bool kOutliers>
__device__ __forceinline__ void quantize_row_general(const T* __restrict__ x, int row, int k, int k_padded, float threshold,
                                                     std::uint8_t* flags, std::int8_t* __restrict__ q,
                                                     float* __restrict__ row_absmax) {
  const T* xr = x + static_cast<std::size_t>(row) * k;
  std::int8_t* qr = q + static_cast<std::size_t>(row) * k_padded;
  auto outlier = [&](float v) { return kOutliers && fabsf(v) >= threshold; };
  float amax = 0.0f;
  if (k % 8 == 0) {
    for (int c = threadIdx.x * 8; c < k; c += blockDim.x * 8) {
      float v[8];
      load8(xr + c, v);
#pragma unroll
      for (int e = 0; e < 8; ++e) amax = fmaxf(amax, outlier(v[e]) ? 0.0f : fabsf(v[e]));
    }
  } else {
    for (int c = threadIdx.x; c < k; c += blockDim.x) {
      const float v = load1(xr + c);
      amax = fmaxf(amax, outlier(v) ? 0.0f : fabsf(v));
    }
  }
  amax = block_max<kResidentMaxThreads>(amax, blockDim.x);
  const float scale = amax > 0.0f ? 127.0f / amax : 0.0f;
  if (k % 8 == 0) {  // k_padded is a multiple of 16: whole 8-byte groups
    for (int c = threadIdx.x * 8; c < k_padded; c += blockDim.x * 8) {
      alignas(8) std::int8_t out[8] = {};
      if (c < k) {
        float v[8];
        load8(xr + c, v);
#pragma unroll
        for (int e = 0; e < 8; ++e) {
          out[e] = outlier(v[e]) ? std::int8_t{0} : quantize_int8(v[e], scale);
          if (outlier(v[e])) flag_column(flags, c + e);
        }
      }
      *reinterpret_cast<uint2*>(qr + c) = *reinterpret_cast<const uint2*>(out);
    }
  } else {
    for (int c = threadIdx.x; c < k_padded; c += blockDim.x) {
      const float v = c < k ? load1(xr + c) : 0.0f;
      qr[c] = outlier(v) ? std::int8_t{0} : quantize_int8(v, scale);
      if (outlier(v)) flag_column(flags, c);
    }
  }
  if (threadIdx.x == 0) row_absmax[row] = amax;
}

// Step 1's second launch (grid-stride over its blocks): zero the outlier
// columns of every int8 row, copy their x values to xo in list order and
// the weight columns to wc (the 16-bit weight when the layer has it, else
// the int8 dequantization) — wc[j][n_padded] fp32 for the first
// kGatheredCapacity outlier columns (the epilogue reads beyond that
// directly); columns n … n_padded−1 are 0, so the epilogue loads 4 at a
// time. The consumer of the list (the epilogue, or the wgmma GEMM) clears
// the flags for the next call.
template <class T>
__global__ void __launch_bounds__(kThreads) outlier_gather_kernel(LayerView<T> g, const T* __restrict__ x, int m,
                                                                  std::int8_t* __restrict__ q) {
  __shared__ int list[kGatheredCapacity];
  detail::allow_next_grid_to_start();
  detail::wait_for_previous_grid();  // the int8 rows and the outlier list
  const int* cols = g.cols;
  const int count = *g.count, used = min(count, kGatheredCapacity);
  // The weight columns are gathered again only where the list differs from the one wc holds: LLM.int8's
  // outliers sit in a few fixed feature dimensions, so from call to call the list mostly repeats, and the
  // weight columns are most of this kernel's DRAM traffic (a 32-byte sector per weight: 8 columns of a
  // 8192-row W, 65 536 sectors).
  bool same = *g.wc_used == used;
  for (int j = threadIdx.x; j < used; j += blockDim.x) {
    list[j] = cols[j];
    same = same && g.wc_cols[j] == list[j];
  }
  const bool reuse = __syncthreads_and(same);
  // Items spread over every thread of the launch, one load each (the weight
  // reads are a sector each: row-major W), loads issued 4 at a time; 32-bit
  // indices (forward() checks m · k and 512 · n_padded < 2^31): a 64-bit
  // division is a long subroutine, and this kernel is on the critical path.
  // W: item (j, col) of used × n_padded, col fastest (coalesced stores).
  const unsigned stride = gridDim.x * blockDim.x, first = blockIdx.x * blockDim.x + threadIdx.x;
  const unsigned np = static_cast<unsigned>(g.n_padded);
  const unsigned w_items = reuse ? 0u : static_cast<unsigned>(used) * np;
  for (unsigned i0 = first; i0 < w_items; i0 += 4u * stride) {
    float v[4];
#pragma unroll
    for (unsigned t = 0; t < 4; ++t) {
      const unsigned i = i0 + t * stride, j = i / np, col = i - j * np;
      v[t] = i < w_items && col < static_cast<unsigned>(g.n)
                 ? outlier_weight(g.w16, g.k, g.wq, g.w_absmax, g.k_padded, static_cast<int>(col), list[j])
                 : 0.0f;
    }
#pragma unroll
    for (unsigned t = 0; t < 4; ++t)
      if (i0 + t * stride < w_items) g.wc[i0 + t * stride] = v[t];
  }
  // X: item (row, j) of m × count.
  const unsigned x_items = static_cast<unsigned>(m) * static_cast<unsigned>(count);
  for (unsigned i0 = first; i0 < x_items; i0 += 4u * stride) {
    float v[4];
    int row[4], j[4], col[4];
#pragma unroll
    for (unsigned t = 0; t < 4; ++t) {
      const unsigned i = i0 + t * stride, r = i / static_cast<unsigned>(count);
      row[t] = static_cast<int>(r);
      j[t] = static_cast<int>(i - r * static_cast<unsigned>(count));
      col[t] = i >= x_items ? -1 : j[t] < used ? list[j[t]] : cols[j[t]];
      v[t] = col[t] >= 0 ? load1(x + static_cast<std::size_t>(row[t]) * g.k + col[t]) : 0.0f;
    }
#pragma unroll
    for (int t = 0; t < 4; ++t) {
      if (col[t] < 0) break;
      q[static_cast<std::size_t>(row[t]) * g.k_padded + col[t]] = 0;
      if (j[t] < used) g.xo[static_cast<std::size_t>(row[t]) * g.xo_stride + j[t]] = v[t];
    }
  }
}

// Step 1's first launch: the rows (resident form: a block takes every
// gridDim.x-th row; general form: one block per row), then — with outliers
// — the last block to finish builds the list (threadfence reduction: one
// arrival per block). flags: [k_alloc] bytes and *done: 0 between calls.
template <class T, bool kResident, bool kOutliers>
__global__ void __launch_bounds__(kResidentMaxThreads) quantize_rows_kernel(
    const T* __restrict__ x, int m, int k, int k_padded, float threshold, std::int8_t* __restrict__ q,
    float* __restrict__ row_absmax, std::uint8_t* flags, int k_alloc, int* cols, int* count, unsigned* done) {
  detail::allow_next_grid_to_start();  // the gather may start meanwhile (it waits for this grid)
  if constexpr (kResident) quantize_rows_resident<T, kOutliers>(x, m, k, k_padded, threshold, flags, q, row_absmax);
  else quantize_row_general<T, kOutliers>(x, blockIdx.x, k, k_padded, threshold, flags, q, row_absmax);
  if constexpr (kOutliers) {
    __shared__ bool last;
    __syncthreads();
    if (threadIdx.x == 0) {
      __threadfence();  // this block's flags before its arrival (the barrier above: every thread's)
      last = atomicAdd(done, 1u) == gridDim.x - 1;
    }
    __syncthreads();
    if (!last) return;
    __threadfence();
    compact_flags_block<kResidentMaxThreads>(flags, k_alloc, cols, count);
    if (threadIdx.x == 0) *done = 0u;  // every block has arrived: ready for the next call
  }
}

// Step 3: dequantize the int32 product and add the outlier columns' product.
// Each thread owns kEpilogueCols consecutive columns of kEpilogueRows rows:
// 16-byte loads of the int32 product and of the gathered outlier weights,
// one 8-byte store per row where N % 4 == 0. blockDim.x is 64 … 256 (small M:
// narrower blocks, so that more SMs take part). Grid: x over row groups, y
// over column ranges, so the blocks an SM runs one after another share their
// columns' gathered outlier weights in L1 (with x over columns every block
// read them from L2 again: 32 KB per block at 8 outlier columns).
// The int32 loads are issued first and stay in flight through the outlier
// part. kOutliers = false: plain vector-wise int8 (fewer registers). Block
// (0, 0) releases the outlier list for the next call (release_outlier_list; step 1 has read the flags).
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
      release_outlier_list(g, flags, count, static_cast<int>(threadIdx.x), static_cast<int>(blockDim.x));
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
#pragma unroll
  for (int i = 0; i < kEpilogueRows; ++i) {
    const int row = m0 + i;
    if (row >= m) break;
    const int q[kEpilogueCols] = {qv[i].x, qv[i].y, qv[i].z, qv[i].w};
    alignas(8) T out[kEpilogueCols];
#pragma unroll
    for (int c = 0; c < kEpilogueCols; ++c) {
      store1(out + c, dequantize_int32(q[c], ra[i], ca[c]) + acc[i][c]);
    }
    T* yr = y + static_cast<std::size_t>(row) * n + col0;
    if (n % kEpilogueCols == 0) {
      __stcs(reinterpret_cast<uint2*>(yr), *reinterpret_cast<const uint2*>(out));
    } else {
      for (int c = 0; c < kEpilogueCols && col0 + c < n; ++c) yr[c] = out[c];
    }
  }
}

// Small M (decode): steps 2 and 3 in one kernel. The int8 GEMM is memory
// bound there (the weight is N·K bytes, the activations M·K), so the kernel
// streams the weight once with 16-byte loads, multiplies on the tensor cores
// (mma.sync m16n8k32, int8 → int32, exact) and dequantizes in registers: no
// int32 product in memory and no second launch. It starts while
// prepare_small_m_kernel (below) runs and loads its first weights before it
// waits.
//
// A block owns 16 output columns (rows of W) and every token; its warps take
// turns over K in steps of kFusedAhead chunks of 64 bytes. In a chunk, lane
// (g, t) = (lane / 4, lane % 4) loads 16 bytes at K offset 16t of W rows g
// and g + 8 and of activation row g of each 8-token tile: the mma's K order
// is then a permutation, the same in A and B, which the sum does not see.
// The warps' int32 sums meet in shared memory (exact in any order); each
// thread then dequantizes its outputs with epilogue_kernel's float
// operations in its order, so the two paths agree bit for bit.
constexpr int kFusedCols = 16;   // output columns per block (the mma's M)
constexpr int kFusedChunk = 64;  // K bytes per lane pair of 16-byte loads
constexpr int kFusedAhead = 4;   // chunks per warp per step: 4 KB of W in flight
constexpr int kFusedMaxM = 32;   // token tiles of 8: 1, 2 or 4 (4: forced path only; it spills and is slower than cuBLASLt)
constexpr int kFusedPrefetch = 3;  // steps of W asked into L2 before the wait
constexpr int kFusedStagedOutliers = 32;  // outlier columns a block stages in shared memory per round

// D += A·B, A 16×32 int8 (row), B 32×8 int8 (col), D 16×8 int32.
__device__ __forceinline__ void mma_s8_m16n8k32(int (&d)[4], std::uint32_t a0, std::uint32_t a1, std::uint32_t a2,
                                                std::uint32_t a3, std::uint32_t b0, std::uint32_t b1) {
  asm volatile("mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
               : "+r"(d[0]), "+r"(d[1]), "+r"(d[2]), "+r"(d[3])
               : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
}

// 16 bytes read once: not kept in L1, where X must stay.
__device__ __forceinline__ uint4 load_streamed(const std::int8_t* p) {
  uint4 v;
  asm("ld.global.nc.L1::no_allocate.v4.u32 {%0,%1,%2,%3}, [%4];" : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w) : "l"(p));
  return v;
}

// One warp step's operands: kFusedAhead chunks of W and X.
struct FusedWeights {
  uint4 lo[kFusedAhead], hi[kFusedAhead];  // W rows g and g + 8
};
template <int kTiles>
struct FusedActivations {
  uint4 x[kFusedAhead][kTiles];  // activation row g of each 8-token tile
};

// kWarps split K: 4 where the grid (N / 16 blocks) gives about 4 blocks per
// SM (N = 8192 on 132 SMs), 8 where it gives at most 2 (N = 4096), so that
// an SM has ~16 warps of loads in flight either way. Registers ≤ 128.
template <class T, int kTiles, bool kOutliers, int kWarps>
__global__ void __launch_bounds__(kWarps * 32, 16 / kWarps) fused_small_m_kernel(
    const std::int8_t* __restrict__ xq, const float* __restrict__ row_absmax, int m, const T* __restrict__ x,
    LayerView<T> g, T* __restrict__ y) {
  __shared__ int partial[kWarps][kTiles * 8][kFusedCols];  // [warp][token][column]
  // kFusedStagedOutliers outlier columns at a time: their weights for this
  // block's columns and the tokens' x values there.
  __shared__ float w_outlier[kOutliers ? kFusedStagedOutliers : 1][kFusedCols];
  __shared__ float x_outlier[kOutliers ? kTiles * 8 : 1][kFusedStagedOutliers];
  constexpr int kThreadsHere = kWarps * 32;
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, gq = lane >> 2, tq = lane & 3;
  const int n0 = blockIdx.x * kFusedCols, kp = g.k_padded;
  const int chunks = (kp + kFusedChunk - 1) / kFusedChunk;  // k_padded % 16 == 0: a 16-byte piece is all in or all out
  // n_padded % 16 == 0: both rows are allocated (zeros past n).
  const std::int8_t* w_lo = g.wq + static_cast<std::size_t>(n0 + gq) * kp + 16 * tq;
  const std::int8_t* w_hi = w_lo + 8 * static_cast<std::size_t>(kp);
  auto load_w = [&](int c0, FusedWeights& o) {
#pragma unroll
    for (int a = 0; a < kFusedAhead; ++a) {
      const int off = (c0 + a) * kFusedChunk;
      const bool in = c0 + a < chunks && off + 16 * tq < kp;
      o.lo[a] = in ? load_streamed(w_lo + off) : make_uint4(0u, 0u, 0u, 0u);
      o.hi[a] = in ? load_streamed(w_hi + off) : make_uint4(0u, 0u, 0u, 0u);
    }
  };
  // X through L1: the blocks of an SM walk K at about the same pace, and X
  // (M·K bytes: 128 KB at M = 16, K = 8192) fits there, so L2 sends it to
  // each SM about once instead of to every block.
  auto load_x = [&](int c0, FusedActivations<kTiles>& o) {
#pragma unroll
    for (int a = 0; a < kFusedAhead; ++a) {
      const int off = (c0 + a) * kFusedChunk + 16 * tq;
#pragma unroll
      for (int t = 0; t < kTiles; ++t) {
        const int token = 8 * t + gq;
        o.x[a][t] = (c0 + a < chunks && off < kp && token < m)
                        ? __ldg(reinterpret_cast<const uint4*>(xq + static_cast<std::size_t>(token) * kp + off))
                        : make_uint4(0u, 0u, 0u, 0u);
      }
    }
  };
  int acc[kTiles][4] = {};
  auto multiply = [&](const FusedWeights& w, const FusedActivations<kTiles>& o) {
#pragma unroll
    for (int a = 0; a < kFusedAhead; ++a)
#pragma unroll
      for (int t = 0; t < kTiles; ++t) {
        // K bytes 0–7 of the lane's 16, then 8–15
        mma_s8_m16n8k32(acc[t], w.lo[a].x, w.hi[a].x, w.lo[a].y, w.hi[a].y, o.x[a][t].x, o.x[a][t].y);
        mma_s8_m16n8k32(acc[t], w.lo[a].z, w.hi[a].z, w.lo[a].w, w.hi[a].w, o.x[a][t].z, o.x[a][t].w);
      }
  };
  const int stride = kWarps * kFusedAhead;
  int c0 = warp * kFusedAhead;
  FusedWeights cur, next;
  load_w(c0, cur);  // the weight is there before this layer's kernels run
  // The wait below lasts until prepare_small_m_kernel ends (a few µs):
  // meanwhile L2 fetches this warp's next kFusedPrefetch steps, a 128-byte
  // line per lane (16 rows × 256 bytes a step).
#pragma unroll
  for (int p = 1; p <= kFusedPrefetch; ++p) {
    const int off = (c0 + p * stride) * kFusedChunk + 128 * (lane & 1);
    if (off < kp) {
      const std::int8_t* line = g.wq + static_cast<std::size_t>(n0 + (lane >> 1)) * kp + off;
      asm volatile("prefetch.global.L2 [%0];" ::"l"(line));
    }
  }
  detail::wait_for_previous_grid();  // the int8 activations, row absmax, outlier list and values
  // Outlier columns j0 … j0 + 31 of the list into shared memory, every load
  // issued before the stores (W[n0 …, cols[j]] is one sector per weight of
  // row-major W; past the 512 gathered values x comes from X itself).
  int count = 0;
  auto stage_outliers = [&](int j0) {
    constexpr int kW = kFusedStagedOutliers * kFusedCols / kThreadsHere, kX = kTiles * 8 * kFusedStagedOutliers / kThreadsHere;
    float wv[kW], xv[kX];
#pragma unroll
    for (int u = 0; u < kW; ++u) {
      const int i = threadIdx.x + u * kThreadsHere, j = j0 + i / kFusedCols, col = n0 + i % kFusedCols;
      wv[u] = j < count && col < g.n ? outlier_weight(g.w16, g.k, g.wq, g.w_absmax, kp, col, g.cols[j]) : 0.0f;
    }
#pragma unroll
    for (int u = 0; u < kX; ++u) {
      const int i = threadIdx.x + u * kThreadsHere, token = i / kFusedStagedOutliers, j = j0 + i % kFusedStagedOutliers;
      xv[u] = j < count && token < m ? outlier_x(g, x, token, j) : 0.0f;
    }
#pragma unroll
    for (int u = 0; u < kW; ++u) {
      const int i = threadIdx.x + u * kThreadsHere;
      w_outlier[i / kFusedCols][i % kFusedCols] = wv[u];
    }
#pragma unroll
    for (int u = 0; u < kX; ++u) {
      const int i = threadIdx.x + u * kThreadsHere;
      x_outlier[i / kFusedStagedOutliers][i % kFusedStagedOutliers] = xv[u];
    }
  };
  if constexpr (kOutliers) {
    count = *g.count;
    if (count > 0) stage_outliers(0);  // the first round's DRAM latency passes while the W stream below is in flight
  }
  // W double-buffered: the next step's weights are in flight while this
  // step multiplies (X comes from L1 / L2, at a fraction of DRAM's latency).
  while (true) {
    const int c1 = c0 + stride;
    if (c1 < chunks) load_w(c1, next);
    FusedActivations<kTiles> xs;
    load_x(c0, xs);
    multiply(cur, xs);
    if (c1 >= chunks) break;
    cur = next;
    c0 = c1;
  }
  // D fragment: d0, d1 = (column g, tokens 2t, 2t + 1), d2, d3 = (column g + 8, same tokens).
#pragma unroll
  for (int t = 0; t < kTiles; ++t) {
    partial[warp][8 * t + 2 * tq][gq] = acc[t][0];
    partial[warp][8 * t + 2 * tq + 1][gq] = acc[t][1];
    partial[warp][8 * t + 2 * tq][gq + 8] = acc[t][2];
    partial[warp][8 * t + 2 * tq + 1][gq + 8] = acc[t][3];
  }
  __syncthreads();
  // Thread t owns outputs t, t + blockDim.x, … of the block's [token][column] tile.
  constexpr int kOut = (kTiles * 8 * kFusedCols + kThreadsHere - 1) / kThreadsHere;
  auto output = [](int u) { return static_cast<int>(threadIdx.x) + u * kThreadsHere; };
  // X[:, outliers] · W[:, outliers]ᵀ in list order, as epilogue_kernel sums
  // it, one staged round of columns after another.
  float outlier[kOut] = {};
  if constexpr (kOutliers) {
    for (int j0 = 0; j0 < count; j0 += kFusedStagedOutliers) {
      if (j0 > 0) {
        __syncthreads();  // the last round read
        stage_outliers(j0);
        __syncthreads();
      }
      const int staged = min(count - j0, kFusedStagedOutliers);
#pragma unroll
      for (int u = 0; u < kOut; ++u) {
        if (output(u) >= kTiles * 8 * kFusedCols) break;
        const int token = output(u) / kFusedCols, c = output(u) % kFusedCols;
        for (int j = 0; j < staged; ++j) outlier[u] = fmaf(x_outlier[token][j], w_outlier[j][c], outlier[u]);
      }
    }
  }
#pragma unroll
  for (int u = 0; u < kOut; ++u) {
    if (output(u) >= kTiles * 8 * kFusedCols) break;
    const int token = output(u) / kFusedCols, c = output(u) % kFusedCols, col = n0 + c;
    if (token >= m || col >= g.n) continue;
    int q = 0;
#pragma unroll
    for (int w = 0; w < kWarps; ++w) q += partial[w][token][c];
    store1(y + static_cast<std::size_t>(token) * g.n + col, dequantize_int32(q, row_absmax[token], g.w_absmax[col]) + outlier[u]);
  }
}

// Small M: step 1 in one launch — a cluster of kPrepCluster blocks,
// each owning a slice of X's columns for every row, held in registers. A
// block flags its columns (no other block holds them), takes its rows'
// absmax over the unflagged ones, and the cluster combines the row maxima and
// the outlier counts through distributed shared memory: no flag buffer, no
// completion counter, no second launch. The outlier weights are read by the
// fused GEMM itself (fused_small_m_kernel), so nothing is gathered here
// either. Same rule as quantize_rows_kernel: the int8 values, row absmax,
// column list and outlier activations are identical.
constexpr int kPrepCluster = 16;  // non-portable size (H100/H200 allow 16)
constexpr int kPrepThreads = 512;
constexpr int kPrepHeld = 8;                                            // 8-column groups per thread, in registers
constexpr int kPrepMaxGroups = kPrepThreads;                            // per block: one per thread in the scan
constexpr int kPrepMaxRowGroups = kPrepHeld * kPrepThreads;             // rows × groups per block
__host__ __device__ constexpr int prep_groups_per_block(int k_padded) { return (k_padded / 8 + kPrepCluster - 1) / kPrepCluster; }
bool prep_fits(int m, int k_padded) {
  const int groups = prep_groups_per_block(k_padded);
  return m <= kFusedMaxM && groups <= kPrepMaxGroups && m * groups <= kPrepMaxRowGroups;
}

// The 8 values of X[row, c … c + 7] as raw 16-bit patterns, zeros past k.
template <class T>
__device__ __forceinline__ uint4 load_group_bits(const T* __restrict__ xr, int c, int k) {
  if (k % 8 == 0 && c + 8 <= k) return __ldg(reinterpret_cast<const uint4*>(xr + c));
  std::uint32_t h[8];
  const auto* p = reinterpret_cast<const std::uint16_t*>(xr);
#pragma unroll
  for (int e = 0; e < 8; ++e) h[e] = c + e < k ? p[c + e] : 0u;
  return make_uint4(h[0] | h[1] << 16, h[2] | h[3] << 16, h[4] | h[5] << 16, h[6] | h[7] << 16);
}

template <class T>
__global__ void __launch_bounds__(kPrepThreads) prepare_small_m_kernel(
    const T* __restrict__ x, int m, int k, int k_padded, float threshold, std::int8_t* __restrict__ q,
    float* __restrict__ row_absmax, int* __restrict__ cols, int* __restrict__ count, float* __restrict__ xo, int xo_stride) {
  __shared__ unsigned col_mask[kPrepMaxGroups];  // bit e: column 8·group + e is an outlier
  __shared__ int group_offset[kPrepMaxGroups];   // its first outlier's place in the block's list
  __shared__ float row_max[kFusedMaxM];          // this block's part of the row maxima
  __shared__ float row_final[kFusedMaxM];        // the cluster's
  __shared__ int block_count, list_offset, total_count;
  cg::cluster_group cluster = cg::this_cluster();
  const int rank = static_cast<int>(cluster.block_rank());
  const int per_block = prep_groups_per_block(k_padded), g0 = rank * per_block;
  const int groups = max(0, min(per_block, k_padded / 8 - g0)), items = m * groups;
  for (int i = threadIdx.x; i < groups; i += kPrepThreads) col_mask[i] = 0u;
  for (int r = threadIdx.x; r < m; r += kPrepThreads) row_max[r] = 0.0f;
  // Item i = (row i / groups, group i % groups); thread t holds items t, t + 512, …
  uint4 raw[kPrepHeld];
  int row_of[kPrepHeld], group_of[kPrepHeld];  // -1 past the items
  detail::wait_for_previous_grid();  // X may come from the kernel before
  // The fused GEMM may start now (it loads weights until it waits for this grid).
  detail::allow_next_grid_to_start();
#pragma unroll
  for (int h = 0; h < kPrepHeld; ++h) {
    const int i = threadIdx.x + h * kPrepThreads;
    row_of[h] = i < items ? i / groups : -1;
    group_of[h] = i < items ? i - row_of[h] * groups : 0;
    raw[h] = i < items ? load_group_bits(x + static_cast<std::size_t>(row_of[h]) * k, 8 * (g0 + group_of[h]), k)
                       : make_uint4(0u, 0u, 0u, 0u);
  }
  __syncthreads();  // col_mask, row_max cleared
  // 1. Outlier columns of the slice (threshold +inf: none — not even the inf values).
  if (threshold < INFINITY) {
#pragma unroll
    for (int h = 0; h < kPrepHeld; ++h) {
      if (row_of[h] < 0) break;
      const int c = 8 * (g0 + group_of[h]);
      float v[8];
      detail::unpack8(raw[h], x, v);
      unsigned hit = 0u;
#pragma unroll
      for (int e = 0; e < 8; ++e) hit |= (c + e < k && fabsf(v[e]) >= threshold ? 1u : 0u) << e;
      if (hit) atomicOr(&col_mask[group_of[h]], hit);
    }
    __syncthreads();
  }
  // 2. This slice's row maxima over the values below the threshold (fmaxf
  //    drops NaN; the bits of non-negative floats order like the floats). A warp's items
  //    are consecutive, so its lanes of one row are adjacent: a segmented
  //    max over them, then one shared atomic per row and warp (one per item
  //    serialised 32 lanes on one address: ~40 µs at M = 128).
  const int lane = threadIdx.x & 31;
#pragma unroll
  for (int h = 0; h < kPrepHeld; ++h) {
    if (h * kPrepThreads >= items) break;  // uniform over the block
    const int row = row_of[h];
    unsigned amax = 0u;
    if (row >= 0) {
      float v[8];
      detail::unpack8(raw[h], x, v);
      float a = 0.0f;
#pragma unroll
      for (int e = 0; e < 8; ++e) a = fmaxf(a, threshold < INFINITY && fabsf(v[e]) >= threshold ? 0.0f : fabsf(v[e]));
      amax = __float_as_uint(a);
    }
#pragma unroll
    for (int o = 1; o < 32; o <<= 1) {
      const unsigned other = __shfl_down_sync(0xffffffffu, amax, o);
      const int other_row = __shfl_down_sync(0xffffffffu, row, o);
      if (lane + o < 32 && other_row == row) amax = max(amax, other);
    }
    const int prev_row = __shfl_up_sync(0xffffffffu, row, 1);
    if (row >= 0 && (lane == 0 || prev_row != row) && amax > 0u)
      atomicMax(reinterpret_cast<unsigned*>(&row_max[row]), amax);
  }
  // 3. The slice's outlier columns in ascending order: a block-wide exclusive sum of the groups' counts.
  {
    int total;
    const int before =
        block_exclusive_sum<kPrepThreads>(static_cast<int>(threadIdx.x) < groups ? __popc(col_mask[threadIdx.x]) : 0, total);
    if (static_cast<int>(threadIdx.x) < groups) group_offset[threadIdx.x] = before;
    if (threadIdx.x == 0) block_count = total;
  }
  // 4. The cluster's row maxima and this block's place in the column list:
  //    lane r of a warp reads block r's value, so the remote reads of a row
  //    (or of the counts) are one round trip, not one per block.
  cluster.sync();
  const int blocks = static_cast<int>(cluster.num_blocks()), warp = threadIdx.x >> 5;
  if (warp == 0) {
    const int c = lane < blocks ? *cluster.map_shared_rank(&block_count, lane) : 0;
    int before = lane < rank ? c : 0, total = c;
    for (int o = 16; o > 0; o >>= 1) {
      before += __shfl_xor_sync(0xffffffffu, before, o);
      total += __shfl_xor_sync(0xffffffffu, total, o);
    }
    if (lane == 0) {
      list_offset = before;
      total_count = total;
    }
  }
  for (int row = warp; row < m; row += kPrepThreads / 32) {
    float v = lane < blocks ? *cluster.map_shared_rank(&row_max[row], lane) : 0.0f;
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    if (lane == 0) row_final[row] = v;
  }
  cluster.sync();  // every remote read done: a block's shared memory must outlive them
  if (rank == 0) {
    if (static_cast<int>(threadIdx.x) < m) row_absmax[threadIdx.x] = row_final[threadIdx.x];
    if (threadIdx.x == 0) *count = total_count;
  }
  if (static_cast<int>(threadIdx.x) < groups) {
    unsigned f = col_mask[threadIdx.x];
    int j = list_offset + group_offset[threadIdx.x];
    while (f) {
      cols[j++] = 8 * (g0 + static_cast<int>(threadIdx.x)) + __ffs(f) - 1;
      f &= f - 1u;
    }
  }
  // 5. Quantize the slice (outlier columns 0); the outliers' x values go to xo in list order.
#pragma unroll
  for (int h = 0; h < kPrepHeld; ++h) {
    if (row_of[h] < 0) break;
    const int row = row_of[h], grp = group_of[h], c = 8 * (g0 + grp);
    float v[8];
    detail::unpack8(raw[h], x, v);
    const float amax = row_final[row], scale = amax > 0.0f ? 127.0f / amax : 0.0f;
    const unsigned f = col_mask[grp];
    std::uint32_t b[8];
#pragma unroll
    for (int e = 0; e < 8; ++e) b[e] = (f >> e) & 1u ? 0u : int8_byte(v[e], scale) & 0xFFu;
    *reinterpret_cast<uint2*>(q + static_cast<std::size_t>(row) * k_padded + c) =
        make_uint2(pack_bytes(b[0], b[1], b[2], b[3]), pack_bytes(b[4], b[5], b[6], b[7]));
    if (f) {
      int j = list_offset + group_offset[grp];
#pragma unroll
      for (int e = 0; e < 8; ++e)
        if ((f >> e) & 1u) {
          if (j < kGatheredCapacity) xo[static_cast<std::size_t>(row) * xo_stride + j] = v[e];
          ++j;
        }
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

// Blocks for the outlier gather: two per SM (one wave, all resident).
int gather_blocks() { return 2 * detail::sm_count(); }

// Clusters of 16 blocks need the non-portable size (H100 / H200 allow it);
// where the device refuses, the automatic path takes cuBLASLt instead.
template <class T>
bool prep_cluster_allowed() {
  static const bool ok = [] {
    const bool set =
        cudaFuncSetAttribute(prepare_small_m_kernel<T>, cudaFuncAttributeNonPortableClusterSizeAllowed, 1) == cudaSuccess;
    if (!set) (void)cudaGetLastError();  // not sticky: clear it for the next check
    return set;
  }();
  return ok;
}

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
  // the outlier gather indexes max_m × k and 512 × n_padded items with 32 bits
  if (static_cast<long long>(max_m) * w.k_padded >= (1LL << 31) ||
      static_cast<long long>(kGatheredCapacity) * w.n_padded >= (1LL << 31))
    throw std::invalid_argument("LlmInt8Layer: max_m · K or N too large (" + std::to_string(max_m) + " × " +
                                std::to_string(w.k) + ", N = " + std::to_string(w.n) + ")");
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
  check_cuda(cudaMalloc(&gathered_cols_, sizeof(int) * std::min(w.k, kGatheredCapacity)), "cudaMalloc(gathered columns)");
  check_cuda(cudaMalloc(&gathered_used_, sizeof(int)), "cudaMalloc(gathered count)");
  check_cuda(cudaMemset(gathered_used_, 0xFF, sizeof(int)), "memset gathered count");  // −1: none yet
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
  cudaFree(gathered_cols_);
  cudaFree(gathered_used_);
}

void LlmInt8Layer::weights_changed(cudaStream_t stream) {
  check_cuda(cudaMemsetAsync(gathered_used_, 0xFF, sizeof(int), stream), "memset gathered count");  // −1: none
}

bool LlmInt8Layer::wgmma_available() { return int8_wgmma_available(); }

Int8Path LlmInt8Layer::path_for(int m) const {
  const bool cluster_ok = act_ == Act::bf16 ? prep_cluster_allowed<__nv_bfloat16>() : prep_cluster_allowed<__half>();
  const bool small_m_fits = cluster_ok && prep_fits(m, w_.k_padded);
  switch (path_) {
    case Int8Path::fused_small_m:
      if (!cluster_ok)
        throw std::runtime_error("LlmInt8Layer::forward: this device does not run clusters of " +
                                 std::to_string(kPrepCluster) + " blocks, which the fused small-M path needs");
      if (!small_m_fits)
        throw std::invalid_argument("LlmInt8Layer::forward: M = " + std::to_string(m) + ", K = " + std::to_string(w_.k) +
                                    " is beyond the fused small-M path (M <= " + std::to_string(kFusedMaxM) +
                                    ", M·K <= " + std::to_string(kPrepCluster * kPrepMaxRowGroups * 8) + " about)");
      return path_;
    case Int8Path::wgmma:
      if (!int8_wgmma_available())
        throw std::runtime_error("LlmInt8Layer::forward: the wgmma path needs lowbit's sm_90a build on a device of "
                                 "compute capability 9.0");
      return path_;
    case Int8Path::cublaslt:
      return path_;
    case Int8Path::automatic:
      break;
  }
  // The fused small-M GEMM where its grid is about one wave (4 blocks per SM): at N = 28672 (3.4 waves)
  // cuBLASLt's int8 GEMM measured faster (H200).
  if (small_m_fits && m <= kFusedAutoMaxM && w_.n_padded / kFusedCols <= 4 * detail::sm_count())
    return Int8Path::fused_small_m;
  // The wgmma GEMM where its 128 × 256 tiles are at least half full of tokens and fill 70 % of the SMs or
  // more. (At M = 1 and 16, N = 28672, its 112 tiles measured 22 % slower than cuBLASLt's int8 GEMM; with
  // fewer tiles, K split over clusters of 2–4 CTAs measured slower than the cuBLASLt path: M = 128,
  // K = N = 8192, 0.1 % outliers, 43.4 against 38.7 µs on the H200.)
  const long tiles = static_cast<long>((m + 127) / 128) * ((w_.n_padded + 255) / 256);
  if (m > 64 && 10 * tiles >= 7L * detail::sm_count() && int8_wgmma_available()) return Int8Path::wgmma;
  return Int8Path::cublaslt;
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
                        cols_, count_, gathered_, outlier_x_, outlier_x_stride(), gathered_cols_, gathered_used_};
  };
  const Int8Path path = path_for(m);
  const bool fused = path == Int8Path::fused_small_m, wgmma = path == Int8Path::wgmma;
  if (fused) {
    // Two launches: the cluster that flags and quantizes, and the fused GEMM,
    // which starts while the first runs and streams weights until it waits.
    dispatch(act_, [&](auto t) {
      using T = decltype(t);
      check_cuda(detail::launch_clusters_after_previous_starts(true, kPrepCluster, prepare_small_m_kernel<T>,
                                                               dim3(kPrepCluster), dim3(kPrepThreads), stream,
                                                               static_cast<const T*>(x), m, w_.k, w_.k_padded, threshold_,
                                                               x_int8_, row_absmax_, cols_, count_, outlier_x_,
                                                               outlier_x_stride()),
                 "prepare_small_m_kernel");
      const int blocks = w_.n_padded / kFusedCols;
      const bool eight_warps = blocks <= 2 * detail::sm_count();
      auto launch = [&](auto kernel, int warps) {
        check_cuda(detail::launch_after_previous_starts(one_wave(blocks, warps * 32), kernel, dim3(blocks), dim3(warps * 32),
                                                        stream, x_int8_, row_absmax_, m, static_cast<const T*>(x),
                                                        view(T{}), static_cast<T*>(y)),
                   "fused_small_m_kernel");
      };
      auto pick = [&](auto tiles) {
        constexpr int kTiles = decltype(tiles)::value;
        if (find_outliers) {
          if (eight_warps) launch(fused_small_m_kernel<T, kTiles, true, 8>, 8);
          else launch(fused_small_m_kernel<T, kTiles, true, 4>, 4);
        } else {
          if (eight_warps) launch(fused_small_m_kernel<T, kTiles, false, 8>, 8);
          else launch(fused_small_m_kernel<T, kTiles, false, 4>, 4);
        }
      };
      if (m <= 8) pick(std::integral_constant<int, 1>{});
      else if (m <= 16) pick(std::integral_constant<int, 2>{});
      else pick(std::integral_constant<int, 4>{});
    });
    return;
  }
  dispatch(act_, [&](auto t) {
    using T = decltype(t);
    const T* xt = static_cast<const T*>(x);
    // The register-resident row form where the row fits: enough threads that
    // each holds ≤ kRowChunks chunks (also with few rows: one chunk per
    // thread, 1024 threads per row, measured 1–5 µs slower at M = 16 and 128,
    // K = N = 8192); else the general one. With outliers, the gather after it.
    const bool resident = w_.k % 8 == 0 && w_.k <= kResidentMaxK;
    const int threads = resident ? std::clamp(round_up((w_.k_padded / 8 + kRowChunks - 1) / kRowChunks, 32), 64,
                                              kResidentMaxThreads)
                                 : kThreads;
    auto launch = [&](auto kernel) {
      int per_sm = 1;  // the resident form: about one wave of blocks
      if (resident) check_cuda(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, kernel, threads, 0), "occupancy");
      const int blocks = resident ? std::min(m, std::max(1, per_sm) * detail::sm_count()) : m;
      kernel<<<blocks, threads, 0, stream>>>(xt, m, w_.k, w_.k_padded, threshold_, x_int8_, row_absmax_, flags_,
                                             round_up(w_.k, 16), cols_, count_, done_);
    };
    if (resident) find_outliers ? launch(quantize_rows_kernel<T, true, true>) : launch(quantize_rows_kernel<T, true, false>);
    else find_outliers ? launch(quantize_rows_kernel<T, false, true>) : launch(quantize_rows_kernel<T, false, false>);
    check_cuda(cudaGetLastError(), "quantize_rows_kernel");
    if (find_outliers)
      check_cuda(detail::launch_after_previous_starts(true, outlier_gather_kernel<T>, dim3(gather_blocks()), dim3(kThreads),
                                                      stream, view(T{}), xt, m, x_int8_),
                 "outlier_gather_kernel");
  });
  if (wgmma) {  // one GEMM with the whole epilogue in it
    dispatch(act_, [&](auto t) {
      using T = decltype(t);
      check_cuda(launch_int8_wgmma(x_int8_, row_absmax_, m, view(T{}), static_cast<const T*>(x), find_outliers, flags_,
                                   static_cast<T*>(y), true, stream),
                 "int8_gemm_wgmma_kernel");
    });
    return;
  }
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
