// kernels/cuda/gemm4.cu — see gemm4.cuh.
//
// Floors (H100, copy ceiling ~3.0 TB/s): the weight bytes, N·K/2 + 4·N·K/B
// (B = 64: 4.5 bits/weight), dominate up to M = 64: 8192 × 8192 → 37.7 MB ≈
// 12.5 µs; 8192 × 28672 → 132 MB ≈ 44 µs. Tensor work 2·M·N·K is far below
// the mma rate for M ≤ 64.
//
// Work split: a CTA owns 32 output rows (two 16-row mma tiles) and all M ≤ 64
// tokens; its W warps split K into 64-element chunks (U consecutive chunks per
// warp per step, all loads of a step issued before use) and meet at the end
// in shared memory. Lane (g = lane/4, q = lane%4) reads 8 bytes (16 weights)
// of rows g and g+8 per chunk at byte q·8, and x[token g][q·16 … +16]; the
// k-slots of the m16n8k16 fragments are permuted identically on A and B
// (slot pair (2q,2q+1) of k-tile t ↔ k = q·16+4t+{0,1}, (2q+8,2q+9) ↔
// q·16+4t+{2,3}), so every weight byte is exactly one A register half-pair,
// looked up in a 256-entry table of value pairs. The table is replicated per
// lane (32 KB: word = byte·32 + lane), so the lookups never conflict on banks.
#include "kernels/cuda/gemm4.cuh"

#include <cuda.h>

#include <type_traits>
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <cudaTypedefs.h>

#include "kernels/cuda/device_util.cuh"
#include "kernels/cuda/gemm4_parts.cuh"
#include "lowbit/formats/dyn8.hpp"

