"""One reader per format: streamed range reads equal the whole-file read, and both equal the
microvolts the file encodes, computed independently (from the written integers and the
format's own scaling rule, and through wfdb, scipy, the stdlib wave module or numpy)."""

from __future__ import annotations

import struct
import warnings
import wave
from pathlib import Path

import numpy as np
import pytest

from alsnet.data.io import open_source, read_recording
from alsnet.data.source import as_float32
from alsnet.errors import InputError

N = 3001  # odd, so range reads split format-212 byte pairs and WAV/EDF blocks unevenly
RNG = np.random.default_rng(7)
SPLITS = [0, 1, 2, 499, 500, 1717, 2999, N]  # ranges of 1, 1, 497, 1, 1217, 1282, 2 samples


def assert_parity(path: Path, expected_uv: np.ndarray, **kw) -> None:
    """Whole read == expected; every range read == that slice; read_recording == float32 of it."""
    with open_source(path, **kw) as src:
        assert src.n_samples == len(expected_uv)
        whole = src.read(0, src.n_samples)
        assert whole.dtype == np.float64
        np.testing.assert_allclose(whole, expected_uv, rtol=1e-12, atol=1e-9, equal_nan=True)
        pieces = [src.read(a, b) for a, b in zip(SPLITS[:-1], SPLITS[1:])]
        np.testing.assert_array_equal(np.concatenate(pieces), whole)  # bit for bit
        np.testing.assert_array_equal(src.read(1234, 1240), whole[1234:1240])
    rec = read_recording(path, **kw)
    np.testing.assert_array_equal(rec.signal, as_float32(whole))
    assert rec.n_invalid == int(np.isnan(expected_uv).sum())


# --------------------------------------------------------------------------- WAV

def write_wav_pcm(path: Path, ints: np.ndarray, width: int, fs: int = 8000) -> None:
    """PCM WAV of ``width`` bytes per sample with the stdlib writer (8-bit stored unsigned)."""
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(width)
        w.setframerate(fs)
        if width == 1:
            raw = (ints + 128).astype(np.uint8).tobytes()
        elif width == 3:
            raw = b"".join(int(v).to_bytes(3, "little", signed=True) for v in ints)
        else:
            raw = ints.astype(f"<i{width}").tobytes()
        w.writeframes(raw)


def wave_ints(path: Path) -> np.ndarray:
    """The stored integers through the stdlib reader (an independent decoder)."""
    with wave.open(str(path), "rb") as w:
        width, raw = w.getsampwidth(), w.readframes(w.getnframes())
    if width == 1:
        return np.frombuffer(raw, np.uint8).astype(np.int64) - 128
    if width == 3:
        b = np.frombuffer(raw, np.uint8).reshape(-1, 3).astype(np.int64)
        v = b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16)
        return np.where(v >= 2**23, v - 2**24, v)
    return np.frombuffer(raw, f"<i{width}").astype(np.int64)


@pytest.mark.parametrize("width,lo,hi", [(1, -128, 127), (2, -32768, 32767), (3, -2**23, 2**23 - 1),
                                         (4, -2**31, 2**31 - 1)])
def test_pcm_wav_of_every_width_is_scale_times_the_stored_integer(tmp_path, width, lo, hi):
    from scipy.io import wavfile

    ints = RNG.integers(lo, hi, N, endpoint=True)
    ints[:2] = lo, hi
    path = tmp_path / f"pcm{8 * width}.wav"
    write_wav_pcm(path, ints, width)
    np.testing.assert_array_equal(wave_ints(path), ints)
    scale = 0.37
    assert_parity(path, ints * scale, scale=scale)
    # scipy agrees once its conventions are undone: 8-bit unsigned, 24-bit left-justified in int32
    _, raw = wavfile.read(path)
    undone = {1: raw.astype(np.int64) - 128, 3: raw.astype(np.int64) >> 8}.get(width, raw)
    np.testing.assert_array_equal(undone, ints)


def test_8_bit_wav_streams_without_its_128_offset(tmp_path):
    """The bug of the streaming copy: 0, 4, 9, 14 µV read as 128, 132, 137, 142."""
    write_wav_pcm(tmp_path / "u8.wav", np.array([0, 4, 9, 14] * 10), 1)
    with open_source(tmp_path / "u8.wav", scale=1.0) as src:
        assert list(src.read(0, 4)) == [0.0, 4.0, 9.0, 14.0]


