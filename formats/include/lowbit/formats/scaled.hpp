// lowbit/formats/scaled.hpp — a scaled quantizer: element × scale × granularity.
//
// The element format (a minifloat, a codebook, a k-bit integer) holds x / s
// for a scale s shared by a group of elements; the group is the granularity
// (the whole tensor, a row, a column, or a block of B consecutive elements
// of the row-major tensor — bitsandbytes' blocks — the last one possibly
// partial). How s is chosen and stored is the scale format:
//
//   fp32, fp16, bf16  s = amax / max_elem rounded to the format (nearest even,
//                     saturating). amax = max |x| over the group's finite x.
//                     For codebooks max_elem = 1, so s is bnb's "absmax".
//   e8m0              OCP MX v1.0: s = 2^(⌊log2 amax⌋ − emax_elem), emax_elem
//                     = ⌊log2 max_elem⌋ (e2m1: 2, e4m3fn: 8, int8: 6, codebooks: 0);
//                     elements above max_elem · s saturate (counted as clipped).
//   e4m3fn            NVIDIA's NVFP4 recipe, two levels: one fp32 tensor
//                     encode scale S = 448 · max_elem / amax_tensor, then per
//                     group s8 = e4m3fn(amax / max_elem · S) and s = s8 · (1/S).
//   dq                QLoRA double quantization of fp32 scales: the scales
//                     minus their mean, quantized with dyn8 in blocks of 256,
//                     one fp32 absmax per 256 and the fp32 mean per tensor.
//                     Elements are encoded with the exact fp32 scale (as bnb).
//
// Arithmetic (the CPU reference; GPU kernels must do the same float ops):
// encode y = x · inv with inv = 1 / s in float (0 when s = 0; x / s if 1/s overflows), code = element
// encode of y; decode x' = value(code) · s in float. Zero-point integers use
// s = (max(hi, 0) − min(lo, 0)) / qmax, z = round(−min(lo, 0) / s), x' = (q − z) · s.
//
// Edge cases, exact mode (the default):
//   * NaN and ±inf are left out of amax (and of the zero-point range).
//   * NaN → NaN code if the element format has one, else the code nearest 0.
//   * ±inf → ±inf if the element format has inf, else ± the largest value
//     (counted as clipped).
//   * a group with amax = 0 (all zeros, or nothing finite) gets s = 0 (MX:
//     2^−127) and every finite element the code of 0: no division by zero.
//   * subnormal-only groups are scaled like any other: s may be subnormal;
//     where 1/s overflows (s < 2^−128) encoding divides by s instead.
//   * huge values: s ≤ FLT_MAX always; 1/s may be subnormal for amax > 2^126,
//     costing a few of its 24 bits — irrelevant for ≤ 8-bit elements.
// bnb mode (codebook elements with fp32 scales only) instead does bnb's raw
// float arithmetic: subnormals flushed to zero (its --use_fast_math build),
// amax includes ±inf, inv = 1/amax even for 0 (= inf), and
// NaN products take the codebook's bnb_nan_code — NaN → −absmax for nf4, an
// all-zero block → code 0, an inf makes the block's other values NaN on decode.
#pragma once

#include <cfloat>
#include <cmath>
#include <cstdint>

#include "lowbit/formats/codebook.hpp"
#include "lowbit/formats/integer.hpp"
#include "lowbit/formats/minifloats.hpp"

namespace lowbit {

enum class ElementKind : std::uint8_t { minifloat, codebook, int_symmetric, int_zero_point };
enum class Granularity : std::uint8_t { none, tensor, row, col, block };  // none: unscaled (s = 1)
enum class ScaleFormat : std::uint8_t { fp32, fp16, bf16, e8m0, e4m3fn, dq };
enum class EdgeMode : std::uint8_t { exact, bnb };

// The element conversion options of scaled quantizers: round to nearest even,
// saturate finite overflow, keep inf where the format has it, NaN into a
// NaN-less format → 0 (the sign flipped, as ml_dtypes).
// (A function as well as a constant: device code may not take a reference to
// a namespace-scope host variable, and encode() takes its options by reference.)
LOWBIT_HD constexpr ConvertOptions make_element_convert_options() {
  ConvertOptions o{};
  o.inf_under_saturation = InfUnderSaturation::keep_inf;
  o.nan_to_finite = NanToFinite::zero_flipped_sign;
  return o;
}
inline constexpr ConvertOptions element_convert_options = make_element_convert_options();

// The scale formats' specs by value, for the same reason: group_scale runs on
// the GPU too (kernels/cuda/scaled_quantize.cu), where naming the host
// constants fp16 / bf16 / e4m3fn by reference does not compile.
LOWBIT_HD constexpr FormatSpec scale_spec_fp16() { return FormatSpec{5, 10, 15, Special::ieee}; }
LOWBIT_HD constexpr FormatSpec scale_spec_bf16() { return FormatSpec{8, 7, 127, Special::ieee}; }
LOWBIT_HD constexpr FormatSpec scale_spec_e4m3fn() { return FormatSpec{4, 3, 7, Special::fn}; }
static_assert(scale_spec_fp16() == fp16 && scale_spec_bf16() == bf16 && scale_spec_e4m3fn() == e4m3fn);

// One element format. Trivially copyable (the codebook is held by value).
struct ElementFormat {
  ElementKind kind = ElementKind::minifloat;
  FormatSpec spec{};     // minifloat
  IntFormat integer{};   // int kinds
  Codebook codebook{};   // codebook

