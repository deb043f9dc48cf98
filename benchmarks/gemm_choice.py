"""Why the Winograd kernels keep their own GEMM: conv3 of the inference path, fused against BLAS.

    python3 benchmarks/gemm_choice.py [--threads 1] [--windows 16] [--rounds 5]

Issue 14 asks for GEMM through public ATen or BLAS calls. This times the same Winograd
F(8, 7) convolution (conv3: 64 -> 128 channels, dilation 3, on whole 1-s windows, reduced to
its maximum and minimum over time, which is what inference needs), two ways, alternating
in one process:

* ``fused``: ``torch.ops.alsnet.wino_fwd`` (what the ``winograd`` backend runs): per chunk of
  tiles the input transform, the alpha channel-mixing GEMMs (its own register-blocked
  micro-kernel) and the inverse transform and running extremes, the products staying in
  L1/L2;
* ``aten``: the same algebra in public ATen calls: the input transform as one matmul,
  ``torch.bmm`` (MKL sgemm) for the alpha channel-mixing GEMMs, the inverse transform as a
  matmul and ``amax``/``amin``, in chunks of windows, so every intermediate goes through
  memory between the calls;
* ``bmm``: the ``torch.bmm`` calls of ``aten`` alone, on random inputs of the same shapes.

Both use the same transformed weights; the script checks that they agree (largest
difference relative to the largest |value|) and prints the median time of each, with the
GEMM rate each implies (alpha * Cin * Cout * 2 FLOPs per tile).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from alsnet.engine import winograd as fc


def aten_conv_maxmin(x: torch.Tensor, U: torch.Tensor, bias: torch.Tensor, m: int, d: int) -> torch.Tensor:
    """(N, 2, Cout) max/min over time of the dilated Winograd correlation, in ATen calls."""
    N, T, Cin = x.shape
    A, _, Cout = U.shape
    r = A - m + 1
    AT, BT = fc._transforms32(m, r)
    To = T - (r - 1) * d
    n_tiles = -(-To // (m * d))                       # tiles per phase
    need = (n_tiles * m + r - 1) * d
    xp = torch.nn.functional.pad(x, (0, 0, 0, max(0, need - T)))
    # phases: time t = j*d + p  ->  (N, d, T/d, Cin)
    xph = xp[:, :need].reshape(N, need // d, d, Cin).transpose(1, 2)
    tiles = xph.unfold(2, A, m)                       # (N, d, n_tiles, Cin, A)
    V = torch.matmul(tiles, BT.T)                     # (N, d, n_tiles, Cin, A)
    V = V.permute(4, 0, 1, 2, 3).reshape(A, -1, Cin)  # (A, N*d*n_tiles, Cin)
    M = torch.bmm(V, U)                               # (A, N*d*n_tiles, Cout): the GEMMs
    Y = torch.matmul(AT, M.reshape(A, -1)).reshape(m, N, d, n_tiles, Cout)
    Y = Y.permute(1, 3, 0, 2, 4).reshape(N, n_tiles * m * d, Cout)[:, :To] + bias
    return torch.stack([Y.amax(1), Y.amin(1)], 1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--windows", type=int, default=16)
    ap.add_argument("--chunk", type=int, default=2, help="windows per ATen call (bounds its memory)")
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    if fc.kernels() is None:
        raise SystemExit(f"gemm_choice: the C++ kernels are not available ({fc.kernels_error()})")
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    T, Cin, Cout, r, d, m = 23411, 64, 128, 7, 3, 8
    x = torch.relu(torch.randn(args.windows, T, Cin))
    w = torch.randn(Cout, Cin, r) / 20
    b = torch.randn(Cout) / 10
    U = fc.transform_weight(w, m)

    def fused() -> torch.Tensor:
        return fc.wino_conv(x, U, b, m, d, out=False, maxmin=True, argmax=False)["maxmin"]

    def aten() -> torch.Tensor:
        return torch.cat([aten_conv_maxmin(x[i:i + args.chunk], U, b, m, d)
                          for i in range(0, len(x), args.chunk)])

    # the GEMMs of the aten path alone, on inputs of the same shapes (what BLAS itself costs)
    n_t = -(-(T - (r - 1) * d) // (m * d)) * d * args.chunk
    Vs = torch.randn(m + r - 1, n_t, Cin)

    def bmm_only() -> None:
        for _ in range(0, len(x), args.chunk):
            torch.bmm(Vs, U)

    a, f = aten(), fused()
    rel = float((a - f).abs().max() / f.abs().max())
    times: dict[str, list[float]] = {"fused": [], "aten": [], "bmm": []}
    for _ in range(args.rounds):
        for name, fn in (("fused", fused), ("aten", aten), ("bmm", bmm_only)):
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    To = T - (r - 1) * d
    gemm_flops = args.windows * (-(-To // m)) * (m + r - 1) * Cin * Cout * 2
    print(f"conv3 F({m}, {r}) on {args.windows} windows, {args.threads} thread(s); agreement: {rel:.1e} of the "
          f"largest |value|")
    for name, ts in times.items():
        t = statistics.median(ts)
        print(f"  {name:5s}: {t:.3f} s (median of {args.rounds}: {', '.join(f'{v:.3f}' for v in ts)}), "
              f"{gemm_flops / t / 1e9:.1f} GFLOP/s of channel-mixing GEMM")
    print(f"  aten / fused: {statistics.median(times['aten']) / statistics.median(times['fused']):.2f}x the time")


if __name__ == "__main__":
    main()
