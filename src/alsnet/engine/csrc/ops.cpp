// torch.ops.alsnet.*: ALSNet's CPU kernels registered with the PyTorch dispatcher. Every
// tensor is checked here (ATen), so the kernels in winograd.cpp / pointwise.cpp can assume
// contiguous float32 CPU buffers of the right shapes.
#include <ATen/ATen.h>
#include <torch/library.h>

#if defined(__GLIBC__)
#include <malloc.h>
#endif

#include <climits>
#include <initializer_list>
#include <optional>
#include <string>
#include <tuple>
#include <utility>

#include "kernels.h"

namespace alsnet {
namespace {

constexpr int64_t kAbi = 9;  // bump when a schema below changes (kernels.py checks it)

using Opt = std::optional<at::Tensor>;

void check(const at::Tensor& t, const char* op, const char* name, int64_t dim,
           at::ScalarType dtype = at::kFloat) {
  TORCH_CHECK(t.device().is_cpu(), "alsnet::", op, ": ", name, " must be a CPU tensor");
  TORCH_CHECK(t.scalar_type() == dtype, "alsnet::", op, ": ", name, " must be ", dtype, ", got ", t.scalar_type());
  TORCH_CHECK(t.dim() == dim, "alsnet::", op, ": ", name, " must have ", dim, " dimensions, got ", t.sizes());
  TORCH_CHECK(t.is_contiguous(), "alsnet::", op, ": ", name, " must be contiguous");
}

void check_len(const at::Tensor& t, const char* op, const char* name, int64_t n) {
  check(t, op, name, 1);
  TORCH_CHECK(t.size(0) == n, "alsnet::", op, ": ", name, " must have ", n, " values, got ", t.size(0));
}

const float* opt_ptr(const Opt& t, const char* op, const char* name, int64_t n) {
  if (!t.has_value() || !t->defined()) return nullptr;
  check_len(*t, op, name, n);
  return t->data_ptr<float>();
}

Loader loader(const at::Tensor& x, int64_t off, const Opt& scale, const Opt& shift, int64_t mask, const char* op,
              const char* name) {
  check(x, op, name, 3);
  TORCH_CHECK(mask >= 0 && mask <= 2, "alsnet::", op, ": mask must be 0, 1 or 2");
  const int64_t C = x.size(2);
  return Loader{x.data_ptr<float>(), (int)x.size(1), (int)off, (int)C,
                opt_ptr(scale, op, "scale", C), opt_ptr(shift, op, "shift", C), (int)mask};
}

void check_transforms(const at::Tensor& at_, const at::Tensor& bt, int64_t A, int64_t m, const char* op) {
  check(at_, op, "at", 2);
  check(bt, op, "bt", 2);
  TORCH_CHECK(at_.size(0) == m && at_.size(1) == A, "alsnet::", op, ": at must be (m, alpha), got ", at_.sizes());
  TORCH_CHECK(bt.size(0) == A && bt.size(1) == A, "alsnet::", op, ": bt must be (alpha, alpha), got ", bt.sizes());
  TORCH_CHECK(m >= 1 && m <= 16, "alsnet::", op, ": tile size m must be in 1..16");
}

at::Tensor empty_like_none() { return at::empty({0}); }

// Returns (stats (2, Cout) f64, auxsums (2, Cout) f64, maxmin (N, 2, Cout), argmm (N, 2, Cout) i32);
// a tensor of zero elements where not asked. out: (N, To, Cout), or zero elements for none.
std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> op_wino_fwd(
    const at::Tensor& x, int64_t pad, const Opt& scale, const Opt& shift, int64_t mask, const at::Tensor& U,
    const at::Tensor& bias, const at::Tensor& at_, const at::Tensor& bt, int64_t m, int64_t d, at::Tensor& out,
    bool relu_out, bool stats, const Opt& aux, bool maxmin, bool argmax, bool paired_in, int64_t tiles) {
  const char* op = "wino_fwd";
  const Loader L = loader(x, pad, scale, shift, mask, op, "x");
  check(U, op, "U", 3);
  const int64_t N = x.size(0), A = U.size(0), Cin = U.size(1), Cout = U.size(2);
  TORCH_CHECK(x.size(2) == Cin, "alsnet::wino_fwd: x has ", x.size(2), " channels, U expects ", Cin);
  TORCH_CHECK(Cin % 8 == 0 && Cout % 16 == 0 && Cout <= 1024, "alsnet::wino_fwd: channels must be multiples of "
              "8 (in) and 16 (out, at most 1024), got ", Cin, " and ", Cout);
  check_len(bias, op, "bias", Cout);
  check_transforms(at_, bt, A, m, op);
  TORCH_CHECK(d >= 1 && tiles >= 1 && pad >= 0, "alsnet::wino_fwd: dilation, tiles must be >= 1, pad >= 0");
  const int64_t Tlog = x.size(1) + 2 * pad, To = std::max<int64_t>(Tlog - (A - m) * d, 0);
  const bool want_out = out.numel() > 0;
  if (want_out) {
    check(out, op, "out", 3);
    TORCH_CHECK(out.size(0) == N && out.size(1) == To && out.size(2) == Cout, "alsnet::wino_fwd: out must be (",
                N, ", ", To, ", ", Cout, "), got ", out.sizes());
  }
  const float* auxp = nullptr;
  if (aux.has_value() && aux->defined()) {
    check(*aux, op, "aux", 3);
    TORCH_CHECK(aux->size(0) == N && aux->size(1) == To && aux->size(2) == Cout, "alsnet::wino_fwd: aux must be (",
                N, ", ", To, ", ", Cout, "), got ", aux->sizes());
    auxp = aux->data_ptr<float>();
  }
  const Tiling tl((int)A, (int)m, (int)d, (int)Tlog, (int)tiles);
  const int nw = workers((int64_t)N * tl.nchunk);
  auto f64 = at::TensorOptions().dtype(at::kDouble);
  at::Tensor st = stats ? at::zeros({nw, 2, Cout}, f64) : empty_like_none();
  at::Tensor ax = auxp ? at::zeros({nw, 2, Cout}, f64) : empty_like_none();
  at::Tensor mm = maxmin ? at::empty({N, 2, Cout}) : empty_like_none();
  at::Tensor am = maxmin && argmax ? at::empty({N, 2, Cout}, at::TensorOptions().dtype(at::kInt))
                                   : at::empty({0}, at::TensorOptions().dtype(at::kInt));
  if (To > 0 && N > 0) {
    const Fwd P{L, (int)N, (int)Tlog, U.data_ptr<float>(), (int)A, (int)m, (int)d, (int)Cin, (int)Cout,
                bias.data_ptr<float>(), at_.data_ptr<float>(), bt.data_ptr<float>(), (int)tiles, nw,
                want_out ? out.data_ptr<float>() : nullptr, (int)relu_out,
                stats ? st.data_ptr<double>() : nullptr, auxp, auxp ? ax.data_ptr<double>() : nullptr,
                maxmin ? mm.data_ptr<float>() : nullptr, maxmin && argmax ? am.data_ptr<int>() : nullptr,
                (int)paired_in};
    TORCH_CHECK(alsnet::wino_fwd(P) == 0, "alsnet::wino_fwd: no kernel for alpha = ", A);
  }
  return {stats ? st.sum(0) : st, auxp ? ax.sum(0) : ax, mm, am};
}

// Returns (dU (alpha, Cin, Cout), dbias (Cout) f64) of the correlation of x by U.
std::tuple<at::Tensor, at::Tensor> op_wino_wgrad(
    const at::Tensor& x, const Opt& xscale, const Opt& xshift, int64_t xmask, const at::Tensor& dy,
    const Opt& dyscale, const Opt& dyshift, int64_t dymask, const at::Tensor& at_, const at::Tensor& bt, int64_t m,
    int64_t d, int64_t tiles) {
  const char* op = "wino_wgrad";
  const Loader X = loader(x, 0, xscale, xshift, xmask, op, "x");
  const Loader DY = loader(dy, 0, dyscale, dyshift, dymask, op, "dy");
  const int64_t N = x.size(0), Tlog = x.size(1), Cin = x.size(2), Cout = dy.size(2), A = bt.size(0);
  check_transforms(at_, bt, A, m, op);
  TORCH_CHECK(dy.size(0) == N && dy.size(1) == std::max<int64_t>(Tlog - (A - m) * d, 0),
              "alsnet::wino_wgrad: dy must be (", N, ", ", Tlog - (A - m) * d, ", Cout), got ", dy.sizes());
  TORCH_CHECK(Cin % 8 == 0 && Cout % 8 == 0 && Cout <= 1024, "alsnet::wino_wgrad: channels must be multiples of 8");
  TORCH_CHECK(d >= 1 && tiles >= 1, "alsnet::wino_wgrad: dilation and tiles must be >= 1");
  const Tiling tl((int)A, (int)m, (int)d, (int)Tlog, (int)tiles);
  const int nw = workers((int64_t)N * tl.nchunk);
  at::Tensor dU = at::zeros({nw, A, Cin, Cout});
  at::Tensor db = at::zeros({nw, Cout}, at::TensorOptions().dtype(at::kDouble));
  if (tl.To > 0 && N > 0) {
    const Wgrad P{X, DY, (int)N, (int)Tlog, (int)A, (int)m, (int)d, (int)Cin, (int)Cout, at_.data_ptr<float>(),
                  bt.data_ptr<float>(), (int)tiles, nw, dU.data_ptr<float>(), db.data_ptr<double>()};
    TORCH_CHECK(alsnet::wino_wgrad(P) == 0, "alsnet::wino_wgrad: no kernel for alpha = ", A);
  }
  return {dU.sum(0), db.sum(0)};
}

// First layer: out (N, T-K+1, C) written; returns the sums (2, C) f64 of relu(z) (zero elements unless stats).
at::Tensor op_conv1(const at::Tensor& x, const at::Tensor& w, const at::Tensor& b, at::Tensor& out, bool relu,
                 bool stats) {
  const char* op = "conv1";
  check(x, op, "x", 2);
  check(w, op, "w", 2);
  const int64_t N = x.size(0), T = x.size(1), K = w.size(0), C = w.size(1);
  TORCH_CHECK(C % 8 == 0 && C <= 64, "alsnet::conv1: channels must be a multiple of 8, at most 64, got ", C);
  check_len(b, op, "b", C);
  check(out, op, "out", 3);
  const int64_t To = std::max<int64_t>(T - K + 1, 0);
  TORCH_CHECK(out.size(0) == N && out.size(1) == To && out.size(2) == C, "alsnet::conv1: out must be (", N, ", ",
              To, ", ", C, "), got ", out.sizes());
  const int nw = conv1_workers((int)N, (int)T, (int)K);
  at::Tensor st = stats ? at::zeros({nw, 2, C}, at::TensorOptions().dtype(at::kDouble)) : empty_like_none();
  if (To > 0 && N > 0)
    alsnet::conv1(x.data_ptr<float>(), (int)N, (int)T, w.data_ptr<float>(), (int)K, (int)C, b.data_ptr<float>(),
                  out.data_ptr<float>(), (int)relu, stats ? st.data_ptr<double>() : nullptr, nw);
  return stats ? st.sum(0) : st;
}

at::Tensor& op_bn_relu_bwd_(at::Tensor& g, const at::Tensor& r, const at::Tensor& a, const at::Tensor& c1,
                         const at::Tensor& c2) {
  const char* op = "bn_relu_bwd_";
  TORCH_CHECK(g.dim() >= 1 && g.sizes() == r.sizes(), "alsnet::bn_relu_bwd_: g and r must have one shape");
  check(g, op, "g", g.dim());
  check(r, op, "r", r.dim());
  const int64_t C = g.size(-1);
  TORCH_CHECK(C % 8 == 0, "alsnet::bn_relu_bwd_: channels must be a multiple of 8, got ", C);
  check_len(a, op, "a", C);
  check_len(c1, op, "c1", C);
  check_len(c2, op, "c2", C);
  alsnet::bn_relu_bwd(g.data_ptr<float>(), r.data_ptr<float>(), g.numel() / C, (int)C, a.data_ptr<float>(),
                      c1.data_ptr<float>(), c2.data_ptr<float>());
  return g;
}

// Returns (idx (N, C, k) i32, count (N, C) i32).
// The arguments both candidate searches take: z (N, T, C), thr (N, C), sgn (C).
void check_candidate_args(const at::Tensor& z, const at::Tensor& thr, const at::Tensor& sgn, const char* op) {
  check(z, op, "z", 3);
  const int64_t N = z.size(0), C = z.size(2);
  TORCH_CHECK(C % 8 == 0, "alsnet::", op, ": channels must be a multiple of 8, got ", C);
  check(thr, op, "thr", 2);
  TORCH_CHECK(thr.size(0) == N && thr.size(1) == C, "alsnet::", op, ": thr must be (N, C), got ", thr.sizes());
  check_len(sgn, op, "sgn", C);
}

std::tuple<at::Tensor, at::Tensor> op_candidates(const at::Tensor& z, const at::Tensor& thr, const at::Tensor& sgn,
                                              int64_t k, bool near) {
  check_candidate_args(z, thr, sgn, "candidates");
  const int64_t N = z.size(0), T = z.size(1), C = z.size(2);
  TORCH_CHECK(k >= 1, "alsnet::candidates: k must be >= 1");
  auto i32 = at::TensorOptions().dtype(at::kInt);
  at::Tensor idx = at::zeros({N, C, k}, i32), cnt = at::zeros({N, C}, i32);
  alsnet::candidates(z.data_ptr<float>(), (int)N, (int)T, (int)C, thr.data_ptr<float>(), sgn.data_ptr<float>(),
                     (int)k, (int)near, idx.data_ptr<int>(), cnt.data_ptr<int>());
  return {idx, cnt};
}

// Returns (n, t, c) int64 of every position where |z| < thr[n, c] (near) or
// sgn[c]*z >= thr[n, c], in (n, t, c) order.
std::tuple<at::Tensor, at::Tensor, at::Tensor> op_all_candidates(const at::Tensor& z, const at::Tensor& thr,
                                                                 const at::Tensor& sgn, bool near) {
  check_candidate_args(z, thr, sgn, "all_candidates");
  const int64_t N = z.size(0), T = z.size(1), C = z.size(2);
  std::vector<std::vector<int64_t>> found;
  alsnet::all_candidates(z.data_ptr<float>(), (int)N, (int)T, (int)C, thr.data_ptr<float>(), sgn.data_ptr<float>(),
                         (int)near, found);
  int64_t len = 0;
  for (const auto& f : found) len += (int64_t)f.size() / 2;
  auto i64 = at::TensorOptions().dtype(at::kLong);
  at::Tensor n = at::empty({len}, i64), t = at::empty({len}, i64), c = at::empty({len}, i64);
  int64_t *np = n.data_ptr<int64_t>(), *tp = t.data_ptr<int64_t>(), *cp = c.data_ptr<int64_t>();
  int64_t i = 0;
  for (int64_t w = 0; w < N; ++w)
    for (size_t j = 0; j < found[w].size(); j += 2, ++i) {
      np[i] = w;
      tp[i] = found[w][j];
      cp[i] = found[w][j + 1];
    }
  return {n, t, c};
}

void check_range(const at::Tensor& v, int64_t lo, int64_t hi, const char* op, const char* name) {
  if (v.numel() == 0) return;
  // a bad index would read out of bounds
  TORCH_CHECK(v.min().item<int64_t>() >= lo && v.max().item<int64_t>() < hi, "alsnet::", op, ": ", name,
              " out of range");
}

void check_vectors(std::initializer_list<std::pair<const at::Tensor*, int64_t>> vs, const char* op) {
  for (const auto& [v, len] : vs) {
    check(*v, op, "a per-channel vector", 1, at::kDouble);
    TORCH_CHECK(v->size(0) == len, "alsnet::", op, ": a per-channel vector has ", v->size(0), " values, not ", len);
  }
}

// Returns z (len,) f64: conv outputs at (n, t, c) from x (N, Tx, Cin) mapped by a*x + s, weights w (Cout, K, Cin).
at::Tensor op_exact_conv(const at::Tensor& x, const at::Tensor& n, const at::Tensor& t, const at::Tensor& c,
                         const at::Tensor& w, const at::Tensor& b, const at::Tensor& a, const at::Tensor& s,
                         int64_t d) {
  const char* op = "exact_conv";
  check(x, op, "x", 3);
  check(w, op, "w", 3, at::kDouble);
  const int64_t N = x.size(0), Tx = x.size(1), Cin = x.size(2), Cout = w.size(0), K = w.size(1);
  TORCH_CHECK(w.size(2) == Cin, "alsnet::exact_conv: w must be (Cout, K, ", Cin, "), got ", w.sizes());
  check(n, op, "n", 1, at::kLong);
  check(t, op, "t", 1, at::kLong);
  check(c, op, "c", 1, at::kLong);
  const int64_t len = n.size(0);
  TORCH_CHECK(t.size(0) == len && c.size(0) == len, "alsnet::exact_conv: n, t and c must have one length");
  check_vectors({{&b, Cout}, {&a, Cin}, {&s, Cin}}, op);
  TORCH_CHECK(d >= 1, "alsnet::exact_conv: dilation must be >= 1");
  check_range(n, 0, N, op, "n");
  check_range(c, 0, Cout, op, "c");
  check_range(t, 0, Tx - (K - 1) * d, op, "t");
  at::Tensor z = at::empty({len}, at::TensorOptions().dtype(at::kDouble));
  alsnet::exact_conv(x.data_ptr<float>(), (int)Tx, (int)Cin, n.data_ptr<int64_t>(), t.data_ptr<int64_t>(),
                     c.data_ptr<int64_t>(), len, w.data_ptr<double>(), (int)K, b.data_ptr<double>(),
                     a.data_ptr<double>(), s.data_ptr<double>(), (int)d, z.data_ptr<double>());
  return z;
}

// Returns z (len, Cout) f64: whole conv rows at (n, t) from x (N, Tx, Cin) mapped by a*x + s, wt (K, Cin, Cout).
at::Tensor op_exact_rows(const at::Tensor& x, const at::Tensor& n, const at::Tensor& t, const at::Tensor& wt,
                         const at::Tensor& b, const at::Tensor& a, const at::Tensor& s, int64_t d) {
  const char* op = "exact_rows";
  check(x, op, "x", 3);
  check(wt, op, "wt", 3, at::kDouble);
  const int64_t N = x.size(0), Tx = x.size(1), Cin = x.size(2), K = wt.size(0), Cout = wt.size(2);
  TORCH_CHECK(wt.size(1) == Cin, "alsnet::exact_rows: wt must be (K, ", Cin, ", Cout), got ", wt.sizes());
  check(n, op, "n", 1, at::kLong);
  check(t, op, "t", 1, at::kLong);
  const int64_t len = n.size(0);
  TORCH_CHECK(t.size(0) == len, "alsnet::exact_rows: n and t must have one length");
  check_vectors({{&b, Cout}, {&a, Cin}, {&s, Cin}}, op);
  TORCH_CHECK(d >= 1, "alsnet::exact_rows: dilation must be >= 1");
  check_range(n, 0, N, op, "n");
  check_range(t, 0, Tx - (K - 1) * d, op, "t");
  at::Tensor z = at::empty({len, Cout}, at::TensorOptions().dtype(at::kDouble));
  alsnet::exact_rows(x.data_ptr<float>(), (int)Tx, (int)Cin, n.data_ptr<int64_t>(), t.data_ptr<int64_t>(), len,
                     wt.data_ptr<double>(), (int)K, (int)Cout, b.data_ptr<double>(), a.data_ptr<double>(),
                     s.data_ptr<double>(), (int)d, z.data_ptr<double>());
  return z;
}

// Returns z (len,) f64: conv outputs at channels c from the rows h[idx[i, :]] (h (R, C) f64),
// each mapped by a*f(h) + s (f = ReLU if relu), weights w (Cout, K, C).
at::Tensor op_exact_taps(const at::Tensor& h, const at::Tensor& idx, const at::Tensor& c, const at::Tensor& w,
                         const at::Tensor& b, const at::Tensor& a, const at::Tensor& s, bool relu) {
  const char* op = "exact_taps";
  check(h, op, "h", 2, at::kDouble);
  check(w, op, "w", 3, at::kDouble);
  const int64_t R = h.size(0), C = h.size(1), Cout = w.size(0), K = w.size(1);
  TORCH_CHECK(w.size(2) == C, "alsnet::exact_taps: w must be (Cout, K, ", C, "), got ", w.sizes());
  check(idx, op, "idx", 2, at::kLong);
  check(c, op, "c", 1, at::kLong);
  const int64_t len = c.size(0);
  TORCH_CHECK(idx.size(0) == len && idx.size(1) == K, "alsnet::exact_taps: idx must be (", len, ", ", K, "), got ",
              idx.sizes());
  check_vectors({{&b, Cout}, {&a, C}, {&s, C}}, op);
  check_range(idx, 0, R, op, "idx");
  check_range(c, 0, Cout, op, "c");
  at::Tensor z = at::empty({len}, at::TensorOptions().dtype(at::kDouble));
  alsnet::exact_taps(h.data_ptr<double>(), (int)C, idx.data_ptr<int64_t>(), c.data_ptr<int64_t>(), len,
                     w.data_ptr<double>(), (int)K, b.data_ptr<double>(), a.data_ptr<double>(), s.data_ptr<double>(),
                     relu, z.data_ptr<double>());
  return z;
}

int64_t op_abi_version() { return kAbi; }
std::string op_isa() { return alsnet::isa(); }

// glibc serves allocations above its mmap threshold (at most 32 MB) with fresh mmap'd
// pages, which the kernel zeroes on first touch: a training step allocates and frees
// hundreds of MB of activations, and zeroing them was 10-20 % of its time. With mmap off
// and no trimming, freed blocks stay in the heap and the next step reuses them. Returns
// whether the allocator took both settings (false where the C library is not glibc).
bool op_keep_freed_memory() {
#if defined(__GLIBC__)
  return mallopt(M_MMAP_MAX, 0) == 1 && mallopt(M_TRIM_THRESHOLD, INT_MAX) == 1 && mallopt(M_TOP_PAD, 64 << 20) == 1;
#else
  return false;
#endif
}

}  // namespace
}  // namespace alsnet

