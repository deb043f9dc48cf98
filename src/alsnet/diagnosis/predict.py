"""Diagnose recordings: stream 1-s windows through ALSNet and average their probabilities.

A recording of any length is read and scored chunk by chunk through the readers of
:mod:`alsnet.data` (:func:`alsnet.data.io.open_source`: the same code as the whole-file
reader, so predict sees the microvolts training saw), resampled to the model rate per chunk
with enough overlap that the result equals resampling the whole signal, so an hour of EMG
never sits in memory as float64. Window probabilities use the model card's calibration (an
ensemble's: the mean of its members' calibrated probabilities); the recording's probability is
the mean of its windows' (the recording-level rule of :mod:`alsnet.evaluation.metrics`) and its
label comes from the card's decision rule (:class:`alsnet.evaluation.decision.DecisionRule`:
``P(positive) >= 0.5`` or the argmax unless the card holds fitted offsets).

This is research software, not a medical device.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from alsnet.data.domain import muscle_of
from alsnet.data.io import open_source
from alsnet.data.labels import get_task
from alsnet.data.mne_io import input_name, open_input
from alsnet.data.source import Source, as_float32
from alsnet.data.windows import (
    MODEL_FS,
    WINDOW_SAMPLES,
    resample_ratio,
    resample_to_model_rate,
    resampled_length,
)
from alsnet.diagnosis.domain import card_domain, domain_warnings
from alsnet.diagnosis.qc import DEFAULT_QC_POLICY, RecordingChecks, check_policy
from alsnet.errors import AlsnetError, InputError
from alsnet.evaluation.decision import DecisionRule
from alsnet.files import sha256_file
from alsnet.model.checkpoint import LoadedModel
from alsnet.model.pretrained import BUNDLED, DEFAULT_MODEL, resolve_model

if TYPE_CHECKING:
    import mne
    import torch

    from alsnet.engine.backends import InferenceEngine

DISCLAIMER = ("alsnet is research software, not a medical device: its output is not a "
              "diagnosis and must not guide patient care.")
#: Windows resampled and held in memory at once (about 3 MB of float32 per 32 windows).
CHUNK_WINDOWS = 32
#: Windows per forward pass (one window's activations are about 25 MB in float32).
BATCH_SIZE = 8


# --------------------------------------------------------------------------- engines

def make_engine(model: torch.nn.Module, backend: str = "auto", threads: int | None = None
                ) -> InferenceEngine:
    """An engine with ``.logits(x (N, T) float32 µV) -> (N, n_outputs)`` and ``.name``.

    ``"onnx"`` runs the graph that ``alsnet export`` writes (the same graph as ``train
    --backend onnx``); ``"torch"`` is the plain ``nn.Module`` (``"eager"``); anything else,
    ``"auto"`` included, is an :class:`alsnet.engine.backends.InferenceEngine` backend.
    """
    from alsnet.engine.backends import InferenceEngine

    return InferenceEngine(model, backend="eager" if backend == "torch" else backend, threads=threads)


# --------------------------------------------------------------------------- windows

def _model_rate(source: Source, o0: int, o1: int) -> np.ndarray:
    """Samples ``[o0, o1)`` of the source resampled to the model rate.

    The input span is widened by the resampling filter's half-length (plus the one-sample
    NaN spread) and starts at a multiple of ``down``, so that its output grid is the whole
    signal's shifted by an integer: away from the span's edges the values are those of
    resampling the whole signal at once.
    """
    # float32 before resampling, as read_recording gives training: the same numbers either way
    if source.fs == MODEL_FS:
        return as_float32(source.read(o0, o1))
    up, down = resample_ratio(source.fs)
    pad = math.ceil(10 * max(up, down) / up) + 2
    i0 = max(0, (o0 * down // up - pad) // down * down)
    i1 = min(source.n_samples, -(-o1 * down // up) + pad)
    y = resample_to_model_rate(as_float32(source.read(i0, i1)), source.fs, name=source.path)
    off = i0 * up // down
    return y[o0 - off:o1 - off]


def iter_window_chunks(source: Source, chunk_windows: int = CHUNK_WINDOWS
                       ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Non-overlapping model-rate windows of a source, ``chunk_windows`` at a time.

    Yields ``(starts, windows)``: start samples at the model rate and ``(k, WINDOW_SAMPLES)``
    float32 µV, NaN where invalid (the caller applies the invalid-window policy).
    """
    n_out = resampled_length(source.n_samples, source.fs)
    n_win = n_out // WINDOW_SAMPLES
    if n_win == 0:
        raise InputError(f"recording is {n_out} samples ({n_out / MODEL_FS:.3f} s at {MODEL_FS} Hz), "
                         f"shorter than one 1-s window ({WINDOW_SAMPLES} samples)", source.path)
    for k0 in range(0, n_win, max(1, int(chunk_windows))):
        k1 = min(n_win, k0 + max(1, int(chunk_windows)))
        seg = _model_rate(source, k0 * WINDOW_SAMPLES, k1 * WINDOW_SAMPLES)
        starts = np.arange(k0, k1, dtype=np.int64) * WINDOW_SAMPLES
        yield starts, np.asarray(seg, dtype=np.float32).reshape(k1 - k0, WINDOW_SAMPLES)


