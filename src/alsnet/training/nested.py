"""Nested subject-wise evaluation: every choice from inner out-of-fold predictions.

Outer folds hold out whole subjects for test (``StratifiedGroupKFold`` with k = 5, or
LOSO). On each outer fold's training subjects an inner ``StratifiedGroupKFold`` (k = 3 by
default) trains one model per inner fold, validated on that fold's held-out subjects.

* ALSNet: each inner model trains with the paper's recipe (plateau schedule and early
  stopping on its inner validation subjects) and, at **every epoch**, logs its logits on the
  inner validation windows (the out-of-fold predictions) and on the outer test windows. The
  epoch, calibration and decision rule of the outer fold are then chosen from the pooled
  inner OOF logits (:mod:`alsnet.evaluation.selection`); only then are the outer test
  logits of the chosen epoch read.
* Baselines: each grid point of :data:`~alsnet.evaluation.baselines.GRIDS` (hyperparameters and
  class weighting) is fitted on the same inner training subjects and chosen the same way.

The outer test subjects are scored once, by the **ensemble of the inner models** (the mean of
their calibrated probabilities) rather than by a refit on all outer-training subjects: the
chosen epoch, calibration and threshold were measured for models trained on exactly these
subjects, a refit would train on more subjects for an epoch count chosen for fewer, and
the baselines are scored by the ensemble of their inner models too, so both are fitted on
exactly the same subjects.

Layout of a run folder (each inner fold's files are kilobytes; ``checkpoints/`` is for
resuming and not meant to be committed)::

    config.json                     the nested experiment, split, recipe, versions
    OUTER/INNER/epochs.npz          val/test logits per candidate (float16), indices
    OUTER/INNER/history.csv         per epoch (ALSNet)
    OUTER/INNER/done.json           written last: the inner fold is finished
    OUTER/selection.json            every choice and what it was chosen on
    OUTER/predictions.csv           the outer test windows, ensemble probabilities
    predictions.csv, metrics.json   all outer folds
"""

from __future__ import annotations

import io
import shlex
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from alsnet.data.dataset import WindowSet, load_windows
from alsnet.data.labels import Task, get_task
from alsnet.data.windows import MODEL_FS, window_settings
from alsnet.errors import AlsnetError
from alsnet.evaluation.selection import InnerOOF, ensemble_proba, select
from alsnet.files import atomic_write_bytes
from alsnet.training.fold import MODELS, predictions_frame
from alsnet.training.recipe import Recipe, RunConfig
from alsnet.training.runs import (
    epoch_seconds,
    join_run_dir,
    prepare_run_dir,
    read_csv,
    read_json,
    run_rules,
    versions,
    write_csv,
    write_json,
)
from alsnet.training.splits import NestedFold, describe_nested, make_nested_folds

if TYPE_CHECKING:
    import lightning

NESTED_MODELS = MODELS  # the same models as every protocol (alsnet.training.fold)


@dataclass
class NestedExperiment(RunConfig):
    """Everything that defines a nested run; saved in ``config.json``."""

    outer: str = "group-kfold"
    outer_k: int = 5
    inner_k: int = 3
    split_seed: int = 0
    only_outer: list[str] | None = None
    on_fold_done: str | None = None
    #: A finished-or-running nested ALSNet run on the same split whose outer folds' chosen epochs
    #: set this run's budget, fold by fold (:func:`fold_budget`); ``None``: ``recipe.max_epochs``.
    budget_from: str | None = None
    #: Epochs trained beyond the chosen epoch of ``budget_from``'s same outer fold.
    budget_margin: int = 10
    #: Set on a run made by :func:`choose_among`: the finished runs it chose among, fold by fold.
    choose_among: list[str] | None = None


def _say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _save_npz(path: Path, **arrays: np.ndarray) -> None:
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    atomic_write_bytes(path, buf.getvalue())


