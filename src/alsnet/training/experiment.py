"""An experiment: data → folds → a model per fold → one predictions table → metrics and figures.

This is the one evaluation path that ALSNet and the classical baselines share. A run can be
resumed: finished folds are kept, the fold in progress restarts from its last epoch
checkpoint, and the batches it sees are the ones an uninterrupted run would have seen.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from alsnet.data.dataset import WindowSet, load_windows
from alsnet.data.labels import Task, get_task
from alsnet.data.windows import window_settings
from alsnet.errors import AlsnetError
from alsnet.training.fold import MODELS, train_alsnet_fold, train_baseline_fold
from alsnet.training.recipe import RunConfig
from alsnet.training.runs import is_rank_zero, join_run_dir, prepare_run_dir, read_json, versions, write_csv, write_json
from alsnet.training.splits import describe, make_folds, protocol_label


@dataclass
class Experiment(RunConfig):
    """Everything that defines a run; saved as ``config.json``."""

    protocol: str = "paper"
    folds: int = 5
    overlap: float = 0.0
    jobs: int = 1
    only_folds: list[str] | None = None


def _backend(exp: Experiment) -> dict:
    """What computes this run's training steps and evaluation (kernels and their build)."""
    from alsnet.engine.backends import describe as describe_backend

    return describe_backend(exp.eval_backend, exp.recipe.fast)


def _say(msg: str) -> None:
    if is_rank_zero():
        print(msg, file=sys.stderr, flush=True)


def run(exp: Experiment, *, force: bool = False, resume: bool = False, progress: bool = True,
        merge: bool = False) -> dict | None:
    """Run an experiment; returns the metrics (None on non-zero DDP ranks and for ``--fold`` jobs).

    With ``exp.only_folds`` (``alsnet train --fold NAME``, one job of a cluster array) only
    those folds are trained, into a run folder shared with the other jobs; ``merge=True``
    (``alsnet train --merge RUN_DIR``) trains nothing and computes the metrics once every
    fold's predictions are there.
    """
    joined = False
    if exp.only_folds and not resume and not merge and not force:
        run_dir, joined = join_run_dir(exp.out, exp.to_dict(), ("only_folds", "jobs", "out"))
    else:
        run_dir = prepare_run_dir(exp.out, force=force, resume=resume or merge)
    if resume or merge:
        # everything but the folder comes from the run's own config (task, protocol, recipe, ...)
        exp = Experiment.from_dict(read_json(run_dir / "config.json")["experiment"])
    if exp.model not in MODELS:
        raise AlsnetError(f"unknown model {exp.model!r}; choose from {', '.join(MODELS)}")
    task = get_task(exp.task)
    t0 = time.perf_counter()
    ws = load_windows(exp.data, task, overlap=exp.overlap, invalid=exp.invalid, read=exp.read, progress=progress)
    for p in ws.problems or []:
        _say(f"alsnet train: warning: {p.path}: {p.message}" if p.path else f"alsnet train: warning: {p.message}")
    all_folds = make_folds(exp.protocol, ws.y, ws.subject, seed=exp.seed, folds=exp.folds)
    folds = all_folds
    if exp.only_folds:
        folds = [f for f in all_folds if f.name in exp.only_folds]
        if not folds:
            raise AlsnetError(f"--fold matched none of the folds of protocol {exp.protocol!r} "
                              f"({', '.join(f.name for f in all_folds)})")
    split = describe(exp.protocol, seed=exp.seed, folds=exp.folds)
    split["folds_detail"] = [{"name": f.name, "n_train": len(f.train), "n_val": len(f.val),
                              "n_test": len(f.test),
                              "test_subjects": sorted(set(ws.subject[f.test])),
                              "val_subjects": sorted(set(ws.subject[f.val]))} for f in all_folds]
    config = {"experiment": {**exp.to_dict(), "only_folds": None}, "task": task.to_dict(), "model": exp.model,
              "split": split, "window": window_settings(), "seed": exp.seed, "data": exp.data,
              "n_windows": len(ws), "n_windows_dropped": ws.n_dropped,
              "windows_per_class": {c: int((ws.y == k).sum()) for k, c in enumerate(task.classes)},
              "subjects": sorted(set(ws.subject)), "deviations": exp.recipe.deviations()
              if exp.model == "alsnet" else [], "versions": versions(),
              "backend": _backend(exp) if exp.model == "alsnet" else None}
    if is_rank_zero() and not (resume or merge or joined):
        write_json(run_dir / "config.json", config)
    if merge:
        missing = [f.name for f in all_folds if not (run_dir / "folds" / f.name / "predictions.csv").is_file()]
        if missing:
            raise AlsnetError(f"cannot merge: {len(missing)} of {len(all_folds)} folds unfinished "
                              f"({', '.join(missing)})", run_dir)
        folds = []
    _say(f"{len(ws)} windows ({ws.n_dropped} dropped for invalid samples) from "
         f"{len(set(ws.record))} recordings of {len(set(ws.subject))} subjects; "
         f"{len(folds)} fold(s), protocol {exp.protocol}: {protocol_label(exp.protocol)}")
    frames = _run_folds(exp, ws, all_folds, folds, task, run_dir, progress)
    if exp.only_folds and not merge:
        _say(f"fold(s) {', '.join(f.name for f in folds)} done in {run_dir}; when every fold is done: "
             f"alsnet train --merge {run_dir}")
        return None
    if not is_rank_zero() or frames is None:
        return None
    return finish(run_dir, exp, task, frames, wall_s=time.perf_counter() - t0)


def _fold_seed(exp: Experiment, k: int) -> int:
    return exp.seed * 1000 + k


