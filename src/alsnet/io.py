"""Reading EMG recordings into one :class:`Recording` type.

Readers: WFDB (EMGLab N2001 and PhysioNet-style records, through ``wfdb``), ``.npy`` and
one-column ``.csv`` (rate given by the user), ``.wav`` (rate from the file, scale given by
the user) and EDF/EDF+ (through ``pyedflib``). Every reader returns float32 microvolts in
which invalid samples are NaN, never silently zero; :attr:`Recording.n_invalid` counts them.
Every problem is an :class:`~alsnet.errors.InputError` naming the file.
"""

from __future__ import annotations

import os
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from alsnet.errors import InputError
from alsnet.labels import CLASS_TO_LETTER, LETTER_TO_CLASS, class_from_diagnosis

#: N2001 record names: N2001 + class letter + subject + muscle + recording number.
N2001_NAME = re.compile(r"^N2001(?P<letter>[ACM])(?P<subj>\d{2})(?P<muscle>[A-Z]{2})(?P<num>\d{2})$")
MUSCLES = {"BB": "biceps brachii", "VM": "vastus medialis", "TA": "tibialis anterior",
           "DE": "deltoid", "FD": "first dorsal interosseous"}

#: Scale from a header's physical unit to microvolts.
UNIT_TO_UV = {"uv": 1.0, "µv": 1.0, "μv": 1.0, "mv": 1e3, "v": 1e6, "nv": 1e-3}

#: File types each reader takes.
SUFFIXES = {".hea": "wfdb", ".dat": "wfdb", ".bin": "wfdb", ".npy": "npy", ".csv": "csv",
            ".txt": "csv", ".wav": "wav", ".edf": "edf", ".bdf": "edf"}


class LabelMismatchWarning(UserWarning):
    """The file name's class disagrees with the header's diagnosis."""


@dataclass
class Recording:
    """One single-channel EMG recording.

    Attributes
    ----------
    signal : ndarray, float32
        Microvolts; NaN marks invalid samples.
    fs : float
        Sampling rate in Hz.
    record : str
        Record name (file stem).
    subject : str or None
        Subject identity (N2001: class letter + number, e.g. ``"A01"``).
    label : str or None
        Class (``"als"``, ``"normal"``, ``"myopathy"``) where known.
    muscle : str or None
        Muscle code or name.
    meta : dict
        Header metadata (N2001 comments such as ``age``, ``diagnosis``).
    path : str
        The file read.
    """

    signal: np.ndarray
    fs: float
    record: str
    subject: str | None = None
    label: str | None = None
    muscle: str | None = None
    meta: dict = field(default_factory=dict)
    path: str = ""

    @property
    def invalid_mask(self) -> np.ndarray:
        return ~np.isfinite(self.signal)

    @property
    def n_invalid(self) -> int:
        return int(self.invalid_mask.sum())

    @property
    def n_samples(self) -> int:
        return int(self.signal.shape[0])

    @property
    def duration(self) -> float:
        return self.n_samples / self.fs


def parse_n2001_name(record: str) -> dict | None:
    """Class, subject and muscle from an N2001 record name, or None if it is not one."""
    m = N2001_NAME.match(record)
    if not m:
        return None
    letter = m["letter"]
    return {"label": LETTER_TO_CLASS[letter], "subject": f"{letter}{m['subj']}",
            "muscle": m["muscle"], "number": int(m["num"])}


def _comments_to_meta(comments: list[str]) -> dict:
    meta = {}
    for c in comments:
        key, sep, value = c.partition(":")
        if sep and key.strip():
            meta[key.strip().lstrip("#").strip().lower()] = value.strip()
    return meta


