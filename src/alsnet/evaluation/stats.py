"""Statistics for small numbers of subjects: exact and score intervals, paired comparisons.

A subject-wise evaluation of N2001 rests on 14 (ALS vs normal) or 19 (three classes)
people. A percentile bootstrap of a proportion over so few subjects can collapse to
``[100, 100]`` when every subject is right; the intervals here do not:

* :func:`wilson_interval`: the Wilson score interval of ``k`` successes in ``n``;
* :func:`clopper_pearson_interval`: the exact (conservative) binomial interval;
* :func:`mcnemar_exact`: the exact McNemar test of two classifiers' decisions on the same
  subjects (a two-sided binomial test on the discordant pairs);
* :func:`paired_bootstrap`: the difference of a statistic between two models on the same
  subjects, resampling subjects (stratified by class) with both models kept paired.

Every interval records how many subjects it rests on.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from scipy.stats import beta, binomtest, norm

from alsnet.errors import AlsnetError

if TYPE_CHECKING:
    from alsnet.data.labels import Task
    from alsnet.evaluation.decision import DecisionRule


def _check(k: int, n: int) -> None:
    if n < 0 or k < 0 or k > n:
        raise AlsnetError(f"need 0 <= k <= n, got k={k}, n={n}")


def wilson_interval(k: int, n: int, ci: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of the proportion ``k / n``; ``(nan, nan)`` when ``n == 0``."""
    _check(k, n)
    if n == 0:
        return float("nan"), float("nan")
    z = float(norm.ppf(1 - (1 - ci) / 2))
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    # at k = 0 and k = n the bounds are exactly 0 and 1; say so rather than round to them
    lo = 0.0 if k == 0 else float(max(0.0, centre - half))
    hi = 1.0 if k == n else float(min(1.0, centre + half))
    return lo, hi


def clopper_pearson_interval(k: int, n: int, ci: float = 0.95) -> tuple[float, float]:
    """Exact Clopper–Pearson interval of ``k / n``; ``(nan, nan)`` when ``n == 0``."""
    _check(k, n)
    if n == 0:
        return float("nan"), float("nan")
    a = 1 - ci
    lo = 0.0 if k == 0 else float(beta.ppf(a / 2, k, n - k + 1))
    hi = 1.0 if k == n else float(beta.ppf(1 - a / 2, k + 1, n - k))
    return lo, hi


def proportion(k: int, n: int, ci: float = 0.95) -> dict:
    """A proportion with both intervals and the count it rests on (JSON-ready)."""
    _check(k, n)
    w = wilson_interval(k, n, ci)
    cp = clopper_pearson_interval(k, n, ci)
    nan = not n
    return {"k": int(k), "n": int(n), "value": None if nan else k / n, "ci": ci,
            "wilson": None if nan else list(w), "clopper_pearson": None if nan else list(cp)}


def mcnemar_exact(correct_a: np.ndarray, correct_b: np.ndarray) -> dict:
    """Exact McNemar test of two sets of paired decisions (True = right).

    ``b`` counts units that A gets right and B wrong, ``c`` the reverse; the p-value is the
    two-sided binomial test of ``b`` in ``b + c`` trials at 1/2 (1.0 when there are no
    discordant pairs).
    """
    a = np.asarray(correct_a, dtype=bool)
    b_ = np.asarray(correct_b, dtype=bool)
    if a.shape != b_.shape:
        raise AlsnetError(f"paired decisions differ in length: {a.shape} and {b_.shape}")
    b = int((a & ~b_).sum())
    c = int((~a & b_).sum())
    p = 1.0 if b + c == 0 else float(binomtest(b, b + c, 0.5, alternative="two-sided").pvalue)
    return {"a_right_b_wrong": b, "a_wrong_b_right": c, "n": int(len(a)), "p_value": p,
            "test": "exact McNemar (two-sided binomial on discordant pairs)"}


