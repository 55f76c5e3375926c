// scripts/gpu/probes/cublaslt_candidates.cu — every candidate cuBLASLt's heuristic returns (up to 64
// asked) for int8 -> int32 at M tokens, K = N = 8192, in both orientations (D = Y^T: m = N, n = M, as
// lowbit's LtGemm; and D = Y: m = M, n = N), and for bf16; each timed in a CUDA graph of 20 calls over 4
// rotated weights, 5 interleaved rounds, median per call (kernels/NOTES.md, session 14).
// Usage: cublaslt_candidates M [int8 = 1 | bf16 = 0] [swap = 0 | 1]
#include <cublasLt.h>
#include <cuda_runtime.h>
#include <cstdio>
#include <cstdlib>
#include <vector>
#include <algorithm>
#define CK(x) do { auto e = (x); if (e != 0) { printf("err %d at %s:%d\n", (int)e, __FILE__, __LINE__); exit(1);} } while (0)

struct Cand { cublasLtMatmulAlgo_t algo; int tile, stages, splitk, swiz, cta, cluster; float us[8]; int n = 0; };

int main(int argc, char** argv) {
  int M = argc > 1 ? atoi(argv[1]) : 128, K = 8192, N = 8192;
  bool i8 = argc > 2 ? atoi(argv[2]) : 1;
  bool swap = argc > 3 ? atoi(argv[3]) : 0;
  size_t es = i8 ? 1 : 2;
  const int R = 4;
  cublasLtHandle_t h; CK(cublasLtCreate(&h));
  void *w[R], *x, *y, *ws; size_t wsb = 32 << 20;
  for (int r = 0; r < R; ++r) { CK(cudaMalloc(&w[r], es * N * K)); CK(cudaMemset(w[r], 1, es * N * K)); }
  CK(cudaMalloc(&x, es * M * K)); CK(cudaMemset(x, 1, es * M * K));
  CK(cudaMalloc(&y, 4ull * M * N)); CK(cudaMalloc(&ws, wsb));
  cudaDataType_t ab = i8 ? CUDA_R_8I : CUDA_R_16BF, dt = i8 ? CUDA_R_32I : CUDA_R_16BF, st = i8 ? CUDA_R_32I : CUDA_R_32F;
  cublasComputeType_t ct = i8 ? CUBLAS_COMPUTE_32I : CUBLAS_COMPUTE_32F;
  cublasLtMatmulDesc_t d; CK(cublasLtMatmulDescCreate(&d, ct, st));
  cublasOperation_t T = CUBLAS_OP_T, Nn = CUBLAS_OP_N;
  CK(cublasLtMatmulDescSetAttribute(d, CUBLASLT_MATMUL_DESC_TRANSA, &T, sizeof T));
  CK(cublasLtMatmulDescSetAttribute(d, CUBLASLT_MATMUL_DESC_TRANSB, &Nn, sizeof Nn));
  cublasLtMatrixLayout_t la, lb, ld;
  int mm = swap ? M : N, nn = swap ? N : M;
  CK(cublasLtMatrixLayoutCreate(&la, ab, K, mm, K));
  CK(cublasLtMatrixLayoutCreate(&lb, ab, K, nn, K));
  CK(cublasLtMatrixLayoutCreate(&ld, dt, mm, nn, mm));
  cublasLtMatmulPreference_t p; CK(cublasLtMatmulPreferenceCreate(&p));
  CK(cublasLtMatmulPreferenceSetAttribute(p, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &wsb, sizeof wsb));
  std::vector<cublasLtMatmulHeuristicResult_t> res(64); int got = 0;
  CK(cublasLtMatmulAlgoGetHeuristic(h, d, la, lb, ld, ld, p, 64, res.data(), &got));
  std::vector<Cand> cs;
  for (int i = 0; i < got; ++i) if (res[i].state == CUBLAS_STATUS_SUCCESS) {
    Cand c; c.algo = res[i].algo; size_t s;
    cublasLtMatmulAlgoConfigGetAttribute(&c.algo, CUBLASLT_ALGO_CONFIG_TILE_ID, &c.tile, sizeof c.tile, &s);
    cublasLtMatmulAlgoConfigGetAttribute(&c.algo, CUBLASLT_ALGO_CONFIG_STAGES_ID, &c.stages, sizeof c.stages, &s);
    cublasLtMatmulAlgoConfigGetAttribute(&c.algo, CUBLASLT_ALGO_CONFIG_SPLITK_NUM, &c.splitk, sizeof c.splitk, &s);
    cublasLtMatmulAlgoConfigGetAttribute(&c.algo, CUBLASLT_ALGO_CONFIG_CTA_SWIZZLING, &c.swiz, sizeof c.swiz, &s);
    cublasLtMatmulAlgoConfigGetAttribute(&c.algo, CUBLASLT_ALGO_CONFIG_ID, &c.cta, sizeof c.cta, &s);
    cublasLtMatmulAlgoConfigGetAttribute(&c.algo, CUBLASLT_ALGO_CONFIG_CLUSTER_SHAPE_ID, &c.cluster, sizeof c.cluster, &s);
    cs.push_back(c);
  }
  cudaStream_t sm; CK(cudaStreamCreate(&sm));
  int one = 1, zero = 0; float onef = 1, zerof = 0;
  const void* al = i8 ? (const void*)&one : (const void*)&onef; const void* be = i8 ? (const void*)&zero : (const void*)&zerof;
  auto call = [&](Cand& c, int r) {
    const void* A = swap ? x : w[r]; const void* B = swap ? w[r] : x;
    return cublasLtMatmul(h, d, al, A, la, B, lb, be, y, ld, y, ld, &c.algo, ws, wsb, sm);
  };
  std::vector<cudaGraphExec_t> ex(cs.size(), nullptr);
  for (size_t i = 0; i < cs.size(); ++i) {
    if (call(cs[i], 0) != CUBLAS_STATUS_SUCCESS || cudaStreamSynchronize(sm) != cudaSuccess) { cudaGetLastError(); continue; }
    cudaGraph_t g; CK(cudaStreamBeginCapture(sm, cudaStreamCaptureModeThreadLocal));
    for (int c = 0; c < 20; ++c) call(cs[i], c % R);
    CK(cudaStreamEndCapture(sm, &g)); CK(cudaGraphInstantiate(&ex[i], g, 0));
  }
  cudaEvent_t a, b; cudaEventCreate(&a); cudaEventCreate(&b);
  for (int round = 0; round < 6; ++round)
    for (size_t i = 0; i < cs.size(); ++i) if (ex[i]) {
      cudaEventRecord(a, sm); cudaGraphLaunch(ex[i], sm); cudaEventRecord(b, sm); cudaEventSynchronize(b);
      float ms; cudaEventElapsedTime(&ms, a, b); if (round) cs[i].us[cs[i].n++] = ms * 1000 / 20;
    }
  printf("M=%d %s swap=%d candidates=%d\n", M, i8 ? "int8" : "bf16", (int)swap, (int)cs.size());
  for (size_t i = 0; i < cs.size(); ++i) if (ex[i]) {
    std::sort(cs[i].us, cs[i].us + cs[i].n);
    printf("  #%zu algo %d tile %d stages %d splitk %d swz %d cluster %d: %.1f us\n", i, cs[i].cta, cs[i].tile, cs[i].stages,
           cs[i].splitk, cs[i].swiz, cs[i].cluster, cs[i].us[cs[i].n / 2]);
  }
}
