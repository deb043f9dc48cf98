"""Choices made from pooled inner out-of-fold predictions, never from test subjects.

A nested evaluation trains, on each outer fold's training subjects, one model per inner
fold and scores the inner fold's held-out subjects with it: the **inner out-of-fold (OOF)
predictions**. Pooled over the inner folds they cover every outer-training subject once,
and every choice is made from them:

1. the **candidate** (the epoch of an ALSNet, the hyperparameters of a baseline, a variant):
   the one with the lowest pooled :func:`subject_log_loss` (ties: the first);
2. the **calibration** (:data:`~alsnet.evaluation.calibration.METHODS`): each method is fitted
   on all inner folds but one and scored on the one left out (cross-fitting); a method is
   used only if it lowers both the held-out log-loss and the held-out ECE of the
   uncalibrated probabilities, and among those the one with the lowest held-out log-loss
   wins; it is then refitted on all pooled OOF logits;
3. the **decision rule**: per-class offsets (:func:`~alsnet.evaluation.decision.fit_class_offsets`)
   fitted on the pooled, calibrated OOF probabilities.

The functions here see only inner OOF arrays: they have no way to read an outer test label.

Primary criterion: ``subject_log_loss``, the mean over classes of the mean over that class's
subjects of each subject's mean window log-loss. Each person counts once whatever their
number of windows, and each class counts once whatever its number of people.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from alsnet.errors import AlsnetError
from alsnet.evaluation.calibration import METHODS, Calibrator, expected_calibration_error, fit_calibrator
from alsnet.evaluation.decision import DecisionRule, fit_class_offsets
from alsnet.model.outputs import probabilities

CRITERION = ("subject_log_loss: mean over classes of the mean over subjects of each subject's mean "
             "window log-loss, on pooled inner out-of-fold predictions")


@dataclass(frozen=True)
class InnerOOF:
    """One inner fold's out-of-fold predictions for every candidate.

    ``logits`` is ``(n_candidates, n_windows, n_logits)``; ``y`` and ``subject`` are the
    held-out windows' class codes and subjects.
    """

    logits: np.ndarray
    y: np.ndarray
    subject: np.ndarray


def subject_log_loss(proba: np.ndarray, y: np.ndarray, subject: np.ndarray, eps: float = 1e-7) -> float:
    """Class- and subject-balanced log-loss (see the module docstring)."""
    return subject_log_loss_of(subject_mean_log_loss(proba, y, subject, eps))


def subject_log_loss_of(per: dict[tuple[int, str], float]) -> float:
    """:func:`subject_log_loss` from each subject's mean (:func:`subject_mean_log_loss`)."""
    return float(np.mean([np.mean([per[c, s] for s in subs]) for c, subs in _subjects_by_class(per)]))


def subject_mean_log_loss(proba: np.ndarray, y: np.ndarray, subject: np.ndarray,
                          eps: float = 1e-7) -> dict[tuple[int, str], float]:
    """(class, subject) → that subject's mean window log-loss: what :func:`subject_log_loss`
    averages (a bootstrap over subjects can average them again without the windows)."""
    p = np.clip(np.asarray(proba, float)[np.arange(len(y)), np.asarray(y, int)], eps, 1.0)
    nll = -np.log(p)
    subject, y = np.asarray(subject), np.asarray(y)
    return {(c, s): nll[(subject == s) & (y == c)].mean()
            for c in np.unique(y) for s in np.unique(subject[y == c])}


def _subjects_by_class(per: dict) -> list[tuple]:
    """Classes in order, each with its subjects in order (the order the means are taken in)."""
    classes = sorted({c for c, _ in per})
    return [(c, sorted(s for k, s in per if k == c)) for c in classes]


def window_balanced_accuracy(proba: np.ndarray, y: np.ndarray, rule: DecisionRule | None = None) -> float:
    yhat = (rule or DecisionRule()).decide(proba)
    y = np.asarray(y, int)
    return float(np.mean([(yhat[y == c] == c).mean() for c in np.unique(y)]))


def _pooled(folds: list[InnerOOF], c: int, cal: Calibrator | None = None) -> tuple[np.ndarray, ...]:
    logits = np.concatenate([f.logits[c] for f in folds])
    proba = cal.apply(logits) if cal is not None else probabilities(logits)
    return logits, proba, np.concatenate([f.y for f in folds]), np.concatenate([f.subject for f in folds])


