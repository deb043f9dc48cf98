"""Exact re-evaluation of the few values where Winograd rounding could flip a decision.

The Winograd kernels are accurate to ~1e-5 of a channel's scale, which is harmless for
smooth quantities (BatchNorm statistics, the dense part of the gradients) but not for
two discrete decisions that the gradient depends on:

* which time wins the global max pool (the sparse gradient lands there), and
* the sign of conv2's pre-activation (ReLU's mask gates every gradient through it).

A near-tie or a near-zero decided by rounding can move a whole gradient term, and in a
bias gradient, a sum with cancellation, that showed up as 1e-3 relative differences.
So :mod:`alsnet.engine.train_step` re-evaluates, by direct float64 convolutions from ``r1``, the
values within ``EPS`` of the decision threshold (a few hundred per million): the result
is decided as a direct convolution would decide it.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from alsnet.engine import winograd as fc

#: Candidates lie within EPS x (the channel's largest |value| in the batch) of the threshold.
EPS = 1e-4
#: More candidates than this for one (window, channel) are found by a slower gather.
MAX_PER = 64


def _w2(c2: nn.Conv1d) -> tuple[torch.Tensor, torch.Tensor]:
    """conv2 weight as ``(Cout, 9 taps, Cin)`` float64 and its bias."""
    return c2.weight.detach().double().permute(0, 2, 1), c2.bias.detach().double()


def exact_z2(r1: torch.Tensor, n: torch.Tensor, t: torch.Tensor, c: torch.Tensor, c2: nn.Conv1d,
             a1: torch.Tensor, s1: torch.Tensor) -> torch.Tensor:
    """conv2 pre-activation at ``(n, t, c)`` (float64) from ``h1 = a1*r1 + s1`` (a C++ loop)."""
    w2, b2 = _w2(c2)
    return torch.ops.alsnet.exact_conv(r1, n.long().contiguous(), t.long().contiguous(), c.long().contiguous(),
                                       w2.contiguous(), b2.contiguous(), a1.double().contiguous(),
                                       s1.double().contiguous(), 2)


def exact_z2_rows(r1: Tensor, n: Tensor, t: Tensor, c2: nn.Conv1d, a1: Tensor, s1: Tensor) -> Tensor:
    """All conv2 pre-activations at rows ``(n, t)``: float64 ``(len(n), 64)`` (a C++ loop)."""
    w2, b2 = _w2(c2)
    return torch.ops.alsnet.exact_rows(r1, n.long().contiguous(), t.long().contiguous(),
                                       w2.permute(1, 2, 0).contiguous(), b2.contiguous(),
                                       a1.double().contiguous(), s1.double().contiguous(), 2)


def exact_z3(r1: Tensor, n: Tensor, t: Tensor, c: Tensor, c2: nn.Conv1d, c3: nn.Conv1d, a1: Tensor, s1: Tensor,
             a2: Tensor, s2: Tensor, block: int = 16384) -> Tensor:
    """conv3 pre-activation at ``(n, t, c)`` (float64), every layer direct from ``r1`` (C++ loops).

    Nearby candidates share conv2 rows: each distinct row is computed once. Candidates are
    taken ``block`` at a time, so memory stays bounded (~60 MB) even when a flat channel
    makes many times of a window candidates.
    """
    T1 = r1.shape[1]
    w3 = c3.weight.detach().double().permute(0, 2, 1).contiguous()                   # (128, 7, 64)
    b3, a2, s2 = (v.detach().double().contiguous() for v in (c3.bias, a2, s2))
    out = torch.empty(len(n), dtype=torch.float64)
    for i in range(0, len(n), block):
        uniq, inv = torch.unique(n[i:i + block] * T1 + t[i:i + block], return_inverse=True)
        taps = (uniq[:, None] + 3 * torch.arange(7)).reshape(-1)                       # (U*7,) n*T1 + t
        rows, rinv = torch.unique(taps, return_inverse=True)
        z2 = exact_z2_rows(r1, rows // T1, rows % T1, c2, a1, s1)                      # (R, 64)
        idx = rinv.reshape(len(uniq), 7)[inv].contiguous()
        out[i:i + block] = torch.ops.alsnet.exact_taps(z2, idx, c[i:i + block].long().contiguous(), w3, b3, a2, s2,
                                                       True)
    return out


def _candidates(z: Tensor, thr: Tensor, sgn: Tensor | None = None,
                gather_over: bool = True) -> tuple[Tensor, Tensor, Tensor]:
    """``(n, t, c)`` of the candidates (see :func:`alsnet.engine.winograd.candidates`).

    With ``gather_over`` every candidate (:func:`alsnet.engine.winograd.all_candidates`);
    otherwise columns with more than ``MAX_PER`` candidates (flat stretches) are left to the
    kernel's decision.
    """
    if gather_over:  # every candidate, flat stretches included, in one pass of the kernel
        return fc.all_candidates(z, thr, sgn)
    idx, cnt = fc.candidates(z, thr, MAX_PER, sgn)
    ok = cnt <= MAX_PER
    n, c, k = torch.nonzero(ok[:, :, None] & (torch.arange(MAX_PER) < cnt[:, :, None]), as_tuple=True)
    t = idx[n, c, k].long()
    return n, t, c


def fix_z2_signs(z2: Tensor, r1: Tensor, maxmin2: Tensor, stats2: Tensor, c2: nn.Conv1d, a1: Tensor,
                 s1: Tensor) -> Tensor:
    """Re-evaluate conv2 pre-activations near zero in place; returns corrected relu sums."""
    N, _, C = z2.shape
    scale = maxmin2.abs().amax((0, 1))
    n, t, c = _candidates(z2, (EPS * scale).expand(N, C))
    if len(n) == 0:
        return stats2
    new = exact_z2(r1, n, t, c, c2, a1, s1)
    old = z2[n, t, c].double()
    rn, ro = new.clamp_min(0), old.clamp_min(0)
    stats2 = stats2.clone()
    stats2[0].index_add_(0, c, rn - ro)
    stats2[1].index_add_(0, c, rn * rn - ro * ro)
    z2[n, t, c] = new.float()
    return stats2


def refine_pool(z3: Tensor, maxmin3: Tensor, zsel: Tensor, tsel: Tensor, sgn: Tensor, r1: Tensor, c2: nn.Conv1d,
                c3: nn.Conv1d, a1: Tensor, s1: Tensor, a2: Tensor, s2: Tensor) -> tuple[Tensor, Tensor]:
    """Exact value and time of the max pool's winner per (window, channel)."""
    N, _, C = z3.shape
    scale = maxmin3.abs().amax((0, 1)).double()
    # A flat stretch of conv3 (a quiet or constant piece of signal: every time within EPS
    # of the max) is left to the kernel's choice of time: the input patches there are
    # alike, so the gradient hardly depends on which one wins, and gathering them all
    # cost seconds per step on real data.
    n, t, c = _candidates(z3, sgn * zsel - EPS * scale, sgn, gather_over=False)
    if len(n) == 0:
        return zsel, tsel
    z = exact_z3(r1, n, t, c, c2, c3, a1, s1, a2, s2)
    key = n * C + c
    v = z * sgn[c]
    best = torch.full((N * C,), -torch.inf, dtype=torch.float64).scatter_reduce(0, key, v, "amax")
    order = torch.arange(len(key))
    first = torch.full((N * C,), len(key)).scatter_reduce(0, key, torch.where(v == best[key], order, len(key)),
                                                          "amin")
    done = torch.nonzero(first < len(key), as_tuple=True)[0]
    zsel, tsel = zsel.clone().reshape(-1), tsel.clone().reshape(-1)
    zsel[done] = z[first[done]]
    tsel[done] = t[first[done]]
    return zsel.reshape(N, C), tsel.reshape(N, C)


__all__ = ["EPS", "MAX_PER", "exact_z2", "exact_z2_rows", "exact_z3", "fix_z2_signs", "refine_pool"]