namespace lowbit::cuda {
namespace {

using namespace gemm4_parts;


template <class ActT>
__device__ __forceinline__ void mma16816(float (&d)[4], const std::uint32_t (&a)[4], std::uint32_t b0,
                                         std::uint32_t b1);
template <>
__device__ __forceinline__ void mma16816<__nv_bfloat16>(float (&d)[4], const std::uint32_t (&a)[4], std::uint32_t b0,
                                                        std::uint32_t b1) {
  asm(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
      "{%0,%1,%2,%3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}
template <>
__device__ __forceinline__ void mma16816<__half>(float (&d)[4], const std::uint32_t (&a)[4], std::uint32_t b0,
                                                 std::uint32_t b1) {
  asm(
      "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
      "{%0,%1,%2,%3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

__device__ __forceinline__ std::uint32_t lut_word(const std::uint32_t* lut_lane, std::uint32_t w, unsigned byte) {
  return lut_lane[((w >> (8 * byte)) & 0xFFu) * 32u];
}


constexpr int kRows = 32;  // rows per CTA (two 16-row tiles)

// The kernels end the same way: each warp's mma fragments (rows row0 + r·16 +
// g + 8·(i>>1), tokens j·8 + 2q + (i&1)) go to slot `slot` of a shared-memory
// buffer [kSlots][MT·8][kRowsT] floats, and the slots' partial sums of every
// (token, row) are added in slot order and stored. `red` reuses the table's
// shared memory; the caller syncs before.
template <class ActT, int MT, int kSlots, int kRowsT>
__device__ __forceinline__ void reduce_and_store(float* red, const float (&acc)[2][MT][4], int slot, int row0,
                                                 int tid, int threads, int M, int N, int n0, ActT* __restrict__ y) {
  constexpr int kTok = MT * 8;
  const int lane = tid & 31, g = lane >> 2, q = lane & 3;
#pragma unroll
  for (int r = 0; r < 2; ++r)
#pragma unroll
    for (int j = 0; j < MT; ++j)
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        const int row = row0 + r * 16 + g + 8 * (i >> 1), tok = j * 8 + 2 * q + (i & 1);
        red[(slot * kTok + tok) * kRowsT + row] = acc[r][j][i];
      }
  __syncthreads();
  for (int idx = tid; idx < kTok * kRowsT; idx += threads) {
    const int tok = idx / kRowsT, row = idx % kRowsT;
    float sum = 0.0f;
#pragma unroll
    for (int w = 0; w < kSlots; ++w) sum += red[(w * kTok + tok) * kRowsT + row];
    if (tok < M && n0 + row < N) store_act<ActT>(y + static_cast<std::size_t>(tok) * N + n0 + row, sum);
  }
}


// The A fragments of one 64-element chunk for rows g, g + 8 of both 16-row
// tiles r, from the lane's 8 code bytes of each row (wv[r][h], h = 1 for row
// g + 8): k16 step tt takes bytes 2·(tt & 1) and + 1 of word tt < 2 ? x : y —
// the k-slot order every kernel here shares with its x fragments.
// look(word, byte, r, h) turns one code byte into a register of two values.
template <class Look>
__device__ __forceinline__ void a_fragments(std::uint32_t (&a)[2][4][4], const uint2 (&wv)[2][2], Look look) {
#pragma unroll
  for (int r = 0; r < 2; ++r)
#pragma unroll
    for (int tt = 0; tt < 4; ++tt) {
      const std::uint32_t w0 = tt < 2 ? wv[r][0].x : wv[r][0].y;  // row g
      const std::uint32_t w1 = tt < 2 ? wv[r][1].x : wv[r][1].y;  // row g + 8
      const unsigned b0 = 2u * (tt & 1);
      a[r][tt][0] = look(w0, b0, r, 0);
      a[r][tt][1] = look(w1, b0, r, 1);
      a[r][tt][2] = look(w0, b0 + 1, r, 0);
      a[r][tt][3] = look(w1, b0 + 1, r, 1);
    }
}

template <class ActT, int MT, int W, int U>
__global__ void __launch_bounds__(W * 32) gemm4_kernel(const ActT* __restrict__ x, int M,
                                                      const std::uint8_t* __restrict__ codes, BlockScales sc,
                                                      std::size_t block, int block_shift, int N, int K,
                                                      Table16 t, Dyn8Table dq_table, ActT* __restrict__ y) {
  __shared__ __align__(16) std::uint32_t lut[256 * 32];
  __shared__ float values[16];
  __shared__ float dyn8[256];
  const int tid = threadIdx.x;
  if (tid < 16) values[tid] = t.value[tid];
  const bool dq = sc.dq_codes != nullptr;
  if (dq)
    for (int i = tid; i < 256; i += W * 32) dyn8[i] = dq_table.v[i];
  __syncthreads();
  for (int f = tid; f < 256 * 32; f += W * 32) {
    const int b = f >> 5;
    lut[f] = pack2<ActT>(values[b >> 4], values[b & 15]);  // first element (high nibble) in the low half
  }
  __syncthreads();

  const int lane = tid & 31, warp = tid >> 5, g = lane >> 2, q = lane & 3;
  const int n0 = blockIdx.x * kRows;
  const int chunks = K / 64;
  const std::uint32_t* lut_lane = lut + lane;
  const std::size_t row_bytes = static_cast<std::size_t>(K) / 2;

  float acc[2][MT][4] = {};

  for (int c0 = warp * U; c0 < chunks; c0 += W * U) {
    uint2 wv[U][2][2];
    float s[U][2][2];
#pragma unroll
    for (int u = 0; u < U; ++u)
#pragma unroll
      for (int r = 0; r < 2; ++r)
#pragma unroll
        for (int h = 0; h < 2; ++h) {
          const int row = n0 + r * 16 + g + 8 * h, c = c0 + u;
          if (row < N && c < chunks)
            wv[u][r][h] = __ldcs(reinterpret_cast<const uint2*>(codes + row * row_bytes + c * 32 + q * 8));
          else
            wv[u][r][h] = make_uint2(0u, 0u);
        }
#pragma unroll
    for (int u = 0; u < U; ++u)
#pragma unroll
      for (int r = 0; r < 2; ++r)
#pragma unroll
        for (int h = 0; h < 2; ++h) {
          const int row = n0 + r * 16 + g + 8 * h, c = c0 + u;
          float v = 0.0f;
          if (row < N && c < chunks) {
            const std::size_t e = static_cast<std::size_t>(row) * K + static_cast<std::size_t>(c) * 64;
            const std::size_t b = block_shift >= 0 ? e >> block_shift : e / block;
            v = dq ? __fadd_rn(__fmul_rn(dyn8[sc.dq_codes[b]], sc.dq_absmax[b >> 8]), sc.dq_offset) : sc.absmax[b];
          }
          s[u][r][h] = v;
        }
#pragma unroll
    for (int u = 0; u < U; ++u) {
      const int c = c0 + u;
      if (c >= chunks) break;
      std::uint32_t a[2][4][4];
      a_fragments(a, wv[u], [&](std::uint32_t w, unsigned byte, int, int) { return lut_word(lut_lane, w, byte); });
#pragma unroll
      for (int j = 0; j < MT; ++j) {
        const int token = j * 8 + g;
        uint4 xb0 = make_uint4(0, 0, 0, 0), xb1 = make_uint4(0, 0, 0, 0);
        if (token < M) {
          const uint4* p = reinterpret_cast<const uint4*>(x + static_cast<std::size_t>(token) * K + c * 64 + q * 16);
          xb0 = __ldg(p);
          xb1 = __ldg(p + 1);
        }
        const std::uint32_t b[8] = {xb0.x, xb0.y, xb0.z, xb0.w, xb1.x, xb1.y, xb1.z, xb1.w};
#pragma unroll
        for (int r = 0; r < 2; ++r) {
          float cf[4] = {0.0f, 0.0f, 0.0f, 0.0f};
#pragma unroll
          for (int tt = 0; tt < 4; ++tt) mma16816<ActT>(cf, a[r][tt], b[2 * tt], b[2 * tt + 1]);
          acc[r][j][0] = fmaf(cf[0], s[u][r][0], acc[r][j][0]);
          acc[r][j][1] = fmaf(cf[1], s[u][r][0], acc[r][j][1]);
          acc[r][j][2] = fmaf(cf[2], s[u][r][1], acc[r][j][2]);
          acc[r][j][3] = fmaf(cf[3], s[u][r][1], acc[r][j][3]);
        }
      }
    }
  }

  // Cross-warp reduction through shared memory (the table is no longer needed).
  __syncthreads();
  static_assert(W * MT * 8 * kRows <= 256 * 32, "reduction buffer exceeds the table");
  reduce_and_store<ActT, MT, W, kRows>(reinterpret_cast<float*>(lut), acc, tid >> 5, 0, tid, W * 32, M, N, n0, y);
}

template <class ActT, int MT, int W, int U>
int launch(const ActT* x, int M, const Weight4& w, int shift, const Dyn8Table& dq, ActT* y, cudaStream_t st) {
  const unsigned grid = static_cast<unsigned>((w.N + kRows - 1) / kRows);
  gemm4_kernel<ActT, MT, W, U><<<grid, W * 32, 0, st>>>(x, M, w.codes, w.scales, w.block, shift,
                                                        static_cast<int>(w.N), static_cast<int>(w.K), w.table, dq, y);
  return static_cast<int>(cudaGetLastError());
}


// ---------------------------------------------------------------- pipelined version
//
// Same fragments and arithmetic as gemm4_kernel; the weights (and their
// scales) reach shared memory through a per-warp ring of kStages cp.async
// stages, one 64-element chunk of the CTA's 32 rows per stage (1 KB + 256 B),
// so each warp keeps kStages − 1 chunks in flight while it computes. The
// first stages are issued before the CTA builds its lookup table.


constexpr int kStageBytes = 1024 + 256;  // 32 rows × 32 B of codes; 32 + 32 scale words
constexpr int kLutBytes = 256 * 32 * 4;

template <int W, int kStages>
constexpr int pipe_smem_bytes() {
  return kLutBytes + W * kStages * kStageBytes;
}

// The table word of byte `byte` of w, for this lane: PRMT + LEA + LDS.
__device__ __forceinline__ std::uint32_t lut_byte(const std::uint32_t* lut_lane, std::uint32_t w, unsigned byte) {
  return lut_lane[__byte_perm(w, 0u, 0x4440u | byte) * 32u];
}

// 32-bit index arithmetic throughout: the host sends N·K ≥ 2^31 to the
// registers version.
template <class ActT, int MT, int W, int kStages>
__global__ void __launch_bounds__(W * 32) gemm4_pipe_kernel(const ActT* __restrict__ x, int M,
                                                           const std::uint8_t* __restrict__ codes, BlockScales sc,
                                                           std::size_t block, int block_shift, int N, int K,
                                                           Table16 t, Dyn8Table dq_table, ActT* __restrict__ y) {
  extern __shared__ __align__(16) unsigned char smem[];
  std::uint32_t* lut = reinterpret_cast<std::uint32_t*>(smem);
  __shared__ float values[16];
  __shared__ float dyn8[256];
  const int tid = threadIdx.x;
  const int lane = tid & 31, warp = tid >> 5, g = lane >> 2, q = lane & 3;
  const int n0 = blockIdx.x * kRows;
  const int chunks = K / 64;
  const unsigned row_bytes = static_cast<unsigned>(K) / 2u;
  const bool dq = sc.dq_codes != nullptr;
  const unsigned blk = static_cast<unsigned>(block);
  unsigned char* ring = smem + kLutBytes + warp * kStages * kStageBytes;
  const int my_chunks = warp < chunks ? (chunks - warp + W - 1) / W : 0;

  // This lane's copies: code pieces lane and lane + 32 (row p/2, half p%2), and the scale of row `lane`.
  const int p0 = lane, p1 = lane + 32;
  const int r0 = p0 >> 1, r1 = p1 >> 1;
  const std::uint8_t* src0 = codes + static_cast<unsigned>(min(n0 + r0, N - 1)) * row_bytes + (p0 & 1) * 16;
  const std::uint8_t* src1 = codes + static_cast<unsigned>(min(n0 + r1, N - 1)) * row_bytes + (p1 & 1) * 16;
  const int sz0 = n0 + r0 < N ? 16 : 0, sz1 = n0 + r1 < N ? 16 : 0;
  const unsigned dst0 = r0 * 32 + (p0 & 1) * 16, dst1 = r1 * 32 + (p1 & 1) * 16;
  const unsigned srow = static_cast<unsigned>(min(n0 + lane, N - 1));
  const int ssz = n0 + lane < N ? 4 : 0;
  const unsigned e_row = srow * static_cast<unsigned>(K);

  auto issue = [&](int i) {
    if (i < my_chunks) {
      const unsigned c = static_cast<unsigned>(warp + i * W);
      unsigned char* st = ring + (i % kStages) * kStageBytes;
      cp_async16(st + dst0, src0 + c * 32u, sz0);
      cp_async16(st + dst1, src1 + c * 32u, sz1);
      const unsigned e = e_row + c * 64u;
      const unsigned b = block_shift >= 0 ? e >> block_shift : e / blk;
      auto* sw = reinterpret_cast<std::uint32_t*>(st + 1024);
      if (dq) {
        cp_async4(sw + lane, sc.dq_codes + (b & ~3u), ssz);
        cp_async4(sw + 32 + lane, sc.dq_absmax + (b >> 8), ssz);
      } else {
        cp_async4(sw + lane, sc.absmax + b, ssz);
      }
    }
    cp_async_commit();
  };
#pragma unroll
  for (int i = 0; i < kStages - 1; ++i) issue(i);

  if (tid < 16) values[tid] = t.value[tid];
  if (dq)
    for (int i = tid; i < 256; i += W * 32) dyn8[i] = dq_table.v[i];
  __syncthreads();
  for (int f = tid; f < 256 * 32; f += W * 32) {
    const int b = f >> 5;
    lut[f] = pack2<ActT>(values[b >> 4], values[b & 15]);
  }
  __syncthreads();
  const std::uint32_t* lut_lane = lut + lane;

  unsigned e_rows[2][2];
#pragma unroll
  for (int r = 0; r < 2; ++r)
#pragma unroll
    for (int h = 0; h < 2; ++h)
      e_rows[r][h] = static_cast<unsigned>(min(n0 + r * 16 + g + 8 * h, N - 1)) * static_cast<unsigned>(K);
  const ActT* xq = x + static_cast<std::size_t>(g) * K + q * 16;

  float acc[2][MT][4] = {};

  for (int i = 0; i < my_chunks; ++i) {
    cp_async_wait<kStages - 2>();
    __syncwarp();
    issue(i + kStages - 1);
    const unsigned c = static_cast<unsigned>(warp + i * W);
    const unsigned char* st = ring + (i % kStages) * kStageBytes;
    const auto* sw = reinterpret_cast<const std::uint32_t*>(st + 1024);
    float s[2][2];
    uint2 wv[2][2];
#pragma unroll
    for (int r = 0; r < 2; ++r)
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        const int row = r * 16 + g + 8 * h;
        wv[r][h] = *reinterpret_cast<const uint2*>(st + row * 32 + q * 8);
        s[r][h] = __uint_as_float(sw[row]);
      }
    if (dq) {
#pragma unroll
      for (int r = 0; r < 2; ++r)
#pragma unroll
        for (int h = 0; h < 2; ++h) {
          const int row = r * 16 + g + 8 * h;
          const unsigned e = e_rows[r][h] + c * 64u;
          const unsigned b = block_shift >= 0 ? e >> block_shift : e / blk;
          s[r][h] = dq_scale(dyn8, sw[row], b, __uint_as_float(sw[32 + row]), sc.dq_offset);
        }
    }
    std::uint32_t a[2][4][4];
    a_fragments(a, wv, [&](std::uint32_t w, unsigned byte, int, int) { return lut_byte(lut_lane, w, byte); });
    __syncwarp();  // every lane has read this stage; the next issue may overwrite it
#pragma unroll
    for (int j = 0; j < MT; ++j) {
      uint4 xb0 = make_uint4(0, 0, 0, 0), xb1 = make_uint4(0, 0, 0, 0);
      if (j * 8 + g < M) {
        const uint4* p = reinterpret_cast<const uint4*>(xq + static_cast<std::size_t>(j * 8) * K + c * 64u);
        xb0 = __ldg(p);
        xb1 = __ldg(p + 1);
      }
      const std::uint32_t b[8] = {xb0.x, xb0.y, xb0.z, xb0.w, xb1.x, xb1.y, xb1.z, xb1.w};
#pragma unroll
      for (int r = 0; r < 2; ++r) {
        float cf[4] = {0.0f, 0.0f, 0.0f, 0.0f};
#pragma unroll
        for (int tt = 0; tt < 4; ++tt) mma16816<ActT>(cf, a[r][tt], b[2 * tt], b[2 * tt + 1]);
        acc[r][j][0] = fmaf(cf[0], s[r][0], acc[r][j][0]);
        acc[r][j][1] = fmaf(cf[1], s[r][0], acc[r][j][1]);
        acc[r][j][2] = fmaf(cf[2], s[r][1], acc[r][j][2]);
        acc[r][j][3] = fmaf(cf[3], s[r][1], acc[r][j][3]);
      }
    }
  }
  cp_async_wait<0>();

  // Cross-warp reduction through shared memory (the table is no longer needed).
  __syncthreads();
  static_assert(W * MT * 8 * kRows <= 256 * 32, "reduction buffer exceeds the table");
  reduce_and_store<ActT, MT, W, kRows>(reinterpret_cast<float*>(lut), acc, tid >> 5, 0, tid, W * 32, M, N, n0, y);
}

template <class ActT, int MT, int W, int S>
int launch_pipe(const ActT* x, int M, const Weight4& w, int shift, const Dyn8Table& dq, ActT* y, cudaStream_t st) {
  constexpr int smem = pipe_smem_bytes<W, S>();
  static const int attr_rc = [] {
    const auto k = gemm4_pipe_kernel<ActT, MT, W, S>;
    const cudaError_t e = cudaFuncSetAttribute(k, cudaFuncAttributeMaxDynamicSharedMemorySize, smem);
    return static_cast<int>(e != cudaSuccess ? e : cudaFuncSetAttribute(k, cudaFuncAttributePreferredSharedMemoryCarveout, 100));
  }();
  if (attr_rc != 0) return attr_rc;
  const unsigned grid = static_cast<unsigned>((w.N + kRows - 1) / kRows);
  gemm4_pipe_kernel<ActT, MT, W, S><<<grid, W * 32, smem, st>>>(x, M, w.codes, w.scales, w.block, shift,
                                                               static_cast<int>(w.N), static_cast<int>(w.K), w.table,
                                                               dq, y);
  return static_cast<int>(cudaGetLastError());
}

// ---------------------------------------------------------------- tiled version (M ≤ 64; outside the TMA domain)
//
// The kernels above give each CTA 32 rows and split K over its warps, so
// every CTA reads all of x: N/32 · M·K·2 bytes from L2 (256 MB at 8192²,
// M = 64, against 32 MB of weights), through L1 with nothing else in flight.
// Here the warps of a CTA share x instead. A CTA owns 32·kRG rows; its
// kRG·kKG warps are kRG row groups (32 rows each) × kKG K groups. One stage
// of the CTA-wide cp.async ring holds, for each K group, its next 64-element
// chunk: x for all tokens (MT·8 rows of 128 bytes, 16-byte pieces swizzled
// by token so that a quarter warp's reads never share a bank), the CTA's
// codes (32 bytes per row) and their block scales. Each x fragment read from
// shared memory now serves kRG·2 row tiles, and L2 sends x N/(32·kRG) times.
// Fragments and k-slot order are those of the kernels above; the weight
// enters the mma already scaled (see below), so each accumulator chain runs
// across chunks and a warp has 2·MT of them in flight (the kernels above
// restart a 4-mma chain per chunk and scale it with FFMAs).
// Measured (H200, M = 64): 8192² 57.7 µs against 88.8 for the registers
// kernel; a version with one k16 step per warp (16 warps, 4× less x per
// stage) was slower (64.7 µs).
template <int MT, int kRG, int kKG>
struct TiledShape {
  static constexpr int kRows = 32 * kRG, kThreads = kRG * kKG * 32, kTok = MT * 8;
  // One stage: x [kKG][kTok][128 B] (swizzled), codes [kKG][kRows][32 B], scale words [kKG][2][kRows].
  static constexpr int kXBytes = kKG * kTok * 128;
  static constexpr int kWBytes = kKG * kRows * 32;
  static constexpr int kStageBytes = kXBytes + kWBytes + kKG * 2 * kRows * 4;
  static constexpr int kReduceBytes = kKG * kTok * kRows * 4;
  static constexpr int kXPerThread = kKG * kTok * 8 / kThreads;  // 16-byte pieces of x per thread and stage
  static constexpr int kXRowStep = kThreads / 8;                  // x rows (of 128 B) between a thread's pieces
  static_assert(kKG * kTok * 8 % kThreads == 0 && (kTok & (kTok - 1)) == 0, "x pieces per thread");
};

// The tiled kernel's table: per byte value the two fp32 values (high nibble
// first), one 8-byte copy per lane (a warp's LDS.64 reads 256 contiguous bytes).
constexpr int kPairLutBytes = 256 * 32 * 8;

template <int MT, int kRG, int kKG, int kStages>
constexpr int tiled_smem_bytes() {
  using S = TiledShape<MT, kRG, kKG>;
  return kPairLutBytes + (kStages * S::kStageBytes > S::kReduceBytes ? kStages * S::kStageBytes : S::kReduceBytes);
}

template <class ActT>
__device__ __forceinline__ std::uint32_t scaled_pair(const float2* lut_lane, std::uint32_t w, unsigned byte, float s) {
  const float2 v = lut_lane[__byte_perm(w, 0u, 0x4440u | byte) * 32u];
  return pack2<ActT>(v.x * s, v.y * s);
}

template <class ActT, int MT, int kRG, int kKG, int kStages>
__global__ void __launch_bounds__(kRG * kKG * 32) gemm4_tiled_kernel(const ActT* __restrict__ x, int M,
                                                                    const std::uint8_t* __restrict__ codes,
                                                                    BlockScales sc, std::size_t block,
                                                                    int block_shift, int N, int K, Table16 t,
                                                                    Dyn8Table dq_table, ActT* __restrict__ y) {
  using S = TiledShape<MT, kRG, kKG>;
  constexpr int kThreads = S::kThreads, kTok = S::kTok;
  extern __shared__ __align__(16) unsigned char smem[];
  float2* lut = reinterpret_cast<float2*>(smem);
  unsigned char* ring = smem + kPairLutBytes;
  __shared__ float values[16];
  __shared__ float dyn8[256];
  const int tid = threadIdx.x;
  const int lane = tid & 31, warp = tid >> 5, g = lane >> 2, q = lane & 3;
  const int rg = warp % kRG, kg = warp / kRG;
  const int n0 = blockIdx.x * S::kRows;
  const int chunks = K / 64, supers = (chunks + kKG - 1) / kKG;
  const unsigned row_bytes = static_cast<unsigned>(K) / 2u;
  const bool dq = sc.dq_codes != nullptr;
  const unsigned blk = static_cast<unsigned>(block);

  // This thread's x pieces: piece tid % 8 of x rows R = tid / 8 + k·kXRowStep (R = group · kTok + token);
  // the destination moves by a constant, the source by the chunk.
  const int piece = tid & 7, r0 = tid >> 3;
  const unsigned x_dst0 = r0 * 128 + ((piece ^ (r0 & 7)) << 4);  // kXRowStep is a multiple of 8
  static_assert(kThreads == kKG * S::kRows, "one scale word and two code pieces per thread and stage");
  auto issue = [&](int i) {
    if (i < supers) {
      unsigned char* st = ring + (i % kStages) * S::kStageBytes;
#pragma unroll
      for (int k = 0; k < S::kXPerThread; ++k) {
        const int R = r0 + k * S::kXRowStep, tok = R & (kTok - 1), grp = R / kTok;
        const int c = i * kKG + grp;
        const bool ok = tok < M && c < chunks;
        const ActT* src = x + (ok ? static_cast<unsigned>(tok * K + c * 64 + piece * 8) : 0u);
        cp_async16(st + x_dst0 + k * S::kXRowStep * 128, src, ok ? 16 : 0);
      }
#pragma unroll
      for (int k = 0; k < 2; ++k) {  // codes: two 16-byte halves per row, two per thread
        const int p = tid + k * kThreads, grp = p / (S::kRows * 2), row = (p / 2) % S::kRows, half = p % 2;
        const int c = i * kKG + grp;
        const bool ok = n0 + row < N && c < chunks;
        const std::uint8_t* src = codes + (ok ? (n0 + row) * row_bytes + c * 32u + half * 16u : 0u);
        cp_async16(st + S::kXBytes + p * 16, src, ok ? 16 : 0);
      }
      if (tid < kKG * S::kRows) {  // scales: the block of (row, chunk)
        const int grp = tid / S::kRows, row = tid % S::kRows;
        const int c = i * kKG + grp;
        const bool ok = n0 + row < N && c < chunks;
        const unsigned e = static_cast<unsigned>(min(n0 + row, N - 1)) * static_cast<unsigned>(K) +
                           static_cast<unsigned>(min(c, chunks - 1)) * 64u;
        const unsigned b = block_shift >= 0 ? e >> block_shift : e / blk;
        auto* sw = reinterpret_cast<std::uint32_t*>(st + S::kXBytes + S::kWBytes) + grp * 2 * S::kRows + row;
        if (dq) {
          cp_async4(sw, sc.dq_codes + (b & ~3u), ok ? 4 : 0);
          cp_async4(sw + S::kRows, sc.dq_absmax + (b >> 8), ok ? 4 : 0);
        } else {
          cp_async4(sw, sc.absmax + b, ok ? 4 : 0);
        }
      }
    }
    cp_async_commit();
  };
#pragma unroll
  for (int i = 0; i < kStages - 1; ++i) issue(i);

  if (tid < 16) values[tid] = t.value[tid];
  if (dq)
    for (int i = tid; i < 256; i += kThreads) dyn8[i] = dq_table.v[i];
  __syncthreads();
  for (int f = tid; f < 256 * 32; f += kThreads) {
    const int b = f >> 5;
    lut[f] = make_float2(values[b >> 4], values[b & 15]);
  }
  const float2* lut_lane = lut + lane;

  float acc[2][MT][4] = {};

  for (int i = 0; i < supers; ++i) {
    cp_async_wait<kStages - 2>();
    __syncthreads();  // stage i has landed for every thread; stage i − 1 is free again
    issue(i + kStages - 1);
    const unsigned c = static_cast<unsigned>(i * kKG + kg);
    if (c >= static_cast<unsigned>(chunks)) continue;
    const unsigned char* st = ring + (i % kStages) * S::kStageBytes;
    const unsigned char* xg = st + kg * kTok * 128;
    const unsigned char* wq = st + S::kXBytes + kg * S::kRows * 32;
    const auto* sw = reinterpret_cast<const std::uint32_t*>(st + S::kXBytes + S::kWBytes) + kg * 2 * S::kRows;
    float s[2][2];
    uint2 wv[2][2];
#pragma unroll
    for (int r = 0; r < 2; ++r)
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        const int row = rg * 32 + r * 16 + g + 8 * h;
        wv[r][h] = *reinterpret_cast<const uint2*>(wq + row * 32 + q * 8);
        float v = __uint_as_float(sw[row]);
        if (dq) {
          const unsigned e = static_cast<unsigned>(min(n0 + row, N - 1)) * static_cast<unsigned>(K) + c * 64u;
          const unsigned b = block_shift >= 0 ? e >> block_shift : e / blk;
          v = dq_scale(dyn8, sw[row], b, __uint_as_float(sw[S::kRows + row]), sc.dq_offset);
        }
        s[r][h] = v;
      }
    // The weights dequantized as dequantize_4bit does (fl32(value · s), rounded
    // once to the activation type), so the mma accumulates across chunks: 2·MT
    // independent chains per warp instead of a 4-deep chain per chunk and tile.
    std::uint32_t a[2][4][4];
    a_fragments(a, wv, [&](std::uint32_t w, unsigned byte, int r, int h) {
      return scaled_pair<ActT>(lut_lane, w, byte, s[r][h]);
    });
#pragma unroll
    for (int j = 0; j < MT; ++j) {  // tiles past the last token hold zeros
      const unsigned char* xr = xg + (j * 8 + g) * 128;
      const uint4 xb0 = *reinterpret_cast<const uint4*>(xr + (((2 * q) ^ g) * 16));
      const uint4 xb1 = *reinterpret_cast<const uint4*>(xr + (((2 * q + 1) ^ g) * 16));
      const std::uint32_t b[8] = {xb0.x, xb0.y, xb0.z, xb0.w, xb1.x, xb1.y, xb1.z, xb1.w};
#pragma unroll
      for (int tt = 0; tt < 4; ++tt)
#pragma unroll
        for (int r = 0; r < 2; ++r) mma16816<ActT>(acc[r][j], a[r][tt], b[2 * tt], b[2 * tt + 1]);
    }
  }
  cp_async_wait<0>();
  __syncthreads();

  // The K groups' partial sums meet in shared memory (the ring is free), added in group order.
  reduce_and_store<ActT, MT, kKG, S::kRows>(reinterpret_cast<float*>(ring), acc, kg, rg * 32, tid, kThreads, M, N,
                                            n0, y);
}

constexpr std::size_t tiled_ctas(std::size_t n, int row_groups) { return (n + 32 * row_groups - 1) / (32 * row_groups); }

template <class ActT, int MT, int kRG, int kKG, int kStages>
int launch_tiled(const ActT* x, int M, const Weight4& w, int shift, const Dyn8Table& dq, ActT* y, cudaStream_t st) {
  constexpr int smem = tiled_smem_bytes<MT, kRG, kKG, kStages>();
  const auto kernel = gemm4_tiled_kernel<ActT, MT, kRG, kKG, kStages>;
  static const int attr_rc =
      static_cast<int>(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, smem));
  if (attr_rc != 0) return attr_rc;
  constexpr int rows = TiledShape<MT, kRG, kKG>::kRows;
  const unsigned grid = static_cast<unsigned>((w.N + rows - 1) / rows);
  kernel<<<grid, TiledShape<MT, kRG, kKG>::kThreads, smem, st>>>(x, M, w.codes, w.scales, w.block, shift, static_cast<int>(w.N),
                                             static_cast<int>(w.K), w.table, dq, y);
  return static_cast<int>(cudaGetLastError());
}

// ---------------------------------------------------------------- M = 1 on the CUDA cores
//
// One token: m16n8k16 would leave 7 of its 8 token columns empty, so the
// decode GEMV runs on the FP32 units instead. A warp owns kCoreRows rows and
// all of K; per 1024-element step each lane loads 16 code bytes of each row
// (32 weights, all in one block) and the 32 matching x values (an L1 hit:
// every warp reads the same x), looks each byte up in the 256-entry table of
// value pairs (rounded to the activation type) and accumulates in fp32; each lane's 32-product sum is multiplied by
// its block scale, as the chunk sums are above. The weights and scales of the
// next kCoreAhead steps are in flight during a step's arithmetic. A warp's
// lanes meet in shuffles: no shared-memory reduction. bf16 or fp16 (an fp16
// pair becomes fp32 through HADD2.F32, not the conversion unit).
//
// The table has a 256-byte row per byte value, lane l's copy of the pair at
// byte 4l (the upper half unused): the address byte · 256 + 4l is one PRMT of
// the code word and a register holding 4l, and no two lanes share a bank.
// Per code byte: PRMT, LDS, 2 unpacks, 2 FFMA.
constexpr int kCoreRows = 4;
constexpr int kCoreWarps = 8;

struct CoreStep {
  uint4 w[kCoreRows];  // 16 code bytes per row
  float s[kCoreRows];  // block scales (plain); dq: the 256-block absmax
  std::uint32_t dq_code[kCoreRows];
};

// Two 16-bit values of a word (the lower address in the low half) as fp32.
__device__ __forceinline__ void unpack2(std::uint32_t w, __nv_bfloat16*, float& lo, float& hi) {
  lo = detail::bf16_lo(w);
  hi = detail::bf16_hi(w);
}
__device__ __forceinline__ void unpack2(std::uint32_t w, __half*, float& lo, float& hi) {
  const float2 f = __half22float2(*reinterpret_cast<const __half2*>(&w));  // two HADD2.F32
  lo = f.x;
  hi = f.y;
}

// kSlices > 1 (small grids): the warps of a CTA split K as well, kSlices of
// them per group of kCoreRows rows, taking every kSlices-th step, and meet in
// shared memory — more warps in flight and a shorter chain of steps each.
template <class ActT, int kCoreAhead, int kSlices>
__global__ void __launch_bounds__(kCoreWarps * 32, kCoreAhead == 1 ? 3 : 2) gemv4_cores_kernel(
    const ActT* __restrict__ x, const std::uint8_t* __restrict__ codes, BlockScales sc, std::size_t block,
    int block_shift, int N, int K, Table16 t, Dyn8Table dq_table, ActT* __restrict__ y) {
  static_assert(kCoreWarps % kSlices == 0, "whole row groups per CTA");
  constexpr int kGroups = kCoreWarps / kSlices;
  extern __shared__ __align__(16) unsigned char core_smem[];
  __shared__ float values[16];
  __shared__ float dyn8[256];
  __shared__ float partial[kSlices][kGroups * kCoreRows];
  const int tid = threadIdx.x, lane = tid & 31, slice = (tid >> 5) % kSlices, group = (tid >> 5) / kSlices;
  const bool dq = sc.dq_codes != nullptr;
  const unsigned blk = static_cast<unsigned>(block);
  const int cta_row0 = blockIdx.x * kGroups * kCoreRows;
  const int row0 = cta_row0 + group * kCoreRows;
  const int steps = ((K + 1023) / 1024 - slice + kSlices - 1) / kSlices;  // this warp's: slice, slice + kSlices, …
  const unsigned row_bytes = static_cast<unsigned>(K) / 2u;

  // This warp's step s: elements k0 … k0 + 31 of its rows for this lane (none past K).
  auto load = [&](int step, CoreStep& d) {
    const unsigned k0 = static_cast<unsigned>(slice + step * kSlices) * 1024u + lane * 32u;
    const bool in = k0 < static_cast<unsigned>(K);
#pragma unroll
    for (int r = 0; r < kCoreRows; ++r) {
      const int row = row0 + r;
      const bool ok = in && row < N;
      d.w[r] = ok ? __ldcs(reinterpret_cast<const uint4*>(codes + static_cast<unsigned>(row) * row_bytes + k0 / 2u))
                  : make_uint4(0u, 0u, 0u, 0u);
      const unsigned e = static_cast<unsigned>(ok ? row : 0) * static_cast<unsigned>(K) + (in ? k0 : 0u);
      const unsigned b = block_shift >= 0 ? e >> block_shift : e / blk;
      if (dq) {
        d.dq_code[r] = ok ? sc.dq_codes[b] : 0u;
        d.s[r] = ok ? sc.dq_absmax[b >> 8] : 0.0f;
      } else {
        d.s[r] = ok ? sc.absmax[b] : 0.0f;
      }
    }
  };
  CoreStep buf[kCoreAhead + 1];
  if (row0 < N)
#pragma unroll
    for (int i = 0; i < kCoreAhead; ++i)
      if (i < steps) load(i, buf[i]);

  if (tid < 16) values[tid] = t.value[tid];
  if (dq)
    for (int i = tid; i < 256; i += kCoreWarps * 32) dyn8[i] = dq_table.v[i];
  __syncthreads();
  build_row_table<ActT>(core_smem, values, tid, kCoreWarps * 32);
  __syncthreads();
  if (kSlices == 1 && row0 >= N) return;

  const std::uint32_t lane4 = lane * 4u;  // PRMT source: byte 0 = 4·lane, byte 1 = 0
  float acc[kCoreRows] = {};
  auto compute = [&](int step, const CoreStep& d) {
    const unsigned k0 = static_cast<unsigned>(slice + step * kSlices) * 1024u + lane * 32u;
    if (k0 >= static_cast<unsigned>(K) || row0 >= N) return;  // the last step of a K that is not a multiple of 1024
    uint4 xv[4];
    const uint4* xp = reinterpret_cast<const uint4*>(x + k0);
#pragma unroll
    for (int i = 0; i < 4; ++i) xv[i] = __ldg(xp + i);
    const std::uint32_t xw[16] = {xv[0].x, xv[0].y, xv[0].z, xv[0].w, xv[1].x, xv[1].y, xv[1].z, xv[1].w,
                                  xv[2].x, xv[2].y, xv[2].z, xv[2].w, xv[3].x, xv[3].y, xv[3].z, xv[3].w};
    float part[kCoreRows] = {};
#pragma unroll
    for (int j = 0; j < 16; ++j) {  // code byte j: elements 2j (high nibble) and 2j + 1
      float x0, x1;
      unpack2(xw[j], y, x0, x1);
#pragma unroll
      for (int r = 0; r < kCoreRows; ++r) {
        const uint4& w = d.w[r];
        const std::uint32_t word = j < 4 ? w.x : j < 8 ? w.y : j < 12 ? w.z : w.w;
        const std::uint32_t pair = row_table_pair(core_smem, word, lane4, j & 3u);
        float v0, v1;
        unpack2(pair, y, v0, v1);
        part[r] = fmaf(v0, x0, part[r]);
        part[r] = fmaf(v1, x1, part[r]);
      }
    }
#pragma unroll
    for (int r = 0; r < kCoreRows; ++r) {
      const float s = dq ? __fadd_rn(__fmul_rn(dyn8[d.dq_code[r]], d.s[r]), sc.dq_offset) : d.s[r];
      acc[r] = fmaf(part[r], s, acc[r]);
    }
  };
  // A ring of kCoreAhead + 1 buffers with compile-time indices (the loop is
  // unrolled over the ring), so no registers are copied between steps.
  for (int step = 0; step < steps; step += kCoreAhead + 1) {
#pragma unroll
    for (int u = 0; u <= kCoreAhead; ++u) {
      if (step + u >= steps) break;
      if (step + u + kCoreAhead < steps) load(step + u + kCoreAhead, buf[(u + kCoreAhead) % (kCoreAhead + 1)]);
      compute(step + u, buf[u]);
    }
  }
#pragma unroll
  for (int r = 0; r < kCoreRows; ++r)
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) acc[r] += __shfl_xor_sync(0xffffffffu, acc[r], o);
  float v = acc[0];
#pragma unroll
  for (int r = 1; r < kCoreRows; ++r)
    if (lane == r) v = acc[r];
  if constexpr (kSlices == 1) {
    if (lane < kCoreRows && row0 + lane < N) store_act<ActT>(y + row0 + lane, v);
  } else {
    if (lane < kCoreRows) partial[slice][group * kCoreRows + lane] = v;
    __syncthreads();
    if (tid < kGroups * kCoreRows && cta_row0 + tid < N) {
      float sum = partial[0][tid];
#pragma unroll
      for (int i = 1; i < kSlices; ++i) sum += partial[i][tid];
      store_act<ActT>(y + cta_row0 + tid, sum);
    }
  }
}

template <class ActT, int kAhead, int kSlices>
int launch_cores_t(const ActT* x, const Weight4& w, int shift, const Dyn8Table& dq, ActT* y, cudaStream_t st) {
  const auto kernel = gemv4_cores_kernel<ActT, kAhead, kSlices>;
  static const int attr_rc =
      static_cast<int>(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, kCoreLutBytes));
  if (attr_rc != 0) return attr_rc;
  constexpr int rows_per_cta = kCoreWarps / kSlices * kCoreRows;
  const unsigned grid = static_cast<unsigned>((w.N + rows_per_cta - 1) / rows_per_cta);
  kernel<<<grid, kCoreWarps * 32, kCoreLutBytes, st>>>(x, w.codes, w.scales, w.block, shift, static_cast<int>(w.N),
                                                      static_cast<int>(w.K), w.table, dq, y);
  return static_cast<int>(cudaGetLastError());
}
// By the number of 32-row CTAs per SM: more than 2 → one step ahead (3 CTAs
// of 80 registers per SM); 2 → two steps ahead (2 CTAs of 122 registers);
// at most 1 → two steps ahead with K split over 2 warps per row group (twice
// the CTAs, half the chain of steps). Each the fastest tried at its LLM
// shapes (H200; kernels/NOTES.md). A table of fp32 values (two LDS per byte,
// no unpacking) was 10–20 % slower.
template <class ActT>
int launch_cores(const ActT* x, const Weight4& w, int shift, const Dyn8Table& dq, ActT* y, cudaStream_t st) {
  const std::size_t ctas = (w.N + kCoreRows * kCoreWarps - 1) / (kCoreRows * kCoreWarps), sms = detail::sm_count();
  if (ctas <= sms) return launch_cores_t<ActT, 2, 2>(x, w, shift, dq, y, st);
  if (ctas <= 2 * sms) return launch_cores_t<ActT, 2, 1>(x, w, shift, dq, y, st);
  return launch_cores_t<ActT, 1, 1>(x, w, shift, dq, y, st);
}

