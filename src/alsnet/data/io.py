"""Reading EMG recordings into one :class:`Recording` type.

Readers: WFDB (EMGLab N2001 and PhysioNet-style records, through ``wfdb``), ``.npy`` and
one-column ``.csv`` (rate given by the user), ``.wav`` (rate from the file, scale given by
the user) and EDF/EDF+ (through ``pyedflib``). Every reader returns float32 microvolts in
which invalid samples are NaN, never silently zero; :attr:`Recording.n_invalid` counts them.
Every problem is an :class:`~alsnet.errors.InputError` naming the file; no other exception
type leaves this module for a bad file (``tests/test_bad_input.py``, ``tests/test_fuzz.py``).
WFDB headers are checked line by line before ``wfdb`` sees them, because ``wfdb`` parses
leniently (a rate of ``inf`` silently becomes the default 250 Hz).
"""

from __future__ import annotations

import os
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from alsnet.data.labels import CLASS_TO_LETTER, LETTER_TO_CLASS, class_from_diagnosis
from alsnet.errors import InputError

#: N2001 record names: N2001 + class letter + subject + muscle + recording number.
N2001_NAME = re.compile(r"^N2001(?P<letter>[ACM])(?P<subj>\d{2})(?P<muscle>[A-Z]{2})(?P<num>\d{2})$")
MUSCLES = {"BB": "biceps brachii", "VM": "vastus medialis", "TA": "tibialis anterior",
           "DE": "deltoid", "FD": "first dorsal interosseous"}

#: Scale from a header's physical unit to microvolts.
UNIT_TO_UV = {"uv": 1.0, "µv": 1.0, "μv": 1.0, "mv": 1e3, "v": 1e6, "nv": 1e-3}

#: File types each reader takes.
SUFFIXES = {".hea": "wfdb", ".dat": "wfdb", ".bin": "wfdb", ".npy": "npy", ".csv": "csv",
            ".txt": "csv", ".wav": "wav", ".edf": "edf", ".bdf": "edf"}

#: Bits per sample of each WFDB storage format (FLAC formats 5xx: unknown, compressed).
WFDB_FORMAT_BITS = {"8": 8, "16": 16, "24": 24, "32": 32, "61": 16, "80": 8, "160": 16,
                    "212": 12, "310": 32 / 3, "311": 32 / 3, "508": None, "516": None, "524": None}
#: Most samples per channel alsnet reads in one piece (about 25 h at 23437.5 Hz).
MAX_SAMPLES = 2**31 - 1


class RecordingWarning(UserWarning):
    """Something about a readable recording that a user should know."""


class LabelMismatchWarning(RecordingWarning):
    """The file name's class disagrees with the header's diagnosis."""


class SignalQualityWarning(RecordingWarning):
    """The samples are readable but suspicious (e.g. a constant, flat-line signal)."""


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
    """``key: value`` header comments as a dict; other comment text is ignored."""
    meta = {}
    for c in comments:
        key, sep, value = str(c).partition(":")
        key = key.strip().lstrip("#").strip().lower()
        if sep and key and key.isprintable():
            meta[key] = value.strip()
    return meta


def check_fs(fs, name) -> float:
    """A sampling rate as a finite positive float, else :class:`InputError` naming ``name``."""
    try:
        fs = float(fs)
    except (TypeError, ValueError):
        raise InputError(f"sampling rate is not a number: {fs!r}", name) from None
    if not np.isfinite(fs) or fs <= 0:
        raise InputError(f"sampling rate must be a positive number, got {fs:g} Hz", name)
    return fs


def check_channel(x: np.ndarray, name) -> np.ndarray:
    """``x`` as one channel of real samples (an ``(n, 1)`` or ``(1, n)`` array is flattened,
    without copying), else :class:`InputError` naming ``name``."""
    if x.ndim == 2 and 1 in x.shape:
        x = x.reshape(-1)
    if x.ndim == 2 and min(x.shape) > 1:
        raise InputError(f"expected one channel, got an array of shape {x.shape} "
                         f"({min(x.shape)} channels?); save one channel per file", name)
    if x.ndim != 1:
        raise InputError(f"expected one channel (a 1-D array), got an array of shape {x.shape}", name)
    if not np.issubdtype(x.dtype, np.number) or np.issubdtype(x.dtype, np.complexfloating):
        raise InputError(f"samples must be real numbers, got dtype {x.dtype}", name)
    if x.size == 0:
        raise InputError("recording holds no samples", name)
    return x


