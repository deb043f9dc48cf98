"""Windows: the one place where the model's input rate and window length are decided.

ALSNet sees one second of raw EMG at the EMGLab N2001 rate (23437.5 Hz), i.e. 23437
samples, one channel. Recordings at other rates are resampled to that rate with
:func:`scipy.signal.resample_poly` before they are cut. Windows that contain invalid
samples (NaN in the signal) are handled by a named policy.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from typing import Literal

import numpy as np
from scipy.signal import resample_poly

from alsnet.data.io import check_fs
from alsnet.errors import InputError

#: The model's sampling rate in Hz (EMGLab N2001).
MODEL_FS: float = 23437.5
#: Window length in seconds.
WINDOW_SECONDS: float = 1.0
#: Window length in samples: floor(MODEL_FS * WINDOW_SECONDS), as in the paper.
WINDOW_SAMPLES: int = int(MODEL_FS * WINDOW_SECONDS)

InvalidPolicy = Literal["drop", "keep-zero", "error"]
INVALID_POLICIES: tuple[str, ...] = ("drop", "keep-zero", "error")


def window_settings() -> dict:
    """The settings recorded in every saved model and every result file."""
    return {
        "model_fs": MODEL_FS,
        "window_seconds": WINDOW_SECONDS,
        "window_samples": WINDOW_SAMPLES,
    }


#: Lowest and highest input rates alsnet resamples from. Below 1 kHz a recording holds
#: none of the needle-EMG band the model learned on (up to 10 kHz) and upsampling would
#: multiply its length more than 23-fold; above 10 MHz the ratio stops being meaningful.
MIN_FS: float = 1000.0
MAX_FS: float = 1e7
#: Longest signal, in samples at the model rate, resampled in one piece (about 25 h).
MAX_MODEL_SAMPLES: int = 2**31 - 1
#: Largest window overlap: beyond it the windows of a long recording would fill memory
#: with near-copies (overlap 0.95 is a hop of 1172 samples, 50 ms).
MAX_OVERLAP: float = 0.95


def _check_fs(fs, name: str) -> float:
    fs = check_fs(fs, name)
    if not MIN_FS <= fs <= MAX_FS:
        raise InputError(f"sampling rate {fs:g} Hz is outside the {MIN_FS:g} Hz-{MAX_FS:g} Hz that "
                         f"alsnet resamples to its {MODEL_FS} Hz model rate", name)
    return fs


#: Largest up or down factor: the polyphase filter has about 20 times as many taps, and
#: designing a longer one takes seconds (e.g. 1001.3 Hz would need 211202/9023).
MAX_RATIO_TERM: int = 50_000


def resample_ratio(fs: float) -> tuple[int, int]:
    """``(up, down)``: the rational factor :func:`resample_to_model_rate` uses for ``fs``.

    ``MODEL_FS / fs`` as a fraction with a denominator of at most 10 000, which is exact
    for the usual rates (4000 Hz: 375/64; 2048 Hz: 46875/4096). Where that fraction has a
    term above :data:`MAX_RATIO_TERM` (odd rates such as 1001.3 Hz) the nearest fraction
    with denominator at most 1000 (then 100, 10) is used instead; its rate error is below
    0.01 %. Modules that resample piecewise must use this same factor.
    """
    fs = _check_fs(fs, "signal")
    exact = MODEL_FS / fs
    for limit in (10_000, 1000, 100, 10):
        r = Fraction(exact).limit_denominator(limit)
        if max(r.numerator, r.denominator) <= MAX_RATIO_TERM:
            break
    return r.numerator, r.denominator


def resampled_length(n_samples: int, fs: float) -> int:
    """Length of an ``n_samples`` signal at ``fs`` after :func:`resample_to_model_rate`."""
    if float(fs) == MODEL_FS:
        return int(n_samples)
    up, down = resample_ratio(fs)
    return -(-int(n_samples) * up // down)


def resample_to_model_rate(signal: np.ndarray, fs: float, *, name: str = "signal") -> np.ndarray:
    """Resample ``signal`` from ``fs`` to :data:`MODEL_FS` (polyphase, anti-aliased).

    NaNs (invalid samples) are carried through as NaN: the neighbourhood of an invalid
    sample in the resampled signal is marked invalid too, so the window policy still sees it.
    Rates outside [:data:`MIN_FS`, :data:`MAX_FS`] raise :class:`InputError`.
    """
    fs = _check_fs(fs, name)
    x = np.asarray(signal)
    if x.ndim != 1 or not np.issubdtype(x.dtype, np.number) or np.iscomplexobj(x):
        raise InputError(f"expected a 1-D real signal, got shape {x.shape} {x.dtype}", name)
    if fs == MODEL_FS:
        return np.asarray(x, dtype=np.float32)
    up, down = resample_ratio(fs)
    n_out = -(-len(x) * up // down)
    if n_out > MAX_MODEL_SAMPLES:
        raise InputError(f"recording is too long to resample in one piece ({n_out} samples at "
                         f"{MODEL_FS} Hz)", name)
    if len(x) == 0:
        return np.zeros(0, dtype=np.float32)
    x = x.astype(np.float64)
    invalid = ~np.isfinite(x)
    y = resample_poly(np.where(invalid, 0.0, x), up, down)
    if invalid.any():
        # Map each invalid input sample to the output span it influences (about one
        # input sample on each side).
        idx = np.flatnonzero(invalid)
        lo = np.floor((idx - 1) * up / down).astype(np.int64)
        hi = np.ceil((idx + 1) * up / down).astype(np.int64)
        bad = np.zeros(len(y) + 1, dtype=np.int64)
        np.add.at(bad, np.clip(lo, 0, len(y)), 1)
        np.add.at(bad, np.clip(hi + 1, 0, len(y)), -1)
        y[np.cumsum(bad)[: len(y)] > 0] = np.nan
    return y.astype(np.float32)


@dataclass(frozen=True)
class WindowResult:
    """Windows cut from one recording.

    ``windows`` is ``(n_used, WINDOW_SAMPLES)`` float32; ``starts`` the start sample (at the
    model rate) of each used window; ``n_windows`` the number of windows the recording
    holds and ``n_dropped`` how many the invalid-sample policy removed.
    """

    windows: np.ndarray
    starts: np.ndarray
    n_windows: int
    n_dropped: int


def window_hop(overlap: float = 0.0, length: int = WINDOW_SAMPLES) -> int:
    """Samples between the starts of neighbouring windows for a given ``overlap``."""
    try:
        overlap = float(overlap)
    except (TypeError, ValueError):
        raise InputError(f"overlap is not a number: {overlap!r}") from None
    if not 0.0 <= overlap <= MAX_OVERLAP:
        raise InputError(f"overlap must be in [0, {MAX_OVERLAP}], got {overlap}")
    return max(1, int(round(length * (1.0 - overlap))))


def window_starts(n_samples: int, overlap: float = 0.0, length: int = WINDOW_SAMPLES) -> np.ndarray:
    """Start indices of the windows of a signal of ``n_samples`` samples."""
    hop = window_hop(overlap, length)
    if n_samples < length:
        return np.zeros(0, dtype=np.int64)
    return np.arange(0, n_samples - length + 1, hop, dtype=np.int64)


def make_windows(
    signal: np.ndarray,
    *,
    overlap: float = 0.0,
    invalid: InvalidPolicy = "drop",
    name: str = "signal",
) -> WindowResult:
    """Cut a signal at the model rate into windows of :data:`WINDOW_SAMPLES`.

    Parameters
    ----------
    signal : ndarray, shape (n_samples,)
        Microvolts at :data:`MODEL_FS`; NaN marks invalid samples.
    overlap : float
        Fraction of a window shared by neighbours (0 = non-overlapping, the paper's).
    invalid : {"drop", "keep-zero", "error"}
        What to do with a window that contains invalid samples: drop it (default),
        keep it with the invalid samples set to 0 µV, or raise :class:`InputError`.
    """
    if invalid not in INVALID_POLICIES:
        raise InputError(f"unknown invalid-sample policy {invalid!r}; choose from {INVALID_POLICIES}")
    x = np.asarray(signal)
    if x.ndim != 1 or not np.issubdtype(x.dtype, np.number) or np.iscomplexobj(x):
        raise InputError(f"expected a 1-D real signal, got shape {x.shape} {x.dtype}", name)
    x = x.astype(np.float32, copy=False)
    if len(x) < WINDOW_SAMPLES:
        raise InputError(
            f"recording is {len(x)} samples ({len(x) / MODEL_FS:.3f} s at {MODEL_FS} Hz), "
            f"shorter than one {WINDOW_SECONDS:g}-s window ({WINDOW_SAMPLES} samples)",
            name,
        )
    starts = window_starts(len(x), overlap)
    bad_prefix = np.concatenate([[0], np.cumsum(~np.isfinite(x), dtype=np.int64)])
    n_bad = bad_prefix[starts + WINDOW_SAMPLES] - bad_prefix[starts]
    has_bad = n_bad > 0
    if has_bad.any() and invalid == "error":
        first = int(starts[np.argmax(has_bad)])
        raise InputError(f"{int(has_bad.sum())} of {len(starts)} window(s) contain invalid samples "
                         f"({int(n_bad.sum())} in all; the first such window starts at "
                         f"{first / MODEL_FS:.3f} s); use the 'drop' or 'keep-zero' policy to go on",
                         name)
    keep = ~has_bad if invalid == "drop" else np.ones_like(has_bad)
    used = starts[keep]
    if len(used) == 0:
        raise InputError(
            f"all {len(starts)} window(s) contain invalid samples (policy {invalid!r})", name
        )
    idx = used[:, None] + np.arange(WINDOW_SAMPLES)[None, :]
    win = x[idx]
    if invalid == "keep-zero":
        win = np.nan_to_num(win, nan=0.0, posinf=0.0, neginf=0.0)
    return WindowResult(
        windows=np.ascontiguousarray(win, dtype=np.float32),
        starts=used,
        n_windows=len(starts),
        n_dropped=int((~keep).sum()),
    )