// ---------------------------------------------------------------- TMA-fed (windows, token columns, 32-token pieces)
//
// The cores kernel above issues ~5 instructions per weight (lookup, unpack,
// FFMA) and is issue-bound at twice the weight-bytes time; the pipelined
// kernels spend the shared-memory pipe on cp.async copies. This kernel feeds
// mma.sync through TMA and has two ways of filling the token columns.
//
// Windows (M ≤ 4): the token columns that few tokens would leave empty carry
// K windows instead. Per 256-element step lane (g, q) holds 32 code bytes of
// rows g and g + 8 of a 16-row tile — window q, elements 64q … 64q + 63 of the
// step, one block of 64 — and k16 step tt takes its bytes 2tt, 2tt + 1 (the
// k-slot order of the kernels above, within the window). Column n of n8 tile
// j belongs to token 2j + n / 4 and window n % 4: it holds that token's x on
// the window's k-slots and zero elsewhere (lanes with g % 4 == q hold x), so
// C[row, n] is row's dot product with one token over one window. Windows
// 2q′ % 4, + 1 of token 2j + q′ / 2 land in lane q′'s c0, c1 (row g) and c2,
// c3 (row g + 8), each multiplied by its block scale as the chunk sums are
// above. Per 256 weights one mma per 2 tokens.
//
// Token columns (M = 5 … 32): column n of n8 tile j is token 8j + n, as in
// the kernels above; per 64-element block lane q takes 8 code bytes (the
// k-slot order of a_fragments), each block's 4-mma chain is scaled once.
//
// Both: per code byte PRMT, LDS (the cores kernel's 256-byte-row table),
// shared by all tokens. The L1 / shared-memory data pipe is the limit: the
// table lookups alone take about half of it at the weight-bytes rate, and
// loads through the LSU cost a wavefront per ~64 bytes or per distinct row
// (ncu). So the codes (a 32-row × 128-byte box) and x (4 blocks of 64 values
// per token) arrive by TMA tensor copies, which use no LSU wavefronts,
// 128-byte swizzled so that the reads never share a bank; the block scales
// take one 16-byte cp.async per row. A warp takes two tiles (32 rows) per
// step, so one x fragment serves both, through its own ring of stages. CTAs
// are persistent (row pairs blockIdx.x, + gridDim.x, …), the warps split K
// (step w, w + kW, …; every warp runs the same number of steps per pair, past
// K none) and meet once per pair in shared memory. Domain: block 64,
// K % 256 == 0 (the LLM shapes); outside it the cores kernel (M = 1),
// pipelined16 (M ≤ 4), pipelined (M ≤ 16) or registers.
template <int kTok>
struct TmaStage {
  static constexpr int kCodeBytes = 32 * 128, kXBytes = kTok * 4 * 128;
  // Boxes start at 1024-byte boundaries (the 128-byte swizzle's period). The block scales live in the
  // table's gaps (below), so that 4 warps × 2 stages of 32 tokens fit.
  static constexpr int kBytes = (kCodeBytes + kXBytes + 1023) / 1024 * 1024;
};
template <int kTok, int kW, int kStages>
constexpr int tma_smem_bytes() {
  return kCoreLutBytes + 1024 /* alignment */ + kW * kStages * TmaStage<kTok>::kBytes;
}
// The table's rows use bytes 0–127 (lane copies); bytes 128–255 of row h ("gap h") hold the kernel's small
// arrays, so that 16 warps × 2 stages (or 4 × 2 of 32 tokens) fit beside the table: values (gap 0), the dyn8
// table (gaps 1–8), the stage barriers (gaps 9–12, 32 bytes per warp), each stage's block scales (4 gaps:
// [32 rows][4 blocks] floats, 8 rows per gap; dq: the rows' code words, then their absmax) and the partial
// sums (32 floats per token, double-buffered): every warp's where they fit, else those of warps 1 … kW − 1.
template <int kTok, int kW, int kStages>
struct TmaGaps {
  static constexpr int kScales = 13, kPartials = kScales + 4 * kW * kStages;
  static constexpr bool kAllWarps = kPartials + 2 * kW * kTok <= 256;  // else warps 1 … kW − 1 only
  static_assert(kPartials + 2 * (kW - 1) * kTok <= 256, "the gaps' layout");
  static constexpr int scales(int warp, int stage) { return kScales + 4 * (warp * kStages + stage); }
  static constexpr int partial(int parity, int warp, int tok) {
    return kAllWarps ? kPartials + (parity * kW + warp) * kTok + tok
                     : kPartials + (parity * (kW - 1) + warp - 1) * kTok + tok;
  }
};


