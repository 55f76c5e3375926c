// kernels/cuda/timing.cuh — how lowbit times GPU work (design.md, "Measurement rules").
//
// A timed operation is a callable launch(stream, i) that enqueues one call
// on `stream` using input set i % rotation (the caller keeps `rotation`
// copies of its buffers, together larger than L2, so no call reads what the
// previous one left in the cache). Two ways, both reported:
//
//   eager  events around `calls` consecutive launches from the host (launch
//          overhead and gaps included), divided by `calls`;
//   graph  the same `calls` launches captured once into a CUDA graph; each
//          replay is timed with events and divided by `calls`.
//
// Each way: `warmup` untimed rounds, then `reps` timed rounds (≥ 50 by
// default); the result is the median per-call time with the 10th/90th
// percentiles and min/max as the spread. Data is never zeros (callers fill
// random values; see fill_random_*).
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <stdexcept>
#include <string>
#include <vector>

namespace lowbit::cuda {

struct TimingConfig {
  int warmup = 5;
  int reps = 50;
  int calls = 20;  // launches per timed round
};

struct Timing {
  double median_us = 0, p10_us = 0, p90_us = 0, min_us = 0, max_us = 0;
  int reps = 0, calls = 0;
};

// launch(stream, i) enqueues call i. Throws CudaError on any CUDA failure.
using LaunchFn = std::function<void(void* stream, int i)>;
Timing time_eager(const LaunchFn& launch, const TimingConfig& cfg, void* stream);
Timing time_graph(const LaunchFn& launch, const TimingConfig& cfg, void* stream);
// Median, p10 / p90 (linear interpolation), min and max of per-call times.
Timing summarize(std::vector<double> per_call_us, int calls);

// A CUDA failure, with the call and the error string; thrown by the helpers.
struct CudaError : std::runtime_error {
  int code;
  CudaError(int c, const std::string& what) : std::runtime_error(what), code(c) {}
};
// Throws CudaError(rc, "<what>: <cudaGetErrorString(rc)>") when rc != 0.
void check(int rc, const char* what);

// Device memory that frees itself. Allocation failure throws CudaError with
// the request and the free / total memory in the message.
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  explicit DeviceBuffer(std::size_t bytes, const char* what = "buffer");
  ~DeviceBuffer();
  DeviceBuffer(DeviceBuffer&& o) noexcept : p_(o.p_), n_(o.n_) { o.p_ = nullptr; o.n_ = 0; }
  DeviceBuffer& operator=(DeviceBuffer&& o) noexcept;
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  void* get() const { return p_; }
  template <class T>
  T* as() const { return static_cast<T*>(p_); }
  std::size_t bytes() const { return n_; }

 private:
  void* p_ = nullptr;
  std::size_t n_ = 0;
};

// Fill with reproducible random data on the device (never zeros):
// fp32/fp16/bf16 normal(0, stddev) values (dtype: 0 fp32, 1 fp16, 2 bf16,
// matching DType), or random bytes.
void fill_random_normal(void* p, std::size_t n, int dtype, float stddev, std::uint64_t seed, void* stream);
void fill_random_bytes(void* p, std::size_t bytes, std::uint64_t seed, void* stream);
// Fill n fp32 values with positive random scales in [lo, hi).
void fill_random_uniform_f32(float* p, std::size_t n, float lo, float hi, std::uint64_t seed, void* stream);

struct DeviceInfo {
  bool present = false;
  std::string name;
  int sm_count = 0, cc_major = 0, cc_minor = 0;
  int sm_clock_mhz = 0, mem_clock_mhz = 0, mem_bus_bits = 0;  // 0 where the runtime no longer reports it
  std::size_t l2_bytes = 0, global_mem_bytes = 0;
  int driver_version = 0, runtime_version = 0;  // e.g. 13000
};
// present = false (and no exception) when there is no usable CUDA device.
DeviceInfo device_info();

// Device-to-device copy bandwidth, bytes read + written per second, median
// over `reps` copies of `bytes` (cudaMemcpyAsync).
Timing time_copy(std::size_t bytes, const TimingConfig& cfg, void* stream, double* gbps);

// Read bandwidth, bytes read per second, median over `reps` launches of a
// streaming kernel that reads `bytes` (16-byte loads, evict-first, a full
// grid) and writes nothing: the floor of kernels that mostly read, such as a
// GEMV's weight (issue 8 states its ideal "at the measured read rate"). It is
// 3–7 % above the copy rate on the H100 / H200 (kernels/NOTES.md).
Timing time_read(std::size_t bytes, const TimingConfig& cfg, void* stream, double* gbps);

// cuBLASLt bf16 (or fp16) matmul y[M×N] = x[M×K] · W[N×K]^T (TN, fp32
// accumulate), with a 32 MiB workspace and the heuristic's first algorithm.
class LtMatmul {
 public:
  LtMatmul(std::size_t M, std::size_t N, std::size_t K, bool bf16);
  ~LtMatmul();
  LtMatmul(const LtMatmul&) = delete;
  LtMatmul& operator=(const LtMatmul&) = delete;
  void run(const void* x, const void* w, void* y, void* stream) const;

 private:
  struct Impl;
  Impl* impl_;
};

}  // namespace lowbit::cuda
