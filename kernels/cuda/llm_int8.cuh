// kernels/cuda/llm_int8.cuh — LLM.int8() and vector-wise int8 matmul on the
// GPU with no host synchronisation, so a whole layer is one CUDA graph.
// CPU reference: kernels/cpu/llm_int8.{hpp,cpp}.
//
//   Y (M×N) = X (M×K) · Wᵀ,  W: N×K (PyTorch Linear layout)
//
// 1. One pass over X, two launches. quantize_rows: the row held in
//    registers; row absmax over its values |x| < threshold, int8 =
//    round(x · 127 / absmax) half away from zero, the values >= threshold 0
//    and their columns flagged (a byte each); the last block to finish turns
//    the flags into an ascending index list and a count, on the device
//    (bitsandbytes' argwhere is a host sync that costs as much as the GEMM
//    at decode sizes). outlier_gather (started early, it waits for the
//    list): zeroes the outlier columns of the int8 rows, copies their x
//    values to a compact [M][count] block and the outlier weight columns to a
//    contiguous [count][N] fp32 one.
//    The row rule is bitsandbytes' (cpu::RowAbsmax::outlier_values_excluded);
//    the paper's (absmax without the outlier columns) needs every row's
//    flags before any row is quantized — a second pass over X.
// 2. int8 × int8 → int32 through cuBLASLt (TN, tuned once per shape).
//    From M > 64 and about one wave of 128 × 256 output tiles on, steps 2 and
//    3 are one kernel instead (Int8Path::wgmma): the sums never go to memory, unless
//    there are more than 32 outlier columns (the device decides: the GEMM
//    then writes them and step 3 runs as usual).
//    At small M (decode) steps 2 and 3 are one kernel instead: the weight
//    streamed once through the tensor cores (mma.sync), the int32 sums
//    dequantized in registers (fused_small_m_kernel; the same outputs bit for
//    bit), and step 1 one cluster of 16 blocks (prepare_small_m_kernel).
//    See Int8Path.
// 3. epilogue: Y = C32 · rowabsmax · colabsmax / 127² (the CPU reference's
//    float operations, in its order) + X[:, outliers] · Wdq[:, outliers]ᵀ
//    accumulated in fp32, rounded once to the output dtype.
// The gather and steps 2 and 3 start while the kernel before them ends
// (programmatic dependent launch) when they are about one wave; LOWBIT_PDL=0
// turns that off.
// Weights are quantized once over whole rows. The outlier product uses the
// 16-bit weight when the layer is given it (LLM.int8() proper), else the
// int8 weight's dequantization (bitsandbytes without fp16 weights). The CPU
// reference's llm_int8_matmul re-quantizes B without the outlier rows, so
// the tests compare the integer parts exactly and the outputs to a stated
// tolerance.
// With threshold = +inf this is plain vector-wise int8.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <limits>

#include "kernels/cuda/cublaslt_gemm.cuh"

