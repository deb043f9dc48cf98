"""WFDB records (EMGLab N2001, PhysioNet) as a :class:`~alsnet.data.source.Source`.

Headers are checked line by line before ``wfdb`` sees them, because ``wfdb`` parses
leniently (a rate of ``inf`` silently becomes the default 250 Hz); the samples are then
decoded by ``wfdb.rdrecord`` over the requested range, in every format it reads, with the
header's gain, baseline and units (WFDB's default unit is mV). Samples at the format's
invalid value (−32768 in format 16) are NaN.
"""

from __future__ import annotations

import os
import re
import warnings
from pathlib import Path

import numpy as np

from alsnet.data.source import Source, check_fs, unit_to_uv
from alsnet.errors import InputError

#: Bits per sample of each WFDB storage format (FLAC formats 5xx: unknown, compressed).
WFDB_FORMAT_BITS = {"8": 8, "16": 16, "24": 24, "32": 32, "61": 16, "80": 8, "160": 16,
                    "212": 12, "310": 32 / 3, "311": 32 / 3, "508": None, "516": None, "524": None}
#: Most samples per channel alsnet reads in one piece (about 25 h at 23437.5 Hz).
MAX_SAMPLES = 2**31 - 1


def _comments_to_meta(comments: list[str]) -> dict:
    """``key: value`` header comments as a dict; other comment text is ignored."""
    meta = {}
    for c in comments:
        key, sep, value = str(c).partition(":")
        key = key.strip().lstrip("#").strip().lower()
        if sep and key and key.isprintable():
            meta[key] = value.strip()
    return meta


_NUM = r"(?:\d+\.?\d*|\.\d+)"
_RX_FS = re.compile(rf"(?P<fs>{_NUM})(?:/(?P<cf>{_NUM})(?:\((?P<bc>-?{_NUM})\))?)?")
_RX_FMT = re.compile(r"(?P<fmt>\d+)(?:x(?P<spf>\d+))?(?::(?P<skew>\d+))?(?:\+(?P<off>\d+))?")
_RX_GAIN = re.compile(r"(?P<gain>-?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)?"
                      r"(?:\((?P<base>-?\d+)\))?(?:/(?P<units>[\w^\-?%/]+))?")
_RX_FILE = re.compile(r"[-\w]*\.?\w*")


def stem_file(stem: Path, suffix: str) -> Path:
    """``stem`` + suffix, keeping dots in record names (``Path.with_suffix`` would eat them)."""
    return stem.parent / (stem.name + suffix)


def wfdb_stem(path: str | os.PathLike) -> Path:
    """The record's stem from a ``.hea``, ``.dat`` or ``.bin`` path (or the stem itself)."""
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
    stem = wfdb_stem(stem)
    hea = stem_file(stem, ".hea")
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




class WfdbSource(Source):
    """One channel of a WFDB record (``.hea`` plus its signal file), read by range in µV.

    Parameters
    ----------
    path : str or path
        The ``.hea``, its signal file, or the record's stem.
    channel : int, optional
        The signal to read; required when the record has several.
    """

    def __init__(self, path: str | os.PathLike, channel: int | None = None):
        super().__init__()
        stem = wfdb_stem(path)
        hea = stem_file(stem, ".hea")
        text = _read_header_text(hea)
        spec = check_wfdb_header(text, hea)
        n_sig = spec["n_sig"]
        if channel is None:
            if n_sig > 1:
                names = ", ".join(map(str, _wfdb_header(stem).sig_name))
                raise InputError(f"record has {n_sig} signals ({names}); choose one with channel=/--channel",
                                 hea)
            channel = 0
        if not 0 <= channel < n_sig:
            raise InputError(f"channel {channel} does not exist (record has {n_sig})", hea)
        self.dat, offset = _check_signal_file(stem, spec, channel, hea)
        header = _wfdb_header(stem)
        unit = (header.units[channel] if header.units else "") or "mV"  # WFDB: no unit given means mV
        self.uv_per_unit = unit_to_uv(unit, hea)
        self.stem, self.channel, self.path, self.record = stem, int(channel), os.fspath(hea), stem.name
        self.fs, self.n_samples = check_fs(header.fs, hea), int(spec["sig_len"])
        # Comments from the UTF-8 text itself: wfdb drops their non-ASCII characters.
        self.meta = _comments_to_meta([ln.strip() for ln in text.splitlines() if ln.strip().startswith("#")])
        gain = header.adc_gain[channel] if header.adc_gain else None
        self.meta.update({"units": unit, "format": spec["signals"][channel]["fmt"], "byte_offset": offset,
                          "adc_gain": None if gain is None else float(gain)})

    def _read(self, start: int, stop: int) -> np.ndarray:
        wfdb = _import_wfdb()
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                rec = wfdb.rdrecord(str(self.stem), sampfrom=start, sampto=stop, channels=[self.channel],
                                    physical=True)
        except MemoryError:
            raise
        except Exception as e:  # wfdb raises bare ValueError/IndexError/... on bad signal files
            raise InputError(f"cannot read WFDB signal ({type(e).__name__}: {e})", self.dat) from None
        if rec.p_signal is None:
            raise InputError(f"no samples were decoded from samples {start}-{stop}", self.dat)
        return rec.p_signal[:, 0] * self.uv_per_unit
