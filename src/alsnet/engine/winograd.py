"""Fused CPU kernels for ALSNet's dilated convolutions: Winograd filtering in (N, T, C).

Why: the reference ``nn.Conv1d`` path spends ~3.6 GFLOP per 1-s window, almost all in
conv2 (k=9, dilation 2) and conv3 (k=7, dilation 3), and then makes several passes over
100-MB activations for ReLU, BatchNorm and the max pool. A 2-core AVX2 machine cannot
go much faster with the same arithmetic (MKL sgemm peaks near 170 GFLOP/s), so this
module uses *less* arithmetic, exactly: Winograd minimal filtering F(m, r) computes m
outputs of an r-tap correlation with alpha = m + r - 1 multiplies instead of m*r
(per input/output channel pair; a dilation-d convolution is d interleaved undilated
ones, so tiles simply step by d). F(6, 7) for conv3 and F(4, 9) for conv2 cut the
multiplies 3.5x and 3x; the transforms are done on L2-sized chunks of time, vectorised
over channels, around register-blocked GEMMs, in ``csrc/winograd.cpp``.

The interpolation points were chosen by measuring the float32 error on ReLU-like data
(largest error / largest output about 6e-6 for F(6, 7) and 5e-6 for F(4, 9), against
1e-6 for a direct float32 convolution); ``tests/test_fast.py`` and the parity check of
``benchmarks/bench.py`` hold the whole network to that. The training step's forward uses
those tiles (the exact re-evaluation of near ties relies on its small rounding). Inference
and the training step's gradients use one size larger, F(6, 9) and F(8, 7) (alpha = 14:
2.3 and 1.75 multiplies per output instead of 3 and 2, about 2e-5 and 3e-5 error by the
same measure): inference 10-20 % faster with logits within 2e-4 of eager's on real windows,
the gradients still several times closer to float64 than eager float32's.

The kernels are a PyTorch C++ extension (``torch.ops.alsnet.*``), built once per machine
for the CPU's instruction set by :mod:`alsnet.engine.kernels`. Where they cannot be
built, :func:`kernels` returns ``None`` (after one warning) and callers use plain PyTorch.
"""

from __future__ import annotations

import functools
from fractions import Fraction

import torch

from alsnet.engine import kernels as _kernels

# Interpolation points (besides infinity) per (m, r): 0 and symmetric pairs, each set the
# measured best of several hundred candidate sets (F(6, 7), F(4, 9): ~460; F(8, 7), F(6, 9):
# 150 random sets of 6 pairs, float32 emulation on ReLU-like data).
POINTS: dict[tuple[int, int], tuple[Fraction, ...]] = {
    (6, 7): tuple(Fraction(p) for p in ("0", "1", "-1", "3", "-3", "1/3", "-1/3", "3/4", "-3/4", "4/3", "-4/3")),
    (4, 9): tuple(Fraction(p) for p in ("0", "1", "-1", "1/2", "-1/2", "3", "-3", "3/2", "-3/2", "3/4", "-3/4")),
    (8, 7): tuple(Fraction(p) for p in ("0", "1/4", "-1/4", "4", "-4", "2/3", "-2/3", "3/4", "-3/4", "5/4", "-5/4",
                                        "5/3", "-5/3")),
    (6, 9): tuple(Fraction(p) for p in ("0", "1/3", "-1/3", "4", "-4", "3/2", "-3/2", "2/3", "-2/3", "5/4", "-5/4",
                                        "4/5", "-4/5")),
}
_DEFAULT_POINTS = tuple(Fraction(p) for p in ("0", "1", "-1", "1/2", "-1/2", "2", "-2", "1/4", "-1/4",
                                               "4", "-4", "3", "-3", "1/3", "-1/3"))


# --------------------------------------------------------------------------- Winograd algebra

def _vander(points: tuple[Fraction, ...], n: int) -> list[list[Fraction]]:
    rows = [[p ** k for k in range(n)] for p in points]
    rows.append([Fraction(0)] * (n - 1) + [Fraction(1)])  # the point at infinity
    return rows


def _inverse(mat: list[list[Fraction]]) -> list[list[Fraction]]:
    n = len(mat)
    aug = [row[:] + [Fraction(int(i == j)) for j in range(n)] for i, row in enumerate(mat)]
    for c in range(n):
        piv = next(r for r in range(c, n) if aug[r][c] != 0)
        aug[c], aug[piv] = aug[piv], aug[c]
        pv = aug[c][c]
        aug[c] = [v / pv for v in aug[c]]
        for r in range(n):
            if r != c and aug[r][c] != 0:
                f = aug[r][c]
                aug[r] = [a - f * b for a, b in zip(aug[r], aug[c])]
    return [row[n:] for row in aug]


