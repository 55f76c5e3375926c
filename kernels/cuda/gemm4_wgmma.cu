// kernels/cuda/gemm4_wgmma.cu — the 4-bit GEMM for M = 33 … 64 tokens on
// wgmma (sm_90a; CMake builds this file for sm_90a alone).
//
// Why: at M = 64 the mma.sync kernels of gemm4.cu ran at 0.7–0.8× cuBLAS bf16
// (two 32-token pieces, each warp with its own copy of x in shared memory, one
// warp per scheduler). Here x is the wgmma's B operand, read by the tensor
// cores straight from the shared memory that TMA filled, once per CTA and not
// once per warp; the weight is the A operand, dequantized into registers.
//
// Work split: a CTA owns R·64 output rows (R consumer warpgroups of 64 rows,
// or, at R = 1, two warpgroups that take alternate steps) and all 64 tokens; the CTAs of a cluster split K (step s of rank c is
// elements (c + s·splits)·256 …) and add their partial sums through
// distributed shared memory, each rank storing 1/splits of the rows. A
// producer warp fills a ring of stages (TMA: the rows' codes and x; cp.async:
// the block scales) and the consumers hand stages back through `empty`
// barriers.
//
// Per 64-element block a consumer warp (rows g, g + 8 of its 16) builds its A
// fragments: wgmma's register A has the m16n8k16 layout in natural k order,
// so k16 step tt needs code byte q of words 2tt and 2tt + 1 of the row's block
// — one PRMT and one LDS of a 256-entry table of value pairs per register.
// Two forms, both within gemm4.cuh's stated bound:
//   exact values (R = 1, 2): the pair table of the other kernels (values
//     rounded to bf16 / fp16); four wgmma m64n64k16 form the block's sum in
//     fresh accumulators (two sets, alternating), multiplied by the block
//     scale and added to the running sums while the next block's wgmmas run.
//   scaled into A (kFold, R = 3): fp32 pairs times the block scale, rounded
//     once to bf16 / fp16 — the weight as dequantize_4bit writes it, as in the
//     `tiled` kernel; one accumulator chain over all of K. ~10 % slower per
//     warpgroup, but 118 registers instead of 158, so three warpgroups fit.
// The kernel is bound by the latency of each warpgroup's instruction stream
// (it ran as fast with the loads switched off), so the plan (choose_plan)
// maximizes warpgroups at work. kernels/NOTES.md, session 10, has the steps.
#include <cooperative_groups.h>

#include "kernels/cuda/gemm4_parts.cuh"

namespace lowbit::cuda::gemm4_parts {
namespace {

namespace cg = cooperative_groups;

constexpr int kWgTok = 64;     // tokens per launch: wgmma's N
constexpr int kPairTableBytes = 256 * 32 * 8;  // [code byte][lane] float2
constexpr int kWgMiscBytes = 2048;             // values, the dyn8 table, the barriers
// R row groups of 64 rows, each taken by P consumer warpgroups that split the CTA's steps (phase p takes
// steps p, p + P, …), and the producer warp.
template <int R, int P>
struct WgShape {
  static constexpr int kRows = 64 * R, kGroups = R * P, kConsumerWarps = 4 * kGroups;
  static constexpr int kThreads = 32 * kConsumerWarps + 32;
  static constexpr int kXBytes = kWgTok * 4 * 128;  // stage: x [block][token][64 values], 128-byte swizzled,
  static constexpr int kCodeBytes = kRows * 128;    // the codes [row][256 codes], 128-byte swizzled,
  static constexpr int kScaleBytes = kRows * 16;    // the block scales [row][4] (dq: code word, absmax)
  static constexpr int kStageBytes = (kXBytes + kCodeBytes + kScaleBytes + 1023) / 1024 * 1024;
  static constexpr int kStages = kGroups >= 3 ? 2 : 3;
  static constexpr int kSmemBytes = kPairTableBytes + kWgMiscBytes + 1024 /* alignment */ + kStages * kStageBytes;
  static constexpr int kPitch = kRows + 4;  // partial sums [phase][token][row]: + 4 keeps the fragment writes conflict-free
  static_assert(P * kWgTok * kPitch * 4 <= kStages * kStageBytes, "the partial sums reuse the ring");
  static_assert(kSmemBytes <= 227 * 1024, "shared memory");
};

// Arrives on bar once this thread's earlier cp.async copies have landed (the barrier's count includes it).
__device__ __forceinline__ void cp_async_arrive_noinc(std::uint64_t* bar) {
  asm volatile("cp.async.mbarrier.arrive.noinc.shared::cta.b64 [%0];\n" ::"r"(smem_addr(bar)) : "memory");
}

#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
#define LOWBIT_WGMMA_OPERANDS                                                                                      \
  "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, " \
  "%24, %25, %26, %27, %28, %29, %30, %31}, {%32, %33, %34, %35}, %37, p, 1, 1, 0;\n}\n"
#define LOWBIT_WGMMA_ARGS                                                                                          \
  : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]),    \
    "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]),         \
    "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]),        \
    "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31])                      \
  : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(accumulate), "l"(desc)
