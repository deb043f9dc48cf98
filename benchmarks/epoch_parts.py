"""CPU seconds of the parts of a crop-trained epoch on the fast path, per unit of work.

    python3 benchmarks/epoch_parts.py [--threads 1] [--reps 3] [--data data/N2001 --model MODEL]
    ALSNET_KERNELS=avx2 python3 benchmarks/epoch_parts.py     # the other kernel build

One process, one thread by default, CPU time (``time.process_time``) rather than wall
time: on a machine shared with other work the CPU time of a single-threaded part moves
much less than its wall time (cache and memory contention still move it). Parts, each the
median of ``--reps`` after one warm-up, on EMG-like random input (noise plus spikes) and a
random ALSNet:

* ``crop_step_48``: a training step (``train_forward``, loss, backward, Adam) on 48 crops of
  0.125 s (2930 samples), as ``alsnet train --train-crop 0.125`` takes them;
* ``whole_step_16``: the same on 16 whole 1-s windows;
* ``bn_reestimation_16``: the train-mode pass without gradients on 16 whole windows that
  the BatchNorm re-estimation makes before each validation;
* ``validation_16``: the inference engine (``auto``) on 16 whole windows, built anew as
  each epoch's validation builds it.

Multiply by the epoch's counts (e.g. LOSO fold A01: 2647 training crops = 56 steps,
192 re-estimation windows, 693 validation windows) for the CPU time of each part.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np
import torch

from alsnet.engine.backends import InferenceEngine, describe, keep_freed_memory, train_forward
from alsnet.model.network import ALSNet


def emg(rng: np.random.Generator, n: int, t: int) -> torch.Tensor:
    x = rng.normal(0, 20, (n, t)).astype(np.float32)
    wave = 300 * np.sin(np.linspace(0, 2 * np.pi, 20))
    for i in range(n):
        for s in rng.integers(0, t - 30, max(2, t // 400)):
            x[i, s:s + 20] += wave
    return torch.from_numpy(x)[:, None]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--allocator-default", action="store_true",
                    help="leave glibc's allocator as it is (alsnet train keeps freed memory: keep_freed_memory)")
    ap.add_argument("--data", help="real N2001 windows from this folder (random crops of them) instead of the "
                                   "synthetic EMG: quiet stretches of real signal cost the exact re-evaluation more")
    ap.add_argument("--model", help="these weights (alsnet.model.checkpoint.load_model) instead of a random network")
    args = ap.parse_args()
    kept = False if args.allocator_default else keep_freed_memory()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    if args.model:
        from alsnet.model.checkpoint import load_model

        model = load_model(args.model).model.train()
    else:
        model = ALSNet(n_outputs=1).train()
        with torch.no_grad():
            model(emg(rng, 8, 3000))
    if args.data:
        from alsnet.data.dataset import load_windows
        from alsnet.data.labels import get_task

        ws = load_windows(args.data, get_task("als-vs-normal")).x
        pick = rng.choice(len(ws), 48, replace=False)
        starts = rng.integers(0, ws.shape[1] - 2930 + 1, 48)
        crop = torch.from_numpy(np.stack([ws[i, s:s + 2930] for i, s in zip(pick, starts)]))[:, None]
        whole = torch.from_numpy(ws[rng.choice(len(ws), 16, replace=False)])[:, None]
    else:
        crop, whole = emg(rng, 48, 2930), emg(rng, 16, 23437)
    opt = torch.optim.Adam(model.parameters(), 1e-4)

    def step(x: torch.Tensor) -> None:
        y = (torch.arange(len(x)) % 2).float()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(train_forward(model, x)[:, 0], y)
        opt.zero_grad()
        loss.backward()
        opt.step()

    def bn_pass() -> None:
        with torch.no_grad():
            train_forward(model, whole)

    def validation() -> None:
        InferenceEngine(model, "auto").logits(whole[:, 0])

    parts = {"crop_step_48": lambda: step(crop), "whole_step_16": lambda: step(whole),
             "bn_reestimation_16": bn_pass, "validation_16": validation}
    out = {"threads": args.threads, "backend": describe("auto", True), "keep_freed_memory": kept,
           "input": f"N2001 ({args.data})" if args.data else "synthetic EMG", "model": args.model or "random"}
    for name, fn in parts.items():
        fn()
        ts = []
        for _ in range(args.reps):
            t0 = time.process_time()
            fn()
            ts.append(time.process_time() - t0)
        out[name] = round(statistics.median(ts), 3)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
