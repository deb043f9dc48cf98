"""Each Winograd kernel alone at ALSNet's conv2 and conv3 sizes: time and GFLOP/s.

    python3 benchmarks/kernel_rates.py [--threads 1] [--windows 8] [--rounds 5] [--json OUT]

For an A/B of two commits, run it once per commit from a worktree of each, with its own
kernel cache (the cache is keyed by the sources, so a stale build is never reused)::

    git worktree add /tmp/old OLD_COMMIT
    ALSNET_CACHE_DIR=/tmp/kc_old PYTHONPATH=/tmp/old/src python3 benchmarks/kernel_rates.py

Three calls per layer on random ReLU'd inputs of whole 1-s windows (time-major, as the
kernels take them): ``fwd``, the training forward (F(4, 9) / F(6, 7); output, BatchNorm sums
and extremes with their times, into a reused buffer as the training step does), ``inf``,
the inference call (F(6, 9) / F(8, 7), extremes only) and ``wgrad``, the weight gradient
(F(6, 9) / F(8, 7)). The best of ``--rounds`` calls is reported (these are the kernels
alone, not a training step: ``benchmarks/bench.py`` measures those). ``GEMM GFLOP/s``
counts only the channel-mixing products (``2 * alpha * Cin * Cout`` per tile);
``direct-equivalent GFLOP/s`` counts the FLOPs ``nn.Conv1d`` would spend on the same output.
"""

from __future__ import annotations

import argparse
import json
import time
from functools import partial

import torch

from alsnet.engine import winograd as fc
from alsnet.engine.backends import WINOGRAD_M
from alsnet.engine.train_step import TILES

#: (Cin, Cout, taps, dilation, input length) of conv2 and conv3 on a 23437-sample window.
LAYERS = {"conv2": (32, 64, 9, 2, 23427), "conv3": (64, 128, 7, 3, 23411)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--windows", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    isa = fc.kernels()
    if isa is None:
        raise SystemExit(f"kernel_rates.py: the C++ kernels are unavailable: {fc.kernels_error()}")
    torch.manual_seed(0)
    torch.set_num_threads(args.threads)
    rows = []
    for i, (name, (cin, cout, r, d, T)) in enumerate(LAYERS.items()):
        x = torch.relu(torch.randn(args.windows, T, cin))
        To = T - (r - 1) * d
        dy = torch.randn(args.windows, To, cout)
        w, b = torch.randn(cout, cin, r) * 0.1, torch.zeros(cout)
        m_f, m_i, m_g = TILES["forward"][i], WINOGRAD_M["winograd"][i], TILES["weight_grad"][i]
        U_f, U_i = fc.transform_weight(w, m_f), fc.transform_weight(w, m_i)
        dest = torch.empty(args.windows, To, cout)
        calls = {
            "fwd": (m_f, partial(fc.wino_conv, x, U_f, b, m_f, d, stats=True, maxmin=True, dest=dest)),
            "inf": (m_i, partial(fc.wino_conv, x, U_i, b, m_i, d, out=False, maxmin=True, argmax=False)),
            "wgrad": (m_g, partial(fc.wino_wgrad, x, dy, m_g, r, d)),
        }
        direct = 2 * args.windows * To * cin * cout * r
        for kind, (m, fn) in calls.items():
            fn()
            ts = []
            for _ in range(args.rounds):
                t = time.perf_counter()
                fn()
                ts.append(time.perf_counter() - t)
            best, a = min(ts), m + r - 1
            gemm = 2 * args.windows * (To / m) * a * cin * cout
            rows.append({"layer": name, "call": kind, "m": m, "alpha": a, "ms": 1e3 * best,
                         "gemm_gflops": gemm / best / 1e9, "direct_equivalent_gflops": direct / best / 1e9})
    print(f"kernels {isa}, {args.threads} thread(s), {args.windows} windows, best of {args.rounds}")
    print("| layer | call | F(m, r) | ms | GEMM GFLOP/s | direct-equivalent GFLOP/s |")
    print("| --- | --- | --- | ---: | ---: | ---: |")
    for row in rows:
        r = LAYERS[row["layer"]][2]
        print(f"| {row['layer']} | {row['call']} | F({row['m']}, {r}) | {row['ms']:.1f} | {row['gemm_gflops']:.1f} "
              f"| {row['direct_equivalent_gflops']:.1f} |")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"kernels": isa, "threads": args.threads, "windows": args.windows, "rounds": args.rounds,
                       "rows": rows}, fh, indent=1)


if __name__ == "__main__":
    main()
