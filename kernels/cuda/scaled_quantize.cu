// kernels/cuda/scaled_quantize.cu — see scaled_quantize.cuh.
//
// Compiled with -fmad=false (kernels/CMakeLists.txt): scaled.hpp's functions
// are the CPU's, and the CPU (x86-64 without -mfma) never fuses a·b + c.
#include "kernels/cuda/scaled_quantize.cuh"

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cfloat>

#include "kernels/cpu/quantize.hpp"  // cpu::mean_chunk: the fixed summation order of the dq mean
#include "kernels/cuda/device_util.cuh"
#include "lowbit/formats/dyn8.hpp"

namespace lowbit::cuda {
namespace {

using detail::store1;

using detail::load1;  // fp16 NaN inputs keep sign and payload, as on the CPU

constexpr int kThreads = 256;
constexpr std::size_t kSegment = 8192;  // elements per range segment (one warp)
constexpr std::size_t kColSlab = 256;   // rows per column-range slab

// A trivially copyable T copied from kernel parameters into shared memory
// (indexed table lookups from shared memory, not the constant bank).
template <class T>
__device__ __forceinline__ const T& stage_in_shared(const T& src, unsigned char* smem) {
  static_assert(sizeof(T) % 4 == 0);
  const std::uint32_t* s = reinterpret_cast<const std::uint32_t*>(&src);
  std::uint32_t* d = reinterpret_cast<std::uint32_t*>(smem);
  for (unsigned w = threadIdx.x; w < sizeof(T) / 4; w += blockDim.x) d[w] = s[w];
  __syncthreads();
  return *reinterpret_cast<const T*>(smem);
}

__device__ __forceinline__ std::size_t group_index(Granularity g, std::size_t i, std::size_t cols,
                                                   std::size_t block) {  // Quantizer::group_of
  switch (g) {
    case Granularity::row: return i / cols;
    case Granularity::col: return i % cols;
    case Granularity::block: return i / block;
    default: return 0;
  }
}

// Groups of the 8 elements u·8 … u·8+7: when every group length is a
// multiple of 8 they share one group (tensor, row, block) or take 8
// consecutive ones (column); then one 64-bit division serves the unit.
struct UnitGroups {
  std::size_t first;
  int step;     // 0: one group; 1: consecutive groups
  bool uniform; // false: per element
};
__device__ __forceinline__ UnitGroups unit_groups(Granularity g, std::size_t i0, std::size_t cols, std::size_t block) {
  switch (g) {
    case Granularity::tensor: return {0, 0, true};
    case Granularity::row: return {i0 / cols, 0, cols % 8 == 0};
    case Granularity::col: return {i0 % cols, 1, cols % 8 == 0};
    case Granularity::block: return {i0 / block, 0, block % 8 == 0};
    default: return {0, 0, true};
  }
}

__device__ __forceinline__ GroupRange shfl_xor(const GroupRange& r, int o) {
  GroupRange t;
  t.amax = __shfl_xor_sync(0xffffffffu, r.amax, o);
  t.amax_with_inf = __shfl_xor_sync(0xffffffffu, r.amax_with_inf, o);
  t.lo = __shfl_xor_sync(0xffffffffu, r.lo, o);
  t.hi = __shfl_xor_sync(0xffffffffu, r.hi, o);
  return t;
}

// ------------------------------------------------------------------ 1. ranges

// Contiguous groups of length len (tensor: n, row: cols, block: B), each cut
// into spg segments of seg elements; one warp per segment → part[segment].
template <class T>
__global__ void range_contiguous_kernel(const T* x, std::size_t n, std::size_t len, std::size_t seg,
                                        std::size_t spg, std::size_t segments, GroupRange* part) {
  const int lane = threadIdx.x & 31;
  const std::size_t warps = static_cast<std::size_t>(gridDim.x) * (blockDim.x / 32);
  for (std::size_t s = blockIdx.x * (blockDim.x / 32) + (threadIdx.x >> 5); s < segments; s += warps) {
    const std::size_t g = s / spg, j = s % spg;
    const std::size_t gb = g * len, b = gb + j * seg;
    const std::size_t e = std::min(std::min(b + seg, gb + len), n);
    GroupRange r;
    for (std::size_t i = b + lane; i < e; i += 32) r.add(load1(x + i));
    for (int o = 16; o > 0; o >>= 1) r.merge(shfl_xor(r, o));
    if (lane == 0) part[s] = r;
  }
}

// Columns: thread = column c, blockIdx.y = slab of kColSlab rows → part[slab · cols + c].
template <class T>
__global__ void range_cols_kernel(const T* x, std::size_t rows, std::size_t cols, GroupRange* part) {
  const std::size_t c = static_cast<std::size_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (c >= cols) return;
  const std::size_t r0 = static_cast<std::size_t>(blockIdx.y) * kColSlab, r1 = std::min(rows, r0 + kColSlab);
  GroupRange r;
  for (std::size_t i = r0; i < r1; ++i) r.add(load1(x + i * cols + c));
  part[static_cast<std::size_t>(blockIdx.y) * cols + c] = r;
}

// out[g] = merge of part[g · gstride + j · jstride], j < parts.
__global__ void merge_ranges_kernel(const GroupRange* part, std::size_t groups, std::size_t parts,
                                    std::size_t gstride, std::size_t jstride, GroupRange* out) {
  for (std::size_t g = static_cast<std::size_t>(blockIdx.x) * blockDim.x + threadIdx.x; g < groups;
       g += static_cast<std::size_t>(gridDim.x) * blockDim.x) {
    GroupRange r;
    for (std::size_t j = 0; j < parts; ++j) r.merge(part[g * gstride + j * jstride]);
    out[g] = r;
  }
}

// ------------------------------------------------------------ 2. tensor scale

// S = tensor_encode_scale(max amax, max_elem): every block reduces its share
// and folds it into *amax (max is order-free; amax >= 0 and never NaN), then
// one thread turns the maximum into S.
__global__ void tensor_amax_kernel(const GroupRange* ranges, std::size_t groups, float* amax) {
  float m = 0.0f;
  for (std::size_t g = static_cast<std::size_t>(blockIdx.x) * blockDim.x + threadIdx.x; g < groups;
       g += static_cast<std::size_t>(gridDim.x) * blockDim.x)
    m = fmaxf(m, ranges[g].amax);
  m = detail::block_max<kThreads>(m);
  if (threadIdx.x == 0) detail::atomic_max_nonneg(amax, m);
}
__global__ void tensor_scale_kernel(const float* amax, float max_elem, float* s_out) {
  *s_out = tensor_encode_scale(*amax, max_elem);
}

// ------------------------------------------------------------ 3. group params

__global__ void group_params_kernel(ElementFormat el, ScaleFormat f, EdgeMode mode, const GroupRange* ranges,
                                    std::size_t groups, const float* tensor_s, float* scales,
                                    std::uint32_t* scale_codes, std::uint8_t* zero_points, float* inv,
                                    float* enc_scale, float* tensor_s_out) {
  const float S = tensor_s ? *tensor_s : 1.0f;
  if (tensor_s_out && blockIdx.x == 0 && threadIdx.x == 0) *tensor_s_out = S;
  for (std::size_t g = static_cast<std::size_t>(blockIdx.x) * blockDim.x + threadIdx.x; g < groups;
       g += static_cast<std::size_t>(gridDim.x) * blockDim.x) {
    const GroupParams p = group_params(el, f, mode, ranges[g], S);  // scaled.hpp, as the CPU
    if (scales) scales[g] = p.scale;
    if (scale_codes) scale_codes[g] = p.code;
    if (zero_points) zero_points[g] = static_cast<std::uint8_t>(p.zero_point);
    inv[g] = p.inv;
    enc_scale[g] = p.enc_scale;
  }
}

__global__ void set_float_kernel(float* p, float v) { *p = v; }

// --------------------------------------------------------- 4. double quantize

// cpu::mean_offset in its fixed order: chunk sums (one thread each), then the
// chunk sums in order (thread 0). One block.
__global__ void dq_mean_kernel(const float* scales, std::size_t n, double* partial, float* offset_out) {
  const std::size_t chunks = (n + cpu::mean_chunk - 1) / cpu::mean_chunk;
  for (std::size_t c = threadIdx.x; c < chunks; c += blockDim.x) {
    double part = 0;
    const std::size_t e = std::min(n, (c + 1) * cpu::mean_chunk);
    for (std::size_t i = c * cpu::mean_chunk; i < e; ++i) part = __dadd_rn(part, static_cast<double>(scales[i]));
    partial[c] = part;
  }
  __syncthreads();
  if (threadIdx.x == 0) {
    double sum = 0;
    for (std::size_t c = 0; c < chunks; ++c) sum = __dadd_rn(sum, partial[c]);
    *offset_out = n == 0 ? 0.0f : static_cast<float>(__ddiv_rn(sum, static_cast<double>(n)));
  }
}

// cpu::double_quantize + cpu::double_dequantize, one block of 256 per 256 scales.
__global__ void dq_block_kernel(const __grid_constant__ Codebook table, EdgeMode mode, const float* enc_scales, std::size_t n,
                                const float* offset_p, std::uint8_t* dq_codes, float* dq_absmax, float* scales) {
  __shared__ alignas(16) unsigned char smem[sizeof(Codebook)];
  const Codebook& cb = stage_in_shared(table, smem);
  const bool bnb = mode == EdgeMode::bnb;
  const float offset = *offset_p;
  const std::size_t i = static_cast<std::size_t>(blockIdx.x) * 256 + threadIdx.x;
  const bool in = i < n;
  const float centered = in ? __fsub_rn(enc_scales[i], offset) : 0.0f;
  const float a_i = bnb ? flush_subnormal(fabsf(centered)) : fabsf(centered);
  const float a = detail::block_max<256>(fmaxf(0.0f, a_i));  // std::fmax from 0: NaN skipped
  if (!in) return;
  std::uint32_t code;
  if (bnb) {
    code = encode_codebook_bnb(cb, centered, flush_subnormal(1.0f / a));  // 1/0 = inf, as bnb
  } else {
    const float inv = safe_inverse(a);
    code = encode(cb, scale_down(centered, inv, a));
  }
  dq_codes[i] = static_cast<std::uint8_t>(code);
  if (threadIdx.x == 0) dq_absmax[blockIdx.x] = a;
  const float product = __fmul_rn(decode(cb, code), a);
  scales[i] = bnb ? flush_subnormal(__fadd_rn(flush_subnormal(product), offset)) : __fadd_rn(product, offset);
}

// ------------------------------------------------------------------ 5. elements

struct ElementJob {
  Granularity granularity;
  EdgeMode mode;
  std::size_t n, cols, block;
  int bits;
  std::size_t code_bytes;
};

template <class T>
__global__ void encode_kernel(const __grid_constant__ ElementFormat el_param, ElementJob job, const T* x, const float* inv,
                              const float* enc_scale, const std::uint8_t* zero_points, std::size_t groups,
                              std::uint8_t* codes) {
  __shared__ alignas(16) unsigned char smem[sizeof(ElementFormat)];
  const ElementFormat& el = stage_in_shared(el_param, smem);
  const bool unscaled = job.granularity == Granularity::none;
  const std::size_t units = (job.n + 8) / 8;  // element n (an odd 4-bit count's pad) included
  for (std::size_t u = static_cast<std::size_t>(blockIdx.x) * blockDim.x + threadIdx.x; u < units;
       u += static_cast<std::size_t>(gridDim.x) * blockDim.x) {
    const std::size_t byte0 = u * static_cast<std::size_t>(job.bits);  // 8 codes = `bits` bytes
    if (byte0 >= job.code_bytes) continue;
    unsigned char buf[32] = {};
    const UnitGroups ug = unit_groups(job.granularity, u * 8, job.cols, job.block);
    for (int k = 0; k < 8; ++k) {
      const std::size_t i = u * 8 + k;
      std::uint32_t code;
      bool clipped = false;
      if (i < job.n) {
        const float xi = load1(x + i);
        if (unscaled) {
          code = encode_scaled_element(el, job.mode, xi, 1.0f, 1.0f, 0, clipped);
        } else {
          const std::size_t g = ug.uniform ? ug.first + static_cast<std::size_t>(ug.step * k)
                                           : group_index(job.granularity, i, job.cols, job.block);
          code = encode_scaled_element(el, job.mode, xi, inv[g], enc_scale[g], zero_points ? zero_points[g] : 0,
                                       clipped);
        }
      } else if (i == job.n && job.bits == 4 && (job.n & 1)) {
        // Quantizer::quantize's pad nibble: the code of 0.0 (zero point of the last group).
        code = el.kind == ElementKind::int_zero_point
                   ? (zero_points && groups ? zero_points[groups - 1] : 0u)
                   : encode_element(el, 0.0f, 0.0f, 0.0f, clipped);
      } else {
        break;
      }
      pack_code(buf, static_cast<std::size_t>(k), job.bits, code);
    }
    const std::size_t nb = std::min<std::size_t>(job.bits, job.code_bytes - byte0);
    for (std::size_t b = 0; b < nb; ++b) codes[byte0 + b] = buf[b];
  }
}

template <class OutT>
__global__ void decode_kernel(const __grid_constant__ ElementFormat el_param, ElementJob job, const std::uint8_t* codes, const float* scales,
                              const std::uint8_t* zero_points, OutT* out) {
  __shared__ alignas(16) unsigned char smem[sizeof(ElementFormat)];
  const ElementFormat& el = stage_in_shared(el_param, smem);
  const bool unscaled = job.granularity == Granularity::none;
  const std::size_t units = (job.n + 7) / 8;
  for (std::size_t u = static_cast<std::size_t>(blockIdx.x) * blockDim.x + threadIdx.x; u < units;
       u += static_cast<std::size_t>(gridDim.x) * blockDim.x) {
    const std::size_t byte0 = u * static_cast<std::size_t>(job.bits);
    const std::size_t nb = std::min<std::size_t>(job.bits, job.code_bytes - byte0);
    unsigned char buf[32] = {};
    for (std::size_t b = 0; b < nb; ++b) buf[b] = codes[byte0 + b];
    const UnitGroups ug = unit_groups(job.granularity, u * 8, job.cols, job.block);
    float v[8];
    for (int k = 0; k < 8; ++k) {
      const std::size_t i = u * 8 + k;
      if (i >= job.n) break;
      const std::uint32_t code = unpack_code(buf, static_cast<std::size_t>(k), job.bits);
      if (unscaled) {
        v[k] = decode_scaled_element(el, job.mode, code, 1.0f, 0);
      } else {
        const std::size_t g = ug.uniform ? ug.first + static_cast<std::size_t>(ug.step * k)
                                         : group_index(job.granularity, i, job.cols, job.block);
        v[k] = decode_scaled_element(el, job.mode, code, scales[g], zero_points ? zero_points[g] : 0);
      }
    }
    // 8 outputs in one 16-byte (32-byte for fp32) store where aligned; the rounding is the same.
    if (u * 8 + 8 <= job.n && reinterpret_cast<std::uintptr_t>(out) % 32 == 0) {
      detail::store8(out + u * 8, v);
    } else {
      for (int k = 0; k < 8 && u * 8 + k < job.n; ++k) store1(out + u * 8 + k, v[k]);
    }
  }
}

inline cudaStream_t as_stream(void* s) { return static_cast<cudaStream_t>(s); }
inline unsigned blocks_for(std::size_t items, std::size_t per_block = kThreads) {
  return detail::grid_for(items, per_block, 16);
}

template <class T>
int quantize_typed(const ScaledDesc& d, const T* x, std::size_t rows, std::size_t cols, const DeviceQuantized& out,
                   cudaStream_t st) {
  const std::size_t n = rows * cols;
  const ScaledLayout L = scaled_layout(d, rows, cols);
  const std::size_t groups = L.groups;
  const bool scaled = d.granularity != Granularity::none;
  const bool zp = d.element.kind == ElementKind::int_zero_point;
  const bool two_level = d.scale == ScaleFormat::e4m3fn && !zp && scaled;

  // Range segmentation.
  std::size_t len = 0, seg = 0, spg = 1, parts = 0;
  if (scaled && d.granularity != Granularity::col) {
    len = d.granularity == Granularity::tensor ? n : (d.granularity == Granularity::row ? cols : d.block);
    seg = len <= kSegment ? std::max<std::size_t>(len, 1) : kSegment;
    spg = std::max<std::size_t>(1, (len + seg - 1) / seg);
    parts = groups * spg;
  } else if (scaled) {
    spg = std::max<std::size_t>(1, (rows + kColSlab - 1) / kColSlab);
    parts = spg * cols;
  }
  const std::size_t mean_chunks = (groups + cpu::mean_chunk - 1) / cpu::mean_chunk;

  // Scratch: partial ranges, merged ranges, inv, enc_scale, S, dq offset, dq partial sums.
  auto up = [](std::size_t b) { return (b + 255) / 256 * 256; };
  const std::size_t b_part = up(parts * sizeof(GroupRange)), b_rng = up(groups * sizeof(GroupRange)),
                    b_f = up(groups * sizeof(float)), b_dbl = up(std::max<std::size_t>(mean_chunks, 1) * 8);
  const std::size_t total = b_part + b_rng + 2 * b_f + 512 + b_dbl;
  unsigned char* scratch = nullptr;
  if (cudaError_t e = cudaMallocAsync(reinterpret_cast<void**>(&scratch), total, st)) return e;
  GroupRange* part = reinterpret_cast<GroupRange*>(scratch);
  GroupRange* ranges = reinterpret_cast<GroupRange*>(scratch + b_part);
  float* inv = reinterpret_cast<float*>(scratch + b_part + b_rng);
  float* enc = reinterpret_cast<float*>(scratch + b_part + b_rng + b_f);
  float* tensor_s = reinterpret_cast<float*>(scratch + b_part + b_rng + 2 * b_f);
  float* offset = tensor_s + 64;
  double* mean_partial = reinterpret_cast<double*>(scratch + b_part + b_rng + 2 * b_f + 512);

  if (scaled && groups > 0) {
    // 1. ranges
    if (d.granularity == Granularity::col) {
      const dim3 grid(static_cast<unsigned>((cols + kThreads - 1) / kThreads), static_cast<unsigned>(spg));
      if (rows > 0) range_cols_kernel<T><<<grid, kThreads, 0, st>>>(x, rows, cols, part);
      merge_ranges_kernel<<<blocks_for(cols), kThreads, 0, st>>>(part, cols, rows > 0 ? spg : 0, 1, cols, ranges);
    } else {
      GroupRange* dst = spg == 1 ? ranges : part;
      range_contiguous_kernel<T><<<blocks_for(parts, kThreads / 32), kThreads, 0, st>>>(x, n, len, seg, spg, parts, dst);
      if (spg > 1) merge_ranges_kernel<<<blocks_for(groups), kThreads, 0, st>>>(part, groups, spg, spg, 1, ranges);
    }
    // 2. NVFP4 tensor scale
    if (two_level) {
      float* amax = tensor_s + 32;
      cudaMemsetAsync(amax, 0, sizeof(float), st);
      tensor_amax_kernel<<<blocks_for(groups), kThreads, 0, st>>>(ranges, groups, amax);
      tensor_scale_kernel<<<1, 1, 0, st>>>(amax, d.element.max_value(), tensor_s);
    }
    // 3. per-group parameters
    group_params_kernel<<<blocks_for(groups), kThreads, 0, st>>>(
        d.element, d.scale, d.edge, ranges, groups, two_level ? tensor_s : nullptr, out.scales, out.scale_codes,
        zp ? out.zero_points : nullptr, inv, enc, out.tensor_encode_scale);
    // 4. double quantization
    if (L.dq) {
      dq_mean_kernel<<<1, 1024, 0, st>>>(enc, groups, mean_partial, offset);
      if (out.dq_offset) cudaMemcpyAsync(out.dq_offset, offset, sizeof(float), cudaMemcpyDeviceToDevice, st);
      const Codebook& table = d.edge == EdgeMode::bnb ? dyn8_bnb : dyn8;
      dq_block_kernel<<<static_cast<unsigned>(L.dq_blocks), 256, 0, st>>>(table, d.edge, enc, groups, offset,
                                                                         out.dq_codes, out.dq_absmax, out.scales);
    }
  } else if (out.tensor_encode_scale) {
    set_float_kernel<<<1, 1, 0, st>>>(out.tensor_encode_scale, 1.0f);
  }
  if (L.dq && groups == 0 && out.dq_offset) set_float_kernel<<<1, 1, 0, st>>>(out.dq_offset, 0.0f);

  // 5. elements
  if (L.code_bytes > 0) {
    const ElementJob job{d.granularity, d.edge, n, cols, static_cast<std::size_t>(d.block), d.bits, L.code_bytes};
    encode_kernel<T><<<blocks_for((n + 8) / 8), kThreads, 0, st>>>(d.element, job, x, inv, enc,
                                                                  zp ? out.zero_points : nullptr, groups, out.codes);
  }
  if (cudaError_t e = cudaGetLastError()) {
    cudaFreeAsync(scratch, st);
    return e;
  }
  return cudaFreeAsync(scratch, st);
}

template <class OutT>
int dequantize_typed(const ScaledDesc& d, const DeviceQuantizedView& q, std::size_t rows, std::size_t cols,
                     OutT* out, cudaStream_t st) {
  const std::size_t n = rows * cols;
  if (n == 0) return 0;
  const ScaledLayout L = scaled_layout(d, rows, cols);
  const ElementJob job{d.granularity, d.edge, n, cols, static_cast<std::size_t>(d.block), d.bits, L.code_bytes};
  decode_kernel<OutT><<<blocks_for((n + 7) / 8), kThreads, 0, st>>>(
      d.element, job, q.codes, q.scales, d.element.kind == ElementKind::int_zero_point ? q.zero_points : nullptr,
      out);
  return cudaGetLastError();
}

}  // namespace

int quantize_scaled(const ScaledDesc& desc, const void* x, DType in_type, std::size_t rows, std::size_t cols,
                    const DeviceQuantized& out, void* stream) {
  if (desc.bits < 1 || desc.bits > 32) return cudaErrorInvalidValue;
  if (desc.granularity == Granularity::block && desc.block < 1) return cudaErrorInvalidValue;
  if (desc.granularity == Granularity::col && (rows + kColSlab - 1) / kColSlab > 65535) return cudaErrorInvalidValue;
  const cudaStream_t st = as_stream(stream);
  switch (in_type) {
    case DType::f32: return quantize_typed(desc, static_cast<const float*>(x), rows, cols, out, st);
    case DType::f16: return quantize_typed(desc, static_cast<const __half*>(x), rows, cols, out, st);
    case DType::bf16: return quantize_typed(desc, static_cast<const __nv_bfloat16*>(x), rows, cols, out, st);
  }
  return cudaErrorInvalidValue;
}

int dequantize_scaled(const ScaledDesc& desc, const DeviceQuantizedView& q, std::size_t rows, std::size_t cols,
                      void* out, DType out_type, void* stream) {
  if (desc.bits < 1 || desc.bits > 32) return cudaErrorInvalidValue;
  const cudaStream_t st = as_stream(stream);
  switch (out_type) {
    case DType::f32: return dequantize_typed(desc, q, rows, cols, static_cast<float*>(out), st);
    case DType::f16: return dequantize_typed(desc, q, rows, cols, static_cast<__half*>(out), st);
    case DType::bf16: return dequantize_typed(desc, q, rows, cols, static_cast<__nv_bfloat16*>(out), st);
  }
  return cudaErrorInvalidValue;
}

}  // namespace lowbit::cuda
