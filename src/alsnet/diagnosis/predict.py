"""Diagnose recordings: stream 1-s windows through ALSNet and average their probabilities.

A recording of any length is read and scored chunk by chunk (WFDB format-16/32 signals,
``.npy`` arrays and PCM ``.wav`` by positioned reads, other WFDB formats through
``wfdb.rdrecord(sampfrom=, sampto=)``), resampled to the model rate per chunk with enough
overlap that the result equals resampling the whole signal, so an hour of EMG never sits
in memory as float64. Window probabilities use the model card's calibration temperature;
the recording's probability is the mean of its windows' (the recording-level rule of
:mod:`alsnet.evaluation.metrics`) and its label is ``P(positive) >= 0.5`` (binary) or the argmax.

This is research software, not a medical device.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

from alsnet.data.io import UNIT_TO_UV, _wfdb_header, check_channel, check_fs, open_edf, read_recording
from alsnet.data.labels import get_task
from alsnet.data.windows import MODEL_FS, WINDOW_SAMPLES, resample_to_model_rate
from alsnet.errors import AlsnetError, InputError
from alsnet.model.checkpoint import LoadedModel
from alsnet.model.outputs import probabilities
from alsnet.model.pretrained import DEFAULT_MODEL, resolve_model

DISCLAIMER = ("alsnet is research software, not a medical device: its output is not a "
              "diagnosis and must not guide patient care.")
#: Windows resampled and held in memory at once (about 3 MB of float32 per 32 windows).
CHUNK_WINDOWS = 32
#: Windows per forward pass (one window's activations are about 25 MB in float32).
BATCH_SIZE = 8


# --------------------------------------------------------------------------- sources

class SignalSource:
    """A single-channel signal read by sample range: ``read(a, b)`` gives float32 µV with
    NaN where invalid. The base class wraps an array (in memory, or read by range)."""

    def __init__(self, x: np.ndarray, fs: float, name: str = "signal", scale: float = 1.0):
        self.x, self.fs, self.name, self.scale = x, float(fs), name, float(scale)
        self.n_samples = int(x.shape[0])

    def read(self, start: int, stop: int) -> np.ndarray:
        y = np.array(self.x[start:stop], dtype=np.float32)
        if self.scale != 1.0:
            y *= self.scale
        y[~np.isfinite(y)] = np.nan
        return y


class _FileColumn:
    """One column of a binary file of fixed-width rows, read on demand with ``np.fromfile``.

    Not a memory map on purpose: pages of a mapped file stay resident once touched, so an
    hour-long recording would grow the process by the file's size.
    """

    def __init__(self, path, dtype, offset: int, n_rows: int, n_cols: int = 1, col: int = 0):
        self.path, self.dtype, self.offset = os.fspath(path), np.dtype(dtype), int(offset)
        self.n_cols, self.col, self.shape = int(n_cols), int(col), (int(n_rows),)

    def __getitem__(self, sl: slice) -> np.ndarray:
        a, b, _ = sl.indices(self.shape[0])
        n = max(0, b - a)
        d = np.fromfile(self.path, dtype=self.dtype, count=n * self.n_cols,
                        offset=self.offset + a * self.n_cols * self.dtype.itemsize)
        if d.size != n * self.n_cols:
            raise InputError(f"signal file ends early (wanted samples {a}-{b})", self.path)
        return d.reshape(n, self.n_cols)[:, self.col]


def _unmapped(mm: np.memmap, path) -> _FileColumn | np.ndarray:
    """A contiguous single-channel memory map as a :class:`_FileColumn`."""
    if isinstance(mm, np.memmap) and (mm.flags.c_contiguous or mm.flags.f_contiguous):
        return _FileColumn(path, mm.dtype, mm.offset, mm.size)
    return mm


class WfdbSource(SignalSource):
    """One channel of a WFDB record, read by range (direct reads where the format allows)."""

    DIRECT = {"16": ("<i2", -32768), "61": (">i2", -32768), "32": ("<i4", -2**31)}

    def __init__(self, path, channel: int | None = None):
        from pathlib import Path

        stem = Path(path).with_suffix("")
        hea = stem.with_suffix(".hea")
        h = _wfdb_header(stem)
        n_sig = h.n_sig or 0
        if n_sig == 0:
            raise InputError("header declares no signals", hea)
        if channel is None and n_sig > 1:
            raise InputError(f"record has {n_sig} signals; choose one with channel=/--channel", hea)
        ch = channel or 0
        if not 0 <= ch < n_sig:
            raise InputError(f"channel {ch} does not exist (record has {n_sig})", hea)
        if not h.sig_len or h.sig_len <= 0:
            raise InputError(f"header declares {h.sig_len} samples", hea)
        unit = (h.units[ch] if h.units else "") or "uV"
        if unit.strip().lower() not in UNIT_TO_UV:
            raise InputError(f"unknown signal unit {unit!r} (expected uV, mV or V)", hea)
        dat = stem.parent / h.file_name[ch]
        if not dat.exists():
            raise InputError(f"signal file {dat.name} named by the header is missing", dat)
        self.stem, self.ch, self.fs, self.name = stem, ch, check_fs(h.fs, hea), str(hea)
        self.n_samples = int(h.sig_len)
        self.uv = UNIT_TO_UV[unit.strip().lower()]
        self.gain = float(h.adc_gain[ch] or 200.0)  # WFDB: gain 0 means the default 200
        self.baseline = float((h.baseline or [0] * n_sig)[ch] or 0)
        self.direct = None
        fmt = str(h.fmt[ch])
        simple = all(not s for s in (h.skew or [])) and all(s in (None, 1) for s in (h.samps_per_frame or []))
        same = {str(h.fmt[i]) for i, f in enumerate(h.file_name) if f == h.file_name[ch]} == {fmt}
        if fmt in self.DIRECT and simple and same:
            dtype, self.invalid = self.DIRECT[fmt]
            cols = [i for i, f in enumerate(h.file_name) if f == h.file_name[ch]]
            offset = int((h.byte_offset or [0] * n_sig)[ch] or 0)
            width = np.dtype(dtype).itemsize * len(cols)
            held = max(0, (dat.stat().st_size - offset) // width)
            if held < self.n_samples:
                raise InputError(f"header says {self.n_samples} samples but the file holds {held}"
                                 f" (from byte offset {offset})", dat)
            self.direct = _FileColumn(dat, dtype, offset, self.n_samples, len(cols), cols.index(ch))

    def read(self, start: int, stop: int) -> np.ndarray:
        if self.direct is not None:
            d = np.asarray(self.direct[start:stop])
            y = ((d.astype(np.float64) - self.baseline) * (self.uv / self.gain)).astype(np.float32)
            y[d == self.invalid] = np.nan
            return y
        import warnings

        import wfdb

        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                rec = wfdb.rdrecord(str(self.stem), sampfrom=int(start), sampto=int(stop),
                                    channels=[self.ch], physical=True)
        except Exception as e:
            raise InputError(f"cannot read WFDB signal ({type(e).__name__}: {e})", self.name) from None
        y = (rec.p_signal[:, 0] * self.uv).astype(np.float32)
        y[~np.isfinite(y)] = np.nan
        return y


class EdfSource(SignalSource):
    """One signal of an EDF/EDF+/BDF file, read by range through ``pyedflib``."""

    def __init__(self, path, channel: int | None = None):
        f, ch, uv, _ = open_edf(path, channel)
        try:
            self.n_samples = int(f.getNSamples()[ch])
            fs = f.getSampleFrequency(ch)
        finally:
            f.close()
        if self.n_samples <= 0:
            raise InputError("recording holds no samples", path)
        self.path, self.ch, self.uv = os.fspath(path), ch, float(uv)
        self.fs, self.name, self.scale = check_fs(fs, path), os.fspath(path), 1.0

    def read(self, start: int, stop: int) -> np.ndarray:
        f, _, _, _ = open_edf(self.path, self.ch)
        try:
            y = (f.readSignal(self.ch, start=int(start), n=int(stop - start)) * self.uv).astype(np.float32)
        except Exception as e:
            raise InputError(f"cannot read EDF signal ({type(e).__name__}: {e})", self.path) from None
        finally:
            f.close()
        y[~np.isfinite(y)] = np.nan
        return y


def _npy_source(path, fs: float | None) -> SignalSource:
    if fs is None:
        raise InputError("a .npy file carries no sampling rate; give fs= / --fs", path)
    try:
        x = np.load(path, mmap_mode="r", allow_pickle=False)
    except Exception as e:
        raise InputError(f"cannot read .npy ({type(e).__name__}: {e})", path) from None
    x = check_channel(x, path)
    return SignalSource(_unmapped(x, path), check_fs(fs, path), os.fspath(path))


def _wav_source(path, scale: float | None) -> SignalSource | None:
    """A PCM ``.wav`` read by range, or None where scipy cannot map it (then read whole)."""
    import warnings

    from scipy.io import wavfile

    if scale is None:
        raise InputError("a .wav file carries no physical scale; give scale= / --scale (µV per unit)", path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", wavfile.WavFileWarning)
            fs, x = wavfile.read(path, mmap=True)
    except Exception:
        return None
    if x.ndim == 2:
        if x.shape[1] != 1:
            raise InputError(f"WAV has {x.shape[1]} channels; alsnet needs one", path)
        x = x[:, 0]
    if x.size == 0:
        raise InputError("recording holds no samples", path)
    return SignalSource(_unmapped(x, path), check_fs(fs, path), os.fspath(path), scale=float(scale))


def open_source(path_or_array, fs: float | None = None, scale: float | None = None,
                channel: int | None = None) -> SignalSource:
    """A streaming view of a recording: WFDB, ``.npy``, PCM ``.wav`` and EDF/BDF are read by
    range from disk; CSV (rarely long) is read whole by :func:`alsnet.data.io.read_recording`."""
    from pathlib import Path

    if isinstance(path_or_array, np.ndarray):
        if fs is None:
            raise InputError("an array carries no sampling rate; give fs=")
        x = np.asarray(path_or_array)
        if x.ndim != 1 or x.size == 0 or not np.issubdtype(x.dtype, np.number):
            raise InputError(f"expected a non-empty 1-D numeric array, got shape {x.shape} {x.dtype}")
        return SignalSource(x, check_fs(fs, "array"), "array")
    p = Path(path_or_array)
    if p.is_dir():
        raise InputError("is a folder, not a recording file (no recordings found in it)", p)
    suffix = p.suffix.lower()
    if suffix in (".hea", ".dat", ".bin") or (suffix == "" and p.with_suffix(".hea").exists()):
        return WfdbSource(p, channel)
    if suffix == ".npy" and p.is_file() and p.stat().st_size > 0:
        return _npy_source(p, fs)
    if suffix in (".edf", ".bdf") and p.is_file() and p.stat().st_size > 0:
        return EdfSource(p, channel)
    if suffix == ".wav" and p.is_file() and p.stat().st_size > 0:
        src = _wav_source(p, scale)
        if src is not None:
            return src
    rec = read_recording(p, fs=fs, scale=scale, channel=channel)
    return SignalSource(rec.signal, rec.fs, rec.path or os.fspath(p))


# --------------------------------------------------------------------------- engines

def make_engine(model, backend: str = "auto", threads: int | None = None):
    """An engine with ``.logits(x (N, T) float32 µV) -> (N, n_outputs)`` and ``.name``.

    ``"onnx"`` runs the graph that ``alsnet export`` writes (:class:`alsnet.engine.onnx.OnnxEngine`);
    ``"torch"`` is the plain ``nn.Module`` (``"eager"``); anything else, ``"auto"`` included,
    is an :class:`alsnet.engine.backends.InferenceEngine` backend.
    """
    if backend == "onnx":
        from alsnet.engine.onnx import OnnxEngine

        return OnnxEngine(model, threads=threads)
    from alsnet.engine.backends import InferenceEngine

    return InferenceEngine(model, backend="eager" if backend == "torch" else backend, threads=threads)


# --------------------------------------------------------------------------- windows

def _ratio(fs: float) -> tuple[int, int]:
    """(up, down) exactly as :func:`alsnet.data.windows.resample_to_model_rate` chooses them."""
    from alsnet.data.windows import resample_ratio

    return resample_ratio(fs)


def n_model_samples(n_samples: int, fs: float) -> int:
    """Length of the signal at the model rate (the length ``resample_poly`` returns)."""
    if fs == MODEL_FS:
        return n_samples
    up, down = _ratio(fs)
    return -(-n_samples * up // down)


def _model_rate(source: SignalSource, o0: int, o1: int) -> np.ndarray:
    """Samples ``[o0, o1)`` of the source resampled to the model rate.

    The input span is widened by the resampling filter's half-length (plus the one-sample
    NaN spread) and starts at a multiple of ``down``, so that its output grid is the whole
    signal's shifted by an integer: away from the span's edges the values are those of
    resampling the whole signal at once.
    """
    if source.fs == MODEL_FS:
        return source.read(o0, o1)
    up, down = _ratio(source.fs)
    pad = math.ceil(10 * max(up, down) / up) + 2
    i0 = max(0, (o0 * down // up - pad) // down * down)
    i1 = min(source.n_samples, -(-o1 * down // up) + pad)
    y = resample_to_model_rate(source.read(i0, i1), source.fs, name=source.name)
    off = i0 * up // down
    return y[o0 - off:o1 - off]


def iter_window_chunks(source: SignalSource, chunk_windows: int = CHUNK_WINDOWS
                       ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Non-overlapping model-rate windows of a source, ``chunk_windows`` at a time.

    Yields ``(starts, windows)``: start samples at the model rate and ``(k, WINDOW_SAMPLES)``
    float32 µV, NaN where invalid (the caller applies the invalid-window policy).
    """
    n_out = n_model_samples(source.n_samples, source.fs)
    n_win = n_out // WINDOW_SAMPLES
    if n_win == 0:
        raise InputError(f"recording is {n_out} samples ({n_out / MODEL_FS:.3f} s at {MODEL_FS} Hz), "
                         f"shorter than one 1-s window ({WINDOW_SAMPLES} samples)", source.name)
    for k0 in range(0, n_win, max(1, int(chunk_windows))):
        k1 = min(n_win, k0 + max(1, int(chunk_windows)))
        seg = _model_rate(source, k0 * WINDOW_SAMPLES, k1 * WINDOW_SAMPLES)
        starts = np.arange(k0, k1, dtype=np.int64) * WINDOW_SAMPLES
        yield starts, np.asarray(seg, dtype=np.float32).reshape(k1 - k0, WINDOW_SAMPLES)