// d (+)= A · B for 64 rows × 64 tokens × 16 k: A from registers (m16n8k16 layout per warp), B by descriptor.
template <class ActT>
__device__ __forceinline__ void wgmma_m64n64k16(float (&d)[32], const std::uint32_t (&a)[4], std::uint64_t desc,
                                                int accumulate);
template <>
__device__ __forceinline__ void wgmma_m64n64k16<__nv_bfloat16>(float (&d)[32], const std::uint32_t (&a)[4],
                                                               std::uint64_t desc, int accumulate) {
  asm volatile("{\n .reg .pred p;\n setp.ne.b32 p, %36, 0;\n"
               "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 " LOWBIT_WGMMA_OPERANDS LOWBIT_WGMMA_ARGS);
}
template <>
__device__ __forceinline__ void wgmma_m64n64k16<__half>(float (&d)[32], const std::uint32_t (&a)[4],
                                                        std::uint64_t desc, int accumulate) {
  asm volatile("{\n .reg .pred p;\n setp.ne.b32 p, %36, 0;\n"
               "wgmma.mma_async.sync.aligned.m64n64k16.f32.f16.f16 " LOWBIT_WGMMA_OPERANDS LOWBIT_WGMMA_ARGS);
}
#undef LOWBIT_WGMMA_OPERANDS
#undef LOWBIT_WGMMA_ARGS
// Keeps the compiler from moving accesses to accumulators across the asynchronous wgmma.
__device__ __forceinline__ void pin(float (&r)[32]) {
#pragma unroll
  for (int i = 0; i < 32; ++i) asm volatile("" : "+f"(r[i])::"memory");
}
#endif

