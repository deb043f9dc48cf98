"""Calibration: temperature scaling, expected calibration error and reliability curves.

Temperature scaling (Guo et al., 2017) divides the logits by one scalar ``T`` fitted by
minimising the negative log-likelihood on held-out (validation) windows; it changes
confidence, never the ranking, so AUC is untouched (and for a binary task at threshold 0.5,
neither are the decisions).

Conventions
-----------
* Binary logits have shape ``(n,)`` or ``(n, 1)``: the logit of the positive class
  (``task.classes[1]``); probabilities are ``sigmoid(z / T)``. Multi-class logits have
  shape ``(n, k)``; probabilities are ``softmax(z / T)``.
* Probabilities are always returned as ``(n, n_classes)``, columns in task order.
* ECE and the reliability curve measure, for a **binary** task, the calibration of
  ``P(positive)`` against the observed frequency of the positive class (every window
  counts, whatever its prediction); for a **multi-class** task, the top-class confidence
  against the accuracy of the top class. Bins are ``n_bins`` equal-width bins on [0, 1];
  ECE is the count-weighted mean absolute gap.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import minimize, minimize_scalar
from scipy.special import log_expit, log_softmax

from alsnet.errors import AlsnetError
from alsnet.model.outputs import Calibrator, as_logits
from alsnet.model.outputs import probabilities as apply_temperature  # one conversion, named for calibration

#: Search range of log T: T in [0.01, 100].
LOG_T_BOUNDS = (np.log(0.01), np.log(100.0))


def _nll(z: np.ndarray, y: np.ndarray, binary: bool, t: float) -> float:
    if binary:
        zt = z / t
        return float(-np.mean(y * log_expit(zt) + (1 - y) * log_expit(-zt)))
    return float(-np.mean(log_softmax(z / t, axis=1)[np.arange(len(y)), y]))


def fit_temperature(logits: np.ndarray, y: np.ndarray) -> float:
    """Temperature that minimises the negative log-likelihood of ``y`` given ``logits``.

    Parameters
    ----------
    logits : ndarray
        ``(n,)``/``(n, 1)`` binary logits or ``(n, k)`` multi-class logits.
    y : ndarray
        Integer class codes (0/1 for binary).

    Returns
    -------
    float
        ``T > 0``; ``T > 1`` softens over-confident predictions.
    """
    z, binary = as_logits(logits)
    y = np.asarray(y).astype(np.int64).ravel()
    if len(y) != len(z) or not len(y):
        raise AlsnetError(f"need as many labels as logits (got {len(y)} and {len(z)}), at least one")
    if not np.isfinite(z).all():
        raise AlsnetError("logits contain NaN or infinity")
    # Optimise over log T so T stays positive and the search is scale-free.
    res = minimize_scalar(lambda lt: _nll(z, y, binary, float(np.exp(lt))),
                          bounds=LOG_T_BOUNDS, method="bounded", options={"xatol": 1e-6})
    return float(np.exp(res.x))


def _confidence(proba, y) -> tuple[np.ndarray, np.ndarray]:
    """(confidence, outcome) pairs under the module's binary / multi-class convention."""
    p = np.asarray(proba, dtype=np.float64)
    y = np.asarray(y).astype(np.int64).ravel()
    if p.ndim == 1:
        p = np.stack([1 - p, p], axis=1)
    if p.ndim != 2 or len(p) != len(y):
        raise AlsnetError(f"proba must be (n,) or (n, k) with n = len(y) = {len(y)}, got {p.shape}")
    if p.shape[1] == 2:
        return p[:, 1], (y == 1).astype(float)
    top = p.argmax(1)
    return p[np.arange(len(y)), top], (top == y).astype(float)


def reliability_curve(proba: np.ndarray, y: np.ndarray, n_bins: int = 15
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean confidence, observed frequency and count of each non-empty bin.

    Parameters
    ----------
    proba : ndarray
        ``(n, k)`` probabilities, or ``(n,)`` P(positive) of a binary task.
    y : ndarray
        Integer class codes.
    n_bins : int
        Equal-width bins on [0, 1].

    Returns
    -------
    confidence, frequency, count : ndarray
        One entry per non-empty bin, in increasing confidence.
    """
    conf, hit = _confidence(proba, y)
    b = np.clip((conf * n_bins).astype(np.int64), 0, n_bins - 1)
    count = np.bincount(b, minlength=n_bins)
    keep = count > 0
    s_conf = np.bincount(b, weights=conf, minlength=n_bins)[keep]
    s_hit = np.bincount(b, weights=hit, minlength=n_bins)[keep]
    return s_conf / count[keep], s_hit / count[keep], count[keep]


def expected_calibration_error(proba: np.ndarray, y: np.ndarray, n_bins: int = 15) -> float:
    """Expected calibration error (see the module docstring for what is measured)."""
    conf, freq, count = reliability_curve(proba, y, n_bins)
    if not count.sum():
        return float("nan")
    return float(np.sum(count * np.abs(conf - freq)) / count.sum())


def negative_log_likelihood(proba: np.ndarray, y: np.ndarray, eps: float = 1e-12) -> float:
    """Mean negative log-likelihood of ``y`` under ``(n, k)`` probabilities."""
    p = np.asarray(proba, dtype=np.float64)
    y = np.asarray(y).astype(np.int64).ravel()
    return float(-np.mean(np.log(np.clip(p[np.arange(len(y)), y], eps, 1.0))))


# --------------------------------------------------------------------------- calibrators

#: Calibration methods, from none to the most flexible.
METHODS = ("none", "temperature", "affine")


def fit_calibrator(logits: np.ndarray, y: np.ndarray, method: str) -> Calibrator:
    """Fit a :class:`Calibrator` of ``method`` by minimising the NLL of ``y``."""
    z, binary = as_logits(logits)
    y = np.asarray(y).astype(np.int64).ravel()
    k = 1 if binary else z.shape[1]
    if method == "none":
        return Calibrator("none", (1.0,) * k, (0.0,) * k)
    if method == "temperature":
        t = fit_temperature(z, y)
        return Calibrator("temperature", (1.0 / t,) * k, (0.0,) * k)
    if method != "affine":
        raise AlsnetError(f"unknown calibration method {method!r}; choose from {', '.join(METHODS)}")
    zz = z[:, None] if binary else z
    onehot = np.eye(2 if binary else k)[y]

    def nll(theta: np.ndarray) -> tuple[float, np.ndarray]:
        s, b = theta[:k], theta[k:]
        zc = zz * s + b
        if binary:
            ls = np.concatenate([log_expit(-zc), log_expit(zc)], axis=1)
        else:
            ls = log_softmax(zc, axis=1)
        loss = -np.mean(np.sum(onehot * ls, axis=1))
        # gradient of the mean NLL with respect to the calibrated logits
        g = (np.exp(ls) - onehot) / len(y)
        gz = g[:, 1:2] if binary else g
        return loss, np.concatenate([(gz * zz).sum(0), gz.sum(0)])

    res = minimize(nll, np.concatenate([np.ones(k), np.zeros(k)]), jac=True, method="L-BFGS-B",
                   bounds=[(1e-3, 1e3)] * k + [(-20.0, 20.0)] * k)
    return Calibrator("affine", tuple(float(v) for v in res.x[:k]), tuple(float(v) for v in res.x[k:]))


__all__ = ["fit_temperature", "apply_temperature", "expected_calibration_error",
           "reliability_curve", "negative_log_likelihood", "Calibrator", "fit_calibrator", "METHODS"]
