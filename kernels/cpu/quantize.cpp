// kernels/cpu/quantize.cpp — the CPU reference of every scaled quantizer.
//
// The specification GPU kernels must equal bit for bit: per group, amax (or
// min/max) over the finite inputs → the group's scale (scaled.hpp:
// group_scale) → per element y = x · inv, element encode, decode · s. Work is
// split into fixed chunks with OpenMP; every element's result depends only on
// its group's scale, and the reductions are max/min/counts (order-free) or
// sequential, so any thread count gives identical output.
#include "kernels/cpu/quantize.hpp"

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstring>

namespace lowbit {

namespace {

constexpr std::size_t chunk = 1 << 14;  // elements per parallel work item (a multiple of 8: packing never shares a byte)

// GroupRange (scaled.hpp): amax / amax_with_inf / lo / hi of a group, shared with the GPU.

// Per-group ranges. Contiguous groups (tensor, row, block) in parallel over
// groups (tensor: over chunks, merged); columns in parallel over column stripes.
std::vector<GroupRange> group_ranges(const Quantizer& q, const float* x, std::size_t rows, std::size_t cols) {
  const std::size_t n = rows * cols, groups = q.group_count(rows, cols);
  std::vector<GroupRange> r(groups);
  if (groups == 0) return r;
  switch (q.granularity()) {
    case Granularity::tensor: {
      const std::size_t chunks = (n + chunk - 1) / chunk;
      std::vector<GroupRange> part(chunks);
#pragma omp parallel for schedule(static)
      for (std::ptrdiff_t c = 0; c < static_cast<std::ptrdiff_t>(chunks); ++c) {
        const std::size_t b = static_cast<std::size_t>(c) * chunk, e = std::min(n, b + chunk);
        for (std::size_t i = b; i < e; ++i) part[c].add(x[i]);
      }
      for (auto& p : part) r[0].merge(p);
      break;
    }
    case Granularity::col: {
#pragma omp parallel for schedule(static)
      for (std::ptrdiff_t c0 = 0; c0 < static_cast<std::ptrdiff_t>(cols); c0 += 256) {
        const std::size_t c1 = std::min(cols, static_cast<std::size_t>(c0) + 256);
        for (std::size_t i = 0; i < rows; ++i)
          for (std::size_t c = static_cast<std::size_t>(c0); c < c1; ++c) r[c].add(x[i * cols + c]);
      }
      break;
    }
    default: {
      const std::size_t len = q.granularity() == Granularity::row ? cols : q.block_size();
#pragma omp parallel for schedule(static)
      for (std::ptrdiff_t g = 0; g < static_cast<std::ptrdiff_t>(groups); ++g) {
        const std::size_t b = static_cast<std::size_t>(g) * len, e = std::min(n, b + len);
        for (std::size_t i = b; i < e; ++i) r[g].add(x[i]);
      }
    }
  }
  return r;
}

// Everything the element pass needs, per group.
struct Scales {
  std::vector<float> scale, inv;          // decode multiplier, encode multiplier
  std::vector<float> enc_scale;           // the s that inv inverts (differs from scale only under +dq)
  std::vector<std::uint32_t> code;
  std::vector<int> zero_point;
  float tensor_encode_scale = 1.0f;
  cpu::DoubleQuantized dq;
};

Scales compute_scales(const Quantizer& q, const std::vector<GroupRange>& ranges) {
  const ElementFormat& e = q.element();
  const std::size_t groups = ranges.size();
  Scales s;
  s.scale.resize(groups);
  s.inv.resize(groups);
  s.code.resize(groups);
  if (e.kind == ElementKind::int_zero_point) s.zero_point.resize(groups);
  if (q.scale_format() == ScaleFormat::e4m3fn && e.kind != ElementKind::int_zero_point) {
    float amax_t = 0.0f;
    for (const auto& r : ranges) amax_t = std::max(amax_t, r.amax);
    s.tensor_encode_scale = tensor_encode_scale(amax_t, e.max_value());
  }
  for (std::size_t g = 0; g < groups; ++g) {  // scaled.hpp: the GPU's per-group step too
    const GroupParams p = group_params(e, q.scale_format(), q.edge_mode(), ranges[g], s.tensor_encode_scale);
    s.scale[g] = p.scale;
    s.inv[g] = p.inv;
    s.code[g] = p.code;
    if (!s.zero_point.empty()) s.zero_point[g] = p.zero_point;
  }
  if (q.scale_format() == ScaleFormat::dq) {
    // Elements keep the exact fp32 scale (inv); decoding uses the dq'd one.
    s.enc_scale = s.scale;
    const Codebook& table = q.edge_mode() == EdgeMode::bnb ? dyn8_bnb : dyn8;
    s.dq = cpu::double_quantize(s.scale.data(), groups, cpu::mean_offset(s.scale.data(), groups), table, 256,
                                q.edge_mode());
    cpu::double_dequantize(s.dq, groups, s.scale.data(), table, 256, q.edge_mode());
  }
  return s;
}

// The element pass over [b, e): code and dequantized value of each element.
// `emit(i, code, value)` receives them; returns the stats of the range.
template <class Emit>
QuantStats element_pass(const Quantizer& q, const Scales& s, const float* x, std::size_t b, std::size_t e,
                        std::size_t cols, Emit&& emit) {
  QuantStats st;
  const ElementFormat& el = q.element();
  const bool unscaled = q.granularity() == Granularity::none;
  const std::vector<float>& enc_scale = s.enc_scale.empty() ? s.scale : s.enc_scale;
  for (std::size_t i = b; i < e; ++i) {
    const float xi = x[i];
    st.n_nan_in += xi != xi;
    st.n_inf_in += std::fabs(xi) == INFINITY;
    const std::size_t g = unscaled ? 0 : q.group_of(i, cols);
    const float inv = unscaled ? 1.0f : s.inv[g], scale = unscaled ? 1.0f : s.scale[g];
    const float es = unscaled ? 1.0f : enc_scale[g];
    const int z = s.zero_point.empty() ? 0 : s.zero_point[g];
    bool clipped = false;
    const std::uint32_t code = encode_scaled_element(el, q.edge_mode(), xi, inv, es, z, clipped);  // scaled.hpp
    st.n_clipped += clipped;
    const float value = decode_scaled_element(el, q.edge_mode(), code, scale, z);
    st.n_nan_out += value != value;
    st.n_inf_out += std::fabs(value) == INFINITY;
    emit(i, code, value);
  }
  return st;
}

template <class Emit>
QuantStats run_elements(const Quantizer& q, const Scales& s, const float* x, std::size_t n, std::size_t cols,
                        Emit&& emit) {
  const std::size_t chunks = (n + chunk - 1) / chunk;
  std::vector<QuantStats> part(chunks);
#pragma omp parallel for schedule(static)
  for (std::ptrdiff_t c = 0; c < static_cast<std::ptrdiff_t>(chunks); ++c) {
    const std::size_t b = static_cast<std::size_t>(c) * chunk, e = std::min(n, b + chunk);
    part[c] = element_pass(q, s, x, b, e, cols, emit);
  }
  QuantStats total;
  for (auto& p : part) total += p;
  return total;
}

}  // namespace

QuantizedTensor Quantizer::quantize(const float* x, std::size_t rows, std::size_t cols, QuantStats* stats) const {
  QuantizedTensor t;
  t.rows = rows;
  t.cols = cols;
  t.element_bits = element_bits();
  const std::size_t n = rows * cols;
  const Scales s = compute_scales(*this, group_ranges(*this, x, rows, cols));
  t.codes.assign(packed_bytes(n, t.element_bits), 0);
  std::uint8_t* codes = t.codes.data();
  const int bits = t.element_bits;
  const QuantStats st = run_elements(*this, s, x, n, cols, [&](std::size_t i, std::uint32_t code, float) {
    pack_code(codes, i, bits, code);
  });
  if (stats) *stats = st;
  // An odd count of 4-bit codes: the spare low nibble holds the code of 0.0,
  // as bitsandbytes (which quantizes a zero pad element).
  if (bits == 4 && n % 2 == 1) {
    bool unused = false;
    const std::uint32_t zero = element_.kind == ElementKind::int_zero_point
                                   ? static_cast<std::uint32_t>(s.zero_point.empty() ? 0 : s.zero_point.back())
                                   : encode_element(element_, 0.0f, 0.0f, 0.0f, unused);
    pack_code(codes, n, 4, zero);
  }
  if (granularity() != Granularity::none) {
    t.scales = s.scale;
    t.scale_codes = s.code;
  }
  for (int z : s.zero_point) t.zero_points.push_back(static_cast<std::uint8_t>(z));
  t.tensor_encode_scale = s.tensor_encode_scale;
  t.dq_codes = s.dq.codes;
  t.dq_absmax = s.dq.absmax;
  t.dq_offset = s.dq.offset;
  return t;
}

void Quantizer::dequantize(const QuantizedTensor& t, float* out) const {
  const std::size_t n = t.rows * t.cols;
  const ElementFormat& el = element_;
  const bool unscaled = granularity_ == Granularity::none;
  const bool zp = el.kind == ElementKind::int_zero_point;
  const std::size_t chunks = (n + chunk - 1) / chunk;
#pragma omp parallel for schedule(static)
  for (std::ptrdiff_t c = 0; c < static_cast<std::ptrdiff_t>(chunks); ++c) {
    const std::size_t b = static_cast<std::size_t>(c) * chunk, e = std::min(n, b + chunk);
    for (std::size_t i = b; i < e; ++i) {
      const std::uint32_t code = unpack_code(t.codes.data(), i, t.element_bits);
      const std::size_t g = unscaled ? 0 : group_of(i, t.cols);
      const float scale = unscaled ? 1.0f : t.scales[g];
      out[i] = decode_scaled_element(el, edge_, code, scale, zp ? t.zero_points[g] : 0);
    }
  }
}

void Quantizer::fake_quantize(const float* x, std::size_t rows, std::size_t cols, float* out,
                              QuantStats* stats) const {
  const std::size_t n = rows * cols;
  const Scales s = compute_scales(*this, group_ranges(*this, x, rows, cols));
  // out may alias x: each element is read before it is written, by one thread.
  const QuantStats st = run_elements(*this, s, x, n, cols, [&](std::size_t i, std::uint32_t, float v) { out[i] = v; });
  if (stats) *stats = st;
}

namespace cpu {

void quantize_blockwise_bnb(const Codebook& cb, const float* x, std::size_t n, std::size_t block,
                            std::uint8_t* codes, float* absmax) {
  const std::size_t blocks = (n + block - 1) / block;
#pragma omp parallel for schedule(static)
  for (std::ptrdiff_t bi = 0; bi < static_cast<std::ptrdiff_t>(blocks); ++bi) {
    const std::size_t b = static_cast<std::size_t>(bi) * block, e = std::min(n, b + block);
    float a = 0.0f;
    for (std::size_t i = b; i < e; ++i) a = std::fmax(a, flush_subnormal(std::fabs(x[i])));  // fmax skips NaN, as fmaxf
    absmax[bi] = a;
    const float inv = flush_subnormal(1.0f / a);
    for (std::size_t i = b; i < e; ++i) codes[i] = static_cast<std::uint8_t>(encode_codebook_bnb(cb, x[i], inv));
  }
}

void dequantize_blockwise(const Codebook& cb, const std::uint8_t* codes, const float* absmax, std::size_t n,
                          std::size_t block, float* out) {
  for (std::size_t i = 0; i < n; ++i) out[i] = decode_codebook_bnb(cb, codes[i], absmax[i / block]);
}

float mean_offset(const float* scales, std::size_t n) {
  if (n == 0) return 0.0f;
  // Fixed order (so the GPU reproduces it bit for bit in parallel): binary64
  // sums of consecutive chunks of mean_chunk scales, each from 0 in index
  // order, then the chunk sums in chunk order. For n <= mean_chunk this is
  // the plain sequential sum.
  double sum = 0;
  for (std::size_t c = 0; c < n; c += mean_chunk) {
    double part = 0;
    for (std::size_t i = c; i < std::min(n, c + mean_chunk); ++i) part += scales[i];
    sum += part;
  }
  return static_cast<float>(sum / static_cast<double>(n));
}

DoubleQuantized double_quantize(const float* scales, std::size_t n, float offset, const Codebook& cb,
                                std::size_t block, EdgeMode mode) {
  DoubleQuantized dq;
  dq.offset = offset;
  std::vector<float> centered(n);
  for (std::size_t i = 0; i < n; ++i) centered[i] = scales[i] - offset;
  dq.codes.resize(n);
  dq.absmax.resize((n + block - 1) / block);
  if (mode == EdgeMode::bnb) {
    quantize_blockwise_bnb(cb, centered.data(), n, block, dq.codes.data(), dq.absmax.data());
    return dq;
  }
  // Exact mode: same arithmetic, but a block of equal scales (absmax 0)
  // stores the code of 0 instead of bnb's NaN-path code; both decode to offset.
  for (std::size_t bi = 0; bi < dq.absmax.size(); ++bi) {
    const std::size_t b = bi * block, e = std::min(n, b + block);
    float a = 0.0f;
    for (std::size_t i = b; i < e; ++i) a = std::fmax(a, std::fabs(centered[i]));
    dq.absmax[bi] = a;
    const float inv = safe_inverse(a);
    for (std::size_t i = b; i < e; ++i) dq.codes[i] = static_cast<std::uint8_t>(encode(cb, scale_down(centered[i], inv, a)));
  }
  return dq;
}

void double_dequantize(const DoubleQuantized& dq, std::size_t n, float* scales, const Codebook& cb,
                       std::size_t block, EdgeMode mode) {
  const bool ftz = mode == EdgeMode::bnb;
  for (std::size_t i = 0; i < n; ++i) {
    volatile float product = decode(cb, dq.codes[i]) * dq.absmax[i / block];  // volatile: no fused multiply-add
    if (ftz) product = flush_subnormal(product);
    scales[i] = ftz ? flush_subnormal(product + dq.offset) : product + dq.offset;
  }
}

}  // namespace cpu
}  // namespace lowbit
