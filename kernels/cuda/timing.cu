// kernels/cuda/timing.cu — see timing.cuh.
#include "kernels/cuda/timing.cuh"

#include <cublasLt.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <stdexcept>

namespace lowbit::cuda {

void check(int rc, const char* what) {
  if (rc != 0)
    throw CudaError(rc, std::string(what) + ": " + cudaGetErrorString(static_cast<cudaError_t>(rc)));
}

namespace {

void check_blas(cublasStatus_t st, const char* what) {
  if (st != CUBLAS_STATUS_SUCCESS)
    throw CudaError(static_cast<int>(st), std::string(what) + ": cuBLAS status " + std::to_string(static_cast<int>(st)));
}


struct Events {
  cudaEvent_t a = nullptr, b = nullptr;
  Events() {
    check(cudaEventCreate(&a), "cudaEventCreate");
    check(cudaEventCreate(&b), "cudaEventCreate");
  }
  ~Events() {
    cudaEventDestroy(a);
    cudaEventDestroy(b);
  }
  double elapsed_us() const {
    float ms = 0;
    check(cudaEventSynchronize(b), "cudaEventSynchronize");
    check(cudaEventElapsedTime(&ms, a, b), "cudaEventElapsedTime");
    return ms * 1000.0;
  }
};

__global__ void fill_normal_kernel(void* p, std::size_t n, int dtype, float stddev, std::uint64_t seed) {
  for (std::size_t i = std::size_t{blockIdx.x} * blockDim.x + threadIdx.x; i < n; i += std::size_t{gridDim.x} * blockDim.x) {
    // Box–Muller on two splitmix64 draws: reproducible, independent of the launch shape.
    std::uint64_t z = seed ^ (i * 0x9E3779B97F4A7C15ull);
    auto next = [&z]() {
      z += 0x9E3779B97F4A7C15ull;
      std::uint64_t r = z;
      r = (r ^ (r >> 30)) * 0xBF58476D1CE4E5B9ull;
      r = (r ^ (r >> 27)) * 0x94D049BB133111EBull;
      return r ^ (r >> 31);
    };
    const float u1 = (static_cast<float>(next() >> 40) + 1.0f) * 0x1p-24f;  // (0, 1]
    const float u2 = static_cast<float>(next() >> 40) * 0x1p-24f;
    float v = stddev * sqrtf(-2.0f * logf(u1)) * cospif(2.0f * u2);
    if (v == 0.0f) v = stddev * 1e-3f;  // never exactly zero
    if (dtype == 0) static_cast<float*>(p)[i] = v;
    else if (dtype == 1) static_cast<__half*>(p)[i] = __float2half_rn(v);
    else static_cast<__nv_bfloat16*>(p)[i] = __float2bfloat16_rn(v);
  }
}

__global__ void fill_bytes_kernel(std::uint32_t* p, std::size_t words, std::uint64_t seed) {
  for (std::size_t i = std::size_t{blockIdx.x} * blockDim.x + threadIdx.x; i < words; i += std::size_t{gridDim.x} * blockDim.x) {
    std::uint64_t r = seed ^ (i * 0x9E3779B97F4A7C15ull);
    r = (r ^ (r >> 30)) * 0xBF58476D1CE4E5B9ull;
    r = (r ^ (r >> 27)) * 0x94D049BB133111EBull;
    p[i] = static_cast<std::uint32_t>(r ^ (r >> 31));
  }
}

__global__ void fill_uniform_kernel(float* p, std::size_t n, float lo, float hi, std::uint64_t seed) {
  for (std::size_t i = std::size_t{blockIdx.x} * blockDim.x + threadIdx.x; i < n; i += std::size_t{gridDim.x} * blockDim.x) {
    std::uint64_t r = seed ^ (i * 0x9E3779B97F4A7C15ull);
    r = (r ^ (r >> 30)) * 0xBF58476D1CE4E5B9ull;
    r = (r ^ (r >> 27)) * 0x94D049BB133111EBull;
    p[i] = lo + (hi - lo) * static_cast<float>((r ^ (r >> 31)) >> 40) * 0x1p-24f;
  }
}

// Reads n16 16-byte words; the XOR of all of them decides a store that random data practically never
// makes, so the loads cannot be dropped. Four loads in flight per thread and iteration.
__global__ void __launch_bounds__(512) read_kernel(const uint4* __restrict__ p, std::size_t n16,
                                                   std::uint32_t* __restrict__ sink) {
  const std::size_t stride = static_cast<std::size_t>(gridDim.x) * blockDim.x;
  std::size_t i = static_cast<std::size_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  std::uint32_t acc = 0;
  for (; i + 3 * stride < n16; i += 4 * stride) {
    const uint4 a = __ldcs(p + i), b = __ldcs(p + i + stride), c = __ldcs(p + i + 2 * stride),
                d = __ldcs(p + i + 3 * stride);
    acc ^= a.x ^ a.y ^ a.z ^ a.w ^ b.x ^ b.y ^ b.z ^ b.w ^ c.x ^ c.y ^ c.z ^ c.w ^ d.x ^ d.y ^ d.z ^ d.w;
  }
  for (; i < n16; i += stride) {
    const uint4 a = __ldcs(p + i);
    acc ^= a.x ^ a.y ^ a.z ^ a.w;
  }
  if (acc == 0x9E3779B9u) *sink = acc;
}
}  // namespace

Timing summarize(std::vector<double> per_call_us, int calls) {
  Timing t;
  std::sort(per_call_us.begin(), per_call_us.end());
  const auto at = [&](double f) {
    const double pos = f * (per_call_us.size() - 1);
    const auto lo = static_cast<std::size_t>(std::floor(pos));
    const auto hi = std::min(lo + 1, per_call_us.size() - 1);
    return per_call_us[lo] + (pos - lo) * (per_call_us[hi] - per_call_us[lo]);
  };
  t.median_us = at(0.5);
  t.p10_us = at(0.1);
  t.p90_us = at(0.9);
  t.min_us = per_call_us.front();
  t.max_us = per_call_us.back();
  t.reps = static_cast<int>(per_call_us.size());
  t.calls = calls;
  return t;
}

Timing time_eager(const LaunchFn& launch, const TimingConfig& cfg, void* stream) {
  auto st = static_cast<cudaStream_t>(stream);
  Events ev;
  int i = 0;
  for (int w = 0; w < cfg.warmup; ++w)
    for (int c = 0; c < cfg.calls; ++c) launch(stream, i++);
  check(cudaStreamSynchronize(st), "warm-up");
  std::vector<double> us;
  for (int r = 0; r < cfg.reps; ++r) {
    check(cudaEventRecord(ev.a, st), "cudaEventRecord");
    for (int c = 0; c < cfg.calls; ++c) launch(stream, i++);
    check(cudaEventRecord(ev.b, st), "cudaEventRecord");
    us.push_back(ev.elapsed_us() / cfg.calls);
  }
  check(cudaGetLastError(), "timed launches");
  return summarize(us, cfg.calls);
}

Timing time_graph(const LaunchFn& launch, const TimingConfig& cfg, void* stream) {
  auto st = static_cast<cudaStream_t>(stream);
  cudaGraph_t graph = nullptr;
  cudaGraphExec_t exec = nullptr;
  check(cudaStreamBeginCapture(st, cudaStreamCaptureModeThreadLocal), "cudaStreamBeginCapture");
  try {
    for (int c = 0; c < cfg.calls; ++c) launch(stream, c);
  } catch (...) {
    cudaStreamEndCapture(st, &graph);
    if (graph) cudaGraphDestroy(graph);
    throw;
  }
  check(cudaStreamEndCapture(st, &graph), "cudaStreamEndCapture");
  check(cudaGraphInstantiate(&exec, graph, 0), "cudaGraphInstantiate");
  Events ev;
  std::vector<double> us;
  try {
    for (int w = 0; w < cfg.warmup; ++w) check(cudaGraphLaunch(exec, st), "cudaGraphLaunch");
    check(cudaStreamSynchronize(st), "graph warm-up");
    for (int r = 0; r < cfg.reps; ++r) {
      check(cudaEventRecord(ev.a, st), "cudaEventRecord");
      check(cudaGraphLaunch(exec, st), "cudaGraphLaunch");
      check(cudaEventRecord(ev.b, st), "cudaEventRecord");
      us.push_back(ev.elapsed_us() / cfg.calls);
    }
  } catch (...) {
    cudaGraphExecDestroy(exec);
    cudaGraphDestroy(graph);
    throw;
  }
  cudaGraphExecDestroy(exec);
  cudaGraphDestroy(graph);
  return summarize(us, cfg.calls);
}

DeviceBuffer::DeviceBuffer(std::size_t bytes, const char* what) : n_(bytes) {
  if (bytes == 0) return;
  const cudaError_t rc = cudaMalloc(&p_, bytes);
  if (rc != cudaSuccess) {
    cudaGetLastError();  // clear
    std::size_t free_b = 0, total_b = 0;
    cudaMemGetInfo(&free_b, &total_b);
    char msg[256];
    std::snprintf(msg, sizeof msg, "cudaMalloc(%s, %.1f MiB) failed: %s (free %.1f MiB of %.1f MiB)", what,
                  bytes / 1048576.0, cudaGetErrorString(rc), free_b / 1048576.0, total_b / 1048576.0);
    p_ = nullptr;
    throw CudaError(static_cast<int>(rc), msg);
  }
}
DeviceBuffer::~DeviceBuffer() {
  if (p_) cudaFree(p_);
}
DeviceBuffer& DeviceBuffer::operator=(DeviceBuffer&& o) noexcept {
  if (this != &o) {
    if (p_) cudaFree(p_);
    p_ = o.p_;
    n_ = o.n_;
    o.p_ = nullptr;
    o.n_ = 0;
  }
  return *this;
}

void fill_random_normal(void* p, std::size_t n, int dtype, float stddev, std::uint64_t seed, void* stream) {
  if (n == 0) return;
  fill_normal_kernel<<<1024, 256, 0, static_cast<cudaStream_t>(stream)>>>(p, n, dtype, stddev, seed);
  check(cudaGetLastError(), "fill_random_normal");
}
void fill_random_bytes(void* p, std::size_t bytes, std::uint64_t seed, void* stream) {
  const std::size_t words = bytes / 4;
  if (words) {
    fill_bytes_kernel<<<1024, 256, 0, static_cast<cudaStream_t>(stream)>>>(static_cast<std::uint32_t*>(p), words, seed);
    check(cudaGetLastError(), "fill_random_bytes");
  }
  if (bytes % 4) {
    const std::uint8_t tail[3] = {0x5A, 0xA5, 0x3C};
    check(cudaMemcpyAsync(static_cast<std::uint8_t*>(p) + words * 4, tail, bytes % 4, cudaMemcpyHostToDevice,
                          static_cast<cudaStream_t>(stream)),
          "fill_random_bytes tail");
    check(cudaStreamSynchronize(static_cast<cudaStream_t>(stream)), "fill_random_bytes tail");
  }
}
void fill_random_uniform_f32(float* p, std::size_t n, float lo, float hi, std::uint64_t seed, void* stream) {
  if (n == 0) return;
  fill_uniform_kernel<<<1024, 256, 0, static_cast<cudaStream_t>(stream)>>>(p, n, lo, hi, seed);
  check(cudaGetLastError(), "fill_random_uniform_f32");
}

DeviceInfo device_info() {
  DeviceInfo d;
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess || n == 0) {
    cudaGetLastError();
    return d;
  }
  cudaDeviceProp p{};
  if (cudaGetDeviceProperties(&p, 0) != cudaSuccess) {
    cudaGetLastError();
    return d;
  }
  d.present = true;
  d.name = p.name;
  d.sm_count = p.multiProcessorCount;
  d.cc_major = p.major;
  d.cc_minor = p.minor;
  d.l2_bytes = static_cast<std::size_t>(p.l2CacheSize);
  d.global_mem_bytes = p.totalGlobalMem;
  int v = 0;
  if (cudaDeviceGetAttribute(&v, cudaDevAttrClockRate, 0) == cudaSuccess) d.sm_clock_mhz = v / 1000;
  if (cudaDeviceGetAttribute(&v, cudaDevAttrMemoryClockRate, 0) == cudaSuccess) d.mem_clock_mhz = v / 1000;
  if (cudaDeviceGetAttribute(&v, cudaDevAttrGlobalMemoryBusWidth, 0) == cudaSuccess) d.mem_bus_bits = v;
  cudaGetLastError();
  cudaDriverGetVersion(&d.driver_version);
  cudaRuntimeGetVersion(&d.runtime_version);
  return d;
}

