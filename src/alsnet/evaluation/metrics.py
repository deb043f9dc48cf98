"""Metrics at three levels (window, recording, subject) with subject-bootstrap intervals.

Predictions
-----------
Every model (ALSNet and the classical baselines) writes the same table, one row per test
window: ``record, subject, window, start, label, y_true, fold`` and one probability column
``p_<class>`` per task class, in ``task.classes`` order (``p_normal, p_als`` for
``als-vs-normal``; ``p_normal, p_als, p_myopathy`` for ``three-class``; ``p_rest, p_als``
for ``als-vs-rest``).

Aggregation rule
----------------
* window: the model's probabilities as they are;
* recording: the **mean** of its windows' probabilities;
* subject: the **mean** of its recordings' probabilities (each recording counts once,
  however many windows it has).

Decision: ``P(positive) >= 0.5`` for a binary task (the paper's threshold; positive is
``task.classes[1]``, which is ``als`` in every binary task), ``argmax`` otherwise.

Definitions
-----------
* sensitivity: recall of ALS;
* specificity: fraction of non-ALS units predicted as non-ALS (any non-ALS class counts);
* balanced_accuracy: mean per-class recall (binary: mean of sensitivity and specificity);
  undefined when a class has no units;
* f1: F1 of ALS (binary) or macro-F1 over classes (multi-class);
* roc_auc: AUC of P(ALS) (binary) or macro one-vs-rest AUC (multi-class);
* anything undefined (a single-class fold, say) is ``None`` in the returned dict.

Confidence intervals
--------------------
Percentile intervals from a bootstrap over **subjects**: each replicate draws, within each
class, as many subjects as that class has, with replacement (so every replicate contains
every class), and recomputes each level's metric from the units of the drawn subjects
(a subject drawn twice counts twice). The windows of one person are not independent, so a
window-level bootstrap would give intervals that are far too narrow.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from sklearn.metrics import confusion_matrix, roc_auc_score

from alsnet.data.labels import Task
from alsnet.errors import AlsnetError
from alsnet.evaluation.decision import DEFAULT_RULE, DecisionRule

LEVELS = ("window", "recording", "subject")
ID_COLUMNS = ("record", "subject", "window", "start", "label", "y_true", "fold")
#: Metrics that get a bootstrap interval.
CI_METRICS = ("accuracy", "balanced_accuracy", "sensitivity", "specificity", "f1", "roc_auc")
THRESHOLD = 0.5


def proba_columns(task: Task) -> list[str]:
    """The probability columns of a predictions table, in ``task.classes`` order."""
    return [f"p_{c}" for c in task.classes]


def check_predictions(pred: pd.DataFrame, task: Task) -> None:
    """Raise :class:`AlsnetError` if ``pred`` lacks a column the evaluation needs."""
    need = ["record", "subject", "y_true", *proba_columns(task)]
    missing = [c for c in need if c not in pred.columns]
    if missing:
        raise AlsnetError(f"predictions lack column(s) {', '.join(missing)} for task {task.name!r}")
    y = pred["y_true"].to_numpy()
    if len(y) and (y.min() < 0 or y.max() >= len(task.classes)):
        raise AlsnetError(f"y_true holds codes outside 0..{len(task.classes) - 1} for task {task.name!r}")


def aggregate(pred: pd.DataFrame, level: str, task: Task | None = None) -> pd.DataFrame:
    """Predictions at one level: one row per window, recording or subject.

    Returns columns ``unit, subject, label, y_true, fold, n_windows`` and the ``p_*``
    columns (means, per the module's aggregation rule). ``task`` is only needed to choose
    the ``p_*`` columns; without it every column starting with ``p_`` is used.
    """
    if level not in LEVELS:
        raise AlsnetError(f"unknown level {level!r}; choose from {', '.join(LEVELS)}")
    pcols = proba_columns(task) if task else [c for c in pred.columns if c.startswith("p_")]
    df = pred.copy()
    for c, default in (("label", ""), ("fold", "")):
        if c not in df.columns:
            df[c] = default
    df["n_windows"] = 1
    if level == "window":
        wcol = df["window"].astype(str) if "window" in df.columns else pd.Series(df.index.astype(str), index=df.index)
        df["unit"] = df["record"].astype(str) + ":" + wcol
        return df[["unit", "subject", "label", "y_true", "fold", "n_windows", *pcols]].reset_index(drop=True)
    first = {"subject": "first", "label": "first", "y_true": "first", "fold": "first", "n_windows": "sum"}
    rec = df.groupby("record", sort=True).agg({**first, **{c: "mean" for c in pcols}})
    rec = rec.reset_index().rename(columns={"record": "unit"})
    if level == "recording":
        return rec[["unit", "subject", "label", "y_true", "fold", "n_windows", *pcols]]
    # A subject's class is that of its recordings; "fold" is its first recording's fold.
    sub = rec.groupby("subject", sort=True).agg({"label": "first", "y_true": "first",
                                                 "fold": "first", "n_windows": "sum",
                                                 **{c: "mean" for c in pcols}})
    sub = sub.reset_index()
    sub["unit"] = sub["subject"]
    return sub[["unit", "subject", "label", "y_true", "fold", "n_windows", *pcols]]


Rules = DecisionRule | dict[str, DecisionRule] | None


def decide(proba: np.ndarray, task: Task, rule: DecisionRule | None = None) -> np.ndarray:
    """Predicted class codes under ``rule`` (default: threshold 0.5 on P(positive), or argmax)."""
    return (rule or DEFAULT_RULE).decide(np.asarray(proba, dtype=float))


def decide_units(units: pd.DataFrame, task: Task, rules: Rules = None) -> np.ndarray:
    """Class codes of a level's units; ``rules`` may give each fold its own rule (by ``fold``)."""
    proba = units[proba_columns(task)].to_numpy(dtype=float)
    if not isinstance(rules, dict):
        return decide(proba, task, rules)
    out = np.empty(len(units), dtype=np.int64)
    folds = units["fold"].astype(str).to_numpy()
    for f in np.unique(folds):
        if f not in rules:
            raise AlsnetError(f"no decision rule for fold {f!r}")
        m = folds == f
        out[m] = decide(proba[m], task, rules[f])
    return out


def describe_rules(task: Task, rules: Rules) -> str | dict:
    if isinstance(rules, dict):
        return {f: r.describe(task.classes) for f, r in sorted(rules.items())}
    return (rules or DEFAULT_RULE).describe(task.classes)


# ---------------------------------------------------------------------------- formulas
# The formulas below take weighted confusion matrices with a leading replicate axis, so
# the point estimate (weights 1) and every bootstrap replicate go through the same code.

def _div(a, b):
    a, b = np.asarray(a, float), np.asarray(b, float)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(b > 0, a / np.where(b > 0, b, 1), np.nan)


def _from_confusion(cm: np.ndarray, task: Task) -> dict[str, np.ndarray]:
    """Metrics from confusion matrices ``cm`` of shape (r, k, k), rows true."""
    k = len(task.classes)
    a = task.classes.index("als")
    rows, cols, diag = cm.sum(2), cm.sum(1), np.diagonal(cm, axis1=1, axis2=2)
    recall = _div(diag, rows)                                   # (r, k)
    non = [i for i in range(k) if i != a]
    spec = _div(cm[:, non][:, :, non].sum((1, 2)), cm[:, non].sum((1, 2)))
    f1_c = _div(2 * diag, rows + cols)
    bal = np.where(np.isnan(recall).any(1), np.nan, np.nan_to_num(recall).mean(1))
    if task.binary:
        f1 = f1_c[:, a]
    else:  # macro over the classes where F1 is defined (some true or predicted units)
        f1 = _div(np.nan_to_num(f1_c).sum(1), (~np.isnan(f1_c)).sum(1))
    return {"accuracy": _div(diag.sum(1), cm.sum((1, 2))), "sensitivity": recall[:, a],
            "specificity": spec, "balanced_accuracy": bal, "f1": f1, "recall": recall}


def _weighted_auc(score: np.ndarray, pos: np.ndarray, w: np.ndarray) -> np.ndarray:
    """AUC of ``score`` for ``pos`` under unit weights ``w`` (r, n); ties count one half."""
    order = np.argsort(score, kind="mergesort")
    s, p = score[order], pos[order].astype(float)
    w = w[:, order]
    wp, wn = w * p, w * (1 - p)
    # Tie groups: for each unit, first and last index of its group of equal scores.
    new = np.r_[True, s[1:] != s[:-1]]
    gid = np.cumsum(new) - 1
    starts = np.flatnonzero(new)
    ends = np.r_[starts[1:], len(s)] - 1
    cn = np.concatenate([np.zeros((w.shape[0], 1)), np.cumsum(wn, 1)], 1)
    below = cn[:, starts[gid]]
    tied = cn[:, ends[gid] + 1] - below
    num = (wp * (below + 0.5 * tied)).sum(1)
    return _div(num, wp.sum(1) * wn.sum(1))


def _auc(proba: np.ndarray, y: np.ndarray, w: np.ndarray, task: Task) -> np.ndarray:
    if task.binary:
        return _weighted_auc(proba[:, 1], y == 1, w)
    per = np.stack([_weighted_auc(proba[:, c], y == c, w) for c in range(len(task.classes))], 1)
    # Macro one-vs-rest, undefined unless every class is present (as in scikit-learn).
    return np.where(np.isnan(per).any(1), np.nan, per.mean(1) if per.size else np.nan)


def _clean(v):
    v = float(v)
    return None if math.isnan(v) else v


def point_metrics(units: pd.DataFrame, task: Task, rules: Rules = None) -> dict:
    """Metrics of one level's table (from :func:`aggregate`), without intervals."""
    k = len(task.classes)
    y = units["y_true"].to_numpy(dtype=np.int64)
    proba = units[proba_columns(task)].to_numpy(dtype=float)
    yhat = decide_units(units, task, rules)
    cm = confusion_matrix(y, yhat, labels=list(range(k))) if len(y) else np.zeros((k, k), int)
    m = {key: v[0] for key, v in _from_confusion(cm[None].astype(float), task).items()}
    present = np.unique(y)
    auc = np.nan
    if task.binary and len(present) == 2:
        auc = roc_auc_score(y, proba[:, 1])
    elif not task.binary and len(present) == k:
        # Macro one-vs-rest, class by class: scikit-learn's multi-class call would insist
        # that rows sum to 1 exactly, which means of probabilities only nearly do.
        auc = np.mean([roc_auc_score(y == c, proba[:, c]) for c in range(k)])
    out = {name: _clean(m[name]) for name in ("accuracy", "sensitivity", "specificity",
                                              "balanced_accuracy", "f1")}
    out["roc_auc"] = _clean(auc)
    out["recall"] = {c: _clean(r) for c, r in zip(task.classes, m["recall"])}
    out["confusion_matrix"] = cm.astype(int).tolist()
    out["n"] = int(len(y))
    out["n_subjects"] = int(units["subject"].nunique())
    return out


def bootstrap_counts(subject_class: pd.Series, n_boot: int, seed: int) -> np.ndarray:
    """How often each subject is drawn in each replicate, stratified by class.

    ``subject_class`` maps subject → class code; returns (n_boot, n_subjects) integer
    counts in the order of ``subject_class.index``.
    """
    rng = np.random.default_rng(seed)
    counts = np.zeros((n_boot, len(subject_class)), dtype=np.int64)
    codes = subject_class.to_numpy()
    for c in np.unique(codes):
        idx = np.flatnonzero(codes == c)
        counts[:, idx] = rng.multinomial(len(idx), np.full(len(idx), 1 / len(idx)), size=n_boot)
    return counts


def _bootstrap_level(units: pd.DataFrame, task: Task, counts: np.ndarray, subjects: pd.Index,
                     ci: float, chunk: int = 200, rules: Rules = None) -> dict:
    k = len(task.classes)
    y = units["y_true"].to_numpy(dtype=np.int64)
    proba = units[proba_columns(task)].to_numpy(dtype=float)
    yhat = decide_units(units, task, rules)
    col = subjects.get_indexer(units["subject"])
    cell = np.zeros((len(y), k * k))
    cell[np.arange(len(y)), y * k + yhat] = 1.0
    reps: dict[str, list] = {m: [] for m in CI_METRICS}
    for lo in range(0, len(counts), chunk):
        w = counts[lo:lo + chunk][:, col].astype(float)       # (r, n) unit weights
        m = _from_confusion((w @ cell).reshape(-1, k, k), task)
        m["roc_auc"] = _auc(proba, y, w, task)
        for name in CI_METRICS:
            reps[name].append(m[name])
    alpha = (1 - ci) / 2
    out = {}
    for name in CI_METRICS:
        v = np.concatenate(reps[name])
        v = v[~np.isnan(v)]
        out[name] = [None, None] if not len(v) else [float(np.quantile(v, alpha)),
                                                     float(np.quantile(v, 1 - alpha))]
    return out


def evaluate(pred: pd.DataFrame, task: Task, *, n_boot: int = 1000, seed: int = 0,
             ci: float = 0.95, rules: Rules = None) -> dict:
    """Metrics at window, recording and subject level, with subject-bootstrap intervals.

    Parameters
    ----------
    pred : DataFrame
        Predictions table (see the module docstring).
    task : Task
        The task the predictions belong to.
    n_boot : int
        Bootstrap replicates; 0 skips the intervals (``ci`` values are then ``None``).
    seed : int
        Seed of the bootstrap.
    ci : float
        Coverage of the percentile interval.
    rules : DecisionRule or dict, optional
        The decision rule (:class:`~alsnet.evaluation.decision.DecisionRule`), or one per fold
        (keyed by the ``fold`` column); default: threshold 0.5 / argmax.

    Returns
    -------
    dict
        ``{"window": {...}, "recording": {...}, "subject": {...}}``; each level holds
        ``accuracy, sensitivity, specificity, balanced_accuracy, f1, roc_auc, recall``
        (per class), ``confusion_matrix``, ``n``, ``n_subjects``, ``ci`` ({metric: [lo, hi]}),
        ``bootstrap`` (its settings) and ``decision`` (the rule); the subject level also
        ``proportions`` (subjects right, with Wilson and Clopper–Pearson intervals). NaN
        (undefined) values are ``None``; the dict is JSON-ready.
    """
    check_predictions(pred, task)
    if not 0 < ci < 1:
        raise AlsnetError(f"ci must be between 0 and 1, got {ci}")
    levels = {lvl: aggregate(pred, lvl, task) for lvl in LEVELS}
    subj = levels["subject"].set_index("subject")["y_true"]
    counts = bootstrap_counts(subj, n_boot, seed) if n_boot > 0 and len(subj) else None
    out = {}
    for lvl, units in levels.items():
        m = point_metrics(units, task, rules)
        if counts is None:
            m["ci"] = {name: [None, None] for name in CI_METRICS}
        else:
            m["ci"] = _bootstrap_level(units, task, counts, subj.index, ci, rules=rules)
        out[lvl] = m
        m["bootstrap"] = {"n_boot": int(n_boot), "seed": int(seed), "ci": float(ci),
                          "resampled": "subjects, stratified by class"}
        m["decision"] = describe_rules(task, rules)
        if lvl == "subject":
            m["proportions"] = _subject_proportions(units, task, rules, ci)
    return out


def _subject_proportions(units: pd.DataFrame, task: Task, rules: Rules, ci: float) -> dict:
    """Subjects right, overall and per class, with Wilson and Clopper–Pearson intervals.

    Over a handful of subjects a percentile bootstrap of a proportion collapses to a point
    (``[100, 100]`` when every subject is right); these intervals do not, and say how many
    subjects they rest on.
    """
    y = units["y_true"].to_numpy(dtype=np.int64)
    k = len(task.classes)
    cm = confusion_matrix(y, decide_units(units, task, rules), labels=list(range(k))) if len(y) else np.zeros((k, k))
    counted = count_proportions(cm, task, ci)
    return {"accuracy": counted["accuracy"], "recall": counted["recall"]}


def count_proportions(confusion, task: Task, ci: float = 0.95) -> dict:
    """Accuracy, sensitivity (ALS recall), specificity (non-ALS units called non-ALS) and each
    class's recall (``recall``: class -> proportion) as proportions of a level's units, ``k`` of
    ``n`` with Wilson and Clopper–Pearson intervals (:func:`alsnet.evaluation.stats.proportion`),
    from its confusion matrix (rows true).

    The subject level is reported this way wherever it is shown: a bootstrap over a handful
    of people collapses to a point. Balanced accuracy, F1 and AUC are not proportions and
    get no such interval.
    """
    from alsnet.evaluation.stats import proportion

    cm = np.asarray(confusion, dtype=np.int64)
    if cm.shape != (len(task.classes),) * 2:
        raise AlsnetError(f"a confusion matrix of {cm.shape} for the {len(task.classes)} classes of {task.name!r}")
    a = task.classes.index("als")
    non = [i for i in range(len(task.classes)) if i != a]
    return {"accuracy": proportion(int(np.trace(cm)), int(cm.sum()), ci),
            "sensitivity": proportion(int(cm[a, a]), int(cm[a].sum()), ci),
            "specificity": proportion(int(cm[np.ix_(non, non)].sum()), int(cm[non].sum()), ci),
            "recall": {c: proportion(int(cm[i, i]), int(cm[i].sum()), ci) for i, c in enumerate(task.classes)}}


def evaluate_by_fold(pred: pd.DataFrame, task: Task) -> dict[str, dict]:
    """Point metrics (no intervals) of each fold separately: ``{fold: evaluate(...)}``."""
    if "fold" not in pred.columns:
        return {}
    return {str(f): evaluate(g, task, n_boot=0) for f, g in pred.groupby("fold", sort=True)}


__all__ = ["LEVELS", "CI_METRICS", "THRESHOLD", "aggregate", "count_proportions", "decide", "evaluate",
           "evaluate_by_fold", "decide_units", "point_metrics", "proba_columns", "check_predictions",
           "bootstrap_counts"]
