"""A faster ALSNet training step: the same function and gradients, fewer FLOPs and passes.

``fast_forward(model, x)`` returns ``model(x)``'s logits, updates the BatchNorm running
statistics exactly as ``model(x)`` would (momentum, unbiased variance, batch counter),
and is differentiable w.r.t. every parameter with the same gradients. The convolution
stack (conv1..BN3 and the max pool) is one :class:`torch.autograd.Function` whose
backward is written out by hand; the dense block and output layer stay ordinary modules.

Where the time goes, and what this does about it (per 1-s window, eager reference):

* convolutions, forward and backward (about 10.7 GFLOP): Winograd F(4, 9) / F(6, 7) for
  the forward, F(6, 9) / F(8, 7) for the input gradient (a correlation with the flipped
  kernel) and the weight gradient (``dU = sum_tiles V^T (A dY)``, then ``dW = G^T dU``),
  in (N, T, C) layout (:mod:`alsnet.engine.winograd`). The forward keeps the smaller
  tiles: its rounding must stay well inside the margin (``refine.EPS``) that decides which
  values are re-evaluated exactly; the gradients are smooth sums, and on 8 real windows
  they are 2e-5 of their scale from float64 (eager float32: 1.8e-4);
* BatchNorm after ReLU is an affine map ``a*r + s`` with ``a, s`` from the batch
  statistics of ``r``: it is folded into the next convolution (forward) and its
  backward is ``dr = a*dh + c1 + c2*r`` with per-channel constants from two sums that
  the backward convolution accumulates as it writes ``dh``;
* BN3 and the global max pool: ``p = a3*relu(z*) + s3`` with ``z*`` the max (min where
  ``a3 < 0``) of conv3's pre-activation, so conv3's 3-million-value output is never
  normalised; its gradient is sparse at ``z*`` plus the dense BN-statistics term
  ``(z > 0)*(c1 + c2*z)``, which the kernels compute on the fly from the stored ``z``
  (eager autograd spends a quarter of the step on the max pool's dense backward).

Winograd rounding (~1e-5 of a channel's scale) must not decide the max pool's winner
or conv2's ReLU mask: values within 1e-4 of those thresholds are re-evaluated by direct
float64 convolutions (:mod:`alsnet.engine.refine`). Set :data:`TILES` to 1s for direct
convolutions throughout (float32-exact like eager, about 1.3x slower).

Ties in the max pool: autograd splits the gradient evenly among tied maxima; here it
goes to one of them. The weight gradients agree whenever tied positions see the same
input (flat signal), and a tie at a positive activation otherwise has probability ~0.
"""

from __future__ import annotations

import torch

from alsnet.engine import refine as fr
from alsnet.engine import winograd as fc
from alsnet.model.network import ALSNet

#: Winograd output tile sizes ``{pass: (conv2, conv3)}`` for the forward pass, the input
#: gradient and the weight gradient; 1 means a direct convolution (fp32-exact, slower).
#: (6, 8) is alpha = 14, 8 % cheaper per step than (4, 6) for both gradients.
TILES = {"forward": (4, 6), "input_grad": (6, 8), "weight_grad": (6, 8)}


def applies(model: torch.nn.Module, x: torch.Tensor) -> bool:
    """Whether :func:`fast_forward` handles this call (else use ``model(x)``)."""
    if not isinstance(model, ALSNet) or fc.kernels() is None:
        return False
    if x.dtype != torch.float32 or x.device.type != "cpu" or x.ndim != 3 or x.shape[1] != 1:
        return False
    if x.requires_grad or x.shape[0] < 1 or x.shape[2] < 45 or torch.is_autocast_enabled("cpu"):
        return False
    f = model.features
    convs, bns = (f[0], f[3], f[6]), (f[2], f[5], f[8])
    shapes = ((32, 1, 11, 1), (64, 32, 9, 2), (128, 64, 7, 3))
    for c, (o, i, k, d) in zip(convs, shapes):
        if tuple(c.weight.shape) != (o, i, k) or c.dilation[0] != d or c.bias is None:
            return False
        if c.weight.dtype != torch.float32 or c.weight.device.type != "cpu":
            return False
    for bn in bns:
        if not (bn.affine and bn.track_running_stats):
            return False
    return len({bn.training for bn in bns}) == 1


def _bn_consts(sum1, sum2, count, bn, train: bool):
    """(a, s, mu, sigma) float64 of BatchNorm after ReLU; updates running stats in train mode."""
    g, b = bn.weight.detach().double(), bn.bias.detach().double()
    if train:
        mu = sum1 / count
        var = (sum2 / count - mu * mu).clamp_min(0.0)
        with torch.no_grad():
            bn.num_batches_tracked.add_(1)
            # momentum None: cumulative average over batches, as nn.BatchNorm1d does it
            mom = bn.momentum if bn.momentum is not None else 1.0 / float(bn.num_batches_tracked)
            bn.running_mean.mul_(1 - mom).add_((mom * mu).float())
            bn.running_var.mul_(1 - mom).add_((mom * var * count / max(count - 1, 1)).float())
    else:
        mu, var = bn.running_mean.double(), bn.running_var.double()
    sigma = torch.sqrt(var + bn.eps)
    a = g / sigma
    return a, b - mu * a, mu, sigma


