"""The arithmetic limit of ALSNet on this CPU: FLOPs per window and the machine's GEMM peak.

    python benchmarks/limit.py [--threads 2] [--samples 23437]

A multiply-add counts as 2 FLOPs. *Direct* FLOPs are what ``nn.Conv1d`` computes: per
window, conv k (taps r, dilation d) has ``T_k * Cin * Cout * r * 2`` forward; a training
step adds the input gradient (not for conv1, whose input needs none) and the weight
gradient, each as large as the forward. *Winograd* FLOPs are what the ``winograd`` kernels
compute, with the tile sizes the code uses (inference: F(6, 9) for conv2 and F(8, 7) for
conv3; the training step: F(4, 9) and F(6, 7) forward, F(6, 9) and F(8, 7) for both
gradients): per tile of m outputs, the alpha
channel-mixing products (``alpha * Cin * Cout * 2``) plus the input transform (94
multiply-adds per channel with symmetric points at alpha = 12, 124 at 14) and the output
transform (``m * alpha`` per channel).
The peak is measured, not looked up: the best of several float32 GEMMs (``torch.mm``,
MKL on x86, 2048 x 2048) with ``--threads`` threads, i.e. what this CPU's vector units
reach with the instruction set PyTorch dispatches (``torch.backends.cpu.get_cpu_capability()``).
"""

from __future__ import annotations

import argparse
import json
import time

import torch

#: (Cin, Cout, taps, dilation) of ALSNet's convolutions (alsnet.model.network).
CONVS = ((1, 32, 11, 1), (32, 64, 9, 2), (64, 128, 7, 3))


def tiles(pass_name: str = "inference") -> tuple:
    """Winograd (m, alpha) per convolution as the kernels run them (conv1 is direct): the
    inference engine's tiles (``backends.WINOGRAD_M``) or those of one pass of the training
    step (``train_step.TILES``: ``forward``, ``input_grad``, ``weight_grad``)."""
    from alsnet.engine.backends import WINOGRAD_M
    from alsnet.engine.train_step import TILES

    m2, m3 = WINOGRAD_M["winograd"] if pass_name == "inference" else TILES[pass_name]
    return None, (m2, m2 + 9 - 1), (m3, m3 + 7 - 1)


def paired_input_macs(a: int) -> int:
    """Input-transform multiply-adds per channel and tile with symmetric points (csrc/winograd.cpp):
    rows 0 and alpha-1 in full, each further pair of rows one even and one odd half-sum plus
    their sum and difference (94 at alpha = 12)."""
    return 2 * a + (a - 2) // 2 * (a + 2)


def direct_flops(n_times: int) -> dict:
    """Direct FLOPs per window: forward (inference) and a training step, per layer and total."""
    t, fwd, train = n_times, [], []
    for i, (cin, cout, r, d) in enumerate(CONVS):
        t -= (r - 1) * d
        f = 2 * t * cin * cout * r
        fwd.append(f)
        train.append(f * (2 if i == 0 else 3))
    dense = 2 * (128 * 64 + 64)
    return {"forward": sum(fwd) + dense, "training_step": sum(train) + 3 * dense, "forward_per_conv": fwd}


def winograd_flops(n_times: int, training: bool = False) -> int:
    """FLOPs per window of the ``winograd`` inference path (conv1 direct, conv2/conv3 Winograd);
    ``training``: the ``fast`` step, its forward, input gradient and weight gradient of
    conv2/conv3 each counted like a forward on that pass's tiles, conv1's weight gradient
    direct (the float64 re-evaluation of near ties not counted)."""
    passes = ("forward", "input_grad", "weight_grad") if training else ("inference",)
    total = 0
    for name in passes:
        t = n_times
        for (cin, cout, r, d), wg in zip(CONVS, tiles(name)):
            t -= (r - 1) * d
            if wg is None:
                if name != "input_grad":    # conv1: forward and weight gradient, no input gradient
                    total += 2 * t * cin * cout * r
                continue
            m, a = wg
            n_tiles = -(-t // m)
            total += n_tiles * (2 * a * cin * cout + 2 * paired_input_macs(a) * cin + 2 * m * a * cout)
    return total + len(passes) * 2 * (128 * 64 + 64)


def gemm_peak(threads: int, n: int = 2048, reps: int = 7) -> float:
    """Best float32 GEMM rate (GFLOP/s) with ``threads`` threads."""
    torch.set_num_threads(threads)
    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.mm(a, b)
    best = 0.0
    for _ in range(reps):
        t0 = time.perf_counter()
        torch.mm(a, b)
        best = max(best, 2 * n ** 3 / (time.perf_counter() - t0) / 1e9)
    return best


def limit(threads: int, n_times: int = 23437) -> dict:
    """FLOPs per window, the measured peak and the windows/s each would allow at that peak."""
    d = direct_flops(n_times)
    w, wt = winograd_flops(n_times), winograd_flops(n_times, training=True)
    peak = gemm_peak(threads)
    return {"samples": n_times, "threads": threads, "cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "gemm_peak_gflops": peak, "direct_forward_flops": d["forward"],
            "direct_training_step_flops": d["training_step"], "winograd_forward_flops": w,
            "winograd_training_step_flops": wt,
            "limit_windows_per_s": {"direct_inference": peak * 1e9 / d["forward"],
                                    "direct_training": peak * 1e9 / d["training_step"],
                                    "winograd_inference": peak * 1e9 / w,
                                    "winograd_training": peak * 1e9 / wt}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--samples", type=int, default=23437)
    args = ap.parse_args()
    print(json.dumps(limit(args.threads, args.samples), indent=1))


if __name__ == "__main__":
    main()