template <class ActT, int kTok, int kW, int kStages>
__global__ void __launch_bounds__(kW * 32, 1) gemm4_tma_kernel(
    const __grid_constant__ CUtensorMap codes_map, const __grid_constant__ CUtensorMap x_map, int M, BlockScales sc,
    int N, int K, Table16 t, Dyn8Table dq_table, ActT* __restrict__ y) {
  using St = TmaStage<kTok>;
  constexpr bool kWindows = kTok <= 4;                 // else token columns
  constexpr int kNT = kWindows ? (kTok + 1) / 2 : kTok / 8;  // n8 tiles: 2 tokens × 4 windows, or 8 tokens
  static_assert(kTok == 1 || kTok == 2 || kTok == 4 || kTok == 8 || kTok == 16 || kTok == 32, "tokens per launch");
  static_assert(kW <= 16 && kStages <= 4, "the barriers' gaps");
  using Gaps = TmaGaps<kTok, kW, kStages>;
  constexpr bool kAllWarpsReduce = Gaps::kAllWarps;
  extern __shared__ __align__(16) unsigned char tma_smem[];
  unsigned char* lut = tma_smem;
  float* values = reinterpret_cast<float*>(tma_gap(lut, 0));
  const GapDyn8 dyn8{lut};
  auto partial = [&](int parity, int w, int tok) {
    return reinterpret_cast<float*>(tma_gap(lut, Gaps::partial(parity, w, tok)));
  };
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5, g = lane >> 2, q = lane & 3;
  const bool dq = sc.dq_codes != nullptr;
  const int S = (K / 256 + kW - 1) / kW, pairs = (N + 31) / 32;
  const int my_pairs = static_cast<int>(blockIdx.x) < pairs ? (pairs - blockIdx.x + gridDim.x - 1) / gridDim.x : 0;
  const int total = my_pairs * S;
  unsigned char* ring = tma_smem + ((smem_addr(tma_smem) + kCoreLutBytes + 1023u) & ~1023u) - smem_addr(tma_smem) +
                        warp * kStages * St::kBytes;
  auto* bar = reinterpret_cast<std::uint64_t*>(tma_gap(lut, 9 + warp / 4) + 32 * (warp % 4));
  if (lane < kStages) mbar_init(&bar[lane], 1);
  asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
  __syncwarp();

  // Step i of this warp: row pair i / S, elements (warp + (i % S)·kW)·256 …. Lane 0 arms the stage's
  // barrier and starts the two TMA copies (rows past N, elements past K, tokens past M: zeros); each
  // lane copies the block scales of row lane (zeros past N).
  auto step_r0 = [&](int i) { return (blockIdx.x + (i / S) * gridDim.x) * 32; };
  auto step_k0 = [&](int i) { return (warp + (i % S) * kW) * 256; };
  auto issue_x = [&](int i) {  // lane 0; the stage's barrier counts x's bytes already
    const int k0 = step_k0(i);
    std::uint64_t* b = &bar[i % kStages];
    unsigned char* st = ring + (i % kStages) * St::kBytes;
    if (k0 < K) {
      if constexpr (kWindows) tma_3d(st + St::kCodeBytes, &x_map, 0, k0 / 64, 0, b);  // [token][window]
      else tma_3d(st + St::kCodeBytes, &x_map, 0, 0, k0 / 64, b);                     // [block][token]
    }
  };
  auto issue = [&](int i, bool with_x) {
    if (i < total) {
      const int r0 = step_r0(i), k0 = step_k0(i);
      unsigned char* st = ring + (i % kStages) * St::kBytes;
      std::uint64_t* b = &bar[i % kStages];
      const bool kin = k0 < K;
      if (lane == 0) {
        mbar_arrive_expect_tx(b, kin ? St::kCodeBytes + St::kXBytes : 0);
        if (kin) tma_2d(st, &codes_map, k0 / 2, r0, b);
        if (with_x) issue_x(i);
      }
      const int row = r0 + lane;
      const bool in = kin && row < N;
      const unsigned bk = in ? (static_cast<unsigned>(row) * static_cast<unsigned>(K) + k0) / 64u : 0u;
      const int sg = Gaps::scales(warp, i % kStages);
      if (dq) {  // the 4 blocks' codes: one word (bk % 4 == 0)
        cp_async4(tma_gap(lut, sg) + 4 * lane, sc.dq_codes + bk, in ? 4 : 0);
        cp_async4(tma_gap(lut, sg + 1) + 4 * lane, sc.dq_absmax + (bk >> 8), in ? 4 : 0);
      } else {
        cp_async16(tma_gap(lut, sg + lane / 8) + 16 * (lane % 8), sc.absmax + bk, in ? 16 : 0);
      }
    }
    cp_async_commit();
  };
  // Launched early (programmatic dependent launch): the weights, their scales and the table do not depend
  // on the previous kernel, x does — its first copies wait for that kernel to finish.
  detail::allow_next_grid_to_start();
#pragma unroll
  for (int i = 0; i < kStages - 1; ++i) issue(i, false);

  if (tid < 16) values[tid] = t.value[tid];
  if (dq)
    for (int i = tid; i < 256; i += kW * 32)
      *reinterpret_cast<float*>(tma_gap(lut, 1 + (i >> 5)) + 4 * (i & 31)) = dq_table.v[i];
  __syncthreads();
  build_row_table<ActT>(lut, values, tid, kW * 32);  // the cores kernel's table
  __syncthreads();
  detail::wait_for_previous_grid();
  if (lane == 0)
    for (int i = 0; i < kStages - 1 && i < total; ++i) issue_x(i);

  const std::uint32_t lane4 = lane * 4u;
  auto look = [&](std::uint32_t word, unsigned byte) { return row_table_pair(lut, word, lane4, byte); };
  float acc[kNT][2][4] = {};  // [n8 tile][row tile][fragment: windows mode uses 0, 1 (rows g, g + 8)]
  int i = 0;
  for (int pair = 0; pair < my_pairs; ++pair) {
    const int r0 = (blockIdx.x + pair * gridDim.x) * 32;
    for (int s = 0; s < S; ++s, ++i) {
      const unsigned char* st = ring + (i % kStages) * St::kBytes;
      mbar_wait(&bar[i % kStages], (i / kStages) & 1);
      cp_async_wait<kStages - 2>();
      __syncwarp();  // step i has landed for the warp; the stage of step i − 1 is read by all lanes
      issue(i + kStages - 1, true);
      if ((warp + s * kW) * 256 >= K) continue;  // a padding step
      unsigned char* sg = tma_gap(lut, Gaps::scales(warp, i % kStages));
      auto row_scales = [&](int l) { return reinterpret_cast<float*>(sg + 256 * (l / 8) + 16 * (l % 8)); };
      if (dq) {  // lane l turns row l's code word and absmax into 4 floats in the plain layout: no test per lookup
        const std::uint32_t cw = *reinterpret_cast<const std::uint32_t*>(sg + 4 * lane);
        const float am = *reinterpret_cast<const float*>(sg + 256 + 4 * lane);
        float4 f;
        f.x = dq_scale(dyn8, cw, 0, am, sc.dq_offset), f.y = dq_scale(dyn8, cw, 1, am, sc.dq_offset);
        f.z = dq_scale(dyn8, cw, 2, am, sc.dq_offset), f.w = dq_scale(dyn8, cw, 3, am, sc.dq_offset);
        __syncwarp();  // every lane has read its words
        *reinterpret_cast<float4*>(row_scales(lane)) = f;
        __syncwarp();
      }
      auto scale = [&](int l, int w) { return row_scales(l)[w]; };  // row l of the pair, block w of the step
      if constexpr (kWindows) {
        const bool diag = g % 4 == q;   // holds x: token 2j + g / 4, window q (B column g of n8 tile j)
        const int wq = q & 1;           // c0, c1 of lane q: windows 2wq, 2wq + 1 of token 2j + q / 2
        std::uint32_t xw[kNT][32] = {};  // zeros on the lanes that hold no x
#pragma unroll
        for (int j = 0; j < kNT; ++j) {
          const int tok = 2 * j + g / 4, xrow = 4 * tok + q;  // the box's row: [token][window]
          if (diag && tok < kTok) {
#pragma unroll
            for (int k = 0; k < 8; ++k) {
              const uint4 v = *reinterpret_cast<const uint4*>(st + St::kCodeBytes + swz128(xrow, k));
              xw[j][4 * k] = v.x, xw[j][4 * k + 1] = v.y, xw[j][4 * k + 2] = v.z, xw[j][4 * k + 3] = v.w;
            }
          }
        }
        uint4 wv[2][2][2];  // [tile][row g, g + 8][16-byte half of the window]
#pragma unroll
        for (int r = 0; r < 2; ++r)
#pragma unroll
          for (int h = 0; h < 2; ++h)
#pragma unroll
            for (int k = 0; k < 2; ++k)
              wv[r][h][k] = *reinterpret_cast<const uint4*>(st + swz128(16 * r + 8 * h + g, 2 * q + k));
        float c[kNT][2][2][4] = {};  // [n8 tile][row tile][chain: even, odd k16 steps]
#pragma unroll
        for (int tt = 0; tt < 16; ++tt)
#pragma unroll
          for (int r = 0; r < 2; ++r) {
            const uint4& u0 = wv[r][0][tt >> 3];
            const uint4& u1 = wv[r][1][tt >> 3];
            const int wi = (tt >> 1) & 3;
            const std::uint32_t v0 = wi == 0 ? u0.x : wi == 1 ? u0.y : wi == 2 ? u0.z : u0.w;
            const std::uint32_t v1 = wi == 0 ? u1.x : wi == 1 ? u1.y : wi == 2 ? u1.z : u1.w;
            const unsigned by = 2u * (tt & 1);
            const std::uint32_t a[4] = {look(v0, by), look(v1, by), look(v0, by + 1), look(v1, by + 1)};
#pragma unroll
            for (int j = 0; j < kNT; ++j) mma16816<ActT>(c[j][r][tt & 1], a, xw[j][2 * tt], xw[j][2 * tt + 1]);
          }
#pragma unroll
        for (int r = 0; r < 2; ++r)
#pragma unroll
          for (int h = 0; h < 2; ++h) {
            const int l = 16 * r + 8 * h + g;
            const float s0 = scale(l, 2 * wq), s1 = scale(l, 2 * wq + 1);
#pragma unroll
            for (int j = 0; j < kNT; ++j) {
              acc[j][r][h] = fmaf(c[j][r][0][2 * h] + c[j][r][1][2 * h], s0, acc[j][r][h]);
              acc[j][r][h] = fmaf(c[j][r][0][2 * h + 1] + c[j][r][1][2 * h + 1], s1, acc[j][r][h]);
            }
          }
      } else {
        // Token columns: per block w of the step, lane (g, q) takes 8 code bytes (elements 16q … 16q + 15
        // of the block) of A rows g, g + 8 and x[token 8j + g][the same elements]: the k-slot order of
        // a_fragments. A row g is shared-memory row sig (rows of a half warp 2 apart in the swizzle, so
        // that the 8-byte reads never share a bank).
        const int sig = ((g & 3) << 1) | (g >> 2);
#pragma unroll
        for (int w = 0; w < 4; ++w) {
          std::uint32_t xb[kNT][8];
#pragma unroll
          for (int j = 0; j < kNT; ++j) {
            const int xrow = w * kTok + 8 * j + g;  // the box's row: [block][token]
            const uint4 v0 = *reinterpret_cast<const uint4*>(st + St::kCodeBytes + swz128(xrow, 2 * q));
            const uint4 v1 = *reinterpret_cast<const uint4*>(st + St::kCodeBytes + swz128(xrow, 2 * q + 1));
            xb[j][0] = v0.x, xb[j][1] = v0.y, xb[j][2] = v0.z, xb[j][3] = v0.w;
            xb[j][4] = v1.x, xb[j][5] = v1.y, xb[j][6] = v1.z, xb[j][7] = v1.w;
          }
#pragma unroll
          for (int r = 0; r < 2; ++r) {
            uint2 wv[2];  // rows g, g + 8
#pragma unroll
            for (int h = 0; h < 2; ++h)
              wv[h] = *reinterpret_cast<const uint2*>(st + swz128(16 * r + 8 * h + sig, 2 * w + (q >> 1)) +
                                                      8 * (q & 1));
            const float s0 = scale(16 * r + sig, w), s1 = scale(16 * r + 8 + sig, w);
            std::uint32_t a[4][4];
#pragma unroll
            for (int tt = 0; tt < 4; ++tt) {
              const std::uint32_t v0 = tt < 2 ? wv[0].x : wv[0].y, v1 = tt < 2 ? wv[1].x : wv[1].y;
              const unsigned by = 2u * (tt & 1);
              a[tt][0] = look(v0, by), a[tt][1] = look(v1, by), a[tt][2] = look(v0, by + 1), a[tt][3] = look(v1, by + 1);
            }
#pragma unroll
            for (int j = 0; j < kNT; ++j) {
              float c[4] = {};
#pragma unroll
              for (int tt = 0; tt < 4; ++tt) mma16816<ActT>(c, a[tt], xb[j][2 * tt], xb[j][2 * tt + 1]);
              acc[j][r][0] = fmaf(c[0], s0, acc[j][r][0]);
              acc[j][r][1] = fmaf(c[1], s0, acc[j][r][1]);
              acc[j][r][2] = fmaf(c[2], s1, acc[j][r][2]);
              acc[j][r][3] = fmaf(c[3], s1, acc[j][r][3]);
            }
          }
        }
      }
    }
    // Each warp leaves its sums in the gaps (double-buffered, so pair + 1's writes do not meet pair's
    // reads) and all threads add them up; where the gaps cannot hold kW warps' sums (32 tokens), warp 0
    // keeps its own in registers and alone adds the others' and stores y, the rest going on to the next pair.
    auto write = [&](int tok, int row, float v) {
      if (kAllWarpsReduce || warp != 0) partial(pair & 1, warp, tok)[row] = v;
    };
    auto finish = [&](int tok, int row, float v) {
#pragma unroll
      for (int w = 1; w < kW; ++w) v += partial(pair & 1, w, tok)[row];
      if (tok < M && r0 + row < N) store_act<ActT>(y + static_cast<std::size_t>(tok) * N + r0 + row, v);
    };
    auto for_each_sum = [&](auto&& f) {  // f(token, row of the pair, this warp's sum)
      if constexpr (kWindows) {
        // Lanes q, q ^ 1 hold windows 0–1 and 2–3 of token 2j + q / 2; the even lane takes the sum.
#pragma unroll
        for (int j = 0; j < kNT; ++j)
#pragma unroll
          for (int r = 0; r < 2; ++r)
#pragma unroll
            for (int h = 0; h < 2; ++h) {
              const float v = acc[j][r][h] + __shfl_xor_sync(0xffffffffu, acc[j][r][h], 1);
              const int tok = 2 * j + q / 2;
              if ((q & 1) == 0 && tok < kTok) f(tok, 16 * r + 8 * h + g, v);
            }
      } else {
        const int sig = ((g & 3) << 1) | (g >> 2);
#pragma unroll
        for (int j = 0; j < kNT; ++j)
#pragma unroll
          for (int r = 0; r < 2; ++r)
#pragma unroll
            for (int e = 0; e < 4; ++e) f(8 * j + 2 * q + (e & 1), 16 * r + 8 * (e >> 1) + sig, acc[j][r][e]);
      }
    };
    if (kAllWarpsReduce || warp != 0) for_each_sum(write);
    __syncthreads();
    if constexpr (kAllWarpsReduce) {
      for (int idx = tid; idx < 32 * kTok; idx += kW * 32)
        finish(idx / 32, idx % 32, partial(pair & 1, 0, idx / 32)[idx % 32]);
    } else if (warp == 0) {
      for_each_sum(finish);
    }
#pragma unroll
    for (int j = 0; j < kNT; ++j)
#pragma unroll
      for (int r = 0; r < 2; ++r)
#pragma unroll
        for (int e = 0; e < 4; ++e) acc[j][r][e] = 0.0f;
  }
  cp_async_wait<0>();
}


