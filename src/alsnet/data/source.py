"""What every reader shares: the :class:`Source` interface and the checks on samples.

A :class:`Source` is one channel of one recording, opened once (its header checked once)
and read by sample range: ``read(start, stop)`` gives float64 microvolts with NaN where a
sample is invalid. The whole-file reader :func:`alsnet.data.io.read_recording` is
``read(0, n_samples)`` plus metadata, and ``alsnet predict`` streams the same sources
chunk by chunk, so a file is decoded by the same code whichever way it is read.
"""

from __future__ import annotations

import os

import numpy as np

from alsnet.errors import InputError

#: Scale from a header's physical unit to microvolts.
UNIT_TO_UV = {"uv": 1.0, "µv": 1.0, "μv": 1.0, "mv": 1e3, "v": 1e6, "nv": 1e-3}


def unit_to_uv(unit: str, name: str | os.PathLike) -> float:
    """Microvolts per ``unit`` (``"mV"``, ``"uV"``, ...), else :class:`InputError` naming ``name``."""
    scale = UNIT_TO_UV.get(unit.strip().lower())
    if scale is None:
        raise InputError(f"unknown signal unit {unit!r} (expected uV, mV or V)", name)
    return scale


def check_fs(fs: object, name: str | os.PathLike) -> float:
    """A sampling rate as a finite positive float, else :class:`InputError` naming ``name``."""
    try:
        fs = float(fs)
    except (TypeError, ValueError):
        raise InputError(f"sampling rate is not a number: {fs!r}", name) from None
    if not np.isfinite(fs) or fs <= 0:
        raise InputError(f"sampling rate must be a positive number, got {fs:g} Hz", name)
    return fs


def check_samples(shape: tuple[int, ...], dtype: np.dtype, name: str | os.PathLike) -> int:
    """Number of samples of an array of ``shape`` and ``dtype`` that holds one channel of
    real numbers (``(n,)``, ``(n, 1)`` or ``(1, n)``), else :class:`InputError` naming ``name``."""
    shape = tuple(int(s) for s in shape)
    if len(shape) == 2 and min(shape) > 1:
        raise InputError(f"expected one channel, got an array of shape {shape} "
                         f"({min(shape)} channels?); save one channel per file", name)
    if not (len(shape) == 1 or (len(shape) == 2 and 1 in shape)):
        raise InputError(f"expected one channel (a 1-D array), got an array of shape {shape}", name)
    dtype = np.dtype(dtype)
    if not np.issubdtype(dtype, np.number) or np.issubdtype(dtype, np.complexfloating):
        raise InputError(f"samples must be real numbers, got dtype {dtype}", name)
    n = int(np.prod(shape))
    if n == 0:
        raise InputError("recording holds no samples", name)
    return n


def check_channel(x: np.ndarray, name: str | os.PathLike) -> np.ndarray:
    """``x`` as one channel of real samples (an ``(n, 1)`` or ``(1, n)`` array is flattened,
    without copying), else :class:`InputError` naming ``name``."""
    check_samples(x.shape, x.dtype, name)
    return x.reshape(-1)


def as_float32(x: np.ndarray) -> np.ndarray:
    """Microvolts as float32, the model's input type: values beyond float32 and non-finite
    values become NaN (invalid), never a silent infinity."""
    with np.errstate(over="ignore", invalid="ignore"):
        y = np.asarray(x).astype(np.float32)
    y[~np.isfinite(y)] = np.nan
    return y


class Source:
    """One channel of a recording, read by sample range.

    Subclasses open and check the file in their constructor and implement
    :meth:`_read`; :meth:`read` checks the range and marks invalid samples.

    Attributes
    ----------
    path : str
        The file named in messages (for WFDB, the ``.hea``).
    record : str
        Record name (file stem).
    fs : float
        Sampling rate in Hz.
    n_samples : int
        Samples in the channel.
    channel : int
        The channel read (0 for single-channel formats).
    meta : dict
        Header metadata (units, format, labels, comments).
    """

    path: str = "signal"
    record: str = "signal"
    fs: float
    n_samples: int
    channel: int = 0

    def __init__(self) -> None:
        self.meta: dict = {}

    def read(self, start: int = 0, stop: int | None = None) -> np.ndarray:
        """Samples ``[start, stop)`` (default: all) as float64 µV, NaN where invalid."""
        stop = self.n_samples if stop is None else int(stop)
        start = int(start)
        if not 0 <= start <= stop <= self.n_samples:
            raise IndexError(f"sample range {start}-{stop} is outside 0-{self.n_samples}")
        if start == stop:
            return np.zeros(0, dtype=np.float64)
        x = np.asarray(self._read(start, stop), dtype=np.float64)
        if x.shape != (stop - start,):
            raise InputError(f"samples {start}-{stop} could not be read: {x.size} of {stop - start} "
                             "decoded (file truncated or changed while read?)", self.path)
        x[~np.isfinite(x)] = np.nan
        return x

    def _read(self, start: int, stop: int) -> np.ndarray:
        raise NotImplementedError

    def close(self) -> None:
        """Release the file (a no-op for sources that hold no open file)."""

    def __enter__(self) -> Source:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class ArraySource(Source):
    """A signal already in memory: ``x`` in µV at ``fs`` Hz, multiplied by ``scale``."""

    def __init__(self, x: np.ndarray, fs: float, name: str | os.PathLike = "array", scale: float = 1.0):
        super().__init__()
        self.path = self.record = os.fspath(name)
        self.x = check_channel(np.asarray(x), self.path)
        self.fs, self.scale = check_fs(fs, self.path), float(scale)
        self.n_samples = int(self.x.shape[0])

    def _read(self, start: int, stop: int) -> np.ndarray:
        with np.errstate(over="ignore", invalid="ignore"):
            return self.x[start:stop].astype(np.float64) * self.scale


class FileColumn:
    """One column of a binary file of fixed-width rows, read on demand with ``np.fromfile``.

    Not a memory map on purpose: pages of a mapped file stay resident once touched, so an
    hour-long recording would grow the process by the file's size.
    """

    def __init__(self, path: str | os.PathLike, dtype: np.dtype | str, offset: int, n_rows: int,
                 n_cols: int = 1, col: int = 0):
        self.path, self.dtype, self.offset = os.fspath(path), np.dtype(dtype), int(offset)
        self.n_cols, self.col, self.n_rows = int(n_cols), int(col), int(n_rows)

    def read(self, start: int, stop: int) -> np.ndarray:
        """Rows ``[start, stop)`` of the column, in the file's dtype."""
        n = max(0, stop - start)
        d = np.fromfile(self.path, dtype=self.dtype, count=n * self.n_cols,
                        offset=self.offset + start * self.n_cols * self.dtype.itemsize)
        if d.size != n * self.n_cols:
            raise InputError(f"file ends early (wanted samples {start}-{stop})", self.path)
        return d.reshape(n, self.n_cols)[:, self.col]


def file_column(a: np.ndarray, path: str | os.PathLike) -> FileColumn | np.ndarray:
    """A contiguous single-channel memory map as a :class:`FileColumn`; other arrays as they are."""
    if isinstance(a, np.memmap) and (a.flags.c_contiguous or a.flags.f_contiguous):
        return FileColumn(path, a.dtype, a.offset, a.size)
    return a
