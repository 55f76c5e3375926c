// kernels/capi/lowbit_capi.cpp — a C entry point to lowbit's matmuls, so that a
// peer benchmark can time them in its own process, interleaved with the peer
// on the same tensors (scripts/peer_bench.py --lowbit-lib).
//
// Why: the FP8 and int8 GEMMs of LLM layers run at the card's power limit, and
// their clock follows what ran in the previous tens of milliseconds. Two
// processes never see the same history, so a cross-process ratio of the same
// cuBLASLt kernel moved between 0.83 and 1.0 (kernels/NOTES.md, issue 11,
// session 11). Interleaved in one process, both sides get the same history.
//
// Every function returns 0 on success and a non-zero code otherwise, with the
// message in lowbit_capi_last_error(); nothing throws across the C boundary.
// Pointers are device pointers; `stream` is a cudaStream_t (PyTorch:
// torch.cuda.current_stream().cuda_stream). The first call for a shape tunes
// the GEMM (synchronising): make it outside graph capture.
#include <cuda_runtime.h>

#include <exception>
#include <memory>
#include <stdexcept>
#include <string>

#include "kernels/cuda/cublaslt_gemm.cuh"
#include "kernels/cuda/llm_int8.cuh"

namespace {
using namespace lowbit::cuda;

thread_local std::string last_error;

LtGemm& shared_gemm() {
  static LtGemm gemm;  // one workspace and one plan cache for the process
  return gemm;
}

template <typename F>
int guarded(F&& f) {
  try {
    f();
    return 0;
  } catch (const std::exception& e) {
    last_error = e.what();
  } catch (...) {
    last_error = "unknown error";
  }
  return 1;
}

void check_sizes(const char* fn, int m, int n, int k) {
  if (m <= 0 || n <= 0 || k <= 0)
    throw std::invalid_argument(std::string(fn) + ": M, N and K must be positive (got " + std::to_string(m) + ", " +
                                std::to_string(n) + ", " + std::to_string(k) + ")");
}

struct Layer {
  Int8Weight w{};
  std::unique_ptr<LlmInt8Layer> layer;
  ~Layer() {
    layer.reset();
    free_weight(w);
  }
};
}  // namespace

#define LOWBIT_CAPI __attribute__((visibility("default")))

extern "C" {

LOWBIT_CAPI const char* lowbit_capi_last_error(void) { return last_error.c_str(); }

// y (M×N bf16) = x (M×K) · wᵀ (N×K) with per-tensor dequantization factors
// x_scale, w_scale (one fp32 each, device). x is e4m3 (x_is_e5m2 = 0) or e5m2;
// w is e4m3. Row-major, as torch._scaled_mm(x, w.t(), …) takes them.
LOWBIT_CAPI int lowbit_fp8_gemm(int x_is_e5m2, int m, int n, int k, const void* x, const void* w, void* y,
                                const float* x_scale, const float* w_scale, void* stream) {
  return guarded([&] {
    check_sizes("lowbit_fp8_gemm", m, n, k);
    shared_gemm().run(x_is_e5m2 ? GemmKind::e5m2_e4m3_bf16 : GemmKind::e4m3_e4m3_bf16, m, n, k, x, w, y,
                      static_cast<cudaStream_t>(stream), x_scale, w_scale);
  });
}

// c (M×N int32) = x (M×K int8) · wᵀ (N×K int8); K and N multiples of 16.
LOWBIT_CAPI int lowbit_int8_gemm(int m, int n, int k, const void* x, const void* w, void* c, void* stream) {
  return guarded([&] {
    check_sizes("lowbit_int8_gemm", m, n, k);
    if (k % 16 || n % 16) throw std::invalid_argument("lowbit_int8_gemm: K and N must be multiples of 16");
    shared_gemm().run(GemmKind::int8_int32, m, n, k, x, w, c, static_cast<cudaStream_t>(stream));
  });
}

// An LLM.int8 layer from a 16-bit weight w16 (N×K; fp16 if act_fp16, else
// bf16): int8 row-wise weight, outlier columns through w16 itself (kept by
// reference: it must outlive the layer). threshold = +inf: plain vector-wise
// int8. Returns null on failure.
LOWBIT_CAPI void* lowbit_llm_int8_create(int act_fp16, const void* w16, int n, int k, int max_m, float threshold, void* stream) {
  Layer* out = nullptr;
  guarded([&] {
    check_sizes("lowbit_llm_int8_create", max_m, n, k);
    if (!w16) throw std::invalid_argument("lowbit_llm_int8_create: null weight");
    auto l = std::make_unique<Layer>();
    const Act act = act_fp16 ? Act::f16 : Act::bf16;
    l->w = quantize_weight(act, w16, n, k, static_cast<cudaStream_t>(stream));
    l->layer = std::make_unique<LlmInt8Layer>(shared_gemm(), l->w, act, max_m, threshold, w16);
    out = l.release();
  });
  return out;
}

// y (M×N) = x (M×K) · Wᵀ through the layer; M ≤ its max_m.
LOWBIT_CAPI int lowbit_llm_int8_forward(void* layer, const void* x, void* y, int m, void* stream) {
  return guarded([&] {
    if (!layer) throw std::invalid_argument("lowbit_llm_int8_forward: null layer");
    static_cast<Layer*>(layer)->layer->forward(x, y, m, static_cast<cudaStream_t>(stream));
  });
}

LOWBIT_CAPI void lowbit_llm_int8_destroy(void* layer) { delete static_cast<Layer*>(layer); }

}  // extern "C"
