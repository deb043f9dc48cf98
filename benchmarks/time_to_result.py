"""Time to result: the real training runs with the fast paths against the reference path.

    python3 benchmarks/time_to_result.py --data data/N2001 --json docs/time_to_result.json

runs ``alsnet train`` (ALS vs normal, 0.125-s crops, as in docs/results.md) for
``--epochs`` epochs on the paper split and on one LOSO fold (``--settings paper-whole``: the
paper split on whole windows, the paper's recipe), each twice in the same run:
once as published (``alsnet.engine.backends.train_forward``, evaluation by the ``auto`` backend) and
once on the reference path (``--no-fast --backend eager``: plain eager fp32 ``nn.Conv1d``
for training, validation and test). Full runs are then extrapolated from those measured
epochs: the paper run (20 epochs) as the measured wall time plus the remaining epochs at
the median epoch time; the LOSO run (14 folds x 6 epochs) as 14 times the measured fold
(its wall time plus the remaining epochs), which counts data loading once per fold (it
happens once per run) and takes fold A01 as typical (folds hold 2449-2647 training windows).
With ``--loso-run`` a finished LOSO run folder is read for its measured wall time beside it.
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


LOSO_FOLDS, LOSO_EPOCHS, LOSO_FOLD = 14, 6, "subject-A01"
SETTINGS = {"paper": ["--protocol", "paper"], "loso-fold": ["--protocol", "loso", "--fold", LOSO_FOLD],
            # the paper's own recipe: whole 1-s windows, no crops (so no BatchNorm re-estimation)
            "paper-whole": ["--protocol", "paper"]}
DEFAULT_SETTINGS = ("paper", "loso-fold")


def _train(data: str, out: Path, epochs: int, extra: list[str], crop: str | None = "0.125") -> dict:
    cmd = [sys.executable, "-m", "alsnet", "train", "--data", data, "--task", "als-vs-normal",
           *(["--train-crop", crop] if crop else []), "--max-epochs", str(epochs),
           "--out", str(out), "--force", "--quiet", *extra]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"time_to_result: {' '.join(cmd[2:])} failed:\n{proc.stderr.strip()[-2000:]}")
    hist = next(out.rglob("history.csv"))
    return {"command": "alsnet " + " ".join(cmd[3:]), "wall_s": wall, "epoch_s": _epoch_seconds(hist)}


def _loso(run: Path, wall_s: float | None) -> dict:
    if not (run / "metrics.json").is_file():
        raise SystemExit(f"time_to_result: {run}: no metrics.json (not a finished run)")
    try:
        metrics = json.loads((run / "metrics.json").read_text())
        epochs = [s for h in sorted(run.glob("folds/*/history.csv")) for s in _epoch_seconds(h)]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise SystemExit(f"time_to_result: {run}: unreadable run folder ({type(e).__name__}: {e})") from None
    # A resumed run's metrics.json times only the resumed part: then pass the whole.
    wall = float(wall_s if wall_s is not None else metrics.get("wall_time_s", 0.0))
    if wall < sum(epochs):
        raise SystemExit(f"time_to_result: {run}: wall time {wall:.0f} s is shorter than its epochs "
                         f"({sum(epochs):.0f} s): the run was resumed; give its whole wall time with --loso-wall-s")
    return {"run": str(run), "protocol": metrics.get("protocol"), "epochs": len(epochs),
            "epoch_s_sum": sum(epochs), "wall_s": wall,
            "wall_source": "--loso-wall-s" if wall_s is not None else "metrics.json wall_time_s"}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", required=True, help="N2001 folder")
    ap.add_argument("--json", required=True, help="where to write the results")
    ap.add_argument("--epochs", type=int, default=2, help="epochs timed per path (default 2)")
    ap.add_argument("--loso-run", type=Path, help="a finished LOSO run folder, for its measured wall time")
    ap.add_argument("--loso-wall-s", type=float, help="its whole wall time, when it was resumed after a kill")
    ap.add_argument("--settings", nargs="+", choices=list(SETTINGS), default=list(DEFAULT_SETTINGS),
                    help="which runs to time (paper-whole: the paper split on whole windows, the paper's recipe)")
    args = ap.parse_args(argv)
    if not Path(args.data).is_dir():
        raise SystemExit(f"time_to_result: {args.data}: not a folder")

    started = time.strftime("%Y-%m-%d %H:%M:%S")
    load0 = os.getloadavg()
    tmp = Path(tempfile.mkdtemp(prefix="alsnet-ttr-"))
    runs: dict = {}
    try:
        for setting in args.settings:
            sargs = SETTINGS[setting]
            for name, extra in PATHS.items():
                print(f"[{setting} / {name}] {args.epochs} epoch(s) ...", flush=True)
                r = _train(args.data, tmp / f"{setting}-{name}", args.epochs, sargs + extra,
                           crop=None if setting == "paper-whole" else "0.125")
                r["epoch_s_median"] = statistics.median(r["epoch_s"])
                total = LOSO_EPOCHS if setting == "loso-fold" else PAPER_EPOCHS
                r["run_s_extrapolated"] = r["wall_s"] + (total - args.epochs) * r["epoch_s_median"]
                if setting == "loso-fold":
                    r["loso_run_s_extrapolated"] = LOSO_FOLDS * r["run_s_extrapolated"]
                runs.setdefault(setting, {})[name] = r
                print(f"[{setting} / {name}] wall {r['wall_s']:.0f} s, epochs {r['epoch_s']}", flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    summary: dict = {"epoch_ratio_reference_over_fast": {
        k: v["reference"]["epoch_s_median"] / v["fast"]["epoch_s_median"] for k, v in runs.items()}}
    if "paper" in runs:
        summary["paper_run_s"] = {k: runs["paper"][k]["run_s_extrapolated"] for k in PATHS}
    if "loso-fold" in runs:
        summary["loso_run_s"] = {k: runs["loso-fold"][k]["loso_run_s_extrapolated"] for k in PATHS}
    result = {
        "command": "python3 benchmarks/time_to_result.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "started": started, "loadavg_start": load0, "loadavg_end": os.getloadavg(),
        "machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
                    "torch": torch.__version__},
        "epochs_timed": args.epochs, "paper_epochs": PAPER_EPOCHS,
        "loso": {"folds": LOSO_FOLDS, "epochs": LOSO_EPOCHS, "fold_timed": LOSO_FOLD},
        "runs": runs,
        "summary": summary,
    }
    if args.loso_run:
        result["measured_loso_run"] = _loso(args.loso_run, args.loso_wall_s)
    Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    sm = result["summary"]
    for setting, ratio in sm["epoch_ratio_reference_over_fast"].items():
        print(f"one epoch, {setting}: reference / fast = {ratio:.2f}x")
    for key, label in (("paper_run_s", f"paper run ({PAPER_EPOCHS} epochs)"),
                       ("loso_run_s", f"LOSO ({LOSO_FOLDS} folds x {LOSO_EPOCHS} epochs)")):
        if key not in sm:
            continue
        f, r = sm[key]["fast"], sm[key]["reference"]
        print(f"{label}: fast {f:.0f} s, reference {r:.0f} s, {r / f:.2f}x (extrapolated from measured epochs)")
    if args.loso_run:
        print(f"measured LOSO run {args.loso_run}: {result['measured_loso_run']['wall_s']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
