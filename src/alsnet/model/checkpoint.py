"""Saved models: weights as safetensors plus a JSON model card; never pickle.

A model is two files side by side: ``NAME.safetensors`` (the ``state_dict`` of
:class:`~alsnet.model.network.ALSNet`, tensors only, so loading cannot run code) and
``NAME.json`` (the card: task, label map, window and rate settings, split, training
data, metrics, calibration temperature, and the SHA-256 of the weights file). Loading
checks the digest, the architecture and the label map, and raises
:class:`~alsnet.errors.CheckpointError` naming the file on any mismatch.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch

from alsnet.data.labels import get_task
from alsnet.data.windows import window_settings
from alsnet.errors import CheckpointError
from alsnet.files import atomic_write_bytes, atomic_write_text, sha256_file
from alsnet.model.network import ALSNet, members_of
from alsnet.model.outputs import Calibrator

CARD_VERSION = 1


@dataclass
class LoadedModel:
    """A model ready to use, with its card."""

    model: ALSNet
    card: dict
    path: str
    classes: tuple[str, ...] = field(default_factory=tuple)
    #: Every member of an ensemble model (the mean of their calibrated probabilities is the
    #: model's output); ``[model]`` for a single network.
    members: list[ALSNet] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.members:
            self.members = [self.model]

    @property
    def temperature(self) -> float:
        return float(self.card.get("calibration", {}).get("temperature", 1.0))

    @property
    def calibrator(self) -> Calibrator:
        """The card's map from logits to the probabilities evaluation scored and ``predict`` reports."""
        return Calibrator.from_dict(self.card.get("calibration"))


def _stem(path: str | os.PathLike) -> Path:
    p = Path(path)
    return p.with_suffix("") if p.suffix in (".safetensors", ".json") else p


def _with(stem: Path, suffix: str) -> Path:
    """``stem`` + suffix; ``Path.with_suffix`` would turn ``model.v2`` into ``model.json``."""
    return stem.parent / (stem.name + suffix)


def save_model(path: str | os.PathLike, model: ALSNet | list[ALSNet], card: dict) -> Path:
    """Write ``PATH.safetensors`` and ``PATH.json``; returns the weights path.

    ``model`` may be a list of networks of one architecture: an ensemble, stored in one
    weights file (tensors ``member<i>.<name>``) and scored as the mean of the members'
    calibrated probabilities.
    """
    from safetensors.torch import save

    stem = _stem(path)
    weights = _with(stem, ".safetensors")
    members = members_of(model)
    model = members[0]
    if len(members) == 1:
        state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    else:
        state = {f"member{i}.{k}": v.detach().cpu().contiguous()
                 for i, m in enumerate(members) for k, v in m.state_dict().items()}
    # One metadata entry only: safetensors writes several in a random order (safetensors issue
    # #584), so the same weights would get another file and another SHA-256 on every save.
    blob = save(state, metadata={"format": "pt"})
    atomic_write_bytes(weights, blob)
    task = get_task(card["task"])
    full = {
        "card_version": CARD_VERSION,
        "architecture": {"name": "ALSNet", "n_chans": model.n_chans, "n_outputs": model.n_outputs,
                         **({"members": len(members)} if len(members) > 1 else {})},
        "classes": list(task.classes),
        "window": window_settings(),
        **card,
        "weights_file": weights.name,
        "weights_sha256": hashlib.sha256(blob).hexdigest(),
    }
    atomic_write_text(_with(stem, ".json"), json.dumps(full, indent=2, default=str) + "\n")
    return weights


def _check_state(state: dict, model: ALSNet, weights: Path) -> None:
    """Name the first difference between saved tensors and the architecture's."""
    want = model.state_dict()
    missing, extra = sorted(set(want) - set(state)), sorted(set(state) - set(want))
    if missing or extra:
        what = (f"missing {len(missing)} tensor(s) (e.g. {missing[0]!r})" if missing else
                f"{len(extra)} unexpected tensor(s) (e.g. {extra[0]!r})")
        raise CheckpointError(f"weights do not fit ALSNet: {what}; another network's weights?", weights)
    for k, v in want.items():
        if tuple(state[k].shape) != tuple(v.shape):
            raise CheckpointError(f"weights do not fit ALSNet: tensor {k!r} has shape "
                                  f"{tuple(state[k].shape)}, the card's architecture needs "
                                  f"{tuple(v.shape)}", weights)
        if state[k].is_floating_point() and not torch.isfinite(state[k]).all():
            raise CheckpointError(f"tensor {k!r} holds NaN or infinite values", weights)


