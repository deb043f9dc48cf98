"""Would bf16 dot products pay for ALSNet on a CPU with AVX512-BF16? Measured, not assumed.

    python3 benchmarks/bf16_winograd.py --data data/N2001 \
        --model src/alsnet/model/pretrained/als-vs-normal [--windows 24] [--samples 8000]

``vdpbf16ps`` does twice the multiply-adds of an fp32 FMA per instruction, but rounds both
operands to bf16 (8 significant bits). This script simulates, in float64 with the operands
rounded exactly as the instruction would take them, conv2 and conv3 of a trained ALSNet on
real N2001 windows in three ways and reports each one's error against the exact float64
network: fp32 Winograd F(4, 9) / F(6, 7) (what the kernels run), bf16 direct convolution,
and bf16 Winograd. Errors are the largest |difference| over the largest |value| of each
layer's output, and the logits' largest absolute difference and sign agreement.

Winograd's transforms amplify operand rounding (their interpolation points reach 4 and
1/4), so the bf16 Winograd error is that of bf16 times the amplification; a bf16 direct
convolution stays at bf16 rounding but needs 3-3.5x the multiplies of the Winograd
filtering the fp32 path uses, which more than uses up bf16's 2x.
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import torch
import torch.nn.functional as F

from alsnet.data.dataset import load_windows
from alsnet.data.labels import get_task
from alsnet.engine.winograd import winograd_matrices
from alsnet.model.checkpoint import load_model


def _bf16(t: torch.Tensor) -> torch.Tensor:
    return t.to(torch.bfloat16).double()


def _f32(t: torch.Tensor) -> torch.Tensor:
    return t.float().double()


def conv(h: torch.Tensor, layer: torch.nn.Conv1d, mode: str, m: int = 1) -> torch.Tensor:
    """``layer(h)`` in float64 with operands rounded as ``mode`` says (whole tiles only)."""
    w, b, d = layer.weight.double(), layer.bias.double(), layer.dilation[0]
    if mode == "exact":
        return F.conv1d(h, w, b, dilation=d)
    if mode == "bf16-direct":
        return F.conv1d(_bf16(h), _bf16(w), b, dilation=d)
    rnd = _bf16 if mode == "bf16-winograd" else _f32
    r = w.shape[-1]
    AT, G, BT = winograd_matrices(m, r)
    a = m + r - 1
    N, _, T = h.shape
    To = T - (r - 1) * d
    U = rnd(torch.einsum("ar,ocr->aoc", G, w))                       # (a, Cout, Cin)
    n_tiles = (T - (a - 1) * d - 1) // (m * d) + 1 if T > (a - 1) * d else 0
    out = torch.empty(N, w.shape[0], n_tiles * m * d, dtype=torch.float64)
    for q in range(n_tiles):
        for ph in range(d):
            s = q * m * d + ph
            V = rnd(torch.einsum("ab,ncb->nac", BT, h[:, :, s + d * torch.arange(a)]))
            y = torch.einsum("ia,nao->noi", AT, torch.einsum("nac,aoc->nao", V, U))
            out[:, :, s + d * torch.arange(m)] = y + b[None, :, None]
    return out[:, :, :min(To, out.shape[-1])]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="data/N2001")
    ap.add_argument("--model", default="src/alsnet/model/pretrained/als-vs-normal")
    ap.add_argument("--windows", type=int, default=24)
    ap.add_argument("--samples", type=int, default=8000, help="samples of each window used (time)")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    torch.set_num_threads(1)
    ws = load_windows(args.data, get_task("als-vs-normal"))
    model = load_model(args.model).model.eval().double()
    for mod in model.modules():
        if isinstance(mod, torch.nn.ReLU):
            mod.inplace = False
    f = model.features
    idx = np.linspace(0, len(ws.x) - 1, args.windows).astype(int)
    x = torch.from_numpy(ws.x[idx]).double()[:, None, :args.samples]
    rows = []
    with torch.no_grad():
        h1 = f[2](f[1](f[0](x)))
        ref2 = conv(h1, f[3], "exact")
        ref3 = conv(f[5](f[4](ref2)), f[6], "exact")

        def logits(z3: torch.Tensor) -> torch.Tensor:
            return model.out(model.dense(f[8](f[7](z3)).amax(-1)))[:, 0]

        for name, mode, m2, m3 in [("fp32 Winograd F(4,9) / F(6,7) (the kernels)", "fp32-winograd", 4, 6),
                                   ("bf16 direct", "bf16-direct", 1, 1),
                                   ("bf16 Winograd F(4,9) / F(6,7)", "bf16-winograd", 4, 6)]:
            z2 = conv(h1, f[3], mode, m2)
            z3 = conv(f[5](f[4](z2)), f[6], mode, m3)
            T2, T3 = z2.shape[-1], z3.shape[-1]
            lq, lr = logits(z3), logits(ref3[..., :T3])
            rows.append({
                "path": name,
                "conv2_rel_err": float((z2 - ref2[..., :T2]).abs().max() / ref2.abs().max()),
                "conv3_rel_err": float((z3 - ref3[..., :T3]).abs().max() / ref3.abs().max()),
                "logit_max_abs_diff": float((lq - lr).abs().max()),
                "median_abs_logit": float(lr.abs().median()),
                "sign_agreement": float(((lq > 0) == (lr > 0)).double().mean()),
            })
    print(f"{args.windows} N2001 windows x {args.samples} samples, model {args.model}, against exact float64")
    print("| path | conv2 error | conv3 error | largest logit diff | sign agreement |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for r in rows:
        print(f"| {r['path']} | {r['conv2_rel_err']:.1e} | {r['conv3_rel_err']:.1e} | "
              f"{r['logit_max_abs_diff']:.3f} (median logit {r['median_abs_logit']:.2f}) | "
              f"{100 * r['sign_agreement']:.1f} % |")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"windows": args.windows, "samples": args.samples, "model": args.model, "rows": rows}, fh,
                      indent=1)


if __name__ == "__main__":
    main()
