// scripts/gpu/probes/graph_timing.cuh — what the probes share: an error check that exits, and the time per
// call of a CUDA graph of 20 launches.
#pragma once
#include <cuda_runtime.h>
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <tuple>
#include <vector>

#define CK(x) do { auto e = (x); if (e != 0) { printf("err %d at %s:%d\n", (int)e, __FILE__, __LINE__); exit(1);} } while (0)

// Median time per call of a CUDA graph of 20 launches of `kernel` (launch c gets args(c)), optionally
// with programmatic dependent launch; 30 replays, the first 5 dropped.
template <class... P, class ArgsOf>
float graph_us(cudaStream_t s, void (*kernel)(P...), dim3 grid, dim3 block, int smem, int pdl, ArgsOf args) {
  cudaEvent_t a, b;
  CK(cudaEventCreate(&a));
  CK(cudaEventCreate(&b));
  cudaGraph_t g;
  cudaGraphExec_t ex;
  CK(cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal));
  for (int c = 0; c < 20; ++c) {
    cudaLaunchConfig_t cfg = {};
    cfg.gridDim = grid;
    cfg.blockDim = block;
    cfg.dynamicSmemBytes = smem;
    cfg.stream = s;
    cudaLaunchAttribute at[1];
    at[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
    at[0].val.programmaticStreamSerializationAllowed = 1;
    cfg.attrs = at;
    cfg.numAttrs = pdl;
    std::apply([&](auto... v) { CK(cudaLaunchKernelEx(&cfg, kernel, v...)); }, args(c));
  }
  CK(cudaStreamEndCapture(s, &g));
  CK(cudaGraphInstantiate(&ex, g, 0));
  std::vector<float> us;
  for (int r = 0; r < 30; ++r) {
    CK(cudaEventRecord(a, s));
    CK(cudaGraphLaunch(ex, s));
    CK(cudaEventRecord(b, s));
    CK(cudaEventSynchronize(b));
    float ms;
    CK(cudaEventElapsedTime(&ms, a, b));
    if (r >= 5) us.push_back(ms * 1000 / 20);
  }
  std::sort(us.begin(), us.end());
  CK(cudaGraphExecDestroy(ex));
  CK(cudaGraphDestroy(g));
  CK(cudaEventDestroy(a));
  CK(cudaEventDestroy(b));
  return us[us.size() / 2];
}