def count_windows(source: SignalSource) -> int:
    return n_model_samples(source.n_samples, source.fs) // WINDOW_SAMPLES


# --------------------------------------------------------------------------- predictor

@dataclass
class WindowScores:
    """Per-window calibrated probabilities of one recording (used windows only)."""

    starts: np.ndarray        # (n_used,) start sample at the model rate
    proba: np.ndarray         # (n_used, n_classes)
    n_windows: int            # windows the recording holds, used or not


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
    """

    def __init__(self, model: str | os.PathLike | LoadedModel = DEFAULT_MODEL, backend: str = "auto",
                 batch_size: int = BATCH_SIZE, threads: int | None = None,
                 chunk_windows: int = CHUNK_WINDOWS):
        if int(batch_size) < 1:
            raise AlsnetError(f"batch size must be at least 1, got {batch_size}")
        self.loaded = resolve_model(model)
        self.task = get_task(self.loaded.card["task"])
        self.classes = tuple(self.loaded.classes)
        self.temperature = self.loaded.temperature
        self.engine = make_engine(self.loaded.model, backend, threads)
        self.batch_size = int(batch_size)
        self.chunk_windows = int(chunk_windows)

    def window_scores(self, source: SignalSource,
                      progress: Callable[[int, int], None] | None = None) -> WindowScores:
        """Calibrated probabilities of every valid window; windows with NaN are dropped.

        ``progress(done, total)`` is called after each chunk with window counts."""
        starts, probas, n_windows = [], [], 0
        total = count_windows(source)
        for st, win in iter_window_chunks(source, self.chunk_windows):
            n_windows += len(st)
            ok = np.isfinite(win).all(axis=1)
            st, win = st[ok], win[ok]
            for b in range(0, len(win), self.batch_size):
                z = self.engine.logits(win[b:b + self.batch_size])
                probas.append(probabilities(z, self.temperature))
            starts.append(st)
            if progress:
                progress(n_windows, total)
        if not probas:
            raise InputError(f"all {n_windows} window(s) contain invalid samples (policy 'drop')",
                             source.name)
        return WindowScores(np.concatenate(starts), np.concatenate(probas), n_windows)

    def decide(self, proba: np.ndarray) -> str:
        """Label of a recording-level probability vector."""
        if self.task.binary:
            return self.classes[1] if proba[1] >= 0.5 else self.classes[0]
        return self.classes[int(np.argmax(proba))]

    def predict(self, path_or_array, fs: float | None = None, scale: float | None = None,
                channel: int | None = None, errors: str = "raise",
                progress: Callable[[int, int], None] | None = None) -> dict:
        """Diagnose one recording (see :func:`predict`); ``errors="return"`` reports an
        :class:`AlsnetError` in the ``error`` field instead of raising it."""
        path = None if isinstance(path_or_array, np.ndarray) else os.fspath(path_or_array)
        try:
            source = open_source(path_or_array, fs=fs, scale=scale, channel=channel)
            scores = self.window_scores(source, progress)
        except AlsnetError as e:
            if errors != "return":
                raise
            return {"path": path, "label": None, "probabilities": None, "n_windows": None,
                    "n_windows_used": None, "error": str(e).splitlines()[0]}
        mean = scores.proba.mean(axis=0)
        return {"path": path, "label": self.decide(mean),
                "probabilities": {c: float(p) for c, p in zip(self.classes, mean)},
                "n_windows": int(scores.n_windows), "n_windows_used": int(len(scores.starts)),
                "error": None}


def predict(path_or_array, fs: float | None = None, model: str | os.PathLike | LoadedModel = DEFAULT_MODEL,
            backend: str = "auto", scale: float | None = None, channel: int | None = None) -> dict:
    """Diagnose one recording with a bundled or saved model.

    Parameters
    ----------
    path_or_array : path or ndarray
        A recording file (WFDB ``.hea``, ``.npy``, ``.csv``, ``.wav``, ``.edf``) or a 1-D
        array of µV (then ``fs`` is required).
    fs : float, optional
        Sampling rate for arrays, ``.npy`` and ``.csv`` (Hz); any rate is resampled.
    model : str, path or LoadedModel
        ``"als-vs-normal"`` (default), ``"three-class"`` or a saved model file.
    backend : str
        ``"auto"``, ``"torch"`` or ``"onnx"``.
    scale : float, optional
        µV per unit for ``.wav`` files.
    channel : int, optional
        Signal to use in a multi-channel WFDB or EDF file.

    Returns
    -------
    dict
        ``path`` (None for an array), ``label``, ``probabilities`` (class → calibrated
        probability, the mean over windows), ``n_windows``, ``n_windows_used`` (windows
        without invalid samples) and ``error`` (None).

    Raises
    ------
    AlsnetError
        The model or the recording cannot be used.
    """
    return Predictor(model, backend).predict(path_or_array, fs=fs, scale=scale, channel=channel)


__all__ = ["DISCLAIMER", "Predictor", "WindowScores", "count_windows", "iter_window_chunks",
           "make_engine", "predict"]

