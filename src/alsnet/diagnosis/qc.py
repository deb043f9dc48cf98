"""Signal quality control of 1-s windows: what each window of a recording is worth.

Five rules, each a property of one window at the model rate (µV, NaN where invalid);
a window may break several. The thresholds are those of :class:`QcRules`; where each
comes from (a source, or a measurement on EMGLab N2001 with the command that made it)
is in ``docs/clinical.md``.

``invalid``
    The window holds invalid samples (NaN: the reader's invalid code, a gap).
``clipping``
    The window's largest (or smallest) value is held for :attr:`QcRules.clip_samples`
    consecutive samples or more (within :attr:`QcRules.clip_tol_uv`): an amplifier or
    converter at its rail. A real MUAP peak at 23.4 kHz is not flat for 0.2 ms (N2001:
    at most 4 samples in any window that is not flat).
``baseline``
    The window low-passed at :attr:`QcRules.baseline_hz` (the band of movement
    artefact, De Luca et al. 2010) spans :attr:`QcRules.baseline_uv` or more
    peak to peak: a baseline excursion or movement artefact.
``flat``
    Some :attr:`QcRules.flat_ms` stretch has an SD below :attr:`QcRules.flat_rms_uv`,
    under the noise floor of any needle and amplifier (the quietest 50 ms of N2001
    windows: 1st percentile 1.85 µV): a disconnected electrode, a saturated amplifier
    recovering, a zero-filled gap.
``mains``
    The 50 or 60 Hz line is at least :attr:`QcRules.mains_uv` (sinusoid amplitude) and
    :attr:`QcRules.mains_ratio` times the spectrum around it: mains interference.

Policies (:data:`QC_POLICIES`): ``"flag"`` scores every window and lists its reasons;
``"drop"`` also leaves flagged windows out of the recording's mean. The default and why
it was chosen are in ``docs/clinical.md``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy.signal import butter, get_window, sosfiltfilt

from alsnet.data.windows import MODEL_FS
from alsnet.errors import AlsnetError

#: Reasons a window can be flagged, in the order they are listed.
QC_REASONS: tuple[str, ...] = ("clipping", "baseline", "flat", "mains", "invalid")
#: What flagged windows do to a recording's result.
QC_POLICIES: tuple[str, ...] = ("flag", "drop")
#: The default policy (measured on N2001, ``docs/clinical.md``).
DEFAULT_QC_POLICY = "flag"


@dataclass(frozen=True)
class QcRules:
    """Thresholds of the window quality rules (sources in ``docs/clinical.md``)."""

    clip_samples: int = 5          # 0.21 ms at 23437.5 Hz
    clip_tol_uv: float = 0.5       # about 6 ADC units of N2001 (13.107 per µV)
    baseline_hz: float = 20.0
    baseline_uv: float = 500.0
    flat_ms: float = 50.0
    flat_rms_uv: float = 0.5
    mains_hz: tuple[float, ...] = (50.0, 60.0)
    mains_uv: float = 20.0
    mains_ratio: float = 5.0

    def to_dict(self) -> dict:
        return asdict(self)


RULES = QcRules()


def check_policy(policy: str) -> str:
    """``policy`` if it is one of :data:`QC_POLICIES`, else an :class:`AlsnetError`."""
    if policy not in QC_POLICIES:
        raise AlsnetError(f"unknown quality-control policy {policy!r}; choose from {', '.join(QC_POLICIES)}")
    return policy


def _longest_run(mask: np.ndarray) -> int:
    """Longest run of True in a 1-D boolean array."""
    if not mask.any():
        return 0
    edges = np.diff(np.concatenate(([0], mask.astype(np.int8), [0])))
    return int((np.flatnonzero(edges == -1) - np.flatnonzero(edges == 1)).max())


def _line_amplitudes(x: np.ndarray, fs: float, freqs: np.ndarray) -> np.ndarray:
    """Sinusoid amplitude (µV) of each row of ``x`` at each frequency (Hann-windowed DFT)."""
    n = x.shape[1]
    w = get_window("hann", n, fftbins=False)
    t = np.arange(n) / fs
    basis = np.exp(-2j * np.pi * np.outer(freqs, t)) * w          # (n_freq, n)
    return 2.0 * np.abs((x - x.mean(axis=1, keepdims=True)) @ basis.T) / w.sum()


def window_metrics(windows: np.ndarray, fs: float = MODEL_FS, rules: QcRules = RULES) -> dict[str, np.ndarray]:
    """The measured quantities behind each rule, one value per window.

    Parameters
    ----------
    windows : ndarray, shape (n, T)
        µV, NaN where invalid.
    fs : float
        Sampling rate of the windows (Hz).
    rules : QcRules
        Filter band, stretch length and mains frequencies.

    Returns
    -------
    dict of ndarray
        ``n_invalid`` (samples), ``clip_run`` (samples held at the extreme),
        ``baseline_uv`` (low-passed peak to peak), ``min_sd_uv`` (quietest stretch),
        ``mains_uv`` and ``mains_ratio`` (strongest line and its ratio to the spectrum
        around it); NaN (0 for ``n_invalid``) where a window holds invalid samples.
    """
    x = np.asarray(windows, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] < 64:
        raise AlsnetError(f"windows must be (n, T >= 64), got {x.shape}")
    n, T = x.shape
    n_invalid = (~np.isfinite(x)).sum(axis=1)
    ok = n_invalid == 0
    out = {"n_invalid": n_invalid.astype(np.int64)}
    for k in ("clip_run", "baseline_uv", "min_sd_uv", "mains_uv", "mains_ratio"):
        out[k] = np.full(n, np.nan)
    if not ok.any():
        return out
    v = x[ok]
    # An absolute tolerance: a relative one (0.1 % of the peak) flagged the flat-bottomed
    # 575-µV trough of a real MUAP in N2001A06BB16 (five samples within 0.53 µV).
    tol = np.full(len(v), rules.clip_tol_uv)
    # A window that is constant throughout is "flat", not clipped.
    runs = [0 if np.ptp(r) <= t else
            max(_longest_run(np.abs(r - r.max()) <= t), _longest_run(np.abs(r - r.min()) <= t))
            for r, t in zip(v, tol)]
    out["clip_run"][ok] = runs
    sos = butter(2, rules.baseline_hz, "low", fs=fs, output="sos")
    lp = sosfiltfilt(sos, v - v.mean(axis=1, keepdims=True), axis=1)
    out["baseline_uv"][ok] = np.ptp(lp, axis=1)
    m = max(2, int(rules.flat_ms * 1e-3 * fs))
    k = T // m
    out["min_sd_uv"][ok] = v[:, :k * m].reshape(len(v), k, m).std(axis=2).min(axis=1) if k else v.std(axis=1)
    # Each mains line against the median of the spectrum 3-10 Hz either side of it.
    offsets = np.r_[-10:-2, 3:11].astype(float)
    amp, ratio = np.zeros(len(v)), np.zeros(len(v))
    for f0 in rules.mains_hz:
        a = _line_amplitudes(v, fs, np.r_[f0, f0 + offsets])
        line, around = a[:, 0], np.median(a[:, 1:], axis=1)
        r = line / np.maximum(around, 1e-9)
        better = line > amp
        amp, ratio = np.where(better, line, amp), np.where(better, r, ratio)
    out["mains_uv"][ok], out["mains_ratio"][ok] = amp, ratio
    return out


def reasons_from_metrics(metrics: dict[str, np.ndarray], rules: QcRules = RULES) -> list[list[str]]:
    """The reasons each window is flagged for (:data:`QC_REASONS` order), from its metrics."""
    hit = {
        "clipping": metrics["clip_run"] >= rules.clip_samples,
        "baseline": metrics["baseline_uv"] >= rules.baseline_uv,
        "flat": metrics["min_sd_uv"] < rules.flat_rms_uv,
        "mains": (metrics["mains_uv"] >= rules.mains_uv) & (metrics["mains_ratio"] >= rules.mains_ratio),
        "invalid": metrics["n_invalid"] > 0,
    }
    n = len(metrics["n_invalid"])
    return [[r for r in QC_REASONS if hit[r][i]] for i in range(n)]


def window_qc(windows: np.ndarray, fs: float = MODEL_FS, rules: QcRules = RULES) -> list[list[str]]:
    """The quality reasons of each window, empty where it is clean.

    Parameters
    ----------
    windows : ndarray, shape (n, T)
        µV at rate ``fs``, NaN where invalid.
    fs : float
        Sampling rate (Hz); alsnet's windows are at :data:`alsnet.data.windows.MODEL_FS`.
    rules : QcRules
        Thresholds (default :data:`RULES`).

    Returns
    -------
    list of list of str
        For each window, the names of :data:`QC_REASONS` it breaks.
    """
    return reasons_from_metrics(window_metrics(windows, fs, rules), rules)


def describe_flags(qc: list[list[str]]) -> str:
    """One line: how many windows each reason flags (``"2 of 11 windows flagged: baseline 2"``)."""
    flagged = sum(1 for q in qc if q)
    if not flagged:
        return f"0 of {len(qc)} windows flagged"
    counts = {r: sum(r in q for q in qc) for r in QC_REASONS}
    parts = ", ".join(f"{r} {c}" for r, c in counts.items() if c)
    return f"{flagged} of {len(qc)} windows flagged: {parts}"


class RecordingChecks:
    """Quality reasons and domain statistics of one recording's windows, gathered chunk by chunk.

    :meth:`add` is called with each chunk of model-rate windows and says which to score:
    windows without invalid samples, and under policy ``"drop"`` only the clean ones.
    """

    def __init__(self, policy: str = DEFAULT_QC_POLICY, rules: QcRules = RULES):
        self.policy, self.rules = check_policy(policy), rules
        self.qc: list[list[str]] = []
        self._stats: list[dict[str, np.ndarray]] = []

    def add(self, windows: np.ndarray) -> np.ndarray:
        """Record the chunk's reasons and statistics; the mask of windows to score."""
        from alsnet.data.domain import window_stats

        q = window_qc(windows, MODEL_FS, self.rules)
        self.qc += q
        self._stats.append(window_stats(windows))
        ok = np.isfinite(windows).all(axis=1)
        if self.policy == "drop":
            ok &= np.array([not r for r in q], dtype=bool)
        return ok

    def stats(self) -> dict[str, np.ndarray]:
        """:func:`alsnet.diagnosis.domain.window_stats` of all valid windows so far."""
        if not self._stats:
            return {}
        return {k: np.concatenate([s[k] for s in self._stats]) for k in self._stats[0]}

    def none_scored(self, name: str) -> AlsnetError:
        """The error of a recording none of whose windows may be scored."""
        n = len(self.qc)
        if self.policy == "drop" and any(r and r != ["invalid"] for r in self.qc):
            return AlsnetError(f"all {n} window(s) are flagged by quality control ({describe_flags(self.qc)}); "
                               "--qc flag scores them anyway", name)
        return AlsnetError(f"all {n} window(s) contain invalid samples", name)

    def windows(self, starts: np.ndarray, proba: np.ndarray, classes: tuple[str, ...]) -> list[dict]:
        """Per window: ``index``, ``start_s``, ``probabilities`` (None if not scored) and ``qc``."""
        from alsnet.data.windows import WINDOW_SAMPLES

        scored = {int(s) // WINDOW_SAMPLES: p for s, p in zip(starts, proba)}
        return [{"index": i, "start_s": i * WINDOW_SAMPLES / MODEL_FS,
                 "probabilities": ({c: float(v) for c, v in zip(classes, scored[i])} if i in scored else None),
                 "qc": q} for i, q in enumerate(self.qc)]


__all__ = ["DEFAULT_QC_POLICY", "QC_POLICIES", "QC_REASONS", "QcRules", "RULES", "RecordingChecks", "check_policy",
           "describe_flags", "reasons_from_metrics", "window_metrics", "window_qc"]