def count_windows(source: Source) -> int:
    """Non-overlapping model-rate windows the source holds."""
    return resampled_length(source.n_samples, source.fs) // WINDOW_SAMPLES


# --------------------------------------------------------------------------- predictor

@dataclass
class WindowScores:
    """Per-window calibrated probabilities of one recording (used windows only)."""

    starts: np.ndarray        # (n_used,) start sample at the model rate
    proba: np.ndarray         # (n_used, n_classes)
    n_windows: int            # windows the recording holds, used or not


def bundled_or_path(model: str | os.PathLike | LoadedModel, loaded: LoadedModel) -> str:
    """The model as a user named it: a bundled name, or the weights file."""
    return model if isinstance(model, str) and model in BUNDLED else loaded.path


def model_identity(loaded: LoadedModel, name: str | os.PathLike) -> dict:
    """``{"name", "task", "weights_sha256"}`` of a loaded model, as machine-readable output names it."""
    sha = loaded.card.get("weights_sha256") or sha256_file(loaded.path)
    return {"name": os.fspath(name), "task": loaded.card["task"], "weights_sha256": sha}


class Predictor:
    """A loaded model and inference engine that score many recordings.

    Parameters
    ----------
    model : str, path or LoadedModel
        Bundled model name (``"als-vs-normal"``, ``"three-class"``) or a saved model file.
    backend : str
        ``"auto"`` (fastest available), ``"torch"``/``"eager"`` or ``"onnx"``.
    batch_size : int
        Windows per forward pass; memory grows by about 25 MB per window.
    threads : int, optional
        Intra-op threads for the engine (default: the library's own choice).
    chunk_windows : int
        Windows read and resampled at once.
    qc : str
        Quality-control policy (:data:`alsnet.diagnosis.qc.QC_POLICIES`): ``"flag"`` scores every
        window and lists its quality reasons, ``"drop"`` leaves flagged windows out of the mean.
    """

    def __init__(self, model: str | os.PathLike | LoadedModel = DEFAULT_MODEL, backend: str = "auto",
                 batch_size: int = BATCH_SIZE, threads: int | None = None,
                 chunk_windows: int = CHUNK_WINDOWS, qc: str = DEFAULT_QC_POLICY):
        if int(batch_size) < 1:
            raise AlsnetError(f"batch size must be at least 1, got {batch_size}")
        self.loaded = resolve_model(model)
        self.model_name = bundled_or_path(model, self.loaded)
        self.task = get_task(self.loaded.card["task"])
        self.classes = tuple(self.loaded.classes)
        self.temperature = self.loaded.temperature
        # the calibration and decision rule evaluation scored with (alsnet.evaluation.decision)
        self.calibrator = self.loaded.calibrator
        self.rule = DecisionRule.from_dict(self.loaded.card.get("decision_rule"))
        # one engine per network: an ensemble model's output is the mean of its members'
        # calibrated probabilities, exactly as its nested evaluation scored it
        self.engines = [make_engine(m, backend, threads) for m in self.loaded.members]
        self.batch_size = int(batch_size)
        self.chunk_windows = int(chunk_windows)
        self.qc_policy = check_policy(qc)
        # the training domain recordings are compared with (alsnet.diagnosis.domain)
        self.domain, self.domain_note = card_domain(self.loaded.card)

    def describe(self) -> dict:
        """What produced the scores: ``{"model": {"name", "task", "weights_sha256", "members",
        "decision_rule", "evaluation"}, "backend"}`` (``decision_rule``: the rule the label
        comes from, e.g. ``P(als) >= 0.3659``; ``evaluation``: :func:`card_evaluation` of its card)."""
        model = {**model_identity(self.loaded, self.model_name), "members": len(self.loaded.members),
                 "decision_rule": self.rule.describe(self.classes), "evaluation": card_evaluation(self.loaded.card)}
        return {"model": model, "backend": self.engine.name}

    @property
    def engine(self):  # noqa: ANN201 - an engine with .logits and .name
        """The (first) network's engine: what ``explain`` reads evidence from."""
        return self.engines[0]

    @engine.setter
    def engine(self, value) -> None:  # noqa: ANN001
        self.engines = [value]

    def probabilities(self, windows: np.ndarray) -> np.ndarray:
        """Calibrated probabilities ``(n, n_classes)`` of windows ``(n, T)`` at the model rate."""
        return np.mean([self.calibrator.apply(e.logits(windows)) for e in self.engines], axis=0)

    def window_scores(self, source: Source, progress: Callable[[int, int], None] | None = None,
                      checks: RecordingChecks | None = None) -> WindowScores:
        """Calibrated probabilities of every valid window; windows with NaN are dropped.

        ``progress(done, total)`` is called after each chunk with window counts; ``checks``
        gathers each window's quality reasons and says which to score (its policy)."""
        starts, probas, n_windows = [], [], 0
        total = count_windows(source)
        for st, win in iter_window_chunks(source, self.chunk_windows):
            n_windows += len(st)
            ok = np.isfinite(win).all(axis=1) if checks is None else checks.add(win)
            st, win = st[ok], win[ok]
            for b in range(0, len(win), self.batch_size):
                probas.append(self.probabilities(win[b:b + self.batch_size]))
            starts.append(st)
            if progress:
                progress(n_windows, total)
        if not probas:
            if checks is not None:
                raise checks.none_scored(source.path)
            raise InputError(f"all {n_windows} window(s) contain invalid samples (policy 'drop')",
                             source.path)
        return WindowScores(np.concatenate(starts), np.concatenate(probas), n_windows)

    def decide(self, proba: np.ndarray) -> str:
        """Label of a recording-level probability vector, by the model's one decision rule."""
        return self.classes[int(self.rule.decide(np.asarray(proba, dtype=float)[None])[0])]

    def predict(self, path_or_array: str | os.PathLike | np.ndarray | mne.io.BaseRaw, fs: float | None = None,
                scale: float | None = None, channel: int | str | None = None, errors: str = "raise",
                progress: Callable[[int, int], None] | None = None) -> dict:
        """Diagnose one recording (see :func:`predict`); ``errors="return"`` reports an
        :class:`AlsnetError` in the ``error`` field instead of raising it."""
        # an mne.io.Raw, a BIDS file or any other input: alsnet.data.mne_io.open_input (issue: MNE/BIDS)
        path = input_name(path_or_array)
        checks = RecordingChecks(self.qc_policy)
        try:
            with open_input(path_or_array, fs=fs, scale=scale, channel=channel) as source:
                scores = self.window_scores(source, progress, checks)
                native_fs, muscle = source.fs, muscle_of(source.record, source.meta)
        except AlsnetError as e:
            if errors != "return":
                raise
            return {"path": path, "label": None, "probabilities": None, "n_windows": None,
                    "n_windows_used": None, "windows": None, "warnings": [], "error": str(e).splitlines()[0]}
        mean = scores.proba.mean(axis=0)
        return {"path": path, "label": self.decide(mean),
                "probabilities": {c: float(p) for c, p in zip(self.classes, mean)},
                "n_windows": int(scores.n_windows), "n_windows_used": int(len(scores.starts)),
                "windows": checks.windows(scores.starts, scores.proba, self.classes),
                "warnings": domain_warnings(self.domain, fs=native_fs, muscle=muscle, stats=checks.stats(),
                                            note=self.domain_note),
                "error": None}