def _fold(w, b, a, s):
    """Weights (float64) of a conv acting on ``a*r + s`` rewritten to act on ``r``."""
    w = w.detach().double()
    return (w * a[None, :, None]).float(), (b.detach().double() + (w * s[None, :, None]).sum((1, 2))).float()


def _flipped_u(w: torch.Tensor, m: int) -> torch.Tensor:
    """Winograd weights of the input-gradient correlation (kernel flipped, in/out swapped)."""
    return fc.transform_weight(w.detach().flip(-1).transpose(0, 1), m)


def _bn_bwd_consts(S1, S2, a, mu, sigma, count, train: bool):
    """Per-channel ``c1, c2`` of ``dr = a*dh + c1 + c2*r`` and ``(dgamma, dbeta)``."""
    dgamma = (S2 - mu * S1) / sigma
    if not train:
        z = torch.zeros_like(a)
        return z, z, dgamma, S1
    k = dgamma / count                      # mean(dh * xhat)
    c2 = -a * k / sigma
    c1 = -a * S1 / count + a * k * mu / sigma
    return c1, c2, dgamma, S1


class _Features(torch.autograd.Function):
    """x (N, 1, T) → BN3(ReLU(conv3(...))) max-pooled over time, (N, 128)."""

    @staticmethod
    def forward(ctx, x, model, train, refine, *params):
        f = model.features
        c1, bn1, c2, bn2, c3, bn3 = f[0], f[2], f[3], f[5], f[6], f[8]
        N, _, T = x.shape
        xs = x[:, 0, :].contiguous()
        # conv1 → r1 = relu(z1)                                          (N, T1, 32)
        r1, st1 = fc.conv1(xs, c1.weight.detach()[:, 0, :].T.contiguous(), c1.bias.detach(), stats=True)
        n1 = N * r1.shape[1]
        with fc.single_thread():
            a1, s1, mu1, sg1 = _bn_consts(st1[0], st1[1], n1, bn1, train)
            w2f, b2f = _fold(c2.weight, c2.bias, a1, s1)
        # conv2 on h1 = a1*r1 + s1 (folded) → z2, pre-activation kept     (N, T2, 64)
        M2, M3 = TILES["forward"]
        res2 = fc.wino_conv(r1, fc.transform_weight(w2f, M2), b2f, M2, 2, stats=True, maxmin=True)
        z2 = res2["out"]
        n2 = N * z2.shape[1]
        # (the re-evaluations and gathers below are large enough to use every thread;
        # only the per-channel constants run on one)
        st2 = (res2["stats"] if M2 == 1 or not refine
               else fr.fix_z2_signs(z2, r1, res2["maxmin"], res2["stats"], c2, a1, s1))
        with fc.single_thread():
            a2, s2, mu2, sg2 = _bn_consts(st2[0], st2[1], n2, bn2, train)
            w3f, b3f = _fold(c3.weight, c3.bias, a2, s2)
        # conv3 on h2 = a2*relu(z2) + s2 (folded) → z3 kept, its max/min  (N, T3, 128)
        res3 = fc.wino_conv(z2, fc.transform_weight(w3f, M3), b3f, M3, 3, mask=1, stats=True, maxmin=True)
        z3 = res3["out"]
        n3 = N * z3.shape[1]
        with fc.single_thread():
            a3, s3, mu3, sg3 = _bn_consts(res3["stats"][0], res3["stats"][1], n3, bn3, train)
            pos = a3 >= 0
            sgn = torch.where(pos, 1.0, -1.0).double()
            zsel = torch.where(pos, res3["maxmin"][:, 0], res3["maxmin"][:, 1]).double()  # (N, 128)
            tsel = torch.where(pos, res3["argmm"][:, 0], res3["argmm"][:, 1]).long()
        if TILES["forward"] != (1, 1) and refine:
            zsel, tsel = fr.refine_pool(z3, res3["maxmin"], zsel, tsel, sgn, r1, c2, c3, a1, s1, a2, s2)
        p = (a3 * zsel.clamp_min(0) + s3).float()
        ctx.save_for_backward(xs, r1, z2, z3, zsel, tsel)
        ctx.model, ctx.train = model, train
        ctx.consts = (a1, s1, mu1, sg1, n1, a2, s2, mu2, sg2, n2, a3, s3, mu3, sg3, n3)
        return p

    @staticmethod
    def backward(ctx, dp):
        xs, r1, z2, z3, zsel, tsel = ctx.saved_tensors
        model, train = ctx.model, ctx.train
        f = model.features
        c2, c3 = f[3], f[6]
        a1, s1, mu1, sg1, n1, a2, s2, mu2, sg2, n2, a3, s3, mu3, sg3, n3 = ctx.consts
        N = xs.shape[0]
        dp = dp.double()
        # ---- BN3 + max pool: dh3 is dp at (n, t*, c); z3 > 0 there for a nonzero dz3
        with fc.single_thread():
            r3sel = zsel.clamp_min(0)
            S1_3, S2_3 = dp.sum(0), (dp * r3sel).sum(0)
            k1_3, k2_3, dg3, db3n = _bn_bwd_consts(S1_3, S2_3, a3, mu3, sg3, n3, train)
            sp = (a3 * dp * (zsel > 0)).float()                              # (N, 128) sparse dz3
        # ---- conv3: weight gradient (dense part on the fly from z3, sparse part gathered)
        w3 = c3.weight.detach()
        r, d3 = 7, 3
        (B2, B3), (W2m, W3m) = TILES["input_grad"], TILES["weight_grad"]
        dU3, dbias3 = fc.wino_wgrad(z2, z3, W3m, r, d3, xscale=a2.float(), xshift=s2.float(), xmask=2,
                                    dyscale=k2_3.float(), dyshift=k1_3.float(), dymask=1)
        dW3 = fc.weight_grad_from_u(dU3, W3m, r)
        taps = tsel[:, :, None] + d3 * torch.arange(r)                       # (N, 128, 7)
        rows = (torch.arange(N)[:, None, None] * z2.shape[1] + taps).reshape(-1)
        r2rows = z2.reshape(-1, z2.shape[2])[rows].clamp_min(0)                    # (N*128*7, 64)
        h2rows = (r2rows.double() * a2 + s2).reshape(N, 128, r, -1)
        dW3 += torch.einsum("nc,ncjk->ckj", sp.double(), h2rows).float()
        db3 = (dbias3 + sp.double().sum(0)).float()
        # ---- conv3 input gradient dh2 (+ sums for BN2), then dz2 in place
        res = fc.wino_conv(z3, _flipped_u(w3, B3), torch.zeros(64), B3, d3, pad=(r - 1) * d3, cheap_input=True,
                           scale=k2_3.float(), shift=k1_3.float(), mask=1, aux=z2)
        dh2 = res["out"]
        add = torch.einsum("nc,ckj->ncjk", sp, w3).reshape(-1, w3.shape[1])      # (N*128*7, 64)
        dh2.view(-1, dh2.shape[2]).index_put_((rows,), add, accumulate=True)
        S1_2 = res["auxsums"][0] + add.double().sum(0)
        S2_2 = res["auxsums"][1] + (add.double() * r2rows.double()).sum(0)
        with fc.single_thread():
            k1_2, k2_2, dg2, db2n = _bn_bwd_consts(S1_2, S2_2, a2, mu2, sg2, n2, train)
        dz2 = fc.bn_relu_bwd_(dh2, z2, a2, k1_2, k2_2)      # r2 > 0 iff z2 > 0, and then r2 = z2
        del dh2, res
        # ---- conv2: weight gradient on h1 = a1*r1 + s1, input gradient dh1 (+ sums)
        w2 = c2.weight.detach()
        dU2, dbias2 = fc.wino_wgrad(r1, dz2, W2m, 9, 2, xscale=a1.float(), xshift=s1.float())
        dW2 = fc.weight_grad_from_u(dU2, W2m, 9)
        res = fc.wino_conv(dz2, _flipped_u(w2, B2), torch.zeros(32), B2, 2, pad=16, aux=r1, cheap_input=True)
        del dz2
        with fc.single_thread():
            k1_1, k2_1, dg1, db1n = _bn_bwd_consts(res["auxsums"][0], res["auxsums"][1], a1, mu1, sg1, n1, train)
        dz1 = fc.bn_relu_bwd_(res["out"], r1, a1, k1_1, k2_1)                # (N, T1, 32)
        # ---- conv1 weight gradient: sum_t x[t+j] dz1[t]
        T1 = dz1.shape[1]
        xu = xs.unfold(1, 11, 1)                                             # (N, T1, 11)
        dW1 = (xu[:, :T1].reshape(-1, 11).T @ dz1.reshape(-1, dz1.shape[2])).T[:, None, :].contiguous()
        db1 = dz1.sum((0, 1))
        f32 = lambda t: t.float()  # noqa: E731
        grads = (dW1, db1, f32(dg1), f32(db1n), dW2, dbias2.float(), f32(dg2), f32(db2n),
                 dW3, db3, f32(dg3), f32(db3n))
        return (None, None, None, None, *grads)


def fast_forward(model: ALSNet, x: torch.Tensor) -> torch.Tensor:
    """``model(x)`` through :class:`_Features` (see the module notes); caller checks :func:`applies`."""
    f = model.features
    params = (f[0].weight, f[0].bias, f[2].weight, f[2].bias, f[3].weight, f[3].bias,
              f[5].weight, f[5].bias, f[6].weight, f[6].bias, f[8].weight, f[8].bias)
    # The exact re-evaluation of near-tie decisions only matters for gradients: without
    # them (validation) it is skipped, and the logits differ from eager by Winograd
    # rounding alone, as on the inference engines.
    refine = torch.is_grad_enabled() and any(q.requires_grad for q in params)
    p = _Features.apply(x, model, f[2].training, refine, *params)   # (N, 128)
    return model.out(model.dense(p))


__all__ = ["applies", "fast_forward"]