def _load_oof(d: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(val logits, test logits, val indices, test indices) of a finished inner fold."""
    f = d / "epochs.npz"
    try:
        with np.load(f) as z:
            return (z["val_logits"].astype(np.float32), z["test_logits"].astype(np.float32),
                    z["val_idx"], z["test_idx"])
    except (OSError, KeyError, ValueError, EOFError) as e:
        raise AlsnetError(f"unreadable inner-fold logits ({type(e).__name__}: {e})", f) from None


def _hook(exp: NestedExperiment, path: Path) -> None:
    """Run the user's ``--on-fold-done`` command (e.g. commit the fold's files) on a finished fold,
    the run's config (once written) and the finished run; a failure is a warning."""
    if not exp.on_fold_done:
        return
    cmd = exp.on_fold_done.replace("{dir}", shlex.quote(str(path)))
    res = subprocess.run(cmd, shell=True, capture_output=True, text=True)
    if res.returncode != 0:
        _say(f"alsnet train: warning: --on-fold-done failed for {path} (exit {res.returncode}): "
             f"{(res.stderr or res.stdout).strip().splitlines()[-1:] or ''}")


# --------------------------------------------------------------------------- inner folds

def fold_budget(exp: NestedExperiment, fold: str, folds_detail: list[dict]) -> dict | None:
    """The epoch budget of one outer fold, set by ``exp.budget_from`` (``None`` without it).

    The budget run's chosen epoch *of the same outer fold* (made from that fold's pooled inner
    out-of-fold curves, so no other fold's subjects enter) plus ``budget_margin`` epochs:
    ``max_epochs = min(recipe.max_epochs, chosen + 1 + margin)``. Training is identical to a
    longer run's up to the cap (the cap changes no step before it), so a budget run whose choice
    lies below the cap would choose the same under it. For the procedure on every subject
    (``--outer none``), which has no such fold, the largest chosen epoch over the budget run's
    outer folds. The budget run must have the same split, and its fold must be selected.
    """
    if not exp.budget_from:
        return None
    src = Path(exp.budget_from)
    cfg = read_json(src / "config.json")
    if cfg.get("model") != "alsnet":
        raise AlsnetError("--budget-from needs a nested ALSNet run", src / "config.json")
    theirs = cfg.get("split", {}).get("folds_detail", [])
    names = [f["name"] for f in theirs]
    def chosen_epoch(name: str) -> int:
        f = src / name / "selection.json"
        if not f.is_file():
            raise AlsnetError(f"the budget run has not chosen an epoch for {name} yet (finish it first)", f)
        try:
            return int(read_json(f)["chosen_epoch"])
        except (KeyError, TypeError, ValueError):
            raise AlsnetError("no chosen_epoch in it", f) from None

    if fold in names:
        if theirs[names.index(fold)] != next(f for f in folds_detail if f["name"] == fold):
            raise AlsnetError(f"its {fold} holds other subjects than this run's (another split or data set?)", src)
        chosen, on = chosen_epoch(fold), f"{src.name}/{fold}/selection.json"
    else:
        epochs = [chosen_epoch(n) for n in names]
        if not epochs:
            raise AlsnetError("no outer folds to take a budget from", src / "config.json")
        chosen, on = max(epochs), f"the largest chosen epoch of {src.name}'s outer folds ({', '.join(names)})"
    cap = min(exp.recipe.max_epochs, chosen + 1 + exp.budget_margin)
    return {"max_epochs": cap, "budget_run_chosen_epoch": chosen, "margin": exp.budget_margin,
            "chosen_on": on}


def experiment_deviations(exp: NestedExperiment) -> list[str]:
    """The recipe's departures from the paper, and the per-fold budget where one is set."""
    if exp.model != "alsnet":
        return []
    out = exp.recipe.deviations()
    if exp.budget_from:
        out.append(f"max_epochs per outer fold: the epoch {exp.budget_from} chose for that fold + 1 + "
                   f"{exp.budget_margin}, at most {exp.recipe.max_epochs} (selection.json: budget)")
    return out


def _inner_alsnet(exp: NestedExperiment, ws: WindowSet, task: Task, train: np.ndarray, val: np.ndarray,
                  test: np.ndarray, d: Path, seed: int, progress: bool, recipe: Recipe) -> dict:
    from alsnet.training.fold import train_alsnet_fold
    from alsnet.training.splits import Fold

    logger = EpochLogits(d / "epochs.npz", ws.x[test], val, test, backend=exp.eval_backend,
                         weights_dir=d / "weights" if exp.outer == "none" else None)
    card = {"protocol": "nested", "training_data": exp.data, "recipe": recipe.to_dict(),
            "deviations": recipe.deviations(), "seed": seed}
    train_alsnet_fold(ws, Fold(d.name, train, val, np.zeros(0, dtype=np.int64)), task, recipe, d,
                      seed=seed, trainer_kw=dict(exp.trainer), progress=progress,
                      eval_backend=exp.eval_backend, card=card, extra_callbacks=[logger.callback()],
                      score_test=False)
    return {"epochs": logger.n_epochs, "max_epochs": recipe.max_epochs}