template <class ActT, int R, int P, bool kFold>
__global__ void __launch_bounds__(WgShape<R, P>::kThreads, 1)
    gemm4_wgmma_kernel(const __grid_constant__ CUtensorMap codes_map, const __grid_constant__ CUtensorMap x_map, int M,
                       BlockScales sc, int N, int K, Table16 t, Dyn8Table dq_table, ActT* __restrict__ y) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  using Sh = WgShape<R, P>;
  constexpr int kWgRows = Sh::kRows, kWgConsumerWarps = Sh::kConsumerWarps, kWgThreads = Sh::kThreads;
  constexpr int kWgPitch = Sh::kPitch, kWgStages = Sh::kStages;
  extern __shared__ __align__(16) unsigned char wg_smem[];
  unsigned char* lut = wg_smem;  // [code byte][lane] pairs (kPairTableBytes)
  float* values = reinterpret_cast<float*>(wg_smem + kPairTableBytes);  // 16 floats
  float* dyn8 = values + 16;                                              // 256 floats
  auto* full = reinterpret_cast<std::uint64_t*>(dyn8 + 256);             // stage filled
  std::uint64_t* empty = full + kWgStages;                                // stage free again (consumer threads)
  unsigned char* ring = wg_smem + (((smem_addr(wg_smem) + kPairTableBytes + kWgMiscBytes + 1023u) & ~1023u) -
                                   smem_addr(wg_smem));
  // warp from a shuffle: provably warp-uniform to ptxas, so the role branches are not divergent paths
  // (a divergent path around wgmma makes ptxas serialize every wgmma: C7518 / C7520).
  const int tid = threadIdx.x, lane = tid & 31, warp = __shfl_sync(0xffffffffu, tid >> 5, 0);
  const bool dq = sc.dq_codes != nullptr;
  const int split = static_cast<int>(blockIdx.x), splits = static_cast<int>(gridDim.x);
  const int r0 = static_cast<int>(blockIdx.y) * kWgRows, ksteps = K / 256;
  const int S = split < ksteps ? (ksteps - split + splits - 1) / splits : 0;  // this CTA's steps
  auto step_k0 = [&](int s) { return (split + s * splits) * 256; };
  auto stage = [&](int s) { return ring + (s % kWgStages) * Sh::kStageBytes; };

  detail::allow_next_grid_to_start();
  if (tid == 0) {
    for (int i = 0; i < kWgStages; ++i) {
      mbar_init(&full[i], 33);  // 32 lanes' cp.async arrivals + lane 0's transaction bytes
      mbar_init(&empty[i], 128 * R);  // the R warpgroups that take a step
    }
    asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
  }
  if (tid < 16) values[tid] = t.value[tid];
  if (dq)
    for (int i = tid; i < 256; i += kWgThreads) dyn8[i] = dq_table.v[i];
  __syncthreads();
  // A consumer warp v of warpgroup wg, lane (g, q): CTA rows rowA = 64·(wg mod R) + 16·v + g and rowA + 8,
  // steps phase, phase + P, ….
  const int g = lane >> 2, q = lane & 3, rowA = 64 * (warp / 4 % R) + 16 * (warp % 4) + g, phase = warp / 4 / R;
  float acc[32];  // a consumer's running sums: [n8 tile j][rows g, g + 8 × tokens 2q, 2q + 1]
