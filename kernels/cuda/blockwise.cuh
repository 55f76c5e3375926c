// kernels/cuda/blockwise.cuh — blockwise quantize / dequantize on the GPU.
//
// CPU reference: lowbit::Quantizer::quantize / dequantize (registry.hpp,
// kernels/cpu/quantize.cpp) and the per-element rules of scaled.hpp. The
// kernels do the same float operations in the same order (products with
// __fmul_rn, never contracted into an FMA), so codes, scales and dequantized
// values equal the CPU's bit for bit; a 16-bit output is the CPU's fp32 value
// rounded once to nearest even.
//
// Layouts are bitsandbytes': 4-bit codes packed two per byte, the FIRST
// element in the HIGH nibble; one fp32 absmax per block of `block` elements of
// the flattened tensor (the last block possibly partial); with double
// quantization (QLoRA, "+dq") one dyn8 code per block, one fp32 absmax per
// 256 blocks and one fp32 offset (the mean), decoded in the same pass:
//   s_b = fl(fl(dyn8[q_b] · dq_absmax[b / 256]) + offset).
// MX 8-bit: one code per byte, one E8M0 scale byte per 32 elements.
//
// All functions return a cudaError_t as int (0 = success) and launch on
// `stream` (nullptr: the legacy default stream). Pointers are device memory.
#pragma once

#include <cstddef>
#include <cstdint>

#include "lowbit/formats/codebook.hpp"
#include "lowbit/formats/format_spec.hpp"
#include "lowbit/formats/scaled.hpp"

namespace lowbit::cuda {

enum class DType : std::uint8_t { f32, f16, bf16 };
inline std::size_t dtype_bytes(DType t) { return t == DType::f32 ? 4 : 2; }
inline const char* dtype_name(DType t) { return t == DType::f32 ? "fp32" : (t == DType::f16 ? "fp16" : "bf16"); }

// A ≤ 16-entry codebook as the kernels take it (by value, ~200 bytes):
// nf4, fp4-bnb, nf3/nf2, a user table, or the decode table of a 4-bit
// minifloat (e2m1fn) or of int4 (code c → two's-complement value).
struct Table16 {
  float value[16];          // value of code c (codes ≥ size: 0)
  float threshold[15];      // codebook.hpp's thresholds (tie rule folded in), +inf past size−1
  std::uint8_t code_of_rank[16];
  std::uint8_t zero_code;
  std::uint8_t bnb_nan_code;
  float max_magnitude;      // what the absmax maps to (1 for nf4 / fp4-bnb)
};
// From a codebook of at most 16 values (bits ≤ 4). Throws std::invalid_argument otherwise.
Table16 make_table16(const Codebook& cb);

// Scales of a blockwise tensor.
struct BlockScales {
  const float* absmax = nullptr;          // fp32 per block (plain), or nullptr with dq
  const std::uint8_t* dq_codes = nullptr; // dq: one dyn8 code per block
  const float* dq_absmax = nullptr;       // dq: one fp32 per 256 blocks
  float dq_offset = 0.0f;                 // dq: the mean subtracted before quantizing
  // bnb mode (Quantizer::edge_mode() == EdgeMode::bnb): bitsandbytes' FTZ
  // arithmetic (value · s and the dq products flushed to zero when subnormal)
  // and its own dynamic map (dyn8_bnb) for dq codes.
  bool bnb = false;
  bool double_quantized() const { return dq_codes != nullptr; }
};

// out[i] = fl(value[code_i] · s_{i / block}), rounded once to out_type.
// n elements, ⌈n/2⌉ code bytes, ⌈n/block⌉ scales; any block ≥ 2 (fast path
// for block % 8 == 0 with aligned pointers, else a plain per-element kernel).
int dequantize_4bit(const Table16& table, const std::uint8_t* codes, const BlockScales& scales, std::size_t n,
                    std::size_t block, void* out, DType out_type, void* stream = nullptr);

// Cells of the uniform rank grid the fast 4-bit quantizer uses for a table (0:
// thresholds too close, it takes the binary search), and the largest grid it
// copies once per lane (conflict-free lookups). For tests and notes.
int quantize_4bit_grid_cells(const Table16& t);
int quantize_4bit_lane_copies_max_cells();

// Blockwise absmax + encode + pack. exact mode: scaled.hpp's rules (amax over
// finite values, NaN → zero code, ±inf → the ends, all-zero block → s = 0 and
// the zero code); bnb mode: bitsandbytes' kernel (amax includes inf,
// y = x · (1/amax), NaN products → bnb_nan_code). Writes ⌈n/2⌉ code bytes (an
// odd n's spare low nibble holds the code of 0.0, as bitsandbytes) and
// ⌈n/block⌉ scales s = amax / max_magnitude. Kernels (blockwise.cu): bf16 /
// fp16 input with a rank grid of ≤ 128 cells: block 64 a lane per block,
// blocks 512 … 4096 a warp per block; other power-of-two blocks up to 4096
// (and fp32 input) 8 values per lane; anything else a generic two-pass path.
int quantize_4bit(const Table16& table, const void* x, DType in_type, std::size_t n, std::size_t block,
                  EdgeMode mode, std::uint8_t* codes, float* absmax, void* stream = nullptr);

// MX 8-bit (OCP MX v1.0, block 32, E8M0 scales): element e4m3fn or e5m2.
// out[i] = fl(decode(code_i) · 2^(scale − 127)) (scale 0xFF: NaN).
int dequantize_mx8(const FormatSpec& element, const std::uint8_t* codes, const std::uint8_t* scales, std::size_t n,
                   void* out, DType out_type, void* stream = nullptr);
// scaled.hpp's e8m0 rule: s = 2^(⌊log2 amax⌋ − emax), y = x · (1/s), element
// encode with round-to-nearest-even, saturating (element_convert_options).
int quantize_mx8(const FormatSpec& element, const void* x, DType in_type, std::size_t n, std::uint8_t* codes,
                 std::uint8_t* scales, void* stream = nullptr);

}  // namespace lowbit::cuda