namespace lowbit::cuda {

enum class Act : std::uint8_t { bf16, f16 };

// int8 weights quantized once, per output channel (row of W); K and N are
// padded to multiples of 16 with zeros (cuBLASLt's int8 kernels need it).
struct Int8Weight {
  int n = 0, k = 0, n_padded = 0, k_padded = 0;
  std::int8_t* data = nullptr;  // n_padded × k_padded row-major
  float* absmax = nullptr;      // [n_padded], 0 for padding rows
};

// Quantize W (N×K, bf16 or fp16, device) per row. Allocates; free with free_weight.
Int8Weight quantize_weight(Act act, const void* w, int n, int k, cudaStream_t stream);
void free_weight(Int8Weight& w);

// Benchmarks and tests: multiply every column c of x (M×K) with
// c % every == every / 2 by `scale` — planted outlier columns, 1/every of them.
void plant_outlier_columns(Act act, void* x, int m, int k, int every, float scale, cudaStream_t stream);

// How forward() runs the layer (the outputs are the same bit for bit, except
// that wgmma's outlier product runs on the tensor cores and agrees with the
// others' to one unit in the last place plus 2^-20 of the outlier
// products' magnitude, tests/test_cuda_llm_int8.cpp):
//   fused_small_m  one cluster launch flags and quantizes X, one kernel
//                  multiplies and dequantizes (M ≤ 32 and M·K ≤ 512 Ki);
//   cublaslt       the quantize and gather launches, cuBLASLt, the epilogue (any M);
//   wgmma          the quantize and gather launches, then one int8 GEMM on
//                  Hopper's wgmma with the dequantization and the outlier
//                  product in its epilogue (llm_int8_wgmma.cu; sm_90a builds
//                  on a 9.0 device, else forward throws);
//   automatic      fused_small_m up to M = kFusedAutoMaxM where its grid is
//                  about one wave (N ≤ 16 · 4 · SMs); wgmma where available,
//                  M > 64 and its 128 × 256 tiles fill 70 % of the SMs; else cublaslt.
// The others are there for tests and benchmarks.
enum class Int8Path : std::uint8_t { automatic, cublaslt, fused_small_m, wgmma };
inline constexpr int kFusedAutoMaxM = 16;

class LlmInt8Layer {
 public:
  // threshold: outlier magnitude (6.0 in LLM.int8); +inf for plain vector-wise int8.
  // w16: the 16-bit weight (N×K, the activation dtype) for the outlier
  // columns, as LLM.int8() prescribes (bitsandbytes' has_fp16_weights); null:
  // the outlier product uses the int8 weight's dequantization instead, which
  // saves the 16-bit copy but keeps the weight's int8 error on the outliers.
  LlmInt8Layer(LtGemm& gemm, const Int8Weight& w, Act act, int max_m,
               float threshold = 6.0f, const void* w16 = nullptr);
  ~LlmInt8Layer();
  LlmInt8Layer(const LlmInt8Layer&) = delete;
  LlmInt8Layer& operator=(const LlmInt8Layer&) = delete;

  // y (M×N) = x (M×K) · Wᵀ, both row-major in the layer's activation dtype.
  // No host synchronisation; capturable after the first call for this M
  // (which tunes the GEMM).
  void forward(const void* x, void* y, int m, cudaStream_t stream);

  // The layer keeps the outlier weight columns it gathered and gathers them
  // again only when a call's outlier columns differ (they mostly repeat:
  // LLM.int8's outliers sit in a few fixed feature dimensions). So the
  // weights must not change behind its back: after writing new values into
  // them, call this (stream-ordered) before the next forward.
  void weights_changed(cudaStream_t stream);

  // fused_small_m takes M ≤ 32 and M·K ≤ 512 Ki (forward throws beyond).
  void set_path(Int8Path path) { path_ = path; }

  // Device buffers of the last forward, for tests.
  const std::int8_t* x_int8() const { return x_int8_; }       // max_m × k_padded
  const float* row_absmax() const { return row_absmax_; }     // [max_m]
  const std::int32_t* c32() const { return c32_; }            // max_m × n_padded; cuBLASLt path only
  // The path forward takes for M tokens under the current setting.
  Int8Path path_for(int m) const;
  // Whether Int8Path::wgmma runs here (lowbit's sm_90a build on a compute capability 9.0 device).
  static bool wgmma_available();
  const int* outlier_cols() const { return cols_; }           // [count]
  const int* outlier_count() const { return count_; }         // one int
  int k_padded() const { return w_.k_padded; }
  int n_padded() const { return w_.n_padded; }

 private:
  LtGemm& gemm_;
  Int8Weight w_;
  Act act_;
  int max_m_;
  float threshold_;
  const void* w16_;
  Int8Path path_ = Int8Path::automatic;
  std::int8_t* x_int8_ = nullptr;
  float* row_absmax_ = nullptr;
  std::int32_t* c32_ = nullptr;
  std::uint8_t* flags_ = nullptr;  // one byte per column of X, [round_up(k, 16)]; 0 between calls
  unsigned* done_ = nullptr;       // step 1's completion counter; 0 between calls
  int* cols_ = nullptr;
  int* count_ = nullptr;
  float* gathered_ = nullptr;   // outlier weight columns, [min(k, 512)][n_padded] fp32
  int* gathered_cols_ = nullptr;  // which: [min(k, 512)], the first *gathered_used_ of them
  int* gathered_used_ = nullptr;  // −1: none (see weights_changed)
  float* outlier_x_ = nullptr;  // outlier activation columns, [max_m][outlier_x_stride()] fp32
  int outlier_x_stride() const;
};

}  // namespace lowbit::cuda
