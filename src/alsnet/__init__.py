"""alsnet: ALSNet, a dilated 1-D CNN that detects ALS from raw needle EMG, evaluated honestly.

The public API, importable from the top level (loaded on first use so that ``import alsnet``
and ``alsnet --help`` stay fast):

- :func:`predict`: diagnose one recording (``alsnet.diagnosis.predict.predict``)
- :class:`ALSNet`: the network of the paper (``alsnet.model.network.ALSNet``)
- :func:`read_recording` and :class:`Recording`: the readers (``alsnet.data.io``)
- :func:`load_model`, :func:`save_model`: saved models (``alsnet.model.checkpoint``)

The package is layered; see ``docs/architecture.md``.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_PUBLIC = {
    "predict": "alsnet.diagnosis.predict",
    "explain_recording": "alsnet.diagnosis.explain",
    "ALSNet": "alsnet.model.network",
    "read_recording": "alsnet.data.io",
    "Recording": "alsnet.data.io",
    "load_model": "alsnet.model.checkpoint",
    "save_model": "alsnet.model.checkpoint",
}

__all__ = ["__version__", *_PUBLIC]


def __getattr__(name: str):
    if name in _PUBLIC:
        module = importlib.import_module(_PUBLIC[name])
        value = getattr(module, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'alsnet' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