def _finalise(signal: np.ndarray, fs: float, path: str | os.PathLike, meta: dict | None = None,
              record: str | None = None) -> Recording:
    """Validate a decoded signal and attach identity from the file name and header."""
    path = os.fspath(path)
    x = check_channel(np.asarray(signal), path)
    fs = check_fs(fs, path)
    with np.errstate(over="ignore", invalid="ignore"):
        x = x.astype(np.float32)  # values beyond float32 become inf, then invalid below
    x[~np.isfinite(x)] = np.nan  # inf is as invalid as NaN
    valid = x[np.isfinite(x)]
    if valid.size == 0:
        raise InputError(f"all {x.size} samples are invalid", path)
    if valid.size > 1 and valid.min() == valid.max():
        # Allowed (the file is what it is), but a flat line carries no EMG: say so.
        warnings.warn(f"{path}: signal is constant ({valid[0]:g} µV in all {valid.size} valid "
                      "samples): no EMG activity (electrode disconnected?)",
                      SignalQualityWarning, stacklevel=3)
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

_NUM = r"(?:\d+\.?\d*|\.\d+)"
_RX_FS = re.compile(rf"(?P<fs>{_NUM})(?:/(?P<cf>{_NUM})(?:\((?P<bc>-?{_NUM})\))?)?")
_RX_FMT = re.compile(r"(?P<fmt>\d+)(?:x(?P<spf>\d+))?(?::(?P<skew>\d+))?(?:\+(?P<off>\d+))?")
_RX_GAIN = re.compile(r"(?P<gain>-?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)?"
                      r"(?:\((?P<base>-?\d+)\))?(?:/(?P<units>[\w^\-?%/]+))?")
_RX_FILE = re.compile(r"[-\w]*\.?\w*")


def _stem_file(stem: Path, suffix: str) -> Path:
    """``stem`` + suffix, keeping dots in record names (``Path.with_suffix`` would eat them)."""
    return stem.parent / (stem.name + suffix)


def _wfdb_stem(path: str | os.PathLike) -> Path:
    p = Path(path)
    return p.with_suffix("") if p.suffix.lower() in (".hea", ".dat", ".bin") else p


def _read_header_text(hea: Path) -> str:
    if not hea.exists():
        raise InputError("WFDB header (.hea) not found", hea)
    if not hea.is_file():
        raise InputError("WFDB header is not a regular file", hea)
    try:
        raw = hea.read_bytes()
    except OSError as e:
        raise InputError(f"cannot read WFDB header ({e.strerror or e})", hea) from None
    if not raw.strip():
        raise InputError("WFDB header is empty", hea)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise InputError(f"WFDB header is not UTF-8 text (byte 0x{raw[e.start]:02x} at offset "
                         f"{e.start})", hea) from None


