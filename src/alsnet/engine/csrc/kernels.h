// ALSNet's CPU kernels: shared declarations (see alsnet/engine/kernels.py, which builds them
// as a PyTorch C++ extension, and csrc/ops.cpp, which registers them as torch.ops.alsnet.*).
//
// Activations are time-major (N, T, C) with channels contiguous, so every transform is
// vectorised over channels and every channel mixing is a register-blocked GEMM on an
// L2-sized chunk of time. Channel counts must be multiples of 16 (ALSNet: 32, 64, 128).
// Threads are PyTorch's (at::parallel_for), so torch.set_num_threads governs them.
#pragma once

#include <ATen/Parallel.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <vector>

namespace alsnet {

struct Loader {
  // Row s of the logical input maps to row s - off of x (zero outside [0, Tx)); each
  // value v becomes scale*v + shift; mask 1: 0 where v <= 0 (ReLU' and BN backward);
  // mask 2: scale*max(v, 0) + shift (BN after ReLU, from the pre-activation).
  const float* x; int Tx; int off; int C;
  const float* scale; const float* shift; int mask;
};

struct Fwd {
  Loader L; int N, Tlog;                       // logical input length (after padding)
  const float* U; int A, m, d, Cin, Cout;      // U (A, Cin, Cout)
  const float* bias; const float* at; const float* bt;
  int tiles; int nw;                           // time tiles per job; workers
  float* out; int relu_out;                    // (N, To, Cout) or null
  double* stats;                               // (nw, 2, Cout): sum, sum of squares of relu(y)
  const float* aux; double* auxsums;           // (nw, 2, Cout): sum y, sum y*relu(aux) (aux like out)
  float* maxmin; int* argmm;                   // (N, 2, Cout) max and min of y over time
  int paired_in;                               // input transform by symmetric pairs (inference)
};

struct Wgrad {
  Loader X; Loader DY;                         // input (logical length Tlog) and output gradient (To rows)
  int N, Tlog, A, m, d, Cin, Cout;
  const float* at; const float* bt;
  int tiles; int nw;
  float* dU;                                   // (nw, A, Cin, Cout), summed by the caller
  double* dbias;                               // (nw, Cout)
};

// How the output times of one window are cut into Winograd tiles and the tiles into
// jobs; the forward and the weight-gradient kernels must cut them alike. Tile row s holds
// d interleaved tiles of m outputs each (dilation d); a job takes G rows of one window.
struct Tiling {
  int d, To, span, S, G, nchunk;
  Tiling(int A, int m, int d_, int Tlog, int tiles) : d(d_) {
    const int r = A - m + 1;
    To = Tlog - (r - 1) * d;
    span = d * m;
    S = To > 0 ? (To + span - 1) / span : 0;
    G = std::max(1, tiles / d);
    nchunk = (S + G - 1) / G;
  }
  int first_row(int ch) const { return ch * G; }
  int tiles_in(int ch) const { return (std::min(S, ch * G + G) - ch * G) * d; }
  // first output time of tile q of the job starting at row s0
  int t0(int s0, int q) const { return (s0 + q / d) * span + q % d; }
};

// How many workers share njobs: PyTorch's thread count, at most one per job.
inline int workers(int64_t njobs) {
  return (int)std::max<int64_t>(1, std::min<int64_t>(at::get_num_threads(), njobs));
}

// Dynamic scheduling on PyTorch's intra-op pool: nw workers pull jobs from one counter,
// so a core that the scheduler takes away for a while does fewer jobs instead of holding
// every other thread up at the end. body(w) runs once per worker w < nw; it calls
// next() for job numbers until one is past the end.
template <class Body>
void run_workers(int nw, const Body& body) {
  std::atomic<int64_t> counter{0};
  auto next = [&counter]() { return counter.fetch_add(1, std::memory_order_relaxed); };
  at::parallel_for(0, nw, 1, [&](int64_t w0, int64_t w1) {
    for (int64_t w = w0; w < w1; ++w) body((int)w, next);
  });
}

// Winograd-filtered dilated correlation (forward) and its weight gradient; 0 on success,
// 1 for an unsupported alpha = m + r - 1.
int wino_fwd(const Fwd& p);
int wino_wgrad(const Wgrad& p);

// First layer (one input channel, few taps): out[n, t, c] = (relu) b[c] + sum_j w[j, c] x[n, t + j];
// stats (nw, 2, C): per-worker sum and sum of squares of relu(z).
void conv1(const float* x, int N, int T, const float* w, int K, int C, const float* b, float* out,
           int relu_out, double* stats, int nw);
int conv1_workers(int N, int T, int K);

// In place: g = (r > 0) ? a*g + c1 + c2*r : 0, per channel (ReLU' and BatchNorm backward).
void bn_relu_bwd(float* g, const float* r, int64_t rows, int C, const float* a, const float* c1, const float* c2);

// Positions where sgn[c]*z[n, t, c] >= thr[n, c] (near = 0), or |z[n, t, c]| < thr[n, c]
// (near = 1): up to K per (n, c) in idx (N, C, K), their number in cnt (N, C).
void candidates(const float* z, int N, int T, int C, const float* thr, const float* sgn, int K, int near,
                int* idx, int* cnt);

// Every position of `candidates` (no cap): out[n] holds window n's (t, c) pairs, in order.
void all_candidates(const float* z, int N, int T, int C, const float* thr, const float* sgn, int near,
                    std::vector<std::vector<int64_t>>& out);

// Direct float64 convolution at chosen points: z[i] = b[c_i] + sum_{j<K, k<Cin}
// (a[k]*x[n_i, t_i + d*j, k] + s[k]) * w[c_i, j, k], x (N, Tx, Cin) float32, w (Cout, K, Cin).
void exact_conv(const float* x, int Tx, int Cin, const int64_t* n, const int64_t* t, const int64_t* c, int64_t len,
                const double* w, int K, const double* b, const double* a, const double* s, int d, double* z);

// Whole rows of the same convolution: z[i, o] = b[o] + sum_{j<K, k<Cin}
// (a[k]*x[n_i, t_i + d*j, k] + s[k]) * wt[j, k, o], float64 (len, Cout), wt (K, Cin, Cout).
void exact_rows(const float* x, int Tx, int Cin, const int64_t* n, const int64_t* t, int64_t len, const double* wt,
                int K, int Cout, const double* b, const double* a, const double* s, int d, double* z);

// A convolution output from precomputed float64 input rows: z[i] = b[c_i] + sum_{j<K, k<C}
// (a[k]*f(h[idx[i, j], k]) + s[k]) * w[c_i, j, k], f = ReLU if relu else the identity.
void exact_taps(const double* h, int C, const int64_t* idx, const int64_t* c, int64_t len, const double* w, int K,
                const double* b, const double* a, const double* s, bool relu, double* z);

// The instruction set this build was compiled for ("avx512" or "avx2").
const char* isa();

}  // namespace alsnet
