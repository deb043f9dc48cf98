"""Hand-crafted EMG window features for the classical baselines (SVM, random forest, kNN).

The ALSNet paper's point is that the network needs none of these; the baselines show what
a conventional feature pipeline achieves under the same split. All features are computed
on the window minus its mean (needle EMG carries a DC offset that says nothing about the
patient), vectorised over windows, in chunks to bound memory.

Features (names from :func:`feature_names`)
-------------------------------------------
Time domain (amplitudes in µV):
  ``mav`` mean absolute value, ``rms``, ``wl`` waveform length (mean absolute first
  difference, per sample), ``zc`` zero crossings per second (passages from above
  ``+threshold_uv`` to below ``-threshold_uv`` or back, so noise around zero is ignored),
  ``ssc`` slope-sign changes per second (the same, on the first difference with
  :data:`SLOPE_THRESHOLD_UV`), ``kurtosis`` (excess), ``skewness``, ``ptp`` peak-to-peak.
Spectral (Welch, Hann, 1024-sample segments, 50% overlap):
  ``mnf`` mean and ``mdf`` median frequency (Hz), ``log_power`` log10 of the total power,
  and ``rel_<lo>_<hi>`` relative power in :data:`BANDS_HZ`.
Wavelet (Daubechies-4, :data:`DWT_LEVELS` levels, a scipy-only filter bank):
  per sub-band (``d1`` … ``d6`` details, highest frequencies first, and ``a6``)
  ``<band>_logE`` log10 of the mean squared coefficient and ``<band>_relE`` its share of
  the energy over all sub-bands.
"""

from __future__ import annotations

import numpy as np
from scipy.signal import upfirdn, welch

from alsnet.errors import AlsnetError

#: Relative band powers, in Hz (the last band stops at 10 kHz; above it is mostly noise).
BANDS_HZ: tuple[tuple[float, float], ...] = ((0, 250), (250, 500), (500, 1000), (1000, 2000),
                                             (2000, 5000), (5000, 10000))
#: Dead band (µV) around zero that a zero crossing must cross from side to side.
THRESHOLD_UV = 5.0
#: Dead band (µV per sample) around zero slope that a slope-sign change must cross. At
#: 23 kHz a waveform's slope near its peak is far below any amplitude threshold, so the
#: classic per-sample amplitude test would miss every extremum of a clean wave.
SLOPE_THRESHOLD_UV = 0.5
WELCH_NPERSEG = 1024
DWT_LEVELS = 6
#: Daubechies-4 decomposition low-pass filter (8 taps; orthonormal: sum = sqrt 2, energy 1).
DB4_LO = np.array([-0.010597401784997278, 0.032883011666982945, 0.030841381835986965,
                   -0.18703481171888114, -0.02798376941698385, 0.6308807679295904,
                   0.7148465705525415, 0.23037781330885523])
#: The matching high-pass (quadrature mirror) filter.
DB4_HI = DB4_LO[::-1] * (-1.0) ** np.arange(len(DB4_LO))
#: Windows processed at once (bounds memory to ~100 MB for 1-s windows).
CHUNK = 256

_TIME = ["mav", "rms", "wl", "zc", "ssc", "kurtosis", "skewness", "ptp"]
_SPEC = ["mnf", "mdf", "log_power"] + [f"rel_{int(lo)}_{int(hi)}" for lo, hi in BANDS_HZ]
_BANDS = [f"d{i}" for i in range(1, DWT_LEVELS + 1)] + [f"a{DWT_LEVELS}"]
_WAVE = [f"{b}_logE" for b in _BANDS] + [f"{b}_relE" for b in _BANDS]
#: Features that are positive amplitudes or energies, best compared on a log scale.
LOG_SCALE_FEATURES = ("mav", "rms", "wl", "ptp")


def feature_names() -> list[str]:
    """Names of the columns of :func:`window_features`, in order."""
    return _TIME + _SPEC + _WAVE


def _deadband_changes(v: np.ndarray, thr: float) -> np.ndarray:
    """Per row, how often ``v`` passes from above ``+thr`` to below ``-thr`` or back.

    Values inside the dead band keep the previous state (hysteresis), so noise that
    wanders around zero is not counted; vectorised by forward-filling the last state.
    """
    state = (v > thr).astype(np.int8) - (v < -thr).astype(np.int8)
    pos = np.where(state != 0, np.arange(v.shape[1], dtype=np.int32), 0)
    np.maximum.accumulate(pos, axis=1, out=pos)
    filled = np.take_along_axis(state, pos, axis=1)
    return ((filled[:, 1:] != filled[:, :-1]) & (filled[:, :-1] != 0)).sum(1)