def _inner_baseline(exp: NestedExperiment, ws: WindowSet, task: Task, features: np.ndarray, train, val, test,
                    d: Path, seed: int) -> dict:
    from alsnet.evaluation.baselines import GRIDS, fit_predict_features

    vals, tests = [], []
    for params in GRIDS[exp.model]:
        proba = fit_predict_features(exp.model, features[train], ws.y[train],
                                     np.concatenate([features[val], features[test]]), seed=seed,
                                     n_classes=len(task.classes), params=params)
        z = _proba_to_logits(proba, task)
        vals.append(z[:len(val)])
        tests.append(z[len(val):])
    _save_npz(d / "epochs.npz", val_logits=np.stack(vals).astype(np.float16),
              test_logits=np.stack(tests).astype(np.float16), val_idx=val, test_idx=test)
    return {"candidates": GRIDS[exp.model]}


def _proba_to_logits(proba: np.ndarray, task: Task) -> np.ndarray:
    """Logits whose probabilities are ``proba`` (clipped), so one calibration code serves every model."""
    p = np.clip(np.asarray(proba, float), 1e-6, 1 - 1e-6)
    if task.binary:
        return np.log(p[:, 1] / p[:, 0])[:, None]
    lp = np.log(p)
    return lp - lp.mean(axis=1, keepdims=True)


class EpochLogits:
    """Lightning callback factory: after every validation, keep the inner validation logits
    and score the outer test windows (float16 in ``epochs.npz``, rewritten atomically).

    The test logits are written, never read, until the outer fold's choices are made.
    """

    def __init__(self, path: Path, x_test: np.ndarray, val_idx: np.ndarray, test_idx: np.ndarray,
                 backend: str = "auto", weights_dir: Path | None = None):
        self.path, self.x_test, self.backend = path, x_test, backend
        self.weights_dir = weights_dir  # every epoch's weights (to build the chosen epoch's ensemble)
        self.val_idx, self.test_idx = val_idx, test_idx
        self.val: list[np.ndarray] = []
        self.test: list[np.ndarray] = []
        if path.is_file():
            v, t, _, _ = _load_oof(path.parent)
            self.val, self.test = list(v), list(t)

    @property
    def n_epochs(self) -> int:
        return len(self.val)

    def callback(self) -> lightning.Callback:
        import lightning as L
        import torch

        from alsnet.training.fold import score_windows

        outer = self

        class _EpochLogits(L.Callback):
            def on_train_start(self, trainer, pl_module):
                # a resumed fit starts after its checkpoint's epoch: later epochs are redone
                del outer.val[trainer.current_epoch:], outer.test[trainer.current_epoch:]
                self.batches: list[torch.Tensor] = []

            def on_validation_epoch_start(self, trainer, pl_module):
                self.batches = []

            def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0):
                if outputs is not None:
                    self.batches.append(outputs.detach().float().cpu())

            def on_validation_epoch_end(self, trainer, pl_module):
                if trainer.sanity_checking or not self.batches:
                    return
                val = torch.cat(self.batches).numpy()
                if len(outer.x_test):
                    test, _ = score_windows(pl_module.model, outer.x_test, backend=outer.backend)
                else:
                    test = np.zeros((0, val.shape[1]), np.float32)
                if outer.weights_dir is not None:
                    # the weights and (re-estimated) BatchNorm statistics the logged logits came from
                    save_weights(outer.weights_dir / f"epoch-{trainer.current_epoch:03d}.safetensors",
                                 pl_module.model)
                del outer.val[trainer.current_epoch:], outer.test[trainer.current_epoch:]
                outer.val.append(val.astype(np.float16))
                outer.test.append(np.asarray(test).astype(np.float16))
                pl_module.model.eval()
                _save_npz(outer.path, val_logits=np.stack(outer.val), test_logits=np.stack(outer.test),
                          val_idx=outer.val_idx, test_idx=outer.test_idx)

        return _EpochLogits()


# --------------------------------------------------------------------------- outer folds

