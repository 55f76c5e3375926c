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
constexpr int kOutlierChunk = 32;     // outlier columns staged per step
constexpr int kGatheredCapacity = 512;  // outlier weight columns kept dequantized and contiguous

using detail::load1;
using detail::store1;
using detail::block_max;

// int8 = round(x · 127 / absmax), half away from zero, saturated to ±127
__device__ __forceinline__ std::int8_t quantize_int8(float x, float scale) {
  const float q = roundf(x * scale);
  return static_cast<std::int8_t>(fminf(fmaxf(q, -127.0f), 127.0f));
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
  const int c8 = (blockIdx.x * kThreads + threadIdx.x) * 8;
  if (c8 < k) {
    for (int row = blockIdx.y; row < m; row += gridDim.y) {
      const T* xr = x + static_cast<std::size_t>(row) * k;
      if (k % 8 == 0) {
        float v[8];
        load8(xr + c8, v);
#pragma unroll
        for (int e = 0; e < 8; ++e)  // read first: an outlier column holds outliers in most rows
          if (fabsf(v[e]) >= threshold && flags[c8 + e] == 0) flags[c8 + e] = 1;
      } else {
        for (int c = c8; c < min(c8 + 8, k); ++c)
          if (fabsf(load1(xr + c)) >= threshold && flags[c] == 0) flags[c] = 1;
      }
    }
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

// Step 2, one launch: blocks 0 … m−1 quantize one row each; the blocks after
// them gather the outlier weight columns (both need only step 1's list).
// The row absmax skips outlier columns, whose int8 entries are zero (they go
// through the 16-bit path), as in kernels/cpu/llm_int8.cpp. flags == nullptr:
// no outlier columns. With K % 8 == 0 each thread moves 8 elements at a time
// (16-byte loads, one 8-byte flag load, 8-byte stores); the second pass
// re-reads the row from cache.
template <class T>
__global__ void __launch_bounds__(kThreads) quantize_rows_kernel(
    const T* __restrict__ x, int m, int k, int k_padded, const std::uint8_t* __restrict__ flags,
    std::int8_t* __restrict__ q, float* __restrict__ row_absmax,
    // gather part (flags != nullptr)
    const T* __restrict__ w16, const std::int8_t* __restrict__ wq, const float* __restrict__ w_absmax, int n,
    int n_padded, const int* __restrict__ cols, const int* __restrict__ count, float* __restrict__ wc) {
  if (static_cast<int>(blockIdx.x) >= m) {
    const int col = (blockIdx.x - m) * kThreads + threadIdx.x;
    if (col >= n_padded) return;
    const int used = min(*count, kGatheredCapacity);
    // 8 columns at a time, all loads issued before the stores: the weight
    // reads are one sector each (row-major W), so a loop of dependent
    // load → store pairs would wait out a DRAM latency per outlier column.
    for (int j0 = 0; j0 < used; j0 += 8) {
      float v[8];
#pragma unroll
      for (int t = 0; t < 8; ++t)
        v[t] = (j0 + t < used && col < n) ? outlier_weight(w16, k, wq, w_absmax, k_padded, col, cols[j0 + t]) : 0.0f;
#pragma unroll
      for (int t = 0; t < 8; ++t)
        if (j0 + t < used) wc[static_cast<std::size_t>(j0 + t) * n_padded + col] = v[t];
    }
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
  if (threadIdx.x == 0) row_absmax[row] = amax;
}

// Step 4: dequantize the int32 product and add the outlier columns' product.
// Each thread owns kEpilogueCols consecutive columns of kEpilogueRows rows:
// 16-byte loads of the int32 product and of the gathered outlier weights,
// one 8-byte store per row where N % 4 == 0. blockDim.x is 64 … 256 (small M:
// narrower blocks, so that more SMs take part). Block (0, 0) clears the
// outlier flags for the next call (quantize_rows has read them).
template <class T>
__global__ void __launch_bounds__(kThreads) epilogue_kernel(
    const std::int32_t* __restrict__ c32, int n_padded, const float* __restrict__ row_absmax,
    const float* __restrict__ w_absmax, const T* __restrict__ x, int k, int k_padded, const std::int8_t* __restrict__ wq,
    const T* __restrict__ w16, const float* __restrict__ wc, const int* __restrict__ cols,
    const int* __restrict__ count_ptr, std::uint8_t* __restrict__ flags, T* __restrict__ y, int m, int n) {
  __shared__ float outlier_x[kEpilogueRows][kOutlierChunk];
  const int col0 = (blockIdx.x * blockDim.x + threadIdx.x) * kEpilogueCols;
  const int m0 = blockIdx.y * kEpilogueRows;
  float acc[kEpilogueRows][kEpilogueCols] = {};
  const int count = count_ptr ? *count_ptr : 0;
  if (flags && blockIdx.x == 0 && blockIdx.y == 0)
    for (int j = threadIdx.x; j < count; j += blockDim.x) flags[cols[j]] = 0;
  for (int j0 = 0; j0 < count; j0 += kOutlierChunk) {
    const int chunk = min(kOutlierChunk, count - j0);
    for (int e = threadIdx.x; e < kEpilogueRows * kOutlierChunk; e += blockDim.x) {
      const int i = e / kOutlierChunk, jj = e % kOutlierChunk, row = m0 + i;
      outlier_x[i][jj] = (jj < chunk && row < m) ? load1(x + static_cast<std::size_t>(row) * k + cols[j0 + jj]) : 0.0f;
    }
    __syncthreads();
    if (col0 < n) {
      // 4 outlier columns per step, their weight loads issued together
      // (outlier_x is 0 past `chunk`, and so are the weights loaded there).
      for (int jj = 0; jj < chunk; jj += 4) {
        float wv[4][kEpilogueCols];
#pragma unroll
        for (int t = 0; t < 4; ++t) {
          const int j = j0 + jj + t;
          if (jj + t >= chunk) {
#pragma unroll
            for (int c = 0; c < kEpilogueCols; ++c) wv[t][c] = 0.0f;
          } else if (j < kGatheredCapacity) {  // col0 + 3 < n_padded: zeros past n
            const float4 w4 = __ldg(reinterpret_cast<const float4*>(wc + static_cast<std::size_t>(j) * n_padded + col0));
            wv[t][0] = w4.x; wv[t][1] = w4.y; wv[t][2] = w4.z; wv[t][3] = w4.w;
          } else {
#pragma unroll
            for (int c = 0; c < kEpilogueCols; ++c)
              wv[t][c] = col0 + c < n ? outlier_weight(w16, k, wq, w_absmax, k_padded, col0 + c, cols[j]) : 0.0f;
          }
        }
#pragma unroll
        for (int t = 0; t < 4; ++t)
#pragma unroll
          for (int i = 0; i < kEpilogueRows; ++i)
#pragma unroll
            for (int c = 0; c < kEpilogueCols; ++c) acc[i][c] = fmaf(outlier_x[i][jj + t], wv[t][c], acc[i][c]);
      }
    }
    __syncthreads();
  }
  if (col0 >= n) return;
  constexpr float inv_127_sq = 1.0f / (127.0f * 127.0f);
  float ca[kEpilogueCols];  // w_absmax has n_padded entries: col0 + 3 is in range
#pragma unroll
  for (int c = 0; c < kEpilogueCols; ++c) ca[c] = w_absmax[col0 + c];
#pragma unroll
  for (int i = 0; i < kEpilogueRows; ++i) {
    const int row = m0 + i;
    if (row >= m) break;
    // n_padded % 16 == 0 and col0 % 4 == 0: an aligned 16-byte load.
    const int4 q = __ldcs(reinterpret_cast<const int4*>(c32 + static_cast<std::size_t>(row) * n_padded + col0));
    const int qv[kEpilogueCols] = {q.x, q.y, q.z, q.w};
    const float ra = row_absmax[row];
    alignas(8) T out[kEpilogueCols];
#pragma unroll
    for (int c = 0; c < kEpilogueCols; ++c) {
      // The CPU reference's dequantization, operation for operation (no FMA).
      const float dq = __fmul_rn(static_cast<float>(qv[c]), __fmul_rn(__fmul_rn(ra, ca[c]), inv_127_sq));
      store1(out + c, dq + acc[i][c]);
    }
    T* yr = y + static_cast<std::size_t>(row) * n + col0;
    if (n % kEpilogueCols == 0) {
      *reinterpret_cast<uint2*>(yr) = *reinterpret_cast<const uint2*>(out);
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
  check_cuda(cudaMemset(flags_, 0, static_cast<std::size_t>(round_up(w.k, 16))), "memset flags");  // the epilogue keeps them clear
  check_cuda(cudaMemset(done_, 0, sizeof(unsigned)), "memset counter");
  check_cuda(cudaMemset(count_, 0, sizeof(int)), "memset count");
}

LlmInt8Layer::~LlmInt8Layer() {
  cudaFree(x_int8_);
  cudaFree(row_absmax_);
  cudaFree(c32_);
  cudaFree(flags_);
  cudaFree(done_);
  cudaFree(cols_);
  cudaFree(count_);
  cudaFree(gathered_);
}

void LlmInt8Layer::forward(const void* x, void* y, int m, cudaStream_t stream) {
  if (m <= 0 || m > max_m_)
    throw std::invalid_argument("LlmInt8Layer::forward: m = " + std::to_string(m) + " outside 1.." + std::to_string(max_m_));
  const bool find_outliers = threshold_ < std::numeric_limits<float>::infinity();
  const int gather_blocks = find_outliers ? (w_.n_padded + kThreads - 1) / kThreads : 0;
  dispatch(act_, [&](auto t) {
    using T = decltype(t);
    const T* xt = static_cast<const T*>(x);
    if (find_outliers) {
      // ≤ ~4 blocks per SM in all: the completion counter takes one atomic per block
      const unsigned gx = static_cast<unsigned>((w_.k + kThreads * 8 - 1) / (kThreads * 8));
      const unsigned gy = std::max(1u, std::min(static_cast<unsigned>(m), 4u * detail::sm_count() / gx));
      flag_and_compact_kernel<T><<<dim3(gx, gy), kThreads, 0, stream>>>(xt, m, w_.k, threshold_, flags_,
                                                                       round_up(w_.k, 16), cols_, count_, done_);
      check_cuda(cudaGetLastError(), "flag_and_compact_kernel");
    }
    quantize_rows_kernel<T><<<m + gather_blocks, kThreads, 0, stream>>>(
        xt, m, w_.k, w_.k_padded, find_outliers ? flags_ : nullptr, x_int8_, row_absmax_, static_cast<const T*>(w16_),
        w_.data, w_.absmax, w_.n, w_.n_padded, cols_, count_, gathered_);
    check_cuda(cudaGetLastError(), "quantize_rows_kernel");
  });
  gemm_.run(GemmKind::int8_int32, m, w_.n_padded, w_.k_padded, x_int8_, w_.data, c32_, stream);
  // Narrower blocks when there are few output tiles, so that every SM works.
  auto blocks_for = [&](int threads) {
    return ((w_.n + threads * kEpilogueCols - 1) / (threads * kEpilogueCols)) * ((m + kEpilogueRows - 1) / kEpilogueRows);
  };
  int threads = kThreads;
  while (threads > 64 && blocks_for(threads) < 2 * detail::sm_count()) threads /= 2;
  const int cols_per_block = threads * kEpilogueCols;
  const dim3 grid((w_.n + cols_per_block - 1) / cols_per_block, (m + kEpilogueRows - 1) / kEpilogueRows);
  dispatch(act_, [&](auto t) {
    using T = decltype(t);
    epilogue_kernel<T><<<grid, threads, 0, stream>>>(c32_, w_.n_padded, row_absmax_, w_.absmax, static_cast<const T*>(x),
                                                     w_.k, w_.k_padded, w_.data, static_cast<const T*>(w16_), gathered_,
                                                     cols_, find_outliers ? count_ : nullptr,
                                                     find_outliers ? flags_ : nullptr, static_cast<T*>(y), m, w_.n);
  });
  check_cuda(cudaGetLastError(), "epilogue_kernel");
}

}  // namespace lowbit::cuda