// The TMA kernel's domain (see above).
inline bool tma_applies(const Weight4& w) {
  return w.block == 64 && w.K % 256 == 0 && reinterpret_cast<std::uintptr_t>(w.scales.absmax) % 16 == 0 &&
         tensor_map_encoder() != nullptr;
}

template <class ActT, int kTok, int kW, int kStages>
int launch_tma_t(const ActT* x, int M, const Weight4& w, const Dyn8Table& dq, ActT* y, cudaStream_t st) {
  const auto kernel = gemm4_tma_kernel<ActT, kTok, kW, kStages>;
  constexpr int smem = tma_smem_bytes<kTok, kW, kStages>();
  static const int attr_rc =
      static_cast<int>(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, smem));
  if (attr_rc != 0) return attr_rc;
  // codes: N rows of K/2 bytes, boxes of 32 rows × 128 bytes. x: 64-value blocks of M tokens, boxes of
  // 4 blocks × kTok tokens (tokens past M read as zero), token-major for the windows mode, block-major
  // for token columns (consecutive tokens in consecutive rows of the swizzle).
  CUtensorMap codes_map, x_map;
  const cuuint64_t cdims[2] = {w.K / 2, w.N}, cpitch[1] = {w.K / 2};
  const cuuint32_t cbox[2] = {128, 32};
  const cuuint64_t m = static_cast<cuuint64_t>(M);
  const bool windows = kTok <= 4;
  const cuuint64_t xdims[3] = {64, windows ? w.K / 64 : m, windows ? m : w.K / 64};
  const cuuint64_t xpitch[2] = {windows ? 128 : w.K * 2, windows ? w.K * 2 : 128};
  const cuuint32_t xbox[3] = {64, windows ? 4u : static_cast<cuuint32_t>(kTok), windows ? static_cast<cuuint32_t>(kTok) : 4u};
  if (!encode_map(&codes_map, CU_TENSOR_MAP_DATA_TYPE_UINT8, w.codes, 2, cdims, cpitch, cbox) ||
      !encode_map(&x_map, CU_TENSOR_MAP_DATA_TYPE_UINT16, x, 3, xdims, xpitch, xbox))
    return static_cast<int>(cudaErrorInvalidValue);
  const std::size_t pairs = (w.N + 31) / 32, sms = static_cast<std::size_t>(detail::sm_count());
  const unsigned grid = static_cast<unsigned>(pairs < sms ? pairs : sms);
  // One wave: started early (PDL; LOWBIT_PDL=0 turns it off), see the kernel.
  return static_cast<int>(detail::launch_after_previous_starts_ex(true, 1u, smem, kernel, dim3(grid), dim3(kW * 32), st,
                                                                  codes_map, x_map, M, w.scales, static_cast<int>(w.N),
                                                                  static_cast<int>(w.K), w.table, dq, y));
}

