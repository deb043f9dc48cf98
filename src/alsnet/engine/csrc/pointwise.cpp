// ALSNet's first layer, the element-wise kernels of the training step and the exact
// re-evaluation of single convolution outputs (see kernels.h).
#include <immintrin.h>

#include <cstring>
#include <algorithm>
#include <vector>

#include "kernels.h"

namespace alsnet {

namespace {
constexpr int kConv1Chunk = 512;  // output times per job
}

int conv1_workers(int N, int T, int K) {
  const int To = T - K + 1;
  return workers(To > 0 ? (int64_t)N * ((To + kConv1Chunk - 1) / kConv1Chunk) : 1);
}

void conv1(const float* x, int N, int T, const float* w, int K, int C, const float* b, float* out,
           int relu_out, double* stats, int nw) {
  const int To = T - K + 1;
  if (To <= 0) return;
  const int nchunk = (To + kConv1Chunk - 1) / kConv1Chunk;
  const int64_t njobs = (int64_t)N * nchunk;
  run_workers(nw, [&](int tid, auto& next) {
    std::vector<double> st(stats ? 2 * C : 0, 0.0);
    alignas(32) float s1[64], s2[64];
    for (int64_t job = next(); job < njobs; job = next()) {
      const int n = job / nchunk, t1 = (job % nchunk) * kConv1Chunk, t2 = std::min(To, t1 + kConv1Chunk);
      const float* xn = x + (size_t)n * T;
      for (int k = 0; k < C; ++k) { s1[k] = 0.f; s2[k] = 0.f; }
      for (int k = 0; k < C; k += 8) {
        const __m256 bias = _mm256_loadu_ps(b + k);
        __m256 a1 = _mm256_setzero_ps(), a2 = _mm256_setzero_ps();
        auto emit = [&](int t, __m256 acc) {
          const __m256 rl = _mm256_max_ps(acc, _mm256_setzero_ps());
          _mm256_storeu_ps(out + ((size_t)n * To + t) * C + k, relu_out ? rl : acc);
          a1 = _mm256_add_ps(a1, rl); a2 = _mm256_fmadd_ps(rl, rl, a2);
        };
        int t = t1;
        if (K <= 12) {
          // four independent times per pass: one chain of K dependent FMAs per output
          // would wait on the FMA latency at every tap
          __m256 wk[12];
          for (int j = 0; j < K; ++j) wk[j] = _mm256_loadu_ps(w + j * C + k);
          for (; t + 4 <= t2; t += 4) {
            __m256 c0 = bias, c1 = bias, c2 = bias, c3 = bias;
            const float* xt = xn + t;
            for (int j = 0; j < K; ++j) {
              c0 = _mm256_fmadd_ps(_mm256_broadcast_ss(xt + j), wk[j], c0);
              c1 = _mm256_fmadd_ps(_mm256_broadcast_ss(xt + j + 1), wk[j], c1);
              c2 = _mm256_fmadd_ps(_mm256_broadcast_ss(xt + j + 2), wk[j], c2);
              c3 = _mm256_fmadd_ps(_mm256_broadcast_ss(xt + j + 3), wk[j], c3);
            }
            emit(t, c0); emit(t + 1, c1); emit(t + 2, c2); emit(t + 3, c3);
          }
        }
        for (; t < t2; ++t) {
          __m256 acc = bias;
          for (int j = 0; j < K; ++j)
            acc = _mm256_fmadd_ps(_mm256_broadcast_ss(xn + t + j), _mm256_loadu_ps(w + j * C + k), acc);
          emit(t, acc);
        }
        _mm256_storeu_ps(s1 + k, a1); _mm256_storeu_ps(s2 + k, a2);
      }
      if (stats) for (int k = 0; k < C; ++k) { st[k] += s1[k]; st[C + k] += s2[k]; }
    }
    if (stats) std::memcpy(stats + (size_t)tid * 2 * C, st.data(), sizeof(double) * 2 * C);
  });
}

void bn_relu_bwd(float* g, const float* r, int64_t rows, int C, const float* a, const float* c1, const float* c2) {
  at::parallel_for(0, rows, 1024, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) {
      float* gi = g + i * C; const float* ri = r + i * C;
      for (int k = 0; k < C; k += 8) {
        __m256 rv = _mm256_loadu_ps(ri + k);
        __m256 v = _mm256_fmadd_ps(_mm256_loadu_ps(a + k), _mm256_loadu_ps(gi + k),
                                   _mm256_fmadd_ps(_mm256_loadu_ps(c2 + k), rv, _mm256_loadu_ps(c1 + k)));
        _mm256_storeu_ps(gi + k, _mm256_and_ps(v, _mm256_cmp_ps(rv, _mm256_setzero_ps(), _CMP_GT_OQ)));
      }
    }
  });
}