def _finalise(signal: np.ndarray, fs: float, path: str | os.PathLike, meta: dict | None = None,
              record: str | None = None) -> Recording:
    """Validate a decoded signal and attach identity from the file name and header."""
    path = os.fspath(path)
    x = np.asarray(signal)
    if x.ndim != 1:
        raise InputError(f"expected one channel, got an array of shape {x.shape}", path)
    if not np.issubdtype(x.dtype, np.number) or np.issubdtype(x.dtype, np.complexfloating):
        raise InputError(f"samples must be real numbers, got dtype {x.dtype}", path)
    if x.size == 0:
        raise InputError("recording holds no samples", path)
    try:
        fs = float(fs)
    except (TypeError, ValueError):
        raise InputError(f"sampling rate is not a number: {fs!r}", path) from None
    if not np.isfinite(fs) or fs <= 0:
        raise InputError(f"sampling rate must be positive, got {fs:g} Hz", path)
    x = x.astype(np.float32)
    x[~np.isfinite(x)] = np.nan  # inf is as invalid as NaN
    if np.isnan(x).all():
        raise InputError(f"all {x.size} samples are invalid", path)
    meta = dict(meta or {})
    record = record or Path(path).stem
    rec = Recording(signal=x, fs=fs, record=record, meta=meta, path=path)
    parsed = parse_n2001_name(record)
    if parsed:
        rec.label, rec.subject, rec.muscle = parsed["label"], parsed["subject"], parsed["muscle"]
        diag = meta.get("diagnosis")
        if diag is not None:
            from_header = class_from_diagnosis(diag)
            if from_header is not None and from_header != rec.label:
                warnings.warn(f"{path}: file name says {rec.label!r} "
                              f"({CLASS_TO_LETTER[rec.label]}) but #diagnosis says {diag!r}",
                              LabelMismatchWarning, stacklevel=3)
    return rec


# --------------------------------------------------------------------------- WFDB

def _wfdb_header(stem: Path):
    import wfdb

    hea = stem.with_suffix(".hea")
    if not hea.exists():
        raise InputError("WFDB header (.hea) not found", hea)
    if hea.stat().st_size == 0:
        raise InputError("WFDB header is empty", hea)
    raw = hea.read_bytes()
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        try:
            raw.decode("latin-1").encode("ascii")
        except UnicodeEncodeError:
            raise InputError("WFDB header is not text (not UTF-8)", hea) from None
    first = raw.decode("utf-8", "replace").split("\n", 1)[0].split()
    if len(first) >= 3:
        rate = first[2].split("/")[0].split("(")[0]
        try:
            if float(rate) <= 0:
                raise InputError(f"header sampling rate must be positive, got {first[2]!r}", hea)
        except ValueError:
            raise InputError(f"header sampling rate is not a number: {first[2]!r}", hea) from None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            warnings.simplefilter("ignore", DeprecationWarning)
            return wfdb.rdheader(str(stem))
    except InputError:
        raise
    except Exception as e:  # wfdb raises bare ValueError/IndexError/... on bad headers
        raise InputError(f"unreadable WFDB header ({type(e).__name__}: {e})", hea) from None