TORCH_LIBRARY(alsnet, m) {
  m.def("abi_version() -> int", &alsnet::op_abi_version);
  m.def("isa() -> str", &alsnet::op_isa);
  m.def("keep_freed_memory() -> bool", &alsnet::op_keep_freed_memory);
  m.def("wino_fwd(Tensor x, int pad, Tensor? scale, Tensor? shift, int mask, Tensor U, Tensor bias, Tensor at, "
        "Tensor bt, int m, int d, Tensor(a!) out, bool relu_out, bool stats, Tensor? aux, bool maxmin, "
        "bool argmax, bool paired_in, int tiles) -> (Tensor, Tensor, Tensor, Tensor)");
  m.def("wino_wgrad(Tensor x, Tensor? xscale, Tensor? xshift, int xmask, Tensor dy, Tensor? dyscale, "
        "Tensor? dyshift, int dymask, Tensor at, Tensor bt, int m, int d, int tiles) -> (Tensor, Tensor)");
  m.def("conv1(Tensor x, Tensor w, Tensor b, Tensor(a!) out, bool relu, bool stats) -> Tensor");
  m.def("bn_relu_bwd_(Tensor(a!) g, Tensor r, Tensor a, Tensor c1, Tensor c2) -> Tensor(a!)");
  m.def("candidates(Tensor z, Tensor thr, Tensor sgn, int k, bool near) -> (Tensor, Tensor)");
  m.def("all_candidates(Tensor z, Tensor thr, Tensor sgn, bool near) -> (Tensor, Tensor, Tensor)");
  m.def("exact_conv(Tensor x, Tensor n, Tensor t, Tensor c, Tensor w, Tensor b, Tensor a, Tensor s, int d) -> Tensor");
  m.def("exact_rows(Tensor x, Tensor n, Tensor t, Tensor wt, Tensor b, Tensor a, Tensor s, int d) -> Tensor");
  m.def("exact_taps(Tensor h, Tensor idx, Tensor c, Tensor w, Tensor b, Tensor a, Tensor s, bool relu) -> Tensor");
}

TORCH_LIBRARY_IMPL(alsnet, CPU, m) {
  m.impl("wino_fwd", &alsnet::op_wino_fwd);
  m.impl("wino_wgrad", &alsnet::op_wino_wgrad);
  m.impl("conv1", &alsnet::op_conv1);
  m.impl("bn_relu_bwd_", &alsnet::op_bn_relu_bwd_);
  m.impl("candidates", &alsnet::op_candidates);
  m.impl("all_candidates", &alsnet::op_all_candidates);
  m.impl("exact_conv", &alsnet::op_exact_conv);
  m.impl("exact_rows", &alsnet::op_exact_rows);
  m.impl("exact_taps", &alsnet::op_exact_taps);
}