namespace {

// hit(n, t, c) for every position where |z| < thr[n, c] (near) or sgn[c]*z >= thr[n, c], in
// (t, c) order within each window; windows in parallel, each window on one thread.
template <class Hit>
void scan_candidates(const float* z, int N, int T, int C, const float* thr, const float* sgn, int near,
                     const Hit& hit) {
  at::parallel_for(0, N, 1, [&](int64_t n0, int64_t n1) {
    for (int64_t n = n0; n < n1; ++n) {
      const float* th = thr + (size_t)n * C;
      for (int t = 0; t < T; ++t) {
        const float* zr = z + ((size_t)n * T + t) * C;
        for (int k = 0; k < C; k += 8) {
          const __m256 z8 = _mm256_loadu_ps(zr + k), t8 = _mm256_loadu_ps(th + k);
          int mask = near ? _mm256_movemask_ps(_mm256_cmp_ps(_mm256_andnot_ps(_mm256_set1_ps(-0.f), z8), t8, _CMP_LT_OQ))
                          : _mm256_movemask_ps(_mm256_cmp_ps(_mm256_mul_ps(z8, _mm256_loadu_ps(sgn + k)), t8, _CMP_GE_OQ));
          while (mask) {
            hit(n, t, k + __builtin_ctz(mask));
            mask &= mask - 1;
          }
        }
      }
    }
  });
}

}  // namespace

void candidates(const float* z, int N, int T, int C, const float* thr, const float* sgn, int K, int near,
                int* idx, int* cnt) {
  std::fill(cnt, cnt + (size_t)N * C, 0);
  scan_candidates(z, N, T, C, thr, sgn, near, [&](int64_t n, int t, int c) {
    int& cn = cnt[(size_t)n * C + c];
    if (cn < K) idx[((size_t)n * C + c) * K + cn] = t;
    ++cn;
  });
}

void all_candidates(const float* z, int N, int T, int C, const float* thr, const float* sgn, int near,
                    std::vector<std::vector<int64_t>>& out) {
  out.assign(N, {});
  scan_candidates(z, N, T, C, thr, sgn, near, [&](int64_t n, int t, int c) {
    out[n].push_back(t);   // (t, c) pairs of window n, in (t, c) order
    out[n].push_back(c);
  });
}

void exact_conv(const float* x, int Tx, int Cin, const int64_t* n, const int64_t* t, const int64_t* c, int64_t len,
                const double* w, int K, const double* b, const double* a, const double* s, int d, double* z) {
  at::parallel_for(0, len, 256, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) {
      const float* xr = x + ((size_t)n[i] * Tx + t[i]) * Cin;
      const double* wc = w + (size_t)c[i] * K * Cin;
      double acc = b[c[i]];
      for (int j = 0; j < K; ++j) {
        const float* xj = xr + (size_t)j * d * Cin;
        const double* wj = wc + (size_t)j * Cin;
        for (int k = 0; k < Cin; ++k) acc += (a[k] * xj[k] + s[k]) * wj[k];
      }
      z[i] = acc;
    }
  });
}

namespace {
// One row: zi[o] = b[o] + sum_q h[q] * wt[q, o], accumulated in the same order for every o.
// With the channel count known (CO > 0) the accumulators stay in registers.
template <int CO>
inline void exact_row(const double* __restrict h, size_t nq, const double* __restrict wt, int Cout,
                      const double* __restrict b, double* __restrict zi) {
  const int co = CO > 0 ? CO : Cout;
  double acc[CO > 0 ? CO : 1];
  double* a = CO > 0 ? acc : zi;
  for (int o = 0; o < co; ++o) a[o] = b[o];
  for (size_t q = 0; q < nq; ++q) {
    const double hv = h[q];
    const double* __restrict wq = wt + q * co;
    for (int o = 0; o < co; ++o) a[o] += hv * wq[o];
  }
  if (CO > 0) for (int o = 0; o < co; ++o) zi[o] = a[o];
}
}  // namespace

void exact_rows(const float* x, int Tx, int Cin, const int64_t* n, const int64_t* t, int64_t len, const double* wt,
                int K, int Cout, const double* b, const double* a, const double* s, int d, double* z) {
  at::parallel_for(0, len, 32, [&](int64_t i0, int64_t i1) {
    std::vector<double> h((size_t)K * Cin);
    for (int64_t i = i0; i < i1; ++i) {
      const float* xr = x + ((size_t)n[i] * Tx + t[i]) * Cin;
      for (int j = 0; j < K; ++j)
        for (int k = 0; k < Cin; ++k) h[(size_t)j * Cin + k] = a[k] * xr[(size_t)j * d * Cin + k] + s[k];
      // the same sum as exact_conv, in the same order, for every output channel at once
      if (Cout == 64) exact_row<64>(h.data(), h.size(), wt, Cout, b, z + (size_t)i * Cout);
      else exact_row<0>(h.data(), h.size(), wt, Cout, b, z + (size_t)i * Cout);
    }
  });
}

void exact_taps(const double* h, int C, const int64_t* idx, const int64_t* c, int64_t len, const double* w, int K,
                const double* b, const double* a, const double* s, bool relu, double* z) {
  at::parallel_for(0, len, 256, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) {
      const double* wc = w + (size_t)c[i] * K * C;
      double acc = b[c[i]];
      for (int j = 0; j < K; ++j) {
        const double* hj = h + (size_t)idx[i * K + j] * C;
        const double* wj = wc + (size_t)j * C;
        for (int k = 0; k < C; ++k) acc += (a[k] * (relu ? std::max(hj[k], 0.0) : hj[k]) + s[k]) * wj[k];
      }
      z[i] = acc;
    }
  });
}

}  // namespace alsnet
