"""Data sets: an index of recordings in a folder, and the windows a task trains on."""

from __future__ import annotations

import os
import warnings
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from alsnet.data.io import Recording, RecordingWarning, find_recordings, read_recording
from alsnet.data.labels import Task
from alsnet.data.windows import MODEL_FS, InvalidPolicy, WindowResult, make_windows, resample_to_model_rate, window_hop
from alsnet.errors import AlsnetError, InputError


@dataclass(frozen=True)
class RecordInfo:
    """One line of a data-set index (the fields of ``alsnet data info --json``)."""

    path: str
    record: str
    subject: str | None
    label: str | None
    muscle: str | None
    fs: float
    n_samples: int
    n_invalid: int

    @property
    def duration(self) -> float:
        return self.n_samples / self.fs


@dataclass
class Problem:
    """A file that could not be used, and why (one line)."""

    path: str
    message: str


#: Reader options a ``labels.csv`` row may give its recording (they win over the command line's).
READ_COLUMNS = {"fs": float, "scale": float, "channel": int}


def _load_labels_csv(root: Path) -> dict[str, dict]:
    """Optional ``labels.csv`` (columns ``record,label``, optionally ``subject`` and the reader
    options ``fs``, ``scale``, ``channel`` of each recording) for non-N2001 file names."""
    f = root / "labels.csv"
    if not f.is_file():
        return {}
    import csv

    with f.open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    if rows and not {"record", "label"} <= set(rows[0]):
        raise InputError("labels.csv needs the columns record,label (and optionally subject)", f)
    return {r["record"]: r for r in rows}


def iter_recordings(root: str | os.PathLike, *, on_error: Callable[[Problem], None] | None = None,
                    **read_kw) -> Iterable[Recording]:
    """Read every recording under ``root``; unreadable files go to ``on_error`` and are skipped.

    A BIDS data set (a folder with ``dataset_description.json``) is read through its layout
    and sidecars (:mod:`alsnet.data.bids`); ``label_column`` names its ``participants.tsv``
    class column (default ``diagnosis``) and is ignored for other folders.
    """
    from alsnet.data.bids import annotate_bids, bids_classes, is_bids_dataset

    root = Path(root)
    label_column = read_kw.pop("label_column", None)
    bids = is_bids_dataset(root)  # BIDS: the layout and sidecars, not file names, say what is what
    classes = bids_classes(root, label_column, on_error) if bids else {}
    labels = _load_labels_csv(root) if root.is_dir() and not bids else {}
    for p in find_recordings(root):
        try:
            rec = read_recording(p, **{**read_kw, **_row_read_options(labels.get(Path(p).stem), root)})
        except AlsnetError as e:
            if on_error is None:
                raise
            on_error(Problem(str(p), str(e)))
            continue
        if bids:
            annotate_bids(rec, p, classes)
        extra = labels.get(rec.record)
        if extra:
            rec.label = extra.get("label") or rec.label
            rec.subject = extra.get("subject") or rec.subject or rec.record
        yield rec


def _row_read_options(row: dict | None, root: Path) -> dict:
    """The reader options a ``labels.csv`` row gives (empty cells give none)."""
    out = {}
    for col, kind in READ_COLUMNS.items():
        v = (row or {}).get(col)
        if v not in (None, ""):
            try:
                out[col] = kind(v)
            except ValueError:
                raise InputError(f"column {col} of record {row.get('record')!r} is not a number: {v!r}",
                                 root / "labels.csv") from None
    return out


def index_dataset(root: str | os.PathLike, **read_kw) -> tuple[list[RecordInfo], list[Problem]]:
    """Index every recording under ``root``: (records, problems)."""
    problems: list[Problem] = []
    infos = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("ignore")
        warnings.simplefilter("always", RecordingWarning)  # label mismatch, flat signal
        for rec in iter_recordings(root, on_error=problems.append, **read_kw):
            infos.append(RecordInfo(rec.path, rec.record, rec.subject, rec.label, rec.muscle,
                                    rec.fs, rec.n_samples, rec.n_invalid))
    for w in caught:
        problems.append(Problem("", str(w.message)))
    return infos, problems


def summarise(infos: list[RecordInfo]) -> dict:
    """Per-class and per-subject counts, muscles, durations and invalid-sample totals."""
    by_class: dict[str, dict] = {}
    for label in sorted({i.label or "unknown" for i in infos}):
        rs = [i for i in infos if (i.label or "unknown") == label]
        by_class[label] = {
            "recordings": len(rs),
            "subjects": len({r.subject for r in rs}),
            "duration_s": round(sum(r.duration for r in rs), 3),
            "n_invalid": sum(r.n_invalid for r in rs),
        }
    by_subject = {}
    for subj in sorted({i.subject or "unknown" for i in infos}):
        rs = [i for i in infos if (i.subject or "unknown") == subj]
        by_subject[subj] = {
            "label": rs[0].label,
            "recordings": len(rs),
            "duration_s": round(sum(r.duration for r in rs), 3),
            "n_invalid": sum(r.n_invalid for r in rs),
            "recordings_with_invalid": sum(r.n_invalid > 0 for r in rs),
        }
    durs = [i.duration for i in infos]
    return {
        "recordings": len(infos),
        "subjects": len({i.subject for i in infos}),
        "classes": by_class,
        "by_subject": by_subject,
        "muscles": dict(Counter(i.muscle or "unknown" for i in infos)),
        "sampling_rates": sorted({i.fs for i in infos}),
        "duration_s": {"min": min(durs, default=0), "max": max(durs, default=0),
                       "total": round(sum(durs), 3)},
        "n_invalid": sum(i.n_invalid for i in infos),
        "recordings_with_invalid": sum(i.n_invalid > 0 for i in infos),
    }


