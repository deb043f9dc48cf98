"""``alsnet train``: train and evaluate a model under a protocol, writing one run folder."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from alsnet.data.labels import TASKS
from alsnet.training.splits import PROTOCOLS

if TYPE_CHECKING:
    from alsnet.training.experiment import Experiment


def add_training_options(p: argparse.ArgumentParser) -> None:
    r = p.add_argument_group("training recipe (defaults are the paper's)")
    r.add_argument("--max-epochs", type=int, default=100, help="at most this many epochs (paper 100)")
    r.add_argument("--batch-size", type=int, default=48, help="batch size (paper 48)")
    r.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate (paper 1e-3)")
    r.add_argument("--patience", type=int, default=25, help="early-stopping patience in epochs (paper 25)")
    r.add_argument("--plateau-patience", type=int, default=5, help="reduce-LR-on-plateau patience (paper 5)")
    r.add_argument("--train-crop", type=float, default=None, metavar="SECONDS",
                   help="train on random crops of this length (a named deviation from the paper; "
                        "validation and test always use whole 1-s windows)")
    r.add_argument("--class-weight", choices=["balanced"], default=None,
                   help="weight the loss by inverse class frequency of the training windows (paper: unweighted)")
    r.add_argument("--no-fast", action="store_true", help="use the plain eager model for training steps")
    d = p.add_argument_group("devices (Lightning)")
    d.add_argument("--accelerator", default="cpu", help="cpu, gpu, auto (default cpu)")
    d.add_argument("--devices", default="1", help="devices per node (default 1)")
    d.add_argument("--num-nodes", type=int, default=1, help="nodes for multi-node DDP")
    d.add_argument("--strategy", default="auto", help="Lightning strategy, e.g. ddp (gloo on CPU)")
    d.add_argument("--precision", default="32-true", help="32-true (default) or bf16-mixed")


def register(sub) -> None:
    p = sub.add_parser("train", help="train and evaluate ALSNet or a baseline under a protocol",
                       description="Train and evaluate a model; writes config, weights, per-epoch log, "
                                   "predictions, metrics and figures into --out RUN_DIR.")
    p.add_argument("--data", help="folder of recordings (N2001 names or a labels.csv)")
    p.add_argument("--out", metavar="RUN_DIR", help="run folder to write")
    p.add_argument("--task", default="als-vs-normal", choices=list(TASKS))
    p.add_argument("--protocol", default="paper", choices=list(PROTOCOLS),
                   help="paper: segment-level random split (shares recordings between train and test); "
                        "loso / group-kfold / subject-holdout: subject-wise")
    p.add_argument("--folds", type=int, default=5, help="K for group-kfold")
    p.add_argument("--fold", action="append", dest="only_folds", metavar="NAME",
                   help="run only this fold (repeatable), e.g. subject-A01")
    p.add_argument("--model", default="alsnet", choices=["alsnet", "svm", "rf", "knn"])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--invalid", default="drop", choices=["drop", "keep-zero"],
                   help="windows with invalid samples: drop (default) or zero them")
    p.add_argument("--overlap", type=float, default=0.0, help="window overlap fraction (default 0)")
    p.add_argument("--jobs", type=int, default=1, help="folds trained in parallel processes")
    p.add_argument("--n-boot", type=int, default=1000, help="bootstrap replicates for the intervals")
    p.add_argument("--backend", default="auto", help="inference path for evaluation (default auto)")
    p.add_argument("--force", action="store_true", help="overwrite an existing run folder")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue a killed run from its checkpoints")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    add_training_options(p)
    p.set_defaults(func=run)


def experiment_from_args(args) -> Experiment:
    from alsnet.errors import AlsnetError
    from alsnet.training.experiment import Experiment
    from alsnet.training.lightning import Recipe

    if not args.resume and (not args.data or not args.out):
        raise AlsnetError("--data and --out are required (or --resume RUN_DIR)")
    recipe = Recipe(lr=args.lr, batch_size=args.batch_size, max_epochs=args.max_epochs,
                    plateau_patience=args.plateau_patience, early_stopping_patience=args.patience,
                    train_crop=args.train_crop, fast=not args.no_fast,
                    class_weight=args.class_weight)
    devices = int(args.devices) if str(args.devices).isdigit() else args.devices
    trainer = {"accelerator": args.accelerator, "devices": devices, "num_nodes": args.num_nodes,
               "strategy": args.strategy, "precision": args.precision}
    return Experiment(data=args.data or "", out=args.out or args.resume, task=args.task,
                      protocol=args.protocol, folds=args.folds, model=args.model, seed=args.seed,
                      recipe=recipe, invalid=args.invalid, overlap=args.overlap, jobs=args.jobs,
                      only_folds=args.only_folds, eval_backend=args.backend, n_boot=args.n_boot,
                      trainer=trainer)


def run(args: argparse.Namespace) -> int:
    from alsnet.training.experiment import run as run_experiment

    exp = experiment_from_args(args)
    progress = not args.quiet and sys.stderr.isatty()
    metrics = run_experiment(exp, force=args.force, resume=bool(args.resume), progress=progress)
    if metrics is not None:
        from alsnet.reporting.figures import write_run_figures

        write_run_figures(exp.out)
        print_metrics(metrics, exp.out)
    return 0


def print_metrics(m: dict, out: str) -> None:
    print(f"task {m['task']}, model {m['model']}, protocol {m['protocol']}")
    print(f"  ({m['protocol_label']})")
    for d in m.get("deviations") or []:
        print(f"  deviation from the paper: {d}")
    print(f"{'level':<10}{'n':>6}{'accuracy':>10}{'sens':>8}{'spec':>8}{'bal.acc':>9}{'AUC':>7}   bal.acc 95% CI")
    for lvl in ("window", "recording", "subject"):
        v = m.get(lvl)
        if not v:
            continue
        ci = (v.get("ci") or {}).get("balanced_accuracy") or [None, None]
        f = lambda x: "  n/a" if x is None else f"{100 * x:.2f}"  # noqa: E731
        print(f"{lvl:<10}{v.get('n', 0):>6}{f(v.get('accuracy')):>10}{f(v.get('sensitivity')):>8}"
              f"{f(v.get('specificity')):>8}{f(v.get('balanced_accuracy')):>9}{f(v.get('roc_auc')):>7}"
              f"   [{f(ci[0])}, {f(ci[1])}]")
    print(f"run folder: {out}")
