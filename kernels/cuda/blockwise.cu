// kernels/cuda/blockwise.cu — see blockwise.cuh.
//
// Memory-bound kernels; what each moves (bytes read + written):
//   dequantize_4bit: n/2 codes + 4n/B scales (dq: n/B + 4n/(256B)) in,
//                    n · sizeof(out) out — bf16 at B = 64: 2.5625 B/element.
//   quantize_4bit:   n · sizeof(in) in, n/2 + 4n/B out.
//   dequantize_mx8:  n + n/32 in, n · sizeof(out) out.
//   quantize_mx8:    n · sizeof(in) in, n + n/32 out.
// Each thread moves 8 (4-bit) or 16 (mx8) elements per step with 4–16-byte
// accesses, coalesced across the warp, several independent loads in flight;
// the grid is capped at a few CTAs per SM and strides over the tensor.
#include "kernels/cuda/blockwise.cuh"

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_fp8.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cfloat>
#include <type_traits>
#include <stdexcept>

#include "kernels/cuda/device_util.cuh"
#include "lowbit/formats/dyn8.hpp"
#include "lowbit/formats/minifloats.hpp"
#include "lowbit/formats/packing.hpp"
#include "lowbit/formats/scaled.hpp"

namespace lowbit::cuda {

Table16 make_table16(const Codebook& cb) {
  if (cb.size < 1 || cb.size > 16 || cb.bits > 4)
    throw std::invalid_argument("lowbit::cuda::make_table16: the 4-bit kernels take codebooks of at most 16 values");
  Table16 t{};
  for (int c = 0; c < 16; ++c) {
    t.value[c] = c < cb.size ? cb.value[c] : 0.0f;
    t.code_of_rank[c] = c < cb.size ? cb.code_of_rank[c] : 0;
  }
  for (int k = 0; k < 15; ++k) t.threshold[k] = cb.threshold[k];
  t.zero_code = cb.zero_code;
  t.bnb_nan_code = cb.bnb_nan_code;
  t.max_magnitude = cb.max_magnitude;
  return t;
}

namespace {
using detail::load1;
using detail::load8;
using detail::load8_or_tail;
using detail::store1;
using detail::store8;

struct Dyn8Values {
  float v[256];
};
Dyn8Values dyn8_param(bool bnb) {
  Dyn8Values d{};
  for (int i = 0; i < 256; ++i) d.v[i] = bnb ? dyn8_bnb_values[i] : dyn8_values[i];
  return d;
}

// scaled.hpp's group_scale / safe_inverse / scale_down for the fp32 and e8m0
// scale formats, restated (inv = 1/s may be +inf for s < 2^-128: then y = x / s);
// line for line: group_scale itself names the host constants fp16 / bf16 /
// e4m3fn by reference, which device code may not (ODR-use of a host variable).
struct DeviceGroupScale {
  std::uint32_t code;
  float scale, inv;
};
__device__ __forceinline__ float device_inverse(float s) { return s > 0.0f ? __frcp_rn(s) : 0.0f; }  // safe_inverse
__device__ __forceinline__ DeviceGroupScale fp32_group_scale(float amax, float max_elem) {
  float s = max_elem == 1.0f ? amax : __fdiv_rn(amax, max_elem);  // x / 1 is x: skip the division
  if (s > FLT_MAX) s = FLT_MAX;
  return {__float_as_uint(s), s, device_inverse(s)};
}
__device__ __forceinline__ DeviceGroupScale e8m0_group_scale(float amax, int emax_elem) {
  int e = amax > 0.0f ? floor_log2(amax) - emax_elem : -127;
  e = e < -127 ? -127 : (e > 127 ? 127 : e);
  const float s = static_cast<float>(pow2(e));
  return {static_cast<std::uint32_t>(e + 127), s, device_inverse(s)};
}
// scaled.hpp's flush_subnormal (bnb mode: bitsandbytes' kernels run with FTZ).
__device__ __forceinline__ float ftz(float x) { return fabsf(x) < FLT_MIN ? copysignf(0.0f, x) : x; }

// scaled.hpp's element_convert_options, built in device code.
__device__ __forceinline__ ConvertOptions device_element_options() {
  ConvertOptions o{};
  o.inf_under_saturation = InfUnderSaturation::keep_inf;
  o.nan_to_finite = NanToFinite::zero_flipped_sign;
  return o;
}

// s_b of block b (plain or double-quantized), the CPU reference's arithmetic.
__device__ __forceinline__ float block_scale(const BlockScales& s, std::size_t b, const float* dyn8) {
  if (s.dq_codes != nullptr) {
    if (s.bnb) return ftz(__fadd_rn(ftz(__fmul_rn(dyn8[s.dq_codes[b]], s.dq_absmax[b >> 8])), s.dq_offset));
    return __fadd_rn(__fmul_rn(dyn8[s.dq_codes[b]], s.dq_absmax[b >> 8]), s.dq_offset);
  }
  return s.absmax[b];
}

// ---------------------------------------------------------------- dequantize 4-bit

constexpr int kDqThreads = 256;

// A thread's unit: 8 elements from 4 code bytes (16-bit outputs: one 16-byte
// store), or 4 elements from 2 code bytes (fp32: one 16-byte store), so every
// store instruction of a warp writes 512 contiguous bytes.
template <class OutT>
struct DqUnit {
  static constexpr int kElems = sizeof(OutT) == 4 ? 4 : 8;
  static constexpr int kUnroll = sizeof(OutT) == 4 ? 8 : 4;  // units per thread per step
  using Word = std::conditional_t<sizeof(OutT) == 4, std::uint16_t, std::uint32_t>;
};

__device__ __forceinline__ void store_unit(float* p, const float (&v)[4]) {
  __stcs(reinterpret_cast<float4*>(p), make_float4(v[0], v[1], v[2], v[3]));
}
template <class OutT>
__device__ __forceinline__ void store_unit(OutT* p, const float (&v)[8]) {
  store8(p, v);
}

template <class OutT, bool kDq>
__global__ void __launch_bounds__(kDqThreads) dequant4_kernel(Table16 t, Dyn8Values dq_table,
                                                             const typename DqUnit<OutT>::Word* __restrict__ codes,
                                                             BlockScales scales, std::size_t n, std::size_t block,
                                                             int block_shift, OutT* __restrict__ out) {
  constexpr int E = DqUnit<OutT>::kElems, U = DqUnit<OutT>::kUnroll;
  __shared__ float lut[16];
  __shared__ float dyn8[kDq ? 256 : 1];
  if (threadIdx.x < 16) lut[threadIdx.x] = t.value[threadIdx.x];
  if constexpr (kDq) dyn8[threadIdx.x] = dq_table.v[threadIdx.x];
  __syncthreads();

  const std::size_t units = n / E;
  const std::size_t step = std::size_t{gridDim.x} * kDqThreads * U;
  for (std::size_t base = std::size_t{blockIdx.x} * kDqThreads * U; base < units; base += step) {
    std::uint32_t w[U];
    float s[U];
#pragma unroll
    for (int j = 0; j < U; ++j) {
      const std::size_t u = base + j * kDqThreads + threadIdx.x;
      w[j] = u < units ? static_cast<std::uint32_t>(__ldcs(codes + u)) : 0u;
    }
#pragma unroll
    for (int j = 0; j < U; ++j) {
      const std::size_t u = base + j * kDqThreads + threadIdx.x;
      const std::size_t e = u * E;
      const std::size_t b = block_shift >= 0 ? (e >> block_shift) : e / block;
      s[j] = u < units ? block_scale(scales, b, dyn8) : 0.0f;
    }
#pragma unroll
    for (int j = 0; j < U; ++j) {
      const std::size_t u = base + j * kDqThreads + threadIdx.x;
      if (u >= units) continue;
      float v[E];
#pragma unroll
      for (int k = 0; k < E / 2; ++k) {
        const std::uint32_t byte = (w[j] >> (8 * k)) & 0xFFu;
        v[2 * k] = __fmul_rn(lut[byte >> 4], s[j]);      // first element: high nibble
        v[2 * k + 1] = __fmul_rn(lut[byte & 15u], s[j]);
      }
      if (scales.bnb) {
#pragma unroll
        for (int k = 0; k < E; ++k) v[k] = ftz(v[k]);
      }
      store_unit(out + u * E, v);
    }
  }
  // Tail (n % E elements): CTA 0.
  if (blockIdx.x == 0) {
    const auto* bytes = reinterpret_cast<const std::uint8_t*>(codes);
    for (std::size_t i = units * E + threadIdx.x; i < n; i += kDqThreads) {
      const std::uint32_t c = unpack_code(bytes, i, 4);
      const float v = __fmul_rn(lut[c], block_scale(scales, i / block, dyn8));
      store1(out + i, scales.bnb ? ftz(v) : v);
    }
  }
}

// Any block size, any alignment: one element per thread.
template <class OutT, bool kDq>
__global__ void __launch_bounds__(256) dequant4_generic_kernel(Table16 t, Dyn8Values dq_table,
                                                              const std::uint8_t* __restrict__ codes,
                                                              BlockScales scales, std::size_t n, std::size_t block,
                                                              OutT* __restrict__ out) {
  __shared__ float dyn8[kDq ? 256 : 1];
  if constexpr (kDq) {
    dyn8[threadIdx.x] = dq_table.v[threadIdx.x];
  }
  __syncthreads();
  for (std::size_t i = std::size_t{blockIdx.x} * 256 + threadIdx.x; i < n; i += std::size_t{gridDim.x} * 256) {
    const std::uint32_t c = unpack_code(codes, i, 4);
    const float v = __fmul_rn(t.value[c], block_scale(scales, i / block, dyn8));
    store1(out + i, scales.bnb ? ftz(v) : v);
  }
}

template <class OutT>
int launch_dequant4(const Table16& t, const std::uint8_t* codes, const BlockScales& s, std::size_t n,
                    std::size_t block, OutT* out, cudaStream_t stream) {
  static const Dyn8Values dyn8_exact = dyn8_param(false), dyn8_bnb_table = dyn8_param(true);
  const Dyn8Values& dyn8 = s.bnb ? dyn8_bnb_table : dyn8_exact;
  const bool aligned = (reinterpret_cast<std::uintptr_t>(codes) % 4 == 0) &&
                       (reinterpret_cast<std::uintptr_t>(out) % 16 == 0);
  const bool dq = s.double_quantized();
  constexpr int E = DqUnit<OutT>::kElems;
  if (aligned && block % E == 0) {
    int shift = -1;
    if ((block & (block - 1)) == 0) {
      shift = 0;
      while ((std::size_t{1} << shift) < block) ++shift;
    }
    const unsigned grid = detail::grid_for(n / E ? n / E : 1, kDqThreads * DqUnit<OutT>::kUnroll, 8);
    const auto* cw = reinterpret_cast<const typename DqUnit<OutT>::Word*>(codes);
    if (dq)
      dequant4_kernel<OutT, true><<<grid, kDqThreads, 0, stream>>>(t, dyn8, cw, s, n, block, shift, out);
    else
      dequant4_kernel<OutT, false><<<grid, kDqThreads, 0, stream>>>(t, dyn8, cw, s, n, block, shift, out);
  } else {
    const unsigned grid = detail::grid_for(n, 256, 16);
    if (dq)
      dequant4_generic_kernel<OutT, true><<<grid, 256, 0, stream>>>(t, dyn8, codes, s, n, block, out);
    else
      dequant4_generic_kernel<OutT, false><<<grid, 256, 0, stream>>>(t, dyn8, codes, s, n, block, out);
  }
  return static_cast<int>(cudaGetLastError());
}

// ---------------------------------------------------------------- quantize 4-bit

// Rank of y among the sorted thresholds: a 4-step binary search, equal to
// #{k : y > thr[k]} (codebook_rank) because thr is sorted. The generic path's.
__device__ __forceinline__ int rank16(const float* thr, float y) {
  int r = (y > thr[7]) ? 8 : 0;
  r += (y > thr[r + 3]) ? 4 : 0;
  r += (y > thr[r + 1]) ? 2 : 0;
  r += (y > thr[r]) ? 1 : 0;
  return r;
}

// The fast path's rank: a uniform grid of `cells` cells over [lo, hi] (the
// finite thresholds' span), each holding r0 = #{thresholds below the cell's
// lower edge minus one cell}. The host only builds the grid when consecutive
// thresholds are more than 3 cells apart, so the one-cell neighbourhood of
// any cell holds at most one threshold, thr[r0], and
//   rank = r0 + (y > thr[r0])
// equals the linear count exactly, whatever the float rounding of the cell
// index (off by at most one cell). NaN lands in cell 0 and ranks 0, as in the
// linear count; ±inf clamp to the end cells.
struct RankGrid {
  float lo = 0, inv_w = 0;
  int cells = 0;  // 0: no grid (binary search)
  std::uint32_t r0w[512];  // r0 of cell c in byte c % 4 of word c / 4 (passed by value: 2 KB of kernel parameters)
  // (the kernel expands each cell to {thr[r0], cor[r0], cor[r0 + 1]} in shared memory)
};

RankGrid make_rank_grid(const Table16& t) {
  RankGrid g{};
  double thr[16];
  int finite = 0;
  for (int k = 0; k < 15; ++k)
    if (t.threshold[k] < INFINITY) thr[finite++] = t.threshold[k];
  if (finite < 2) return g;
  const double lo = thr[0], hi = thr[finite - 1];
  double gap = INFINITY;
  for (int k = 1; k < finite; ++k) gap = std::min(gap, thr[k] - thr[k - 1]);
  if (!(gap > 0)) return g;
  for (int cells = 64; cells <= 2048; cells *= 2) {
    const double w = (hi - lo) / cells;
    if (gap <= 3.01 * w) continue;
    g.cells = cells;
    g.lo = static_cast<float>(lo);
    g.inv_w = static_cast<float>(cells / (hi - lo));
    const double w_used = 1.0 / static_cast<double>(g.inv_w);
    for (int c = 0; c < cells; ++c) {
      const double edge = static_cast<double>(g.lo) + (c - 1) * w_used;
      int r = 0;
      while (r < finite && thr[r] < edge) ++r;
      g.r0w[c / 4] |= static_cast<std::uint32_t>(c == 0 ? 0 : r) << (8 * (c % 4));
    }
    return g;
  }
  return g;
}

// One block = G = block/8 threads × 8 elements; G a power of two ≤ 512.
// CTA = max(256, G) threads. exact mode: scaled.hpp (y = scale_down(x, inv, s),
// NaN → zero code, ±inf → y = x); bnb mode: y = x · (1/amax), NaN → bnb_nan_code.
template <class InT, bool kBnb>
__global__ void __launch_bounds__(512) quant4_kernel(Table16 t, const InT* __restrict__ x, std::size_t n,
                                                    int group_log2, std::uint8_t* __restrict__ codes,
                                                    float* __restrict__ absmax, const RankGrid grid) {
  __shared__ float thr[16];
  __shared__ std::uint8_t cor[16];
  __shared__ float warp_max[16];
  // Per grid cell: the one threshold that can fall in its neighbourhood,
  // thr[r0], and the codes on either side of it, cor[r0] | cor[r0 + 1] << 8 —
  // one 8-byte lookup per element instead of three dependent ones.
  __shared__ uint2 cell[2048];
  const int cells = grid.cells;
  const float glo = grid.lo, ginv = grid.inv_w, gmax = static_cast<float>(cells - 1);
  if (threadIdx.x < 16) {
    thr[threadIdx.x] = threadIdx.x < 15 ? t.threshold[threadIdx.x] : INFINITY;
    cor[threadIdx.x] = t.code_of_rank[threadIdx.x];
  }
  __syncthreads();
  for (int c = threadIdx.x; c < cells; c += blockDim.x) {
    const int r0 = (grid.r0w[c >> 2] >> (8 * (c & 3))) & 0xFF;
    const std::uint32_t lo = cor[r0], hi = r0 < 15 ? cor[r0 + 1] : lo;
    cell[c] = make_uint2(__float_as_uint(thr[r0]), lo | hi << 8);
  }
  __syncthreads();
  const int G = 1 << group_log2;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const std::size_t cta_elems = std::size_t{blockDim.x} * 8;
  for (std::size_t base = std::size_t{blockIdx.x} * cta_elems; base < n; base += std::size_t{gridDim.x} * cta_elems) {
    const std::size_t i0 = base + std::size_t{threadIdx.x} * 8;
    const bool full = i0 + 8 <= n;
    float v[8];
    load8_or_tail(x, i0, n, v);
    float m = 0.0f;
#pragma unroll
    for (int k = 0; k < 8; ++k) {
      const float a = fabsf(v[k]);
      if constexpr (kBnb) m = fmaxf(m, ftz(a));     // bnb: NaN ignored, inf counts, subnormals flushed
      else m = a < INFINITY ? fmaxf(m, a) : m;      // exact: finite values only
    }
    const int width = G < 32 ? G : 32;
    for (int off = 1; off < width; off <<= 1) m = fmaxf(m, __shfl_xor_sync(0xFFFFFFFFu, m, off));
    if (G > 32) {
      if (lane == 0) warp_max[warp] = m;
      __syncthreads();
      const int wpg = G >> 5, first = (warp / wpg) * wpg;
      m = warp_max[first];
      for (int k = 1; k < wpg; ++k) m = fmaxf(m, warp_max[first + k]);
      __syncthreads();
    }
    float s, inv;
    if constexpr (kBnb) {  // bnb's raw arithmetic (the CPU reference's): s = amax, inv = ftz(1/amax) (1/0 = inf)
      s = m;
      inv = ftz(__frcp_rn(m));
    } else {
      const DeviceGroupScale g = fp32_group_scale(m, t.max_magnitude);
      s = g.scale;
      inv = g.inv;
    }
    const bool divide = !kBnb && !(inv <= FLT_MAX);  // subnormal s: y = x / s (scale_down)
    std::uint32_t word = 0;
    // Fast path: no branches per element. Exact mode needs inv > 0 there: then
    // x · inv is ±inf for x = ±inf, which is scaled.hpp's y = x (an all-zero
    // block, inv = 0, takes the other path).
    if (cells != 0 && !divide && (kBnb || inv > 0.0f)) {
#pragma unroll
      for (int k = 0; k < 8; ++k) {
        const float xv = v[k];
        float y;
        if constexpr (kBnb) y = ftz(__fmul_rn(ftz(xv), inv));
        else y = __fmul_rn(xv, inv);
        const float tc = fminf(fmaxf(__fmul_rn(__fadd_rn(y, -glo), ginv), 0.0f), gmax);  // NaN → 0
        const uint2 e = cell[static_cast<int>(tc)];
        std::uint32_t c = (y > __uint_as_float(e.x) ? e.y >> 8 : e.y) & 0xFu;
        if constexpr (kBnb) c = (y == y) ? c : t.bnb_nan_code;
        else c = (xv == xv) ? c : t.zero_code;
        word |= c << ((k & 1) ? 8 * (k >> 1) : 8 * (k >> 1) + 4);
      }
    } else {
      for (int k = 0; k < 8; ++k) {
        const float xv = v[k];
        float y;
        if constexpr (kBnb) {
          y = ftz(__fmul_rn(ftz(xv), inv));
        } else {
          y = divide ? __fdiv_rn(xv, s) : __fmul_rn(xv, inv);
          if (fabsf(xv) == INFINITY) y = xv;
        }
        std::uint32_t c = cor[rank16(thr, y)];
        if constexpr (kBnb) c = (y == y) ? c : t.bnb_nan_code;
        else c = (xv == xv) ? c : t.zero_code;
        word |= c << ((k & 1) ? 8 * (k >> 1) : 8 * (k >> 1) + 4);
      }
    }
    if (full) {
      *reinterpret_cast<std::uint32_t*>(codes + i0 / 2) = word;
    } else if (i0 < n) {
      // Past the end: an odd count's spare low nibble holds the code of 0.0 (as bitsandbytes, the CPU reference).
      const std::size_t left = n - i0;
#pragma unroll
      for (int k = 0; k < 8; ++k)
        if (static_cast<std::size_t>(k) >= left) {
          const int sh = (k & 1) ? 8 * (k >> 1) : 8 * (k >> 1) + 4;
          word = (word & ~(0xFu << sh)) | (static_cast<std::uint32_t>(t.zero_code) << sh);
        }
      const std::size_t nbytes = (left + 1) / 2;
      for (std::size_t b = 0; b < nbytes; ++b) codes[i0 / 2 + b] = static_cast<std::uint8_t>(word >> (8 * b));
    }
    if ((threadIdx.x & (G - 1)) == 0 && i0 < n) absmax[i0 >> (group_log2 + 3)] = s;
  }
}

// Any block size: one thread per block (slow; for odd block sizes only).
template <class InT, bool kBnb>
__global__ void quant4_generic_kernel(Table16 t, const InT* __restrict__ x, std::size_t n, std::size_t block,
                                      float* __restrict__ absmax) {
  const std::size_t nblocks = (n + block - 1) / block;
  for (std::size_t b = std::size_t{blockIdx.x} * blockDim.x + threadIdx.x; b < nblocks;
       b += std::size_t{gridDim.x} * blockDim.x) {
    const std::size_t lo = b * block, hi = lo + block < n ? lo + block : n;
    float m = 0.0f;
    for (std::size_t i = lo; i < hi; ++i) {
      const float a = fabsf(load1(x + i));
      if constexpr (kBnb) m = fmaxf(m, ftz(a));
      else m = a < INFINITY ? fmaxf(m, a) : m;
    }
    float s, inv;
    if constexpr (kBnb) {  // bnb's raw arithmetic (the CPU reference's): s = amax, inv = 1/amax (1/0 = inf)
      s = m;
      inv = __fdiv_rn(1.0f, m);
    } else {
      const DeviceGroupScale g = fp32_group_scale(m, t.max_magnitude);
      s = g.scale;
      inv = g.inv;
    }
    (void)inv;
    absmax[b] = s;
  }
}

// Second pass of the generic path: pack codes per byte (no two threads write one byte).
template <class InT, bool kBnb>
__global__ void quant4_generic_pack_kernel(Table16 t, const InT* __restrict__ x, std::size_t n, std::size_t block,
                                           const float* __restrict__ absmax, std::uint8_t* __restrict__ codes) {
  const std::size_t nbytes = (n + 1) / 2;
  for (std::size_t j = std::size_t{blockIdx.x} * blockDim.x + threadIdx.x; j < nbytes;
       j += std::size_t{gridDim.x} * blockDim.x) {
    std::uint32_t byte = 0;
    for (int h = 0; h < 2; ++h) {
      const std::size_t i = 2 * j + h;
      if (i >= n) {  // an odd count's spare low nibble: the code of 0.0
        byte |= t.zero_code;
        break;
      }
      const float s = absmax[i / block];
      const float xv = load1(x + i);
      std::uint32_t c;
      if constexpr (kBnb) {
        const float y = ftz(__fmul_rn(ftz(xv), ftz(__frcp_rn(s))));
        c = (y == y) ? t.code_of_rank[rank16(t.threshold, y)] : t.bnb_nan_code;
      } else if (xv != xv) {
        c = t.zero_code;
      } else {
        const float inv = device_inverse(s);
        float y = inv <= FLT_MAX ? __fmul_rn(xv, inv) : __fdiv_rn(xv, s);
        if (fabsf(xv) == INFINITY) y = xv;
        c = t.code_of_rank[rank16(t.threshold, y)];
      }
      byte |= h == 0 ? c << 4 : c;
    }
    codes[j] = static_cast<std::uint8_t>(byte);
  }
}

template <class InT>
int launch_quant4(const Table16& t, const InT* x, std::size_t n, std::size_t block, EdgeMode mode,
                  std::uint8_t* codes, float* absmax, cudaStream_t stream) {
  const bool bnb = mode == EdgeMode::bnb;
  const bool pow2 = block >= 8 && (block & (block - 1)) == 0 && block <= 4096;
  const bool aligned = reinterpret_cast<std::uintptr_t>(x) % 16 == 0 && reinterpret_cast<std::uintptr_t>(codes) % 4 == 0;
  if (pow2 && aligned) {
    int glog = 0;
    while ((std::size_t{8} << glog) < block) ++glog;
    const int threads = (1 << glog) > 256 ? (1 << glog) : 256;
    const unsigned grid = detail::grid_for(n, std::size_t(threads) * 8, 2048 / threads);
    const RankGrid rg = make_rank_grid(t);
    if (bnb)
      quant4_kernel<InT, true><<<grid, threads, 0, stream>>>(t, x, n, glog, codes, absmax, rg);
    else
      quant4_kernel<InT, false><<<grid, threads, 0, stream>>>(t, x, n, glog, codes, absmax, rg);
  } else {
    // The generic kernel's first pass computes the scales (thread per block);
    // the second packs bytes from them, with the same per-element arithmetic
    // (s = g.scale; inv = 1/s as device_inverse(s) == g.inv for fp32 scales).
    const std::size_t nblocks = (n + block - 1) / block;
    const unsigned g1 = detail::grid_for(nblocks, 128, 16);
    const unsigned g2 = detail::grid_for((n + 1) / 2, 256, 16);
    if (bnb) {
      quant4_generic_kernel<InT, true><<<g1, 128, 0, stream>>>(t, x, n, block, absmax);
      quant4_generic_pack_kernel<InT, true><<<g2, 256, 0, stream>>>(t, x, n, block, absmax, codes);
    } else {
      quant4_generic_kernel<InT, false><<<g1, 128, 0, stream>>>(t, x, n, block, absmax);
      quant4_generic_pack_kernel<InT, false><<<g2, 256, 0, stream>>>(t, x, n, block, absmax, codes);
    }
  }
  return static_cast<int>(cudaGetLastError());
}

// ---------------------------------------------------------------- MX 8-bit

__device__ __forceinline__ float e8m0_scale(std::uint32_t code) {
  // 2^(code − 127); 0xFF is NaN; code 0 is 2^−127 (a binary32 subnormal).
  if (code == 0xFFu) return __uint_as_float(0x7FC00000u);
  return code == 0 ? __uint_as_float(0x00400000u) : __uint_as_float(code << 23);
}

// 8 elements (one uint2 of codes) per thread per step, 4 steps in flight; a
// group of 32 = 4 threads; 16-bit outputs leave in one 16-byte store per thread.
template <class OutT, bool kE5M2>
__global__ void __launch_bounds__(256) dequant_mx8_kernel(const uint2* __restrict__ codes,
                                                         const std::uint8_t* __restrict__ scales, std::size_t n,
                                                         OutT* __restrict__ out, FormatSpec element) {
  constexpr int U = 4;
  const std::size_t chunks = n / 8;
  const std::size_t step = std::size_t{gridDim.x} * 256 * U;
  for (std::size_t base = std::size_t{blockIdx.x} * 256 * U; base < chunks; base += step) {
    uint2 w[U];
    float s[U];
#pragma unroll
    for (int j = 0; j < U; ++j) {
      const std::size_t c = base + j * 256 + threadIdx.x;
      w[j] = c < chunks ? __ldcs(codes + c) : make_uint2(0, 0);
      s[j] = c < chunks ? e8m0_scale(scales[c >> 2]) : 0.0f;
    }
#pragma unroll
    for (int j = 0; j < U; ++j) {
      const std::size_t c = base + j * 256 + threadIdx.x;
      if (c >= chunks) continue;
      const std::uint32_t ws[2] = {w[j].x, w[j].y};
      float v[8];
#pragma unroll
      for (int i = 0; i < 2; ++i)
#pragma unroll
        for (int h = 0; h < 2; ++h) {
          const auto pair = static_cast<__nv_fp8x2_storage_t>(ws[i] >> (16 * h));
          const __half2_raw hr = __nv_cvt_fp8x2_to_halfraw2(pair, kE5M2 ? __NV_E5M2 : __NV_E4M3);
          const float2 f = __half22float2(*reinterpret_cast<const __half2*>(&hr));
          v[4 * i + 2 * h] = __fmul_rn(f.x, s[j]);
          v[4 * i + 2 * h + 1] = __fmul_rn(f.y, s[j]);
        }
      store8(out + c * 8, v);
    }
  }
  if (blockIdx.x == 0) {
    const auto* bytes = reinterpret_cast<const std::uint8_t*>(codes);
    for (std::size_t i = chunks * 8 + threadIdx.x; i < n; i += 256)
      store1(out + i, __fmul_rn(decode<float>(element, bytes[i]), e8m0_scale(scales[i / 32])));
  }
}

// 8 elements per thread; a group of 32 = 4 threads.
template <class InT, bool kE5M2>
__global__ void __launch_bounds__(256) quant_mx8_kernel(const InT* __restrict__ x, std::size_t n,
                                                       std::uint8_t* __restrict__ codes,
                                                       std::uint8_t* __restrict__ scales, FormatSpec element,
                                                       float max_elem, int emax) {
  const std::size_t cta_elems = 256 * 8;
  for (std::size_t base = std::size_t{blockIdx.x} * cta_elems; base < n; base += std::size_t{gridDim.x} * cta_elems) {
    const std::size_t i0 = base + std::size_t{threadIdx.x} * 8;
    float v[8];
    load8_or_tail(x, i0, n, v);
    float m = 0.0f;
#pragma unroll
    for (int k = 0; k < 8; ++k) {
      const float a = fabsf(v[k]);
      m = a < INFINITY ? fmaxf(m, a) : m;
    }
    m = fmaxf(m, __shfl_xor_sync(0xFFFFFFFFu, m, 1));
    m = fmaxf(m, __shfl_xor_sync(0xFFFFFFFFu, m, 2));
    const DeviceGroupScale g = e8m0_group_scale(m, emax);
    std::uint32_t c[8];
#pragma unroll
    for (int k = 0; k < 8; k += 2) {
      // inv = 2^-e is always finite here (e >= -127), so scale_down is x · inv.
      const float y0 = __fmul_rn(v[k], g.inv), y1 = __fmul_rn(v[k + 1], g.inv);
      const __nv_fp8x2_storage_t p =
          __nv_cvt_float2_to_fp8x2(make_float2(y0, y1), __NV_SATFINITE, kE5M2 ? __NV_E5M2 : __NV_E4M3);
      c[k] = p & 0xFFu;
      c[k + 1] = (p >> 8) & 0xFFu;
      // Non-finite inputs take the shared encoder's rules (NaN sign, inf policy).
      if (!(fabsf(v[k]) < INFINITY)) c[k] = encode(element, v[k], device_element_options());
      if (!(fabsf(v[k + 1]) < INFINITY)) c[k + 1] = encode(element, v[k + 1], device_element_options());
    }
    if (i0 + 8 <= n) {
      uint2 w;
      w.x = c[0] | c[1] << 8 | c[2] << 16 | c[3] << 24;
      w.y = c[4] | c[5] << 8 | c[6] << 16 | c[7] << 24;
      *reinterpret_cast<uint2*>(codes + i0) = w;
    } else {
      for (int k = 0; k < 8; ++k)
        if (i0 + k < n) codes[i0 + k] = static_cast<std::uint8_t>(c[k]);
    }
    if ((threadIdx.x & 3) == 0 && i0 < n) scales[i0 / 32] = static_cast<std::uint8_t>(g.code);
  }
}

template <class OutT>
int launch_dequant_mx8(const FormatSpec& e, const std::uint8_t* codes, const std::uint8_t* scales, std::size_t n,
                       OutT* out, cudaStream_t stream) {
  if (reinterpret_cast<std::uintptr_t>(codes) % 16 != 0 || reinterpret_cast<std::uintptr_t>(out) % 16 != 0)
    return static_cast<int>(cudaErrorMisalignedAddress);
  const unsigned grid = detail::grid_for(n / 8 ? n / 8 : 1, 256 * 4, 8);
  const auto* c = reinterpret_cast<const uint2*>(codes);
  if (e == e5m2)
    dequant_mx8_kernel<OutT, true><<<grid, 256, 0, stream>>>(c, scales, n, out, e);
  else
    dequant_mx8_kernel<OutT, false><<<grid, 256, 0, stream>>>(c, scales, n, out, e);
  return static_cast<int>(cudaGetLastError());
}

template <class InT>
int launch_quant_mx8(const FormatSpec& e, const InT* x, std::size_t n, std::uint8_t* codes, std::uint8_t* scales,
                     cudaStream_t stream) {
  if (reinterpret_cast<std::uintptr_t>(x) % 16 != 0 || reinterpret_cast<std::uintptr_t>(codes) % 8 != 0)
    return static_cast<int>(cudaErrorMisalignedAddress);
  const float max_elem = static_cast<float>(e.max_finite());
  const int emax = floor_log2(max_elem);
  const unsigned grid = detail::grid_for(n, 256 * 8, 8);
  if (e == e5m2)
    quant_mx8_kernel<InT, true><<<grid, 256, 0, stream>>>(x, n, codes, scales, e, max_elem, emax);
  else
    quant_mx8_kernel<InT, false><<<grid, 256, 0, stream>>>(x, n, codes, scales, e, max_elem, emax);
  return static_cast<int>(cudaGetLastError());
}

}  // namespace

int dequantize_4bit(const Table16& table, const std::uint8_t* codes, const BlockScales& scales, std::size_t n,
                    std::size_t block, void* out, DType out_type, void* stream) {
  if (n == 0) return 0;
  if (block < 2) return static_cast<int>(cudaErrorInvalidValue);
  auto st = static_cast<cudaStream_t>(stream);
  switch (out_type) {
    case DType::f32: return launch_dequant4(table, codes, scales, n, block, static_cast<float*>(out), st);
    case DType::f16: return launch_dequant4(table, codes, scales, n, block, static_cast<__half*>(out), st);
    case DType::bf16: return launch_dequant4(table, codes, scales, n, block, static_cast<__nv_bfloat16*>(out), st);
  }
  return static_cast<int>(cudaErrorInvalidValue);
}

int quantize_4bit(const Table16& table, const void* x, DType in_type, std::size_t n, std::size_t block, EdgeMode mode,
                  std::uint8_t* codes, float* absmax, void* stream) {
  if (n == 0) return 0;
  if (block < 2) return static_cast<int>(cudaErrorInvalidValue);
  auto st = static_cast<cudaStream_t>(stream);
  switch (in_type) {
    case DType::f32: return launch_quant4(table, static_cast<const float*>(x), n, block, mode, codes, absmax, st);
    case DType::f16: return launch_quant4(table, static_cast<const __half*>(x), n, block, mode, codes, absmax, st);
    case DType::bf16:
      return launch_quant4(table, static_cast<const __nv_bfloat16*>(x), n, block, mode, codes, absmax, st);
  }
  return static_cast<int>(cudaErrorInvalidValue);
}

int dequantize_mx8(const FormatSpec& element, const std::uint8_t* codes, const std::uint8_t* scales, std::size_t n,
                   void* out, DType out_type, void* stream) {
  if (n == 0) return 0;
  if (!(element == e4m3fn || element == e5m2)) return static_cast<int>(cudaErrorInvalidValue);
  auto st = static_cast<cudaStream_t>(stream);
  switch (out_type) {
    case DType::f32: return launch_dequant_mx8(element, codes, scales, n, static_cast<float*>(out), st);
    case DType::f16: return launch_dequant_mx8(element, codes, scales, n, static_cast<__half*>(out), st);
    case DType::bf16: return launch_dequant_mx8(element, codes, scales, n, static_cast<__nv_bfloat16*>(out), st);
  }
  return static_cast<int>(cudaErrorInvalidValue);
}

int quantize_mx8(const FormatSpec& element, const void* x, DType in_type, std::size_t n, std::uint8_t* codes,
                 std::uint8_t* scales, void* stream) {
  if (n == 0) return 0;
  if (!(element == e4m3fn || element == e5m2)) return static_cast<int>(cudaErrorInvalidValue);
  auto st = static_cast<cudaStream_t>(stream);
  switch (in_type) {
    case DType::f32: return launch_quant_mx8(element, static_cast<const float*>(x), n, codes, scales, st);
    case DType::f16: return launch_quant_mx8(element, static_cast<const __half*>(x), n, codes, scales, st);
    case DType::bf16: return launch_quant_mx8(element, static_cast<const __nv_bfloat16*>(x), n, codes, scales, st);
  }
  return static_cast<int>(cudaErrorInvalidValue);
}

}  // namespace lowbit::cuda
