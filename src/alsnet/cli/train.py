"""``alsnet train``: train and evaluate a model under a protocol, writing one run folder."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from alsnet.cli.options import add_dataset_options, reader_options
from alsnet.data.labels import DEFAULT_TASK, TASKS
from alsnet.training.splits import NESTED_OUTER, PROTOCOLS

if TYPE_CHECKING:
    from alsnet.training.experiment import Experiment
    from alsnet.training.nested import NestedExperiment


def add_training_options(p: argparse.ArgumentParser) -> None:
    from alsnet.training.recipe import cli_options

    r = p.add_argument_group("training recipe (defaults are the paper's)")
    for flag, kw in cli_options():
        r.add_argument(flag, **kw)
    d = p.add_argument_group("devices (Lightning)")
    d.add_argument("--accelerator", default="cpu", help="cpu, gpu, auto (default cpu)")
    d.add_argument("--devices", default="1", help="devices per node (default 1)")
    d.add_argument("--num-nodes", type=int, default=1, help="nodes for multi-node DDP")
    d.add_argument("--strategy", default="auto", help="Lightning strategy, e.g. ddp (gloo on CPU)")
    d.add_argument("--precision", default="32-true", help="32-true (default) or bf16-mixed")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train and evaluate ALSNet or a baseline under a protocol",
                       description="Train and evaluate a model; writes config, weights, per-epoch log, "
                                   "predictions, metrics and figures into --out RUN_DIR.")
    p.add_argument("--data", help="folder of recordings (N2001 names or a labels.csv)")
    p.add_argument("--out", metavar="RUN_DIR", help="run folder to write")
    p.add_argument("--task", default=DEFAULT_TASK, choices=list(TASKS))
    p.add_argument("--protocol", default="paper", choices=[*PROTOCOLS, "nested"],
                   help="paper: segment-level random split (shares recordings between train and test); "
                        "loso / group-kfold / subject-holdout: subject-wise; nested: subject-wise outer "
                        "folds with every choice made by an inner subject-wise cross-validation")
    n = p.add_argument_group("nested protocol (--protocol nested)")
    n.add_argument("--outer", default="group-kfold", choices=list(NESTED_OUTER),
                   help="outer folds: stratified group k-fold (--folds, default 5) or loso")
    n.add_argument("--inner-folds", type=int, default=3, metavar="K",
                   help="inner stratified group k-fold over each outer fold's training subjects (default 3)")
    n.add_argument("--split-seed", type=int, default=0, metavar="N",
                   help="seed of the outer and inner splits (default 0; --seed seeds the training)")
    n.add_argument("--outer-fold", action="append", dest="only_outer", metavar="NAME",
                   help="run only this outer fold (repeatable), e.g. outer-0; with --resume, the outer folds this "
                        "process continues")
    n.add_argument("--budget-from", metavar="RUN_DIR",
                   help="ALSNet: train each outer fold's inner models for the epoch that nested run (same split) "
                        "chose for the same outer fold + --budget-margin, at most --max-epochs")
    n.add_argument("--budget-margin", type=int, default=10, metavar="N",
                   help="epochs beyond --budget-from's chosen epoch (default 10)")
    n.add_argument("--on-fold-done", metavar="CMD",
                   help="shell command run on the new config.json, after each finished inner and outer "
                        "fold and on the finished run ({dir} = that path; e.g. commit its files: see "
                        "scripts/commit_results.sh)")
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
    p.add_argument("--merge", metavar="RUN_DIR",
                   help="compute the metrics of a run whose folds were trained as separate jobs (--fold NAME, "
                        "e.g. a SLURM array writing into one --out): trains nothing, names any unfinished fold")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--json", action="store_true",
                   help="print the metrics summary (window / recording / subject, with intervals) as JSON")
    add_dataset_options(p)
    add_training_options(p)
    p.set_defaults(func=run)


def experiment_from_args(args: argparse.Namespace) -> Experiment:
    from alsnet.errors import AlsnetError
    from alsnet.training.experiment import Experiment
    from alsnet.training.recipe import Recipe, cli_options

    if not (args.resume or args.merge) and (not args.data or not args.out):
        raise AlsnetError("--data and --out are required (or --resume / --merge RUN_DIR)")
    recipe = Recipe(**{kw["dest"]: getattr(args, kw["dest"]) for _, kw in cli_options()})
    devices = int(args.devices) if str(args.devices).isdigit() else args.devices
    trainer = {"accelerator": args.accelerator, "devices": devices, "num_nodes": args.num_nodes,
               "strategy": args.strategy, "precision": args.precision}
    return Experiment(data=args.data or "", out=args.out or args.resume or args.merge, task=args.task,
                      protocol=args.protocol, folds=args.folds, model=args.model, seed=args.seed,
                      recipe=recipe, invalid=args.invalid, overlap=args.overlap, jobs=args.jobs,
                      only_folds=args.only_folds, eval_backend=args.backend, n_boot=args.n_boot,
                      trainer=trainer, read=reader_options(args))


def nested_from_args(args: argparse.Namespace) -> NestedExperiment:
    from alsnet.training.nested import NestedExperiment

    exp = experiment_from_args(args)
    return NestedExperiment(data=exp.data, out=exp.out, task=exp.task, model=exp.model, outer=args.outer,
                            outer_k=args.folds, inner_k=args.inner_folds, split_seed=args.split_seed,
                            seed=args.seed, recipe=exp.recipe, invalid=args.invalid, n_boot=args.n_boot,
                            eval_backend=args.backend, only_outer=args.only_outer,
                            on_fold_done=args.on_fold_done, trainer=exp.trainer, read=exp.read,
                            budget_from=args.budget_from, budget_margin=args.budget_margin)


def _is_nested_run(path: str) -> bool:
    from alsnet.training.runs import read_json

    return str(read_json(Path(path) / "config.json").get("split", {}).get("protocol", "")).startswith("nested")


def run(args: argparse.Namespace) -> int:
    progress = not args.quiet and sys.stderr.isatty()
    if args.protocol == "nested" or (args.resume and _is_nested_run(args.resume)):
        from alsnet.training.nested import run as run_nested

        exp = nested_from_args(args)
        metrics = run_nested(exp, force=args.force, resume=bool(args.resume), progress=progress)
    else:
        from alsnet.training.experiment import run as run_experiment

        exp = experiment_from_args(args)
        metrics = run_experiment(exp, force=args.force, resume=bool(args.resume), progress=progress,
                                 merge=bool(args.merge))
    if metrics is not None:
        from alsnet.reporting.figures import write_run_figures

        write_run_figures(exp.out)
    if args.json:
        from alsnet.cli.main import JSON_SCHEMA_VERSION, print_json

        # None when the run trained only some folds (--fold): no metrics over all of them yet
        print_json({"schema_version": JSON_SCHEMA_VERSION, "run_dir": str(exp.out), "metrics": metrics})
    elif metrics is not None:
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
        bracket = "   (people: below)" if lvl == "subject" else f"   [{f(ci[0])}, {f(ci[1])}]"
        print(f"{lvl:<10}{v.get('n', 0):>6}{f(v.get('accuracy')):>10}{f(v.get('sensitivity')):>8}"
              f"{f(v.get('specificity')):>8}{f(v.get('balanced_accuracy')):>9}{f(v.get('roc_auc')):>7}{bracket}")
    sub = m.get("subject") or {}
    if sub.get("confusion_matrix") and m.get("task") in TASKS:
        from alsnet.evaluation.metrics import count_proportions

        props = count_proportions(sub["confusion_matrix"], TASKS[m["task"]])
        parts = [f"{name} {p['k']} of {p['n']} [{100 * p['wilson'][0]:.0f}, {100 * p['wilson'][1]:.0f}]"
                 for name, p in (("all", props["accuracy"]), ("ALS", props["sensitivity"]),
                                 ("non-ALS", props["specificity"])) if p["n"]]
        print(f"people right (Wilson 95 %): {'; '.join(parts)}")
    print(f"run folder: {out}")