// M = 1: 8 warps with 3 stages each, or 16 warps with 2 where each of 8 warps would run at least 16 steps
// (28672×8192, 8192×28672: 38.1 / 39.8 µs against 41.1 / 42.0; the 8-warp version is faster at the
// smaller LLM shapes: 6.9 / 12.8 / 15.0 µs against 7.7 / 13.2 / 15.0. H200, eager, kernels/NOTES.md).
// M = 2: 8 warps × 3 stages; M = 3, 4: 8 warps × 2 (3 stages, which now fit, measured 0.5 µs slower at
// 4096² and 8192²). M = 5 … 8: 8 warps × 2 stages; 9 … 16: 6 warps × 2; 17 … 32: 4 warps × 2 (a stage holds
// 32 tokens' x, 20 KB; 3 warps before the scales moved to the gaps: 8192² 30.5 → 24.1 µs, 4096×11008
// 26.8 → 20.3; M = 1 with 8 warps × 4 stages was no faster either).
// M = 33 … 64 (where the wgmma kernel does not run): pieces of 32 tokens (the weight read once per piece;
// two pieces are still faster than the tiled kernel, which reads it once).
template <class ActT>
int launch_tma(const ActT* x, int M, const Weight4& w, const Dyn8Table& dq, ActT* y, cudaStream_t st) {
  if (M > 32) {
    const int rc = launch_tma(x, 32, w, dq, y, st);
    return rc != 0 ? rc : launch_tma(x + 32 * w.K, M - 32, w, dq, y + 32 * w.N, st);
  }
  if (M > 16) return launch_tma_t<ActT, 32, 4, 2>(x, M, w, dq, y, st);
  if (M > 8) return launch_tma_t<ActT, 16, 6, 2>(x, M, w, dq, y, st);
  if (M > 4) return launch_tma_t<ActT, 8, 8, 2>(x, M, w, dq, y, st);
  if (M > 2) return launch_tma_t<ActT, 4, 8, 2>(x, M, w, dq, y, st);
  if (M == 2) return launch_tma_t<ActT, 2, 8, 3>(x, M, w, dq, y, st);
  const std::size_t sms = static_cast<std::size_t>(detail::sm_count()), pairs = (w.N + 31) / 32;
  const std::size_t steps8 = (w.K / 256 + 7) / 8 * ((pairs + sms - 1) / sms);
  return steps8 >= 16 ? launch_tma_t<ActT, 1, 16, 2>(x, M, w, dq, y, st)
                      : launch_tma_t<ActT, 1, 8, 3>(x, M, w, dq, y, st);
}