  LOWBIT_HD constexpr int bits() const {
    switch (kind) {
      case ElementKind::minifloat: return spec.total_bits();
      case ElementKind::codebook: return codebook.bits;
      default: return integer.bits;
    }
  }
  // The largest magnitude an element holds: what amax is mapped to.
  LOWBIT_HD constexpr float max_value() const {
    switch (kind) {
      case ElementKind::minifloat: return static_cast<float>(spec.max_finite());
      case ElementKind::codebook: return codebook.max_magnitude;
      default: return static_cast<float>(integer.qmax());
    }
  }
  LOWBIT_HD constexpr bool has_nan() const { return kind == ElementKind::minifloat && spec.has_nan(); }
  LOWBIT_HD constexpr bool has_inf() const { return kind == ElementKind::minifloat && spec.has_inf(); }
};

// ⌊log2 v⌋ of a positive finite float (subnormals included).
LOWBIT_HD LOWBIT_FORCEINLINE int floor_log2(float v) {
  const std::uint32_t b = bit_cast<std::uint32_t>(v) & 0x7FFF'FFFFu;
  const int field = static_cast<int>(b >> 23);
  if (field != 0) return field - 127;
  return bit_width(b) - 1 - 149;  // subnormal: value = b · 2^−149
}

// emax of the element format, for the OCP MX scale rule.
LOWBIT_HD LOWBIT_FORCEINLINE int element_emax(const ElementFormat& e) { return floor_log2(e.max_value()); }

// A group's scale: the stored code (in the scale format's bits), the value s
// that decoding multiplies by, and the multiplier inv that encoding uses.
struct GroupScale {
  std::uint32_t code = 0;
  float scale = 0.0f;
  float inv = 0.0f;
};

// 1/s for encoding: 0 for s = 0; +inf when s < 2^−128 (then scale_down
// divides instead, so subnormal-only groups keep their precision).
LOWBIT_HD LOWBIT_FORCEINLINE float safe_inverse(float s) { return s > 0.0f ? 1.0f / s : 0.0f; }

// y = x / s as encoding computes it: x · inv, or x / s where inv overflowed.
LOWBIT_HD LOWBIT_FORCEINLINE float scale_down(float x, float inv, float s) {
  return inv <= FLT_MAX ? x * inv : x / s;
}

// Scale of a group whose finite |x| reach amax (>= 0). `tensor_encode_scale`
// is the fp32 S of the e4m3fn two-level rule (ignored otherwise).
LOWBIT_HD inline GroupScale group_scale(ScaleFormat f, float amax, float max_elem, int emax_elem,
                                        float tensor_encode_scale = 1.0f) {
  GroupScale g;
  switch (f) {
    case ScaleFormat::fp32:
    case ScaleFormat::dq: {
      float s = amax / max_elem;
      if (s > FLT_MAX) s = FLT_MAX;
      g.scale = s;
      g.code = bit_cast<std::uint32_t>(s);
      break;
    }
    case ScaleFormat::fp16:
    case ScaleFormat::bf16: {
      const FormatSpec spec = f == ScaleFormat::fp16 ? scale_spec_fp16() : scale_spec_bf16();
      float s = amax / max_elem;
      if (s > FLT_MAX) s = FLT_MAX;
      g.code = encode(spec, s);  // nearest even, saturating
      g.scale = decode<float>(spec, g.code);
      break;
    }
    case ScaleFormat::e8m0: {
      int e = amax > 0.0f ? floor_log2(amax) - emax_elem : -127;
      e = e < -127 ? -127 : (e > 127 ? 127 : e);
      g.code = static_cast<std::uint32_t>(e + 127);
      g.scale = static_cast<float>(pow2(e));
      break;
    }
    case ScaleFormat::e4m3fn: {
      const FormatSpec spec = scale_spec_e4m3fn();
      const float s8 = decode<float>(spec, (g.code = encode(spec, amax / max_elem * tensor_encode_scale)));
      g.scale = s8 * (1.0f / tensor_encode_scale);  // s8 · (1/S): what NvFp4Block decoding does
      g.inv = s8 > 0.0f ? tensor_encode_scale / s8 : 0.0f;  // NVIDIA's S_enc / s8 (may overflow: scale_down)
      return g;
    }
  }
  g.inv = safe_inverse(g.scale);
  return g;
}

// The fp32 tensor encode scale S of the e4m3fn two-level rule (NVFP4:
// 448 · 6 / amax_tensor); 1 for an all-zero tensor, FLT_MAX at most.
LOWBIT_HD inline float tensor_encode_scale(float amax_tensor, float max_elem) {
  if (!(amax_tensor > 0.0f)) return 1.0f;
  const float s = 448.0f * max_elem / amax_tensor;
  return s > FLT_MAX ? FLT_MAX : s;
}

inline constexpr float clip_slack = 1.0f + 0x1p-20f;

// Encode one element (not zero-point), exact mode. y = scale_down(x, inv, s);
// x itself decides the special cases. Returns the code; sets clipped when |y|
// exceeded the largest value and was saturated.
LOWBIT_HD LOWBIT_FORCEINLINE std::uint32_t encode_element(const ElementFormat& e, float x, float inv, float s,
                                                         bool& clipped) {
  const ConvertOptions opts = make_element_convert_options();  // a local: device-callable
  const float maxv = e.max_value();
  if (!(x == x)) {  // NaN
    clipped = false;
    switch (e.kind) {
      case ElementKind::minifloat: return encode(e.spec, x, opts);
      case ElementKind::codebook: return e.codebook.zero_code;
      default: return 0u;
    }
  }
  float y = scale_down(x, inv, s);
  if (fabsf(x) == INFINITY) y = x;  // ±inf stays ±inf (inv may be 0)
  // Saturated beyond the largest value; the slack keeps the last-ulp error of
  // x · (1/s) at x = amax from counting (an fp32 absmax scale never clips).
  clipped = fabsf(y) > maxv * clip_slack && !(e.has_inf() && fabsf(x) == INFINITY);
  switch (e.kind) {
    case ElementKind::minifloat: return encode(e.spec, y, opts);
    case ElementKind::codebook: return encode(e.codebook, y);
    default: return encode_int_symmetric(e.integer, y);
  }
}

LOWBIT_HD LOWBIT_FORCEINLINE float decode_element(const ElementFormat& e, std::uint32_t code) {
  switch (e.kind) {
    case ElementKind::minifloat: return decode<float>(e.spec, code);
    case ElementKind::codebook: return decode(e.codebook, code);
    case ElementKind::int_symmetric: return static_cast<float>(decode_int_symmetric(e.integer, code));
    case ElementKind::int_zero_point: return static_cast<float>(code);
  }
  return 0.0f;
}

// Flush a subnormal to a zero of its sign: bitsandbytes' kernels are built
// with --use_fast_math, so every input, product and reciprocal is FTZ
// (measured: a block of subnormals quantizes like a block of zeros).
LOWBIT_HD LOWBIT_FORCEINLINE float flush_subnormal(float x) {
  return fabsf(x) < FLT_MIN ? (bit_cast<std::uint32_t>(x) >> 31 ? -0.0f : 0.0f) : x;
}

// bnb mode for codebooks: bnb's own float arithmetic (FTZ, inv = 1/absmax
// even for 0), NaN → bnb_nan_code. `inv_raw` = flush_subnormal(1 / absmax).
LOWBIT_HD LOWBIT_FORCEINLINE std::uint32_t encode_codebook_bnb(const Codebook& cb, float x, float inv_raw) {
  const float y = flush_subnormal(flush_subnormal(x) * inv_raw);
  return y == y ? encode(cb, y) : cb.bnb_nan_code;
}
LOWBIT_HD LOWBIT_FORCEINLINE float decode_codebook_bnb(const Codebook& cb, std::uint32_t code, float absmax) {
  return flush_subnormal(decode(cb, code) * absmax);
}

// ---- one group, one element: the steps of Quantizer::quantize / dequantize --
// (kernels/cpu/quantize.cpp and kernels/cuda/scaled_quantize.cu both call
// these, so CPU and GPU share every float operation.)

// The statistics of a group's inputs. add() in any order and merge() of any
// partition give the same result (max/min of values whose only tie, ±0, is
// resolved by starting from +0 and replacing only on a strict comparison).
struct GroupRange {
  float amax = 0.0f;           // max |x| over finite x
  float amax_with_inf = 0.0f;  // max |x| over non-NaN x, subnormals flushed (bnb)
  float lo = 0.0f, hi = 0.0f;  // min / max over finite x, 0 if none (zero-point)
  LOWBIT_HD LOWBIT_FORCEINLINE void add(float x) {
    const float a = fabsf(x);
    if (a == a) {
      const float f = flush_subnormal(a);
      if (amax_with_inf < f) amax_with_inf = f;
    }
    if (a < INFINITY) {  // finite
      if (amax < a) amax = a;
      if (x < lo) lo = x;
      if (hi < x) hi = x;
    }
  }
  LOWBIT_HD LOWBIT_FORCEINLINE void merge(const GroupRange& o) {
    if (amax < o.amax) amax = o.amax;
    if (amax_with_inf < o.amax_with_inf) amax_with_inf = o.amax_with_inf;
    if (o.lo < lo) lo = o.lo;
    if (hi < o.hi) hi = o.hi;
  }
};

// Everything the element pass needs of one group.
struct GroupParams {
  float scale = 0.0f;      // decode multiplier (before +dq replaces it by the dq-decoded value)
  float inv = 0.0f;        // encode multiplier
  float enc_scale = 0.0f;  // the s that inv inverts (scale_down's divisor)
  std::uint32_t code = 0;  // the scale in its storage format
  int zero_point = 0;      // intK-zp only
};

// A group's parameters from its range (Quantizer's element, scale format and
// edge mode; S = the e4m3fn tensor encode scale, 1 otherwise).
LOWBIT_HD inline GroupParams group_params(const ElementFormat& e, ScaleFormat f, EdgeMode mode, const GroupRange& r,
                                          float tensor_encode_scale_value) {
  GroupParams p;
  if (e.kind == ElementKind::int_zero_point) {
    // 0 is inside [lo, hi] by construction, so z lands in [0, qmax].
    const GroupScale gs = group_scale(f, r.hi - r.lo, static_cast<float>(e.integer.qmax()), 0);
    p.scale = p.enc_scale = gs.scale;
    p.inv = gs.inv;
    p.code = gs.code;
    p.zero_point = gs.scale > 0.0f ? round_clamp(scale_down(-r.lo, gs.inv, gs.scale), 0, e.integer.qmax()) : 0;
    return p;
  }
  if (mode == EdgeMode::bnb) {  // bnb's raw arithmetic: absmax with inf, 1/0 = inf
    const float a = r.amax_with_inf;
    p.scale = p.enc_scale = a;
    p.inv = flush_subnormal(1.0f / a);
    p.code = bit_cast<std::uint32_t>(a);
    return p;
  }
  const GroupScale gs = group_scale(f, r.amax, e.max_value(), element_emax(e), tensor_encode_scale_value);
  p.scale = p.enc_scale = gs.scale;
  p.inv = gs.inv;
  p.code = gs.code;
  return p;
}

// One element's code: exact mode (encode_element; zero-point integers: NaN →
// z, ±inf saturate), or bnb's arithmetic. `es` is GroupParams::enc_scale,
// z its zero point; unscaled quantizers pass inv = es = 1, z = 0.
LOWBIT_HD LOWBIT_FORCEINLINE std::uint32_t encode_scaled_element(const ElementFormat& e, EdgeMode mode, float x,
                                                                float inv, float es, int z, bool& clipped) {
  if (mode == EdgeMode::bnb) {
    clipped = false;
    return encode_codebook_bnb(e.codebook, x, inv);
  }
  if (e.kind == ElementKind::int_zero_point) {
    if (x != x) {
      clipped = false;
      return static_cast<std::uint32_t>(z);
    }
    const float y = fabsf(x) == INFINITY ? x : scale_down(x, inv, es);
    const float t = y + static_cast<float>(z);
    clipped = t < -0.5f || t > static_cast<float>(e.integer.qmax()) * clip_slack;
    return encode_int_zero_point(e.integer, y, z);
  }
  return encode_element(e, x, inv, es, clipped);
}

// The dequantized value of one code with its group's decode scale s.
LOWBIT_HD LOWBIT_FORCEINLINE float decode_scaled_element(const ElementFormat& e, EdgeMode mode, std::uint32_t code,
                                                        float s, int z) {
  if (e.kind == ElementKind::int_zero_point) return static_cast<float>(static_cast<int>(code) - z) * s;
  if (mode == EdgeMode::bnb) return decode_codebook_bnb(e.codebook, code, s);
  return decode_element(e, code) * s;
}

}  // namespace lowbit
