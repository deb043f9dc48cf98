"""Exact inference-time rewrites of an eval-mode ALSNet (used by :mod:`alsnet.engine.backends`).

* Each BatchNorm follows a ReLU, so at inference it is a per-channel affine map
  ``a*relu(z) + b`` that folds into the *next* layer's weights:
  ``W'[o, c, :] = W[o, c, :] * a[c]`` and ``bias' = bias + sum_{c,j} W[o, c, j] * b[c]``
  (valid padding: every tap sees a real sample, so the fold is exact).
* The last convolution block and the global max pool collapse:
  ``max_t(a*relu(z_t) + b) = a*relu(max_t z_t) + b`` for ``a >= 0`` and
  ``a*relu(min_t z_t) + b`` for ``a < 0``, so BN3 and the ReLU act on 128 numbers per
  window instead of 3 million; flipping the sign of conv3's rows with ``a < 0`` turns
  the min into a max, so one ``amax`` serves all channels.
* The dense block's BatchNorm folds into the output layer the same way.

All folds are computed in float64 and stored in float32.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from alsnet.model.network import ALSNet


def bn_affine(bn: nn.BatchNorm1d) -> tuple[torch.Tensor, torch.Tensor]:
    """Eval-mode BatchNorm as ``(a, b)`` float64 with ``bn(v) = a*v + b``."""
    a = bn.weight.detach().double() / torch.sqrt(bn.running_var.detach().double() + bn.eps)
    return a, bn.bias.detach().double() - bn.running_mean.detach().double() * a


def fold_conv(w: torch.Tensor, b: torch.Tensor, a: torch.Tensor, s: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Conv weight/bias (float64) acting on ``a*v + s`` rewritten to act on ``v``."""
    w = w.detach().double()
    return w * a[None, :, None], b.detach().double() + (w * s[None, :, None]).sum((1, 2))


@dataclass
class Folded:
    """Float32 parameters of the folded network (see the module notes)."""

    w1: torch.Tensor      # (32, 1, 11)
    b1: torch.Tensor
    w2: torch.Tensor      # (64, 32, 9), BN1 folded in
    b2: torch.Tensor
    w3: torch.Tensor      # (128, 64, 7), BN2 folded in
    b3: torch.Tensor
    a3: torch.Tensor      # BN3 as a3*relu(.) + s3
    s3: torch.Tensor
    wd: torch.Tensor      # dense (64, 128)
    bd: torch.Tensor
    wo: torch.Tensor      # output (n_out, 64), dense BN folded in
    bo: torch.Tensor
    dilations: tuple[int, int, int]

    def tail(self, zmax: torch.Tensor, zmin: torch.Tensor) -> torch.Tensor:
        """Logits from the per-window max and min of conv3's pre-activation ``(N, 128)``."""
        z = torch.where(self.a3 >= 0, zmax, zmin)
        p = self.a3 * torch.relu(z) + self.s3
        h = torch.relu(F.linear(p, self.wd, self.bd))
        return F.linear(h, self.wo, self.bo)


def fold(model: ALSNet) -> Folded:
    """Fold an ALSNet's eval-mode BatchNorms (the model is not modified)."""
    f = model.features
    c1, bn1, c2, bn2, c3, bn3 = f[0], f[2], f[3], f[5], f[6], f[8]
    a1, s1 = bn_affine(bn1)
    a2, s2 = bn_affine(bn2)
    a3, s3 = bn_affine(bn3)
    w2, b2 = fold_conv(c2.weight, c2.bias, a1, s1)
    w3, b3 = fold_conv(c3.weight, c3.bias, a2, s2)
    lin, bnd = model.dense[0], model.dense[2]
    ad, sd = bn_affine(bnd)
    wo = model.out.weight.detach().double()
    f32 = lambda t: t.detach().float().contiguous()  # noqa: E731
    return Folded(f32(c1.weight), f32(c1.bias), f32(w2), f32(b2), f32(w3), f32(b3), f32(a3), f32(s3),
                  f32(lin.weight), f32(lin.bias), f32(wo * ad[None, :]),
                  f32(model.out.bias.detach().double() + wo @ sd),
                  (c1.dilation[0], c2.dilation[0], c3.dilation[0]))


class FoldedALSNet(nn.Module):
    """Plain-PyTorch folded network: three convolutions, ReLUs, one ``amax``, a small tail.

    Same logits as the eval-mode ALSNet it was built from (to float32 rounding); also the
    graph exported for the ONNX backends and compiled for the ``compiled`` backend.
    """

    def __init__(self, folded: Folded):
        super().__init__()
        sign = torch.where(folded.a3 >= 0, 1.0, -1.0)
        self.d = folded.dilations
        for name in ("w1", "b1", "w2", "b2", "wd", "bd", "wo", "bo"):
            self.register_buffer(name, getattr(folded, name).clone())
        self.register_buffer("w3", (folded.w3 * sign[:, None, None]).contiguous())
        self.register_buffer("b3", folded.b3 * sign)
        self.register_buffer("sign", sign)             # amax of -z is -(min of z)
        self.register_buffer("a3", folded.a3.clone())
        self.register_buffer("s3", folded.s3.clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(F.conv1d(x, self.w1, self.b1, dilation=self.d[0]))     # (N, 32, T-10)
        x = torch.relu(F.conv1d(x, self.w2, self.b2, dilation=self.d[1]))     # (N, 64, T-26)
        z = F.conv1d(x, self.w3, self.b3, dilation=self.d[2]).amax(dim=-1)    # (N, 128)
        p = self.a3 * torch.relu(self.sign * z) + self.s3
        h = torch.relu(F.linear(p, self.wd, self.bd))
        return F.linear(h, self.wo, self.bo)


__all__ = ["Folded", "FoldedALSNet", "bn_affine", "fold", "fold_conv"]
