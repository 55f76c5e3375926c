// kernels/cuda/fp8_quantize.cu — see fp8_quantize.cuh.
#include "kernels/cuda/fp8_quantize.cuh"

#include <cooperative_groups.h>
#include <cuda_fp8.h>

#include <cstdint>

#include "kernels/cuda/device_util.cuh"

namespace lowbit::cuda {
namespace {

constexpr int kThreads = 256;
constexpr float kE4m3Max = 448.0f;

// Scale factor from an amax: 448 / amax, 1 for an all-zero (or NaN-only) tensor.
using detail::atomic_max_nonneg;

__device__ __forceinline__ float scale_from_amax(float amax) {
  return amax > 0.0f && amax <= 3.4e38f ? kE4m3Max / amax : 1.0f;
}

__device__ __forceinline__ std::uint16_t e4m3x2(float a, float b) {
  return __nv_cvt_float2_to_fp8x2(make_float2(a, b), __NV_SATFINITE, __NV_E4M3);
}
// 8 values × s → 8 e4m3 codes, in order.
__device__ __forceinline__ uint2 e4m3x8(const float (&v)[8], float s) {
  return make_uint2(e4m3x2(v[0] * s, v[1] * s) | (static_cast<std::uint32_t>(e4m3x2(v[2] * s, v[3] * s)) << 16),
                    e4m3x2(v[4] * s, v[5] * s) | (static_cast<std::uint32_t>(e4m3x2(v[6] * s, v[7] * s)) << 16));
}


template <class T>
__global__ void amax_kernel(const T* __restrict__ x, std::size_t n, float* __restrict__ amax) {
  float m = 0.0f;
  const std::size_t n8 = n / 8;
  const std::size_t stride = static_cast<std::size_t>(gridDim.x) * kThreads;
  for (std::size_t i = blockIdx.x * std::size_t{kThreads} + threadIdx.x; i < n8; i += stride) {
    float v[8];
    detail::load8(x + 8 * i, v);
#pragma unroll
    for (int e = 0; e < 8; ++e) m = fmaxf(m, fabsf(v[e]));
  }
  for (std::size_t i = 8 * n8 + blockIdx.x * std::size_t{kThreads} + threadIdx.x; i < n; i += stride)
    m = fmaxf(m, fabsf(detail::load1(x + i)));
  m = detail::block_max<kThreads>(m);
  if (threadIdx.x == 0) atomic_max_nonneg(amax, m);
}

// Quantize with s = 448 / *amax_for_scale; optionally record this tensor's amax.
template <class T, bool kRecordAmax>
__global__ void quantize_kernel(const T* __restrict__ x, std::size_t n, std::uint8_t* __restrict__ out,
                                const float* __restrict__ amax_for_scale, float* __restrict__ amax_next,
                                float* __restrict__ dequant_scale) {
  const float s = scale_from_amax(*amax_for_scale);
  if (blockIdx.x == 0 && threadIdx.x == 0) *dequant_scale = 1.0f / s;
  float m = 0.0f;
  const std::size_t n8 = n / 8;
  const std::size_t stride = static_cast<std::size_t>(gridDim.x) * kThreads;
  for (std::size_t i = blockIdx.x * std::size_t{kThreads} + threadIdx.x; i < n8; i += stride) {
    float v[8];
    detail::load8(x + 8 * i, v);
    if (kRecordAmax) {
#pragma unroll
      for (int e = 0; e < 8; ++e) m = fmaxf(m, fabsf(v[e]));
    }
    __stcs(reinterpret_cast<uint2*>(out + 8 * i), e4m3x8(v, s));
  }
  for (std::size_t i = 8 * n8 + blockIdx.x * std::size_t{kThreads} + threadIdx.x; i < n; i += stride) {
    const float v = detail::load1(x + i);
    if (kRecordAmax) m = fmaxf(m, fabsf(v));
    out[i] = static_cast<std::uint8_t>(e4m3x2(v * s, 0.0f) & 0xFFu);
  }
  if (kRecordAmax) {
    m = detail::block_max<kThreads>(m);
    if (threadIdx.x == 0) atomic_max_nonneg(amax_next, m);
  }
}

// Current scaling in one pass over DRAM, for tensors that fit in the GPU's shared memory (plus a remainder
// that stays in L2): one CTA per SM, all resident (a cooperative launch). Each CTA reads its contiguous part
// of x once, keeps what fits in its shared memory and takes the part's amax; after the grid-wide barrier
// every CTA has the tensor's amax and quantizes the kept values from shared memory, re-reading only the
// remainder. The codes, amax and 1/s equal the two-pass path's (the same operations; a max is exact in
// any order). x is read as 16-byte chunks of 8 values (x 16-byte aligned); the last n % 8 values by CTA 0.
// The CTAs' maxima meet either in cta_maxima (one slot per CTA, written before the barrier and reduced by
// every CTA after it: no memset before the launch) or, without it, by atomics on *amax (zeroed before).
constexpr int kResidentThreads = 1024;
constexpr int kInFlight = 8;  // 16-byte loads in flight per thread (128 KB per SM)
template <class T>
__global__ void __launch_bounds__(kResidentThreads, 1)
    quantize_resident_kernel(const T* __restrict__ x, std::size_t n, std::uint8_t* __restrict__ out,
                             float* __restrict__ amax, float* __restrict__ dequant_scale, std::size_t kept_chunks,
                             float* __restrict__ cta_maxima) {
  extern __shared__ uint4 kept[];
  detail::wait_for_previous_grid();  // x may come from the kernel before
  const std::size_t n8 = n / 8, per = (n8 + gridDim.x - 1) / gridDim.x;
  const std::size_t c0 = blockIdx.x * per < n8 ? blockIdx.x * per : n8, c1 = c0 + per < n8 ? c0 + per : n8;
  const std::size_t part = c1 - c0, held = part < kept_chunks ? part : kept_chunks;
  const uint4* xc = reinterpret_cast<const uint4*>(x) + c0;
  float m = 0.0f;
  auto absmax8 = [&](const uint4& w) {
    float v[8];
    detail::unpack8(w, x, v);
#pragma unroll
    for (int e = 0; e < 8; ++e) m = fmaxf(m, fabsf(v[e]));
  };
  // The whole part in batches of kInFlight loads per thread (a partial last batch too: one load at a time
  // there cost a DRAM round trip per chunk). The kept chunks evict-first, so that the remainder, read again
  // below, stays in L2.
  for (std::size_t base = 0; base < part; base += kInFlight * kResidentThreads) {
    uint4 w[kInFlight];
#pragma unroll
    for (int u = 0; u < kInFlight; ++u) {
      const std::size_t c = base + threadIdx.x + u * kResidentThreads;
      if (c < part) w[u] = c < held ? __ldcs(xc + c) : xc[c];
    }
#pragma unroll
    for (int u = 0; u < kInFlight; ++u) {
      const std::size_t c = base + threadIdx.x + u * kResidentThreads;
      if (c < part) {
        if (c < held) kept[c] = w[u];
        absmax8(w[u]);
      }
    }
  }
  if (blockIdx.x == 0)
    for (std::size_t j = 8 * n8 + threadIdx.x; j < n; j += kResidentThreads) m = fmaxf(m, fabsf(detail::load1(x + j)));
  m = detail::block_max<kResidentThreads>(m);
  if (threadIdx.x == 0) {
    if (cta_maxima) cta_maxima[blockIdx.x] = m;
    else atomic_max_nonneg(amax, m);
  }
  cooperative_groups::this_grid().sync();
  __shared__ float tensor_amax;
  if (threadIdx.x < 32) {  // one warp reads the slots (or the atomics' result)
    float r = 0.0f;
    if (cta_maxima)
      for (unsigned b = threadIdx.x; b < gridDim.x; b += 32) r = fmaxf(r, __ldcg(cta_maxima + b));
    else if (threadIdx.x == 0)
      r = __ldcg(amax);
    for (int o = 16; o > 0; o >>= 1) r = fmaxf(r, __shfl_xor_sync(0xffffffffu, r, o));
    if (threadIdx.x == 0) tensor_amax = r;
  }
  __syncthreads();
  const float a = tensor_amax;
  if (cta_maxima && blockIdx.x == 0 && threadIdx.x == 0) *amax = a;
  detail::allow_next_grid_to_start();  // after the slots are read: the next call may write them

  const float s = scale_from_amax(a);
  if (blockIdx.x == 0 && threadIdx.x == 0) *dequant_scale = 1.0f / s;
  uint2* codes = reinterpret_cast<uint2*>(out) + c0;
  auto encode8 = [&](const uint4& w, std::size_t c) {
    float v[8];
    detail::unpack8(w, x, v);
    __stcs(codes + c, e4m3x8(v, s));
  };
  // The remainder comes back from L2: its first loads are issued before the kept chunks are encoded, so
  // that their latency is not the kernel's last step.
  constexpr int kEarly = 2;
  uint4 early[kEarly];
#pragma unroll
  for (int u = 0; u < kEarly; ++u) {
    const std::size_t c = held + threadIdx.x + u * kResidentThreads;
    if (c < part) early[u] = xc[c];
  }
  for (std::size_t c = threadIdx.x; c < held; c += kResidentThreads) encode8(kept[c], c);
#pragma unroll
  for (int u = 0; u < kEarly; ++u) {
    const std::size_t c = held + threadIdx.x + u * kResidentThreads;
    if (c < part) encode8(early[u], c);
  }
  for (std::size_t c = held + threadIdx.x + kEarly * kResidentThreads; c < part; c += kResidentThreads) encode8(xc[c], c);
  if (blockIdx.x == 0)
    for (std::size_t j = 8 * n8 + threadIdx.x; j < n; j += kResidentThreads)
      out[j] = static_cast<std::uint8_t>(e4m3x2(detail::load1(x + j) * s, 0.0f) & 0xFFu);
}

// 16 chunks of 8 elements per thread, every CTA launched: delayed scaling at 99 % of copy against 94.5 %
// for 8 persistent CTAs per SM (H200); 16 keeps the per-CTA amax atomics few.
unsigned grid(std::size_t n) { return detail::grid_one_pass((n + 7) / 8, kThreads * 16); }

template <class F>
void dispatch(Act act, F&& f) {
  if (act == Act::bf16) f(__nv_bfloat16{});
  else f(__half{});
}

// LOWBIT_FP8_ONE_PASS=0 in the environment takes the two-pass path at every size (to measure what the
// one-pass kernel gives).
bool resident_allowed() {
  static const bool on = detail::switched_on("LOWBIT_FP8_ONE_PASS");
  return on;
}

// The resident kernel's grid and shared memory on this device (ctas = 0: it cannot run here).
struct ResidentConfig {
  int ctas = 0;
  std::size_t smem = 0;
};
template <class T>
const ResidentConfig& resident_config() {
  static const ResidentConfig cfg = [] {
    ResidentConfig c;
    int dev = 0, optin = 0, sms = 0, per_sm = 0;
    cudaFuncAttributes fa{};
    if (cudaGetDevice(&dev) != cudaSuccess ||
        cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev) != cudaSuccess ||
        cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev) != cudaSuccess ||
        cudaFuncGetAttributes(&fa, quantize_resident_kernel<T>) != cudaSuccess ||
        static_cast<std::size_t>(optin) < fa.sharedSizeBytes + 1024) {
      cudaGetLastError();
      return c;
    }
    const std::size_t smem = (static_cast<std::size_t>(optin) - fa.sharedSizeBytes) / 16 * 16;  // beside the static part
    if (cudaFuncSetAttribute(quantize_resident_kernel<T>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                             static_cast<int>(smem)) != cudaSuccess ||
        cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, quantize_resident_kernel<T>, kResidentThreads, smem) !=
            cudaSuccess || per_sm < 1) {
      cudaGetLastError();
      return c;
    }
    c.ctas = sms;
    c.smem = smem;
    return c;
  }();
  return cfg;
}
// Where the tensor fits in shared memory plus 16 MiB (left in L2; the H100 / H200 have 50 MB).
template <class T>
bool resident_fits(std::size_t n) {
  const ResidentConfig& cfg = resident_config<T>();
  return resident_allowed() && cfg.ctas > 0 &&
         n * sizeof(T) <= static_cast<std::size_t>(cfg.ctas) * cfg.smem + (std::size_t{16} << 20);
}
// The resident kernel's launch: false where it does not apply (or cannot get all SMs), then two passes.
template <class T>
bool launch_resident(const T* x, std::size_t n, std::uint8_t* out, float* amax, float* dequant_scale,
                     float* cta_maxima, cudaStream_t stream) {
  if (!resident_fits<T>(n) || reinterpret_cast<std::uintptr_t>(x) % 16 != 0) return false;
  const ResidentConfig& cfg = resident_config<T>();
  if (cta_maxima && cfg.ctas > kCurrentScalingCtaSlots) cta_maxima = nullptr;  // more SMs than slots: atomics
  if (!cta_maxima) check_cuda(cudaMemsetAsync(amax, 0, sizeof(float), stream), "memset amax");
  // Cooperative (every CTA resident: the grid-wide barrier), and started while the kernel before it ends
  // (it waits for that kernel before reading x).
  const cudaError_t rc = detail::launch_with(true, 1u, true, cfg.smem, quantize_resident_kernel<T>,
                                             dim3(static_cast<unsigned>(cfg.ctas)), dim3(kResidentThreads), stream, x,
                                             n, out, amax, dequant_scale, cfg.smem / 16, cta_maxima);
  if (rc == cudaErrorCooperativeLaunchTooLarge) {  // the SMs are not all free (another context)
    cudaGetLastError();
    return false;
  }
  check_cuda(rc, "quantize_e4m3_current (one pass)");
  return true;
}

}  // namespace