// Two row groups (64 rows per CTA) while that still fills half the SMs, else one (4096-row layers).
inline int tiled_row_groups(std::size_t n) {
  return 2 * tiled_ctas(n, 2) >= static_cast<std::size_t>(detail::sm_count()) ? 2 : 1;
}

template <class ActT>
int launch_tiled_by_shape(const ActT* x, int m, const Weight4& w, int shift, const Dyn8Table& dq, ActT* y,
                          cudaStream_t st) {
  const bool two = tiled_row_groups(w.N) == 2;
  if (m <= 16) return two ? launch_tiled<ActT, 2, 2, 4, 3>(x, m, w, shift, dq, y, st)
                          : launch_tiled<ActT, 2, 1, 4, 3>(x, m, w, shift, dq, y, st);
  if (m <= 32) return two ? launch_tiled<ActT, 4, 2, 4, 3>(x, m, w, shift, dq, y, st)
                          : launch_tiled<ActT, 4, 1, 4, 3>(x, m, w, shift, dq, y, st);
  return two ? launch_tiled<ActT, 8, 2, 4, 3>(x, m, w, shift, dq, y, st)
             : launch_tiled<ActT, 8, 1, 4, 3>(x, m, w, shift, dq, y, st);
}

// The tiled kernel runs one CTA per SM; where its last wave would leave more
// than a quarter of the GPU idle (4096×11008: 172 CTAs on 132 SMs) the
// registers kernel is faster (kernels/NOTES.md, session 6).
inline bool tiled_waves_fill(std::size_t n) {
  const std::size_t sms = static_cast<std::size_t>(detail::sm_count());
  const std::size_t ctas = tiled_ctas(n, tiled_row_groups(n));
  const std::size_t waves = (ctas + sms - 1) / sms;
  return 4 * (waves * sms - ctas) <= waves * sms;
}