@pytest.mark.parametrize("dtype", ["<f4", "<f8"])
def test_float_wav_is_scale_times_the_stored_float(tmp_path, dtype):
    from scipy.io import wavfile

    x = RNG.normal(0, 0.3, N).astype(dtype)
    wavfile.write(tmp_path / "f.wav", 10_000, x)
    assert_parity(tmp_path / "f.wav", x.astype(np.float64) * 250.0, scale=250.0)
    assert open_source(tmp_path / "f.wav", scale=1).fs == 10_000.0


# --------------------------------------------------------------------------- WFDB

WFDB_INVALID = {"16": -32768, "212": -2048, "80": -128, "32": -2**31}
WFDB_RANGE = {"16": 32767, "212": 2047, "80": 127, "32": 2**31 - 1}


@pytest.mark.parametrize("units", ["uV", "mV", None])
@pytest.mark.parametrize("fmt", ["16", "212", "80", "32"])
def test_wfdb_formats_are_gain_baseline_and_units_with_invalid_samples_as_nan(tmp_path, fmt, units):
    wfdb = pytest.importorskip("wfdb")
    top = WFDB_RANGE[fmt]
    d = RNG.integers(-top, top, N, endpoint=True)
    d[[5, 1000, 1001, N - 1]] = WFDB_INVALID[fmt]
    gain, baseline = 13.107, -7
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # wfdb's pandas deprecations
        wfdb.wrsamp("r", fs=23437.5, units=[units or "mV"], sig_name=["EMG"], d_signal=d[:, None],
                    fmt=[fmt], adc_gain=[gain], baseline=[baseline], write_dir=str(tmp_path))
    hea = tmp_path / "r.hea"
    if units is None:  # no unit on the signal line: WFDB's default, millivolts
        hea.write_text(hea.read_text().replace(f"({baseline})/mV", f"({baseline})"))
        assert "/mV" not in hea.read_text()
    uv = {"uV": 1.0, "mV": 1000.0, None: 1000.0}[units]
    expected = (d - baseline) / gain * uv
    expected[d == WFDB_INVALID[fmt]] = np.nan
    assert_parity(hea, expected)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = wfdb.rdrecord(str(tmp_path / "r"))
    assert (ref.units[0] if units else "mV") == (units or "mV")
    np.testing.assert_allclose(ref.p_signal[:, 0] * uv, expected, rtol=1e-12, equal_nan=True)
    assert read_recording(hea).meta["units"] == (units or "mV")


# --------------------------------------------------------------------------- EDF / BDF

@pytest.mark.parametrize("kind,dmin,dmax", [("EDF", -32768, 32767), ("BDF", -2**23, 2**23 - 1)])
@pytest.mark.parametrize("unit,uv", [("uV", 1.0), ("mV", 1000.0)])
def test_edf_and_bdf_follow_the_digital_to_physical_rule_of_the_standard(tmp_path, kind, dmin, dmax, unit, uv):
    pyedflib = pytest.importorskip("pyedflib")
    pmin, pmax = -2.5, 3.75
    d = RNG.integers(dmin, dmax, 2 * N, endpoint=True).astype(np.int32)
    path = tmp_path / f"r.{kind.lower()}"
    h = pyedflib.highlevel.make_signal_header("EMG", dimension=unit, sample_frequency=2000,
                                              physical_min=pmin, physical_max=pmax,
                                              digital_min=dmin, digital_max=dmax)
    pyedflib.highlevel.write_edf(str(path), [d], [h], digital=True,
                                 file_type=getattr(pyedflib, f"FILETYPE_{kind}PLUS"))
    with open_source(path) as src:
        n = src.n_samples
    assert n >= len(d)  # EDF pads the last data record
    expected = ((d - dmin) * (pmax - pmin) / (dmax - dmin) + pmin) * uv
    with open_source(path) as src:
        np.testing.assert_allclose(src.read(0, len(d)), expected, rtol=1e-9, atol=1e-9 * uv)
        pieces = np.concatenate([src.read(a, b) for a, b in zip(SPLITS[:-1], SPLITS[1:])])
        np.testing.assert_array_equal(pieces, src.read(0, N))
        whole = src.read()
    np.testing.assert_array_equal(read_recording(path).signal, as_float32(whole))


# --------------------------------------------------------------------------- .npy and CSV

NPY_DTYPES = ["i1", "i2", "i4", "i8", "u1", "u2", "u4", "u8", "f2", "f4", "f8", ">i2", ">i4", ">f4", ">f8"]


