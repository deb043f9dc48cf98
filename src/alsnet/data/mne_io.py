"""MNE-Python ``Raw`` objects as alsnet inputs, and the one place that opens any input.

:class:`RawSource` is one channel of an ``mne.io.Raw`` read by sample range in µV (MNE holds
volts): the channel of type EMG, or the one named or numbered by ``channel``. Samples under a
``BAD_ACQ_SKIP`` annotation are invalid and one that runs to the end is left out, the rule
alsnet's own BIDS reader follows (:mod:`alsnet.data.bids`), so a file read by MNE and the same
file read by alsnet give the same samples. :func:`open_input` is what ``predict`` and
``explain`` open: a Raw, a file of a BIDS data set (its sidecars choose the channel), or any
file or array :func:`alsnet.data.io.open_source` reads.
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING

import numpy as np

from alsnet.data.bids import bids_root_of, skip_spans
from alsnet.data.io import open_source
from alsnet.data.source import Source, check_fs
from alsnet.errors import InputError

if TYPE_CHECKING:
    import mne


def is_raw(obj: object) -> bool:
    """Whether ``obj`` is an ``mne.io.BaseRaw`` (without importing MNE when nothing did)."""
    mne = sys.modules.get("mne")
    return mne is not None and isinstance(obj, mne.io.BaseRaw)


def _pick(raw: mne.io.BaseRaw, channel: int | str | None, name: str) -> int:
    """Index of the channel to read: by number, by name, or the one of type EMG."""
    names = list(raw.ch_names)
    if isinstance(channel, str):
        if channel not in names:
            raise InputError(f"no channel named {channel!r} (channels: {', '.join(names)})", name)
        return names.index(channel)
    if channel is not None:
        if not 0 <= int(channel) < len(names):
            raise InputError(f"channel {channel} does not exist (Raw has {len(names)})", name)
        return int(channel)
    types = raw.get_channel_types()
    emg = [i for i, t in enumerate(types) if t == "emg"]
    if len(emg) == 1:
        return emg[0]
    if not emg and len(names) == 1:  # one signal of another type (read_raw_edf says "eeg"): that one
        return 0
    listed = ", ".join(f"{names[i]} ({types[i]})" for i in (emg or range(len(names))))
    raise InputError(f"{len(emg)} channels of type EMG among {listed}; pick one by name or number "
                     "with channel=", name)


class RawSource(Source):
    """One channel of an ``mne.io.Raw`` in µV, read by range (a Raw not preloaded stays on disk)."""

    def __init__(self, raw: mne.io.BaseRaw, channel: int | str | None = None):
        super().__init__()
        from mne.io.constants import FIFF

        files = [f for f in (raw.filenames or []) if f]
        self.path = os.fspath(files[0]) if files else "mne.io.Raw"
        self.record = os.path.splitext(os.path.basename(self.path))[0] if files else "raw"
        self.raw = raw
        self.channel = _pick(raw, channel, self.path)
        ch = raw.info["chs"][self.channel]
        if ch["unit"] != FIFF.FIFF_UNIT_V:
            raise InputError(f"channel {raw.ch_names[self.channel]} is not in volts (FIFF unit {ch['unit']})",
                             self.path)
        self.fs = check_fs(raw.info["sfreq"], self.path)
        ann = raw.annotations
        onsets = ann.onset - (raw.first_time if ann.orig_time is not None else 0.0)
        self.n_samples, self.skips = skip_spans(onsets, ann.duration, ann.description, self.fs, raw.n_times)
        if self.n_samples <= 0:
            raise InputError("the whole signal is annotated BAD_ACQ_SKIP", self.path)
        self.meta = {"label": raw.ch_names[self.channel], "units": "V"}

    def _read(self, start: int, stop: int) -> np.ndarray:
        x = self.raw.get_data(picks=[self.channel], start=start, stop=stop)[0] * 1e6
        for a, b in self.skips:
            if a < stop and b > start:
                x[max(a, start) - start:min(b, stop) - start] = np.nan
        return x


def input_name(obj: object) -> str | None:
    """The path an input stands for (a Raw's file), None for an array or an in-memory Raw."""
    if isinstance(obj, np.ndarray):
        return None
    if is_raw(obj):
        files = [f for f in (obj.filenames or []) if f]
        return os.fspath(files[0]) if files else None
    return os.fspath(obj)


def open_input(obj: str | os.PathLike | np.ndarray | mne.io.BaseRaw, *, fs: float | None = None,
               scale: float | None = None, channel: int | str | None = None) -> Source:
    """Open any input for range reads: an ``mne.io.Raw``, a BIDS ``*_emg.edf|.bdf`` (channel
    from ``_channels.tsv``), or what :func:`~alsnet.data.io.open_source` reads.

    Raises :class:`InputError` naming the file.
    """
    if is_raw(obj):
        return RawSource(obj, channel)
    if isinstance(channel, str):
        raise InputError(f"channel {channel!r}: a file's channel is a number (names pick channels of an "
                         "mne.io.Raw)", None if isinstance(obj, np.ndarray) else obj)
    if not isinstance(obj, np.ndarray) and bids_root_of(obj) is not None:
        from alsnet.data.bids import BidsEdfSource

        return BidsEdfSource(obj, channel)
    return open_source(obj, fs=fs, scale=scale, channel=channel)


__all__ = ["RawSource", "input_name", "is_raw", "open_input"]
