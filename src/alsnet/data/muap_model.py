"""Motor-unit action potentials (MUAPs) from a line-source volume-conductor model.

A muscle fibre's action potential is the Rosenfalck (1969) intracellular profile
``V(z) = 96 z^3 exp(-z) - 90`` mV (``z`` in mm behind the wavefront) travelling at the
fibre's conduction velocity; the extracellular potential at radial distance ``r`` is
its transmembrane current ``d2V/dz2`` convolved with the line-source weighting
``1 / sqrt(K^2 r^2 + z^2)`` of an anisotropic medium (``K^2`` = axial over radial
conductivity, 0.33 / 0.063 S/m). A MUAP is the sum of the single-fibre action potentials
(SFAPs) of the unit's fibres, each delayed by its own latency. This is the line-source
approach of Nandedkar & Stålberg's SFAP and MUAP simulations, much simplified: infinitely
long fibres (no end-plate or tendon-end potentials), a point core electrode, and the
cannula (the reference) replaced by a point :data:`CANNULA_MM` to the side whose
potential is subtracted. The overall scale is calibrated to N2001, not physical.

:func:`simulate_sources` then places each source's templates at its discharge times.

Single-fibre potentials are precomputed once for a log-spaced grid of distances at
four times the recording rate, so a fibre is placed with ~11 µs resolution (finer
than neuromuscular jitter) by slicing, with no per-fibre filtering.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

#: Oversampling of the SFAP bank relative to the recording rate.
OVERSAMPLE = 4
#: Reference conduction velocity of the bank (mm/ms = m/s).
CV_REF = 4.0
#: Length scale (mm) of the intracellular action potential (1 in Rosenfalck's profile;
#: kept as a knob: smaller values sharpen every potential and move power to higher frequencies).
IAP_SCALE_MM = 1.0
#: sqrt(axial / radial conductivity) of muscle (0.33 and 0.063 S/m).
ANISOTROPY = np.sqrt(0.33 / 0.063)
#: Lateral offset (mm) of the point that stands in for the concentric needle's cannula
#: (the reference surface); subtracting its potential removes the far field of fibres
#: more than a few mm away (a crude stand-in, chosen against N2001 spectra).
CANNULA_MM = 3.0
#: Radial distances (mm) of the bank; nearer than 50 µm is clamped (needle core size).
R_GRID = np.geomspace(0.05, 3.0, 48)
#: Bank time span (ms) around the wavefront passing the electrode.
BANK_SPAN_MS = (-5.0, 12.0)
#: Template span (ms) around a discharge time (its earliest fibre's wavefront at the needle).
TEMPLATE_SPAN_MS = (-5.5, 30.0)
#: Fibres nearer than this (mm) get per-discharge jitter and blocking; farther ones
#: are summed once (their slow potentials hide any jitter).
NEAR_MM = 0.6


@lru_cache(maxsize=4)
def sfap_bank(fs: float) -> np.ndarray:
    """SFAPs for every distance in :data:`R_GRID`, shape ``(n_r, OVERSAMPLE, n)``.

    ``bank[k, p, j]`` is the potential at distance ``R_GRID[k]`` at fine sample
    ``p + OVERSAMPLE * j`` of the span :data:`BANK_SPAN_MS` (arbitrary units, in
    which a 50 µm fibre at 0.1 mm has a peak-to-peak of about 1).
    """
    dt = 1000.0 / (fs * OVERSAMPLE)  # ms per fine sample
    dz = CV_REF * dt  # mm travelled per fine sample
    z = np.arange(0.0, 20.0 * IAP_SCALE_MM, dz)
    u = z / IAP_SCALE_MM
    current = 96.0 * (6 * u - 6 * u**2 + u**3) * np.exp(-u)  # d2V/dz2 (up to a constant)
    x = np.arange(-40.0, 40.0 + dz / 2, dz)  # fibre positions around the electrode
    lo, hi = (int(round(t / dt)) for t in BANK_SPAN_MS)
    n = (hi - lo) // OVERSAMPLE * OVERSAMPLE
    rows = np.empty((len(R_GRID), n))
    i0 = len(x) // 2  # convolution index of the wavefront at x = 0 (t = 0)
    for k, r in enumerate(R_GRID):
        core = 1.0 / np.sqrt((ANISOTROPY * r) ** 2 + x * x)
        cannula = 1.0 / np.sqrt(ANISOTROPY**2 * (r * r + CANNULA_MM**2) + x * x)
        phi = np.convolve(current, core - cannula) * dz
        rows[k] = phi[i0 + lo: i0 + lo + n] - phi[i0 + lo]
    ref = np.ptp(rows[np.argmin(abs(R_GRID - 0.1))])
    return (rows / ref).reshape(len(R_GRID), n // OVERSAMPLE, OVERSAMPLE).transpose(0, 2, 1).copy()


@dataclass
class Fibres:
    """The fibres of one motor unit seen by the electrode.

    ``r`` distance (mm), ``weight`` SFAP scale (∝ diameter squared), ``latency`` (ms),
    ``jitter`` per-discharge latency SD (ms), ``block`` per-discharge blocking probability.
    """

    r: np.ndarray
    weight: np.ndarray
    latency: np.ndarray
    jitter: np.ndarray
    block: np.ndarray


def _sum_sfaps(n: int, bank: np.ndarray, k: np.ndarray, shift: np.ndarray, w: np.ndarray,
               row: np.ndarray) -> np.ndarray:
    """Sum SFAPs into ``row.max() + 1`` templates of ``n`` samples.

    SFAP ``i`` is bank distance ``k[i]``, starts at fine sample ``shift[i]``, is scaled by
    ``w[i]`` and goes to template ``row[i]``; parts outside ``[0, n)`` are dropped.
    """
    n_rows = int(row.max()) + 1 if len(row) else 1
    if len(k) == 0:
        return np.zeros((n_rows, n))
    m0 = -(-shift // OVERSAMPLE)  # first coarse sample at or after each shift
    phase = OVERSAMPLE * m0 - shift
    length = bank.shape[2]
    pos = m0[:, None] + np.arange(length)
    vals = bank[k, phase] * w[:, None]
    ok = (pos >= 0) & (pos < n)
    flat = (row[:, None] * n + pos)[ok]
    return np.bincount(flat, vals[ok], minlength=n_rows * n).reshape(n_rows, n)


def muap_templates(fib: Fibres, fs: float, n_variants: int, rng: np.random.Generator) -> np.ndarray:
    """``n_variants`` discharges of one unit, shape ``(n_variants, n_samples)`` (bank units).

    Each variant redraws the near fibres' jitter and blocking, so choosing a variant per
    discharge reproduces MUAP instability (jiggle) without filtering per discharge.
    """
    bank = sfap_bank(fs)
    dt = 1000.0 / (fs * OVERSAMPLE)
    n = int(round((TEMPLATE_SPAN_MS[1] - TEMPLATE_SPAN_MS[0]) * fs / 1000.0))
    k = np.clip(np.searchsorted(R_GRID, fib.r), 0, len(R_GRID) - 1)
    # the earliest fibre's SFAP starts the template; a discharge is placed by that fibre
    lat = fib.latency - fib.latency.min() + 0.5
    near = fib.r < NEAR_MM
    far = ~near
    base = _sum_sfaps(n, bank, k[far], np.rint(lat[far] / dt).astype(np.int64), fib.weight[far],
                      np.zeros(int(far.sum()), dtype=np.int64))[0]
    idx = np.flatnonzero(near)
    shifts = lat[idx] + rng.standard_normal((n_variants, len(idx))) * fib.jitter[idx]
    fired = rng.random((n_variants, len(idx))) >= fib.block[idx]
    v, j = np.nonzero(fired)
    out = _sum_sfaps(n, bank, k[idx][j], np.rint(shifts[v, j] / dt).astype(np.int64),
                     fib.weight[idx][j], v)
    if out.shape[0] < n_variants:  # every near fibre blocked in the last variants
        out = np.vstack([out, np.zeros((n_variants - out.shape[0], n))])
    return out + base


@dataclass
class Source:
    """A generator of repeated potentials: variant templates (µV) and its firing."""

    templates: np.ndarray
    rate_hz: float
    isi_cv: float
    kind: str
    gain_cv: float = 0.0
    meta: dict = field(default_factory=dict)


def _fire(rate: float, cv: float, t0: float, t1: float, rng: np.random.Generator) -> np.ndarray:
    """Discharge times in [t0, t1) with Gaussian intervals (mean 1/rate, CV cv)."""
    n = int((t1 - t0) * rate * 1.5) + 4
    isi = np.maximum(1.0 + cv * rng.standard_normal(n), 0.3) / rate
    t = t0 + rng.random() / rate + np.cumsum(isi)
    return t[t < t1]


def simulate_sources(sources: list[Source], n: int, fs: float, rng: np.random.Generator) -> np.ndarray:
    """Sum the discharges of ``sources`` into ``n`` samples of µV."""
    if not sources:
        return np.zeros(n)
    length = sources[0].templates.shape[1]
    pre = int(round(-TEMPLATE_SPAN_MS[0] * fs / 1000))
    out = np.zeros(n + 2 * length)
    for s in sources:
        t = _fire(s.rate_hz, s.isi_cv, -(length - pre) / fs, (n + pre) / fs, rng)
        start = np.rint(t * fs).astype(np.int64) - pre + length
        var = rng.integers(len(s.templates), size=len(t))
        gain = 1.0 + s.gain_cv * rng.standard_normal(len(t))
        idx = start[:, None] + np.arange(length)
        out += np.bincount(idx.ravel(), (s.templates[var] * gain[:, None]).ravel(), minlength=len(out))[: len(out)]
    return out[length: length + n]


def positive_sharp_wave(fs: float, rise_ms: float, decay_ms: float, length_ms: float = 40.0) -> np.ndarray:
    """A positive sharp wave: a brisk positive deflection and a slow return through a
    small negative phase (unit peak). A potential from a fibre whose action potential
    is blocked at the damaged membrane next to the needle, so it does not propagate past it.
    """
    t = np.arange(int(length_ms * fs / 1000.0)) * 1000.0 / fs
    w = np.exp(-t / decay_ms) - np.exp(-t / rise_ms) - 0.15 * (1 - np.exp(-t / decay_ms)) * np.exp(-t / (3 * decay_ms))
    w *= np.clip(1.0 - t / length_ms, 0, 1) ** 2  # end the slow tail inside the window
    return w / np.max(w)


def muap_metrics(template: np.ndarray, fs: float, threshold_uv: float = 10.0) -> dict:
    """Peak-to-peak (µV), duration (ms) and number of phases of one MUAP in µV.

    Duration is the span over which the potential exceeds ``threshold_uv`` (a fixed
    threshold, as automatic MUAP analysis uses); phases are baseline crossings within
    it plus one, counting only excursions larger than ``threshold_uv``.
    """
    x = np.asarray(template, dtype=float)
    x = x - np.median(x[: max(1, len(x) // 10)])
    above = np.flatnonzero(np.abs(x) > threshold_uv)
    if len(above) == 0:
        return {"ptp_uv": float(np.ptp(x)), "duration_ms": 0.0, "phases": 0}
    seg = x[above[0]: above[-1] + 1]
    signs = np.sign(seg[np.abs(seg) > threshold_uv])
    phases = 1 + int(np.count_nonzero(np.diff(signs)))
    return {"ptp_uv": float(np.ptp(x)), "duration_ms": 1000.0 * len(seg) / fs, "phases": phases}
