"""The training domain of a model, and warnings for recordings that fall outside it.

A model card's ``domain`` record (written by :func:`training_domain` where cards are
written) holds what the model saw: the sampling rates and analogue band of its
recordings, their muscles, and percentiles of two statistics of its training windows:
the RMS amplitude and the share of power above :data:`HF_HZ` (after resampling a 4 kHz
recording holds none). :func:`domain_warnings` compares a recording with it and returns
one sentence per way it differs; alsnet warns, it does not refuse.

A card without a domain record (those written before it existed) is compared with
:data:`N2001_DOMAIN`, the domain of the EMGLab N2001 biceps recordings measured by
``python scripts/measure_domain.py data/N2001`` (``docs/clinical.md``); the warning then
says so.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
from scipy.signal import welch

from alsnet.data.io import MUSCLES
from alsnet.data.windows import MODEL_FS

#: The statistic "hf_fraction" is the power above this frequency over the power above 20 Hz.
HF_HZ = 2000.0
#: Percentiles of each window statistic kept in the domain record.
PERCENTILES = (1, 5, 50, 95, 99)
#: Window statistics of a domain record.
STATS = ("rms_uv", "hf_fraction")
#: A recording's median window statistic is outside the domain when it is beyond the training
#: windows' 1st-99th percentiles by more than this factor (with 3, 1 of the 409 N2001 records is
#: outside: N2001A06BB08, flat from its second second on; docs/clinical.md).
MARGIN = 3.0

#: EMGLab N2001 biceps brachii, all 409 records (4470 windows without invalid samples):
#: measured by ``python scripts/measure_domain.py data/N2001`` (docs/clinical.md).
N2001_DOMAIN: dict = {
    "source": "measured from EMGLab N2001 (409 biceps brachii records) by scripts/measure_domain.py",
    "sampling_rate_hz": [23437.5],
    "analogue_band_hz": [2.0, 10000.0],
    "muscles": ["biceps brachii"],
    "n_windows": 4470,
    "window_stats": {
        "rms_uv": {"p1": 7.119, "p5": 11.33, "p50": 36.22, "p95": 100.9, "p99": 160.5},
        "hf_fraction": {"p1": 0.0005487, "p5": 0.001110, "p50": 0.008201, "p95": 0.1000, "p99": 0.2366},
    },
}


def window_stats(windows: np.ndarray, fs: float = MODEL_FS) -> dict[str, np.ndarray]:
    """RMS (µV) and share of power above :data:`HF_HZ` of each window (NaN windows skipped).

    Parameters
    ----------
    windows : ndarray, shape (n, T)
        µV at ``fs``.
    fs : float
        Sampling rate (Hz).
    """
    x = np.asarray(windows, dtype=np.float64)
    x = x[np.isfinite(x).all(axis=1)]
    if len(x) == 0:
        return {k: np.zeros(0) for k in STATS}
    f, p = welch(x, fs=fs, nperseg=min(2048, x.shape[1]), axis=1)
    total = p[:, f >= 20.0].sum(axis=1)
    hf = p[:, f >= HF_HZ].sum(axis=1) / np.maximum(total, 1e-30)
    return {"rms_uv": x.std(axis=1), "hf_fraction": hf}


def _muscle_name(code_or_name: str | None) -> str | None:
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
    from alsnet.data.io import parse_n2001_name

    parsed = parse_n2001_name(record or "")
    return _muscle_name(code or (parsed or {}).get("muscle") or (meta or {}).get("muscle"))


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
            "muscles": sorted({m for m in (_muscle_name(x) for x in muscles) if m}),
            "n_windows": int(len(st["rms_uv"])),
            "window_stats": {k: {f"p{q}": float(np.percentile(v, q)) if len(v) else None for q in PERCENTILES}
                             for k, v in st.items()}}


def card_domain(card: dict) -> tuple[dict, str | None]:
    """``(domain, note)``: the card's own record, or :data:`N2001_DOMAIN` with a note saying so."""
    dom = card.get("domain")
    if isinstance(dom, dict) and dom.get("window_stats"):
        return dom, None
    return N2001_DOMAIN, "the model card has no domain record; compared with the EMGLab N2001 biceps domain"


def domain_warnings(domain: dict, *, fs: float, muscle: str | None, stats: dict[str, np.ndarray],
                    note: str | None = None) -> list[str]:
    """One sentence per way a recording falls outside a model's training domain.

    Parameters
    ----------
    domain : dict
        A domain record (:func:`training_domain`, :data:`N2001_DOMAIN`).
    fs : float
        The recording's native sampling rate (Hz).
    muscle : str, optional
        Its muscle, where the file says (None: not compared).
    stats : dict of ndarray
        :func:`window_stats` of its windows at the model rate.
    note : str, optional
        Appended to each warning (e.g. that the domain is the N2001 fallback).
    """
    out = []
    band = domain.get("analogue_band_hz")
    rates = domain.get("sampling_rate_hz") or []
    if band and fs / 2 < band[1]:
        out.append(f"sampled at {fs:g} Hz, so it holds nothing above {fs / 2:g} Hz; the training recordings "
                   f"({', '.join(f'{r:g}' for r in rates) or '?'} Hz) carry {band[0]:g} Hz-{band[1]:g} Hz")
    ws = domain.get("window_stats", {})
    hf, rms = stats.get("hf_fraction", np.zeros(0)), stats.get("rms_uv", np.zeros(0))
    if len(hf) and "hf_fraction" in ws and ws["hf_fraction"].get("p1") is not None:
        lo, hi, med = ws["hf_fraction"]["p1"], ws["hf_fraction"]["p99"], float(np.median(hf))
        if not lo / MARGIN <= med <= min(1.0, hi * MARGIN):
            out.append(f"{100 * med:.2g}% of its power lies above {HF_HZ:g} Hz (median window); the training "
                       f"windows' 1st-99th percentiles are {100 * lo:.2g}%-{100 * hi:.2g}%")
    if len(rms) and "rms_uv" in ws and ws["rms_uv"].get("p1") is not None:
        lo, hi, med = ws["rms_uv"]["p1"], ws["rms_uv"]["p99"], float(np.median(rms))
        if not lo / MARGIN <= med <= hi * MARGIN:
            out.append(f"its median window RMS is {med:.4g} µV; the training windows' 1st-99th percentiles "
                       f"are {lo:.4g}-{hi:.4g} µV")
    known = domain.get("muscles") or []
    if muscle and known and _muscle_name(muscle) not in known:
        out.append(f"recorded from the {muscle}; the model was trained on the {', '.join(known)}")
    return [f"{w} ({note})" if note else w for w in out]


__all__ = ["HF_HZ", "MARGIN", "N2001_DOMAIN", "card_domain", "domain_warnings", "muscle_of", "training_domain",
           "window_stats"]
