"""ONNX export of ALSNet, and an ONNX Runtime inference engine.

The exported graph takes ``emg``: float32 ``(batch, time)`` of raw microvolts at
23437.5 Hz (any ``time`` ≥ 45 samples; 23437 for the model's 1-s windows; both axes
dynamic) and returns two outputs:

* ``probabilities`` ``(batch, n_classes)``: calibrated class probabilities, i.e.
  ``sigmoid(a z + b)`` as ``[1 - p, p]`` for a binary model, ``softmax(a ⊙ z + b)``
  otherwise, with ``a``, ``b`` the model card's calibration (:class:`~alsnet.model.outputs.Calibrator`:
  a temperature is ``a = 1/T``, ``b = 0``; baked into the graph): the probabilities
  ``alsnet predict`` reports;
* ``logits`` ``(batch, n_outputs)``: the raw network output, before calibration.

An ensemble model (the nested procedure's inner models) is one graph too: ``probabilities``
is the mean of the members' calibrated probabilities, as ``alsnet predict`` scores it, and
``logits`` is ``(batch, n_members, n_outputs)``, each member's raw output.

The metadata holds the card's ``calibration`` and ``decision_rule`` (``offsets`` added to
log P before the arg-max, :mod:`alsnet.evaluation.decision`; ``null``: the plain arg-max),
so a user of the graph alone can make the decision ``alsnet predict`` makes.

Columns follow the card's class order (stored in the ONNX metadata as ``classes``). The
graph is built with the TorchScript-based exporter (``dynamo=False``), which works
offline and in under a second; the ``torch.export``-based one is the fallback.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from alsnet.errors import AlsnetError
from alsnet.files import cache_dir
from alsnet.model.outputs import Calibrator

if TYPE_CHECKING:
    from alsnet.model.checkpoint import LoadedModel

OPSET = 17
INPUT_NAME = "emg"
OUTPUT_NAMES = ("probabilities", "logits")


def _wrapper(members: list, calibrator: Calibrator):  # noqa: ANN202
    import torch
    from torch import nn

    class Exportable(nn.Module):
        """(batch, time) µV → (calibrated probabilities, logits); the mean of the members'
        calibrated probabilities for an ensemble."""

        def __init__(self):
            super().__init__()
            self.members = nn.ModuleList(members)
            self.binary = members[0].n_outputs == 1
            self.register_buffer("scale", torch.tensor(calibrator.scale, dtype=torch.float32))
            self.register_buffer("bias", torch.tensor(calibrator.bias, dtype=torch.float32))

        def _proba(self, z):  # noqa: ANN001, ANN202
            zt = z * self.scale + self.bias
            if self.binary:
                p = torch.sigmoid(zt)
                return torch.cat([1 - p, p], dim=-1)
            return torch.softmax(zt, dim=-1)

        def forward(self, x):  # noqa: ANN001, ANN202
            zs = [m(x.unsqueeze(1)) for m in self.members]
            if len(zs) == 1:
                return self._proba(zs[0]), zs[0]
            p = torch.stack([self._proba(z) for z in zs], dim=1).mean(dim=1)
            return p, torch.stack(zs, dim=1)

    return Exportable().eval()


def _calibrator(calibration: Calibrator | float, n_outputs: int) -> Calibrator:
    """A card's calibrator, or a temperature as one (``scale = 1/T``), one entry per logit."""
    if isinstance(calibration, Calibrator):
        return calibration
    if not calibration > 0:
        raise AlsnetError(f"temperature must be positive, got {calibration}")
    return Calibrator("temperature", (1.0 / float(calibration),) * n_outputs, (0.0,) * n_outputs)


def onnx_bytes(model, calibration: Calibrator | float = 1.0, metadata: dict | None = None) -> bytes:  # noqa: ANN001
    """Serialised ONNX model of an :class:`~alsnet.model.network.ALSNet`, or of a list of
    them (an ensemble; see the module notes).

    ``calibration`` is the card's :class:`~alsnet.model.outputs.Calibrator` or a temperature.
    """
    import onnx
    import torch

    from alsnet.model.network import members_of  # torch: only where a network is exported
    members = members_of(model)
    cal = _calibrator(calibration, members[0].n_outputs)
    was_training = [m.training for m in members]
    for m in members:
        m.eval()
    w = _wrapper(members, cal)
    example = (torch.zeros(2, 1000),)
    buf = io.BytesIO()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(w, example, buf, dynamo=False, opset_version=OPSET,
                              input_names=[INPUT_NAME], output_names=list(OUTPUT_NAMES),
                              dynamic_axes={INPUT_NAME: {0: "batch", 1: "time"},
                                            "probabilities": {0: "batch"}, "logits": {0: "batch"}})
    except Exception:  # the legacy exporter may go away: use torch.export's
        from torch.export import Dim

        buf = io.BytesIO()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            prog = torch.onnx.export(w, example, dynamo=True, verbose=False,
                                     input_names=[INPUT_NAME], output_names=list(OUTPUT_NAMES),
                                     dynamic_shapes={"x": {0: Dim("batch"), 1: Dim("time", min=45)}})
        prog.save(buf)
    finally:
        for m, tr in zip(members, was_training):
            m.train(tr)
    proto = onnx.load_from_string(buf.getvalue())
    meta = {"producer": "alsnet", "input_units": "uV", "input_rate_hz": "23437.5",
            "calibration": json.dumps(cal.to_dict()), **(metadata or {})}
    for k, v in meta.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = str(k), v if isinstance(v, str) else json.dumps(v)
    return proto.SerializeToString()


