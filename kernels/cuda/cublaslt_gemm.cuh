// kernels/cuda/cublaslt_gemm.cuh — cuBLASLt GEMMs used the way its best users
// use it: descriptors and layouts created once per shape, a 32 MiB workspace
// (below 1 MiB the heuristic falls back to an Ampere-era int8 kernel), the
// heuristic's candidates each timed once per shape and the fastest cached
// (the first candidate is not always the best: 1.7x at 16384^3 for int8).
//
// Layout: row-major activations X (M×K), row-major weights W (N×K, K
// contiguous — PyTorch's Linear layout), row-major output Y (M×N):
//   Y = X · Wᵀ
// In cuBLASLt's column-major terms that is the "TN" product
//   Yᵀ (N×M) = op(W)=Wᵀᵀ … i.e. A = W with transa = T, B = X with transb = N,
// the layout Hopper's int8 and FP8 tensor-core kernels require.
#pragma once

#include <cublasLt.h>
#include <cuda_runtime.h>

#include "kernels/cuda/timing.cuh"  // CudaError, check

#include <cstddef>
#include <cstdint>
#include <map>
#include <stdexcept>
#include <string>
#include <tuple>

namespace lowbit::cuda {

// Throw CudaError (timing.cuh) naming the call and the error.
inline void check_cuda(cudaError_t e, const char* what) { check(static_cast<int>(e), what); }
void check_cublas(cublasStatus_t s, const char* what);

enum class GemmKind : std::uint8_t {
  int8_int32,     // int8 × int8 → int32, exact
  e4m3_e4m3_bf16, // FP8 e4m3 × e4m3 → bf16, per-tensor scales (device pointers), fp32 accumulate
  e5m2_e4m3_bf16, // FP8 e5m2 activations × e4m3 weights → bf16
  bf16_bf16_bf16, // the 16-bit baseline, fp32 accumulate
  f16_f16_f16,
};

const char* gemm_kind_name(GemmKind k);

class LtGemm {
 public:
  explicit LtGemm(std::size_t workspace_bytes = std::size_t{32} << 20);
  ~LtGemm();
  LtGemm(const LtGemm&) = delete;
  LtGemm& operator=(const LtGemm&) = delete;

  // Y = X · Wᵀ (see the file comment). For FP8 kinds, x_scale / w_scale are
  // device pointers to one fp32 each (the dequantization factors), else null.
  // The first call for a shape picks the algorithm (times up to
  // `candidates` heuristic results once each, synchronising) — call it once
  // outside graph capture; later calls never synchronise and are capturable.
  void run(GemmKind kind, int m, int n, int k, const void* x, const void* w, void* y, cudaStream_t stream,
           const float* x_scale = nullptr, const float* w_scale = nullptr);

  // Prepare (and autotune) a shape without computing anything useful.
  void prepare(GemmKind kind, int m, int n, int k, const void* x, const void* w, void* y, cudaStream_t stream,
               const float* x_scale = nullptr, const float* w_scale = nullptr);

  // For reports: the chosen candidate's index in the heuristic's list and
  // how many it returned.
  std::pair<int, int> chosen(GemmKind kind, int m, int n, int k) const;

  int candidates = 8;

 private:
  struct Plan;
  using Key = std::tuple<int, int, int, int>;
  Plan& plan(GemmKind kind, int m, int n, int k, const void* x, const void* w, void* y, cudaStream_t stream,
             const float* x_scale, const float* w_scale);
  void launch(const Plan& p, const void* x, const void* w, void* y, cudaStream_t stream, const float* x_scale,
              const float* w_scale) const;

  cublasLtHandle_t handle_ = nullptr;
  void* workspace_ = nullptr;
  std::size_t workspace_bytes_ = 0;
  std::map<Key, Plan*> plans_;
};

}  // namespace lowbit::cuda