def candidate_curves(folds: list[InnerOOF]) -> dict[str, list[float]]:
    """Pooled OOF ``subject_log_loss`` and window balanced accuracy of every candidate (uncalibrated)."""
    n = min(f.logits.shape[0] for f in folds)
    if n == 0:
        raise AlsnetError("no candidate has out-of-fold predictions in every inner fold")
    loss, bacc = [], []
    for c in range(n):
        _, p, y, s = _pooled(folds, c)
        loss.append(subject_log_loss(p, y, s))
        bacc.append(window_balanced_accuracy(p, y))
    return {"subject_log_loss": loss, "window_balanced_accuracy": bacc}


def choose_calibration(folds: list[InnerOOF], c: int) -> tuple[Calibrator, dict]:
    """The calibration of candidate ``c`` by cross-fitting over the inner folds (module docstring)."""
    if len(folds) < 2:
        raise AlsnetError("cross-fitted calibration needs at least two inner folds")
    held: dict[str, dict] = {}
    for method in METHODS:
        probs, ys, subs = [], [], []
        for j, f in enumerate(folds):
            rest = [g for i, g in enumerate(folds) if i != j]
            z, _, y, _ = _pooled(rest, c)
            cal = fit_calibrator(z, y, method)
            probs.append(cal.apply(f.logits[c]))
            ys.append(f.y)
            subs.append(f.subject)
        p, y, s = np.concatenate(probs), np.concatenate(ys), np.concatenate(subs)
        held[method] = {"subject_log_loss": subject_log_loss(p, y, s),
                        "ece": float(expected_calibration_error(p, y))}
    base = held["none"]
    better = [m for m in METHODS[1:] if held[m]["subject_log_loss"] < base["subject_log_loss"]
              and held[m]["ece"] < base["ece"]]
    method = min(better, key=lambda m: held[m]["subject_log_loss"]) if better else "none"
    z, _, y, _ = _pooled(folds, c)
    return fit_calibrator(z, y, method), {"held_out": held, "chosen": method,
                                          "rule": "used only if it lowers held-out log-loss and ECE"}


@dataclass(frozen=True)
class Selection:
    """Every choice of one outer fold, and what each was chosen on."""

    candidate: int
    calibrator: Calibrator
    rule: DecisionRule
    report: dict


def select(folds: list[InnerOOF], *, fit_rule: bool = True) -> Selection:
    """Candidate, calibration and decision rule from pooled inner OOF predictions."""
    curves = candidate_curves(folds)
    loss = np.asarray(curves["subject_log_loss"])
    c = int(np.argmin(loss))  # first of ties
    cal, cal_report = choose_calibration(folds, c)
    _, p, y, s = _pooled(folds, c, cal)
    if fit_rule and len(np.unique(y)) >= 2:
        rule = DecisionRule(tuple(float(v) for v in fit_class_offsets(p, y)),
                            fitted_on="pooled inner out-of-fold windows (balanced accuracy)")
    else:
        rule = DecisionRule(None, fitted_on="default rule")
    report = {"criterion": CRITERION, "chosen_candidate": c, "n_candidates": len(loss),
              "curves": curves, "calibration": cal_report, "calibrator": cal.to_dict(),
              "decision_rule": rule.to_dict(),
              "oof_after": {"subject_log_loss": subject_log_loss(p, y, s),
                            "window_balanced_accuracy": window_balanced_accuracy(p, y, rule),
                            "ece": float(expected_calibration_error(p, y))},
              "n_oof_windows": int(len(y)), "n_oof_subjects": int(len(np.unique(s))),
              "oof_subjects": sorted(str(v) for v in np.unique(s))}
    return Selection(c, cal, rule, report)


def ensemble_proba(test_logits: list[np.ndarray], selection: Selection) -> np.ndarray:
    """Outer test probabilities: the mean of the inner models' calibrated probabilities."""
    return np.mean([selection.calibrator.apply(z[selection.candidate]) for z in test_logits], axis=0)


__all__ = ["CRITERION", "InnerOOF", "Selection", "candidate_curves", "choose_calibration", "ensemble_proba",
           "select", "subject_log_loss", "window_balanced_accuracy"]