def load_model(path: str | os.PathLike, *, check_digest: bool = True) -> LoadedModel:
    """Load a model saved by :func:`save_model` (give either file or the common stem)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    stem = _stem(path)
    weights, card_path = _with(stem, ".safetensors"), _with(stem, ".json")
    if Path(path).suffix in (".pt", ".pth", ".ckpt", ".pkl", ".pickle"):
        raise CheckpointError("pickled checkpoints are not loaded (unpickling runs code); "
                              "use a .safetensors model saved by alsnet", path)
    for f in (weights, card_path):
        if not f.is_file():
            raise CheckpointError("model file not found", f)
    try:
        card = json.loads(card_path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CheckpointError(f"model card is not valid JSON ({e})", card_path) from None
    if not isinstance(card, dict) or "task" not in card or "architecture" not in card:
        raise CheckpointError("model card lacks 'task' or 'architecture'", card_path)
    if check_digest and card.get("weights_sha256") and sha256_file(weights) != card["weights_sha256"]:
        raise CheckpointError("weights do not match the SHA-256 in the model card "
                              "(corrupt or replaced file)", weights)
    try:
        task = get_task(card["task"])
    except Exception:
        raise CheckpointError(f"model card names an unknown task {card.get('task')!r}", card_path) from None
    if not isinstance(card.get("classes", []), list) or list(card.get("classes", [])) != list(task.classes):
        raise CheckpointError(f"label map {card.get('classes')} does not match task "
                              f"{task.name!r} {list(task.classes)}", card_path)
    win = card.get("window", {})
    if win and win != window_settings():
        raise CheckpointError(f"model was trained on windows {win}, this alsnet uses "
                              f"{window_settings()}", card_path)
    arch = card["architecture"]
    if not isinstance(arch, dict) or arch.get("name") != "ALSNet" or arch.get("n_outputs") != task.n_outputs:
        raise CheckpointError(f"architecture {arch} does not fit task {task.name!r}", card_path)
    n_chans = arch.get("n_chans", 1)
    if not isinstance(n_chans, int) or isinstance(n_chans, bool) or not 1 <= n_chans <= 64:
        raise CheckpointError(f"architecture n_chans {n_chans!r} is not a channel count", card_path)
    calib = card.get("calibration", {})
    temp = calib.get("temperature", 1.0) if isinstance(calib, dict) else None
    if not isinstance(temp, (int, float)) or isinstance(temp, bool) or not 0 < temp < float("inf"):
        raise CheckpointError(f"calibration {calib!r} lacks a positive temperature", card_path)
    if isinstance(calib, dict) and ("scale" in calib or "bias" in calib):
        k = task.n_outputs
        for key in ("scale", "bias"):
            v = calib.get(key)
            if not (isinstance(v, list) and len(v) == k and all(isinstance(x, (int, float)) and not isinstance(x, bool)
                                                                 and math.isfinite(x) for x in v)):
                raise CheckpointError(f"calibration {key} must be {k} finite number(s), got {v!r}", card_path)
    try:
        state = load_file(str(weights))
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"not a readable safetensors file ({e})", weights) from None
    n_members = arch.get("members", 1)
    if not isinstance(n_members, int) or isinstance(n_members, bool) or not 1 <= n_members <= 64:
        raise CheckpointError(f"architecture members {n_members!r} is not a member count", card_path)
    if n_members == 1:
        states = [state]
    else:
        states = [{k[len(f"member{i}."):]: v for k, v in state.items() if k.startswith(f"member{i}.")}
                  for i in range(n_members)]
        stray = sorted(k for k in state if not any(k.startswith(f"member{i}.") for i in range(n_members)))
        if stray:
            raise CheckpointError(f"weights hold {len(stray)} tensor(s) of no member (e.g. {stray[0]!r})", weights)
    members = []
    for s in states:
        model = ALSNet(n_chans=n_chans, n_outputs=int(arch["n_outputs"]))
        _check_state(s, model, weights)
        try:
            model.load_state_dict(s, strict=True)
        except RuntimeError as e:
            first = str(e).splitlines()[0] if str(e) else "state dict mismatch"
            raise CheckpointError(f"weights do not fit ALSNet ({first})", weights) from None
        members.append(model.eval())
    return LoadedModel(model=members[0], card=card, path=str(weights), classes=task.classes, members=members)