#pragma unroll
  for (int i = 0; i < 32; ++i) acc[i] = 0.0f;
  if (warp == kWgConsumerWarps) {
    // ---- producer: lane 0 starts the TMA copies (the codes may be fetched before the previous kernel
    // ends, x only after); every lane copies its rows' block scales (dq: code word and absmax) with
    // cp.async, which arrives on the stage's barrier when they land.
    auto fill = [&](int s, bool with_x) {
      unsigned char* st = stage(s);
      unsigned char* scales = st + Sh::kXBytes + Sh::kCodeBytes;
      const unsigned k0 = static_cast<unsigned>(step_k0(s));
#pragma unroll
      for (int i = 0; i < kWgRows / 32; ++i) {
        const int row = r0 + lane + 32 * i;
        const bool in = row < N;
        const unsigned bk = in ? (static_cast<unsigned>(row) * static_cast<unsigned>(K) + k0) / 64u : 0u;  // 4 | bk
        unsigned char* dst = scales + 16 * (lane + 32 * i);
        if (dq) {
          cp_async4(dst, sc.dq_codes + bk, in ? 4 : 0);
          cp_async4(dst + 4, sc.dq_absmax + (bk >> 8), in ? 4 : 0);
        } else {
          cp_async16(dst, sc.absmax + bk, in ? 16 : 0);
        }
      }
      std::uint64_t* b = &full[s % kWgStages];
      if (lane == 0) {
        mbar_arrive_expect_tx(b, Sh::kXBytes + Sh::kCodeBytes);
        tma_2d(st + Sh::kXBytes, &codes_map, step_k0(s) / 2, r0, b);
        if (with_x) tma_3d(st, &x_map, 0, 0, step_k0(s) / 64, b);
      }
      cp_async_arrive_noinc(b);
    };
    const int head = S < kWgStages ? S : kWgStages;
    for (int s = 0; s < head; ++s) fill(s, false);
    detail::wait_for_previous_grid();
    if (lane == 0)
      for (int s = 0; s < head; ++s) tma_3d(stage(s), &x_map, 0, 0, step_k0(s) / 64, &full[s % kWgStages]);
    for (int s = kWgStages; s < S; ++s) {
      mbar_wait(&empty[s % kWgStages], ((s / kWgStages) - 1) & 1);
      fill(s, true);
    }
  } else {
    // ---- consumers: they build the pair table while the producer's first copies are in flight, and meet
    // on barrier 1.
    constexpr int kConsumerThreads = 32 * kWgConsumerWarps;
    auto row_scales = [&](const unsigned char* st, int row) {  // the 4 block scales of a stage's row
      const unsigned char* scl = st + Sh::kXBytes + Sh::kCodeBytes + 16 * row;
      if (!dq) return *reinterpret_cast<const float4*>(scl);
      const std::uint32_t cw = *reinterpret_cast<const std::uint32_t*>(scl);
      const float am = *reinterpret_cast<const float*>(scl + 4);
      return make_float4(dq_scale(dyn8, cw, 0, am, sc.dq_offset), dq_scale(dyn8, cw, 1, am, sc.dq_offset),
                         dq_scale(dyn8, cw, 2, am, sc.dq_offset), dq_scale(dyn8, cw, 3, am, sc.dq_offset));
    };
    // The descriptors of block w's four k16 steps (32 bytes apart), made before the fence: an instruction
    // that defines a wgmma input between the fence and the commit serializes every wgmma (ptxas C7513).
    auto block_descs = [&](const unsigned char* st, int w, std::uint64_t (&desc)[4]) {
#pragma unroll
      for (int tt = 0; tt < 4; ++tt) {
        desc[tt] = wg_desc(st + w * (kWgTok * 128) + tt * 32);
        asm volatile("" : "+l"(desc[tt]));
      }
    };
    // Block w's code words of rows rowA (r[0], r[1]: bytes 0–15, 16–31 of the block) and rowA + 8 (r[2], r[3]).
    auto block_codes = [&](const unsigned char* st, int w, uint4 (&r)[4]) {
      const unsigned char* codes = st + Sh::kXBytes;
      r[0] = *reinterpret_cast<const uint4*>(codes + swz128(rowA, 2 * w));
      r[1] = *reinterpret_cast<const uint4*>(codes + swz128(rowA, 2 * w + 1));
      r[2] = *reinterpret_cast<const uint4*>(codes + swz128(rowA + 8, 2 * w));
      r[3] = *reinterpret_cast<const uint4*>(codes + swz128(rowA + 8, 2 * w + 1));
    };
    if constexpr (kFold) {
      // fp32 pairs: row `byte` holds lane l's copy of (value[byte >> 4], value[byte & 15]) at 8·l, so that
      // one PRMT of the code word and 8·lane makes the address and the 16 lanes of a 64-bit access phase
      // meet 32 different banks.
      for (int f = tid; f < 256 * 16; f += kConsumerThreads) {
        const int byte = f >> 4;
        const float hi = values[byte >> 4], lo = values[byte & 15];
        *reinterpret_cast<float4*>(lut + byte * 256 + 16 * (f & 15)) = make_float4(hi, lo, hi, lo);
      }
    } else {
      build_row_table<ActT>(lut, values, tid, kConsumerThreads);  // ActT pairs at 4·lane (the other kernels' table)
    }
    asm volatile("bar.sync 1, %0;\n" ::"n"(kConsumerThreads) : "memory");
    if constexpr (kFold) {
      const std::uint32_t lane8 = lane * 8u, sel = 0x5504u | (static_cast<unsigned>(q) << 4);
      // A register of code byte q of word: its two values times the block scale, rounded once to ActT
      // (dequantize_4bit's fl(value · s)).
      auto dequant = [&](std::uint32_t word, float scale) {
        const float2 v = *reinterpret_cast<const float2*>(lut + __byte_perm(word, lane8, sel));
        return pack2<ActT>(v.x * scale, v.y * scale);
      };
      std::uint32_t a[2][4][4];  // [block parity]: a block's A registers stay untouched while its wgmmas run
      for (int s = phase; s < S; s += P) {
        mbar_wait(&full[s % kWgStages], (s / kWgStages) & 1);
        const unsigned char* st = stage(s);
        const float4 sa = row_scales(st, rowA), sb = row_scales(st, rowA + 8);
#pragma unroll
        for (int w = 0; w < 4; ++w) {
          const float s0 = w == 0 ? sa.x : w == 1 ? sa.y : w == 2 ? sa.z : sa.w;  // row rowA
          const float s1 = w == 0 ? sb.x : w == 1 ? sb.y : w == 2 ? sb.z : sb.w;  // row rowA + 8
          uint4 r[4];
          block_codes(st, w, r);
          std::uint32_t(&aw)[4][4] = a[w & 1];
          const std::uint32_t lo[4][2] = {{r[0].x, r[0].y}, {r[0].z, r[0].w}, {r[1].x, r[1].y}, {r[1].z, r[1].w}};
          const std::uint32_t hi[4][2] = {{r[2].x, r[2].y}, {r[2].z, r[2].w}, {r[3].x, r[3].y}, {r[3].z, r[3].w}};
#pragma unroll
          for (int tt = 0; tt < 4; ++tt) {
            aw[tt][0] = dequant(lo[tt][0], s0);
            aw[tt][1] = dequant(hi[tt][0], s1);
            aw[tt][2] = dequant(lo[tt][1], s0);
            aw[tt][3] = dequant(hi[tt][1], s1);
          }
          std::uint64_t desc[4];
          block_descs(st, w, desc);
          wg_fence();
#pragma unroll
          for (int tt = 0; tt < 4; ++tt) wgmma_m64n64k16<ActT>(acc, aw[tt], desc[tt], 1);
          wg_commit();
          // At most this block's wgmmas in flight: the other A registers are free, and at block 0 so is the
          // stage of step s − 1.
          wg_wait<1>();
          if (w == 0 && s >= P) mbar_arrive(&empty[(s - P) % kWgStages]);  // this group's last step
        }
      }
      wg_wait<0>();
      pin(acc);
    } else {
      const std::uint32_t lane4 = lane * 4u, sel = 0x5504u | (static_cast<unsigned>(q) << 4);
      auto look = [&](std::uint32_t word) {  // the pair of code byte q of word
        return *reinterpret_cast<const std::uint32_t*>(lut + __byte_perm(word, lane4, sel));
      };
      // kDepth accumulator sets: up to kDepth blocks' wgmmas in flight (3, where one warpgroup's registers
      // allow it, measured no faster). Block w of a step uses set w % kDepth; the step ends with every
      // set read (no wgmma in flight across the loop's back edge: ptxas serialized every wgmma when sums
      // were read there, C7514).
      constexpr int kDepth = 2;
      float c[kDepth][32];
#pragma unroll
      for (int d = 0; d < kDepth; ++d)
#pragma unroll
        for (int i = 0; i < 32; ++i) c[d][i] = 0.0f;
      auto add_scaled = [&](float (&cc)[32], float s0, float s1) {
        pin(cc);
#pragma unroll
        for (int j = 0; j < 8; ++j) {
          acc[4 * j] = fmaf(cc[4 * j], s0, acc[4 * j]);
          acc[4 * j + 1] = fmaf(cc[4 * j + 1], s0, acc[4 * j + 1]);
          acc[4 * j + 2] = fmaf(cc[4 * j + 2], s1, acc[4 * j + 2]);
          acc[4 * j + 3] = fmaf(cc[4 * j + 3], s1, acc[4 * j + 3]);
        }
      };
      for (int s = phase; s < S; s += P) {
        mbar_wait(&full[s % kWgStages], (s / kWgStages) & 1);
        const unsigned char* st = stage(s);
        const float4 sa = row_scales(st, rowA), sb = row_scales(st, rowA + 8);
        const float s0[4] = {sa.x, sa.y, sa.z, sa.w}, s1[4] = {sb.x, sb.y, sb.z, sb.w};
#pragma unroll
        for (int w = 0; w < 4; ++w) {
          uint4 r[4];
          block_codes(st, w, r);
          const std::uint32_t a[4][4] = {{look(r[0].x), look(r[2].x), look(r[0].y), look(r[2].y)},
                                         {look(r[0].z), look(r[2].z), look(r[0].w), look(r[2].w)},
                                         {look(r[1].x), look(r[3].x), look(r[1].y), look(r[3].y)},
                                         {look(r[1].z), look(r[3].z), look(r[1].w), look(r[3].w)}};
          std::uint64_t desc[4];
          block_descs(st, w, desc);
          float(&cc)[32] = c[w % kDepth];
          pin(cc);
          wg_fence();
#pragma unroll
          for (int tt = 0; tt < 4; ++tt) wgmma_m64n64k16<ActT>(cc, a[tt], desc[tt], tt);
          wg_commit();
          if (w >= kDepth - 1) {  // block w − kDepth + 1 is done once at most the later ones are in flight
            wg_wait<kDepth - 1>();
            add_scaled(c[(w - kDepth + 1) % kDepth], s0[w - kDepth + 1], s1[w - kDepth + 1]);
          }
        }
        wg_wait<0>();
#pragma unroll
        for (int b = 4 - kDepth + 1; b < 4; ++b) add_scaled(c[b % kDepth], s0[b], s1[b]);
        mbar_arrive(&empty[s % kWgStages]);
      }
    }
  }
  __syncthreads();  // every warp is done with the ring: it takes the partial sums
  if (warp < kWgConsumerWarps) {
    float* part = reinterpret_cast<float*>(ring);
#pragma unroll
    for (int j = 0; j < 8; ++j)
#pragma unroll
      for (int e = 0; e < 4; ++e)
        part[(kWgTok * phase + 8 * j + 2 * q + (e & 1)) * kWgPitch + rowA + 8 * (e >> 1)] = acc[4 * j + e];
  }

  // Partial sums of the cluster's ranks, added in rank order; rank c stores rows [c, c + 1)·kWgRows / splits.
  cg::cluster_group cluster = cg::this_cluster();
  cluster.sync();
  detail::wait_for_previous_grid();  // y may still be read by the previous kernel
  const float* part = reinterpret_cast<const float*>(ring);
  const int rows_per = kWgRows / splits, row_lo = split * rows_per;
  for (int idx = tid; idx < M * rows_per; idx += kWgThreads) {
    const int tok = idx / rows_per, row = row_lo + idx % rows_per;
    float v[8][P];  // every rank's and phase's value first (loads in flight together), then the sum in order
#pragma unroll
    for (int r = 0; r < 8; ++r)
#pragma unroll
      for (int p = 0; p < P; ++p)
        v[r][p] = r < splits ? *cluster.map_shared_rank(part + (kWgTok * p + tok) * kWgPitch + row, r) : 0.0f;
    float sum = v[0][0];
#pragma unroll
    for (int r = 0; r < 8; ++r)
#pragma unroll
      for (int p = 0; p < P; ++p)
        if ((r > 0 || p > 0) && r < splits) sum += v[r][p];
    if (r0 + row < N) store_act<ActT>(y + static_cast<std::size_t>(tok) * N + r0 + row, sum);
  }
  cluster.sync();  // every remote read done before a CTA's shared memory goes away