Timing time_copy(std::size_t bytes, const TimingConfig& cfg, void* stream, double* gbps) {
  DeviceBuffer a(bytes, "copy source"), b(bytes, "copy destination");
  fill_random_bytes(a.get(), bytes, 1, stream);
  auto st = static_cast<cudaStream_t>(stream);
  TimingConfig c = cfg;
  c.calls = 1;
  Timing t = time_eager(
      [&](void*, int) { check(cudaMemcpyAsync(b.get(), a.get(), bytes, cudaMemcpyDeviceToDevice, st), "cudaMemcpyAsync"); },
      c, stream);
  if (gbps) *gbps = 2.0 * static_cast<double>(bytes) / (t.median_us * 1e3);
  return t;
}

Timing time_read(std::size_t bytes, const TimingConfig& cfg, void* stream, double* gbps) {
  const std::size_t n16 = bytes / 16;
  DeviceBuffer a(n16 * 16, "read source"), sink(4, "read sink");
  fill_random_bytes(a.get(), n16 * 16, 2, stream);
  int sms = 0, dev = 0;
  check(cudaGetDevice(&dev), "cudaGetDevice");
  check(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev), "multiprocessor count");
  auto st = static_cast<cudaStream_t>(stream);
  TimingConfig c = cfg;
  c.calls = 4;  // back to back: the launch gaps average out (1 GiB takes ~0.35 ms)
  const Timing t = time_eager(
      [&](void*, int) {
        read_kernel<<<4 * sms, 512, 0, st>>>(static_cast<const uint4*>(a.get()), n16, sink.as<std::uint32_t>());
        check(cudaGetLastError(), "read_kernel");
      },
      c, stream);
  if (gbps) *gbps = static_cast<double>(n16 * 16) / (t.median_us * 1e3);
  return t;
}