def load_inner(ws: WindowSet, fold: NestedFold, d: Path) -> tuple[list[InnerOOF], list[np.ndarray]]:
    """The finished inner folds of outer fold directory ``d``: their out-of-fold predictions
    (every candidate) and their outer test logits, checked against the split."""
    oof, test_logits = [], []
    for name, _, val in fold.inner:
        v, t, vi, ti = _load_oof(d / name)
        if not (np.array_equal(vi, val) and np.array_equal(ti, fold.test)):
            raise AlsnetError("inner-fold windows differ from the split (another data set or seed?)", d / name)
        oof.append(InnerOOF(v, ws.y[val], ws.subject[val]))
        test_logits.append(t)
    return oof, test_logits


def run_folds(exp: NestedExperiment, ws: WindowSet) -> list[NestedFold]:
    """The nested folds of ``exp`` on its windows ``ws``."""
    return make_nested_folds(ws.y, ws.subject, outer=exp.outer, outer_k=exp.outer_k, inner_k=exp.inner_k,
                             seed=exp.split_seed)


def _finish_outer(exp: NestedExperiment, ws: WindowSet, task: Task, fold: NestedFold, d: Path,
                  budget: dict | None = None) -> pd.DataFrame:
    """Choose from the pooled inner OOF predictions, then (only then) score the outer test windows."""
    oof, test_logits = load_inner(ws, fold, d)
    sel = select(oof)
    report = dict(sel.report)
    report.update({"outer_fold": fold.name, "test_subjects": sorted(set(ws.subject[fold.test])),
                   "inner_folds": [{"name": n, "train_subjects": sorted(set(ws.subject[tr])),
                                    "val_subjects": sorted(set(ws.subject[va]))} for n, tr, va in fold.inner],
                   "scored_by": "mean of the inner models' calibrated probabilities (no refit)",
                   "chosen_on": "pooled inner out-of-fold predictions; outer test labels not read"})
    if exp.model == "alsnet":
        report["chosen_epoch"] = sel.candidate
        report["chosen_steps"] = _steps(exp, ws, fold, sel.candidate)
        report["budget"] = budget or {"max_epochs": exp.recipe.max_epochs, "chosen_on": "the recipe"}
    else:
        from alsnet.evaluation.baselines import GRIDS

        report["chosen_params"] = GRIDS[exp.model][sel.candidate]
    write_json(d / "selection.json", report)
    if not len(fold.test):  # the procedure on all subjects: its output is the model itself
        if exp.model == "alsnet":
            _save_ensemble(exp, ws, task, fold, d, sel, report)
        return pd.DataFrame()
    pred = predictions_frame(ws, fold.test, ensemble_proba(test_logits, sel), task, fold.name)
    write_csv(d / "predictions.csv", pred)
    return pred


def _save_ensemble(exp: NestedExperiment, ws: WindowSet, task: Task, fold: NestedFold, d: Path, sel,  # noqa: ANN001
                   report: dict) -> Path:
    """The inner models at the chosen epoch as one ensemble model, with the chosen calibration and rule."""
    from safetensors.torch import load_file

    from alsnet.model.checkpoint import save_model
    from alsnet.model.network import ALSNet

    members = []
    for name, _, _ in fold.inner:
        f = d / name / "weights" / f"epoch-{sel.candidate:03d}.safetensors"
        if not f.is_file():
            raise AlsnetError("weights of the chosen epoch are missing (an interrupted inner training?)", f)
        net = ALSNet(n_outputs=task.n_outputs)
        net.load_state_dict(load_file(str(f)))
        members.append(net.eval())
    card = {"task": task.name, "calibration": sel.calibrator.to_dict(), "decision_rule": sel.rule.to_dict(),
            "protocol": "the nested selection procedure on every subject: an inner subject-wise "
                        f"{exp.inner_k}-fold CV, its {exp.inner_k} models at the epoch chosen on their pooled "
                        "out-of-fold predictions, averaged",
            "selection": {k: report.get(k) for k in ("criterion", "chosen_epoch", "chosen_steps", "budget",
                                                     "calibration", "oof_after", "n_oof_subjects", "inner_folds")},
            "recipe": exp.recipe.to_dict(), "deviations": experiment_deviations(exp), "seed": exp.seed,
            "split_seed": exp.split_seed}
    return save_model(d / "model", members, card)


