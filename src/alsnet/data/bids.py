"""EMG-BIDS (BIDS 1.11): a BIDS folder read as an alsnet data set, and any data set written as one.

Reading: the EMG recordings are ``sub-*/[ses-*/]emg/*_emg.edf|.bdf`` found through the BIDS
layout (``mne_bids.find_matching_paths``); each file's signal is read by the one EDF reader
(:class:`~alsnet.data.formats.EdfSource`, pyedflib). ``_channels.tsv`` says which signal is
EMG (``--channel`` chooses among several) and its ``target_muscle``; ``_emg.json`` must agree
with the file's rate; the class is a ``participants.tsv`` column (``diagnosis`` unless told).

Writing (:func:`write_bids`, ``alsnet data to-bids``): each recording becomes one EDF (16-bit)
or BDF (24-bit) signal in µV written with ``edfio``, then handed to ``mne_bids.write_raw_bids``,
which copies it and writes the sidecars. EDF/BDF hold a whole number of samples per data
record, so the record lasts the fewest whole seconds that hold a whole number of samples
(2 s = 46,875 samples at 23437.5 Hz, which every reader then turns back into exactly 23437.5
Hz). A recording that is not a whole number of records is padded to the next one with its
last value, and the padding is marked as an EDF+ annotation ``BAD_ACQ_SKIP`` (MNE's own
convention, also listed in ``_events.tsv``); invalid (NaN) stretches are written as 0 µV under
the same annotation. Reading a BIDS set, alsnet stops at a ``BAD_ACQ_SKIP`` that runs to the
end of the file and reads samples under the others as invalid, so the samples that come back
are the recording's own, to the format's resolution (:func:`resolution_uv`).
"""

from __future__ import annotations

import csv
import json
import math
import os
import re
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from alsnet.data.formats import EdfSource
from alsnet.data.labels import class_from_diagnosis
from alsnet.data.source import UNIT_TO_UV, unit_to_uv
from alsnet.errors import InputError

if TYPE_CHECKING:
    from alsnet.data.dataset import Problem
    from alsnet.data.io import Recording

#: The BIDS version whose EMG datatype the written sets follow.
BIDS_VERSION = "1.11.0"
#: participants.tsv column holding the class, unless told otherwise.
DEFAULT_LABEL_COLUMN = "diagnosis"
#: participants.tsv values and the alsnet class each stands for.
PARTICIPANT_CLASSES = {"als": "als", "normal": "normal", "control": "normal", "healthy": "normal",
                       "myopathy": "myopathy"}
#: EDF+ annotation of samples that hold no recording (padding, invalid stretches).
SKIP = "BAD_ACQ_SKIP"
#: Digital range of each format (16-bit EDF, 24-bit BDF).
DIGITAL = {"edf": (-32768, 32767), "bdf": (-(2 ** 23), 2 ** 23 - 1)}
#: Longest data record tried (s).
MAX_RECORD_S = 60


def record_duration(fs: float, name: str | os.PathLike = "recording") -> int:
    """The fewest whole seconds (1-60) holding a whole number of samples at ``fs``: 1 s for an
    integer rate, 2 s at 23437.5 Hz; else :class:`InputError` naming ``name``."""
    for d in range(1, MAX_RECORD_S + 1):
        if abs(fs * d - round(fs * d)) < 1e-9 * fs * d:
            return d
    raise InputError(f"{fs:g} Hz is not a whole number of samples in any EDF data record of 1-"
                     f"{MAX_RECORD_S} s; resample the recording first", name)


def resolution_uv(physical_min: float, physical_max: float, fmt: str = "edf") -> float:
    """µV per digital step of a signal stored with this physical range in EDF or BDF."""
    lo, hi = DIGITAL[fmt]
    return (physical_max - physical_min) / (hi - lo)


def skip_spans(onsets: np.ndarray, durations: np.ndarray, descriptions: np.ndarray, fs: float,
               n: int) -> tuple[int, list[tuple[int, int]]]:
    """``(samples of recording, [(start, stop), ...] invalid)`` from ``BAD_ACQ_SKIP`` annotations:
    one that runs to the end of the file ends the recording there (padding)."""
    spans = sorted((max(0, round(o * fs)), min(n, round((o + d) * fs)))
                   for o, d, t in zip(onsets, durations, descriptions) if str(t) == SKIP)
    while spans and spans[-1][1] >= n and spans[-1][0] > 0:
        n = spans.pop()[0]
    return n, [(a, min(b, n)) for a, b in spans if a < n]


# --------------------------------------------------------------------------- reading

def is_bids_dataset(root: str | os.PathLike) -> bool:
    """Whether ``root`` is a folder with a ``dataset_description.json`` (a BIDS data set)."""
    return Path(root).is_dir() and (Path(root) / "dataset_description.json").is_file()