def predict(path_or_array: str | os.PathLike | np.ndarray | mne.io.BaseRaw, fs: float | None = None,
            model: str | os.PathLike | LoadedModel = DEFAULT_MODEL, backend: str = "auto",
            scale: float | None = None, channel: int | str | None = None, qc: str = DEFAULT_QC_POLICY) -> dict:
    """Diagnose one recording with a bundled or saved model.

    Parameters
    ----------
    path_or_array : path, ndarray or mne.io.Raw
        A recording file (WFDB ``.hea``, ``.npy``, ``.csv``, ``.wav``, ``.edf``; a BIDS
        ``*_emg.edf`` takes its channel from ``_channels.tsv``), a 1-D array of µV (then
        ``fs`` is required) or an ``mne.io.Raw`` (its EMG channel, or ``channel`` by name or
        number; :mod:`alsnet.data.mne_io`).
    fs : float, optional
        Sampling rate for arrays, ``.npy`` and ``.csv`` (Hz); any rate is resampled.
    model : str, path or LoadedModel
        ``"als-vs-normal"`` (default), ``"three-class"`` or a saved model file.
    backend : str
        ``"auto"``, ``"torch"`` or ``"onnx"``.
    scale : float, optional
        µV per unit for ``.wav`` files.
    channel : int or str, optional
        Signal to use in a multi-channel WFDB or EDF file; a name or number for a Raw.
    qc : str
        ``"flag"`` (default) or ``"drop"``: whether windows flagged by quality control
        (:mod:`alsnet.diagnosis.qc`) count in the recording's mean.

    Returns
    -------
    dict
        ``path`` (None for an array), ``label``, ``probabilities`` (class → calibrated
        probability, the mean over the scored windows), ``n_windows``, ``n_windows_used``
        (windows scored), ``windows`` (per window ``index``, ``start_s``, ``probabilities``
        or None where not scored, and ``qc``: its quality reasons, empty when clean),
        ``warnings`` (where the recording falls outside the model's training domain,
        :mod:`alsnet.diagnosis.domain`) and ``error`` (None).

    Raises
    ------
    AlsnetError
        The model or the recording cannot be used.
    """
    return Predictor(model, backend, qc=qc).predict(path_or_array, fs=fs, scale=scale, channel=channel)