#endif
}

// Three warpgroups only with the weight scaled into A (kFold): the exact-value form keeps two accumulator
// sets and needs 158 registers a thread, and 13 warps leave 128 (the register file is split among the
// SM's 4 schedulers).
template <int R>
constexpr bool kFoldOf = R == 3;

// Splits of K (cluster size) for a CTA shape: the most of 8, 4, 2, 1 that keeps the grid within one wave, gives every
// CTA at least 2 steps and fits as clusters on this device (the occupancy query: clusters of 4 CTAs of this
// size did not all fit on the H200, whose GPCs do not all hold a multiple of 4 SMs).
// The kernel of a CTA shape, its dynamic shared-memory limit raised once (the error, if any, in *rc).
template <class ActT, int R, int P>
auto wgmma_kernel(int* rc) {
  const auto kernel = gemm4_wgmma_kernel<ActT, R, P, kFoldOf<R>>;
  static const int attr_rc = static_cast<int>(
      cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, WgShape<R, P>::kSmemBytes));
  *rc = attr_rc;
  return kernel;
}

template <class ActT, int R, int P>
int choose_splits(std::size_t row_blocks, int ksteps) {
  int attr_rc = 0;
  const auto kernel = wgmma_kernel<ActT, R, P>(&attr_rc);
  const std::size_t sms = static_cast<std::size_t>(detail::sm_count());
  if (attr_rc != 0) return 1;
  for (int s = 8; s > 1; s /= 2) {
    if (row_blocks * static_cast<std::size_t>(s) > sms || ksteps < 2 * s) continue;
    cudaLaunchConfig_t cfg{};
    cudaLaunchAttribute attr{};
    attr.id = cudaLaunchAttributeClusterDimension;
    attr.val.clusterDim.x = static_cast<unsigned>(s);
    attr.val.clusterDim.y = attr.val.clusterDim.z = 1;
    cfg.gridDim = dim3(static_cast<unsigned>(s), static_cast<unsigned>(row_blocks));
    cfg.blockDim = dim3(WgShape<R, P>::kThreads);
    cfg.dynamicSmemBytes = WgShape<R, P>::kSmemBytes;
    cfg.attrs = &attr;
    cfg.numAttrs = 1;
    int clusters = 0;
    if (cudaOccupancyMaxActiveClusters(&clusters, kernel, &cfg) == cudaSuccess &&
        static_cast<std::size_t>(clusters) >= row_blocks)
      return s;
    cudaGetLastError();
  }
  return 1;
}