def paired_bootstrap(pred_a: pd.DataFrame, pred_b: pd.DataFrame,
                     statistic: Callable[[pd.DataFrame], float], *,
                     statistic_b: Callable[[pd.DataFrame], float] | None = None, n_boot: int = 2000,
                     seed: int = 0, ci: float = 0.95) -> dict:
    """Bootstrap of ``statistic(A) - statistic(B)`` over subjects, the two models paired.

    Each replicate draws subjects with replacement within each class (as many as the class
    has) and evaluates both models on the same drawn subjects (a subject drawn twice counts
    twice). ``pred_a`` and ``pred_b`` are predictions tables of the same windows (columns
    ``subject`` and ``y_true`` at least). ``statistic_b`` (default ``statistic``) is B's, for
    a statistic that differs between models (each with its own decision rule, say).

    A statistic that is a :class:`SubjectStatistic` (both, where there are two) is computed
    on each replicate from per-subject summaries made once, not from the replicate's rows:
    the same numbers, bit for bit, in a fraction of the time.
    """
    stat_b = statistic_b or statistic
    subj_a = pred_a.groupby("subject")["y_true"].first()
    subj_b = pred_b.groupby("subject")["y_true"].first()
    if not subj_a.index.equals(subj_b.index) or not (subj_a == subj_b).all():
        raise AlsnetError("the two predictions tables are not of the same subjects")
    rng = np.random.default_rng(seed)
    point = float(statistic(pred_a) - stat_b(pred_b))
    classes = {c: list(g.index) for c, g in subj_a.groupby(subj_a)}
    if isinstance(statistic, SubjectStatistic) and isinstance(stat_b, SubjectStatistic):
        sum_a, sum_b = statistic.summarise(pred_a), stat_b.summarise(pred_b)

        def replicate(drawn: list) -> float:
            return statistic.from_subjects(sum_a, drawn) - stat_b.from_subjects(sum_b, drawn)
    else:
        rows_a, rows_b = _rows_by_subject(pred_a), _rows_by_subject(pred_b)

        def replicate(drawn: list) -> float:
            return statistic(_resampled(pred_a, rows_a, drawn)) - stat_b(_resampled(pred_b, rows_b, drawn))
    diffs = []
    for _ in range(n_boot):
        drawn = [s for members in classes.values() for s in rng.choice(members, size=len(members))]
        diffs.append(replicate(drawn))
    d = np.asarray(diffs, dtype=float)
    d = d[np.isfinite(d)]
    alpha = (1 - ci) / 2
    return {"difference": point, "ci": [float(np.quantile(d, alpha)), float(np.quantile(d, 1 - alpha))],
            "p_two_sided": float(min(1.0, 2 * min((d <= 0).mean(), (d >= 0).mean()))),
            "n_subjects": int(len(subj_a)), "n_boot": int(n_boot), "seed": int(seed),
            "resampled": "subjects, stratified by class, models paired"}


class SubjectStatistic:
    """A statistic of a predictions table that a bootstrap replicate can compute from
    per-subject summaries (:func:`paired_bootstrap`).

    ``__call__(pred)`` is the statistic of a table. ``summarise(pred)`` maps each subject to
    what the statistic needs of it, and ``from_subjects(summary, drawn)`` must give exactly
    ``self(replicate)``, where ``replicate`` holds the rows of the ``drawn`` subjects, the
    ``i``-th draw of subject ``s`` renamed ``s#i`` (:func:`_resampled`). Subclasses
    define all three; ``tests/test_stats.py`` checks the equality on random tables.
    """

    def __call__(self, pred: pd.DataFrame) -> float:
        raise NotImplementedError

    def summarise(self, pred: pd.DataFrame) -> dict:
        raise NotImplementedError

    def from_subjects(self, summary: dict, drawn: list) -> float:
        raise NotImplementedError


def drawn_names(drawn: list) -> list[str]:
    """The names the subjects of a replicate carry: the ``i``-th draw of ``s`` is ``s#i``."""
    return [f"{s}#{i}" for i, s in enumerate(drawn)]


def _rows_by_subject(pred: pd.DataFrame) -> dict:
    """Each subject's row positions in ``pred``, in table order."""
    codes, names = pd.factorize(pred["subject"])
    order = np.argsort(codes, kind="stable")
    bounds = np.cumsum(np.bincount(codes, minlength=len(names)))[:-1]
    return dict(zip(names, np.split(order, bounds)))


def _resampled(pred: pd.DataFrame, rows: dict, drawn: list) -> pd.DataFrame:
    """The drawn subjects' rows, in draw order; the i-th draw of subject s is named ``s#i``, so a
    subject drawn twice counts as two subjects."""
    take = [rows[s] for s in drawn]
    out = pred.iloc[np.concatenate(take)].copy()
    out["subject"] = np.repeat(drawn_names(drawn), [len(t) for t in take]).astype(object)
    return out


def subject_proportions(pred: pd.DataFrame, task: Task, rules: DecisionRule | dict | None = None,
                        ci: float = 0.95) -> dict:
    """Subjects right, overall and per class, each with Wilson and Clopper–Pearson intervals.

    Subjects are decided by ``rules`` (see :func:`alsnet.evaluation.metrics.decide_units`) on
    the mean of their recordings' probabilities.
    """
    from alsnet.evaluation.metrics import aggregate, decide_units

    units = aggregate(pred, "subject", task)
    y = units["y_true"].to_numpy(dtype=np.int64)
    right = decide_units(units, task, rules) == y
    out = {"all": proportion(int(right.sum()), len(y), ci)}
    for k, c in enumerate(task.classes):
        m = y == k
        out[c] = proportion(int(right[m].sum()), int(m.sum()), ci)
    out["subjects"] = {str(s): bool(r) for s, r in zip(units["subject"], right)}
    return out


__all__ = ["subject_proportions", "wilson_interval", "clopper_pearson_interval", "proportion", "mcnemar_exact",
           "paired_bootstrap"]
