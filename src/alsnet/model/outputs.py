"""What the network's outputs mean: logits to class probabilities, in one place.

A binary model has one logit ``z`` (for ``task.classes[1]``) and gives ``[1 - p, p]`` with
``p = sigmoid(z / T)``; a k-class model has k logits and gives ``softmax(z / T)``. ``T`` is
the temperature of the model's calibration (1 when uncalibrated). Every path that turns
logits into probabilities (evaluation, ``predict``, ``explain``, ONNX parity) calls
:func:`probabilities`, through the model card's :class:`Calibrator` where there is one.
"""

from __future__ import annotations

from dataclasses import dataclass

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


@dataclass(frozen=True)
class Calibrator:
    """A map from logits to calibrated probabilities: ``probabilities(scale * z + bias)``.

    ``none``: scale 1, bias 0. ``temperature``: scale ``1 / T``, bias 0 (Guo et al., 2017).
    ``affine``: a scale and a bias per logit, Platt scaling for a binary model (Platt, 1999)
    and vector scaling for a multi-class one (Guo et al., 2017); the bias is what corrects the
    prior shift of a class-weighted model, which no temperature can.
    """

    method: str = "none"
    scale: tuple[float, ...] = (1.0,)
    bias: tuple[float, ...] = (0.0,)

    def apply(self, logits: np.ndarray) -> np.ndarray:
        """Calibrated probabilities ``(n, n_classes)`` of ``logits`` ``(n,)``, ``(n, 1)`` or ``(n, k)``."""
        z, binary = as_logits(logits)
        s, b = np.asarray(self.scale, float), np.asarray(self.bias, float)
        zc = z * s[0] + b[0] if binary else z * s[None, :] + b[None, :]
        return probabilities(zc, 1.0)

    def to_dict(self) -> dict:
        return {"method": self.method, "scale": list(self.scale), "bias": list(self.bias)}

    @classmethod
    def from_dict(cls, d: dict | None) -> Calibrator:
        """From a card's ``calibration`` entry; an old card holding only ``temperature`` works too."""
        if not d:
            return cls()
        if "scale" not in d:
            t = float(d.get("temperature", 1.0))
            return cls("temperature" if t != 1.0 else "none", (1.0 / t,), (0.0,))
        return cls(str(d.get("method", "affine")), tuple(float(v) for v in d["scale"]),
                   tuple(float(v) for v in d["bias"]))


__all__ = ["Calibrator", "as_logits", "probabilities"]
