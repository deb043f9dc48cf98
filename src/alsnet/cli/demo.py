"""``alsnet demo``: simulate a small data set, train ALSNet, evaluate on held-out subjects.

Everything runs offline on a CPU in a few minutes: it is the README's first command.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="simulate EMG, train ALSNet, evaluate on held-out subjects (minutes, offline)")
    p.add_argument("--out", default="alsnet-demo", metavar="DIR", help="demo folder (default ./alsnet-demo)")
    p.add_argument("--subjects", type=int, default=8, help="simulated subjects per class (default 8)")
    p.add_argument("--recordings", type=int, default=2, help="recordings per subject (default 2)")
    p.add_argument("--epochs", type=int, default=6, help="training epochs (default 6)")
    p.add_argument("--train-crop", type=float, default=0.1, metavar="SECONDS",
                   help="random training crops (default 0.1 s; test uses whole windows)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--force", action="store_true", help="replace an existing demo folder")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from alsnet.cli.train import print_metrics
    from alsnet.data.simulate import simulate_dataset
    from alsnet.training.experiment import Experiment
    from alsnet.training.experiment import run as run_experiment
    from alsnet.training.recipe import Recipe
    from alsnet.training.runs import prepare_run_dir

    t0 = time.perf_counter()
    out = prepare_run_dir(args.out, force=args.force)
    data = out / "data"
    progress = sys.stderr.isatty()
    print(f"[1/4] simulating {args.subjects} ALS and {args.subjects} normal subjects, "
          f"{args.recordings} recordings each -> {data}", file=sys.stderr)
    simulate_dataset(data, n_subjects={"als": args.subjects, "normal": args.subjects},
                     recordings_per_subject=args.recordings, seed=args.seed, progress=progress)
    print(f"[2/4] training ALSNet ({args.epochs} epochs, {args.train_crop:g}-s crops) with "
          f"whole subjects held out for test", file=sys.stderr)
    recipe = Recipe(max_epochs=args.epochs, train_crop=args.train_crop)
    exp = Experiment(data=str(data), out=str(out / "run"), task="als-vs-normal",
                     protocol="subject-holdout", seed=args.seed, recipe=recipe, n_boot=200)
    metrics = run_experiment(exp, progress=progress)
    print("[3/4] writing the run report", file=sys.stderr)
    from alsnet.reporting.figures import write_run_figures
    from alsnet.reporting.html import write_report

    write_run_figures(out / "run")
    report = write_report([out / "run"], out / "run" / "report.html")
    print_metrics(metrics, exp.out)
    print(f"report: {report}")
    print(f"figures: {out / 'run' / 'figures'}")
    print("[4/4] writing the report of one held-out recording", file=sys.stderr)
    record, page = _held_out_report(out / "run", data, out / "recording_report.html")
    print(f"demo finished in {time.perf_counter() - t0:.0f} s")
    print(f"what a clinician reads: the report of held-out recording {record} (never seen in training): {page}")
    return 0


def _held_out_report(run_dir: Path, data: Path, out: Path) -> tuple[str, Path]:
    """The per-recording report of the first held-out ALS recording, scored by its fold's model."""
    from alsnet.reporting.recording import write_recording_report
    from alsnet.training.runs import read_csv

    pred = read_csv(run_dir / "predictions.csv", need=("record", "fold", "label"))
    first = pred.sort_values(["label", "record"]).iloc[0]          # "als" sorts first
    model = run_dir / "folds" / str(first["fold"]) / "model.safetensors"
    return str(first["record"]), write_recording_report(data / f"{first['record']}.hea", out, model=str(model))
