"""What the network's outputs mean: logits to class probabilities, in one place.

A binary model has one logit ``z`` (for ``task.classes[1]``) and gives ``[1 - p, p]`` with
``p = sigmoid(z / T)``; a k-class model has k logits and gives ``softmax(z / T)``. ``T`` is
the temperature of the model's calibration (1 when uncalibrated). Every path that turns
logits into probabilities (evaluation, ``predict``, ``explain``, ONNX parity) calls
:func:`probabilities`.
"""

from __future__ import annotations

import numpy as np
from scipy.special import expit, softmax

from alsnet.errors import AlsnetError


def as_logits(logits: np.ndarray) -> tuple[np.ndarray, bool]:
    """``(z, binary)``: ``(n,)`` logits of a binary model, or ``(n, k)`` multi-class logits."""
    z = np.asarray(logits, dtype=np.float64)
    if z.ndim == 1:
        return z, True
    if z.ndim == 2 and z.shape[1] == 1:
        return z[:, 0], True
    if z.ndim == 2 and z.shape[1] >= 2:
        return z, False
    raise AlsnetError(f"logits must have shape (n,), (n, 1) or (n, k), got {z.shape}")


def probabilities(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """Class probabilities ``(n, n_classes)`` of ``logits / temperature`` (float64)."""
    if not temperature > 0:
        raise AlsnetError(f"temperature must be positive, got {temperature}")
    z, binary = as_logits(logits)
    if binary:
        p = expit(z / temperature)
        return np.stack([1 - p, p], axis=1)
    return softmax(z / temperature, axis=1)


__all__ = ["as_logits", "probabilities"]
