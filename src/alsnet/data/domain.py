"""The domain of a set of recordings: what a model trained on them has seen.

:func:`training_domain` measures the record a model card keeps (``card["domain"]``):
the sampling rates and analogue band of the recordings, their muscles, and percentiles
of two statistics of the windows: the RMS amplitude and the share of power above
:data:`HF_HZ` (a 4 kHz recording resampled to the model rate holds none). It lives in
:mod:`alsnet.data` because cards are written in training; the comparison of a new
recording with it, and the warnings, are :mod:`alsnet.diagnosis.domain`.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
from scipy.signal import welch

from alsnet.data.io import MUSCLES, parse_n2001_name
from alsnet.data.windows import MODEL_FS

#: The statistic "hf_fraction" is the power above this frequency over the power above 20 Hz.
HF_HZ = 2000.0
#: Percentiles of each window statistic kept in the domain record.
PERCENTILES = (1, 5, 50, 95, 99)
#: Window statistics of a domain record.
STATS = ("rms_uv", "hf_fraction")


def window_stats(windows: np.ndarray, fs: float = MODEL_FS) -> dict[str, np.ndarray]:
    """RMS (µV) and share of power above :data:`HF_HZ` of each window (NaN windows skipped).

    Parameters
    ----------
    windows : ndarray, shape (n, T)
        µV at ``fs``.
    fs : float
        Sampling rate (Hz).
    """
    rms, hf = [], []
    for a in range(0, len(windows), 256):  # a training set of windows never sits in memory as float64
        x = np.asarray(windows[a:a + 256], dtype=np.float64)
        x = x[np.isfinite(x).all(axis=1)]
        if len(x) == 0:
            continue
        f, p = welch(x, fs=fs, nperseg=min(2048, x.shape[1]), axis=1)
        total = p[:, f >= 20.0].sum(axis=1)
        hf.append(p[:, f >= HF_HZ].sum(axis=1) / np.maximum(total, 1e-30))
        rms.append(x.std(axis=1))
    if not rms:
        return {k: np.zeros(0) for k in STATS}
    return {"rms_uv": np.concatenate(rms), "hf_fraction": np.concatenate(hf)}


def muscle_name(code_or_name: str | None) -> str | None:
    """A muscle code (``BB``) or header text (``Biceps brachii (long head)``) as a name."""
    if not code_or_name:
        return None
    s = str(code_or_name).strip()
    if s.upper() in MUSCLES:
        return MUSCLES[s.upper()]
    low = s.lower()
    for name in MUSCLES.values():
        if low.startswith(name):
            return name  # "Biceps brachii (long head)" is the biceps brachii
    return low


def muscle_of(record: str | None, meta: dict | None = None, code: str | None = None) -> str | None:
    """The muscle of a recording: its N2001 code or the header's ``muscle`` comment, as a name."""
    parsed = parse_n2001_name(record or "")
    return muscle_name(code or (parsed or {}).get("muscle") or (meta or {}).get("muscle"))


def _band(meta: dict) -> list[float] | None:
    """The analogue band from N2001-style header comments (``high-pass filter: 2 Hz``)."""
    def hz(v: object) -> float | None:
        if not v:
            return None
        s = str(v).lower().replace(" ", "")
        try:
            return float(s[:-3]) * 1e3 if s.endswith("khz") else float(s.rstrip("hz"))
        except ValueError:
            return None
    lo, hi = hz(meta.get("high-pass filter")), hz(meta.get("low-pass filter"))
    return [lo, hi] if lo is not None and hi is not None else None


def training_domain(windows: np.ndarray, *, rates: Iterable[float] = (), muscles: Iterable[str | None] = (),
                    metas: Iterable[dict] = (), source: str = "") -> dict:
    """The domain record of a model trained on ``windows`` (µV at the model rate).

    Parameters
    ----------
    windows : ndarray, shape (n, T)
        The training windows.
    rates : iterable of float
        Native sampling rates of the training recordings (empty where unknown).
    muscles : iterable of str
        Their muscles (codes or names; None entries are ignored).
    metas : iterable of dict
        Their header metadata, for the analogue band (N2001 filter comments).
    source : str
        What the record was measured from.
    """
    st = window_stats(windows)
    bands = {tuple(b) for b in (_band(m) for m in metas) if b}
    band = [min(b[0] for b in bands), max(b[1] for b in bands)] if bands else None
    return {"source": source or "measured from the model's training windows",
            "sampling_rate_hz": sorted({float(r) for r in rates}),
            "analogue_band_hz": band,
            "muscles": sorted({m for m in (muscle_name(x) for x in muscles) if m}),
            "n_windows": int(len(st["rms_uv"])),
            "window_stats": {k: {f"p{q}": float(np.percentile(v, q)) if len(v) else None for q in PERCENTILES}
                             for k, v in st.items()}}


def windowset_domain(x: np.ndarray, records: Iterable[str]) -> dict:
    """The domain record of training windows known only by their record names (a fold)."""
    return training_domain(x, muscles=[muscle_of(r) for r in set(records)],
                           source="measured from the training windows of this fold")


__all__ = ["HF_HZ", "PERCENTILES", "STATS", "muscle_name", "muscle_of", "training_domain", "window_stats",
           "windowset_domain"]