struct WgPlan {
  int rows = 2, phases = 1, splits = 1;  // row groups of 64, warpgroups per row group, ranks
};
// Consumer warpgroups per CTA, measured at M = 64 on the H200 (kernels/NOTES.md, session 10): the
// kernel is bound by the latency of each warpgroup's instruction stream (it runs as fast with the loads
// switched off), so what counts is warpgroups at work. 128 rows by default; 64 rows where that puts at
// least twice the CTAs on the GPU in one wave (4096 rows: 128 CTAs against 64, 12.4 µs against 15.9),
// taken by two warpgroups that split the CTA's steps (2 % faster than one); 192 rows (the weight scaled
// into A) where that fits in one wave with a quarter more CTAs than 128 rows (11008 rows: 116 against
// 86, 23.7 µs against 28.0).
template <class ActT>
WgPlan choose_plan(std::size_t n, int ksteps) {
  const std::size_t sms = static_cast<std::size_t>(detail::sm_count());
  const std::size_t rb1 = (n + 63) / 64, rb2 = (n + 127) / 128, rb3 = (n + 191) / 192;
  const WgPlan two{2, 1, choose_splits<ActT, 2, 1>(rb2, ksteps)};
  const std::size_t ctas2 = rb2 * static_cast<std::size_t>(two.splits);
  if (rb1 <= sms) {
    const WgPlan one{1, 2, choose_splits<ActT, 1, 2>(rb1, ksteps)};
    if (rb1 * static_cast<std::size_t>(one.splits) >= 2 * ctas2) return one;
  }
  if (rb3 <= sms) {
    const WgPlan three{3, 1, choose_splits<ActT, 3, 1>(rb3, ksteps)};
    if (4 * rb3 * static_cast<std::size_t>(three.splits) >= 5 * ctas2) return three;
  }
  return two;
}