def _time_features(x: np.ndarray, fs: float, thr: float, slope_thr: float) -> np.ndarray:
    n = x.shape[1]
    x2 = x * x
    ms = x2.mean(1)
    mav = np.abs(x).mean(1)
    d = np.diff(x, axis=1)
    wl = np.abs(d).mean(1)
    zc = _deadband_changes(x, thr)
    ssc = _deadband_changes(d, slope_thr)
    seconds = n / fs
    safe = np.where(ms > 0, ms, 1.0)
    skew = np.where(ms > 0, np.mean(x2 * x, 1) / safe ** 1.5, 0.0)
    kurt = np.where(ms > 0, np.mean(x2 * x2, 1) / safe ** 2 - 3.0, 0.0)
    ptp = x.max(1) - x.min(1)
    return np.stack([mav, np.sqrt(ms), wl, zc / seconds, ssc / seconds, kurt, skew, ptp], 1)


def _spectral_features(x: np.ndarray, fs: float) -> np.ndarray:
    f, p = welch(x, fs=fs, nperseg=min(WELCH_NPERSEG, x.shape[1]), axis=1)
    total = p.sum(1)
    safe = np.where(total > 0, total, 1.0)
    mnf = (p * f).sum(1) / safe
    cum = np.cumsum(p, 1)
    mdf = f[np.minimum((cum < 0.5 * total[:, None]).sum(1), len(f) - 1)]
    rel = [p[:, (f >= lo) & (f < hi)].sum(1) / safe for lo, hi in BANDS_HZ]
    df = f[1] - f[0] if len(f) > 1 else 1.0
    log_power = np.log10(total * df + 1e-12)
    return np.stack([mnf, mdf, log_power, *rel], 1)


def dwt(x: np.ndarray, levels: int = DWT_LEVELS) -> list[np.ndarray]:
    """Daubechies-4 wavelet decomposition along the last axis.

    Returns ``[d1, d2, …, d_levels, a_levels]`` (details from the finest scale down, then
    the final approximation); each level filters and keeps every second sample. The
    edges are zero-padded, which is immaterial for sub-band energies of 1-s windows.
    """
    out, a = [], np.asarray(x, dtype=np.float64)
    for _ in range(levels):
        out.append(upfirdn(DB4_HI, a, up=1, down=2, axis=-1))
        a = upfirdn(DB4_LO, a, up=1, down=2, axis=-1)
    out.append(a)
    return out


def _wavelet_features(x: np.ndarray) -> np.ndarray:
    coefs = dwt(x)
    mean_sq = np.stack([np.mean(c * c, -1) for c in coefs], 1)
    # Shares use sums: the transform is orthonormal, so they split the window's energy.
    energy = np.stack([np.sum(c * c, -1) for c in coefs], 1)
    total = energy.sum(1, keepdims=True)
    rel = energy / np.where(total > 0, total, 1.0)
    return np.concatenate([np.log10(mean_sq + 1e-12), rel], 1)


def window_features(x: np.ndarray, fs: float, *, threshold_uv: float = THRESHOLD_UV,
                    slope_threshold_uv: float = SLOPE_THRESHOLD_UV) -> np.ndarray:
    """Features of each window.

    Parameters
    ----------
    x : ndarray
        ``(n, T)`` windows in µV (a single ``(T,)`` window is accepted too).
    fs : float
        Sampling rate in Hz.
    threshold_uv : float
        Dead band (µV) of zero crossings.
    slope_threshold_uv : float
        Dead band (µV per sample) of slope-sign changes.

    Returns
    -------
    ndarray
        ``(n, len(feature_names()))`` float64, all finite.
    """
    x = np.asarray(x)
    if x.ndim == 1:
        x = x[None]
    if x.ndim != 2 or x.shape[1] < 16:
        raise AlsnetError(f"windows must be (n, T) with T >= 16, got shape {x.shape}")
    if not fs > 0:
        raise AlsnetError(f"sampling rate must be positive, got {fs}")
    out = np.empty((len(x), len(feature_names())))
    for lo in range(0, len(x), CHUNK):
        c = x[lo:lo + CHUNK].astype(np.float64)
        if not np.isfinite(c).all():
            raise AlsnetError("windows contain NaN or infinity; drop invalid windows first")
        c -= c.mean(1, keepdims=True)
        out[lo:lo + CHUNK] = np.concatenate([_time_features(c, fs, threshold_uv, slope_threshold_uv),
                                             _spectral_features(c, fs), _wavelet_features(c)], 1)
    return out


__all__ = ["window_features", "feature_names", "dwt", "BANDS_HZ", "LOG_SCALE_FEATURES",
           "THRESHOLD_UV", "SLOPE_THRESHOLD_UV"]
