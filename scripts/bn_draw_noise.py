"""How much of a crop-trained run's validation curve is the BatchNorm re-estimation's draw?

    python scripts/bn_draw_noise.py results/nested-als-vs-normal-alsnet-crop0.125-s0 \
        --outer outer-0 --inner inner-0 [--draws 8] [--windows 192 384]

Crop-trained runs re-estimate every BatchNorm's statistics on a fresh random draw of
``recalibration_windows`` whole training windows before each validation
(``ALSNetModule.recalibrate_bn``). This script holds one finished inner model's weights
fixed (its ``model.safetensors``: the epoch with the lowest inner validation loss), redoes
only that re-estimation with ``--draws`` different random draws (of each size in
``--windows``), and scores the inner fold's held-out subjects after each: the spread is the
noise the draw alone adds to the curve that early stopping, the plateau schedule and the
nested epoch choice read. Nothing is trained.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np


def main(argv: list[str] | None = None) -> int:
    import torch

    from alsnet.data.dataset import load_windows
    from alsnet.data.labels import get_task
    from alsnet.evaluation.selection import subject_log_loss, window_balanced_accuracy
    from alsnet.model.checkpoint import load_model
    from alsnet.training.fold import score_windows
    from alsnet.training.lightning import ALSNetModule
    from alsnet.training.nested import NestedExperiment
    from alsnet.training.runs import read_json

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", type=Path)
    ap.add_argument("--outer", default="outer-0")
    ap.add_argument("--inner", default="inner-0")
    ap.add_argument("--draws", type=int, default=8)
    ap.add_argument("--windows", type=int, nargs="+", default=[192])
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    config = read_json(args.run / "config.json")
    exp = config["experiment"]
    task = get_task(exp["task"])
    outer = next(f for f in config["split"]["folds_detail"] if f["name"] == args.outer)
    inner = next(f for f in outer["inner"] if f["name"] == args.inner)
    fold_dir = args.run / args.outer / args.inner
    ws = load_windows(exp["data"], task, invalid=exp.get("invalid", "drop"), read=exp.get("read") or None)
    test, val = set(outer["test_subjects"]), set(inner["val_subjects"])
    train_idx = np.flatnonzero([s not in test and s not in val for s in ws.subject])
    val_idx = np.flatnonzero([s in val for s in ws.subject])
    seed = json.loads((fold_dir / "done.json").read_text()).get("seed", exp["seed"])
    module = ALSNetModule(task, NestedExperiment.from_dict(exp).recipe)
    weights = load_model(fold_dir / "model").model.state_dict()
    rows = []
    for n in args.windows:
        for draw in range(args.draws):
            module.model.load_state_dict(weights)
            rng = np.random.default_rng((seed, 1000 + draw, 104729))   # as the run draws, other epochs
            pick = np.sort(rng.choice(train_idx, min(n, len(train_idx)), replace=False))
            module.recalibrate_bn(torch.from_numpy(ws.x[pick]))
            _, proba = score_windows(module.model, ws.x[val_idx])
            y, subj = ws.y[val_idx], ws.subject[val_idx]
            rows.append({"windows": n, "draw": draw, "subject_log_loss": subject_log_loss(proba, y, subj),
                         "window_balanced_accuracy": window_balanced_accuracy(proba, y, None)})
            print(f"{n} windows, draw {draw}: subject log-loss {rows[-1]['subject_log_loss']:.3f}, "
                  f"window balanced accuracy {rows[-1]['window_balanced_accuracy']:.3f}", flush=True)
    print(f"\n{args.run.name} {args.outer}/{args.inner} ({len(val_idx)} held-out windows of "
          f"{', '.join(sorted(val))}), weights fixed, only the BatchNorm draw varies:\n")
    print("| windows drawn | draws | subject log-loss: mean, SD, range | window balanced accuracy: mean, SD, range |")
    print("| ---: | ---: | --- | --- |")
    for n in args.windows:
        ll = np.array([r["subject_log_loss"] for r in rows if r["windows"] == n])
        ba = np.array([r["window_balanced_accuracy"] for r in rows if r["windows"] == n])
        print(f"| {n} | {len(ll)} | {ll.mean():.3f}, {ll.std(ddof=1):.3f}, {ll.min():.3f}-{ll.max():.3f} | "
              f"{ba.mean():.3f}, {ba.std(ddof=1):.3f}, {ba.min():.3f}-{ba.max():.3f} |")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
