"""Quantitative motor-unit potential (MUAP) analysis of a needle-EMG recording.

The method (details, sources and its check against the simulator in ``docs/clinical.md``):

1. **Filter.** Zero-phase Butterworth high-pass at :attr:`MuapSettings.highpass_hz`
   (the clinical low cut-off of needle EMG is 2-20 Hz) to remove drift.
2. **Detect** (in the spirit of EMGlab's candidate detection, McGill et al. 2005): the
   peaks of ``|x|`` of at least :attr:`MuapSettings.threshold_uv` and
   :attr:`MuapSettings.threshold_sd` robust noise SDs (median absolute deviation),
   at least :attr:`MuapSettings.dead_ms` apart (:func:`scipy.signal.find_peaks`).
3. **Align and group.** Each discharge is cut from :attr:`MuapSettings.epoch_ms`
   around its peak; discharges are grouped into motor units greedily, largest first:
   a discharge joins the first unit whose template it matches within
   :attr:`MuapSettings.max_shift_ms` over its central :attr:`MuapSettings.match_ms`
   with a residual energy below :attr:`MuapSettings.match_residual` of the template's
   (template matching as in EMGlab and multi-MUP analysis). A unit that fires at least
   :attr:`MuapSettings.min_discharges` times and at a mean rate of at least
   :attr:`MuapSettings.min_rate_hz` (a motor unit firing steadily fires at 5 Hz or more;
   the margin allows for missed discharges) is a MUAP; its waveform is the
   sample-wise median of its aligned discharges (the median rejects the superimposed
   potentials of other units).
4. **Measure** each MUAP in the terms of Stålberg et al. (1986) and the AANEM glossary:
   *amplitude* peak to peak; *duration* from the first departure from baseline to the
   last return (deviation of at least :attr:`MuapSettings.level_uv` or three template
   noise SDs); *phases* = baseline crossings within the duration + 1 (crossings with a
   dead band of half the level); *turns* = changes of direction of at least 25 µV
   (:attr:`MuapSettings.turn_uv`); *area* of the rectified MUAP over its duration; the
   *size index* of Sonoo & Stålberg (1993), ``2 log10(amplitude in mV) + area / amplitude``
   (area in mV·ms); *rise time* from the preceding peak to the main peak; the unit's
   *firing rate* (1 / median inter-discharge interval) and, per recording, the
   *recruitment ratio* (fastest firing rate / number of units, Petajan 1991).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import asdict, dataclass

import numpy as np
from scipy.signal import butter, find_peaks, sosfiltfilt

from alsnet.errors import InputError

#: Measures of each MUAP summarised per recording (median, quartiles, mean).
MEASURES: tuple[str, ...] = ("amplitude_uv", "duration_ms", "phases", "turns", "area_uv_ms",
                             "size_index", "rise_time_ms", "firing_rate_hz")
#: More phases than this makes a MUAP polyphasic (Stålberg et al. 1986).
POLYPHASIC_PHASES = 4

#: MUAPs of a muscle its mean is compared with reference means from (the source recommends 20).
MIN_REFERENCE_MUAPS = 20
#: Published reference values per muscle: mean ± SD of a muscle's mean (multi-MUP, concentric
#: needle) and the limits for single MUAPs ("outliers").
REFERENCES: dict[str, dict] = {
    "biceps brachii": {
        "source": ("Norsk forening for klinisk nevrofysiologi, Retningslinjer for metoder i KNF, "
                   "kap. 5: Referanseverdier for EMG og single fiber EMG (multi-MUP, Stålberg et al. 1994)"),
        "amplitude_uv": {"mean": 436.0, "sd": 115.0, "outliers": [178.0, 1414.0]},
        "duration_ms": {"mean": 9.9, "sd": 1.4, "outliers": [4.2, 16.4]},
    },
}


@dataclass(frozen=True)
class MuapSettings:
    """Thresholds of the detection, grouping and measurement (see the module docstring)."""

    highpass_hz: float = 20.0
    threshold_uv: float = 50.0
    threshold_sd: float = 5.0
    dead_ms: float = 3.0
    epoch_ms: tuple[float, float] = (-12.0, 18.0)
    max_shift_ms: float = 0.15
    match_ms: float = 2.5
    match_residual: float = 0.5
    min_discharges: int = 3
    min_rate_hz: float = 3.0
    level_uv: float = 15.0
    turn_uv: float = 25.0
    max_seconds: float = 120.0

    def to_dict(self) -> dict:
        return asdict(self)


SETTINGS = MuapSettings()


@dataclass
class Muap:
    """One motor unit: its median waveform and measures."""

    waveform: np.ndarray          # µV, the epoch around the main peak
    times_s: np.ndarray           # discharge times (main peak) in the recording
    measures: dict


def _detect(y: np.ndarray, fs: float, s: MuapSettings) -> np.ndarray:
    sigma = float(np.median(np.abs(y - np.median(y)))) / 0.6745
    height = max(s.threshold_uv, s.threshold_sd * sigma)
    # The prominence keeps the shoulder of a broad potential (|x| still rising at the end of
    # the dead time) from counting as a discharge of its own.
    peaks, _ = find_peaks(np.abs(y), height=height, prominence=height,
                          distance=max(1, int(s.dead_ms * 1e-3 * fs)))
    return peaks


def _group(epochs: np.ndarray, order: np.ndarray, shift: int, core: slice,
           s: MuapSettings) -> list[list[tuple[int, int]]]:
    """Discharges ``(index, shift)`` per unit, largest discharges first.

    Matching uses the ``core`` samples (the spike around the peak) of each epoch, which
    another unit's potential overlaps less often than the whole epoch.
    """
    units: list[list[tuple[int, int]]] = []
    templates: list[np.ndarray] = []
    shifts = np.arange(-shift, shift + 1)
    for i in order:
        # (n_shift, n_core): the discharge's core at each allowed shift
        cand = np.stack([epochs[i, shift + d:][core] for d in shifts])
        best = None
        for u, t in enumerate(templates):
            res = ((cand - t) ** 2).sum(axis=1) / float(t @ t)
            j = int(np.argmin(res))
            if res[j] < s.match_residual and (best is None or res[j] < best[0]):
                best = (float(res[j]), u, int(shifts[j]))
        if best is None:
            units.append([(int(i), 0)])
            templates.append(cand[shift].copy())
        else:
            _, u, d = best
            units[u].append((int(i), d))
            templates[u] += (cand[d + shift] - templates[u]) / len(units[u])
    return units


def _turns(x: np.ndarray, step: float) -> int:
    """Changes of direction with at least ``step`` µV on either side (a hysteresis count)."""
    turns, direction = 0, 0
    lo = hi = ext = float(x[0])
    for v in map(float, x[1:]):
        if direction == 0:
            lo, hi = min(lo, v), max(hi, v)
            if v - lo >= step:
                direction, ext = 1, v
            elif hi - v >= step:
                direction, ext = -1, v
        elif direction == 1:
            if v > ext:
                ext = v
            elif ext - v >= step:
                turns, direction, ext = turns + 1, -1, v
        else:
            if v < ext:
                ext = v
            elif v - ext >= step:
                turns, direction, ext = turns + 1, 1, v
    return turns


def measure(w: np.ndarray, fs: float, peak: int, s: MuapSettings = SETTINGS) -> dict:
    """Amplitude, duration, phases, turns, area, size index and rise time of one MUAP.

    ``w`` is µV with its baseline at 0, ``peak`` the index of the main peak.
    """
    edge = max(2, int(1e-3 * fs))
    noise = float(np.std(np.r_[w[:edge], w[-edge:]]))
    level = max(s.level_uv, 3.0 * noise)
    above = np.flatnonzero(np.abs(w) >= level)
    on, off = (int(above[0]), int(above[-1])) if above.size else (peak, peak)
    seg = w[on:off + 1]
    amp = float(w.max() - w.min())
    dt_ms = 1e3 / fs
    signs = np.sign(seg[np.abs(seg) >= level / 2])
    phases = int(np.count_nonzero(np.diff(signs))) + 1 if signs.size else 0
    area = float(np.abs(seg).sum() * dt_ms)
    # Rise time: from the opposite-polarity peak before the main peak to the main peak.
    pre = w[max(0, peak - int(2e-3 * fs)):peak + 1]
    j = int(np.argmin(pre) if w[peak] > 0 else np.argmax(pre))
    rise = (len(pre) - 1 - j) * dt_ms
    return {"amplitude_uv": amp, "duration_ms": (off - on + 1) * dt_ms, "phases": phases,
            "turns": _turns(seg, s.turn_uv) if seg.size > 1 else 0, "area_uv_ms": area,
            "size_index": float(2 * np.log10(amp / 1e3) + (area / 1e3) / (amp / 1e3)) if amp > 0 else None,
            "rise_time_ms": float(rise), "onset_ms": on * dt_ms, "end_ms": off * dt_ms}


def analyse_signal(x: np.ndarray, fs: float, s: MuapSettings = SETTINGS) -> list[Muap]:
    """The MUAPs of a signal (µV at ``fs`` Hz, NaN where invalid), largest first."""
    x = np.asarray(x, dtype=np.float64)
    if not np.isfinite(x).all():
        x = np.where(np.isfinite(x), x, 0.0)  # gaps hold no discharges; a zero stretch adds none
    sos = butter(2, s.highpass_hz, "high", fs=fs, output="sos")
    y = sosfiltfilt(sos, x - x.mean())
    a, b = (int(round(m * 1e-3 * fs)) for m in s.epoch_ms)
    shift = max(1, int(round(s.max_shift_ms * 1e-3 * fs)))
    peaks = _detect(y, fs, s)
    peaks = peaks[(peaks + a - shift >= 0) & (peaks + b + shift < len(y))]
    if peaks.size == 0:
        return []
    idx = peaks[:, None] + np.arange(a - shift, b + shift)[None, :]
    epochs = y[idx]
    order = np.argsort(-np.abs(y[peaks]))
    out = []
    m0 = int(round(s.match_ms * 1e-3 * fs))
    core = slice(-a - m0, -a + m0 + 1)
    for members in _group(epochs, order, shift, core, s):
        if len(members) < max(s.min_discharges, s.min_rate_hz * len(y) / fs):
            continue  # a superposition or a fragment, not a unit firing steadily
        aligned = np.stack([epochs[i, shift + d:shift + d + (b - a)] for i, d in members])
        w = np.median(aligned, axis=0)
        w -= np.median(np.r_[w[:int(1e-3 * fs)], w[-int(1e-3 * fs):]])
        times = np.sort((peaks[[i for i, _ in members]] + np.array([d for _, d in members])) / fs)
        m = measure(w, fs, -a, s)
        idi = np.diff(times)
        m["n_discharges"] = len(members)
        m["firing_rate_hz"] = float(1.0 / np.median(idi)) if idi.size else None
        out.append(Muap(w.astype(np.float32), times, m))
    return sorted(out, key=lambda u: -u.measures["amplitude_uv"])


def _stats(v: list[float]) -> dict:
    v = np.asarray([x for x in v if x is not None], dtype=float)
    if v.size == 0:
        return {"median": None, "q1": None, "q3": None, "mean": None}
    q1, med, q3 = np.percentile(v, [25, 50, 75])
    return {"median": float(med), "q1": float(q1), "q3": float(q3), "mean": float(v.mean())}


def compare_reference(summary: dict, muscle: str | None) -> dict:
    """The recording's MUAPs against the muscle's published reference values, or why not."""
    ref = REFERENCES.get((muscle or "").lower())
    if ref is None:
        return {"muscle": muscle, "available": False,
                "note": f"no reference values for {muscle or 'an unknown muscle'} (alsnet has: "
                        f"{', '.join(REFERENCES)})"}
    out = {"muscle": muscle, "available": True, "source": ref["source"], "measures": {}, "note": None}
    n = summary.get("n_units")
    if n is not None and n < MIN_REFERENCE_MUAPS:
        out["note"] = (f"the reference means are of at least {MIN_REFERENCE_MUAPS} MUAPs of a muscle; this "
                       f"recording has {n}: pool the recordings of one muscle before reading the comparison")
    for k in ("amplitude_uv", "duration_ms"):
        r, mean = ref[k], summary[k]["mean"]
        lo, hi = r["mean"] - 2 * r["sd"], r["mean"] + 2 * r["sd"]
        verdict = None if mean is None else ("above" if mean > hi else "below" if mean < lo else "within")
        out["measures"][k] = {"reference_mean": r["mean"], "reference_sd": r["sd"], "mean_limits": [lo, hi],
                              "outlier_limits": r["outliers"], "recording_mean": mean, "verdict": verdict}
    return out


def summarise(muaps: list[Muap] | list[dict], duration_s: float, recruitment: bool = True) -> dict:
    """Summary of MUAPs (or of their measure dicts): each measure's median, quartiles and mean;
    polyphasic share; number of units and, within one recording, the recruitment ratio."""
    ms = [u.measures if isinstance(u, Muap) else u for u in muaps]
    out = {k: _stats([m.get(k) for m in ms]) for k in MEASURES}
    out["polyphasic_percent"] = (100.0 * sum(m["phases"] > POLYPHASIC_PHASES for m in ms) / len(ms)
                                 if ms else None)
    rates = [m["firing_rate_hz"] for m in ms if m["firing_rate_hz"]]
    out["n_units"] = len(ms)
    out["recruitment_ratio"] = float(max(rates) / len(ms)) if rates and recruitment else None
    out["duration_s"] = float(duration_s)
    return out


def pool(results: list[dict]) -> dict:
    """The MUAPs of several recordings of one muscle as one summary (a muscle's multi-MUP mean
    needs about 20 MUAPs, more than one low-force recording holds). Failed recordings are skipped;
    the recruitment ratio, a property of one needle position, is not pooled."""
    ok = [r for r in results if not r.get("error")]
    ms = [m for r in ok for m in r["muaps"]]
    muscles = {r.get("muscle") for r in ok}
    muscle = muscles.pop() if len(muscles) == 1 else None
    summary = summarise(ms, sum(r["summary"]["duration_s"] for r in ok), recruitment=False)
    ref = compare_reference(summary, muscle) if muscle or not muscles else \
        {"muscle": None, "available": False, "note": "the pooled recordings are of different muscles"}
    return {"path": [r["path"] for r in ok], "n_recordings": len(ok), "muscle": muscle, "n_muaps": len(ms),
            "summary": summary, "reference": ref, "error": None}


def analyse_recording(path: str | os.PathLike, fs: float | None = None, scale: float | None = None,
                      channel: int | None = None, settings: MuapSettings = SETTINGS,
                      keep_waveforms: bool = False) -> dict:
    """MUAP analysis of one recording (its first ``settings.max_seconds``).

    Returns
    -------
    dict
        ``path``, ``fs``, ``muscle``, ``n_muaps``, ``summary`` (per measure: ``median``,
        ``q1``, ``q3``, ``mean``; ``polyphasic_percent``, ``n_units``,
        ``recruitment_ratio``), ``reference`` (the comparison with published values),
        ``muaps`` (each MUAP's measures, ``waveform_uv`` when ``keep_waveforms``) and
        ``error`` (None).
    """
    from alsnet.data.domain import muscle_of
    from alsnet.data.io import open_source

    with open_source(path, fs=fs, scale=scale, channel=channel) as src:
        if src.fs < 4000:
            raise InputError(f"sampled at {src.fs:g} Hz; MUAP shapes need at least 4 kHz", src.path)
        n = min(src.n_samples, int(settings.max_seconds * src.fs))
        if n < int(0.5 * src.fs):
            raise InputError(f"recording is {src.n_samples / src.fs:.3f} s; MUAP analysis needs at least 0.5 s",
                             src.path)
        x = src.read(0, n)  # only the stretch analysed is read
        muscle = muscle_of(src.record, src.meta)
    muaps = analyse_signal(x, src.fs, settings)
    summary = summarise(muaps, n / src.fs)
    items = []
    for u in muaps:
        d = {k: v for k, v in u.measures.items()}
        d["first_discharge_s"] = float(u.times_s[0])
        if keep_waveforms:
            d["waveform_uv"] = [round(float(v), 2) for v in u.waveform]
        items.append(d)
    return {"path": os.fspath(path), "fs": src.fs,
            "muscle": muscle, "n_muaps": len(muaps), "summary": summary,
            "reference": compare_reference(summary, muscle), "muaps": items, "error": None}


def analyse_many(paths: Iterable[str | os.PathLike], **kw: object) -> list[dict]:
    """:func:`analyse_recording` of each path; a recording that cannot be used is reported in
    its ``error`` field (one line) and the others are still analysed."""
    from alsnet.errors import AlsnetError

    out = []
    for p in paths:
        try:
            out.append(analyse_recording(p, **kw))
        except AlsnetError as e:
            out.append({"path": os.fspath(p), "n_muaps": None, "summary": None, "muaps": [],
                        "error": str(e).splitlines()[0]})
    return out


__all__ = ["MEASURES", "MIN_REFERENCE_MUAPS", "Muap", "MuapSettings", "REFERENCES", "SETTINGS", "analyse_many",
           "analyse_recording", "analyse_signal", "compare_reference", "measure", "pool", "summarise"]