void quantize_e4m3_current(Act act, const void* x, std::size_t n, std::uint8_t* out, float* amax,
                           float* dequant_scale, cudaStream_t stream, float* cta_maxima) {
  dispatch(act, [&](auto t) {
    using T = decltype(t);
    if (launch_resident(static_cast<const T*>(x), n, out, amax, dequant_scale, cta_maxima, stream)) return;
    check_cuda(cudaMemsetAsync(amax, 0, sizeof(float), stream), "memset amax");
    amax_kernel<T><<<grid(n), kThreads, 0, stream>>>(static_cast<const T*>(x), n, amax);
    quantize_kernel<T, false><<<grid(n), kThreads, 0, stream>>>(static_cast<const T*>(x), n, out, amax, nullptr,
                                                                  dequant_scale);
  });
  check_cuda(cudaGetLastError(), "quantize_e4m3_current");
}

void quantize_e4m3_delayed(Act act, const void* x, std::size_t n, std::uint8_t* out, const float* amax_prev,
                           float* amax_next, float* dequant_scale, cudaStream_t stream) {
  check_cuda(cudaMemsetAsync(amax_next, 0, sizeof(float), stream), "memset amax");
  dispatch(act, [&](auto t) {
    using T = decltype(t);
    quantize_kernel<T, true><<<grid(n), kThreads, 0, stream>>>(static_cast<const T*>(x), n, out, amax_prev, amax_next,
                                                                 dequant_scale);
  });
  check_cuda(cudaGetLastError(), "quantize_e4m3_delayed");
}

bool quantize_e4m3_current_one_pass(Act act, std::size_t n) {
  bool fits = false;
  dispatch(act, [&](auto t) { fits = resident_fits<decltype(t)>(n); });
  return fits;
}

}  // namespace lowbit::cuda