def _lost_epoch_weights(d: Path) -> str:
    """What an inner fold on every subject lacks of its per-epoch weights ("" if nothing):
    each epoch logged in ``epochs.npz`` needs its ``weights/epoch-NNN.safetensors``."""
    if not (d / "epochs.npz").is_file():
        return ""
    n = len(_load_oof(d)[0])
    missing = [k for k in range(n) if not (d / "weights" / f"epoch-{k:03d}.safetensors").is_file()]
    return f"{len(missing)} of {n} epochs' weights missing" if missing else ""


def save_weights(path: Path, model) -> None:  # noqa: ANN001 - an ALSNet
    """One network's weights as safetensors, written atomically."""
    from safetensors.torch import save

    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    atomic_write_bytes(path, save(state))


def _steps(exp: NestedExperiment, ws: WindowSet, fold: NestedFold, epoch: int) -> list[int]:
    """Optimiser steps an inner model had taken at the end of ``epoch``."""
    b = exp.recipe.batch_size
    return [int((epoch + 1) * (len(tr) // b + (len(tr) % b > 1))) for _, tr, _ in fold.inner]


def _not_chosen(exp: NestedExperiment, run_dir: Path) -> None:
    if exp.choose_among:
        raise AlsnetError("this run was chosen among other runs, not trained: rebuild it with "
                          "scripts/nested_choose.py", run_dir / "config.json")


def run(exp: NestedExperiment, *, force: bool = False, resume: bool = False, progress: bool = True) -> dict | None:
    """Run (or resume) a nested evaluation; returns the metrics once every outer fold is done."""
    _not_chosen(exp, Path(exp.out))
    joined = False
    if exp.only_outer and not resume and not force:  # one job of an array sharing one run folder
        run_dir, joined = join_run_dir(exp.out, exp.to_dict(), ("only_outer", "out", "on_fold_done"))
    else:
        run_dir = prepare_run_dir(exp.out, force=force, resume=resume)
    old = None
    if resume:
        # the run's own experiment; the caller's --outer-fold still says which folds this process trains
        only = exp.only_outer
        old, exp = read_config(run_dir)
        exp.out, exp.only_outer = str(run_dir), only
        _not_chosen(exp, run_dir)
    if exp.model not in NESTED_MODELS:
        raise AlsnetError(f"unknown model {exp.model!r}; choose from {', '.join(NESTED_MODELS)}")
    task = get_task(exp.task)
    t0 = time.perf_counter()
    ws = load_windows(exp.data, task, invalid=exp.invalid, read=exp.read, progress=progress)
    folds = run_folds(exp, ws)
    split = describe_nested(exp.outer, exp.outer_k, exp.inner_k, exp.split_seed)
    split["folds_detail"] = [{"name": f.name, "test_subjects": sorted(set(ws.subject[f.test])),
                              "inner": [{"name": n, "val_subjects": sorted(set(ws.subject[va])),
                                         "n_train": len(tr), "n_val": len(va)} for n, tr, va in f.inner]}
                             for f in folds]
    config = {"experiment": {**exp.to_dict(), "only_outer": None}, "task": task.to_dict(), "model": exp.model,
              "split": split,
              "window": window_settings(), "seed": exp.seed, "data": exp.data, "n_windows": len(ws),
              "subjects": sorted(set(ws.subject)), "versions": versions(),
              "deviations": experiment_deviations(exp),
              "selection": "every choice from pooled inner out-of-fold predictions (alsnet.evaluation.selection)"}
    if resume or joined:
        old = old or read_json(run_dir / "config.json")
        if old.get("split", {}).get("folds_detail") != split["folds_detail"]:
            raise AlsnetError("the data set's folds differ from the run's: not the same data?", run_dir / "config.json")
    else:
        write_json(run_dir / "config.json", config)
        _hook(exp, run_dir / "config.json")  # a resume needs it: commit it before the first fold
    n_inner = sum(len(f.inner) for f in folds)
    _say(f"nested {exp.outer} ({len(folds)} outer x {exp.inner_k} inner folds = {n_inner} trainings of "
         f"{exp.model}): {len(ws)} windows of {len(set(ws.subject))} subjects")
    features = None
    if exp.model != "alsnet":
        from alsnet.evaluation.features import window_features

        features = window_features(ws.x, MODEL_FS)
    frames = []
    for o, fold in enumerate(folds):
        if exp.only_outer and fold.name not in exp.only_outer:
            continue
        od = run_dir / fold.name
        if (od / "predictions.csv").is_file():
            frames.append(pd.read_csv(od / "predictions.csv", dtype={"fold": str, "subject": str}))
            continue
        if not len(fold.test) and (od / "selection.json").is_file() and (
                exp.model != "alsnet" or (od / "model.safetensors").is_file()):
            continue  # the procedure on every subject, finished (its model saved)
        budget = fold_budget(exp, fold.name, split["folds_detail"]) if exp.model == "alsnet" else None
        recipe = replace(exp.recipe, max_epochs=budget["max_epochs"]) if budget else exp.recipe
        if budget:
            _say(f"[{fold.name}] budget {budget['max_epochs']} epochs: {budget['chosen_on']} chose epoch "
                 f"{budget['budget_run_chosen_epoch']}, + {budget['margin']}")
        for i, (name, train, val) in enumerate(fold.inner):
            d = od / name
            done = (d / "done.json").is_file()
            if done and (len(fold.test) or exp.model != "alsnet"):
                continue
            if not len(fold.test) and exp.model == "alsnet":
                # on every subject the ensemble is built from each epoch's weights, which stay
                # local (results/.gitignore): a fold finished, or left resumable, on another
                # machine is trained again
                lost = _lost_epoch_weights(d)
                if not lost and done:
                    continue
                if lost:
                    _say(f"[{fold.name} {name}] {'finished' if done else 'interrupted'} without its "
                         f"per-epoch weights here ({lost}): trained again")
                    shutil.rmtree(d)
            d.mkdir(parents=True, exist_ok=True)
            seed = exp.seed * 1000 + o * 10 + i
            _say(f"[{fold.name} {name}] {len(train)} train windows, {len(val)} inner validation "
                 f"({', '.join(sorted(set(ws.subject[val])))}), {len(fold.test)} outer test")
            t1 = time.perf_counter()
            if exp.model == "alsnet":
                info = _inner_alsnet(exp, ws, task, train, val, fold.test, d, seed, progress, recipe)
            else:
                info = _inner_baseline(exp, ws, task, features, train, val, fold.test, d, seed)
            # which code and kernels finished this fold (a run resumed across sessions may span commits)
            write_json(d / "done.json", {"seconds": round(time.perf_counter() - t1, 1), "seed": seed, **info,
                                         "versions": versions()})
            _hook(exp, d)
        frames.append(_finish_outer(exp, ws, task, fold, od, budget))
        _hook(exp, od)
    if exp.outer == "none":
        _say(f"model: {run_dir / folds[0].name / 'model.safetensors'}" if exp.model == "alsnet"
             else f"selection: {run_dir / folds[0].name / 'selection.json'}")
        return None
    if exp.only_outer or len(frames) < len(folds):
        return None
    pred = pd.concat(frames, ignore_index=True)
    write_csv(run_dir / "predictions.csv", pred)
    inner_s = sum(inner_seconds(run_dir / f.name / name) for f in folds for name, _, _ in f.inner)
    return finish(run_dir, exp, task, pred, [f.name for f in folds], wall_s=time.perf_counter() - t0,
                  inner_time_s=inner_s, deviations=experiment_deviations(exp))


def inner_seconds(d: Path) -> float:
    """Seconds one finished inner fold took over all the sessions it ran in: the sum of its
    epochs' wall times (``history.csv``) where it has them, else its ``done.json`` (baselines,
    which fit in one go)."""
    hist = d / "history.csv"
    if hist.is_file():
        try:
            col = epoch_seconds(hist)
            if len(col):
                return float(col.sum())
        except AlsnetError as e:  # a damaged log costs the time column, not the run
            _say(f"alsnet train: warning: {e}; the time in {d / 'done.json'} (the last session's) is used")
    return float(read_json(d / "done.json").get("seconds", 0.0))


def finish(run_dir: Path, exp: NestedExperiment, task: Task, pred: pd.DataFrame, folds: list[str], *,
           wall_s: float, inner_time_s: float, deviations: list[str]) -> dict:
    """metrics.json from the outer folds' (names ``folds``) predictions and selections."""
    from alsnet.evaluation.metrics import evaluate
    from alsnet.evaluation.stats import subject_proportions

    sels = {name: read_json(run_dir / name / "selection.json") for name in folds}
    rules = run_rules(run_dir, folds=folds)
    pred["fold"] = pred["fold"].astype(str)
    metrics = evaluate(pred, task, n_boot=exp.n_boot, seed=exp.seed, rules=rules)
    metrics["subject_proportions"] = subject_proportions(pred, task, rules)
    metrics.update({"task": task.name, "model": exp.model, "protocol": f"nested-{exp.outer}",
                    "protocol_label": describe_nested(exp.outer, exp.outer_k, exp.inner_k, exp.split_seed)["label"],
                    "shares_recordings_between_train_and_test": False,
                    "deviations": deviations,
                    "window_settings": window_settings(), "seed": exp.seed, "split_seed": exp.split_seed,
                    "choices": {name: {k: s.get(k) for k in ("chosen_run", "chosen_epoch", "chosen_steps", "budget",
                                                               "chosen_params", "calibrator", "decision_rule",
                                                               "criterion", "chosen_on", "scored_by")
                                       if k in s or k != "chosen_run"}
                                for name, s in sels.items()},
                    # the last process alone (a resumed run's earlier sessions are not in it) ...
                    "wall_time_s": round(wall_s, 1),
                    # ... and every inner fold's own time, summed over the sessions it ran in
                    "inner_time_s": round(inner_time_s, 1)})
    write_json(run_dir / "metrics.json", metrics)
    _hook(exp, run_dir)
    return metrics


def train_command(exp: NestedExperiment) -> str:
    """The ``alsnet train`` command line that runs ``exp`` (every recipe field off its default)."""
    from dataclasses import fields

    from alsnet.training.recipe import Recipe

    args = ["alsnet", "train", "--data", exp.data, "--task", exp.task, "--protocol", "nested", "--outer", exp.outer]
    if exp.outer == "group-kfold":
        args += ["--folds", str(exp.outer_k)]
    args += ["--inner-folds", str(exp.inner_k), "--model", exp.model, "--seed", str(exp.seed),
             "--split-seed", str(exp.split_seed)]
    if exp.model == "alsnet":
        for f in fields(Recipe):
            flag, value = f.metadata.get("cli"), getattr(exp.recipe, f.name)
            if flag is None or value == f.default:
                continue
            args += [flag] if f.metadata.get("action") == "store_false" else [flag, f"{value:g}" if
                                                                              isinstance(value, float) else str(value)]
        if exp.budget_from:
            args += ["--budget-from", exp.budget_from, "--budget-margin", str(exp.budget_margin)]
    args += ["--out", exp.out]
    return shlex.join(args)


# --------------------------------------------------------------------------- choosing among runs

def _chosen_loss(sel: dict, where: Path) -> float:
    """The pooled inner OOF criterion a fold's selection reached at its chosen candidate."""
    try:
        return float(sel["curves"]["subject_log_loss"][int(sel["chosen_candidate"])])
    except (KeyError, IndexError, TypeError, ValueError):
        raise AlsnetError("no chosen candidate and curves in it", where) from None


def read_config(run: str | Path) -> tuple[dict, NestedExperiment]:
    """A nested run's ``config.json`` and its experiment; a file that is not one is one AlsnetError."""
    f = Path(run) / "config.json"
    config = read_json(f)
    try:
        exp = NestedExperiment.from_dict(config["experiment"])
        config["split"]["folds_detail"]
    except (KeyError, TypeError, ValueError, AlsnetError) as e:
        raise AlsnetError(f"not a nested run's config ({type(e).__name__}: {e})", f) from None
    return config, exp


def choose_among(runs: list[str | Path], out: str | Path, *, force: bool = False) -> dict | None:
    """The nested procedure that also chooses the run (a variant, another model) on each outer fold.

    ``runs`` are finished nested runs of one task, split and seed (for example the exact
    network and its declared variants). On every outer fold the run whose own selection
    reached the lowest pooled inner out-of-fold ``subject_log_loss`` at its chosen candidate
    wins (ties: the earlier in ``runs``), and its choices and outer predictions are taken as
    they are. Each run chose its candidate, calibration and rule from that same fold's pooled
    inner OOF predictions, so this is one selection over every (run, candidate) pair at once;
    no outer test label is read. On ``--outer none`` runs (the procedure on every subject) the
    winner's ensemble model is copied. Returns the metrics (``None`` for ``--outer none``).
    """
    t0 = time.perf_counter()
    runs = [Path(r) for r in runs]
    if len(runs) < 2:
        raise AlsnetError("choose among at least two runs")
    configs, exps = zip(*(read_config(r) for r in runs))
    split0 = configs[0]["split"].get("folds_detail")
    for r, c, e in zip(runs[1:], configs[1:], exps[1:]):
        for what, mine, first in (("task", e.task, exps[0].task), ("seed", e.seed, exps[0].seed),
                                  ("outer folds", c["split"].get("folds_detail"), split0)):
            if mine != first:
                raise AlsnetError(f"its {what} differ from {runs[0]}'s: runs chosen among must share the task, "
                                  "the split and the seed", r / "config.json")
        if e.choose_among:
            raise AlsnetError("a run that was itself chosen among others", r / "config.json")
    if exps[0].choose_among:
        raise AlsnetError("a run that was itself chosen among others", runs[0] / "config.json")
    folds = [f["name"] for f in configs[0]["split"]["folds_detail"]]
    on_all = exps[0].outer == "none"
    for r in runs:
        if not on_all and not (r / "metrics.json").is_file():
            raise AlsnetError("unfinished (no metrics.json): finish it first (alsnet train --resume)", r)
    run_dir = prepare_run_dir(out, force=force)
    task = get_task(exps[0].task)
    names = [r.name for r in runs]
    models = sorted({e.model for e in exps})
    exp = replace(exps[0], out=str(run_dir), on_fold_done=None, only_outer=None, choose_among=[str(r) for r in runs],
                  model=models[0] if len(models) == 1 else "choice")
    deviations = [f"per outer fold, the run with the lowest pooled inner out-of-fold subject log-loss among "
                  f"{', '.join(names)} (ties: the earlier)"]
    deviations += [f"{n}: {d}" for n, e in zip(names, exps) for d in experiment_deviations(e)]
    config = {**configs[0], "experiment": exp.to_dict(), "model": exp.model,
              "versions": versions(), "deviations": deviations,
              "candidates_from": [{"run": str(r), "model": e.model, "recipe": e.recipe.to_dict() if e.model == "alsnet"
                                   else None, "deviations": experiment_deviations(e)} for r, e in zip(runs, exps)],
              "selection": "per outer fold, the run whose selection from pooled inner out-of-fold predictions reached "
                           "the lowest subject log-loss (alsnet.training.nested.choose_among)"}
    write_json(run_dir / "config.json", config)
    frames = []
    for fold in folds:
        sels = []
        for r in runs:
            f = r / fold / "selection.json"
            if not f.is_file():
                raise AlsnetError(f"no selection for {fold} (unfinished?)", r)
            sels.append(read_json(f))
        losses = [_chosen_loss(sel, r / fold / "selection.json") for sel, r in zip(sels, runs)]
        k = int(np.argmin(losses))   # first of ties
        od = run_dir / fold
        od.mkdir(parents=True, exist_ok=True)
        report = {**sels[k], "chosen_run": names[k], "run_losses": dict(zip(names, losses)),
                  "chosen_on": "pooled inner out-of-fold predictions of every run; outer test labels not read"}
        write_json(od / "selection.json", report)
        if on_all:
            src = runs[k] / fold / "model.safetensors"
            if models == ["alsnet"] and not src.is_file():
                raise AlsnetError("the chosen run has no ensemble model (unfinished?)", src)
            for ext in (".safetensors", ".json"):
                if (runs[k] / fold / f"model{ext}").is_file():
                    shutil.copyfile(runs[k] / fold / f"model{ext}", od / f"model{ext}")
            continue
        pred = read_csv(runs[k] / fold / "predictions.csv", need=("record", "subject", "y_true"))
        write_csv(od / "predictions.csv", pred)
        frames.append(pred)
    if on_all:
        return None
    pred = pd.concat(frames, ignore_index=True)
    write_csv(run_dir / "predictions.csv", pred)
    cost = sum(float(read_json(r / "metrics.json").get("inner_time_s") or 0.0) for r in runs)
    return finish(run_dir, exp, task, pred, folds, wall_s=time.perf_counter() - t0, inner_time_s=cost,
                  deviations=deviations)


__all__ = ["choose_among", "experiment_deviations", "load_inner", "read_config", "run_folds", "train_command",
           "NestedExperiment", "NESTED_MODELS", "EpochLogits", "run", "finish"]