def card_evaluation(card: dict) -> dict | None:
    """How the model's procedure did on people it never saw, from its card; None if the card has
    no subject-wise evaluation.

    ``protocol_label``; ``people_right`` (k of n with Wilson and Clopper–Pearson intervals, from
    the card's confusion matrix or, on older cards, from its accuracy and count: accuracy is
    k / n); ``per_class`` (each class's people, or None without a confusion matrix); ``seeds``;
    ``against_baseline`` (per seed: the baseline run and the paired subject log-loss difference,
    this model's procedure minus the baseline, above 0 where the baseline is better). A card
    whose evaluation cannot be read gives ``{"error": ...}``.
    """
    from alsnet.evaluation.metrics import count_proportions
    from alsnet.evaluation.stats import proportion

    ev = card.get("evaluation") if isinstance(card, dict) else None
    sub = ev.get("subject") if isinstance(ev, dict) else None
    if not isinstance(sub, dict):
        return None
    try:
        cm, per_class = sub.get("confusion_matrix"), None
        if cm:
            counted = count_proportions(cm, get_task(card["task"]))
            people, per_class = counted["accuracy"], counted["recall"]
        else:
            people = proportion(round(float(sub["accuracy"]) * int(sub["n"])), int(sub["n"]))
        return {"protocol_label": ev.get("protocol_label") or ev.get("protocol"), "people_right": people,
                "per_class": per_class, "seeds": [int(x["seed"]) for x in ev.get("seeds") or []],
                "against_baseline": [{"seed": a["seed"], "baseline": os.path.basename(str(a["baseline"])),
                                      "subject_log_loss_difference": {
                                          "difference": float(a["subject_log_loss_difference"]["difference"]),
                                          "ci": [float(v) for v in a["subject_log_loss_difference"]["ci"]]}}
                                     for a in ev.get("against_baseline") or []]}
    except (AlsnetError, KeyError, TypeError, ValueError, IndexError, AttributeError) as e:
        return {"error": f"its card's evaluation cannot be read ({type(e).__name__}: {e})"}


def evaluation_line(card: dict) -> str:
    """:func:`card_evaluation` as the one line ``alsnet predict`` prints."""
    e = card_evaluation(card)
    if e is None:
        return "its card carries no subject-wise evaluation"
    if "error" in e:
        return e["error"]
    p = e["people_right"]
    line = (f"its card's evaluation ({e['protocol_label']}): {p['k']} of {p['n']} people right, "
            f"Wilson 95 % [{100 * p['wilson'][0]:.0f}, {100 * p['wilson'][1]:.0f}]")
    if e["per_class"]:
        counts = [f"{c} {q['k']} of {q['n']}" for c, q in e["per_class"].items()]
        line += f" ({', '.join(counts)})"
    if len(e["seeds"]) > 1:
        line += f" (seed {e['seeds'][0]} of {len(e['seeds'])})"
    against = e["against_baseline"]
    if against:
        d = [a["subject_log_loss_difference"] for a in against]
        line += (f"; subject log-loss minus the {against[0]['baseline']} of the same folds: "
                 + ", ".join(f"{x['difference']:+.3f} [{x['ci'][0]:+.3f}, {x['ci'][1]:+.3f}]" for x in d)
                 + f" (seed{'s' if len(d) > 1 else ''} {', '.join(str(a['seed']) for a in against)}; "
                 "above 0: the baseline is better)")
    return line


__all__ = ["DISCLAIMER", "Predictor", "WindowScores", "card_evaluation", "count_windows", "evaluation_line",
           "iter_window_chunks", "make_engine", "model_identity", "open_source", "predict"]