def bids_root_of(path: str | os.PathLike) -> Path | None:
    """The BIDS data set an ``*_emg.edf|.bdf`` file belongs to, or None."""
    p = Path(path).resolve()
    if not re.search(r"_emg\.(edf|bdf)$", p.name, re.IGNORECASE) or p.parent.name != "emg":
        return None
    return next((a for a in p.parents if is_bids_dataset(a)), None)


def find_bids_recordings(root: str | os.PathLike) -> list[Path]:
    """The EMG data files of a BIDS data set, sorted (not those of ``sourcedata/`` or ``derivatives/``)."""
    import mne_bids

    found = mne_bids.find_matching_paths(root, datatypes="emg", suffixes="emg", extensions=[".edf", ".bdf"])
    # mne-bids also lists files under sourcedata/ and derivatives/: not recordings of this set
    return sorted(Path(p.fpath) for p in found
                  if Path(p.fpath).relative_to(root).parts[0].startswith("sub-"))


def _read_tsv(path: Path) -> list[dict]:
    try:
        with path.open(newline="", encoding="utf-8-sig") as fh:
            return list(csv.DictReader(fh, delimiter="\t"))
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise InputError(f"cannot read TSV ({type(e).__name__}: {e})", path) from None


def _value(row: dict, key: str) -> str | None:
    v = (row.get(key) or "").strip()
    return None if v in ("", "n/a") else v


def participant_class(value: str | None) -> str | None:
    """The alsnet class of a ``participants.tsv`` value (``als``, ``control`` ...), or None."""
    if value is None:
        return None
    return PARTICIPANT_CLASSES.get(value.strip().lower()) or class_from_diagnosis(value)


def read_participants(root: str | os.PathLike, column: str = DEFAULT_LABEL_COLUMN
                      ) -> tuple[dict[str, str | None], list[str]]:
    """``({subject label: class or None}, [warnings naming participants.tsv])``."""
    path = Path(root) / "participants.tsv"
    if not path.is_file():
        return {}, [f"{path}: missing, so every recording's class is unknown"]
    rows = _read_tsv(path)
    if rows and "participant_id" not in rows[0]:
        raise InputError("has no participant_id column", path)
    if not rows or column not in rows[0]:
        have = ", ".join(rows[0]) if rows else "no rows"
        return {}, [f"{path}: no column {column!r} ({have}); give the class column with --label-column"]
    out, warn = {}, []
    for r in rows:
        sub, value = str(r["participant_id"]).removeprefix("sub-"), _value(r, column)
        out[sub] = participant_class(value)
        if value is not None and out[sub] is None:
            warn.append(f"{path}: sub-{sub} has {column} {value!r}, not one of als, normal (control, "
                        "healthy), myopathy: class unknown")
    return out, warn


def _sidecar(path: Path, suffix: str, extension: str) -> Path:
    """The sidecar of a data file by the BIDS inheritance principle, else :class:`InputError`."""
    import mne_bids

    bp = mne_bids.get_bids_path_from_fname(path).update(root=bids_root_of(path) or path.parents[2])
    found = bp.find_matching_sidecar(suffix=suffix, extension=extension, on_error="ignore")
    if found is None:
        raise InputError(f"missing sidecar {suffix}{extension} (BIDS requires one per recording)",
                         path.with_name(path.name.rsplit("_", 1)[0] + f"_{suffix}{extension}"))
    return Path(found)