struct LtMatmul::Impl {
  cublasLtHandle_t handle = nullptr;
  cublasLtMatmulDesc_t desc = nullptr;
  cublasLtMatrixLayout_t a = nullptr, b = nullptr, c = nullptr;
  cublasLtMatmulAlgo_t algo{};
  DeviceBuffer workspace;
  std::size_t ws_bytes = 32u << 20;
};

LtMatmul::LtMatmul(std::size_t M, std::size_t N, std::size_t K, bool bf16) : impl_(new Impl) {
  // Column-major view: C (N × M, ldc = N) = op(A) · B with A = W stored K × N
  // (lda = K, transposed: W is row-major N × K), B = x stored K × M (ldb = K).
  const cudaDataType_t t = bf16 ? CUDA_R_16BF : CUDA_R_16F;
  try {
    check_blas(cublasLtCreate(&impl_->handle), "cublasLtCreate");
    check_blas(cublasLtMatmulDescCreate(&impl_->desc, CUBLAS_COMPUTE_32F, CUDA_R_32F), "cublasLtMatmulDescCreate");
    const cublasOperation_t tr = CUBLAS_OP_T, no = CUBLAS_OP_N;
    check_blas(cublasLtMatmulDescSetAttribute(impl_->desc, CUBLASLT_MATMUL_DESC_TRANSA, &tr, sizeof tr), "TRANSA");
    check_blas(cublasLtMatmulDescSetAttribute(impl_->desc, CUBLASLT_MATMUL_DESC_TRANSB, &no, sizeof no), "TRANSB");
    check_blas(cublasLtMatrixLayoutCreate(&impl_->a, t, K, N, K), "layout A");
    check_blas(cublasLtMatrixLayoutCreate(&impl_->b, t, K, M, K), "layout B");
    check_blas(cublasLtMatrixLayoutCreate(&impl_->c, t, N, M, N), "layout C");
    impl_->workspace = DeviceBuffer(impl_->ws_bytes, "cuBLASLt workspace");
    cublasLtMatmulPreference_t pref = nullptr;
    check_blas(cublasLtMatmulPreferenceCreate(&pref), "preference");
    check_blas(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &impl_->ws_bytes,
                                                    sizeof impl_->ws_bytes),
               "workspace preference");
    cublasLtMatmulHeuristicResult_t res{};
    int found = 0;
    const cublasStatus_t st = cublasLtMatmulAlgoGetHeuristic(impl_->handle, impl_->desc, impl_->a, impl_->b, impl_->c,
                                                             impl_->c, pref, 1, &res, &found);
    cublasLtMatmulPreferenceDestroy(pref);
    check_blas(st, "cublasLtMatmulAlgoGetHeuristic");
    if (found == 0) throw CudaError(-1, "cuBLASLt: no algorithm for this matmul");
    impl_->algo = res.algo;
  } catch (...) {
    this->~LtMatmul();
    throw;
  }
}

LtMatmul::~LtMatmul() {
  if (!impl_) return;
  if (impl_->a) cublasLtMatrixLayoutDestroy(impl_->a);
  if (impl_->b) cublasLtMatrixLayoutDestroy(impl_->b);
  if (impl_->c) cublasLtMatrixLayoutDestroy(impl_->c);
  if (impl_->desc) cublasLtMatmulDescDestroy(impl_->desc);
  if (impl_->handle) cublasLtDestroy(impl_->handle);
  delete impl_;
  impl_ = nullptr;
}

void LtMatmul::run(const void* x, const void* w, void* y, void* stream) const {
  const float alpha = 1.0f, beta = 0.0f;
  check_blas(cublasLtMatmul(impl_->handle, impl_->desc, &alpha, w, impl_->a, x, impl_->b, &beta, y, impl_->c, y,
                            impl_->c, &impl_->algo, impl_->workspace.get(), impl_->ws_bytes,
                            static_cast<cudaStream_t>(stream)),
             "cublasLtMatmul");
}

}  // namespace lowbit::cuda
