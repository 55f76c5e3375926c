// scripts/gpu/probes/read_floor.cu — what memory alone allows a GEMV-sized kernel (kernels/NOTES.md,
// session 14). Per call, in a CUDA graph of 20 calls, with and without programmatic dependent launch:
//   * a dependent chain: 128 blocks read an 8 KB x written by the previous call and write the next one
//     (the latency floor of a decode step's kernel, which needs its input before it can finish);
//   * reading B bytes (16-byte evict-first loads, 4 blocks of 512 threads per SM) at the 4-bit weight
//     sizes of issue 8's shapes and at 1 GiB, over rotated buffers (4× the L2 in all, at least 4).
// Build and run on the GPU machine: bash scripts/gpu/probes/run.sh
#include <cuda_runtime.h>
#include <cstdio>
#include <cstdlib>
#include <vector>
#include <algorithm>
#include <tuple>
#include "graph_timing.cuh"

__global__ void __launch_bounds__(512) read_kernel(const uint4* __restrict__ p, size_t n16, unsigned* out, int pdl) {
  if (pdl) asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
  unsigned acc = 0;
  size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x, stride = (size_t)gridDim.x * blockDim.x;
  for (; i + 3 * stride < n16; i += 4 * stride) {
    uint4 a = __ldcs(p + i), b = __ldcs(p + i + stride), c = __ldcs(p + i + 2 * stride), d = __ldcs(p + i + 3 * stride);
    acc ^= a.x ^ a.y ^ a.z ^ a.w ^ b.x ^ b.y ^ b.z ^ b.w ^ c.x ^ c.y ^ c.z ^ c.w ^ d.x ^ d.y ^ d.z ^ d.w;
  }
  for (; i < n16; i += stride) { uint4 a = __ldcs(p + i); acc ^= a.x ^ a.y ^ a.z ^ a.w; }
  if (pdl) asm volatile("griddepcontrol.wait;" ::: "memory");
  if (acc == 0x12345678u) *out = acc;
}

// The dependency floor of a GEMV-shaped launch: 128 blocks of 256 threads; each reads all of x (4096
// bf16 = 8 KB, written by the previous call) and writes 32 values of y (the next call's x).
__global__ void __launch_bounds__(256) chain_kernel(const unsigned* __restrict__ x, unsigned* __restrict__ y, int pdl) {
  if (pdl) asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
  if (pdl) asm volatile("griddepcontrol.wait;" ::: "memory");
  const uint4 v = reinterpret_cast<const uint4*>(x)[threadIdx.x], u = reinterpret_cast<const uint4*>(x)[threadIdx.x + 256];
  unsigned a = v.x ^ v.y ^ v.z ^ v.w ^ u.x ^ u.y ^ u.z ^ u.w;
  for (int o = 16; o; o >>= 1) a ^= __shfl_xor_sync(0xffffffffu, a, o);
  __shared__ unsigned w[8];
  if ((threadIdx.x & 31) == 0) w[threadIdx.x >> 5] = a;
  __syncthreads();
  if (threadIdx.x < 32) y[blockIdx.x * 32 + threadIdx.x] = w[threadIdx.x & 7] + threadIdx.x;
}

int main() {
  int sms, l2;
  cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, 0);
  cudaDeviceGetAttribute(&l2, cudaDevAttrL2CacheSize, 0);
  const double sizes_mb[] = {9.437, 24.77, 37.75, 132.1, 1073.7};  // issue 8's nf4@64 weights, and 1 GiB
  unsigned* out;
  CK(cudaMalloc(&out, 4));
  cudaStream_t s;
  CK(cudaStreamCreate(&s));
  unsigned* buf[2];
  for (auto& p : buf) { CK(cudaMalloc(&p, 16384)); CK(cudaMemset(p, 0, 16384)); }
  for (int pdl = 0; pdl < 2; ++pdl) {
    const float t = graph_us(s, chain_kernel, dim3(128), dim3(256), 0, pdl, [&](int c) {
      return std::make_tuple(static_cast<const unsigned*>(buf[c % 2]), buf[(c + 1) % 2], pdl);
    });
    printf("dependent chain (x 8 KB -> y 16 KB, 128 x 256 threads) pdl=%d: %.2f us per call\n", pdl, t);
  }
  for (double mb : sizes_mb) {
    const size_t bytes = (size_t)(mb * 1e6) / 16 * 16, n16 = bytes / 16;
    // Enough buffers that consecutive calls never find theirs in L2: kernel-bench's rule (4× the L2 in
    // all, at most 16 buffers), with at least 4 here. 4 buffers of 9.44 MB fit in the H100's 50 MB L2
    // and read at 4.6 TB/s.
    const size_t nbuf = std::min<size_t>(16, std::max<size_t>(4, (4 * (size_t)l2 + bytes - 1) / bytes));
    std::vector<void*> bufs(nbuf);
    for (auto& p : bufs) { CK(cudaMalloc(&p, bytes)); CK(cudaMemset(p, 1, bytes)); }
    for (int pdl = 0; pdl < 2; ++pdl) {
      const float t = graph_us(s, read_kernel, dim3(sms * 4), dim3(512), 0, pdl, [&](int c) {
        return std::make_tuple(static_cast<const uint4*>(bufs[c % nbuf]), n16, out, pdl);
      });
      printf("read %8.2f MB pdl=%d: %7.2f us = %6.0f GB/s\n", bytes / 1e6, pdl, t, bytes / t / 1e3);
    }
    for (auto p : bufs) cudaFree(p);
  }
}