template <class ActT, int R, int P>
int launch_t(const ActT* x, int M, const Weight4& w, const Dyn8Table& dq, ActT* y, cudaStream_t st, int splits) {
  using Sh = WgShape<R, P>;
  int attr_rc = 0;
  const auto kernel = wgmma_kernel<ActT, R, P>(&attr_rc);
  if (attr_rc != 0) return attr_rc;
  // codes: N rows of K/2 bytes, boxes of kRows rows × 128 bytes; x: [block of 64][token][64 values], boxes of
  // 4 blocks × 64 tokens (tokens past M read as zero).
  CUtensorMap codes_map, x_map;
  const cuuint64_t cdims[2] = {w.K / 2, w.N}, cpitch[1] = {w.K / 2};
  const cuuint32_t cbox[2] = {128, Sh::kRows};
  const cuuint64_t xdims[3] = {64, static_cast<cuuint64_t>(M), w.K / 64}, xpitch[2] = {w.K * 2, 128};
  const cuuint32_t xbox[3] = {64, kWgTok, 4};
  if (!encode_map(&codes_map, CU_TENSOR_MAP_DATA_TYPE_UINT8, w.codes, 2, cdims, cpitch, cbox) ||
      !encode_map(&x_map, CU_TENSOR_MAP_DATA_TYPE_UINT16, x, 3, xdims, xpitch, xbox))
    return static_cast<int>(cudaErrorInvalidValue);
  const std::size_t row_blocks = (w.N + Sh::kRows - 1) / Sh::kRows;
  if (row_blocks > 65535) return static_cast<int>(cudaErrorInvalidValue);
  return static_cast<int>(detail::launch_after_previous_starts_ex(
      true, static_cast<unsigned>(splits), Sh::kSmemBytes, kernel,
      dim3(static_cast<unsigned>(splits), static_cast<unsigned>(row_blocks)), dim3(Sh::kThreads), st, codes_map,
      x_map, M, w.scales, static_cast<int>(w.N), static_cast<int>(w.K), w.table, dq, y));
}

