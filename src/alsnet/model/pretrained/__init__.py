"""Bundled models: the registry behind ``--model als-vs-normal|three-class|FILE``.

A bundled model is a ``NAME.safetensors`` + ``NAME.json`` pair in this package folder,
loaded with :func:`alsnet.model.checkpoint.load_model` (so the weights' SHA-256 is checked
against the card). Anything that is not a bundled name is taken as a path to a model
saved by :func:`alsnet.model.checkpoint.save_model`.
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

from alsnet.errors import AlsnetError, CheckpointError

if TYPE_CHECKING:  # the checkpoint module imports torch: not needed to name the default
    from alsnet.model.checkpoint import LoadedModel

#: Bundled model names, the task each serves, and a one-line description.
BUNDLED: dict[str, dict] = {
    "als-vs-normal": {"task": "als-vs-normal",
                      "description": "ALS vs normal, the paper's binary task (default)"},
    "three-class": {"task": "three-class",
                    "description": "normal vs ALS vs myopathy"},
}
DEFAULT_MODEL = "als-vs-normal"


def _bundled_stem(name: str) -> Path | None:
    """Stem of a bundled model's files, or None when they are not in this install."""
    folder = resources.files(__name__)
    weights, card = folder / f"{name}.safetensors", folder / f"{name}.json"
    if not (weights.is_file() and card.is_file()):
        return None
    # A regular install (wheel or editable) keeps package data as plain files; a zipped
    # install would need copying out, which alsnet does not support.
    return Path(os.fspath(weights)).with_suffix("")


def list_models() -> list[dict]:
    """The bundled models: name, task, description, whether installed, and path."""
    out = []
    for name, info in BUNDLED.items():
        stem = _bundled_stem(name)
        out.append({"name": name, **info, "available": stem is not None,
                    "path": None if stem is None else str(stem.with_suffix(".safetensors"))})
    return out


def resolve_model(name_or_path: str | os.PathLike | LoadedModel = DEFAULT_MODEL) -> LoadedModel:
    """Load a bundled model by name, or a saved model by path.

    Parameters
    ----------
    name_or_path : str, path or LoadedModel
        ``"als-vs-normal"`` (default) or ``"three-class"`` for a bundled model; otherwise
        a ``.safetensors``/``.json`` file (or their common stem). A :class:`LoadedModel`
        is returned as is.

    Raises
    ------
    AlsnetError
        A bundled name whose files are not in this install, or a name that is neither
        bundled nor an existing file; :class:`CheckpointError` for a file that fails the
        checks of :func:`~alsnet.model.checkpoint.load_model`.
    """
    from alsnet.model.checkpoint import LoadedModel, load_model

    if isinstance(name_or_path, LoadedModel):
        return name_or_path
    if name_or_path is None:
        name_or_path = DEFAULT_MODEL
    key = os.fspath(name_or_path)
    if key in BUNDLED:
        stem = _bundled_stem(key)
        if stem is None:
            raise AlsnetError(f"bundled model {key!r} is not in this install; pass --model FILE "
                              "(a .safetensors model saved by alsnet)")
        return load_model(stem)
    p = Path(key)
    candidates = [p] if p.suffix in (".safetensors", ".json") else [p, Path(key + ".safetensors")]
    if not any(c.exists() for c in candidates):
        if p.suffix == "" and os.sep not in key and "/" not in key:
            raise AlsnetError(f"unknown model {key!r}: not a bundled model "
                              f"({', '.join(BUNDLED)}) and no such file")
        raise CheckpointError("model file not found", p)
    return load_model(p)


__all__ = ["BUNDLED", "DEFAULT_MODEL", "list_models", "resolve_model"]