def read_wfdb(path: str | os.PathLike, channel: int | None = None) -> Recording:
    """Read a WFDB record (``.hea`` plus its signal file) into µV.

    Honours the header's format, byte offset, gain, baseline and units; samples at the
    format's invalid value (−32768 in format 16) become NaN. A multi-channel record needs
    ``channel``.
    """
    import wfdb

    stem = Path(path).with_suffix("")
    hea = stem.with_suffix(".hea")
    header = _wfdb_header(stem)
    n_sig = header.n_sig or 0
    if n_sig == 0:
        raise InputError("header declares no signals", hea)
    if channel is None:
        if n_sig > 1:
            raise InputError(f"record has {n_sig} signals ({', '.join(map(str, header.sig_name))}); "
                             "choose one with channel=/--channel", hea)
        channel = 0
    if not 0 <= channel < n_sig:
        raise InputError(f"channel {channel} does not exist (record has {n_sig})", hea)
    if header.fs is None or not np.isfinite(header.fs) or header.fs <= 0:
        raise InputError(f"header sampling rate must be positive, got {header.fs!r}", hea)
    fmt = str(header.fmt[channel])
    if fmt not in wfdb.io._signal.DATA_LOAD_TYPES and fmt not in ("212", "310", "311", "508", "516", "524"):
        raise InputError(f"unknown WFDB signal format {fmt!r}", hea)
    dat = stem.parent / header.file_name[channel]
    if not dat.exists():
        raise InputError(f"signal file {dat.name} named by the header is missing", dat)
    n_declared = header.sig_len
    if n_declared is None or n_declared <= 0:
        raise InputError(f"header declares {n_declared} samples", hea)
    offset = (header.byte_offset or [0] * n_sig)[channel] or 0
    bytes_per = {"16": 2, "80": 1, "24": 3, "32": 4, "61": 2, "160": 2, "8": 1}.get(fmt)
    size = dat.stat().st_size
    if size == 0:
        raise InputError("signal file is empty", dat)
    if bytes_per is not None:
        n_held = max(0, (size - offset) // (bytes_per * n_sig))
        if offset > size:
            raise InputError(f"header byte offset {offset} is beyond the end of the file ({size} bytes)", dat)
        if n_held < n_declared:
            raise InputError(f"header says {n_declared} samples but the file holds {n_held}"
                             f" (from byte offset {offset})", dat)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            warnings.simplefilter("ignore", DeprecationWarning)
            rec = wfdb.rdrecord(str(stem), channels=[channel], physical=True)
    except Exception as e:
        raise InputError(f"cannot read WFDB signal ({type(e).__name__}: {e})", dat) from None
    if rec.p_signal is None or rec.p_signal.shape[0] != n_declared:
        got = None if rec.p_signal is None else rec.p_signal.shape[0]
        raise InputError(f"header says {n_declared} samples but {got} were decoded", dat)
    unit = (rec.units[0] if rec.units else "") or "uV"
    scale = UNIT_TO_UV.get(unit.strip().lower())
    if scale is None:
        raise InputError(f"unknown signal unit {unit!r} (expected uV, mV or V)", hea)
    x = rec.p_signal[:, 0] * scale
    meta = _comments_to_meta(rec.comments or [])
    meta.update({"units": unit, "format": fmt, "byte_offset": offset,
                 "adc_gain": float(rec.adc_gain[0]) if rec.adc_gain else None})
    return _finalise(x, header.fs, hea, meta, record=stem.name)


# --------------------------------------------------------------------------- arrays

def read_npy(path: str | os.PathLike, fs: float | None) -> Recording:
    """A ``.npy`` array of µV (one channel); the rate must be given."""
    if fs is None:
        raise InputError("a .npy file carries no sampling rate; give fs= / --fs", path)
    try:
        x = np.load(path, allow_pickle=False)
    except ValueError as e:
        raise InputError(f"not a plain numeric .npy array ({e})", path) from None
    except Exception as e:
        raise InputError(f"cannot read .npy ({type(e).__name__}: {e})", path) from None
    x = np.squeeze(x) if x.ndim == 2 and 1 in x.shape else x
    return _finalise(x, fs, path)


def read_csv(path: str | os.PathLike, fs: float | None) -> Recording:
    """A one-column text file of µV, optionally with a header line; the rate must be given."""
    if fs is None:
        raise InputError("a .csv file carries no sampling rate; give fs= / --fs", path)
    try:
        text = Path(path).read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError:
        raise InputError("CSV is not UTF-8 text", path) from None
    rows = [r.strip() for r in text if r.strip()]
    if rows and not _is_number(rows[0].split(",")[0]):
        rows = rows[1:]  # one header line is allowed
    if not rows:
        raise InputError("CSV holds no samples", path)
    if any("," in r for r in rows[:5]):
        raise InputError("CSV must have exactly one column of samples", path)
    try:
        x = np.array([float(r) for r in rows], dtype=np.float64)
    except ValueError:
        bad = next(i for i, r in enumerate(rows) if not _is_number(r))
        raise InputError(f"CSV row {bad + 1} is not a number: {rows[bad][:40]!r}", path) from None
    return _finalise(x, fs, path)


def _is_number(s: str) -> bool:
    try:
        float(s)
        return True
    except ValueError:
        return False


def read_wav(path: str | os.PathLike, scale: float | None) -> Recording:
    """A mono ``.wav``; ``scale`` is µV per unit of the stored integer (or float) samples."""
    from scipy.io import wavfile

    if scale is None:
        raise InputError("a .wav file carries no physical scale; give scale= / --scale (µV per unit)", path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", wavfile.WavFileWarning)
            fs, x = wavfile.read(path)
    except Exception as e:
        raise InputError(f"cannot read WAV ({type(e).__name__}: {e})", path) from None
    if x.ndim == 2:
        if x.shape[1] != 1:
            raise InputError(f"WAV has {x.shape[1]} channels; alsnet needs one", path)
        x = x[:, 0]
    return _finalise(x.astype(np.float64) * float(scale), fs, path)


def read_edf(path: str | os.PathLike, channel: int | None = None) -> Recording:
    """An EDF/EDF+/BDF file through ``pyedflib``; physical units converted to µV."""
    import pyedflib

    try:
        f = pyedflib.EdfReader(os.fspath(path))
    except Exception as e:
        raise InputError(f"cannot read EDF ({e})", path) from None
    try:
        n = f.signals_in_file
        if channel is None:
            if n != 1:
                raise InputError(f"EDF has {n} signals ({', '.join(f.getSignalLabels())}); "
                                 "choose one with channel=/--channel", path)
            channel = 0
        if not 0 <= channel < n:
            raise InputError(f"channel {channel} does not exist (file has {n})", path)
        unit = f.getPhysicalDimension(channel).strip() or "uV"
        scale = UNIT_TO_UV.get(unit.lower())
        if scale is None:
            raise InputError(f"unknown signal unit {unit!r} (expected uV, mV or V)", path)
        x = f.readSignal(channel) * scale
        fs = f.getSampleFrequency(channel)
        meta = {"label": f.getLabel(channel), "units": unit}
    finally:
        f.close()
    return _finalise(x, fs, path, meta)


# --------------------------------------------------------------------------- dispatch

def read_recording(path: str | os.PathLike, *, fs: float | None = None, scale: float | None = None,
                   channel: int | None = None) -> Recording:
    """Read any supported file, chosen by suffix (a bare WFDB stem works too)."""
    p = Path(path)
    kind = SUFFIXES.get(p.suffix.lower())
    if kind is None and p.with_suffix(".hea").exists() and p.suffix == "":
        kind = "wfdb"
    if kind is None:
        if not p.exists():
            raise InputError("file not found", p)
        raise InputError(f"unknown file type {p.suffix or '(no suffix)'!r}; "
                         f"alsnet reads {', '.join(sorted(SUFFIXES))}", p)
    if kind == "wfdb":
        return read_wfdb(p, channel=channel)
    if not p.exists():
        raise InputError("file not found", p)
    if p.stat().st_size == 0:
        raise InputError("file is empty", p)
    if kind == "npy":
        return read_npy(p, fs)
    if kind == "csv":
        return read_csv(p, fs)
    if kind == "wav":
        return read_wav(p, scale)
    return read_edf(p, channel=channel)


def find_recordings(root: str | os.PathLike) -> list[Path]:
    """Recording files under ``root`` (one path per WFDB record, its ``.hea``), sorted."""
    root = Path(root)
    if root.is_file():
        return [root]
    if not root.is_dir():
        raise InputError("no such file or directory", root)
    out = []
    for p in sorted(root.rglob("*")):
        if not p.is_file():
            continue
        s = p.suffix.lower()
        if s == ".hea" or s in (".npy", ".csv", ".wav", ".edf", ".bdf"):
            if s == ".csv" and p.name == "labels.csv":
                continue
            out.append(p)
    return out
