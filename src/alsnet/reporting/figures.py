"""Figures of a run: confusion matrices, ROC, per-subject strip, learning curves, reliability.

Matplotlib is used through :class:`matplotlib.figure.Figure` only (the Agg renderer, no
pyplot, no GUI), so figures can be drawn from any thread or a headless machine.

A run folder holds ``config.json``, ``metrics.json``, ``predictions.csv`` and optionally
``history.csv`` (columns ``fold, epoch, train_loss, val_loss, val_accuracy, lr``) and
``calibration.json``. The latter, when present, is one JSON object with ``y`` (integer
class codes of the calibration windows) and either

* ``proba_before`` and ``proba_after``: ``(n, n_classes)`` probabilities, or
* ``logits`` (``(n,)`` binary or ``(n, k)``) and ``temperature`` (the fitted T; before is
  T = 1), or
* ``logits_before`` and ``logits_after``;

and optionally ``source``, a few words on which windows these are (shown in the title).
Without ``calibration.json``, the per-fold ``folds/*/calibration.npz`` files that training
writes (``test_logits``, ``test_y``, ``temperature``) are pooled instead: the reliability
diagram then shows the test windows before and after each fold's temperature.

Titles carry the protocol's honesty label when the split shares recordings between train
and test (``config["split"]["shares_recordings_between_train_and_test"]``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from sklearn.metrics import roc_auc_score, roc_curve

from alsnet.data.labels import Task
from alsnet.errors import AlsnetError
from alsnet.evaluation.calibration import expected_calibration_error, reliability_curve
from alsnet.evaluation.decision import DEFAULT_RULE
from alsnet.evaluation.metrics import LEVELS, Rules, aggregate, decide_units, proba_columns
from alsnet.files import PathLike, atomic_path
from alsnet.training.runs import calibration_proba, load_run, protocol_title

DPI = 100
COLOURS = {"normal": "#1f77b4", "als": "#d62728", "myopathy": "#2ca02c", "rest": "#7f7f7f"}
LEVEL_STYLE = {"window": ":", "recording": "--", "subject": "-"}


def _save(fig: Figure, path: Path) -> Path:
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=DPI, bbox_inches="tight", format=path.suffix.lstrip(".") or "png")
    return path


def _colour(name: str, i: int) -> str:
    return COLOURS.get(name, f"C{i % 10}")


def plot_confusion(cm: np.ndarray | list, classes: tuple[str, ...] | list[str], title: str, path: PathLike) -> Path:
    """Confusion matrix (rows true, columns predicted) with counts and row percentages."""
    cm = np.asarray(cm, dtype=float)
    fig = Figure(figsize=(1.6 + 1.1 * len(classes), 1.2 + 1.0 * len(classes)), layout="constrained")
    ax = fig.add_subplot()
    rows = cm.sum(1, keepdims=True)
    frac = np.divide(cm, rows, out=np.zeros_like(cm), where=rows > 0)
    ax.imshow(frac, cmap="Blues", vmin=0, vmax=1)
    for i in range(cm.shape[0]):
        for j in range(cm.shape[1]):
            ax.text(j, i, f"{int(cm[i, j])}\n{100 * frac[i, j]:.0f}%", ha="center", va="center",
                    color="white" if frac[i, j] > 0.6 else "black", fontsize=9)
    ax.set_xticks(range(len(classes)), classes)
    ax.set_yticks(range(len(classes)), classes)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title, fontsize=9)
    return _save(fig, path)


def plot_roc(pred: pd.DataFrame, task: Task, path: PathLike, level: str = "window", title: str = "") -> Path:
    """ROC curves.

    Binary task: one curve of P(positive) per level (``level="all"``) or for one level.
    Multi-class: one-vs-rest curve per class, one panel per level.
    """
    levels = LEVELS if level == "all" else (level,)
    if any(lv not in LEVELS for lv in levels):
        raise AlsnetError(f"unknown level {level!r}; choose from {', '.join(LEVELS)} or all")
    panels = [None] if task.binary else levels
    fig = Figure(figsize=(4.2 * len(panels), 4.0), layout="constrained")
    for k, panel in enumerate(panels):
        ax = fig.add_subplot(1, len(panels), k + 1)
        ax.plot([0, 1], [0, 1], color="0.7", lw=0.8)
        for lv in (levels if task.binary else (panel,)):
            u = aggregate(pred, lv, task)
            y = u["y_true"].to_numpy()
            classes = [1] if task.binary else range(len(task.classes))
            for c in classes:
                pos = y == c
                if pos.all() or not pos.any():
                    continue  # ROC undefined with one class
                score = u[f"p_{task.classes[c]}"]
                fpr, tpr, _ = roc_curve(pos, score)
                auc = roc_auc_score(pos, score)
                if task.binary:
                    ax.plot(fpr, tpr, LEVEL_STYLE[lv], color=f"C{LEVELS.index(lv)}",
                            label=f"{lv}: AUC {auc:.3f} (n={len(y)})")
                else:
                    ax.plot(fpr, tpr, color=_colour(task.classes[c], c),
                            label=f"{task.classes[c]} vs rest: AUC {auc:.3f} (n={int(pos.sum())})")
        ax.set_xlabel("1 - specificity" if task.binary else "false-positive rate")
        ax.set_ylabel("sensitivity" if task.binary else "true-positive rate")
        ax.set_title(f"{title}\n{panel} level" if panel else title, fontsize=9)
        ax.set_aspect("equal")
        ax.legend(fontsize=8, loc="lower right")
    return _save(fig, path)


def plot_subject_strip(pred: pd.DataFrame, task: Task, path: PathLike, title: str = "",
                       rules: Rules = None) -> Path:
    """One point per recording, grouped by subject, coloured by true class.

    The y value is the recording's mean P(positive) for a binary task, or the mean
    probability of its true class for a multi-class task. ``rules`` is the run's decision
    rule (one :class:`~alsnet.evaluation.decision.DecisionRule`, or one per ``fold`` as
    :func:`~alsnet.training.runs.run_rules` gives; ``None``: the default rule), so the figure
    shows what the run's metrics counted:

    - binary: a black tick at each subject's decision threshold on P(positive), that of the
      subject's own fold (the dashed line at 0.5 where every fold has the default rule);
    - multi-class: recordings the rule decides wrongly drawn as crosses (their true class's
      probability alone does not say, as the decision compares every class), and the dashed
      line at chance, 1/K.
    """
    rec = aggregate(pred, "recording", task)
    wrong = decide_units(rec, task, rules) != rec["y_true"].to_numpy(dtype=int)
    if task.binary:
        rec["value"] = rec[f"p_{task.positive}"]
        ylabel = f"recording mean P({task.positive})"
    else:
        p = rec[proba_columns(task)].to_numpy()
        rec["value"] = p[np.arange(len(rec)), rec["y_true"].to_numpy(dtype=int)]
        ylabel = "recording mean P(true class)"
    order = (rec.groupby("subject")["y_true"].first().reset_index()
             .sort_values(["y_true", "subject"])["subject"].tolist())
    xpos = {s: i for i, s in enumerate(order)}
    fig = Figure(figsize=(max(5.0, 0.35 * len(order) + 2), 3.8), layout="constrained")
    ax = fig.add_subplot()
    rng = np.random.default_rng(0)
    for i, name in enumerate(task.classes):
        m = (rec["y_true"] == i).to_numpy()
        if not m.any():
            continue
        x = rec.loc[m, "subject"].map(xpos).to_numpy() + rng.uniform(-0.18, 0.18, int(m.sum()))
        y, bad = rec.loc[m, "value"].to_numpy(), wrong[m] if not task.binary else np.zeros(int(m.sum()), bool)
        ax.scatter(x[~bad], y[~bad], s=14, alpha=0.75, color=_colour(name, i), label=name, edgecolors="none")
        if bad.any():
            ax.scatter(x[bad], y[bad], s=22, alpha=0.9, color=_colour(name, i), marker="x", linewidths=1.0,
                       gid="decided-wrongly")
    if not task.binary:
        ax.scatter([], [], s=22, color="0.3", marker="x", label="decided wrongly")
        ax.axhline(1.0 / len(task.classes), color="k", lw=0.8, ls="--", label=f"chance (1/{len(task.classes)})")
    else:
        thresholds = _subject_thresholds(rec, rules)
        if np.allclose(list(thresholds.values()), 0.5):
            ax.axhline(0.5, color="k", lw=0.8, ls="--")
        else:
            for k, (subject, t) in enumerate(sorted(thresholds.items(), key=lambda kv: xpos[kv[0]])):
                ax.hlines(t, xpos[subject] - 0.4, xpos[subject] + 0.4, color="k", lw=1.4, gid="threshold",
                          label="its fold's decision threshold" if k == 0 else None)
    ax.set_ylim(-0.03, 1.03)
    ax.set_xticks(range(len(order)), order, rotation=90, fontsize=7)
    ax.set_xlabel("subject")
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8, loc="best")
    return _save(fig, path)


def _subject_thresholds(rec: pd.DataFrame, rules: Rules) -> dict[str, float]:
    """Each subject's threshold on P(positive) under its fold's rule (binary tasks)."""
    if not isinstance(rules, dict):
        t = (rules or DEFAULT_RULE).threshold
        return dict.fromkeys(rec["subject"].unique(), t)
    out = {}
    for subject, folds in rec.groupby("subject")["fold"].unique().items():
        ts, names = {rules[str(f)].threshold if str(f) in rules else None for f in folds}, ", ".join(map(str, folds))
        if None in ts:
            raise AlsnetError(f"no decision rule for the fold(s) of subject {subject} ({names})")
        if len(ts) > 1:
            raise AlsnetError(f"subject {subject} is tested in folds with different rules ({names})")
        out[subject] = ts.pop()
    return out


def plot_learning_curves(history: pd.DataFrame, path: PathLike, title: str = "") -> Path:
    """Train and validation loss, validation accuracy and learning rate per epoch, one thin line per fold."""
    need = {"fold", "epoch", "train_loss", "val_loss"}
    if not need <= set(history.columns):
        raise AlsnetError(f"history lacks column(s) {', '.join(sorted(need - set(history.columns)))}")
    extra = [c for c in ("val_accuracy", "lr") if c in history.columns]
    fig = Figure(figsize=(4.0 * (1 + len(extra)), 3.5), layout="constrained")
    axes = [fig.add_subplot(1, 1 + len(extra), i + 1) for i in range(1 + len(extra))]
    for _, h in history.groupby("fold", sort=True):
        h = h.sort_values("epoch")
        axes[0].plot(h["epoch"], h["train_loss"], color="C0", lw=0.7, alpha=0.6)
        axes[0].plot(h["epoch"], h["val_loss"], color="C3", lw=0.7, alpha=0.6)
        for ax, col in zip(axes[1:], extra):
            ax.plot(h["epoch"], h[col], color="C2" if col != "lr" else "C4", lw=0.7, alpha=0.6)
    axes[0].plot([], [], color="C0", label="train loss")
    axes[0].plot([], [], color="C3", label="validation loss")
    axes[0].legend(fontsize=8)
    axes[0].set_ylabel("loss")
    for ax, col in zip(axes[1:], extra):
        ax.set_ylabel({"val_accuracy": "validation accuracy", "lr": "learning rate"}[col])
        if col == "lr" and (history["lr"] > 0).all():
            ax.set_yscale("log")
    for ax in axes:
        ax.set_xlabel("epoch")
    n_folds = history["fold"].nunique()
    fig.suptitle(f"{title}\n{n_folds} fold(s), one line each" if title else f"{n_folds} fold(s)", fontsize=9)
    return _save(fig, path)


def plot_reliability(proba_before: np.ndarray, proba_after: np.ndarray, y: np.ndarray, path: PathLike,
                     title: str = "") -> Path:
    """Reliability diagram before and after temperature scaling, with ECE in the legend."""
    fig = Figure(figsize=(4.2, 4.2), layout="constrained")
    ax = fig.add_subplot()
    ax.plot([0, 1], [0, 1], color="0.7", lw=0.8)
    binary = np.asarray(proba_before).ndim == 1 or np.asarray(proba_before).shape[1] == 2
    for proba, name, c in ((proba_before, "before", "C1"), (proba_after, "after", "C0")):
        conf, freq, _ = reliability_curve(proba, y)
        ece = expected_calibration_error(proba, y)
        ax.plot(conf, freq, "o-", color=c, ms=3, label=f"{name} (ECE {ece:.3f})")
    ax.set_xlabel("mean P(positive)" if binary else "mean top-class confidence")
    ax.set_ylabel("observed frequency" if binary else "accuracy")
    ax.set_title(title or "reliability", fontsize=9)
    ax.set_aspect("equal")
    ax.legend(fontsize=8)
    return _save(fig, path)


def write_run_figures(run_dir: PathLike, out_dir: PathLike | None = None) -> list[Path]:
    """Draw every figure of a run into ``RUN_DIR/figures`` (or ``out_dir``); returns their paths.

    Writes ``confusion_{window,recording,subject}.png``, ``roc.png``, ``subject_strip.png``,
    ``learning_curves.png`` (if ``history.csv``) and ``reliability.png`` (if calibration
    data, see the module docstring).
    """
    run = load_run(run_dir)
    return draw_run_figures(run, Path(out_dir) if out_dir is not None else run["dir"] / "figures")


def draw_run_figures(run: dict, out: Path) -> list[Path]:
    """Figures of a run already read by :func:`load_run`, into folder ``out``."""
    task, cfg, metrics, pred = run["task"], run["config"], run["metrics"], run["predictions"]
    model = cfg.get("model", metrics.get("model", "?"))
    head = f"{model}, {task.name}"
    proto = protocol_title(cfg)
    full = f"{head}\n{proto}" if proto else head
    paths = []
    for lv in LEVELS:
        cm = metrics[lv].get("confusion_matrix")
        if cm is None:
            raise AlsnetError(f"no confusion_matrix at {lv} level", run["dir"] / "metrics.json")
        paths.append(plot_confusion(cm, task.classes, f"{full}\n{lv} level (n={int(np.sum(cm))})",
                                    out / f"confusion_{lv}.png"))
    paths.append(plot_roc(pred, task, out / "roc.png", level="all", title=full))
    paths.append(plot_subject_strip(pred, task, out / "subject_strip.png", title=full, rules=run.get("rules")))
    if run["history"] is not None and len(run["history"]):
        paths.append(plot_learning_curves(run["history"], out / "learning_curves.png", title=full))
    if run["calibration"] is not None:
        before, after, y = calibration_proba(run["calibration"], run["dir"] / "calibration.json")
        source = run["calibration"].get("source")
        paths.append(plot_reliability(before, after, y, out / "reliability.png",
                                      title=f"{full}\n{source}" if source else full))
    return paths


__all__ = ["plot_confusion", "plot_roc", "plot_subject_strip", "plot_learning_curves",
           "plot_reliability", "write_run_figures", "draw_run_figures", ]