@pytest.mark.parametrize("dtype", NPY_DTYPES)
def test_every_real_npy_dtype_is_read_as_stored(tmp_path, dtype):
    dt = np.dtype(dtype)
    if dt.kind == "f":
        x = RNG.normal(0, 300, N).astype(dt)
        x[[3, 4]] = np.nan, np.inf
    else:
        info = np.iinfo(dt)
        x = RNG.integers(info.min, info.max, N, endpoint=True, dtype=dt.newbyteorder("="))
        x = x.astype(dt)
        x[:2] = info.min, info.max
    np.save(tmp_path / "x.npy", x)
    expected = np.load(tmp_path / "x.npy").astype(np.float64)  # numpy's own reader
    expected[~np.isfinite(expected)] = np.nan
    assert_parity(tmp_path / "x.npy", expected, fs=4000.0)


@pytest.mark.parametrize("layout", ["column", "row", "fortran-column"])
def test_one_channel_npy_arrays_of_any_2d_layout_read_in_order(tmp_path, layout):
    x = RNG.normal(0, 50, N)
    a = {"column": x[:, None], "row": x[None, :], "fortran-column": np.asfortranarray(x[:, None])}[layout]
    np.save(tmp_path / "x.npy", a)
    assert_parity(tmp_path / "x.npy", x, fs=4000.0)


def test_csv_is_parsed_once_and_read_by_range_like_numpy_loadtxt(tmp_path):
    x = np.round(RNG.normal(0, 80, N), 4)
    np.savetxt(tmp_path / "x.csv", x, fmt="%.4f", header="signal_uV", comments="")
    assert_parity(tmp_path / "x.csv", np.loadtxt(tmp_path / "x.csv", skiprows=1), fs=4000.0)


def test_arrays_are_sources_too(tmp_path):
    x = RNG.normal(0, 50, N).astype(np.float32)
    with open_source(x, fs=4000.0) as src:
        np.testing.assert_array_equal(src.read(10, 20), x[10:20].astype(np.float64))
    with pytest.raises(InputError, match="an array carries no sampling rate"):
        open_source(x)


# --------------------------------------------------------------------------- the range contract

def test_a_range_outside_the_signal_is_a_programming_error_not_bad_input(tmp_path):
    np.save(tmp_path / "x.npy", np.zeros(10))
    with open_source(tmp_path / "x.npy", fs=1000.0) as src:
        assert src.read(4, 4).shape == (0,)
        with pytest.raises(IndexError, match="sample range 5-11 is outside 0-10"):
            src.read(5, 11)


def test_a_file_truncated_after_it_was_opened_is_named_in_one_line(tmp_path):
    np.save(tmp_path / "x.npy", np.arange(1000.0))
    src = open_source(tmp_path / "x.npy", fs=1000.0)
    data = (tmp_path / "x.npy").read_bytes()
    (tmp_path / "x.npy").write_bytes(data[:len(data) - 800])
    assert src.read(0, 100)[99] == 99.0
    with pytest.raises(InputError, match=r"x\.npy: file ends early \(wanted samples 900-1000\)"):
        src.read(900, 1000)


def test_an_edf_source_holds_its_file_until_closed(tmp_path):
    pyedflib = pytest.importorskip("pyedflib")
    h = pyedflib.highlevel.make_signal_header("EMG", sample_frequency=1000)
    pyedflib.highlevel.write_edf(str(tmp_path / "r.edf"), [np.full(2000, 100.0)], [h])
    src = open_source(tmp_path / "r.edf")
    assert src.reader is not None
    with src:
        np.testing.assert_allclose(src.read(0, 3), 100.0, atol=400 / 65535)  # one digital step
    assert src.reader is None


def test_the_wav_container_size_comes_from_the_fmt_chunk_after_other_chunks(tmp_path):
    """A LIST chunk before ``fmt `` must not hide the 24-bit container size."""
    ints = np.array([1, -1, 2**23 - 1, -2**23] * 10)
    write_wav_pcm(tmp_path / "a.wav", ints, 3)
    data = (tmp_path / "a.wav").read_bytes()
    extra = b"LIST" + struct.pack("<I", 5) + b"abcde\0"  # odd size: a pad byte follows
    body = data[12:]
    out = b"RIFF" + struct.pack("<I", 4 + len(extra) + len(body)) + b"WAVE" + extra + body
    (tmp_path / "b.wav").write_bytes(out)
    assert read_recording(tmp_path / "b.wav", scale=1.0).signal[:4].tolist() == [1, -1, 2**23 - 1, -2**23]


def test_a_folder_given_as_a_recording_says_what_it_holds(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "two").mkdir()
    for name in ("a", "b"):
        np.save(tmp_path / "two" / f"{name}.npy", np.zeros(10))
    with pytest.raises(InputError, match=r"empty: not a regular file but a folder: no recordings found"):
        open_source(tmp_path / "empty")
    with pytest.raises(InputError, match=r"two: not a regular file but a folder of 2 recordings"):
        read_recording(tmp_path / "two", fs=1000.0)
