"""Any alsnet data set written as EMG-BIDS (``alsnet data to-bids SRC OUT``).

The rules (record duration, tail padding, invalid stretches) are those of
:mod:`alsnet.data.bids`, which reads the result back. Each signal is written with ``edfio``
(EDF 16-bit or BDF 24-bit, µV, physical range the recording's own minimum and maximum), then
``mne_bids.write_raw_bids`` copies it into the layout and writes ``_emg.json``,
``_channels.tsv``, ``_events.tsv``, ``scans.tsv``, ``participants.tsv`` and
``dataset_description.json``; alsnet adds what mne-bids cannot know (the class as
``participants.tsv`` ``diagnosis``, the muscle as ``target_muscle``, the analogue filters,
the electrode, the real duration).
"""

from __future__ import annotations

import csv
import json
import os
import re
import tempfile
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from alsnet.data.bids import BIDS_VERSION, DIGITAL, SKIP, is_bids_dataset, record_duration, resolution_uv
from alsnet.data.io import MUSCLES, Recording, parse_n2001_name
from alsnet.errors import AlsnetError, InputError

if TYPE_CHECKING:
    from collections.abc import Callable

    from alsnet.data.dataset import Problem

#: What participants.json says of the diagnosis column.
DIAGNOSIS_LEVELS = {"als": "amyotrophic lateral sclerosis", "normal": "no neuromuscular disease (control)",
                    "myopathy": "myopathy"}


def _label(text: str) -> str:
    """A BIDS entity label (letters and digits only) of a name."""
    return re.sub(r"[^A-Za-z0-9]", "", text) or "x"


def _annotations(x: np.ndarray, fs: float, n_pad: int):
    """EDF+ annotations of the NaN runs of ``x`` and of ``n_pad`` padded samples after it."""
    import edfio

    bad = np.r_[False, ~np.isfinite(x), False]
    edges = np.flatnonzero(bad[1:] != bad[:-1]).reshape(-1, 2)
    out = [edfio.EdfAnnotation(a / fs, (b - a) / fs, SKIP) for a, b in edges]
    if n_pad:
        out.append(edfio.EdfAnnotation(len(x) / fs, n_pad / fs, SKIP))
    return out


def _write_signal(rec: Recording, path: Path, fmt: str) -> dict:
    """One recording as a one-signal EDF/BDF; what was done to fit it (padding, resolution)."""
    import edfio

    duration = record_duration(rec.fs, rec.path or rec.record)
    per_record = round(rec.fs * duration)
    n = rec.n_samples
    n_pad = -n % per_record
    x = rec.signal.astype(np.float64)
    ann = _annotations(x, rec.fs, n_pad)
    x[~np.isfinite(x)] = 0.0  # EDF holds no NaN: the BAD_ACQ_SKIP annotation says they are invalid
    x = np.r_[x, np.full(n_pad, x[-1])]
    lo, hi = float(x.min()), float(x.max())
    if lo == hi:  # a flat line still needs a physical range
        lo, hi = lo - 1.0, hi + 1.0
    signal_cls, file_cls = (edfio.EdfSignal, edfio.Edf) if fmt == "edf" else (edfio.BdfSignal, edfio.Bdf)
    sig = signal_cls(x, rec.fs, label="EMG", physical_dimension="uV", physical_range=(lo, hi),
                     digital_range=DIGITAL[fmt])
    try:
        file_cls([sig], data_record_duration=duration, annotations=ann).write(path)
    except ValueError as e:  # edfio's own checks (e.g. a header field that does not fit)
        raise InputError(f"cannot be written as {fmt.upper()} ({e})", rec.path or rec.record) from None
    step = resolution_uv(sig.physical_min, sig.physical_max, fmt)
    return {"record_duration_s": duration, "samples_per_record": per_record, "padded_samples": int(n_pad),
            "resolution_uv": step, "physical_range_uv": [sig.physical_min, sig.physical_max]}


