"""Synthetic concentric-needle EMG of normal, ALS (neurogenic) and myopathic muscle.

Each subject draws its own parameters uniformly from class ranges (:data:`CLASS_RANGES`,
sources in ``docs/simulator.md``). Each recording places a new needle: motor units
near it (spike-producing) and farther ones (blunt background potentials) are built
fibre by fibre (:mod:`alsnet.data.muap_model`), fire with Gaussian inter-discharge intervals, and
are summed with fibrillation potentials and positive sharp waves (denervation),
amplifier noise, 50 Hz mains hum and baseline drift. The recording chain is that of
the N2001 headers: 2 Hz-10 kHz band-pass, 13.107 ADC units per µV in int16 (rails at
±2500 µV). Records are written in N2001 naming and layout, so
:func:`alsnet.data.io.read_recording` reads them like the real ones.

Everything is deterministic per seed: subject ``i`` of class ``c`` and its recordings
draw from ``SeedSequence(seed, spawn_key=(c, i[, recording]))``, independent of how
many subjects of other classes are simulated.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.fft import next_fast_len
from scipy.signal import butter, sosfilt

from alsnet import __version__
from alsnet.data.io import N2001_NAME
from alsnet.data.labels import CLASS_TO_LETTER
from alsnet.data.muap_model import (
    NEAR_MM,
    TEMPLATE_SPAN_MS,
    Fibres,
    Source,
    muap_templates,
    positive_sharp_wave,
    simulate_sources,
)
from alsnet.data.windows import MODEL_FS
from alsnet.errors import AlsnetError

SIM_CLASSES: tuple[str, ...] = ("als", "normal", "myopathy")
#: ADC units per µV (N2001 headers) and the int16 rails (±2500 µV).
ADC_GAIN = 13.107
ADC_MAX = 32767
#: N2001 .bin files hold 10 samples before (the 20-byte offset) and 10 after the record.
PAD = 10
#: µV of the SFAP of a 55 µm fibre 0.1 mm from the core (calibrated to N2001 controls).
SFAP_UV = 185.0
#: Radius (mm) around the needle within which fibres are simulated.
PICKUP_MM = 3.0
#: Fibres nearer the core than this (mm) are placed at it (the core is not a point).
R_MIN_MM = 0.05
#: Moderate contraction: more units (recruitment) firing faster (rate coding).
MODERATE_UNITS, MODERATE_RATE_HZ = 1.6, 3.0

#: Per-subject parameter ranges (lo, hi) per class; each subject draws uniformly.
CLASS_RANGES: dict[str, dict[str, tuple[float, float]]] = {
    # units whose territory holds the needle (spike-producing), low force
    "n_units": {"normal": (1, 3.5), "als": (1, 2.5), "myopathy": (5, 12)},
    # units whose territory ends 0.2-3 mm from the needle (blunt background potentials)
    "n_background": {"normal": (3, 8), "als": (0, 3), "myopathy": (3, 8)},
    "rate_hz": {"normal": (8, 12), "als": (11, 18), "myopathy": (8, 12)},
    "isi_cv": {"normal": (0.1, 0.2), "als": (0.12, 0.25), "myopathy": (0.1, 0.2)},
    # fibres of one unit per mm2 of its territory
    "fibre_density": {"normal": (4, 8), "als": (10, 30), "myopathy": (4, 9)},
    "territory_mm": {"normal": (2.5, 4.0), "als": (3.0, 5.0), "myopathy": (2.0, 3.5)},
    "fibre_diam_um": {"normal": (50, 60), "als": (45, 65), "myopathy": (25, 40)},
    "fibre_diam_cv": {"normal": (0.06, 0.12), "als": (0.2, 0.35), "myopathy": (0.25, 0.4)},
    # SD of end-plate position along the fibres (mm)
    "endplate_sd_mm": {"normal": (2.0, 3.0), "als": (2.5, 4.5), "myopathy": (2.0, 3.5)},
    # fibres reached through immature sprouts (ALS) or split/regenerating fibres (myopathy)
    "sprout_frac": {"normal": (0.0, 0.02), "als": (0.1, 0.3), "myopathy": (0.1, 0.25)},
    "sprout_delay_ms": {"normal": (1.0, 2.0), "als": (1.5, 6.0), "myopathy": (1.0, 4.0)},
    # per-fibre latency SD per discharge (µs); sprouts have three times as much
    "jitter_us": {"normal": (10, 25), "als": (30, 80), "myopathy": (15, 40)},
    "block_prob": {"normal": (0.0, 0.0), "als": (0.05, 0.25), "myopathy": (0.0, 0.05)},
    # mean number of fibrillating fibres / positive sharp waves near the needle
    "fibrillations": {"normal": (0, 0), "als": (0, 3), "myopathy": (0, 1.5)},
    "sharp_waves": {"normal": (0, 0), "als": (0, 1.5), "myopathy": (0, 0.8)},
    "noise_uv": {"normal": (1.5, 2.5), "als": (1.5, 2.5), "myopathy": (1.5, 2.5)},
    "hum_uv": {"normal": (0, 2.0), "als": (0, 2.0), "myopathy": (0, 2.0)},
    # slow background (RMS, µV) and its corner frequency (Hz)
    "drift_uv": {"normal": (8, 25), "als": (10, 35), "myopathy": (3, 10)},
    "drift_hz": {"normal": (30, 100), "als": (30, 100), "myopathy": (30, 100)},
    "age": {"normal": (21, 37), "als": (52, 67), "myopathy": (19, 63)},
}

DIAGNOSES = {"als": ("ALS", "Mainly bulbar ALS"), "normal": ("healty controls",),
             "myopathy": ("Polymyositis", "Myopathy unclassified", "Plexus scapulohumoral dystrophy")}


@dataclass
class SubjectParams:
    """One simulated subject: its class, drawn parameters and header metadata."""

    cls: str
    values: dict[str, float]
    gender: str = "M"
    age: int = 40
    diagnosis: str = ""
    side: str = "Right"
    head: str = "long"
    disease_years: float | None = None

    def __getattr__(self, name: str) -> float:
        try:
            return self.__dict__["values"][name]
        except KeyError:
            raise AttributeError(name) from None


def draw_subject(cls: str, rng: np.random.Generator) -> SubjectParams:
    """Draw a subject of class ``cls`` (``"als"``, ``"normal"``, ``"myopathy"``)."""
    if cls not in SIM_CLASSES:
        raise AlsnetError(f"unknown class {cls!r}; choose from {', '.join(SIM_CLASSES)}")
    values = {k: float(rng.uniform(*r[cls])) for k, r in CLASS_RANGES.items()}
    diag = DIAGNOSES[cls][int(rng.integers(len(DIAGNOSES[cls])))]
    years = None if cls == "normal" else float(rng.choice([0.5, 1.0, 1.5, 2.0, 5.0]))
    return SubjectParams(cls, values, gender=str(rng.choice(["M", "F"])), age=int(values["age"]),
                         diagnosis=diag, side=str(rng.choice(["Right", "Left"], p=[0.75, 0.25])),
                         head=str(rng.choice(["long", "short"], p=[0.88, 0.12])), disease_years=years)


def _unit_fibres(p: SubjectParams, near: bool, rng: np.random.Generator) -> Fibres:
    """Fibres of one unit within :data:`PICKUP_MM` of the needle (needle at the origin)."""
    radius = p.territory_mm * rng.uniform(0.8, 1.2)
    dist = radius * np.sqrt(rng.random()) if near else radius + rng.uniform(0.2, PICKUP_MM)
    n = rng.poisson(p.fibre_density * np.pi * PICKUP_MM**2)
    rho, theta = PICKUP_MM * np.sqrt(rng.random(n)), 2 * np.pi * rng.random(n)
    xy = np.stack([rho * np.cos(theta), rho * np.sin(theta)], 1)
    keep = np.hypot(xy[:, 0] - dist, xy[:, 1]) < radius
    r = np.maximum(rho[keep], R_MIN_MM)
    m = len(r)
    diam = p.fibre_diam_um * np.exp(p.fibre_diam_cv * rng.standard_normal(m))
    velocity = np.clip(4.0 * diam / 55.0, 1.5, 6.0)  # m/s, rising with diameter
    z = np.maximum(rng.uniform(5, 20) + p.endplate_sd_mm * rng.standard_normal(m), 1.0)
    sprout = rng.random(m) < p.sprout_frac
    latency = z / velocity + sprout * rng.exponential(p.sprout_delay_ms, m)
    jitter = p.jitter_us / 1000.0 * np.where(sprout, 3.0, 1.0)
    block = np.where(sprout, p.block_prob, p.block_prob / 5)
    return Fibres(r=r, weight=SFAP_UV * (diam / 55.0) ** 2, latency=latency, jitter=jitter, block=block)


def _polarity(rng: np.random.Generator) -> float:
    """Sign of a source in the stored signal. N2001 recordings are skewed either way
    (about 60% positive, with the main MUAP spike mostly upward), so a source's physical
    potential is inverted with probability 0.65 (a fit to the data, not physiology)."""
    return 1.0 if rng.random() < 0.35 else -1.0


def draw_sources(p: SubjectParams, level: str, fs: float, rng: np.random.Generator) -> list[Source]:
    """The potentials one needle position records: units, background, denervation."""
    moderate = level == "moderate"
    scale = MODERATE_UNITS if moderate else 1.0
    sources = []
    n_near = max(1, rng.poisson(p.n_units * scale))
    for near, count in ((True, n_near), (False, rng.poisson(p.n_background * scale))):
        for _ in range(count):
            fib = _unit_fibres(p, near, rng)
            if len(fib.r) == 0:
                continue
            n_var = 8 if near and (fib.r < NEAR_MM).any() else 1
            tpl = muap_templates(fib, fs, n_var, rng) * _polarity(rng)
            rate = p.rate_hz * rng.uniform(0.85, 1.15) + (MODERATE_RATE_HZ if moderate else 0.0)
            sources.append(Source(tpl, rate, p.isi_cv, "unit" if near else "background",
                                  gain_cv=0.02, meta={"n_fibres": len(fib.r)}))
    n_tpl = int(round((TEMPLATE_SPAN_MS[1] - TEMPLATE_SPAN_MS[0]) * fs / 1000))
    for _ in range(rng.poisson(p.fibrillations)):
        # a denervated (atrophic) fibre discharging on its own, very regularly
        r = np.array([rng.uniform(0.05, 0.2)])
        fib = Fibres(r=r, weight=np.array([SFAP_UV * rng.uniform(0.3, 0.8)]), latency=np.zeros(1),
                     jitter=np.zeros(1), block=np.zeros(1))
        sources.append(Source(muap_templates(fib, fs, 1, rng) * _polarity(rng), rng.uniform(0.5, 10), 0.03,
                              "fibrillation"))
    for _ in range(rng.poisson(p.sharp_waves)):
        w = positive_sharp_wave(fs, rise_ms=rng.uniform(0.2, 0.6), decay_ms=rng.uniform(2, 6))
        tpl = np.zeros((1, n_tpl))
        k = int(-TEMPLATE_SPAN_MS[0] * fs / 1000)
        tpl[0, k:k + len(w)] = w[: n_tpl - k] * rng.uniform(30, 250)
        sources.append(Source(tpl * _polarity(rng), rng.uniform(0.5, 10), 0.03, "sharp_wave"))
    return sources


def baseline_noise(n: int, fs: float, rng: np.random.Generator, f_c: float) -> np.ndarray:
    """Unit-RMS Gaussian noise, flat below ``f_c`` Hz and falling 12 dB/octave above it.

    Stands in for the slow background of N2001 recordings that the units near the needle
    do not explain (their power is flat from 2 Hz to ~100 Hz): far-away units, needle and
    limb movement, electrode-tissue potentials.
    """
    m = next_fast_len(n)  # an awkward n (e.g. prime) would make the FFT slow
    f = np.fft.rfftfreq(m, 1.0 / fs)
    shape = 1.0 / (1.0 + (f / f_c) ** 2)
    spec = shape * (rng.standard_normal(len(f)) + 1j * rng.standard_normal(len(f)))
    spec[0] = 0.0
    y = np.fft.irfft(spec, m)[:n]
    return y / (y.std() + 1e-12)


def recording_chain(x: np.ndarray, fs: float, noise: np.ndarray | float = 0.0) -> np.ndarray:
    """2 Hz-10 kHz band-pass (first order each edge, like analogue RC stages), white
    ``noise`` (µV, added after the filters: N2001's noise floor is flat up to the Nyquist
    frequency) and int16 ADC codes."""
    hi = min(10_000.0, 0.45 * fs)
    sos = np.vstack([butter(1, 2.0, "highpass", fs=fs, output="sos"),
                     butter(1, hi, "lowpass", fs=fs, output="sos")])
    y = sosfilt(sos, x) + noise
    return np.clip(np.rint(y * ADC_GAIN), -ADC_MAX, ADC_MAX).astype(np.int16)


def _simulate_adc(p: SubjectParams, n: int, fs: float, rng: np.random.Generator, level: str) -> np.ndarray:
    """ADC codes of one recording: sources, hum, slow background, recording chain."""
    sources = draw_sources(p, level, fs, rng)
    x = simulate_sources(sources, n, fs, rng)
    t = np.arange(n) / fs
    hum_phase = rng.uniform(0, 2 * np.pi, 2)
    x += p.hum_uv * (np.sin(2 * np.pi * 50 * t + hum_phase[0]) + 0.3 * np.sin(2 * np.pi * 150 * t + hum_phase[1]))
    x += p.drift_uv * baseline_noise(n, fs, rng, p.drift_hz)
    return recording_chain(x, fs, p.noise_uv * rng.standard_normal(n))


def simulate_recording(cls: str, subject_params: SubjectParams, duration_s: float, fs: float = MODEL_FS,
                       rng: np.random.Generator | None = None, level: str = "low") -> np.ndarray:
    """One recording of ``duration_s`` seconds as float32 µV (after the recording chain).

    Parameters
    ----------
    cls : {"als", "normal", "myopathy"}
    subject_params : SubjectParams
        From :func:`draw_subject`.
    duration_s, fs : float
        Length (s) and sampling rate (Hz).
    rng : numpy.random.Generator
        The only source of randomness (default: a fresh unseeded generator).
    level : {"low", "moderate"}
        Contraction level (moderate recruits more units firing faster).
    """
    if cls != subject_params.cls:
        raise AlsnetError(f"class {cls!r} does not match the subject's class {subject_params.cls!r}")
    rng = np.random.default_rng() if rng is None else rng
    n = int(round(duration_s * fs))
    return (_simulate_adc(subject_params, n, fs, rng, level) / ADC_GAIN).astype(np.float32)


# --------------------------------------------------------------------------- files

def record_name(cls: str, subject: int, number: int, muscle: str = "BB") -> str:
    """N2001 record name, e.g. ``record_name("als", 1, 1) == "N2001A01BB01"``."""
    if not (0 <= subject <= 99 and 0 <= number <= 99):
        raise AlsnetError(f"N2001 names hold two-digit subject and recording numbers, got {subject}, {number}")
    return f"N2001{CLASS_TO_LETTER[cls]}{subject:02d}{muscle}{number:02d}"


def write_n2001(out_dir: str | os.PathLike, name: str, adc: np.ndarray, p: SubjectParams, level: str,
                fs: float, seed: int) -> Path:
    """Write ``name.hea`` + ``name.bin`` laid out like N2001 (format 16, byte offset 20).

    ``adc`` holds :data:`PAD` samples before and after the record: they fill the 20-byte
    offset and the 10 trailing samples that real N2001 ``.bin`` files carry.
    """
    out_dir = Path(out_dir)
    n = len(adc) - 2 * PAD
    years = "" if p.disease_years is None else f"{p.disease_years:g} year{'' if p.disease_years == 1 else 's'}"
    lines = [f"{name} 1 {fs:g} {n}", f"{name}.bin 16+{2 * PAD} {ADC_GAIN:.4f}/uV",
             f"#gender: {p.gender}", f"#age: {p.age}", f"#diagnosis: {p.diagnosis}",
             f"#duration: {years}", f"#muscle: Biceps brachii ({p.head} head)", f"#side: {p.side}",
             "#protocol: steady isometric contraction", f"#level: {level}",
             "#electrode: concentric needle", "#high-pass filter: 2 Hz", "#low-pass filter: 10 kHz",
             "#gain: 500", f"#simulated: alsnet {__version__} seed {seed}"]
    (out_dir / f"{name}.bin").write_bytes(np.asarray(adc, dtype="<i2").tobytes())
    (out_dir / f"{name}.hea").write_text("\n".join(lines) + "\n", encoding="ascii")
    return out_dir / f"{name}.hea"


def _prepare_out_dir(out_dir: Path, force: bool) -> None:
    """Refuse to overwrite N2001 records unless ``force``; never touch real (unsimulated) ones."""
    if out_dir.exists() and not out_dir.is_dir():
        raise AlsnetError("exists and is not a folder", out_dir)
    old = [h for h in sorted(out_dir.glob("N2001*.hea")) if N2001_NAME.match(h.stem)] if out_dir.is_dir() else []
    if not old:
        out_dir.mkdir(parents=True, exist_ok=True)
        return
    if not force:
        raise AlsnetError(f"already holds {len(old)} N2001 record(s); "
                          "use --force (force=True) to replace them", out_dir)
    real = [h.name for h in old if "#simulated:" not in h.read_text(errors="replace")]
    if real:
        raise AlsnetError(f"holds real (not simulated) N2001 records such as {real[0]}; "
                          "refusing to delete them even with --force", out_dir)
    for h in old:
        h.unlink()
        h.with_suffix(".bin").unlink(missing_ok=True)


def simulate_dataset(out_dir: str | os.PathLike, n_subjects: dict[str, int] | int | None = None,
                     recordings_per_subject: int = 4, duration_s: float = 11.18, seed: int = 0,
                     progress: bool = False, force: bool = False, fs: float = MODEL_FS) -> list[Path]:
    """Simulate subjects and write their recordings as N2001 WFDB records.

    Parameters
    ----------
    out_dir : path
        Folder to write (created). If it already holds N2001 records, ``force=True`` is
        needed, and only simulated records are ever deleted.
    n_subjects : dict or int
        Subjects per class, e.g. ``{"als": 3, "normal": 3, "myopathy": 3}`` (the default),
        or one number for every class.
    recordings_per_subject : int
        Needle positions per subject (record numbers 01, 02, ...); about a third are
        at moderate contraction, as in N2001.
    duration_s : float
        Seconds per recording (N2001: 11.18).
    seed : int
        Everything is a function of this seed.
    progress : bool
        Show a tqdm progress bar on stderr.

    Returns
    -------
    list of Path
        The ``.hea`` files written, in writing order.
    """
    if n_subjects is None:
        n_subjects = {c: 3 for c in SIM_CLASSES}
    elif isinstance(n_subjects, int):
        n_subjects = {c: n_subjects for c in SIM_CLASSES}
    bad = sorted(set(n_subjects) - set(SIM_CLASSES))
    if bad:
        raise AlsnetError(f"unknown class(es) {', '.join(bad)}; choose from {', '.join(SIM_CLASSES)}")
    if any(int(v) < 0 or int(v) > 99 for v in n_subjects.values()):
        raise AlsnetError("subjects per class must be 0-99 (two-digit N2001 subject numbers)")
    if not 1 <= recordings_per_subject <= 99:
        raise AlsnetError(f"recordings per subject must be 1-99, got {recordings_per_subject}")
    if not duration_s > 0:
        raise AlsnetError(f"duration must be positive, got {duration_s} s")
    out_dir = Path(out_dir)
    _prepare_out_dir(out_dir, force)
    jobs = [(c, s, r) for c in SIM_CLASSES for s in range(1, int(n_subjects.get(c, 0)) + 1)
            for r in range(1, recordings_per_subject + 1)]
    n = int(round(duration_s * fs))
    if progress:
        from tqdm import tqdm
        jobs = tqdm(jobs, desc="simulate", unit="rec")
    written, subjects = [], {}
    for c, s, r in jobs:
        ci = SIM_CLASSES.index(c)
        if (c, s) not in subjects:
            subjects[(c, s)] = draw_subject(c, np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(ci, s))))
        p = subjects[(c, s)]
        rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(ci, s, r)))
        level = "moderate" if rng.random() < 0.3 else "low"
        adc = _simulate_adc(p, n + 2 * PAD, fs, rng, level)
        written.append(write_n2001(out_dir, record_name(c, s, r), adc, p, level, fs, seed))
    return written
