"""Rebuild a bundled pretrained model from the real N2001 data with one command.

    python scripts/build_pretrained.py --data data/N2001 --task als-vs-normal \
        --evaluation runs/loso-als-vs-normal-alsnet

trains ALSNet on *all* subjects of the task (validation windows for early stopping, the
learning-rate schedule and temperature scaling come from whole held-out training
subjects), and writes ``src/alsnet/model/pretrained/TASK.safetensors`` + ``TASK.json``. The card
carries the subject-wise metrics (with 95% intervals) of the cross-validated run given by
``--evaluation``, which used the same recipe and seed: a model trained on every subject has
no test subjects of its own, so its honest estimate is the cross-validated one.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]

INTENDED_USE = ("Research on needle-EMG classification; a suggestion to be inspected by a "
                "clinical neurophysiologist. Not a medical device; not for diagnosis.")
LIMITS = [
    "Biceps brachii only (EMGLab N2001); other muscles are untested.",
    "One centre, one electrode type (concentric needle), steady low/moderate isometric contraction.",
    "Patients are older than controls (ALS 52-67 years, controls 21-37): the model may partly "
    "learn age rather than disease.",
    "Few subjects (6 ALS, 8 controls, 5 myopathy): subject-level intervals are wide.",
]

WEIGHTED_LIMIT = ("Trained with a class-balanced loss: its probabilities assume equal prior odds of the "
                  "classes, not their frequency in the training data (for example 24 % ALS windows for "
                  "als-vs-normal), so P(ALS) is higher than the training frequency would give; the "
                  "calibration entry on this card gives the expected calibration error on validation windows.")


def _domain(data: Path, ws, train: np.ndarray) -> dict:
    """The card's training-domain record: rates, band and muscles from the training recordings'
    headers, window statistics from the training windows (alsnet.data.domain)."""
    from alsnet.data.domain import muscle_of, training_domain
    from alsnet.data.io import find_recordings, open_source

    used, heads = set(ws.record[train]), []
    for p in find_recordings(data):
        with open_source(p) as src:
            if src.record in used:
                heads.append((src.fs, muscle_of(src.record, src.meta), src.meta))
    return training_domain(ws.x[train], rates=[h[0] for h in heads], muscles=[h[1] for h in heads],
                           metas=[h[2] for h in heads],
                           source=f"measured from the {len(heads)} training recordings by scripts/build_pretrained.py")


def _evaluation(run: Path, task: str) -> dict:
    """The subject-wise metrics of a cross-validated run folder, for the model card."""
    from alsnet.errors import AlsnetError

    f = run / "metrics.json"
    try:
        m = json.loads(f.read_text(encoding="utf-8"))
    except OSError as e:
        raise AlsnetError(f"{f}: cannot read ({e.strerror or type(e).__name__})") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise AlsnetError(f"{f}: not a JSON metrics file ({e})") from None
    levels = ("window", "recording", "subject")
    missing = [k for k in ("task", "protocol", "protocol_label", *levels) if not isinstance(m, dict) or k not in m]
    if missing:
        raise AlsnetError(f"{f}: not an alsnet metrics file (no {', '.join(missing)})")
    if m["task"] != task:
        raise AlsnetError(f"{f}: evaluates task {m['task']!r}, not {task!r}")
    return {"run": str(run), "protocol": m["protocol"], "protocol_label": m["protocol_label"],
            "deviations": m.get("deviations"),
            **{lvl: {k: m[lvl].get(k) for k in ("n", "accuracy", "sensitivity", "specificity",
                                                "balanced_accuracy", "roc_auc", "ci", "confusion_matrix")}
               for lvl in levels}}


def _nested_experiment(args, recipe):  # noqa: ANN001, ANN202 - argparse namespace, Recipe
    """The nested experiment a --nested build runs: outer 'none', an inner CV over every subject."""
    from alsnet.training.nested import NestedExperiment

    return NestedExperiment(data=args.data, out=str(args.work / f"{args.task}-nested"), task=args.task,
                            model="alsnet", outer="none", seed=args.seed, recipe=recipe,
                            budget_from=args.budget_from, budget_margin=args.budget_margin)


def _build_nested(args, task, recipe, evaluation) -> int:
    """The bundled model as the nested procedure builds it (alsnet.training.nested, outer 'none')."""
    from alsnet.data.dataset import load_windows
    from alsnet.errors import AlsnetError
    from alsnet.model.checkpoint import load_model, save_model
    from alsnet.training.nested import run

    if evaluation is not None and not str(evaluation["protocol"]).startswith("nested"):
        raise AlsnetError(f"{args.evaluation}: a {evaluation['protocol']} run; a nested build is described by a "
                          "nested evaluation (--protocol nested)")
    exp = _nested_experiment(args, recipe)
    work = Path(exp.out)
    run(exp, force=True, progress=sys.stderr.isatty())
    built = load_model(work / "all-subjects" / "model")
    ws = load_windows(args.data, task)
    card = {k: v for k, v in built.card.items() if k not in ("architecture", "classes", "window", "weights_file",
                                                              "weights_sha256", "card_version")}
    card.update({"training_data": {"dataset": "EMGLab N2001 (biceps brachii), M. Nikolic, Rigshospitalet 2001",
                                   "subjects": sorted(set(ws.subject)), "n_windows": len(ws)},
                 "evaluation": evaluation, "intended_use": INTENDED_USE,
                 "domain": _domain(args.data, ws, np.arange(len(ws))),
                 "limitations": LIMITS + ([WEIGHTED_LIMIT] if args.class_weight else []),
                 "rebuild": (f"python scripts/build_pretrained.py --nested --data {args.data} --task {args.task} "
                             f"--max-epochs {args.max_epochs} --train-crop {args.train_crop:g} --seed {args.seed}"
                             + (f" --class-weight {args.class_weight}" if args.class_weight else "")
                             + (f" --budget-from {args.budget_from} --budget-margin {args.budget_margin}"
                                if args.budget_from else "")
                             + (f" --evaluation {args.evaluation}" if args.evaluation else ""))})
    out = args.out or (REPO / "src" / "alsnet" / "model" / "pretrained" / args.task)
    save_model(out, built.members, card)
    print(f"wrote {out.with_suffix('.safetensors')} and {out.with_suffix('.json')} "
          f"({len(built.members)}-network ensemble, epoch {card['selection']['chosen_epoch']})")
    return 0


def _procedure(run: Path) -> list[tuple[str, int | None]]:
    """What a nested run's procedure is, wherever its outer folds: per run it chooses among (one
    for a plain run), its configuration key without the outer folds, and its budget margin."""
    from alsnet.reporting.nested import _constituent, configuration
    from alsnet.training.nested import read_config

    _, exp = read_config(run)
    if exp.choose_among:
        return [p for c in exp.choose_among for p in _procedure(_constituent(run, c))]
    return [(configuration(run, ignore=("outer", "outer_k"))[0], exp.budget_margin if exp.budget_from else None)]


def _nested_card_evaluation(runs: list[Path], baselines: list[Path], task: str, n_boot: int) -> dict:
    """The card's evaluation: the first run in the shape of every card (the HTML report reads it),
    each seed's subject-level numbers, their mean and range, and the paired comparison of each
    seed with the baseline run of the same seed."""
    from alsnet.errors import AlsnetError
    from alsnet.reporting.nested import _subject_ll, paired_comparison, seed_summary
    from alsnet.training.runs import read_json

    first = _evaluation(runs[0], task)
    seeds = []
    for r in runs:
        m = read_json(r / "metrics.json")
        sp = m["subject_proportions"]["all"]
        seeds.append({"run": str(r), "seed": m["seed"], "window_balanced_accuracy": m["window"]["balanced_accuracy"],
                      "recording_balanced_accuracy": m["recording"]["balanced_accuracy"],
                      "subjects_right": sp["k"], "n_subjects": sp["n"], "subjects_right_wilson95": sp["wilson"],
                      "subject_log_loss": _subject_ll(r), "chosen": m.get("choices")})
    table = seed_summary(runs)
    if len(table) != 1:
        raise AlsnetError(f"the evaluation runs are not seeds of one configuration: {', '.join(map(str, runs))}")
    row = table.iloc[0]
    over = {"configuration": row["configuration"], "n_seeds": int(row["n seeds"]),
            **{k[1:]: {"mean": float(np.nanmean(v)), "min": float(np.nanmin(v)), "max": float(np.nanmax(v))}
               for k, v in row.items() if str(k).startswith("_")}}
    by_seed = {read_json(b / "metrics.json")["seed"]: b for b in baselines}
    against = []
    for r, sd in zip(runs, seeds):
        b = by_seed.get(sd["seed"])
        if b is None:
            raise AlsnetError(f"no baseline run of seed {sd['seed']} among --baseline")
        c = paired_comparison(r, b, n_boot=n_boot)
        against.append({"seed": sd["seed"], "baseline": str(b), **{k: c[k] for k in (
            "subject_log_loss_difference", "window_balanced_accuracy_difference", "mcnemar_subjects")}})
    return {**first, "seeds": seeds, "over_seeds": over, "against_baseline": against,
            "note": "nested subject-wise (5 outer x 3 inner subject folds): every choice from pooled inner "
                    "out-of-fold predictions; differences are this model's procedure minus the baseline, paired "
                    "by subject on the same folds"}


def _build_from_run(args, task) -> int:  # noqa: ANN001 - argparse namespace, Task
    """The bundled model from a finished procedure on every subject (``--outer none``), for example
    the recipe chosen among the exact network and its variants (scripts/nested_choose.py)."""
    from alsnet.data.dataset import load_windows
    from alsnet.errors import AlsnetError
    from alsnet.model.checkpoint import load_model, save_model
    from alsnet.training.nested import read_config, train_command
    from alsnet.training.runs import read_json

    run = args.from_run
    _, exp = read_config(run)
    if exp.outer != "none" or exp.task != args.task:
        raise AlsnetError(f"{run}: not the procedure on every subject of {args.task} (--outer none)")
    if not args.evaluation or not args.baseline:
        raise AlsnetError("--from-run needs --evaluation (the nested runs of the same procedure, one per seed) "
                          "and --baseline (the best baseline's nested runs, same seeds)")
    want = _procedure(run)
    for ev in args.evaluation:
        got = _procedure(ev)
        if [k for k, _ in got] != [k for k, _ in want] or any(
                m is not None and m != w for (_, m), (_, w) in zip(got, want)):
            raise AlsnetError(f"{ev}: evaluates another procedure (recipes, split or budget margin) than {run}; "
                              "its metrics would not describe this model")
    evaluation = _nested_card_evaluation(args.evaluation, args.baseline, args.task, args.n_boot)
    sel = read_json(run / "all-subjects" / "selection.json")
    built = load_model(run / "all-subjects" / "model")
    ws = load_windows(exp.data if Path(exp.data).exists() else args.data, task)
    card = {k: v for k, v in built.card.items() if k not in ("architecture", "classes", "window", "weights_file",
                                                              "weights_sha256", "card_version")}
    chosen_exp = exp
    if exp.choose_among:
        from alsnet.reporting.nested import _constituent

        src = _constituent(run, next(c for c in exp.choose_among if Path(c).name == sel["chosen_run"]))
        _, chosen_exp = read_config(src)
        card["selected_by"] = {
            "procedure": "the nested procedure on every subject, choosing the recipe too: each candidate recipe's "
                         "inner subject-wise 3-fold CV over all subjects; the recipe and epoch with the lowest "
                         "pooled out-of-fold subject log-loss, with its calibration and decision rule",
            "chosen_recipe_run": sel["chosen_run"], "pooled_oof_subject_log_loss": sel["run_losses"],
            "commands": [train_command(read_config(_constituent(run, c))[1]) for c in exp.choose_among]
            + [f"python scripts/nested_choose.py --out {run} " + " ".join(exp.choose_among)]}
    card.update({"training_data": {"dataset": "EMGLab N2001 (biceps brachii), M. Nikolic, Rigshospitalet 2001",
                                   "subjects": sorted(set(ws.subject)), "n_windows": len(ws)},
                 "evaluation": evaluation, "intended_use": INTENDED_USE,
                 "domain": _domain(args.data, ws, np.arange(len(ws))),
                 "limitations": LIMITS + ([WEIGHTED_LIMIT] if chosen_exp.recipe.class_weight else []),
                 "rebuild": (f"python scripts/build_pretrained.py --task {args.task} --data {args.data} "
                             f"--from-run {run} --evaluation {' '.join(map(str, args.evaluation))} "
                             f"--baseline {' '.join(map(str, args.baseline))}")})
    out = args.out or (REPO / "src" / "alsnet" / "model" / "pretrained" / args.task)
    save_model(out, built.members, card)
    print(f"wrote {out.with_suffix('.safetensors')} and {out.with_suffix('.json')} "
          f"({len(built.members)}-network ensemble of {sel.get('chosen_run', run.name)}, epoch {sel['chosen_epoch']})")
    return 0


def main(argv=None) -> int:
    from alsnet.data.dataset import load_windows
    from alsnet.data.labels import get_task
    from alsnet.errors import AlsnetError
    from alsnet.model.checkpoint import load_model, save_model
    from alsnet.training.fold import train_alsnet_fold
    from alsnet.training.recipe import Recipe
    from alsnet.training.splits import Fold, split_validation

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="data/N2001")
    ap.add_argument("--task", default="als-vs-normal", choices=["als-vs-normal", "three-class"])
    ap.add_argument("--evaluation", type=Path, nargs="+",
                    help="cross-validated run folder whose metrics go on the card (with --from-run: the nested "
                         "runs of the same procedure, one per seed)")
    ap.add_argument("--from-run", type=Path, metavar="RUN_DIR",
                    help="bundle the ensemble of a finished procedure on every subject (alsnet train --protocol "
                         "nested --outer none, or scripts/nested_choose.py over such runs), no training")
    ap.add_argument("--n-boot", type=int, default=2000, help="replicates of the card's paired bootstrap")
    ap.add_argument("--baseline", type=Path, nargs="+", default=[],
                    help="with --from-run: the best baseline's nested runs (same folds, one per seed) for the "
                         "card's paired comparison")
    ap.add_argument("--out", type=Path, default=None, help="default src/alsnet/model/pretrained/TASK")
    ap.add_argument("--work", type=Path, default=REPO / "runs" / "pretrained-build")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--max-epochs", type=int, default=20)
    ap.add_argument("--train-crop", type=float, default=0.125)
    ap.add_argument("--class-weight", choices=["balanced"], default=None,
                    help="loss weighted by inverse class frequency (as alsnet train --class-weight)")
    ap.add_argument("--nested", action="store_true",
                    help="build the model by the nested selection procedure on every subject (an inner "
                         "subject-wise 3-fold CV; the ensemble of its models at the epoch, calibration and "
                         "decision rule chosen on their pooled out-of-fold predictions), as --protocol nested "
                         "evaluates it; --evaluation must then be that nested run")
    ap.add_argument("--budget-from", metavar="RUN_DIR", default=None,
                    help="with --nested: train the inner models for the largest epoch RUN_DIR chose over its "
                         "outer folds + 1 + --budget-margin, at most --max-epochs (as alsnet train --budget-from)")
    ap.add_argument("--budget-margin", type=int, default=10, metavar="N")
    args = ap.parse_args(argv)

    task = get_task(args.task)
    if args.from_run:
        return _build_from_run(args, task)
    if args.evaluation and len(args.evaluation) > 1:
        raise AlsnetError("one --evaluation run describes a build that trains (several: with --from-run)")
    args.evaluation = args.evaluation[0] if args.evaluation else None
    recipe = Recipe(max_epochs=args.max_epochs, train_crop=args.train_crop, class_weight=args.class_weight)
    if args.budget_from and not args.nested:
        raise AlsnetError("--budget-from sets the budget of a nested build: add --nested")
    # The evaluation run is read first: a bad one fails in a second, not after training.
    evaluation = _evaluation(args.evaluation, args.task) if args.evaluation else None
    if args.nested:
        from alsnet.training.nested import experiment_deviations

        wanted = experiment_deviations(_nested_experiment(args, recipe))
    else:
        wanted = recipe.deviations()
    if evaluation is not None and evaluation.get("deviations") != wanted:
        raise AlsnetError(f"{args.evaluation}: evaluated with another recipe ({evaluation.get('deviations')}) "
                          f"than this build ({wanted}); its metrics would not describe this model")
    if args.nested:
        return _build_nested(args, task, recipe, evaluation)
    ws = load_windows(args.data, task)
    idx = np.arange(len(ws))
    train, val = split_validation(idx, ws.y, ws.subject, args.seed)
    fold = Fold("all-subjects", train, val, val)
    work = args.work / args.task
    if work.exists():
        shutil.rmtree(work)
    card = {"training_data": {"dataset": "EMGLab N2001 (biceps brachii), M. Nikolic, Rigshospitalet 2001",
                              "subjects": sorted(set(ws.subject)), "n_windows": len(ws),
                              "train_subjects": sorted(set(ws.subject[train])),
                              "validation_subjects": sorted(set(ws.subject[val]))},
            "protocol": "all subjects (no test set); validation from held-out training subjects",
            "recipe": recipe.to_dict(), "deviations": recipe.deviations(), "seed": args.seed,
            "evaluation": evaluation, "intended_use": INTENDED_USE, "domain": _domain(args.data, ws, train),
            "limitations": LIMITS + ([WEIGHTED_LIMIT] if args.class_weight else []),
            "rebuild": (f"python scripts/build_pretrained.py --data {args.data} --task {args.task} "
                        f"--max-epochs {args.max_epochs} --train-crop {args.train_crop:g} --seed {args.seed}"
                        + (f" --class-weight {args.class_weight}" if args.class_weight else "")
                        + (f" --evaluation {args.evaluation}" if args.evaluation else ""))}
    train_alsnet_fold(ws, fold, task, recipe, work, seed=args.seed, trainer_kw={"accelerator": "cpu", "devices": 1},
                      progress=sys.stderr.isatty(), card=card)
    out = args.out or (REPO / "src" / "alsnet" / "model" / "pretrained" / args.task)
    loaded = load_model(work / "model")
    save_model(out, loaded.model, {k: v for k, v in loaded.card.items()
                                   if k not in ("architecture", "classes", "window", "weights_file",
                                                "weights_sha256", "card_version")})
    print(f"wrote {out.with_suffix('.safetensors')} and {out.with_suffix('.json')}")
    return 0


if __name__ == "__main__":
    from alsnet.errors import AlsnetError

    try:
        sys.exit(main())
    except AlsnetError as e:
        print(f"build_pretrained: error: {e}", file=sys.stderr)
        sys.exit(1)
