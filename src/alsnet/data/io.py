"""Reading EMG recordings: :func:`open_source` by range, :func:`read_recording` whole.

Formats: WFDB (EMGLab N2001 and PhysioNet-style records, through ``wfdb``), ``.npy`` and
one-column ``.csv`` (rate given by the user), ``.wav`` (rate from the file, scale given by
the user) and EDF/EDF+/BDF (through ``pyedflib``). Each has one reader, a
:class:`~alsnet.data.source.Source` (:mod:`alsnet.data.wfdb_source`,
:mod:`alsnet.data.formats`): :func:`open_source` opens it for range reads (``alsnet
predict`` streams it), and :func:`read_recording` is ``source.read(0, n)`` plus identity
and metadata as one :class:`Recording` of float32 microvolts in which invalid samples are
NaN, never silently zero (:attr:`Recording.n_invalid` counts them). Every problem is an
:class:`~alsnet.errors.InputError` naming the file; no other exception type leaves this
module for a bad file (``tests/test_bad_input.py``, ``tests/test_fuzz.py``).
"""

from __future__ import annotations

import contextlib
import os
import re
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from alsnet.data.bids import BidsEdfSource, bids_root_of, find_bids_recordings, is_bids_dataset
from alsnet.data.formats import CsvSource, EdfSource, NpySource, WavSource
from alsnet.data.labels import CLASS_TO_LETTER, LETTER_TO_CLASS, class_from_diagnosis
from alsnet.data.source import (  # noqa: F401  (check_fs, check_channel, UNIT_TO_UV: public here too)
    UNIT_TO_UV,
    ArraySource,
    Source,
    as_float32,
    check_channel,
    check_fs,
)
from alsnet.data.wfdb_source import WfdbSource, check_wfdb_header, stem_file  # noqa: F401
from alsnet.errors import InputError

#: N2001 record names: N2001 + class letter + subject + muscle + recording number.
N2001_NAME = re.compile(r"^N2001(?P<letter>[ACM])(?P<subj>\d{2})(?P<muscle>[A-Z]{2})(?P<num>\d{2})$")
MUSCLES = {"BB": "biceps brachii", "VM": "vastus medialis", "TA": "tibialis anterior",
           "DE": "deltoid", "FD": "first dorsal interosseous"}

#: File types each reader takes.
SUFFIXES = {".hea": "wfdb", ".dat": "wfdb", ".bin": "wfdb", ".npy": "npy", ".csv": "csv",
            ".txt": "csv", ".wav": "wav", ".edf": "edf", ".bdf": "edf"}
#: Files :func:`find_recordings` lists in a folder (one ``.hea`` per WFDB record).
RECORDING_SUFFIXES = (".hea", ".npy", ".csv", ".wav", ".edf", ".bdf")
#: What a folder without any of them is told.
NO_RECORDINGS = f"no recordings found (alsnet reads {', '.join(RECORDING_SUFFIXES)} files)"


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



def _finalise(x: np.ndarray, source: Source) -> Recording:
    """A :class:`Recording` of a source's samples, with identity from its name and header."""
    path = source.path
    x = as_float32(x)  # values beyond float32 become invalid, not infinite
    valid = x[np.isfinite(x)]
    if valid.size == 0:
        raise InputError(f"all {x.size} samples are invalid", path)
    if valid.size > 1 and valid.min() == valid.max():
        # Allowed (the file is what it is), but a flat line carries no EMG: say so.
        warnings.warn(f"{path}: signal is constant ({valid[0]:g} µV in all {valid.size} valid "
                      "samples): no EMG activity (electrode disconnected?)",
                      SignalQualityWarning, stacklevel=3)
    meta = dict(source.meta)
    rec = Recording(signal=x, fs=source.fs, record=source.record, meta=meta, path=path)
    parsed = parse_n2001_name(source.record)
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


@contextlib.contextmanager
def _file_errors(path: str | os.PathLike) -> Iterator[None]:
    """Operating-system failures while a file is opened or read, as one :class:`InputError`."""
    try:
        yield
    except OSError as e:  # permissions, I/O errors, a file vanishing while read
        raise InputError(f"cannot read file ({e.strerror or type(e).__name__})", path) from None
    except MemoryError:
        raise InputError("too large to read into memory", path) from None