def check_wfdb_header(text: str, hea: str | os.PathLike) -> dict:
    """Strictly check a WFDB header's record and signal lines; return the fields alsnet uses.

    Returns ``{"n_sig", "fs", "sig_len", "signals": [{"file", "fmt", "spf", "offset"}]}``.
    Raises :class:`InputError` naming ``hea`` and the offending line on anything ``wfdb``
    would misread or choke on.
    """
    lines = [(i + 1, ln.strip()) for i, ln in enumerate(text.splitlines())]
    spec = [(n, ln) for n, ln in lines if ln and not ln.startswith("#")]
    if not spec:
        raise InputError("WFDB header has no record line (only comments or blank lines)", hea)
    if any(not ln.isprintable() for _, ln in spec):
        n = next(n for n, ln in spec if not ln.isprintable())
        raise InputError(f"header line {n} holds control characters", hea)
    n, rec = spec[0]
    tok = rec.split()
    if len(tok) < 2 or not re.fullmatch(r"[-\w]+(/\d+)?", tok[0]) or not tok[1].isdigit():
        raise InputError(f"header line {n} is not a WFDB record line "
                         f"('NAME N_SIGNALS FS N_SAMPLES'): {rec[:60]!r}", hea)
    if "/" in tok[0]:
        raise InputError("multi-segment WFDB records are not supported", hea)
    n_sig = int(tok[1])
    if n_sig == 0:
        raise InputError("header declares no signals", hea)
    if len(tok) < 3:
        raise InputError("header gives no sampling rate (record line field 3)", hea)
    m = _RX_FS.fullmatch(tok[2])
    if not m:
        try:
            value = float(tok[2].split("/")[0])
        except ValueError:
            raise InputError(f"header sampling rate is not a number: {tok[2]!r}", hea) from None
        what = "positive" if np.isfinite(value) else "a finite positive number"
        raise InputError(f"header sampling rate must be {what}, got {tok[2]!r}", hea)
    fs = float(m["fs"])
    if fs <= 0:
        raise InputError(f"header sampling rate must be positive, got {tok[2]!r}", hea)
    if len(tok) < 4:
        raise InputError("header does not give the number of samples (record line field 4)", hea)
    if not tok[3].isdigit() or int(tok[3]) <= 0:
        raise InputError(f"header number of samples must be a positive integer, got {tok[3]!r}", hea)
    sig_len = int(tok[3])
    if sig_len > MAX_SAMPLES:
        raise InputError(f"header declares {sig_len} samples, more than alsnet reads "
                         f"({MAX_SAMPLES})", hea)
    if len(spec) - 1 < n_sig:
        raise InputError(f"header declares {n_sig} signal(s) but has {len(spec) - 1} signal line(s)",
                         hea)
    if len(spec) - 1 > n_sig:
        n_extra = spec[n_sig + 1][0]
        raise InputError(f"header line {n_extra} is neither one of the {n_sig} signal line(s) nor a "
                         "comment ('#...')", hea)
    signals = []
    for n, ln in spec[1:]:
        tok = ln.split()
        if len(tok) < 2:
            raise InputError(f"header line {n} is not a WFDB signal line "
                             f"('FILE FORMAT GAIN/UNITS ...'): {ln[:60]!r}", hea)
        if tok[0] == "~" or not _RX_FILE.fullmatch(tok[0]) or tok[0] in ("", ".", ".."):
            raise InputError(f"header line {n}: signal file {tok[0][:60]!r} is not a plain file name "
                             "in the record's folder", hea)
        f = _RX_FMT.fullmatch(tok[1])
        if not f:
            raise InputError(f"header line {n}: bad format field {tok[1][:30]!r} "
                             "(FORMAT[xSAMPLES][:SKEW][+OFFSET])", hea)
        if f["fmt"] not in WFDB_FORMAT_BITS:
            raise InputError(f"unknown WFDB signal format {f['fmt']!r} (line {n}); alsnet reads "
                             f"{', '.join(WFDB_FORMAT_BITS)}", hea)
        spf = int(f["spf"] or 1)
        if spf != 1:
            raise InputError(f"header line {n}: {spf} samples per frame (multi-frequency records) "
                             "are not supported", hea)
        if len(tok) >= 3:
            g = _RX_GAIN.fullmatch(tok[2])
            if not g or (g["gain"] is None and g["base"] is None and g["units"] is None):
                raise InputError(f"header line {n}: bad gain field {tok[2][:30]!r} "
                                 "(GAIN[(BASELINE)][/UNITS])", hea)
            if g["gain"] is not None and not np.isfinite(float(g["gain"])):
                raise InputError(f"header line {n}: gain {g['gain']!r} is not finite", hea)
            if g["base"] is not None and abs(int(g["base"])) >= 2**31:
                raise InputError(f"header line {n}: baseline {g['base']} is out of range", hea)
        signals.append({"file": tok[0], "fmt": f["fmt"], "spf": spf, "offset": int(f["off"] or 0)})
    return {"n_sig": n_sig, "fs": fs, "sig_len": sig_len, "signals": signals}


def _import_wfdb():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # wfdb's own pandas deprecations are not the user's
        import wfdb
    return wfdb


