"""Run folders: what every training or evaluation run writes, and how it is written.

``RUN_DIR/`` holds ``config.json`` (window, rate, labels, split, seed, recipe, versions),
``history.csv`` (per-epoch log), ``predictions.csv`` (one row per test window),
``metrics.json``, ``figures/``, the weights (``model.safetensors`` + ``model.json`` card,
or one pair per fold under ``folds/NAME/``). Files are written to a temporary name and
renamed, so a killed run never leaves half a file; an existing run is never overwritten
without ``force``.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from alsnet.data.labels import Task, get_task
from alsnet.errors import AlsnetError
from alsnet.evaluation.calibration import apply_temperature
from alsnet.evaluation.decision import DecisionRule
from alsnet.evaluation.metrics import LEVELS, proba_columns
from alsnet.files import atomic_write_text


def is_rank_zero() -> bool:
    """False in the extra processes that Lightning's DDP launcher starts."""
    return os.environ.get("LOCAL_RANK", "0") == "0" and os.environ.get("NODE_RANK", "0") == "0" \
        and os.environ.get("RANK", "0") == "0"


def code_commit() -> str | None:
    """The git commit of the alsnet code that runs (``"-dirty"`` appended when its files differ
    from it), or ``None`` outside a git checkout (an installed wheel)."""
    import subprocess

    src = Path(__file__).resolve().parents[1]
    try:
        head = subprocess.run(["git", "-C", str(src), "rev-parse", "--short=12", "HEAD"], capture_output=True,
                              text=True, timeout=10)
        if head.returncode != 0:
            return None
        dirty = subprocess.run(["git", "-C", str(src), "status", "--porcelain", "--untracked-files=no", "--", "."],
                               capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return head.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")


def versions() -> dict:
    import lightning
    import scipy
    import sklearn
    import torch

    from alsnet import __version__

    return {"alsnet": __version__, "alsnet_commit": code_commit(), "python": sys.version.split()[0],
            "torch": torch.__version__,
            "lightning": lightning.__version__, "numpy": np.__version__, "scipy": scipy.__version__,
            "scikit-learn": sklearn.__version__, "platform": platform.platform(),
            "cpu": platform.processor() or platform.machine(), "cpu_count": os.cpu_count()}


def prepare_run_dir(path: str | os.PathLike, *, force: bool = False, resume: bool = False) -> Path:
    """Create ``path`` for a new run; refuse to overwrite an existing one without ``force``."""
    run = Path(path)
    if resume:
        if not (run / "config.json").is_file():
            raise AlsnetError("nothing to resume: no config.json", run)
        return run
    if run.exists() and any(run.iterdir()) and is_rank_zero():
        if not force:
            raise AlsnetError("run folder exists and is not empty; use --force to overwrite "
                              "or --resume to continue it", run)
        shutil.rmtree(run)
    run.mkdir(parents=True, exist_ok=True)
    return run


def join_run_dir(path: str | os.PathLike, experiment: dict, job_keys: tuple[str, ...]) -> tuple[Path, bool]:
    """The run folder of one job of a cluster array: ``(folder, joined)``.

    Created when absent; joined (``True``) when its ``config.json`` holds the same experiment,
    ignoring ``job_keys`` (each job's own fold, processes, folder). A folder holding another
    experiment, or a non-empty one without ``config.json``, is refused with one line.
    """
    run = Path(path)
    cfg = run / "config.json"
    if cfg.is_file():
        theirs = read_json(cfg).get("experiment", {})
        differ = sorted(k for k in set(theirs) | set(experiment)
                        if k not in job_keys and theirs.get(k) != experiment.get(k))
        if differ:
            raise AlsnetError(f"holds another experiment (differs in {', '.join(differ)}); a job joins only "
                              f"a run of the same experiment", run)
        return run, True
    if run.exists() and any(run.iterdir()):
        # another job of the array may be writing config.json right now: wait for it briefly
        import time

        for _ in range(50):
            if cfg.is_file():
                return join_run_dir(path, experiment, job_keys)
            time.sleep(0.1)
        raise AlsnetError("run folder exists, is not empty and has no config.json", run)
    run.mkdir(parents=True, exist_ok=True)
    return run, False


def _default(o):
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return None if not np.isfinite(o) else float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def _clean(o):
    """NaN and inf become null: JSON has no NaN, and 'undefined' is what they mean here."""
    if isinstance(o, float) and not np.isfinite(o):
        return None
    if isinstance(o, dict):
        return {k: _clean(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_clean(v) for v in o]
    if isinstance(o, np.ndarray):
        return _clean(o.tolist())
    if isinstance(o, np.floating):
        return _clean(float(o))
    return o


def write_json(path: str | os.PathLike, obj: object) -> None:
    text = json.dumps(_clean(obj), indent=2, default=_default, allow_nan=False)
    atomic_write_text(path, text + "\n")


def write_csv(path: str | os.PathLike, df: pd.DataFrame) -> None:
    atomic_write_text(path, df.to_csv(index=False))


# --------------------------------------------------------------------------- run folders

def read_json(path: str | os.PathLike) -> dict:
    """A JSON object from a run folder; a missing, unreadable or non-object file is one AlsnetError."""
    path = Path(path)
    try:
        with path.open(encoding="utf-8") as fh:
            d = json.load(fh)
    except FileNotFoundError:
        raise AlsnetError("missing (not a run folder?)", path) from None
    except (OSError, ValueError) as e:
        raise AlsnetError(f"cannot read JSON: {e}", path) from None
    if not isinstance(d, dict):
        raise AlsnetError("expected a JSON object", path)
    return d


def read_csv(path: str | os.PathLike, need: tuple[str, ...] = ()) -> pd.DataFrame:
    """A table from a run folder with at least the columns ``need``; problems are one AlsnetError."""
    path = Path(path)
    if not path.is_file():
        raise AlsnetError("missing (not a run folder?)", path)
    try:
        df = pd.read_csv(path, dtype={c: str for c in ("record", "subject", "fold", "label")})
    except (OSError, ValueError) as e:
        raise AlsnetError(f"cannot read CSV: {e}".splitlines()[0], path) from None
    missing = [c for c in need if c not in df.columns]
    if missing:
        raise AlsnetError(f"lacks column(s) {', '.join(missing)}", path)
    return df


def epoch_seconds(path: str | os.PathLike) -> pd.Series:
    """Each epoch's wall seconds from a fold's ``history.csv``, indexed by its ``epoch`` column
    (by row where the log has none); a missing, unreadable or non-numeric log is one AlsnetError."""
    h = read_csv(path, need=("seconds",))
    try:
        sec = pd.to_numeric(h["seconds"], errors="raise").astype(float)
        if "epoch" in h.columns:
            sec.index = pd.to_numeric(h["epoch"], errors="raise").astype(int)
    except (ValueError, TypeError) as e:
        raise AlsnetError(f"a non-numeric epoch or seconds entry ({e})".splitlines()[0], path) from None
    return sec


def run_task(config: dict, path: Path) -> Task:
    """The :class:`Task` recorded in a run's ``config.json``."""
    try:
        t = config["task"]
        if isinstance(t, str):
            return get_task(t)
        return Task(t["name"], tuple(t["classes"]), {k: tuple(v) for k, v in t["members"].items()})
    except (KeyError, TypeError, AttributeError) as e:
        raise AlsnetError(f"no usable 'task' entry ({e})", path) from None


def load_run(run_dir: str | os.PathLike) -> dict:
    """Read a run folder: ``{"dir", "config", "metrics", "task", "predictions", "history", "calibration",
    "rules"}``.

    Missing or unreadable files raise :class:`AlsnetError` naming the file; ``history``
    and ``calibration`` are ``None`` when absent, ``rules`` (:func:`run_rules`) for a run
    decided by the default rule.
    """
    d = Path(run_dir)
    if not d.is_dir():
        raise AlsnetError("not a folder", d)
    config = read_json(d / "config.json")
    task = run_task(config, d / "config.json")
    metrics = read_json(d / "metrics.json")
    for lv in LEVELS:
        if not isinstance(metrics.get(lv), dict):
            raise AlsnetError(f"no {lv!r} metrics", d / "metrics.json")
    pred = read_csv(d / "predictions.csv", ("record", "subject", "y_true", *proba_columns(task)))
    hist = d / "history.csv"
    history = read_csv(hist, ("fold", "epoch", "train_loss", "val_loss")) if hist.is_file() else None
    cal = d / "calibration.json"
    calibration = read_json(cal) if cal.is_file() else _fold_calibration(d)
    return {"dir": d, "config": config, "metrics": metrics, "task": task, "predictions": pred,
            "history": history, "calibration": calibration, "rules": run_rules(d, config)}


def run_rules(run_dir: str | os.PathLike, config: dict | None = None,
              folds: list[str] | None = None) -> dict[str, DecisionRule] | None:
    """The decision rule each outer fold of a nested run decides by, keyed like ``predictions.csv``'s
    ``fold`` column: ``RUN/FOLD/selection.json``'s ``decision_rule``, for the folds ``folds`` or
    else those in the config's split. ``None`` for a run without them (the plain protocols decide
    by the default rule), so that every reader of a run decides as its ``metrics.json`` did."""
    d = Path(run_dir)
    if folds is None:
        config = read_json(d / "config.json") if config is None else config
        detail = (config.get("split") or {}).get("folds_detail") or []
        folds = [f["name"] for f in detail if isinstance(f, dict) and isinstance(f.get("name"), str)]
        if not any((d / name / "selection.json").is_file() for name in folds):
            return None
    rules = {}
    for name in folds:
        sel = read_json(d / name / "selection.json")
        try:
            rules[name] = DecisionRule.from_dict(sel.get("decision_rule"))
        except (AttributeError, TypeError, ValueError) as e:
            raise AlsnetError(f"not a decision rule ({type(e).__name__}: {e})", d / name / "selection.json") from None
    return rules


def _fold_calibration(d: Path) -> dict | None:
    """Test logits of every fold before and after its own temperature, pooled."""
    files = sorted(d.glob("folds/*/calibration.npz"))
    if not files:
        return None
    before, after, ys = [], [], []
    for f in files:
        try:
            with np.load(f) as z:
                logits, y, t = z["test_logits"], z["test_y"], float(z["temperature"])
        except (OSError, KeyError, ValueError) as e:
            raise AlsnetError(f"cannot read calibration arrays ({e})", f) from None
        if not len(y):
            continue
        before.append(apply_temperature(logits, 1.0))
        after.append(apply_temperature(logits, t))
        ys.append(y)
    if not ys:
        return None
    return {"proba_before": np.concatenate(before), "proba_after": np.concatenate(after),
            "y": np.concatenate(ys), "source": "test windows; each fold's T fitted on its validation windows"}


def protocol_title(config: dict) -> str:
    """The protocol's label when it is leaky (shares recordings), else the protocol name."""
    split = config.get("split") or {}
    if split.get("shares_recordings_between_train_and_test"):
        return str(split.get("label") or "segment-level split (recordings shared between train and test)")
    return f"protocol: {split['protocol']}" if split.get("protocol") else ""


def calibration_proba(cal: dict, path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(proba_before, proba_after, y) from a ``calibration.json`` object (see module docstring)."""
    try:
        y = np.asarray(cal["y"], dtype=np.int64)
        if "proba_before" in cal:
            return np.asarray(cal["proba_before"], float), np.asarray(cal["proba_after"], float), y
        if "logits_before" in cal:
            return (apply_temperature(cal["logits_before"], 1.0),
                    apply_temperature(cal["logits_after"], 1.0), y)
        z = cal["logits"]
        return apply_temperature(z, 1.0), apply_temperature(z, float(cal["temperature"])), y
    except (KeyError, TypeError, ValueError) as e:
        raise AlsnetError(f"needs y and proba_before/after, logits_before/after or logits+temperature ({e})",
                          path) from None
