"""The training domain of a model, and warnings for recordings that fall outside it.

A model card's ``domain`` record (measured by :func:`alsnet.data.domain.training_domain`
where cards are written) holds what the model saw: the sampling rates and analogue band
of its recordings, their muscles, and percentiles of two statistics of its training
windows: the RMS amplitude and the share of power above 2 kHz (after resampling a 4 kHz
recording holds none). :func:`domain_warnings` compares a recording with it and returns
one sentence per way it differs; alsnet warns, it does not refuse.

A card without a domain record (those written before it existed) is compared with
:data:`N2001_DOMAIN`, the domain of the EMGLab N2001 biceps recordings measured by
``python scripts/measure_domain.py data/N2001`` (``docs/clinical.md``); the warning then
says so.
"""

from __future__ import annotations

import numpy as np

from alsnet.data.domain import HF_HZ, muscle_name

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
        Appended once, to the last warning (e.g. that the domain is the N2001 fallback).
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
    if muscle and known and muscle_name(muscle) not in known:
        out.append(f"recorded from the {muscle}; the model was trained on the {', '.join(known)}")
    if out and note:
        out[-1] = f"{out[-1]} ({note})"  # said once, after the last warning
    return out


__all__ = ["MARGIN", "N2001_DOMAIN", "card_domain", "domain_warnings"]
