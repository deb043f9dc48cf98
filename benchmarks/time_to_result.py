"""Time to result: the real training runs with the fast paths against the reference path.

    python3 benchmarks/time_to_result.py --data data/N2001 --json docs/time_to_result.json \
        --loso-run runs/loso-als-vs-normal-alsnet

runs ``alsnet train`` on the paper split (ALS vs normal, 0.125-s crops, as in
docs/results.md) for ``--epochs`` epochs twice in the same run, interleaved: once as
published (``alsnet.fast.train_forward``, evaluation by the ``auto`` backend) and once
on the reference path (``--no-fast --backend eager``: plain eager fp32 ``nn.Conv1d``
for training, validation and test). The full 20-epoch run of each is then extrapolated
as the measured wall time plus the remaining epochs at the median measured epoch time.
A full LOSO run of the reference path is too long to time here (hours): with
``--loso-run`` (a finished fast LOSO run folder), its epochs are rescaled by the
measured reference/fast epoch ratio and the rest of its wall time (data, test scoring)
is kept as measured. Every figure says whether it was measured or extrapolated.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

PATHS = {
    "fast": [],
    "reference": ["--no-fast", "--backend", "eager"],
}
PAPER_EPOCHS = 20   # the paper-protocol run of docs/results.md (scripts/real_alsnet.sh)


def _epoch_seconds(history: Path) -> list[float]:
    with open(history, newline="") as f:
        return [float(row["seconds"]) for row in csv.DictReader(f)]


def _train(data: str, out: Path, epochs: int, extra: list[str]) -> dict:
    cmd = [sys.executable, "-m", "alsnet", "train", "--data", data, "--task", "als-vs-normal",
           "--protocol", "paper", "--train-crop", "0.125", "--max-epochs", str(epochs),
           "--out", str(out), "--force", "--quiet", *extra]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"time_to_result: {' '.join(cmd[2:])} failed:\n{proc.stderr.strip()[-2000:]}")
    hist = next(out.rglob("history.csv"))
    return {"command": "alsnet " + " ".join(cmd[3:]), "wall_s": wall, "epoch_s": _epoch_seconds(hist)}


def _loso(run: Path, ratio: float, wall_s: float | None) -> dict:
    if not (run / "metrics.json").is_file():
        raise SystemExit(f"time_to_result: {run}: no metrics.json (not a finished run)")
    metrics = json.loads((run / "metrics.json").read_text())
    epochs = [s for h in sorted(run.glob("folds/*/history.csv")) for s in _epoch_seconds(h)]
    if not epochs:
        raise SystemExit(f"time_to_result: {run}: no folds/*/history.csv")
    in_epochs = sum(epochs)
    # A resumed run's metrics.json times only the resumed part: then pass the whole.
    wall = float(wall_s if wall_s is not None else metrics.get("wall_time_s", 0.0))
    if wall < in_epochs:
        raise SystemExit(f"time_to_result: {run}: wall time {wall:.0f} s is shorter than its epochs "
                         f"({in_epochs:.0f} s): the run was resumed; give its whole wall time with --loso-wall-s")
    return {"run": str(run), "protocol": metrics.get("protocol"),
            "folds": len(list(run.glob("folds/*/history.csv"))), "epochs": len(epochs),
            "epoch_s_sum": in_epochs, "fast_wall_s": wall,
            "fast_wall_source": "--loso-wall-s" if wall_s is not None else "metrics.json wall_time_s",
            "reference_wall_s_extrapolated": wall + in_epochs * (ratio - 1.0)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", required=True, help="N2001 folder")
    ap.add_argument("--json", required=True, help="where to write the results")
    ap.add_argument("--epochs", type=int, default=2, help="epochs timed per path (default 2)")
    ap.add_argument("--loso-run", type=Path, help="a finished fast LOSO run folder to rescale")
    ap.add_argument("--loso-wall-s", type=float, help="its whole wall time, when it was resumed after a kill")
    args = ap.parse_args(argv)
    if not Path(args.data).is_dir():
        raise SystemExit(f"time_to_result: {args.data}: not a folder")

    started = time.strftime("%Y-%m-%d %H:%M:%S")
    load0 = os.getloadavg()
    tmp = Path(tempfile.mkdtemp(prefix="alsnet-ttr-"))
    runs = {}
    try:
        for name, extra in PATHS.items():
            print(f"[{name}] {args.epochs} epoch(s) on the paper split ...", flush=True)
            runs[name] = _train(args.data, tmp / name, args.epochs, extra)
            med = statistics.median(runs[name]["epoch_s"])
            runs[name]["epoch_s_median"] = med
            runs[name]["paper_run_s_extrapolated"] = runs[name]["wall_s"] + (PAPER_EPOCHS - args.epochs) * med
            print(f"[{name}] wall {runs[name]['wall_s']:.0f} s, epochs {runs[name]['epoch_s']}", flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    ratio = runs["reference"]["epoch_s_median"] / runs["fast"]["epoch_s_median"]
    result = {
        "command": "python3 benchmarks/time_to_result.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "started": started, "loadavg_start": load0, "loadavg_end": os.getloadavg(),
        "machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
                    "torch": torch.__version__},
        "epochs_timed": args.epochs, "paper_epochs": PAPER_EPOCHS, "runs": runs,
        "epoch_ratio_reference_over_fast": ratio,
    }
    if args.loso_run:
        result["loso"] = _loso(args.loso_run, ratio, args.loso_wall_s)
    Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    print(f"epoch: fast {runs['fast']['epoch_s_median']:.1f} s, reference {runs['reference']['epoch_s_median']:.1f} s "
          f"({ratio:.2f}x); paper run ({PAPER_EPOCHS} epochs): fast {runs['fast']['paper_run_s_extrapolated']:.0f} s, "
          f"reference {runs['reference']['paper_run_s_extrapolated']:.0f} s (extrapolated)")
    if args.loso_run:
        lo = result["loso"]
        print(f"LOSO ({lo['folds']} folds): fast {lo['fast_wall_s']:.0f} s measured, reference "
              f"{lo['reference_wall_s_extrapolated']:.0f} s extrapolated")
    return 0


if __name__ == "__main__":
    sys.exit(main())