template <class ActT>
int launch_typed(const ActT* x, int M, const Weight4& w, const Dyn8Table& dq, ActT* y, cudaStream_t st) {
  // The plan's occupancy queries run once per shape.
  static std::size_t cached_n = ~std::size_t{0}, cached_k = 0;
  static WgPlan plan;
  if (w.N != cached_n || w.K != cached_k) {
    plan = choose_plan<ActT>(w.N, static_cast<int>(w.K / 256));
    cached_n = w.N;
    cached_k = w.K;
  }
  return plan.rows == 1   ? launch_t<ActT, 1, 2>(x, M, w, dq, y, st, plan.splits)
         : plan.rows == 3 ? launch_t<ActT, 3, 1>(x, M, w, dq, y, st, plan.splits)
                          : launch_t<ActT, 2, 1>(x, M, w, dq, y, st, plan.splits);
}

}  // namespace

bool wgmma_available() {
  static const bool ok =
      sm90a_kernel_runs(reinterpret_cast<const void*>(gemm4_wgmma_kernel<__nv_bfloat16, 2, 1, false>));
  return ok;
}

int launch_wgmma(const void* x, bool act_bf16, int M, const Weight4& w, const Dyn8Table& dq, void* y,
                 cudaStream_t st) {
  if (act_bf16)
    return launch_typed(static_cast<const __nv_bfloat16*>(x), M, w, dq, static_cast<__nv_bfloat16*>(y), st);
  return launch_typed(static_cast<const __half*>(x), M, w, dq, static_cast<__half*>(y), st);
}

}  // namespace lowbit::cuda::gemm4_parts