def _run_folds(exp, ws: WindowSet, all_folds, selected, task, run_dir: Path, progress: bool):
    """Train the selected folds not yet done; the predictions of every fold, or None if some are missing.

    A fold's seed is its position among *all* folds, so a fold trained alone (a cluster job)
    is the fold an uninterrupted run trains.
    """
    folds = all_folds
    names = {f.name for f in selected}
    done = {f.name for f in folds if (run_dir / "folds" / f.name / "predictions.csv").is_file()}
    todo = [(k, f) for k, f in enumerate(folds) if f.name in names and f.name not in done]
    if exp.jobs > 1 and len(todo) > 1 and exp.model == "alsnet":
        _run_parallel(exp, todo, run_dir)
    else:
        features = None
        if exp.model != "alsnet" and todo:
            from alsnet.data.windows import MODEL_FS
            from alsnet.evaluation.features import window_features

            _say("computing hand-crafted window features")
            features = window_features(ws.x, MODEL_FS)
        for k, f in todo:
            _say(f"[{k + 1}/{len(folds)}] fold {f.name}: {len(f.train)} train, {len(f.val)} val, "
                 f"{len(f.test)} test windows")
            _run_one(exp, ws, f, k, task, run_dir, progress, features)
    if not is_rank_zero():
        return None
    paths = [run_dir / "folds" / f.name / "predictions.csv" for f in folds]
    if not all(p.is_file() for p in paths):
        return None
    return [pd.read_csv(p, dtype={"fold": str, "subject": str}) for p in paths]


def _run_one(exp, ws, fold, k, task, run_dir: Path, progress: bool, features=None) -> None:
    fold_dir = run_dir / "folds" / fold.name
    fold_dir.mkdir(parents=True, exist_ok=True)
    if exp.model == "alsnet":
        card = {"protocol": exp.protocol, "split": describe(exp.protocol, seed=exp.seed, folds=exp.folds),
                "fold": fold.name, "training_data": exp.data, "recipe": exp.recipe.to_dict(),
                "deviations": exp.recipe.deviations(), "seed": _fold_seed(exp, k)}
        pred = train_alsnet_fold(ws, fold, task, exp.recipe, fold_dir, seed=_fold_seed(exp, k),
                                 trainer_kw=dict(exp.trainer), progress=progress,
                                 eval_backend=exp.eval_backend, card=card)
    else:
        pred = train_baseline_fold(ws, fold, task, exp.model, seed=_fold_seed(exp, k), features=features)
    if pred is not None and is_rank_zero():
        write_csv(fold_dir / "predictions.csv", pred)


def _parallel_worker(exp_dict: dict, k: int, threads: int) -> str:
    import torch

    torch.set_num_threads(threads)
    exp = Experiment.from_dict(exp_dict)
    task = get_task(exp.task)
    ws = load_windows(exp.data, task, overlap=exp.overlap, invalid=exp.invalid, read=exp.read)
    folds = make_folds(exp.protocol, ws.y, ws.subject, seed=exp.seed, folds=exp.folds)
    _run_one(exp, ws, folds[k], k, task, Path(exp.out), progress=False)
    return folds[k].name


def _run_parallel(exp: Experiment, todo, run_dir: Path) -> None:
    """Folds in separate processes (one thread each by default); windows reloaded per process."""
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor, as_completed

    from tqdm.auto import tqdm

    from alsnet.training.fold import default_threads

    threads = default_threads(exp.jobs)
    all_folds = make_folds(exp.protocol, *_labels_groups(exp), seed=exp.seed, folds=exp.folds)
    index = {f.name: i for i, f in enumerate(all_folds)}
    with ProcessPoolExecutor(max_workers=exp.jobs, mp_context=mp.get_context("spawn")) as pool:
        futs = [pool.submit(_parallel_worker, exp.to_dict(), index[f.name], threads) for _, f in todo]
        for fut in tqdm(as_completed(futs), total=len(futs), desc="folds", unit="fold"):
            _say(f"fold {fut.result()} done")


def _labels_groups(exp: Experiment):
    ws = load_windows(exp.data, get_task(exp.task), overlap=exp.overlap, invalid=exp.invalid)
    return ws.y, ws.subject


def finish(run_dir: Path, exp: Experiment, task: Task, frames: list[pd.DataFrame], *, wall_s: float) -> dict:
    """Concatenate fold predictions and histories; write metrics.json (figures: :mod:`alsnet.reporting`)."""
    from alsnet.evaluation.metrics import evaluate

    pred = pd.concat(frames, ignore_index=True)
    write_csv(run_dir / "predictions.csv", pred)
    hist = [pd.read_csv(p) for p in sorted((run_dir / "folds").glob("*/history.csv"))]
    if hist:
        write_csv(run_dir / "history.csv", pd.concat(hist, ignore_index=True))
    metrics = evaluate(pred, task, n_boot=exp.n_boot, seed=exp.seed)
    metrics.update({"task": task.name, "model": exp.model, "protocol": exp.protocol,
                    "protocol_label": protocol_label(exp.protocol),
                    "shares_recordings_between_train_and_test": exp.protocol == "paper",
                    "deviations": exp.recipe.deviations() if exp.model == "alsnet" else [],
                    "window_settings": window_settings(), "seed": exp.seed,
                    "wall_time_s": round(wall_s, 1)})
    write_json(run_dir / "metrics.json", metrics)
    single = run_dir / "folds" / frames[0]["fold"].iloc[0] / "model.safetensors"
    if len(frames) == 1 and single.is_file():
        import shutil

        for suf in (".safetensors", ".json"):
            shutil.copyfile(single.with_suffix(suf), run_dir / f"model{suf}")
    return metrics
