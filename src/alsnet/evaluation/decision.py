"""Decision rules fitted on validation subjects: per-class offsets on the log-probabilities.

The default rule (:func:`alsnet.evaluation.metrics.decide`) is P(positive) >= 0.5 for a binary task and
the most probable class otherwise. With imbalanced training data (N2001: 59 % of the windows
are normal) a network can rank patients correctly and still call them normal. The rule here
adds one offset per class to the log-probabilities, ``argmax_c log p_c + b_c`` (``b`` of the
first class fixed at 0), chosen to maximise the **balanced accuracy on the validation
windows** of a fold: windows of whole subjects held out from training, never the test
subject. For a binary task this is a threshold, ``P(positive) >= 1 / (1 + exp(b_1))``.

The shifted probabilities ``softmax(log p + b)`` are valid probabilities whose threshold-0.5 /
argmax decision is the fitted rule, so the same evaluation code (every level, bootstrap
intervals) scores them. Window-level AUC of a binary task is unchanged (a monotone map);
recording and subject levels average the shifted probabilities.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import softmax

from alsnet.errors import AlsnetError

#: Offsets searched, per class (natural-log units): e^3 = 20-fold change of the odds.
GRID = np.round(np.arange(-3.0, 3.0001, 0.05), 4)

RULE = "argmax of log P + per-class offsets fitted per fold on its validation windows (balanced accuracy)"


def _balanced_accuracy(pred: np.ndarray, y: np.ndarray, k: int) -> np.ndarray:
    """Balanced accuracy of each row of ``pred`` (r, n) against ``y`` (n,), over the classes present."""
    present = [c for c in range(k) if (y == c).any()]
    return np.mean([(pred[:, y == c] == c).mean(axis=1) for c in present], axis=0)


def fit_class_offsets(proba: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Offsets ``b`` (k,), ``b[0] = 0``, maximising validation balanced accuracy.

    Ties go to the smallest ``|b|`` (no shift when the default rule is already best).
    """
    p = np.asarray(proba, dtype=np.float64)
    y = np.asarray(y).astype(np.int64).ravel()
    if p.ndim != 2 or p.shape[1] < 2 or len(p) != len(y) or not len(y):
        raise AlsnetError(f"need (n, k >= 2) probabilities and n labels (got {p.shape} and {len(y)})")
    if len(np.unique(y)) < 2:
        raise AlsnetError("validation windows of a single class cannot fit a decision rule")
    k = p.shape[1]
    logp = np.log(np.clip(p, 1e-12, 1.0))
    grids = np.meshgrid(*([GRID] * (k - 1)), indexing="ij")
    cand = np.concatenate([np.zeros((grids[0].size, 1)), *[g.reshape(-1, 1) for g in grids]], axis=1)
    # chunks of candidates keep the (candidates, windows) decision array small
    score = np.concatenate([_balanced_accuracy(np.argmax(logp[None] + c[:, None, :], axis=2), y, k)
                            for c in np.array_split(cand, max(1, len(cand) // 2048))])
    tied = np.flatnonzero(score >= score.max() - 1e-12)
    return cand[tied[np.argmin(np.linalg.norm(cand[tied], axis=1))]].copy()


def apply_class_offsets(proba: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """``softmax(log p + b)``: probabilities whose argmax / 0.5 threshold is the fitted rule."""
    p = np.asarray(proba, dtype=np.float64)
    return softmax(np.log(np.clip(p, 1e-12, 1.0)) + np.asarray(offsets, dtype=np.float64), axis=1)


@dataclass(frozen=True)
class DecisionRule:
    """The one decision rule of alsnet: class codes from probabilities.

    With no offsets it is the paper's rule, ``P(positive) >= 0.5`` for a binary task and the
    most probable class otherwise. With offsets ``b`` (``b[0] = 0``) it is
    ``argmax_c log p_c + b_c``; for a binary task that is ``P(positive) >= 1 / (1 + e^b1)``.
    Evaluation (:func:`alsnet.evaluation.metrics.evaluate`) and ``alsnet predict`` decide
    through this class, on the same probabilities: the probabilities are never shifted.
    """

    offsets: tuple[float, ...] | None = None
    fitted_on: str = ""

    def decide(self, proba: np.ndarray) -> np.ndarray:
        """Class codes ``(n,)`` of ``(n, k)`` probabilities."""
        p = np.asarray(proba, dtype=np.float64)
        if p.ndim != 2 or p.shape[1] < 2:
            raise AlsnetError(f"need (n, k >= 2) probabilities, got shape {p.shape}")
        b = np.zeros(p.shape[1]) if self.offsets is None else np.asarray(self.offsets, dtype=np.float64)
        if len(b) != p.shape[1]:
            raise AlsnetError(f"decision rule has {len(b)} offsets for {p.shape[1]} classes")
        if p.shape[1] == 2:
            return (p[:, 1] >= self.threshold).astype(np.int64)
        return np.argmax(np.log(np.clip(p, 1e-300, 1.0)) + b, axis=1).astype(np.int64)

    @property
    def threshold(self) -> float:
        """Binary rule as a threshold on ``P(positive)``."""
        b1 = 0.0 if self.offsets is None else float(self.offsets[1])
        return float(1.0 / (1.0 + np.exp(b1)))

    def describe(self, classes: tuple[str, ...] | list[str]) -> str:
        if len(classes) == 2:
            return f"P({classes[1]}) >= {self.threshold:.4g}"
        if self.offsets is None or not any(self.offsets):
            return "argmax"
        return "argmax of log P + offsets " + ", ".join(f"{c} {b:+.2f}" for c, b in zip(classes, self.offsets))

    def to_dict(self) -> dict:
        return {"offsets": None if self.offsets is None else list(self.offsets), "fitted_on": self.fitted_on}

    @classmethod
    def from_dict(cls, d: dict | None) -> DecisionRule:
        if not d or d.get("offsets") is None:
            return cls(None, (d or {}).get("fitted_on", ""))
        return cls(tuple(float(v) for v in d["offsets"]), d.get("fitted_on", ""))


DEFAULT_RULE = DecisionRule()


__all__ = ["fit_class_offsets", "apply_class_offsets", "RULE", "GRID", "DecisionRule", "DEFAULT_RULE"]
