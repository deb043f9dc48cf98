"""Reading nested runs back: budget curves, result tables, per-subject tables, paired comparisons.

Everything here is computed from the committed files of a nested run folder
(:mod:`alsnet.training.nested`): each inner fold's ``epochs.npz`` and ``done.json``, each
outer fold's ``selection.json`` and ``predictions.csv``, the run's ``metrics.json``.
Unfinished folds are skipped and counted, never guessed.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from alsnet.errors import AlsnetError
from alsnet.evaluation.metrics import proba_columns
from alsnet.evaluation.selection import (
    subject_log_loss,
    subject_log_loss_of,
    subject_mean_log_loss,
    window_balanced_accuracy,
)
from alsnet.evaluation.stats import SubjectStatistic, drawn_names, mcnemar_exact, paired_bootstrap
from alsnet.model.outputs import probabilities
from alsnet.training.runs import epoch_seconds, read_csv, read_json, run_rules, run_task


def inner_curves(run_dir: str | Path, *, unfinished: bool = False) -> pd.DataFrame:
    """One row per (outer fold, inner fold, epoch) of every finished inner fold of an ALSNet run.

    Columns: ``outer, inner, epoch, steps, subject_log_loss, window_balanced_accuracy`` (each
    inner fold's own held-out subjects, probabilities at T = 1), ``crop`` (seconds or None),
    ``seconds`` (the epoch's wall time from the fold's ``history.csv``; NaN where that log
    lacks it) and ``finished``; with ``unfinished=True`` the epochs logged so far by inner
    trainings still running are included too (``finished`` False).
    """
    run = Path(run_dir)
    config = read_json(run / "config.json")
    recipe = config["experiment"]["recipe"]
    batch = int(recipe["batch_size"])
    subjects, y = _window_labels(run, config)
    rows = []
    for outer in config["split"]["folds_detail"]:
        for inner in outer["inner"]:
            d = run / outer["name"] / inner["name"]
            finished = (d / "done.json").is_file()
            if not (finished or (unfinished and (d / "epochs.npz").is_file())):
                continue
            with np.load(d / "epochs.npz") as z:
                val, idx = z["val_logits"].astype(np.float32), z["val_idx"]
            n_train = int(inner["n_train"])
            per_epoch = n_train // batch + (n_train % batch > 1)
            seconds = _epoch_seconds(d / "history.csv")
            for e in range(len(val)):
                p = probabilities(val[e])
                rows.append({"outer": outer["name"], "inner": inner["name"], "epoch": e, "finished": finished,
                             "steps": (e + 1) * per_epoch, "crop": recipe.get("train_crop"),
                             "seconds": seconds.get(e, np.nan),
                             "subject_log_loss": subject_log_loss(p, y[idx], subjects[idx]),
                             "window_balanced_accuracy": window_balanced_accuracy(p, y[idx])})
    return pd.DataFrame(rows)


def _epoch_seconds(path: Path) -> dict[int, float]:
    """Epoch → wall seconds from an inner fold's ``history.csv`` ({} where it is missing or
    damaged: the time column is a report's extra, never a reason to lose the curves)."""
    try:
        return epoch_seconds(path).to_dict()
    except AlsnetError:
        return {}


def common_inner_folds(curves: dict[str, pd.DataFrame]) -> set[tuple[str, str]]:
    """The (outer, inner) folds that every non-empty set of :func:`inner_curves` has finished:
    the held-out people on which a screen's runs can be compared like for like."""
    sets = [set(map(tuple, df.loc[df["finished"], ["outer", "inner"]].drop_duplicates().to_numpy()))
            for df in curves.values() if not df.empty]
    return set.intersection(*sets) if sets else set()


def _mean_curve(df: pd.DataFrame, folds: set[tuple[str, str]] | None = None) -> tuple[pd.DataFrame, int]:
    """The mean over inner folds at each epoch that all of them reached (only ``folds``, when
    given), and how many inner folds it averages."""
    if folds is not None:
        df = df[[(o, i) in folds for o, i in zip(df["outer"], df["inner"])]]
    n = df.groupby(["outer", "inner"]).ngroups
    m = df.groupby("epoch").agg(steps=("steps", "mean"), loss=("subject_log_loss", "mean"),
                                bacc=("window_balanced_accuracy", "mean"), k=("steps", "size"))
    return m[m["k"] == n], n


def screen_table(curves: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """One row per run of a screen (e.g. crop lengths), all read on the inner folds every run
    has finished (:func:`common_inner_folds`), so that each row rests on the same held-out
    people: the mean inner curve's lowest subject log-loss and where it comes (epoch, steps),
    its value after the first epoch and at the last epoch all folds reached, the best mean
    window balanced accuracy, and the cost (epochs trained, median seconds per epoch, hours).
    Each later row also gives how far its mean curves lie from the first row's, epoch by
    epoch over the epochs both reached: the mean difference and its range.
    """
    common = common_inner_folds(curves)
    rows = []
    ref = None
    for label, df in curves.items():
        if df.empty or not common:
            continue
        df = df[[(o, i) in common for o, i in zip(df["outer"], df["inner"])]]
        m, n = _mean_curve(df)
        ref = m if ref is None else ref
        best = m["loss"].idxmin()
        epochs = df.groupby(["outer", "inner"])["epoch"].max() + 1
        rows.append({
            "run": label, "inner folds": n,
            "lowest mean subject log-loss (epoch, steps)":
                f"{m.loc[best, 'loss']:.3f} ({int(best)}, {m.loc[best, 'steps']:,.0f})",
            "after epoch 0": f"{m['loss'].iloc[0]:.3f}",
            "at the last common epoch": f"{m['loss'].iloc[-1]:.3f} ({int(m.index[-1])})",
            "best mean window bal. acc. (epoch)": f"{m['bacc'].max():.3f} ({int(m['bacc'].idxmax())})",
            "log-loss − first row": "—" if m is ref else _curve_difference(m["loss"], ref["loss"]),
            "bal. acc. − first row": "—" if m is ref else _curve_difference(m["bacc"], ref["bacc"]),
            "epochs trained (mean)": f"{epochs.mean():.1f}",
            "s per epoch (median)": "n/a" if df["seconds"].isna().all() else f"{df['seconds'].median():.0f}",
            "hours of epochs": "n/a" if df["seconds"].isna().all() else f"{df['seconds'].sum() / 3600:.1f}",
        })
    return pd.DataFrame(rows)


def _curve_difference(curve: pd.Series, ref: pd.Series) -> str:
    """``curve − ref`` over the epochs both reached: "mean (min to max; epochs a–b)"."""
    d = (curve - ref).dropna()
    if d.empty:
        return "n/a"
    return f"{d.mean():+.3f} ({d.min():+.3f} to {d.max():+.3f}; epochs {int(d.index.min())}–{int(d.index.max())})"


def budget_table(curves: pd.DataFrame, val_subjects: dict[tuple[str, str], list[str]] | None = None,
                 label: str = "") -> pd.DataFrame:
    """One row per finished inner fold of :func:`inner_curves`: its epochs and steps, the best
    subject log-loss of its held-out subjects and the epoch it came at (the first, on a
    tie), the log-loss at its last epoch, and window balanced accuracy at its best over the
    epochs and at the end. ``val_subjects`` maps (outer, inner) to the fold's held-out subjects."""
    rows = []
    if curves.empty:  # inner_curves of a run with nothing finished: no columns either
        return pd.DataFrame(rows)
    for (outer, inner), g in curves[curves["finished"]].groupby(["outer", "inner"], sort=True):
        g = g.sort_values("epoch")
        best = g.loc[g["subject_log_loss"].idxmin()]
        last = g.iloc[-1]
        who = ", ".join((val_subjects or {}).get((outer, inner), []))
        rows.append({
            "inner fold": f"{label}{outer}/{inner}" + (f" ({who})" if who else ""),
            "epochs, steps": f"{len(g)}, {int(last['steps']):,}",
            "best subject log-loss (epoch)": f"{best['subject_log_loss']:.3f} ({int(best['epoch'])})",
            "at the end": f"{last['subject_log_loss']:.3f}",
            "window bal. acc. best / end": f"{g['window_balanced_accuracy'].max():.3f} / "
                                           f"{last['window_balanced_accuracy']:.3f}",
        })
    return pd.DataFrame(rows)


def held_out_subjects(run_dir: str | Path) -> dict[tuple[str, str], list[str]]:
    """(outer, inner) → that inner fold's held-out subjects, from the run's config."""
    config = read_json(Path(run_dir) / "config.json")
    return {(o["name"], i["name"]): list(i["val_subjects"])
            for o in config["split"]["folds_detail"] for i in o["inner"]}


def _window_labels(run: Path, config: dict) -> tuple[np.ndarray, np.ndarray]:
    """Subjects and class codes of the run's windows, in the run's window order."""
    from alsnet.data.dataset import load_windows

    ws = load_windows(config["data"], run_task(config, run / "config.json"),
                      invalid=config["experiment"].get("invalid", "drop"), read=config["experiment"].get("read"))
    if len(ws) != config["n_windows"]:
        raise AlsnetError(f"the data set now gives {len(ws)} windows, the run had {config['n_windows']}",
                          run / "config.json")
    return ws.subject, ws.y


def plot_budget(curves: dict[str, pd.DataFrame], path: str | Path, *, common: bool = False) -> Path:
    """Inner out-of-fold subject log-loss and window balanced accuracy against optimiser steps.

    ``curves`` maps a label (e.g. ``"crop 0.125 s"``) to :func:`inner_curves` of one run; each
    inner fold is a thin line, the mean over inner folds at each epoch a thick one. With
    ``common`` (a screen) every thick line averages only the inner folds all runs have
    finished (:func:`common_inner_folds`), so that the lines compare the same held-out people.
    """
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    from alsnet.files import atomic_path

    fig = Figure(figsize=(10, 4.6))
    axes = fig.subplots(1, 2)
    folds = common_inner_folds(curves) if common else None
    thin = dict(lw=0.6, alpha=0.3) if common else dict(lw=0.7, alpha=0.5, marker=".")
    for i, (label, df) in enumerate(curves.items()):
        if df.empty:
            continue
        colour = f"C{i}"
        for _, g in df.groupby(["outer", "inner"]):
            ls = "-" if g["finished"].all() else ":"   # dotted: a training still running
            axes[0].plot(g["steps"], g["subject_log_loss"], color=colour, ls=ls, **thin)
            axes[1].plot(g["steps"], g["window_balanced_accuracy"], color=colour, ls=ls, **thin)
        m, n = _mean_curve(df, folds)  # at the epochs every (common) inner fold reached
        if not n:
            continue
        axes[0].plot(m["steps"], m["loss"], color=colour, lw=2, label=label if common else f"{label} ({n} inner folds)")
        axes[1].plot(m["steps"], m["bacc"], color=colour, lw=2, label=label)
    axes[0].set(xlabel="optimiser steps (batch 48)", ylabel="subject-balanced log-loss",
                title="inner out-of-fold subjects: log-loss")
    axes[1].set(xlabel="optimiser steps (batch 48)", ylabel="window balanced accuracy",
                title="inner out-of-fold subjects: balanced accuracy")
    for ax in axes:
        ax.grid(alpha=0.3)
    handles, labels = axes[0].get_legend_handles_labels()
    if handles:  # below the panels, where long run labels do not squeeze them
        fig.legend(handles, labels, loc="lower center", ncol=2 if len(handles) > 1 else 1, fontsize=8, frameon=False)
    if common:
        fig.suptitle(f"thick: mean of the {len(folds)} inner folds every line finished; thin: single inner folds"
                     + ("; dotted: still training" if any((~df["finished"]).any() for df in curves.values()
                                                          if not df.empty) else ""), fontsize=9)
    rows = -(-len(handles) // 2) if handles else 0
    fig.tight_layout(rect=(0, 0.05 + 0.045 * rows, 1, 0.95 if common else 1))
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    return path


def summary_row(run_dir: str | Path) -> dict:
    """The numbers a results table shows for one finished nested run."""
    run = Path(run_dir)
    m = read_json(run / "metrics.json")
    sp = m["subject_proportions"]["all"]

    def ci(level: str, key: str) -> str:
        v, (lo, hi) = m[level][key], m[level]["ci"][key]
        return "n/a" if v is None else f"{100 * v:.1f} [{100 * lo:.1f}, {100 * hi:.1f}]"

    return {"run": run.name, "model": m["model"], "task": m["task"], "seed": m["seed"],
            "window bal. acc. (subject bootstrap)": ci("window", "balanced_accuracy"),
            "recording bal. acc.": ci("recording", "balanced_accuracy"),
            "subjects right (Wilson 95 %)": f"{sp['k']}/{sp['n']} [{100 * sp['wilson'][0]:.0f}, "
                                            f"{100 * sp['wilson'][1]:.0f}]",
            "subject AUC": "n/a" if m["subject"]["roc_auc"] is None else f"{100 * m['subject']['roc_auc']:.1f}",
            "subject log-loss": f"{_subject_ll(run):.3f}",
            "inner fits (h)": f"{_inner_hours(run, m):.2f}"}


def _inner_hours(run: Path, m: dict) -> float:
    """Hours the run's inner fits took, over every session it ran in (older metrics.json
    files lack ``inner_time_s``: it is summed from the folds then)."""
    from alsnet.training.nested import inner_seconds

    s = m.get("inner_time_s")
    if s is None:
        s = sum(inner_seconds(d.parent) for d in run.glob("*/inner-*/done.json"))
    return s / 3600


def _subject_ll(run: Path) -> float:
    config = read_json(run / "config.json")
    task = run_task(config, run / "config.json")
    pred = read_csv(run / "predictions.csv", ("subject", "y_true", *[f"p_{c}" for c in task.classes]))
    return _ll(pred, task)


def _subject_arrays(pred: pd.DataFrame, task) -> tuple:  # noqa: ANN001 - a Task
    """The probabilities, true labels and subjects of a predictions table, as the
    subject-level log-loss functions take them."""
    return pred[proba_columns(task)].to_numpy(), pred["y_true"].to_numpy(), pred["subject"].to_numpy()


def _ll(pred: pd.DataFrame, task) -> float:  # noqa: ANN001 - a Task
    return subject_log_loss(*_subject_arrays(pred, task))


class SubjectLogLoss(SubjectStatistic):
    """:func:`~alsnet.evaluation.selection.subject_log_loss` of a predictions table, and of a
    bootstrap replicate from each subject's mean window log-loss."""

    def __init__(self, task) -> None:  # noqa: ANN001 - a Task
        self.task = task

    def __call__(self, pred: pd.DataFrame) -> float:
        return _ll(pred, self.task)

    def summarise(self, pred: pd.DataFrame) -> dict:
        per = subject_mean_log_loss(*_subject_arrays(pred, self.task))
        return {s: (c, v) for (c, s), v in per.items()}

    def from_subjects(self, summary: dict, drawn: list) -> float:
        # keyed by the draws' names, so that the means are taken in the order the table's are
        return subject_log_loss_of({(summary[s][0], name): summary[s][1] for s, name in zip(drawn, drawn_names(drawn))})


class WindowBalancedAccuracy(SubjectStatistic):
    """Window balanced accuracy under a run's decision rules (one per outer fold), of a
    predictions table, and of a bootstrap replicate from each subject's count of windows
    decided right."""

    def __init__(self, task, rules) -> None:  # noqa: ANN001 - a Task and its rules
        self.task, self.rules = task, rules

    def _right(self, pred: pd.DataFrame) -> tuple[np.ndarray, pd.DataFrame]:
        from alsnet.evaluation.metrics import aggregate, decide_units

        units = aggregate(pred, "window", self.task)
        return decide_units(units, self.task, self.rules) == units["y_true"].to_numpy(), units

    def __call__(self, pred: pd.DataFrame) -> float:
        right, units = self._right(pred)
        y = units["y_true"].to_numpy()
        return float(np.mean([right[y == c].mean() for c in np.unique(y)]))

    def summarise(self, pred: pd.DataFrame) -> dict:
        right, units = self._right(pred)
        g = pd.DataFrame({"s": units["subject"].to_numpy(), "y": units["y_true"].to_numpy(), "r": right})
        return {s: (int(d["y"].iloc[0]), int(d["r"].sum()), len(d)) for s, d in g.groupby("s", sort=False)}

    def from_subjects(self, summary: dict, drawn: list) -> float:
        # a class's recall is its right windows over its windows, both counted exactly, as the table's mean is
        right, n = {}, {}
        for s in drawn:
            c, r, k = summary[s]
            right[c], n[c] = right.get(c, 0) + r, n.get(c, 0) + k
        return float(np.mean([np.float64(right[c]) / n[c] for c in sorted(n)]))


def configuration(run_dir: str | Path, ignore: tuple[str, ...] = ()) -> tuple[str, str]:
    """``(key, label)`` of a run's configuration: everything in its config but the training seed.

    Runs with the same key differ only in their seed (same task, model, recipe, reader
    options and outer/inner split), so their numbers are seeds of one configuration. The
    per-fold epoch budget (``budget_from``) is not part of it: the budget of seeds 1 and 2 is
    seed 0's chosen epoch + a margin, and seed 0, whose choices lie below that cap by
    construction, is the same procedure under it (docs/results.md, "The budget of seeds 1 and
    2"). ``ignore``: further experiment fields to leave out (e.g. ``outer``).
    """
    import json

    from alsnet.training.nested import NestedExperiment

    run = Path(run_dir)
    # through the experiment's own reader, so that a run written before a field existed
    # (it then has that field's default) keys like a run that records the default
    exp = NestedExperiment.from_dict(read_json(run / "config.json")["experiment"]).to_dict()
    if exp.get("choose_among"):  # a choice among runs: the configurations it chose among
        parts = [configuration(_constituent(run, c), ignore) for c in exp["choose_among"]]
        key = json.dumps({"choose_among": [k for k, _ in parts]})
        label = f"{exp.get('task')}, {exp.get('model')}, chosen per outer fold among: " + "; ".join(
            lab.split(", ", 2)[-1] for _, lab in parts)
        return key, label
    for k in ("seed", "out", "data", "on_fold_done", "only_outer", "trainer", "eval_backend", "budget_from",
              "budget_margin", *ignore):
        exp.pop(k, None)
    key = json.dumps(exp, sort_keys=True, default=str)
    r = exp.get("recipe") or {}
    parts = [str(exp.get("task")), str(exp.get("model"))]
    if exp.get("model") == "alsnet":
        parts.append(f"crop {r['train_crop']:g} s" if r.get("train_crop") else "whole windows")
        parts.append(f"<= {r.get('max_epochs')} epochs")
        for k in ("class_weight", "sampling", "augment"):
            if r.get(k):
                parts.append(f"{k.replace('_', ' ')} {r[k]}")
    return key, ", ".join(parts)


def _constituent(run: Path, path: str) -> Path:
    """A run a chosen run chose among: its recorded path, or a folder of that name beside it."""
    p = Path(path)
    if (p / "config.json").is_file():
        return p
    if (run.parent / p.name / "config.json").is_file():
        return run.parent / p.name
    raise AlsnetError(f"the run it chose among, {path}, is not here", run / "config.json")


def seed_summary(run_dirs: list[str | Path]) -> pd.DataFrame:
    """One row per configuration (see :func:`configuration`) of finished runs: each number's
    mean over the configuration's seeds and its range (min-max), and which seeds they are."""
    groups: dict[str, list[Path]] = {}
    labels: dict[str, str] = {}
    for r in run_dirs:
        key, label = configuration(r)
        groups.setdefault(key, []).append(Path(r))
        labels[key] = label
    rows = []
    for key, runs in groups.items():
        ms = [read_json(run / "metrics.json") for run in runs]
        values = {
            "window bal. acc.": [100 * m["window"]["balanced_accuracy"] for m in ms],
            "recording bal. acc.": [100 * m["recording"]["balanced_accuracy"] for m in ms],
            "subjects right": [m["subject_proportions"]["all"]["k"] for m in ms],
            "subject AUC": [np.nan if m["subject"]["roc_auc"] is None else 100 * m["subject"]["roc_auc"]
                            for m in ms],
            "subject log-loss": [_subject_ll(run) for run in runs],
        }
        n_subj = {m["subject_proportions"]["all"]["n"] for m in ms}
        row = {"configuration": labels[key], "seeds": ", ".join(str(m["seed"]) for m in ms), "n seeds": len(ms),
               "subjects": "/".join(str(n) for n in sorted(n_subj))}
        for name, v in values.items():
            a = np.asarray(v, dtype=float)
            fmt = "{:.3f}" if name == "subject log-loss" else "{:.1f}"
            ends = "{:.0f}" if name == "subjects right" else fmt
            row[name] = (f"{fmt.format(np.mean(a))} ({ends.format(np.min(a))}-{ends.format(np.max(a))})"
                         if len(a) > 1 else ends.format(a[0]))
            row[f"_{name}"] = a   # the per-seed values, for callers (not printed)
        rows.append(row)
    return pd.DataFrame(rows)


def per_subject_table(run_dirs: list[str | Path]) -> pd.DataFrame:
    """Each subject's mean probability of its own class under each run (e.g. each seed)."""
    cols = {}
    for r in run_dirs:
        run = Path(r)
        config = read_json(run / "config.json")
        task = run_task(config, run / "config.json")
        pred = read_csv(run / "predictions.csv", ("record", "subject", "y_true"))
        rec = pred.groupby("record").agg(subject=("subject", "first"), y=("y_true", "first"),
                                         **{c: (f"p_{c}", "mean") for c in task.classes})
        sub = rec.groupby("subject").agg(y=("y", "first"), **{c: (c, "mean") for c in task.classes})
        own = np.asarray(task.classes)[sub["y"].to_numpy(dtype=int)]
        cols[run.name] = pd.Series([sub.at[s, c] for s, c in zip(sub.index, own)], index=sub.index)
    return pd.DataFrame(cols)


def paired_comparison(run_a: str | Path, run_b: str | Path, *, n_boot: int = 2000, seed: int = 0) -> dict:
    """ALSNet (``run_a``) against a baseline (``run_b``) on the same outer folds and windows.

    Paired subject bootstrap of the difference in subject-balanced log-loss and in window
    balanced accuracy (A − B), and the exact McNemar test on the subject decisions.
    """
    from alsnet.evaluation.metrics import aggregate, decide_units

    runs = [Path(run_a), Path(run_b)]
    preds, rules, task = [], [], None
    for run in runs:
        config = read_json(run / "config.json")
        task = run_task(config, run / "config.json")
        pred = read_csv(run / "predictions.csv", ("record", "subject", "window", "y_true", "fold"))
        preds.append(pred.sort_values(["record", "window"]).reset_index(drop=True))
        rules.append(run_rules(run, config, folds=[f["name"] for f in config["split"]["folds_detail"]]))
    a, b = preds
    if not (a[["record", "window", "fold"]].equals(b[["record", "window", "fold"]])):
        raise AlsnetError(f"{runs[0]} and {runs[1]} are not scored on the same windows and folds")

    ll = paired_bootstrap(a, b, SubjectLogLoss(task), n_boot=n_boot, seed=seed)
    ba = paired_bootstrap(a, b, WindowBalancedAccuracy(task, rules[0]),
                          statistic_b=WindowBalancedAccuracy(task, rules[1]), n_boot=n_boot, seed=seed)
    right = []
    for pred, rule in zip(preds, rules):
        units = aggregate(pred, "subject", task)
        right.append(pd.Series(decide_units(units, task, rule) == units["y_true"].to_numpy(),
                               index=units["subject"]))
    mc = mcnemar_exact(right[0].to_numpy(), right[1].reindex(right[0].index).to_numpy())
    return {"a": runs[0].name, "b": runs[1].name, "subject_log_loss_difference": ll,
            "window_balanced_accuracy_difference": ba, "mcnemar_subjects": mc}


__all__ = ["budget_table", "configuration", "held_out_subjects", "inner_curves", "paired_comparison",
           "per_subject_table", "plot_budget", "seed_summary", "summary_row"]
