"""Time of one per-epoch validation pass: the inference engine vs train_forward in eval mode.

Training validates on whole 1-s windows every epoch. On CPU in float32 that pass goes
through ``alsnet.engine.backends.InferenceEngine`` (BatchNorm folded, Winograd kernels; what
``ALSNetModule`` does since this benchmark was added) instead of ``train_forward`` in eval
mode. Both paths score the same real N2001 windows in batches of 48 (the validation loader's
batch), alternating, ``--rounds`` times each, in one process; the engine is rebuilt every
round as training rebuilds it every epoch. Prints JSON with the medians and the largest
relative logit difference.

Usage::

    python benchmarks/validation_pass.py --data data/N2001 [--windows 693] [--rounds 3] [--model FILE]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path


def main(argv=None) -> int:
    import torch

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from bench import parity_windows  # real windows of every class, else synthetic

    from alsnet.engine.backends import InferenceEngine, set_threads, train_forward
    from alsnet.model.checkpoint import load_model

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="data/N2001")
    ap.add_argument("--windows", type=int, default=693, help="validation windows (LOSO fold A01 has 693)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--model", default="als-vs-normal", help="bundled name or model file")
    args = ap.parse_args(argv)
    set_threads(args.threads)
    from alsnet.model.pretrained import resolve_model

    model = (resolve_model(args.model) if not Path(args.model).suffix else load_model(args.model)).model.eval()
    x, _, source = parity_windows(args.data, args.windows, 23437)
    xt = torch.from_numpy(x)[:, None]
    batches = [xt[i:i + 48] for i in range(0, len(xt), 48)]

    def eval_train_forward():
        with torch.no_grad():
            return torch.cat([train_forward(model, b) for b in batches])

    def eval_engine():
        engine = InferenceEngine(model, "auto")
        return torch.cat([torch.from_numpy(engine.logits(b)) for b in batches])

    times = {"train_forward": [], "engine": []}
    outs = {}
    for _ in range(args.rounds):
        for name, fn in (("train_forward", eval_train_forward), ("engine", eval_engine)):
            t = time.perf_counter()
            outs[name] = fn()
            times[name].append(time.perf_counter() - t)
    med = {k: statistics.median(v) for k, v in times.items()}
    ref = outs["train_forward"]
    res = {"source": source, "n_windows": len(x), "batch": 48, "threads": args.threads, "rounds": args.rounds,
           "engine_backend": InferenceEngine(model, "auto").name,
           "seconds": times, "median_s": med, "ratio": med["train_forward"] / med["engine"],
           "max_rel_logit_diff": float((outs["engine"] - ref).abs().max() / ref.abs().max())}
    print(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