def _file_kind(p: Path) -> str:
    """The reader of a path (by suffix; a bare WFDB stem works too), its file checked to exist."""
    if p.is_dir():
        n = len(find_recordings(p))
        raise InputError(f"not a regular file but a folder: {NO_RECORDINGS}" if n == 0 else
                         f"not a regular file but a folder of {n} recordings (alsnet predict and data "
                         "info take folders)", p)
    kind = SUFFIXES.get(p.suffix.lower())
    if kind is None and stem_file(p, ".hea").is_file():
        return "wfdb"
    if kind is None:
        if not p.exists():
            raise InputError("file not found", p)
        raise InputError(f"unknown file type {p.suffix or '(no suffix)'!r}; "
                         f"alsnet reads {', '.join(sorted(SUFFIXES))}", p)
    if kind != "wfdb":  # a WFDB record's files are checked by its reader
        if not p.exists():
            raise InputError("file not found", p)
        if not p.is_file():
            raise InputError("not a regular file", p)
        if p.stat().st_size == 0:
            raise InputError("file is empty", p)
    return kind


def open_source(path_or_array: str | os.PathLike | np.ndarray, *, fs: float | None = None,
                scale: float | None = None, channel: int | None = None) -> Source:
    """Open one channel of a recording for range reads (``source.read(start, stop)``, µV).

    Parameters
    ----------
    path_or_array : path or ndarray
        A recording file (WFDB ``.hea``/``.dat``/``.bin`` or bare stem, ``.npy``, ``.csv``,
        ``.txt``, ``.wav``, ``.edf``, ``.bdf``) or a 1-D array of µV.
    fs : float, optional
        Sampling rate (Hz) of arrays, ``.npy`` and ``.csv``, which carry none.
    scale : float, optional
        µV per unit of ``.wav`` samples.
    channel : int, optional
        Signal of a multi-channel WFDB or EDF file.

    Returns
    -------
    Source
        Close it (or use ``with``) when done: an EDF source holds its file open.

    Raises
    ------
    InputError
        The file cannot be read as a recording; the message names it.
    """
    if isinstance(path_or_array, np.ndarray):
        if fs is None:
            raise InputError("an array carries no sampling rate; give fs=")
        return ArraySource(path_or_array, fs)
    p = Path(path_or_array)
    with _file_errors(p):
        kind = _file_kind(p)
        if kind == "wfdb":
            return WfdbSource(p, channel)
        if kind == "npy":
            return NpySource(p, fs)
        if kind == "csv":
            return CsvSource(p, fs)
        if kind == "wav":
            return WavSource(p, scale)
        if bids_root_of(p) is not None:  # *_emg.edf|.bdf of a BIDS data set: channel and padding from its sidecars
            return BidsEdfSource(p, channel)
        return EdfSource(p, channel)


def read_recording(path: str | os.PathLike, *, fs: float | None = None, scale: float | None = None,
                   channel: int | None = None) -> Recording:
    """Read a whole recording: :func:`open_source` then ``read(0, n)``, with identity and metadata.

    Parameters are those of :func:`open_source`. Raises :class:`InputError` naming the file.
    """
    with open_source(path, fs=fs, scale=scale, channel=channel) as source, _file_errors(source.path):
        return _finalise(source.read(0, source.n_samples), source)


def read_wfdb(path: str | os.PathLike, channel: int | None = None) -> Recording:
    """A WFDB record (``.hea`` plus its signal file) in µV; see :class:`~alsnet.data.wfdb_source.WfdbSource`."""
    with _file_errors(path), WfdbSource(path, channel) as source:
        return _finalise(source.read(), source)


def read_npy(path: str | os.PathLike, fs: float | None) -> Recording:
    """A ``.npy`` array of µV (one channel); the rate must be given."""
    with _file_errors(path), NpySource(path, fs) as source:
        return _finalise(source.read(), source)


def read_csv(path: str | os.PathLike, fs: float | None) -> Recording:
    """A one-column text file of µV, optionally with a header line; the rate must be given."""
    with _file_errors(path), CsvSource(path, fs) as source:
        return _finalise(source.read(), source)


def read_wav(path: str | os.PathLike, scale: float | None) -> Recording:
    """A mono ``.wav``; ``scale`` is µV per unit of the stored samples (8-bit: zero at 128)."""
    with _file_errors(path), WavSource(path, scale) as source:
        return _finalise(source.read(), source)


def read_edf(path: str | os.PathLike, channel: int | None = None) -> Recording:
    """An EDF/EDF+/BDF signal through ``pyedflib``, physical units converted to µV."""
    with _file_errors(path), EdfSource(path, channel) as source:
        return _finalise(source.read(), source)


def find_recordings(root: str | os.PathLike) -> list[Path]:
    """Recording files under ``root`` (one path per WFDB record, its ``.hea``), sorted."""
    root = Path(root)
    if root.is_file():
        return [root]
    if not root.is_dir():
        raise InputError("no such file or directory", root)
    if is_bids_dataset(root):  # the BIDS layout says which files are recordings (not sourcedata/, derivatives/)
        return find_bids_recordings(root)
    out = []
    for p in sorted(root.rglob("*")):
        if p.is_file() and p.suffix.lower() in RECORDING_SUFFIXES and p.name != "labels.csv":
            out.append(p)
    return out
