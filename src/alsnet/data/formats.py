"""``.npy``, CSV, WAV and EDF/BDF files as :class:`~alsnet.data.source.Source` objects.

``.npy`` arrays and PCM/float WAV are read by range straight from the file (positioned
reads, no memory map); EDF/BDF by range through ``pyedflib``; a CSV (text, rarely long)
is parsed once when opened. Every problem is an :class:`~alsnet.errors.InputError`
naming the file.
"""

from __future__ import annotations

import os
import struct
import warnings
from pathlib import Path

import numpy as np

from alsnet.data.source import FileColumn, Source, check_fs, check_samples, file_column, unit_to_uv
from alsnet.errors import InputError


def _needs(value: object, what: str, option: str, path: str | os.PathLike, kind: str) -> None:
    if value is None:
        raise InputError(f"a {kind} file carries no {what}; give {option}", path)


# --------------------------------------------------------------------------- .npy

def _npy_header(path: Path) -> tuple[tuple[int, ...], np.dtype, int] | None:
    """``(shape, dtype, data offset)`` of a version 1/2 ``.npy`` header, checked to be no
    pickled array and no truncated file; None for version 3 (rare: ``np.load`` checks it)."""
    fmt = np.lib.format
    with open(path, "rb") as fh:
        try:
            version = fmt.read_magic(fh)
            if version == (1, 0):
                shape, _, dtype = fmt.read_array_header_1_0(fh)
            elif version == (2, 0):
                shape, _, dtype = fmt.read_array_header_2_0(fh)
            elif version == (3, 0):
                return None
            else:
                raise InputError(f"not a .npy file (unknown format version {version})", path)
        except InputError:
            raise
        except Exception as e:
            raise InputError(f"not a .npy file ({type(e).__name__}: {e})", path) from None
        offset = fh.tell()
    if dtype.hasobject:
        raise InputError("holds Python objects (a pickled array); alsnet loads plain numeric "
                         ".npy arrays only", path)
    need = int(np.prod(shape, dtype=object)) * dtype.itemsize
    if need > path.stat().st_size - offset:
        raise InputError(f"truncated: header declares shape {shape} of {dtype} ({need} bytes) but "
                         f"the file holds {path.stat().st_size - offset} bytes of data", path)
    return shape, dtype, offset


class NpySource(Source):
    """A ``.npy`` array of µV holding one channel; the rate must be given."""

    def __init__(self, path: str | os.PathLike, fs: float | None):
        super().__init__()
        _needs(fs, "sampling rate", "fs= / --fs", path, ".npy")
        self.path, self.record = os.fspath(path), Path(path).stem
        header = _npy_header(Path(path))
        if header is None:
            try:
                a = np.load(path, mmap_mode="r", allow_pickle=False)
            except Exception as e:
                raise InputError(f"cannot read .npy ({type(e).__name__}: {e})", path) from None
            self.n_samples = check_samples(a.shape, a.dtype, path)
            self.column = file_column(a.reshape(-1), path)
        else:
            shape, dtype, offset = header
            # (n, 1) and (1, n) arrays hold their samples in order in C and Fortran layout alike.
            self.n_samples = check_samples(shape, dtype, path)
            self.column = FileColumn(path, dtype, offset, self.n_samples)
        self.fs = check_fs(fs, path)

    def _read(self, start: int, stop: int) -> np.ndarray:
        if isinstance(self.column, FileColumn):
            return self.column.read(start, stop)
        return np.asarray(self.column[start:stop])


# --------------------------------------------------------------------------- CSV

def _is_number(s: str) -> bool:
    try:
        float(s)
        return True
    except ValueError:
        return False


class CsvSource(Source):
    """A one-column text file of µV, optionally with one header line; the rate must be given."""

    def __init__(self, path: str | os.PathLike, fs: float | None):
        super().__init__()
        _needs(fs, "sampling rate", "fs= / --fs", path, ".csv")
        self.path, self.record = os.fspath(path), Path(path).stem
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
            self.x = np.array([float(r) for r in rows], dtype=np.float64)
        except ValueError:
            line, bad = next((n, r) for n, r in numbered if not _is_number(r))
            raise InputError(f"CSV line {line} is not a number: {bad[:40]!r}", path) from None
        self.n_samples, self.fs = len(self.x), check_fs(fs, path)

    def _read(self, start: int, stop: int) -> np.ndarray:
        return self.x[start:stop]


# --------------------------------------------------------------------------- WAV

def _check_scale(scale: object, path: str | os.PathLike) -> float:
    try:
        scale = float(scale)
    except (TypeError, ValueError):
        raise InputError(f"scale is not a number: {scale!r}", path) from None
    if not np.isfinite(scale) or scale == 0:
        raise InputError(f"scale must be a finite non-zero number of µV per unit, got {scale:g}", path)
    return scale