@functools.cache
def winograd_matrices(m: int, r: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(AT (m, a), G (a, r), BT (a, a))`` in float64 for correlation F(m, r), a = m + r - 1.

    ``y = AT @ ((G @ w) * (BT @ x))`` for ``x`` of length ``a`` and ``y_i = sum_j w_j x_{i+j}``
    (by the transposition principle from the Toom-Cook product of polynomials). ``m = 1``
    gives the direct convolution (identity transforms).
    """
    a = m + r - 1
    if m == 1:
        return (torch.ones(1, r, dtype=torch.float64), torch.eye(r, dtype=torch.float64),
                torch.eye(r, dtype=torch.float64))
    pts = POINTS.get((m, r), _DEFAULT_POINTS[: a - 1])
    if len(pts) != a - 1:
        raise ValueError(f"no interpolation points for F({m}, {r})")
    A = _vander(pts, m)
    G = _vander(pts, r)
    C = _inverse(_vander(pts, a))
    to = lambda rows: torch.tensor([[float(v) for v in row] for row in rows], dtype=torch.float64)  # noqa: E731
    return to(A).T.contiguous(), to(G), to(C).T.contiguous()


@functools.cache
def _transforms32(m: int, r: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(AT, BT)`` of F(m, r) in float32, as the kernels take them."""
    AT, _, BT = winograd_matrices(m, r)
    return AT.float().contiguous(), BT.float().contiguous()


def transform_weight(w: torch.Tensor, m: int) -> torch.Tensor:
    """``U (a, Cin, Cout)`` float32 from a Conv1d weight ``(Cout, Cin, r)`` (computed in float64)."""
    _, G, _ = winograd_matrices(m, w.shape[-1])
    with single_thread():
        return torch.einsum("ar,ocr->aco", G, w.detach().double()).float().contiguous()


def weight_grad_from_u(dU: torch.Tensor, m: int, r: int) -> torch.Tensor:
    """Conv1d weight gradient ``(Cout, Cin, r)`` from the gradient of ``U`` ``(a, Cin, Cout)``."""
    _, G, _ = winograd_matrices(m, r)
    with single_thread():
        return torch.einsum("ar,aco->ocr", G, dU.double()).float()


# --------------------------------------------------------------------------- the extension

def kernels() -> str | None:
    """The instruction set of the loaded C++ kernels (building them on first use); ``None``
    where they cannot be used (see :mod:`alsnet.engine.kernels`)."""
    return _kernels.ensure()


def kernels_error() -> str | None:
    """Why :func:`kernels` returned ``None`` (``None`` if it loaded or was not tried)."""
    return _kernels.error()


# --------------------------------------------------------------------------- wrappers

class single_thread:
    """Run small tensor ops on one thread: on a busy 2-core machine a parallel region
    around a 1-ms op can wait a whole scheduler time slice for its second thread."""

    def __enter__(self):
        self.n = torch.get_num_threads()
        if self.n != 1:
            torch.set_num_threads(1)
        return self

    def __exit__(self, *exc):
        if self.n != 1:
            torch.set_num_threads(self.n)
        return False


def conv1(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor, *, relu: bool = True,
          stats: bool = False, dest: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """First layer: ``x (N, T)`` → ``(N, T-K+1, C)``; ``w`` is ``(K, C)``. Optional sums of relu."""
    N, T = x.shape
    K, C = w.shape
    out = _dest(dest, (N, max(T - K + 1, 0), C))
    st = torch.ops.alsnet.conv1(x, w, b, out, relu, stats)
    return out, (st if stats else None)


#: "no tensor" for the operators' optional outputs.
_NONE = torch.empty(0)


def _dest(dest: torch.Tensor | None, shape: tuple[int, ...]) -> torch.Tensor:
    """``dest`` when it is a float32 tensor of ``shape`` (reused: a fresh 25-MB output costs
    thousands of page faults per call), else a new tensor."""
    if dest is not None and tuple(dest.shape) == shape and dest.dtype == torch.float32 and dest.is_contiguous():
        return dest
    return torch.empty(shape)


def wino_conv(x: torch.Tensor, U: torch.Tensor, bias: torch.Tensor, m: int, d: int, *,
              pad: int = 0, scale: torch.Tensor | None = None, shift: torch.Tensor | None = None,
              mask: int = 0,
              out: bool = True, relu: bool = False, stats: bool = False, aux: torch.Tensor | None = None,
              maxmin: bool = False, argmax: bool = True, cheap_input: bool = False, tiles: int = 96,
              dest: torch.Tensor | None = None) -> dict:
    """Dilated correlation of ``x (N, T, Cin)`` (time-major) by Winograd F(m, r).

    The input seen by the filter is ``x`` padded with ``pad`` zero rows on both sides,
    each value mapped to ``scale*v + shift`` (``mask=1``: 0 where ``v <= 0``; ``mask=2``:
    ``scale*relu(v) + shift``). Returns a dict with what was asked: ``out (N, To, Cout)``
    (ReLU'd if ``relu``), ``stats (2, Cout)`` float64 sums of relu(y) and relu(y)^2,
    ``auxsums (2, Cout)`` sums of y and y*relu(aux), and
    ``maxmin (N, 2, Cout)`` / ``argmm`` (int32) the largest and smallest y over time
    (``argmax=False``: no ``argmm``; with nothing else asked, the extremes are then
    reduced per tile in registers, the inference path). ``cheap_input``: the input
    transform in half-sums of symmetric points (a third fewer multiply-adds, a little more
    rounding: in the training forward enough to push conv1's bias gradient past the float32
    tolerance of tests/test_fast.py, so inference and the training step's input gradients only).
    """
    N, Tx, Cin = x.shape
    A, _, Cout = U.shape
    AT, BT = _transforms32(m, A - m + 1)
    To = Tx + 2 * pad - (A - m) * d
    o = _dest(dest, (N, To, Cout)) if out else _NONE
    st, axs, mm, am = torch.ops.alsnet.wino_fwd(x, pad, scale, shift, mask, U, bias, AT, BT, m, d,
                                                o, relu, stats, aux, maxmin, argmax, cheap_input, tiles)
    res: dict = {}
    if out:
        res["out"] = o
    if stats:
        res["stats"] = st
    if aux is not None:
        res["auxsums"] = axs
    if maxmin:
        res["maxmin"] = mm
        if argmax:
            res["argmm"] = am
    return res


def wino_wgrad(x: torch.Tensor, dy: torch.Tensor, m: int, r: int, d: int, *,
               xscale: torch.Tensor | None = None, xshift: torch.Tensor | None = None, xmask: int = 0,
               dyscale: torch.Tensor | None = None, dyshift: torch.Tensor | None = None, dymask: int = 0,
               tiles: int = 96) -> tuple[torch.Tensor, torch.Tensor]:
    """Gradients of a dilated correlation's weight (as ``U (a, Cin, Cout)``) and bias.

    ``x (N, T, Cin)`` is the layer input (mapped by ``xscale``/``xshift``/``xmask`` as in
    :func:`wino_conv`), ``dy (N, To, Cout)``
    the output gradient (mapped by ``dyscale``/``dyshift``, zero where ``dymask`` and
    ``dy <= 0``: lets the caller pass the pre-activation and build the gradient on the fly).
    """
    AT, BT = _transforms32(m, r)
    return torch.ops.alsnet.wino_wgrad(x, xscale, xshift, xmask, dy, dyscale, dyshift, dymask, AT, BT, m, d, tiles)


def bn_relu_bwd_(g: torch.Tensor, r: torch.Tensor, a: torch.Tensor, c1: torch.Tensor,
                 c2: torch.Tensor) -> torch.Tensor:
    """In place ``g = (r > 0) * (a*g + c1 + c2*r)`` over ``(..., C)`` tensors; returns ``g``."""
    f = lambda v: v.float().contiguous()  # noqa: E731
    return torch.ops.alsnet.bn_relu_bwd_(g, r, f(a), f(c1), f(c2))


def candidates(z: torch.Tensor, thr: torch.Tensor, k: int, sgn: torch.Tensor | None = None,
               ) -> tuple[torch.Tensor, torch.Tensor]:
    """Times ``t`` with ``sgn[c]*z[n, t, c] >= thr[n, c]`` (or ``|z| < thr`` when ``sgn`` is None).

    Returns ``(idx (N, C, k) int32, count (N, C))``: only the first ``k`` times per
    ``(n, c)`` are stored; ``count`` may exceed ``k``.
    """
    return torch.ops.alsnet.candidates(z, *_candidate_args(z, thr, sgn), k, sgn is None)


def _candidate_args(z: torch.Tensor, thr: torch.Tensor, sgn: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """``thr`` as (N, C) and ``sgn`` as (C,) float32, as both candidate searches take them."""
    N, _, C = z.shape
    return thr.float().expand(N, C).contiguous(), torch.ones(C) if sgn is None else sgn.float().contiguous()


def all_candidates(z: torch.Tensor, thr: torch.Tensor, sgn: torch.Tensor | None = None,
                   ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Every ``(n, t, c)`` (int64, in that order) that :func:`candidates` counts, with no cap."""
    return torch.ops.alsnet.all_candidates(z, *_candidate_args(z, thr, sgn), sgn is None)


__all__ = ["winograd_matrices", "transform_weight", "weight_grad_from_u", "kernels", "kernels_error",
           "conv1", "wino_conv", "wino_wgrad", "bn_relu_bwd_", "candidates", "all_candidates", "single_thread",
           "POINTS"]