class BidsEdfSource(EdfSource):
    """One EMG signal of a BIDS ``*_emg.edf|.bdf``: its channel and muscle from ``_channels.tsv``,
    its rate checked against ``_emg.json``, ``BAD_ACQ_SKIP`` padding left out and the samples under
    other ``BAD_ACQ_SKIP`` annotations invalid."""

    def __init__(self, path: str | os.PathLike, channel: int | None = None):
        path = Path(path)
        chan_tsv = _sidecar(path, "channels", ".tsv")
        rows = _read_tsv(chan_tsv)
        if not rows or not {"name", "type", "units"} <= set(rows[0]):
            raise InputError("needs the columns name, type, units", chan_tsv)
        super().__init__(path, 0)
        try:
            self._choose(path, chan_tsv, rows, channel)
            self._check_rate(_sidecar(path, "emg", ".json"))
            ann = self.reader.readAnnotations()
            self.n_samples, self.skips = skip_spans(*ann, self.fs, self.n_samples)
            if self.n_samples <= 0:
                raise InputError(f"the whole signal is annotated {SKIP}", path)
        except BaseException:
            self.close()
            raise

    def _choose(self, path: Path, chan_tsv: Path, rows: list[dict], channel: int | None) -> None:
        labels = [s.strip() for s in self.reader.getSignalLabels()]
        names = [r["name"].strip() for r in rows]
        if sorted(names) != sorted(labels):
            raise InputError(f"lists channels {', '.join(names)} but {path.name} holds "
                             f"{', '.join(labels)}", chan_tsv)
        if channel is None:
            emg = [r for r in rows if (r.get("type") or "").strip().upper() == "EMG"]
            if len(emg) != 1:
                raise InputError(f"{len(emg)} channels of type EMG"
                                 + (f" ({', '.join(r['name'] for r in emg)}); choose one with channel=/--channel"
                                    if emg else "; choose a signal with channel=/--channel"), chan_tsv)
            channel = labels.index(emg[0]["name"].strip())
        if not 0 <= channel < len(labels):
            raise InputError(f"channel {channel} does not exist (file has {len(labels)})", path)
        row = rows[names.index(labels[channel])]
        unit = UNIT_TO_UV.get((_value(row, "units") or "").lower())
        header = UNIT_TO_UV.get(self.reader.getPhysicalDimension(channel).strip().lower() or "uv")
        if unit is not None and header is not None and unit != header:
            raise InputError(f"says {labels[channel]} is in {row['units']} but {path.name} says "
                             f"{self.reader.getPhysicalDimension(channel)}", chan_tsv)
        self.channel = int(channel)
        self.uv_per_unit = unit_to_uv(self.reader.getPhysicalDimension(channel).strip() or "uV", path)
        self.n_samples = int(self.reader.getNSamples()[channel])
        self.fs = float(self.reader.getSampleFrequency(channel))
        self.meta = {"label": labels[channel], "units": self.reader.getPhysicalDimension(channel),
                     "muscle": _value(row, "target_muscle")}

    def _check_rate(self, emg_json: Path) -> None:
        try:
            side = json.loads(emg_json.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError) as e:
            raise InputError(f"cannot read JSON ({type(e).__name__}: {e})", emg_json) from None
        fs = side.get("SamplingFrequency") if isinstance(side, dict) else None
        if not isinstance(fs, (int, float)) or isinstance(fs, bool):
            raise InputError("has no numeric SamplingFrequency (BIDS requires it)", emg_json)
        if not math.isclose(fs, self.fs, rel_tol=1e-9):
            raise InputError(f"says SamplingFrequency {fs:g} Hz but {Path(self.path).name} holds "
                             f"{self.fs:g} Hz", emg_json)
        self.meta["sidecar"] = {k: v for k, v in side.items() if isinstance(v, (str, int, float))}

    def _read(self, start: int, stop: int) -> np.ndarray:
        x = super()._read(start, stop)
        for a, b in self.skips:
            if a < stop and b > start:
                x[max(a, start) - start:min(b, stop) - start] = np.nan
        return x


def bids_classes(root: str | os.PathLike, label_column: str | None = None,
                 on_error: Callable[[Problem], None] | None = None) -> dict[str, str]:
    """Subject → class of a BIDS data set, from ``participants.tsv`` (``label_column``, default
    ``diagnosis``). A participants.tsv problem goes to ``on_error`` with an empty path (a
    warning: a class is not needed to read the signals), or is a ``RecordingWarning``."""
    from alsnet.data.dataset import Problem
    from alsnet.data.io import RecordingWarning

    classes, warns = read_participants(root, label_column or DEFAULT_LABEL_COLUMN)
    for w in warns:
        if on_error is None:
            warnings.warn(w, RecordingWarning, stacklevel=2)
        else:
            on_error(Problem("", w))
    return classes


def annotate_bids(rec: Recording, path: str | os.PathLike, classes: dict[str, str]) -> Recording:
    """Subject, class and muscle of a recording read from a BIDS file, from its entities and sidecars."""
    import mne_bids

    ent = mne_bids.get_entities_from_fname(Path(path).name)
    rec.subject, rec.label = ent["subject"], classes.get(ent["subject"])
    rec.muscle = muscle_code(rec.meta.get("muscle"))
    rec.meta["bids"] = {k: v for k, v in ent.items() if v is not None}
    return rec


def muscle_code(name: str | None) -> str | None:
    """An N2001 muscle code for a muscle name alsnet knows (``biceps brachii`` → ``BB``), else the name."""
    from alsnet.data.io import MUSCLES

    codes = {v: k for k, v in MUSCLES.items()}
    return None if name is None else codes.get(name.strip().lower(), name)


__all__ = ["BIDS_VERSION", "DEFAULT_LABEL_COLUMN", "BidsEdfSource", "bids_root_of", "find_bids_recordings",
           "annotate_bids", "bids_classes", "is_bids_dataset", "participant_class", "read_participants",
           "record_duration", "resolution_uv", "skip_spans"]
