// kernels/cuda/scaled_quantize.cuh — GPU quantize / dequantize for EVERY
// registry quantizer (issue 8, completeness): the generic path.
//
// CPU reference: lowbit::Quantizer::quantize / dequantize (registry.hpp,
// kernels/cpu/quantize.cpp). The GPU produces the same arrays, byte for byte:
// codes packed per packing.hpp (4-bit: bitsandbytes' nibble order, an odd
// count's spare nibble = the code of 0), scales, scale_codes, zero_points,
// the e4m3fn tensor encode scale, and for +dq dq_codes / dq_absmax /
// dq_offset; dequantized values equal the CPU's fp32 values, rounded once
// (nearest even) when the output is fp16 / bf16.
//
// Covered: every element family — minifloats (any FormatSpec up to 32 bits),
// codebooks (nf4, nfK, fp4-bnb, dyn8, table:PATH; ≤ 256 entries), intK and
// intK-zp — × every granularity (none, tensor, row, col, block B ≥ 2) × every
// scale format (fp32, fp16, bf16, e8m0 = MX, e4m3fn = NVFP4 two-level, +dq)
// × exact and ~bnb edge modes; fp32 / fp16 / bf16 input and output.
//
// Algorithm (all per-group and per-element arithmetic is scaled.hpp's
// LOWBIT_HD code, the very functions the CPU reference calls; the .cu is
// compiled with -fmad=false so no a·b + c is contracted differently):
//   1. ranges: GroupRange (amax, amax with inf, lo, hi) per group. Contiguous
//      groups (tensor, row, block) are cut into segments of ≤ 8192 elements,
//      one warp per segment, merged per group; columns: one thread per column
//      and slab of rows, merged per column. max/min only: order-free.
//   2. e4m3fn scales: the tensor amax (max over groups) → S (one block).
//   3. group_params() per group (one thread each): scale, inv, scale code,
//      zero point.
//   4. +dq: mean of the fp32 scales in binary64 in the CPU's fixed order
//      (chunks of cpu::mean_chunk summed sequentially, one thread per chunk;
//      then the chunk sums in order by one thread), then one 256-thread block
//      per 256 scales: absmax, dyn8 codes, decoded scales (fl(fl(v·a) + m)).
//   5. elements: one thread per 8 consecutive elements (a whole number of
//      bytes for any width): encode_scaled_element, pack_code, byte stores.
//   Dequantize: one thread per 8 elements: unpack_code, decode_scaled_element.
// No host synchronisation: scratch comes from cudaMallocAsync / cudaFreeAsync
// on the stream; the tensor scale and the dq mean stay on the device.
//
// Not covered: QuantStats (clip / NaN counts) are not computed on the GPU;
// stochastic rounding (the registry has none); speed — this is the
// correctness path (the fast 4-bit and MX8 kernels are blockwise.cuh's).
//
// All functions return a cudaError_t as int (0 = success) and launch on
// `stream` (nullptr: the legacy default stream). Pointers are device memory.
#pragma once

#include <cstddef>
#include <cstdint>

#include "kernels/cuda/blockwise.cuh"  // DType
#include "lowbit/formats/packing.hpp"
#include "lowbit/formats/registry.hpp"
#include "lowbit/formats/scaled.hpp"

namespace lowbit::cuda {

// A quantizer as the kernels take it: plain data, built on the host.
struct ScaledDesc {
  ElementFormat element{};  // kind, FormatSpec, IntFormat, Codebook (≤ 256 values, thresholds, codes of ranks)
  Granularity granularity = Granularity::none;
  ScaleFormat scale = ScaleFormat::fp32;
  EdgeMode edge = EdgeMode::exact;
  std::uint64_t block = 0;  // block granularity only
  int bits = 0;             // element width (packing.hpp)
};

inline ScaledDesc make_scaled_desc(const Quantizer& q) {
  ScaledDesc d;
  d.element = q.element();
  d.granularity = q.granularity();
  d.scale = q.scale_format();
  d.edge = q.edge_mode();
  d.block = q.block_size();
  d.bits = q.element_bits();
  return d;
}

// Array sizes of a rows × cols tensor (those of the CPU's QuantizedTensor).
struct ScaledLayout {
  std::size_t code_bytes = 0;   // packed_bytes(n, bits)
  std::size_t groups = 0;       // scales, scale_codes (and zero_points, dq_codes) entries
  std::size_t dq_blocks = 0;    // dq_absmax entries (+dq)
  bool zero_points = false;     // intK-zp
  bool dq = false;              // +dq
};
inline ScaledLayout scaled_layout(const ScaledDesc& d, std::size_t rows, std::size_t cols) {
  ScaledLayout l;
  const std::size_t n = rows * cols;
  l.code_bytes = packed_bytes(n, d.bits);
  switch (d.granularity) {
    case Granularity::none: l.groups = 0; break;
    case Granularity::tensor: l.groups = 1; break;
    case Granularity::row: l.groups = rows; break;
    case Granularity::col: l.groups = cols; break;
    case Granularity::block: l.groups = (n + d.block - 1) / d.block; break;
  }
  l.zero_points = d.element.kind == ElementKind::int_zero_point && l.groups > 0;
  l.dq = d.scale == ScaleFormat::dq && d.granularity != Granularity::none;
  l.dq_blocks = l.dq ? (l.groups + 255) / 256 : 0;
  return l;
}

// Device arrays with exactly QuantizedTensor's layouts. Arrays a quantizer
// does not have may be nullptr (zero_points unless intK-zp, dq_* unless +dq,
// scales / scale_codes for unscaled minifloats); the two scalars are single
// device floats, written when non-null (tensor_encode_scale: 1 unless e4m3fn
// scales; dq_offset: +dq only).
struct DeviceQuantized {
  std::uint8_t* codes = nullptr;          // code_bytes
  float* scales = nullptr;                // groups: the decode scale (dq-decoded under +dq)
  std::uint32_t* scale_codes = nullptr;   // groups
  std::uint8_t* zero_points = nullptr;    // groups
  float* tensor_encode_scale = nullptr;   // 1
  std::uint8_t* dq_codes = nullptr;       // groups
  float* dq_absmax = nullptr;             // dq_blocks
  float* dq_offset = nullptr;             // 1
};
struct DeviceQuantizedView {  // what dequantize reads
  const std::uint8_t* codes = nullptr;
  const float* scales = nullptr;
  const std::uint8_t* zero_points = nullptr;
};

// x: rows × cols row-major of in_type. Writes every array of `out` that the
// quantizer has (see DeviceQuantized).
int quantize_scaled(const ScaledDesc& desc, const void* x, DType in_type, std::size_t rows, std::size_t cols,
                    const DeviceQuantized& out, void* stream = nullptr);
// out[i] = decode(code_i) · scales[group(i)] (zero points, bnb FTZ as the CPU),
// rounded once to out_type.
int dequantize_scaled(const ScaledDesc& desc, const DeviceQuantizedView& q, std::size_t rows, std::size_t cols,
                      void* out, DType out_type, void* stream = nullptr);

}  // namespace lowbit::cuda