def _wfdb_header(stem: Path):
    """The ``wfdb`` header object of a record, after :func:`check_wfdb_header` passed."""
    wfdb = _import_wfdb()
    stem = _wfdb_stem(stem)
    hea = _stem_file(stem, ".hea")
    check_wfdb_header(_read_header_text(hea), hea)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # wfdb's pandas deprecations are not the user's
            return wfdb.rdheader(str(stem))
    except Exception as e:  # wfdb raises bare ValueError/IndexError/... on bad headers
        raise InputError(f"unreadable WFDB header ({type(e).__name__}: {e})", hea) from None


def _check_signal_file(stem: Path, spec: dict, channel: int, hea: Path) -> tuple[Path, int]:
    """The channel's signal file, checked to hold the declared samples; (path, byte offset)."""
    sig = spec["signals"][channel]
    dat = stem.parent / sig["file"]
    if not dat.exists():
        raise InputError(f"signal file {dat.name} named by the header is missing", dat)
    if not dat.is_file():
        raise InputError(f"signal file {dat.name} is not a regular file", dat)
    size = dat.stat().st_size
    if size == 0:
        raise InputError("signal file is empty", dat)
    offset = sig["offset"]
    if offset >= size:
        raise InputError(f"header byte offset {offset} is beyond the end of the file ({size} bytes)",
                         dat)
    # Signals sharing a file are interleaved frame by frame.
    bits = [WFDB_FORMAT_BITS[s["fmt"]] for s in spec["signals"] if s["file"] == sig["file"]]
    if None in bits:  # FLAC-compressed: the size says little; refuse absurd claims only
        if spec["sig_len"] * len(bits) > 64 * 8 * size:
            raise InputError(f"header says {spec['sig_len']} samples, implausible for a "
                             f"{size}-byte compressed file", dat)
        return dat, offset
    n_held = int((size - offset) * 8 // sum(bits))
    if n_held < spec["sig_len"]:
        raise InputError(f"header says {spec['sig_len']} samples but the file holds {n_held}"
                         f" (from byte offset {offset})", dat)
    return dat, offset


def read_wfdb(path: str | os.PathLike, channel: int | None = None) -> Recording:
    """Read a WFDB record (``.hea`` plus its signal file) into µV.

    Honours the header's format, byte offset, gain, baseline and units (WFDB's default unit
    is mV); samples at the format's invalid value (−32768 in format 16) become NaN. A
    multi-channel record needs ``channel``.
    """
    wfdb = _import_wfdb()
    stem = _wfdb_stem(path)
    hea = _stem_file(stem, ".hea")
    text = _read_header_text(hea)
    spec = check_wfdb_header(text, hea)
    n_sig = spec["n_sig"]
    if channel is None:
        if n_sig > 1:
            header = _wfdb_header(stem)
            raise InputError(f"record has {n_sig} signals ({', '.join(map(str, header.sig_name))});"
                             " choose one with channel=/--channel", hea)
        channel = 0
    if not 0 <= channel < n_sig:
        raise InputError(f"channel {channel} does not exist (record has {n_sig})", hea)
    dat, offset = _check_signal_file(stem, spec, channel, hea)
    header = _wfdb_header(stem)
    fmt = spec["signals"][channel]["fmt"]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            rec = wfdb.rdrecord(str(stem), channels=[channel], physical=True)
    except Exception as e:  # includes MemoryError from absurd but consistent headers
        raise InputError(f"cannot read WFDB signal ({type(e).__name__}: {e})", dat) from None
    n_declared = spec["sig_len"]
    if rec.p_signal is None or rec.p_signal.shape[0] != n_declared:
        got = None if rec.p_signal is None else rec.p_signal.shape[0]
        raise InputError(f"header says {n_declared} samples but {got} were decoded", dat)
    unit = (rec.units[0] if rec.units else "") or "mV"  # WFDB: no unit given means mV
    scale = UNIT_TO_UV.get(unit.strip().lower())
    if scale is None:
        raise InputError(f"unknown signal unit {unit!r} (expected uV, mV or V)", hea)
    x = rec.p_signal[:, 0] * scale
    # Comments from the UTF-8 text itself: wfdb drops their non-ASCII characters.
    meta = _comments_to_meta([ln.strip() for ln in text.splitlines() if ln.strip().startswith("#")])
    meta.update({"units": unit, "format": fmt, "byte_offset": offset,
                 "adc_gain": float(rec.adc_gain[0]) if rec.adc_gain else None})
    return _finalise(x, header.fs, hea, meta, record=stem.name)


# --------------------------------------------------------------------------- arrays

def _check_npy_header(path: Path) -> None:
    """Refuse object (pickled) arrays and truncated files before ``np.load`` allocates."""
    fmt = np.lib.format
    with open(path, "rb") as fh:
        try:
            version = fmt.read_magic(fh)
            if version == (1, 0):
                shape, _, dtype = fmt.read_array_header_1_0(fh)
            elif version == (2, 0):
                shape, _, dtype = fmt.read_array_header_2_0(fh)
            elif version == (3, 0):
                return  # utf-8 field names, rare: np.load checks it itself
            else:
                raise InputError(f"not a .npy file (unknown format version {version})", path)
        except InputError:
            raise
        except Exception as e:
            raise InputError(f"not a .npy file ({type(e).__name__}: {e})", path) from None
        data_bytes = path.stat().st_size - fh.tell()
    if dtype.hasobject:
        raise InputError("holds Python objects (a pickled array); alsnet loads plain numeric "
                         ".npy arrays only", path)
    need = int(np.prod(shape, dtype=object)) * dtype.itemsize
    if need > data_bytes:
        raise InputError(f"truncated: header declares shape {shape} of {dtype} ({need} bytes) but "
                         f"the file holds {data_bytes} bytes of data", path)


def read_npy(path: str | os.PathLike, fs: float | None) -> Recording:
    """A ``.npy`` array of µV (one channel); the rate must be given."""
    if fs is None:
        raise InputError("a .npy file carries no sampling rate; give fs= / --fs", path)
    _check_npy_header(Path(path))
    try:
        x = np.load(path, allow_pickle=False)
    except ValueError as e:
        raise InputError(f"not a plain numeric .npy array ({e})", path) from None
    except Exception as e:
        raise InputError(f"cannot read .npy ({type(e).__name__}: {e})", path) from None
    if not isinstance(x, np.ndarray):
        raise InputError("not a single .npy array", path)
    return _finalise(x, fs, path)


def read_csv(path: str | os.PathLike, fs: float | None) -> Recording:
    """A one-column text file of µV, optionally with a header line; the rate must be given."""
    if fs is None:
        raise InputError("a .csv file carries no sampling rate; give fs= / --fs", path)
    try:
        text = Path(path).read_text(encoding="utf-8-sig").splitlines()
    except UnicodeDecodeError:
        raise InputError("CSV is not UTF-8 text", path) from None
    numbered = [(i + 1, r.strip()) for i, r in enumerate(text) if r.strip()]
    if numbered and not _is_number(numbered[0][1].split(",")[0]):
        numbered = numbered[1:]  # one header line is allowed
    if not numbered:
        raise InputError("CSV holds no samples", path)
    rows = [r for _, r in numbered]
    if any("," in r for r in rows[:5]):
        raise InputError("CSV must have exactly one column of samples", path)
    try:
        x = np.array([float(r) for r in rows], dtype=np.float64)
    except ValueError:
        line, bad = next((n, r) for n, r in numbered if not _is_number(r))
        raise InputError(f"CSV line {line} is not a number: {bad[:40]!r}", path) from None
    return _finalise(x, fs, path)


def _is_number(s: str) -> bool:
    try:
        float(s)
        return True
    except ValueError:
        return False


def _check_scale(scale, path) -> float:
    try:
        scale = float(scale)
    except (TypeError, ValueError):
        raise InputError(f"scale is not a number: {scale!r}", path) from None
    if not np.isfinite(scale) or scale == 0:
        raise InputError(f"scale must be a finite non-zero number of µV per unit, got {scale:g}", path)
    return scale


def read_wav(path: str | os.PathLike, scale: float | None) -> Recording:
    """A mono ``.wav``; ``scale`` is µV per unit of the stored integer (or float) samples.

    8-bit WAV is unsigned with its zero at 128; that offset is removed before scaling.
    """
    from scipy.io import wavfile

    if scale is None:
        raise InputError("a .wav file carries no physical scale; give scale= / --scale (µV per unit)", path)
    scale = _check_scale(scale, path)
    with open(path, "rb") as fh:
        head = fh.read(12)
    if head[:4] not in (b"RIFF", b"RIFX", b"RF64") or head[8:12] != b"WAVE":
        raise InputError("not a WAV file (no RIFF/WAVE header)", path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fs, x = wavfile.read(path)
    except ValueError as e:  # scipy's own messages say what is wrong
        raise InputError(f"cannot read WAV ({e})", path) from None
    except Exception as e:  # scipy trips over truncated or inconsistent headers
        raise InputError(f"WAV header is malformed or truncated ({type(e).__name__}: {e})", path) from None
    if x.ndim == 2:
        if x.shape[1] != 1:
            raise InputError(f"WAV has {x.shape[1]} channels; alsnet needs one", path)
        x = x[:, 0]
    if x.size == 0:
        raise InputError("WAV holds no samples", path)
    offset = 128.0 if x.dtype == np.uint8 else 0.0
    if not np.issubdtype(x.dtype, np.number):
        raise InputError(f"WAV samples must be numbers, got dtype {x.dtype}", path)
    return _finalise((x.astype(np.float64) - offset) * scale, fs, path)


def open_edf(path: str | os.PathLike, channel: int | None = None):
    """``(reader, channel, µV per physical unit, metadata)`` of one signal of an EDF/EDF+/BDF
    file, checked; the caller closes the ``pyedflib.EdfReader``."""
    import pyedflib

    try:
        f = pyedflib.EdfReader(os.fspath(path))
    except Exception as e:
        why = str(e).replace(f"{os.fspath(path)}: ", "").strip() or type(e).__name__
        raise InputError(f"cannot read EDF ({why})", path) from None
    try:
        n = f.signals_in_file
        if n == 0:
            raise InputError("EDF holds no signals", path)
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
        meta = {"label": f.getLabel(channel), "units": unit}
    except BaseException:
        f.close()
        raise
    return f, channel, scale, meta


def read_edf(path: str | os.PathLike, channel: int | None = None) -> Recording:
    """An EDF/EDF+/BDF file through ``pyedflib``; physical units converted to µV."""
    f, channel, scale, meta = open_edf(path, channel)
    try:
        x = f.readSignal(channel) * scale
        fs = f.getSampleFrequency(channel)
    except Exception as e:
        raise InputError(f"cannot read EDF signal ({type(e).__name__}: {e})", path) from None
    finally:
        f.close()
    return _finalise(x, fs, path, meta)


# --------------------------------------------------------------------------- dispatch

def read_recording(path: str | os.PathLike, *, fs: float | None = None, scale: float | None = None,
                   channel: int | None = None) -> Recording:
    """Read any supported file, chosen by suffix (a bare WFDB stem works too)."""
    p = Path(path)
    kind = SUFFIXES.get(p.suffix.lower())
    if kind is None and _stem_file(p, ".hea").is_file():
        kind = "wfdb"
    if kind is None:
        if not p.exists():
            raise InputError("file not found", p)
        raise InputError(f"unknown file type {p.suffix or '(no suffix)'!r}; "
                         f"alsnet reads {', '.join(sorted(SUFFIXES))}", p)
    try:
        if kind == "wfdb":
            return read_wfdb(p, channel=channel)
        if not p.exists():
            raise InputError("file not found", p)
        if not p.is_file():
            raise InputError("not a regular file", p)
        if p.stat().st_size == 0:
            raise InputError("file is empty", p)
        if kind == "npy":
            return read_npy(p, fs)
        if kind == "csv":
            return read_csv(p, fs)
        if kind == "wav":
            return read_wav(p, scale)
        return read_edf(p, channel=channel)
    except OSError as e:  # permissions, I/O errors, a file vanishing while read
        raise InputError(f"cannot read file ({e.strerror or type(e).__name__})", p) from None
    except MemoryError:
        raise InputError("too large to read into memory", p) from None


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