def info_to_json(infos: list[RecordInfo]) -> dict:
    recs = []
    for i in infos:
        d = asdict(i)
        recs.append(d)
    return {"recordings": recs, "summary": summarise(infos)}


@dataclass
class WindowSet:
    """Windows of a task, with one row of identity per window.

    ``x`` is ``(n, WINDOW_SAMPLES)`` float32 µV at :data:`MODEL_FS`; ``y`` the task's integer
    target; ``record``, ``subject`` and ``label`` (recording class) identify each window;
    ``index`` is the window's position in its recording and ``start`` its first sample.
    """

    x: np.ndarray
    y: np.ndarray
    record: np.ndarray
    subject: np.ndarray
    label: np.ndarray
    index: np.ndarray
    start: np.ndarray
    n_dropped: int = 0
    problems: list = None

    def __len__(self) -> int:
        return len(self.y)

    def subset(self, mask_or_idx) -> WindowSet:
        sel = np.asarray(mask_or_idx)
        return WindowSet(self.x[sel], self.y[sel], self.record[sel], self.subject[sel],
                         self.label[sel], self.index[sel], self.start[sel], 0, [])


def recording_windows(rec: Recording, *, overlap: float = 0.0, invalid: InvalidPolicy = "drop") -> WindowResult:
    """Resample a recording to the model rate and cut it into windows."""
    x = resample_to_model_rate(rec.signal, rec.fs, name=rec.path or rec.record)
    return make_windows(x, overlap=overlap, invalid=invalid, name=rec.path or rec.record)


def load_windows(root: str | os.PathLike, task: Task, *, overlap: float = 0.0,
                 invalid: InvalidPolicy = "drop", progress: bool = False,
                 muscles: tuple[str, ...] | None = None, read: dict | None = None) -> WindowSet:
    """All windows of the recordings under ``root`` whose class belongs to ``task``.

    Unreadable recordings are reported in ``problems`` and skipped; a recording whose
    class the task does not use is left out silently (the myopathy group in
    ``als-vs-normal``). ``read`` holds reader options (``fs``, ``scale``, ``channel``) for
    every file; a ``labels.csv`` row's own columns win. With no usable recording at all the
    error lists each file's reason.
    """
    problems: list[Problem] = []
    parts = defaultdict(list)
    n_dropped = 0
    recs = list(find_recordings(root))
    it = iter_recordings(root, on_error=problems.append, **(read or {}))
    if progress:
        from tqdm.auto import tqdm

        it = tqdm(it, total=len(recs), desc="reading", unit="rec", leave=False)
    for rec in it:
        if rec.label is None:
            problems.append(Problem(rec.path, "class unknown (not an N2001 name and not in labels.csv)"))
            continue
        code = task.code(rec.label)
        if code is None or (muscles and rec.muscle not in muscles):
            continue
        try:
            w = recording_windows(rec, overlap=overlap, invalid=invalid)
        except AlsnetError as e:
            problems.append(Problem(rec.path, str(e)))
            continue
        n = len(w.windows)
        n_dropped += w.n_dropped
        parts["x"].append(w.windows)
        parts["y"].append(np.full(n, code, np.int64))
        parts["record"].append(np.full(n, rec.record, object))
        parts["subject"].append(np.full(n, rec.subject or rec.record, object))
        parts["label"].append(np.full(n, rec.label, object))
        parts["start"].append(w.starts)
        parts["index"].append((w.starts // window_hop(overlap)).astype(np.int64))
    if not parts:
        why = "; ".join(f"{Path(pr.path).name}: {pr.message.removeprefix(str(pr.path) + ': ')}"
                        for pr in problems[:8])
        more = f"; and {len(problems) - 8} more" if len(problems) > 8 else ""
        raise AlsnetError(f"no usable recordings for task {task.name!r} under {root}"
                          + (f" ({why}{more})" if why else ""))
    cat = {k: np.concatenate(v) for k, v in parts.items()}
    return WindowSet(cat["x"], cat["y"], cat["record"].astype(str), cat["subject"].astype(str),
                     cat["label"].astype(str), cat["index"], cat["start"], n_dropped, problems)


__all__ = ["RecordInfo", "Problem", "WindowSet", "index_dataset", "summarise", "info_to_json",
           "iter_recordings", "load_windows", "recording_windows", "MODEL_FS"]
