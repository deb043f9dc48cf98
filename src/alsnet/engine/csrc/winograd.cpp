// Winograd minimal filtering F(m, r) for ALSNet's dilated convolutions, forward and
// weight gradient (see alsnet/engine/winograd.py for the algebra and the interpolation
// points). Outputs t0 + d*i (i < m) of one "phase" of the dilation come from inputs
// t0 + d*j (j < alpha = m + r - 1):
//     y = AT [ (G w) . (BT x) ]          (per input/output channel pair)
// so alpha small GEMMs (tiles x Cin) @ (Cin x Cout) replace r*m multiply-adds per tile.
// With BT = identity, AT = ones and m = 1 the same code is a direct convolution.
//
// Everything vectorised over channels is written once, for a vector type Vec (V8: 8
// floats in a ymm register; V16: 16 in a zmm register, AVX-512 builds only). Each lane
// does the same arithmetic in the same order whatever the width, so the two widths give
// the same bits; the AVX-512 build takes V16 wherever the channel count allows (half the
// instructions per multiply-add, which is what limits these loops on Zen 4, whose 512-bit
// FMAs run at the 256-bit rate).
#include <immintrin.h>

#include <cmath>
#include <cstring>
#include <vector>

#include "kernels.h"

namespace alsnet {
namespace {

// 8 channels per ymm register. Masks are vectors (all-ones lanes).
struct V8 {
  using reg = __m256;
  using mask = __m256;
  static constexpr int W = 8;
  static reg zero() { return _mm256_setzero_ps(); }
  static reg set1(float a) { return _mm256_set1_ps(a); }
  static reg bcast(const float* p) { return _mm256_broadcast_ss(p); }
  static reg load(const float* p) { return _mm256_loadu_ps(p); }
  static void store(float* p, reg v) { _mm256_storeu_ps(p, v); }
  static reg fmadd(reg a, reg b, reg c) { return _mm256_fmadd_ps(a, b, c); }
  static reg add(reg a, reg b) { return _mm256_add_ps(a, b); }
  static reg sub(reg a, reg b) { return _mm256_sub_ps(a, b); }
  static reg max(reg a, reg b) { return _mm256_max_ps(a, b); }
  static reg min(reg a, reg b) { return _mm256_min_ps(a, b); }
  static mask gt(reg a, reg b) { return _mm256_cmp_ps(a, b, _CMP_GT_OQ); }
  static mask lt(reg a, reg b) { return _mm256_cmp_ps(a, b, _CMP_LT_OQ); }
  static mask eq(reg a, reg b) { return _mm256_cmp_ps(a, b, _CMP_EQ_OQ); }
  static reg keep(mask k, reg v) { return _mm256_and_ps(v, k); }           // v where k, else 0
  static reg select(mask k, reg a, reg b) { return _mm256_blendv_ps(a, b, k); }  // b where k, else a
  static bool any(mask k) { return _mm256_movemask_ps(k) != 0; }
  static mask both(mask a, mask b) { return _mm256_and_ps(a, b); }
  static mask but(mask a, mask b) { return _mm256_andnot_ps(b, a); }       // a and not b
  // int32 lanes carried in float registers (only moved and blended, never computed on)
  static reg loadi(const int* p) { return _mm256_castsi256_ps(_mm256_loadu_si256((const __m256i*)p)); }
  static void storei(int* p, reg v) { _mm256_storeu_si256((__m256i*)p, _mm256_castps_si256(v)); }
  static reg seti(int a) { return _mm256_castsi256_ps(_mm256_set1_epi32(a)); }
};

#if defined(__AVX512F__)
// 16 channels per zmm register. Masks are __mmask16 bit masks.
struct V16 {
  using reg = __m512;
  using mask = __mmask16;
  static constexpr int W = 16;
  static reg zero() { return _mm512_setzero_ps(); }
  static reg set1(float a) { return _mm512_set1_ps(a); }
  static reg bcast(const float* p) { return _mm512_set1_ps(*p); }  // folded into the FMA's {1to16}
  static reg load(const float* p) { return _mm512_loadu_ps(p); }
  static void store(float* p, reg v) { _mm512_storeu_ps(p, v); }
  static reg fmadd(reg a, reg b, reg c) { return _mm512_fmadd_ps(a, b, c); }
  static reg add(reg a, reg b) { return _mm512_add_ps(a, b); }
  static reg sub(reg a, reg b) { return _mm512_sub_ps(a, b); }
  static reg max(reg a, reg b) { return _mm512_max_ps(a, b); }
  static reg min(reg a, reg b) { return _mm512_min_ps(a, b); }
  static mask gt(reg a, reg b) { return _mm512_cmp_ps_mask(a, b, _CMP_GT_OQ); }
  static mask lt(reg a, reg b) { return _mm512_cmp_ps_mask(a, b, _CMP_LT_OQ); }
  static mask eq(reg a, reg b) { return _mm512_cmp_ps_mask(a, b, _CMP_EQ_OQ); }
  static reg keep(mask k, reg v) { return _mm512_maskz_mov_ps(k, v); }
  static reg select(mask k, reg a, reg b) { return _mm512_mask_blend_ps(k, a, b); }
  static bool any(mask k) { return k != 0; }
  static mask both(mask a, mask b) { return (mask)(a & b); }
  static mask but(mask a, mask b) { return (mask)(a & ~b); }
  static reg loadi(const int* p) { return _mm512_castsi512_ps(_mm512_loadu_si512(p)); }
  static void storei(int* p, reg v) { _mm512_storeu_si512(p, _mm512_castps_si512(v)); }
  static reg seti(int a) { return _mm512_castsi512_ps(_mm512_set1_epi32(a)); }
};
using VW = V16;  // the widest vector of this build
#else
using VW = V8;
#endif

// Channels k..k+W-1 of the row at p as the filter sees them (Loader: scale, shift, mask).
template <class Vec>
inline typename Vec::reg load_tf(const Loader& L, const float* p, int k) {
  using R = typename Vec::reg;
  R v = Vec::load(p + k);
  const R zero = Vec::zero();
  if (L.mask == 2) v = Vec::max(v, zero);
  if (L.scale || L.shift) {
    const R s = L.scale ? Vec::load(L.scale + k) : Vec::set1(1.f);
    const R b = L.shift ? Vec::load(L.shift + k) : zero;
    const R y = Vec::fmadd(v, s, b);
    return L.mask == 1 ? Vec::keep(Vec::gt(v, zero), y) : y;
  }
  if (L.mask) return Vec::keep(Vec::gt(v, zero), v);
  return v;
}

// Symmetric point sets (every finite point p != 0 next to -p, as in POINTS of
// winograd.py): BT rows 2k-1 and 2k agree on even columns and are opposite on odd ones,
// AT columns 2k-1 and 2k agree on even rows and are opposite on odd ones, AT column 0 is
// e_0 (the point 0) and column A-1 is e_{m-1} (infinity). Each pair of rows then costs
// one even and one odd half-sum instead of two full dot products: the transforms do
// 94 instead of 144 multiply-adds per 8 channels (A = 12).
inline bool symmetric_pairs(const float* bt, const float* at, int A, int m) {
  if (A % 2) return false;
  for (int k = 1; k + 1 < A; k += 2) {
    for (int j = 0; j < A; ++j)
      if (bt[(k + 1) * A + j] != ((j % 2) ? -bt[k * A + j] : bt[k * A + j])) return false;
    for (int i = 0; i < m; ++i)
      if (at[i * A + k + 1] != ((i % 2) ? -at[i * A + k] : at[i * A + k])) return false;
  }
  for (int i = 0; i < m; ++i)
    if (at[i * A] != (i == 0 ? 1.f : 0.f) || at[i * A + A - 1] != (i == m - 1 ? 1.f : 0.f)) return false;
  return true;
}

// BT (A x A) applied to the A rows at logical times t0 + d*j of window xn; output xi,
// channels k..k+W-1 go to V + xi*xs + (k/W)*ks. PAIRED: BT by symmetric_pairs (rows 0 and
// A-1 in full, each pair of rows from one even and one odd half-sum).
template <int A, bool PAIRED, class Vec>
inline void in_transform(const Loader& L, const float* xn, int t0, int d, const float* bt, float* V, size_t xs,
                         size_t ks) {
  using R = typename Vec::reg;
  constexpr int W = Vec::W;
  const float* rows[A];
  for (int j = 0; j < A; ++j) {
    int s = t0 + d * j - L.off;
    rows[j] = (s >= 0 && s < L.Tx) ? xn + (size_t)s * L.C : nullptr;
  }
  for (int k = 0; k < L.C; k += W) {
    R xv[A];
    for (int j = 0; j < A; ++j) xv[j] = rows[j] ? load_tf<Vec>(L, rows[j], k) : Vec::zero();
    float* v = V + (k / W) * ks;
    for (int xi = 0; xi < A; xi += PAIRED ? A - 1 : 1) {
      R acc = Vec::zero();
      for (int j = 0; j < A; ++j) acc = Vec::fmadd(Vec::bcast(bt + xi * A + j), xv[j], acc);
      Vec::store(v + xi * xs, acc);
    }
    if (!PAIRED) continue;
    for (int p = 1; p + 1 < A; p += 2) {
      R e = Vec::zero(), o = Vec::zero();
      for (int j = 0; j < A; j += 2) e = Vec::fmadd(Vec::bcast(bt + p * A + j), xv[j], e);
      for (int j = 1; j < A; j += 2) o = Vec::fmadd(Vec::bcast(bt + p * A + j), xv[j], o);
      Vec::store(v + p * xs, Vec::add(e, o));
      Vec::store(v + (p + 1) * xs, Vec::sub(e, o));
    }
  }
}

// The forward's input transform: V rows of tile q hold Cin contiguous channels (chunks of
// W channels W apart), at the widest width that divides Cin.
template <int A, bool PAIRED>
inline void in_transform_rows(const Loader& L, const float* xn, int t0, int d, const float* bt, float* V, size_t xs) {
  if (L.C % VW::W == 0) in_transform<A, PAIRED, VW>(L, xn, t0, d, bt, V, xs, VW::W);
  else in_transform<A, PAIRED, V8>(L, xn, t0, d, bt, V, xs, 8);
}

// y[i*Cout + 0:W] = sum_xi AT[i][xi] * mb[xi*ms + 0:W], i < m: the inverse transform of one
// tile's alpha products for W output channels (PAIRED: by symmetric_pairs).
template <int A, bool PAIRED, class Vec>
inline void out_transform(const float* mb, size_t ms, const float* at, int m, float* y, int Cout) {
  using R = typename Vec::reg;
  R mv[A];
  for (int xi = 0; xi < A; ++xi) mv[xi] = Vec::load(mb + xi * ms);
  if (PAIRED) {
    R sm[A / 2], df[A / 2];
    for (int k = 1; k < A / 2; ++k) {
      sm[k] = Vec::add(mv[2 * k - 1], mv[2 * k]);
      df[k] = Vec::sub(mv[2 * k - 1], mv[2 * k]);
    }
    for (int i = 0; i < m; ++i) {
      R acc = i == 0 ? mv[0] : Vec::zero();
      const R* pr = (i % 2) ? df : sm;
      for (int k = 1; k < A / 2; ++k) acc = Vec::fmadd(Vec::bcast(at + i * A + 2 * k - 1), pr[k], acc);
      if (i == m - 1) acc = Vec::add(acc, mv[A - 1]);
      Vec::store(y + (size_t)i * Cout, acc);
    }
    return;
  }
  for (int i = 0; i < m; ++i) {
    R acc = Vec::zero();
    for (int xi = 0; xi < A; ++xi) acc = Vec::fmadd(Vec::bcast(at + i * A + xi), mv[xi], acc);
    Vec::store(y + (size_t)i * Cout, acc);
  }
}

#if defined(__AVX512F__)
// 12 tiles x 16 outputs = 12 zmm accumulators (of 32 registers), each FMA taking its
// broadcast V value straight from memory: half the instructions per multiply-add of the
// AVX2 kernel, which is what limits it where 512-bit FMAs run at 256-bit rate (Zen 4).
constexpr int RB = 12;  // tiles per register block
constexpr int NB = 2;   // register blocks sharing one 16-column slice of U while it is in L1
#else
constexpr int RB = 6;   // tiles per register block (6 x 16 outputs = 12 ymm accumulators)
constexpr int NB = 4;   // register blocks sharing one 16-column slice of U while it is in L1
#endif

// mb[r][0:16] = V row r (stride vs) @ Ux (Cin x 16), r < RB: the register block of the
// channel-mixing GEMM. Named accumulators: arrays of vectors get spilled to the stack by GCC.
inline void micro_kernel(const float* v0, size_t vs, int Cin, const float* Ux, float* mb) {
#if defined(__AVX512F__)
  const float *v1 = v0 + vs, *v2 = v1 + vs, *v3 = v2 + vs, *v4 = v3 + vs, *v5 = v4 + vs, *v6 = v5 + vs,
              *v7 = v6 + vs, *v8 = v7 + vs, *v9 = v8 + vs, *v10 = v9 + vs, *v11 = v10 + vs;
  __m512 c0 = _mm512_setzero_ps(), c1 = c0, c2 = c0, c3 = c0, c4 = c0, c5 = c0, c6 = c0, c7 = c0, c8 = c0,
         c9 = c0, c10 = c0, c11 = c0;
  for (int k = 0; k < Cin; ++k) {
    const __m512 b = _mm512_loadu_ps(Ux + k * 16);
    c0 = _mm512_fmadd_ps(_mm512_set1_ps(v0[k]), b, c0);
    c1 = _mm512_fmadd_ps(_mm512_set1_ps(v1[k]), b, c1);
    c2 = _mm512_fmadd_ps(_mm512_set1_ps(v2[k]), b, c2);
    c3 = _mm512_fmadd_ps(_mm512_set1_ps(v3[k]), b, c3);
    c4 = _mm512_fmadd_ps(_mm512_set1_ps(v4[k]), b, c4);
    c5 = _mm512_fmadd_ps(_mm512_set1_ps(v5[k]), b, c5);
    c6 = _mm512_fmadd_ps(_mm512_set1_ps(v6[k]), b, c6);
    c7 = _mm512_fmadd_ps(_mm512_set1_ps(v7[k]), b, c7);
    c8 = _mm512_fmadd_ps(_mm512_set1_ps(v8[k]), b, c8);
    c9 = _mm512_fmadd_ps(_mm512_set1_ps(v9[k]), b, c9);
    c10 = _mm512_fmadd_ps(_mm512_set1_ps(v10[k]), b, c10);
    c11 = _mm512_fmadd_ps(_mm512_set1_ps(v11[k]), b, c11);
  }
  _mm512_store_ps(mb, c0); _mm512_store_ps(mb + 16, c1); _mm512_store_ps(mb + 32, c2);
  _mm512_store_ps(mb + 48, c3); _mm512_store_ps(mb + 64, c4); _mm512_store_ps(mb + 80, c5);
  _mm512_store_ps(mb + 96, c6); _mm512_store_ps(mb + 112, c7); _mm512_store_ps(mb + 128, c8);
  _mm512_store_ps(mb + 144, c9); _mm512_store_ps(mb + 160, c10); _mm512_store_ps(mb + 176, c11);
#else
  const float *v1 = v0 + vs, *v2 = v1 + vs, *v3 = v2 + vs, *v4 = v3 + vs, *v5 = v4 + vs;
  __m256 c00 = _mm256_setzero_ps(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00,
         c30 = c00, c31 = c00, c40 = c00, c41 = c00, c50 = c00, c51 = c00;
  for (int k = 0; k < Cin; ++k) {
    const __m256 b0 = _mm256_loadu_ps(Ux + k * 16), b1 = _mm256_loadu_ps(Ux + k * 16 + 8);
    __m256 a;
    a = _mm256_broadcast_ss(v0 + k); c00 = _mm256_fmadd_ps(a, b0, c00); c01 = _mm256_fmadd_ps(a, b1, c01);
    a = _mm256_broadcast_ss(v1 + k); c10 = _mm256_fmadd_ps(a, b0, c10); c11 = _mm256_fmadd_ps(a, b1, c11);
    a = _mm256_broadcast_ss(v2 + k); c20 = _mm256_fmadd_ps(a, b0, c20); c21 = _mm256_fmadd_ps(a, b1, c21);
    a = _mm256_broadcast_ss(v3 + k); c30 = _mm256_fmadd_ps(a, b0, c30); c31 = _mm256_fmadd_ps(a, b1, c31);
    a = _mm256_broadcast_ss(v4 + k); c40 = _mm256_fmadd_ps(a, b0, c40); c41 = _mm256_fmadd_ps(a, b1, c41);
    a = _mm256_broadcast_ss(v5 + k); c50 = _mm256_fmadd_ps(a, b0, c50); c51 = _mm256_fmadd_ps(a, b1, c51);
  }
  _mm256_store_ps(mb, c00); _mm256_store_ps(mb + 8, c01); _mm256_store_ps(mb + 16, c10);
  _mm256_store_ps(mb + 24, c11); _mm256_store_ps(mb + 32, c20); _mm256_store_ps(mb + 40, c21);
  _mm256_store_ps(mb + 48, c30); _mm256_store_ps(mb + 56, c31); _mm256_store_ps(mb + 64, c40);
  _mm256_store_ps(mb + 72, c41); _mm256_store_ps(mb + 80, c50); _mm256_store_ps(mb + 88, c51);
#endif
}

// U (A, Cin, Cout) repacked as (A, Cout/16, Cin, 16): each slice the micro-kernel streams
// is contiguous.
inline std::vector<float> pack_u(const float* U, int A, int Cin, int Cout) {
  std::vector<float> P((size_t)A * Cin * Cout);
  for (int xi = 0; xi < A; ++xi)
    for (int jb = 0; jb < Cout / 16; ++jb)
      for (int k = 0; k < Cin; ++k)
        std::memcpy(P.data() + (((size_t)xi * (Cout / 16) + jb) * Cin + k) * 16,
                    U + ((size_t)xi * Cin + k) * Cout + jb * 16, sizeof(float) * 16);
  return P;
}

// For nb*RB tiles: Y[r][i][:] = sum_xi AT[i][xi] * (V[r][xi][:] @ U[xi]) -- the channel
// mixing GEMM (register-blocked micro_kernel) with the inverse transform applied
// from a small L1 buffer, so the alpha products of a tile never reach memory. V rows
// have stride A*Cin; Y is (nb*RB, m, Cout); Up is packed by pack_u.
template <int A, bool PAIRED>
inline void gemm_tiles(const float* V, int nb, int Cin, const float* Up, int Cout, const float* at, int m, float* Y) {
  const size_t vs = (size_t)A * Cin, ys = (size_t)m * Cout;
  alignas(64) float Mb[NB][A][RB][16];
  for (int j0 = 0; j0 < Cout; j0 += 16) {
    for (int xi = 0; xi < A; ++xi) {
      const float* Ux = Up + ((size_t)xi * (Cout / 16) + j0 / 16) * Cin * 16;
      for (int b = 0; b < nb; ++b) {
        micro_kernel(V + b * RB * vs + xi * Cin, vs, Cin, Ux, &Mb[b][xi][0][0]);
      }
    }
    for (int b = 0; b < nb; ++b)
      for (int r = 0; r < RB; ++r)
        for (int h = 0; h < 16; h += VW::W)
          out_transform<A, PAIRED, VW>(&Mb[b][0][r][h], RB * 16, at, m, Y + (size_t)(b * RB + r) * ys + j0 + h, Cout);
  }
}

// Inference: only the extremes over time are wanted. Reduce a tile's mi outputs y (mi,
// Cout) in registers, then touch the running max/min mx (2, Cout) once (the bias is added
// after: it is the same at every time).
template <class Vec>
inline void tile_extremes(const float* y, int mi, int Cout, float* mx) {
  using R = typename Vec::reg;
  for (int k = 0; k < Cout; k += Vec::W) {
    R hi = Vec::load(y + k), lo = hi;
    for (int i = 1; i < mi; ++i) {
      const R v = Vec::load(y + (size_t)i * Cout + k);
      hi = Vec::max(hi, v);
      lo = Vec::min(lo, v);
    }
    Vec::store(mx + k, Vec::max(Vec::load(mx + k), hi));
    Vec::store(mx + Cout + k, Vec::min(Vec::load(mx + Cout + k), lo));
  }
}

// Training: one tile's mi outputs yq (mi, Cout) at times t0 + d*i, W channels at a time,
// so that the sums and the extremes over time stay in registers and touch memory once per
// tile. Adds the bias; writes the output rows (relu'd if asked), adds to the BatchNorm sums
// s1/s2 (of relu(y), relu(y)^2) and aux sums a1/a2 (of y, y*relu(aux)), and moves the
// running extremes mx (2, Cout) and, if amx, their first times.
template <class Vec>
inline void tile_epilogue(const Fwd& P, const float* yq, int mi, int n, int t0, int d, int To, float* s1, float* s2,
                          float* a1, float* a2, float* mx, int* amx) {
  using R = typename Vec::reg;
  const int Cout = P.Cout;
  for (int k = 0; k < Cout; k += Vec::W) {
    const R bk = Vec::load(P.bias + k), zero = Vec::zero();
    R S1 = zero, S2 = zero, A1 = zero, A2 = zero;
    R hi = Vec::set1(-INFINITY), lo = Vec::set1(INFINITY);
    for (int i = 0; i < mi; ++i) {
      const int t = t0 + d * i;
      const R v = Vec::add(Vec::load(yq + (size_t)i * Cout + k), bk);
      const R rl = Vec::max(v, zero);
      if (P.out) Vec::store(P.out + ((size_t)n * To + t) * Cout + k, P.relu_out ? rl : v);
      if (P.stats) { S1 = Vec::add(S1, rl); S2 = Vec::fmadd(rl, rl, S2); }
      if (P.aux) {
        const R au = Vec::load(P.aux + ((size_t)n * To + t) * Cout + k);
        A1 = Vec::add(A1, v);
        A2 = Vec::fmadd(v, Vec::max(au, zero), A2);
      }
      if (mx) { hi = Vec::max(hi, v); lo = Vec::min(lo, v); }
    }
    if (P.stats) {
      Vec::store(s1 + k, Vec::add(Vec::load(s1 + k), S1));
      Vec::store(s2 + k, Vec::add(Vec::load(s2 + k), S2));
    }
    if (P.aux) {
      Vec::store(a1 + k, Vec::add(Vec::load(a1 + k), A1));
      Vec::store(a2 + k, Vec::add(Vec::load(a2 + k), A2));
    }
    if (!mx) continue;
    // A running extreme moves in few tiles: only then find the tile's first time that
    // reaches it (strictly beyond the running value, as a scan in this order would).
    const R mhi = Vec::load(mx + k), mlo = Vec::load(mx + Cout + k);
    const auto gt = Vec::gt(hi, mhi), lt = Vec::lt(lo, mlo);
    if (!Vec::any(gt) && !Vec::any(lt)) continue;
    Vec::store(mx + k, Vec::select(gt, mhi, hi));
    Vec::store(mx + Cout + k, Vec::select(lt, mlo, lo));
    if (!amx) continue;
    R ahi = Vec::loadi(amx + k), alo = Vec::loadi(amx + Cout + k);
    auto todo_hi = gt, todo_lo = lt;
    for (int i = 0; i < mi; ++i) {
      const R v = Vec::add(Vec::load(yq + (size_t)i * Cout + k), bk);
      const R tv = Vec::seti(t0 + d * i);
      const auto eh = Vec::both(todo_hi, Vec::eq(v, hi));
      const auto el = Vec::both(todo_lo, Vec::eq(v, lo));
      ahi = Vec::select(eh, ahi, tv);
      alo = Vec::select(el, alo, tv);
      todo_hi = Vec::but(todo_hi, eh);
      todo_lo = Vec::but(todo_lo, el);
    }
    Vec::storei(amx + k, ahi);
    Vec::storei(amx + Cout + k, alo);
  }
}

template <int A>
void fwd_impl(const Fwd& P) {
  const int m = P.m, d = P.d, Cin = P.Cin, Cout = P.Cout;
  const Tiling tl(A, m, d, P.Tlog, P.tiles);
  if (tl.To <= 0) return;
  const int To = tl.To;
  const int nth = P.nw;
  const std::vector<float> Up = pack_u(P.U, A, Cin, Cout);
  const bool maxmin_only = P.maxmin && !P.argmm && !P.out && !P.stats && !P.aux;
  const bool paired = symmetric_pairs(P.bt, P.at, A, m);
  std::vector<float> mm_part;
  std::vector<int> arg_part;
  if (P.maxmin) {
    mm_part.assign((size_t)nth * P.N * 2 * Cout, 0.f);
    arg_part.assign((size_t)nth * P.N * 2 * Cout, -1);
    for (size_t i = 0; i < mm_part.size(); ++i) mm_part[i] = ((i / Cout) % 2 == 0) ? -INFINITY : INFINITY;
  }
  run_workers(nth, [&](int tid, auto& next) {
    const int maxt = (tl.G * d + RB - 1) / RB * RB;
    std::vector<float> V((size_t)maxt * A * Cin, 0.f), Y((size_t)NB * RB * m * Cout);
    std::vector<double> st(P.stats ? 2 * Cout : 0, 0.0), ax(P.aux ? 2 * Cout : 0, 0.0);
    alignas(64) float s1[1024], s2[1024], a1[1024], a2[1024];
    for (int64_t job = next(); job < (int64_t)P.N * tl.nchunk; job = next()) {
      const int n = job / tl.nchunk, s0 = tl.first_row(job % tl.nchunk), nt = tl.tiles_in(job % tl.nchunk);
      const float* xn = P.L.x + (size_t)n * P.L.Tx * Cin;
      for (int q = 0; q < nt; ++q) {
        const int t0 = tl.t0(s0, q);
        if (paired && P.paired_in) in_transform_rows<A, true>(P.L, xn, t0, d, P.bt, V.data() + (size_t)q * A * Cin, Cin);
        else in_transform_rows<A, false>(P.L, xn, t0, d, P.bt, V.data() + (size_t)q * A * Cin, Cin);
      }
      if (nt % RB) std::memset(V.data() + (size_t)nt * A * Cin, 0, sizeof(float) * (RB - nt % RB) * A * Cin);
      if (P.stats) for (int k = 0; k < Cout; ++k) { s1[k] = 0.f; s2[k] = 0.f; }
      if (P.aux) for (int k = 0; k < Cout; ++k) { a1[k] = 0.f; a2[k] = 0.f; }
      float* mx = P.maxmin ? mm_part.data() + ((size_t)tid * P.N + n) * 2 * Cout : nullptr;
      int* amx = P.maxmin ? arg_part.data() + ((size_t)tid * P.N + n) * 2 * Cout : nullptr;
      for (int q0 = 0; q0 < nt; q0 += NB * RB) {
        const int nb = std::min(NB, (nt - q0 + RB - 1) / RB);
        if (paired) gemm_tiles<A, true>(V.data() + (size_t)q0 * A * Cin, nb, Cin, Up.data(), Cout, P.at, m, Y.data());
        else gemm_tiles<A, false>(V.data() + (size_t)q0 * A * Cin, nb, Cin, Up.data(), Cout, P.at, m, Y.data());
        for (int q = q0; q < std::min(nt, q0 + nb * RB); ++q) {
          const int t0 = tl.t0(s0, q);
          if (t0 >= To) continue;
          const int mi = std::min(m, (To - 1 - t0) / d + 1);
          const float* yq = Y.data() + (size_t)(q - q0) * m * Cout;
          if (maxmin_only) tile_extremes<VW>(yq, mi, Cout, mx);
          else tile_epilogue<VW>(P, yq, mi, n, t0, d, To, s1, s2, a1, a2, mx, amx);
        }
      }
      // float partials per chunk (a few hundred terms), double across chunks
      if (P.stats) for (int k = 0; k < Cout; ++k) { st[k] += s1[k]; st[Cout + k] += s2[k]; }
      if (P.aux) for (int k = 0; k < Cout; ++k) { ax[k] += a1[k]; ax[Cout + k] += a2[k]; }
    }
    if (P.stats) std::memcpy(P.stats + (size_t)tid * 2 * Cout, st.data(), sizeof(double) * 2 * Cout);
    if (P.aux) std::memcpy(P.auxsums + (size_t)tid * 2 * Cout, ax.data(), sizeof(double) * 2 * Cout);
  });
  if (maxmin_only) {
    // partials start at -inf/+inf; the bias moves every time alike
    for (int n = 0; n < P.N; ++n)
      for (int h = 0; h < 2; ++h)
        for (int k = 0; k < Cout; ++k) {
          float best = h == 0 ? -INFINITY : INFINITY;
          for (int t = 0; t < nth; ++t) {
            const float v = mm_part[((size_t)t * P.N + n) * 2 * Cout + h * Cout + k];
            best = h == 0 ? std::max(best, v) : std::min(best, v);
          }
          P.maxmin[((size_t)n * 2 + h) * Cout + k] = best + P.bias[k];
        }
  } else if (P.maxmin) {
    for (int n = 0; n < P.N; ++n)
      for (int h = 0; h < 2; ++h)
        for (int k = 0; k < Cout; ++k) {
          float best = h == 0 ? -INFINITY : INFINITY; int arg = -1;
          for (int t = 0; t < nth; ++t) {
            size_t i = ((size_t)t * P.N + n) * 2 * Cout + h * Cout + k;
            if (arg_part[i] < 0) continue;
            float v = mm_part[i];
            if (arg < 0 || (h == 0 ? v > best : v < best)) { best = v; arg = arg_part[i]; }
          }
          P.maxmin[((size_t)n * 2 + h) * Cout + k] = best;
          if (P.argmm) P.argmm[((size_t)n * 2 + h) * Cout + k] = arg;
        }
  }
}

// du[r][0:W] += sum_q v[q][r] * mm[q][0:W], r < W: one register block of the weight
// gradient GEMM dU[xi] = V[xi]^T @ dM[xi], reduced over nt tiles. v and mm are packed
// (q, W), so both stream contiguously; W accumulators (16 zmm in AVX-512 builds: twice
// the FMA latency's worth in flight, where 8 ymm were just enough).
template <class Vec>
inline void wg_micro(const float* v, const float* mm, int nt, float* du, int Cout) {
  using R = typename Vec::reg;
  constexpr int W = Vec::W;
  R c[W];
#pragma GCC unroll 16
  for (int r = 0; r < W; ++r) c[r] = Vec::zero();
  for (int q = 0; q < nt; ++q) {
    const float* vq = v + q * W;
    const R b = Vec::load(mm + q * W);
#pragma GCC unroll 16
    for (int r = 0; r < W; ++r) c[r] = Vec::fmadd(Vec::bcast(vq + r), b, c[r]);
  }
#pragma GCC unroll 16
  for (int r = 0; r < W; ++r) Vec::store(du + r * Cout, Vec::add(Vec::load(du + r * Cout), c[r]));
}

// dU[xi] += V[xi]^T @ dM[xi] with V = BT x (as forward) and dM = AT^T dy per tile, both
// stored (xi, channel/W, tile, W) so that each register block streams contiguously.
template <int A, class Vec>
void wgrad_w(const Wgrad& P) {
  using R = typename Vec::reg;
  constexpr int W = Vec::W;
  const int m = P.m, d = P.d, Cin = P.Cin, Cout = P.Cout;
  const Tiling tl(A, m, d, P.Tlog, P.tiles);
  if (tl.To <= 0) return;
  const int To = tl.To;
  const bool paired = symmetric_pairs(P.bt, P.at, A, m);
  run_workers(P.nw, [&](int tid, auto& next) {
    const int maxt = tl.G * d;
    const size_t vx = (size_t)maxt * Cin, mx = (size_t)maxt * Cout, ks = (size_t)maxt * W;
    std::vector<float> V((size_t)A * vx), M((size_t)A * mx);
    float* dU = P.dU + (size_t)tid * A * Cin * Cout;
    std::fill(dU, dU + (size_t)A * Cin * Cout, 0.f);
    std::vector<double> db(Cout, 0.0);
    alignas(64) float dbf[1024];
    for (int64_t job = next(); job < (int64_t)P.N * tl.nchunk; job = next()) {
      const int n = job / tl.nchunk, s0 = tl.first_row(job % tl.nchunk), nt = tl.tiles_in(job % tl.nchunk);
      const float* xn = P.X.x + (size_t)n * P.X.Tx * Cin;
      const float* gn = P.DY.x + (size_t)n * P.DY.Tx * Cout;
      for (int k = 0; k < Cout; ++k) dbf[k] = 0.f;
      for (int q = 0; q < nt; ++q) {
        const int t0 = tl.t0(s0, q);
        if (paired) in_transform<A, true, Vec>(P.X, xn, t0, d, P.bt, V.data() + (size_t)q * W, vx, ks);
        else in_transform<A, false, Vec>(P.X, xn, t0, d, P.bt, V.data() + (size_t)q * W, vx, ks);
        const float* rows[16];
        for (int i = 0; i < m; ++i) {
          const int s = t0 + d * i - P.DY.off;
          rows[i] = (t0 + d * i < To && s >= 0 && s < P.DY.Tx) ? gn + (size_t)s * Cout : nullptr;
        }
        for (int k = 0; k < Cout; k += W) {
          R dv[16];
          R sum = Vec::load(dbf + k);
          for (int i = 0; i < m; ++i) {
            dv[i] = rows[i] ? load_tf<Vec>(P.DY, rows[i], k) : Vec::zero();
            sum = Vec::add(sum, dv[i]);
          }
          Vec::store(dbf + k, sum);
          float* mq = M.data() + (size_t)(k / W) * ks + (size_t)q * W;
          if (paired) {  // AT^T: columns 0 and A-1 pick one row; pairs split even/odd rows
            Vec::store(mq, dv[0]);
            Vec::store(mq + (A - 1) * mx, dv[m - 1]);
            for (int p = 1; p + 1 < A; p += 2) {
              R e = Vec::zero(), o = Vec::zero();
              for (int i = 0; i < m; i += 2) e = Vec::fmadd(Vec::bcast(P.at + i * A + p), dv[i], e);
              for (int i = 1; i < m; i += 2) o = Vec::fmadd(Vec::bcast(P.at + i * A + p), dv[i], o);
              Vec::store(mq + p * mx, Vec::add(e, o));
              Vec::store(mq + (p + 1) * mx, Vec::sub(e, o));
            }
            continue;
          }
          for (int xi = 0; xi < A; ++xi) {
            R acc = Vec::zero();
            for (int i = 0; i < m; ++i) acc = Vec::fmadd(Vec::bcast(P.at + i * A + xi), dv[i], acc);
            Vec::store(mq + xi * mx, acc);
          }
        }
      }
      for (int xi = 0; xi < A; ++xi)
        for (int jb = 0; jb < Cout / W; ++jb)
          for (int cb = 0; cb < Cin / W; ++cb)
            wg_micro<Vec>(V.data() + xi * vx + cb * ks, M.data() + xi * mx + jb * ks, nt,
                          dU + ((size_t)xi * Cin + cb * W) * Cout + jb * W, Cout);
      for (int k = 0; k < Cout; ++k) db[k] += dbf[k];
    }
    for (int k = 0; k < Cout; ++k) P.dbias[(size_t)tid * Cout + k] = db[k];
  });
}

// At the widest width that divides both channel counts.
template <int A>
void wgrad_impl(const Wgrad& P) {
  if (P.Cin % VW::W == 0 && P.Cout % VW::W == 0) wgrad_w<A, VW>(P);
  else wgrad_w<A, V8>(P);
}

}  // namespace

#define ALSNET_DISPATCH(FN, P)                       \
  switch ((P).A) {                                   \
    case 4: FN<4>(P); return 0;                      \
    case 6: FN<6>(P); return 0;                      \
    case 7: FN<7>(P); return 0;                      \
    case 8: FN<8>(P); return 0;                      \
    case 9: FN<9>(P); return 0;                      \
    case 10: FN<10>(P); return 0;                    \
    case 11: FN<11>(P); return 0;                    \
    case 12: FN<12>(P); return 0;                    \
    case 13: FN<13>(P); return 0;                    \
    case 14: FN<14>(P); return 0;                    \
    default: return 1;                               \
  }

int wino_fwd(const Fwd& p) { ALSNET_DISPATCH(fwd_impl, p) }

int wino_wgrad(const Wgrad& p) { ALSNET_DISPATCH(wgrad_impl, p) }

const char* isa() {
#if defined(__AVX512F__)
  return "avx512";
#else
  return "avx2";
#endif
}

}  // namespace alsnet