def _sidecar_entries(rec: Recording) -> dict:
    """``_emg.json`` fields alsnet knows from the recording's header (N2001 comments)."""
    meta = rec.meta
    electrode = str(meta.get("electrode") or "")
    out = {"RecordingDuration": rec.n_samples / rec.fs,
           "EMGReference": "cannula of the concentric needle electrode" if "concentric" in electrode.lower()
           else "n/a",
           "EMGPlacementSchemeDescription": "one intramuscular electrode in the muscle named by "
                                            "target_muscle in _channels.tsv"}
    if electrode:
        out["ElectrodeType"] = electrode
    if meta.get("protocol"):
        out["TaskDescription"] = ", ".join(str(meta[k]) for k in ("protocol", "level") if meta.get(k))
    from alsnet.data.domain import _band

    band = _band(meta)
    if band:
        out["HardwareFilters"] = {"HighpassFilter": {"CutoffFrequency": band[0]},
                                  "LowpassFilter": {"CutoffFrequency": band[1]}}
    return out


def _add_column(tsv: Path, column: str, values: dict[str, str]) -> None:
    """Set ``column`` of a TSV to ``values[first cell]`` (``n/a`` where none)."""
    with tsv.open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh, delimiter="\t"))
    fields = list(rows[0]) + ([column] if column not in rows[0] else [])
    key = fields[0]
    for r in rows:
        r[column] = values.get(r[key], r.get(column) or "n/a")
    with tsv.open("w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=fields, delimiter="\t", lineterminator="\n")
        w.writeheader()
        w.writerows(rows)


def write_bids(src: str | os.PathLike, out: str | os.PathLike, *, fmt: str = "edf", task: str = "isometric",
               line_freq: float | None = None, read: dict | None = None,
               on_error: Callable[[Problem], None] | None = None) -> dict:
    """Write every recording of the data set ``src`` as EMG-BIDS under ``out``.

    Parameters
    ----------
    src : path
        Any alsnet data set (N2001 WFDB, simulated, a folder with ``labels.csv``, a BIDS set).
    out : path
        A new or empty folder, or an existing BIDS data set (files of the same names are replaced).
    fmt : {"edf", "bdf"}
        16-bit EDF (the default: finer than N2001's own 0.076 µV step for its signals) or 24-bit BDF.
    task : str
        BIDS task label (``TaskName``).
    line_freq : float, optional
        Mains frequency (``PowerLineFrequency``); ``n/a`` when not given.
    read : dict, optional
        Reader options (``fs``, ``scale``, ``channel``, ``label_column``) for ``src``.
    on_error : callable, optional
        Receives a :class:`~alsnet.data.dataset.Problem` for each recording that cannot be
        written (then skipped); without it the first problem is raised.

    Returns
    -------
    dict
        ``out``, ``format``, ``recordings`` (per recording: ``source``, ``path``, ``subject``,
        ``label``, ``fs``, ``n_samples``, record duration, padding, resolution).
    """
    import mne
    import mne_bids

    from alsnet.data.dataset import Problem, iter_recordings

    fmt = fmt.lower()
    if fmt not in DIGITAL:
        raise AlsnetError(f"format {fmt!r}: choose edf or bdf")
    out = Path(out)
    if out.resolve() == Path(src).resolve():
        raise AlsnetError("is the data set being read; write the BIDS set to another folder", out)
    if out.exists() and any(out.iterdir()) and not is_bids_dataset(out):
        raise AlsnetError("exists and is not an empty folder or a BIDS data set", out)
    out.mkdir(parents=True, exist_ok=True)
    done, subjects, runs = [], {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        for rec in iter_recordings(src, on_error=on_error, **(read or {})):
            sub = _label(rec.subject or rec.record)
            parsed = parse_n2001_name(rec.record)
            acq = _label(rec.muscle) if rec.muscle else None
            key = (sub, acq)
            runs[key] = parsed["number"] if parsed else runs.get(key, 0) + 1
            bp = mne_bids.BIDSPath(subject=sub, task=_label(task), acquisition=acq, run=f"{runs[key]:02d}",
                                   datatype="emg", root=out)
            try:
                tmp_file = Path(tmp) / f"signal.{fmt}"
                info = _write_signal(rec, tmp_file, fmt)
                read_raw = mne.io.read_raw_edf if fmt == "edf" else mne.io.read_raw_bdf
                raw = read_raw(tmp_file, verbose="error")
                raw.set_channel_types({"EMG": "emg"}, verbose="error")
                raw.info["line_freq"] = line_freq
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # no electrode positions / line frequency: said in the docs
                    mne_bids.write_raw_bids(raw, bp, emg_placement="ChannelSpecific", overwrite=True,
                                            verbose="error")
            except AlsnetError as e:
                if on_error is None:
                    raise
                on_error(Problem(rec.path, str(e)))
                continue
            mne_bids.update_sidecar_json(bp.copy().update(suffix="emg", extension=".json"),
                                         _sidecar_entries(rec), verbose="error")
            muscle = MUSCLES.get(rec.muscle or "", rec.muscle)
            if muscle:
                _add_column(bp.copy().update(suffix="channels", extension=".tsv").fpath, "target_muscle",
                            {"EMG": muscle})
            subjects[f"sub-{sub}"] = rec
            done.append({"source": rec.path, "record": rec.record, "path": str(bp.fpath), "subject": sub,
                         "label": rec.label, "fs": rec.fs, "n_samples": rec.n_samples, **info})
    if done:
        _participants(out, subjects)
        _description(out, src)
    return {"out": str(out), "format": fmt, "bids_version": BIDS_VERSION, "recordings": done}


def _participants(out: Path, subjects: dict[str, Recording]) -> None:
    """The class (``diagnosis``) and, where the header says them, age and sex of each subject."""
    tsv = out / "participants.tsv"
    _add_column(tsv, "diagnosis", {s: r.label or "n/a" for s, r in subjects.items()})
    _add_column(tsv, "age", {s: str(r.meta["age"]) for s, r in subjects.items()
                             if str(r.meta.get("age", "")).isdigit()})
    _add_column(tsv, "sex", {s: str(r.meta["gender"])[0].upper() for s, r in subjects.items()
                             if str(r.meta.get("gender", ""))[:1].upper() in ("M", "F")})
    side = out / "participants.json"
    desc = json.loads(side.read_text(encoding="utf-8")) if side.is_file() else {}
    desc["diagnosis"] = {"Description": "class of the participant (alsnet: als, normal, myopathy)",
                         "Levels": DIAGNOSIS_LEVELS}
    side.write_text(json.dumps(desc, indent=4) + "\n", encoding="utf-8")


def _description(out: Path, src: str | os.PathLike) -> None:
    """``dataset_description.json`` at the BIDS version whose EMG datatype the set follows."""
    import mne_bids

    from alsnet import __version__

    path = out / "dataset_description.json"
    if not path.is_file():
        mne_bids.make_dataset_description(path=out, name="[Unspecified]", dataset_type="raw", verbose="error")
    desc = json.loads(path.read_text(encoding="utf-8"))
    desc["BIDSVersion"] = BIDS_VERSION
    if desc.get("Name", "[Unspecified]") == "[Unspecified]":  # mne-bids' placeholders
        desc["Name"] = f"EMG exported by alsnet from {Path(src).name}"
        desc.pop("Authors", None)
    gen = [g for g in desc.get("GeneratedBy", []) if g.get("Name") != "alsnet"]
    desc["GeneratedBy"] = [{"Name": "alsnet", "Version": __version__,
                            "Description": "alsnet data to-bids (docs/bids.md)"}, *gen]
    path.write_text(json.dumps(desc, indent=4) + "\n", encoding="utf-8")


__all__ = ["DIAGNOSIS_LEVELS", "write_bids"]