def _wav_container_bytes(path: str | os.PathLike) -> int | None:
    """Bytes per stored sample (the fmt chunk's block align / channels), or None if unknown.

    scipy returns 24-bit samples left-justified in int32 (256 times the stored integer);
    this says how far to shift them back so that ``scale`` is per unit of the stored integer.
    """
    with open(path, "rb") as fh:
        head = fh.read(12)
        order = ">" if head[:4] == b"RIFX" else "<"
        while True:
            chunk = fh.read(8)
            if len(chunk) < 8:
                return None
            cid, size = chunk[:4], struct.unpack(order + "I", chunk[4:])[0]
            if cid == b"fmt ":
                body = fh.read(min(size, 16))
                if len(body) < 14:
                    return None
                channels, block_align = struct.unpack(order + "H", body[2:4])[0], struct.unpack(
                    order + "H", body[12:14])[0]
                return block_align // channels if channels else None
            fh.seek(size + (size & 1), 1)


class WavSource(Source):
    """A mono ``.wav``; ``scale`` is µV per unit of the stored integer (or float) samples.

    8-bit WAV is unsigned with its zero at 128; that offset is removed before scaling.
    8/16/32/64-bit integer and float WAV are read by range from the file; 24-bit WAV
    (which has no numpy type) is decoded whole by scipy when opened.
    """

    def __init__(self, path: str | os.PathLike, scale: float | None):
        super().__init__()
        from scipy.io import wavfile

        _needs(scale, "physical scale", "scale= / --scale (µV per unit)", path, ".wav")
        self.scale = _check_scale(scale, path)
        self.path, self.record = os.fspath(path), Path(path).stem
        with open(path, "rb") as fh:
            head = fh.read(12)
        if head[:4] not in (b"RIFF", b"RIFX", b"RF64") or head[8:12] != b"WAVE":
            raise InputError("not a WAV file (no RIFF/WAVE header)", path)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # scipy's warnings about unknown chunks
            try:
                fs, x = wavfile.read(path, mmap=True)
            except Exception:  # 24-bit (no mmap), or a damaged file: the plain read says which
                try:
                    fs, x = wavfile.read(path)
                except ValueError as e:  # scipy's own messages say what is wrong
                    raise InputError(f"cannot read WAV ({e})", path) from None
                except Exception as e:  # scipy trips over truncated or inconsistent headers
                    raise InputError(f"WAV header is malformed or truncated ({type(e).__name__}: {e})",
                                     path) from None
        if x.ndim == 2:
            if x.shape[1] != 1:
                raise InputError(f"WAV has {x.shape[1]} channels; alsnet needs one", path)
            x = x[:, 0]
        if x.size == 0:
            raise InputError("WAV holds no samples", path)
        if not np.issubdtype(x.dtype, np.number):
            raise InputError(f"WAV samples must be numbers, got dtype {x.dtype}", path)
        self.offset = 128.0 if x.dtype == np.uint8 else 0.0
        self.per_unit = 1.0
        if np.issubdtype(x.dtype, np.signedinteger):
            container = _wav_container_bytes(path)
            if container is not None and container < x.dtype.itemsize:
                self.per_unit = 1.0 / 2 ** (8 * (x.dtype.itemsize - container))
        self.column = file_column(x, path)
        self.n_samples, self.fs = int(x.shape[0]), check_fs(fs, path)

    def _read(self, start: int, stop: int) -> np.ndarray:
        col = self.column
        d = col.read(start, stop) if isinstance(col, FileColumn) else np.asarray(col[start:stop])
        with np.errstate(over="ignore", invalid="ignore"):
            return (d.astype(np.float64) * self.per_unit - self.offset) * self.scale


# --------------------------------------------------------------------------- EDF

class EdfSource(Source):
    """One signal of an EDF/EDF+/BDF file, read by range through ``pyedflib`` in µV.

    The file stays open until :meth:`close` (``with`` closes it).
    """

    def __init__(self, path: str | os.PathLike, channel: int | None = None):
        super().__init__()
        import pyedflib

        self.path, self.record = os.fspath(path), Path(path).stem
        try:
            f = pyedflib.EdfReader(self.path)
        except Exception as e:
            why = str(e).replace(f"{self.path}: ", "").strip() or type(e).__name__
            raise InputError(f"cannot read EDF ({why})", path) from None
        self.reader = f
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
            self.uv_per_unit = unit_to_uv(unit, path)
            self.channel = int(channel)
            self.n_samples = int(f.getNSamples()[channel])
            if self.n_samples <= 0:
                raise InputError("recording holds no samples", path)
            self.fs = check_fs(f.getSampleFrequency(channel), path)
            self.meta = {"label": f.getLabel(channel), "units": unit}
        except BaseException:
            self.close()
            raise

    def _read(self, start: int, stop: int) -> np.ndarray:
        try:
            return self.reader.readSignal(self.channel, start=start, n=stop - start) * self.uv_per_unit
        except Exception as e:
            raise InputError(f"cannot read EDF signal ({type(e).__name__}: {e})", self.path) from None

    def close(self) -> None:
        if getattr(self, "reader", None) is not None:
            self.reader.close()
            self.reader = None