template <class ActT>
int gemm_typed(const ActT* x, std::size_t M, const Weight4& w, ActT* y, cudaStream_t st, Gemm4Variant variant) {
  static const Dyn8Table dq = [] {
    Dyn8Table d{};
    for (int i = 0; i < 256; ++i) d.v[i] = dyn8_values[i];
    return d;
  }();
  int shift = -1;
  if ((w.block & (w.block - 1)) == 0) {
    shift = 0;
    while ((std::size_t{1} << shift) < w.block) ++shift;
  }
  for (std::size_t m0 = 0; m0 < M; m0 += 64) {
    const int m = static_cast<int>(M - m0 < 64 ? M - m0 : 64);
    const ActT* xm = x + m0 * w.K;
    ActT* ym = y + m0 * w.N;
    int rc;
    const bool pipe_ok = w.N * w.K < (std::size_t{1} << 31);
    Gemm4Variant v = variant;
    // Measured (H200, kernels/NOTES.md): the TMA kernel up to 32 tokens (1.3–1.7× the pipelined ones up
    // to 16, 1.4–2.2× the register version at 32, 1.0–1.6× wgmma at 32), the wgmma kernel above (at 64
    // 1.2–1.9× the TMA kernel's two 32-token pieces, which remain where wgmma does not load); outside the
    // TMA domain the cores kernel at M = 1, 16 warps per CTA at M <= 4, 8 up to 16, the register version
    // up to 32, the tiled kernel above where its grid fills its waves.
    // (its grid has a row block per 64–192 rows in y, at most 65535)
    const bool wgmma_ok = pipe_ok && tma_applies(w) && w.N <= std::size_t{65535} * 64 && wgmma_available();
    if (v == Gemm4Variant::automatic) v = m > 32 && wgmma_ok ? Gemm4Variant::wgmma : Gemm4Variant::tma;
    if (v == Gemm4Variant::wgmma && !wgmma_ok) v = Gemm4Variant::tma;
    if (v == Gemm4Variant::tma && !(pipe_ok && tma_applies(w)))
      v = m == 1    ? Gemm4Variant::cores
          : m <= 4  ? Gemm4Variant::pipelined16
          : m <= 16 ? Gemm4Variant::pipelined
          : m > 32 && tiled_waves_fill(w.N) ? Gemm4Variant::tiled
                                            : Gemm4Variant::registers;
    if (v == Gemm4Variant::cores && !(m == 1 && pipe_ok)) v = Gemm4Variant::pipelined16;  // its domain
    if (v == Gemm4Variant::tiled && !(pipe_ok && w.K < (std::size_t{1} << 25)))
      v = Gemm4Variant::registers;  // 32-bit indexing
    if (v == Gemm4Variant::wgmma) {
      rc = launch_wgmma(xm, std::is_same_v<ActT, __nv_bfloat16>, m, w, dq, ym, st);
    } else if (v == Gemm4Variant::tma) {
      rc = launch_tma(xm, m, w, dq, ym, st);
    } else if (v == Gemm4Variant::cores) {
      rc = launch_cores(xm, w, shift, dq, ym, st);
    } else if (v == Gemm4Variant::tiled) {
      rc = launch_tiled_by_shape(xm, m, w, shift, dq, ym, st);
    } else if (v == Gemm4Variant::pipelined16 && pipe_ok && m <= 16) {
      if (m <= 8) rc = launch_pipe<ActT, 1, 16, 3>(xm, m, w, shift, dq, ym, st);
      else rc = launch_pipe<ActT, 2, 16, 3>(xm, m, w, shift, dq, ym, st);
    } else if (v != Gemm4Variant::registers && pipe_ok) {
      if (m <= 8) rc = launch_pipe<ActT, 1, 8, 4>(xm, m, w, shift, dq, ym, st);
      else if (m <= 16) rc = launch_pipe<ActT, 2, 8, 4>(xm, m, w, shift, dq, ym, st);
      else if (m <= 32) rc = launch_pipe<ActT, 4, 4, 4>(xm, m, w, shift, dq, ym, st);
      else rc = launch_pipe<ActT, 8, 4, 4>(xm, m, w, shift, dq, ym, st);
    } else if (m <= 8) rc = launch<ActT, 1, 8, 4>(xm, m, w, shift, dq, ym, st);
    else if (m <= 16) rc = launch<ActT, 2, 8, 4>(xm, m, w, shift, dq, ym, st);
    else if (m <= 32) rc = launch<ActT, 4, 4, 2>(xm, m, w, shift, dq, ym, st);
    else rc = launch<ActT, 8, 4, 2>(xm, m, w, shift, dq, ym, st);
    if (rc != 0) return rc;
  }
  return 0;
}

}  // namespace

int gemm_4bit(const void* x, DType act, std::size_t M, const Weight4& w, void* y, void* stream,
              Gemm4Variant variant) {
  if (M == 0 || w.N == 0) return 0;
  if (w.K == 0 || w.K % 64 != 0 || w.block % 64 != 0 || w.N * w.K / 2 >= (std::size_t{1} << 40) ||
      w.N > 0x7FFFFFFF || w.K > 0x7FFFFFFF)
    return static_cast<int>(cudaErrorInvalidValue);
  if (reinterpret_cast<std::uintptr_t>(x) % 16 || reinterpret_cast<std::uintptr_t>(y) % 2 ||
      reinterpret_cast<std::uintptr_t>(w.codes) % 16 ||
      reinterpret_cast<std::uintptr_t>(w.scales.dq_codes) % 4)
    return static_cast<int>(cudaErrorMisalignedAddress);
  auto st = static_cast<cudaStream_t>(stream);
  if (act == DType::bf16)
    return gemm_typed(static_cast<const __nv_bfloat16*>(x), M, w, static_cast<__nv_bfloat16*>(y), st, variant);
  if (act == DType::f16)
    return gemm_typed(static_cast<const __half*>(x), M, w, static_cast<__half*>(y), st, variant);
  return static_cast<int>(cudaErrorInvalidValue);
}

}  // namespace lowbit::cuda