def export_onnx(model: str | os.PathLike | LoadedModel, out: str | os.PathLike, check: bool = True) -> dict:
    """Write a model (name, path or :class:`~alsnet.model.checkpoint.LoadedModel`) to ONNX.

    Returns a summary: output path, task, classes, temperature and, with ``check``, the
    largest absolute difference of probabilities between ONNX Runtime and PyTorch on a
    random input.
    """
    from alsnet.files import atomic_write_bytes
    from alsnet.model.pretrained import resolve_model

    loaded = resolve_model(model)
    card = loaded.card
    members = loaded.members
    data = onnx_bytes(members, loaded.calibrator,
                      {"task": card["task"], "classes": list(loaded.classes),
                       "weights_sha256": card.get("weights_sha256", ""), "members": len(members),
                       "decision_rule": card.get("decision_rule")})
    out = Path(out)
    atomic_write_bytes(out, data)
    summary = {"onnx": str(out), "task": card["task"], "classes": list(loaded.classes),
               "temperature": loaded.temperature, "calibration": loaded.calibrator.to_dict(),
               "members": len(members), "inputs": {INPUT_NAME: ["batch", "time"]},
               "outputs": list(OUTPUT_NAMES)}
    if check:
        summary["max_abs_diff"] = check_parity(members, data, loaded.calibrator)
    return summary


def check_parity(model, data: bytes, calibration: Calibrator | float = 1.0, batch: int = 2,  # noqa: ANN001
                 n_times: int = 4000, seed: int = 0) -> float:
    """Largest |P_onnx − P_torch| on random EMG-like input (``model``: a network or an
    ensemble's list of them, whose calibrated probabilities are averaged)."""
    import torch

    from alsnet.model.network import members_of  # torch: only where a network is exported
    members = members_of(model)
    x = (np.random.default_rng(seed).standard_normal((batch, n_times)) * 100).astype(np.float32)
    sess = session(data, threads=None)
    got = sess.run([OUTPUT_NAMES[0]], {INPUT_NAME: x})[0]
    cal = _calibrator(calibration, members[0].n_outputs)
    with torch.no_grad():
        ref = np.mean([cal.apply(m.eval()(torch.from_numpy(x)[:, None]).numpy()) for m in members], axis=0)
    return float(np.abs(got - ref).max())


def session(data: bytes | str, threads: int | None):  # noqa: ANN201 - an onnxruntime.InferenceSession
    import onnxruntime as ort

    opts = ort.SessionOptions()
    if threads:
        opts.intra_op_num_threads = int(threads)
        opts.inter_op_num_threads = 1
    return ort.InferenceSession(data, sess_options=opts, providers=["CPUExecutionProvider"])


def _model_digest(model) -> str:
    import torch

    from alsnet import __version__

    h = hashlib.sha256(f"alsnet {__version__} torch {torch.__version__} opset {OPSET}".encode())
    for k, v in sorted(model.state_dict().items()):
        h.update(k.encode())
        h.update(v.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:32]


class OnnxEngine:
    """Inference through ONNX Runtime with the same ``.logits(x)`` as the other engines.

    The model is exported once and cached under :func:`cache_dir` by a digest of its
    weights (kept in memory only when the cache is not writable).
    """

    name = "onnx"

    def __init__(self, model, threads: int | None = None):
        from alsnet.files import atomic_write_bytes

        path = cache_dir() / "onnx" / f"alsnet-{_model_digest(model)}.onnx"
        if path.is_file():
            data: bytes | str = str(path)
        else:
            data = onnx_bytes(model, 1.0)
            try:
                atomic_write_bytes(path, data)
            except OSError:
                pass  # read-only home: keep it in memory
        try:
            self.session = session(data, threads)
        except Exception as e:  # a damaged cache file: rebuild in memory
            if isinstance(data, bytes):
                raise AlsnetError(f"ONNX Runtime cannot load the exported model ({e})") from None
            self.session = session(onnx_bytes(model, 1.0), threads)

    @classmethod
    def from_session(cls, sess) -> OnnxEngine:  # noqa: ANN001 - an onnxruntime.InferenceSession
        """An engine around an existing ONNX Runtime session of the same graph (e.g. quantised)."""
        eng = cls.__new__(cls)
        eng.session = sess
        return eng

    def logits(self, x: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(x, dtype=np.float32)
        return self.session.run([OUTPUT_NAMES[1]], {INPUT_NAME: x})[0]


__all__ = ["OnnxEngine", "check_parity", "export_onnx", "onnx_bytes", "session"]
