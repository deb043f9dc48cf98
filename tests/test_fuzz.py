"""Property-based fuzzing: whatever the bytes, the readers and the window pipeline raise
nothing but AlsnetError. CI budget: about 600 examples in all, under a minute on 2 cores
(``ALSNET_FUZZ_SCALE=10`` multiplies every test's examples for a longer local run).
The budget is recorded in docs/robustness.md.
"""

from __future__ import annotations

import os
import struct
import warnings
from pathlib import Path

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, event, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from alsnet.data.io import read_recording  # noqa: E402
from alsnet.data.windows import WINDOW_SAMPLES, make_windows, resample_to_model_rate  # noqa: E402
from alsnet.errors import AlsnetError  # noqa: E402

SCALE = float(os.environ.get("ALSNET_FUZZ_SCALE", "1"))


def fuzz(n: int):
    """Settings for one fuzz test of ``n`` examples (times ALSNET_FUZZ_SCALE)."""
    return settings(max_examples=max(1, int(n * SCALE)), deadline=None, database=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                           HealthCheck.data_too_large, HealthCheck.large_base_example])


def only_alsnet_errors(fn, *args, **kw):
    """Call ``fn``; an AlsnetError is fine, any other exception fails the test."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            out = fn(*args, **kw)
        except AlsnetError as e:
            assert str(e) and "\n" not in str(e)
            # The problem without numbers: --hypothesis-show-statistics shows what was reached.
            event(f"{fn.__name__}: {''.join(c for c in e.problem[:40] if not c.isdigit())}")
            return None
        event(f"{fn.__name__}: ok")
        return out


def _clear(folder: Path) -> None:
    for p in folder.iterdir():
        if p.is_file():
            p.unlink()


# --------------------------------------------------------------------------- WFDB headers

def mostly(valid, *weird, rare: int = 3):
    """``valid`` in about 7 of 8 draws (``1 - 2**-rare``), otherwise one of ``weird``: most
    examples then get past the first check and reach the decoders behind it."""
    valid = valid if isinstance(valid, st.SearchStrategy) else st.just(valid)
    if not weird:
        return valid
    odd = st.one_of(*weird)
    return st.tuples(*[st.booleans()] * rare).flatmap(lambda t: odd if all(t) else valid)


_line = st.text(st.characters(blacklist_categories=("Cs",), max_codepoint=0x2FF), max_size=60)
_header_lines = st.lists(st.one_of(_line, _line.map(lambda t: "#" + t),
                                   st.sampled_from(["r 1 23437.5 1000", "r.bin 16+20 13.1070/uV",
                                                    "#diagnosis: ALS", ""])), max_size=8)


@fuzz(80)
@given(lines=_header_lines, raw=st.text(max_size=200), use_raw=st.booleans())
def test_random_header_text_never_leaks_a_foreign_exception(tmp_path, lines, raw, use_raw):
    _clear(tmp_path)
    (tmp_path / "r.hea").write_text(raw if use_raw else "\n".join(lines), encoding="utf-8")
    (tmp_path / "r.bin").write_bytes(np.arange(1010, dtype="<i2").tobytes())
    only_alsnet_errors(read_recording, tmp_path / "r.hea")


_weird_number = st.one_of(st.integers(-10, 10**13).map(str), st.floats(allow_nan=True).map(repr),
                          st.sampled_from(["0", "-1", "1e3", "inf", "nan", ".5", "", "x", "1/0", "5(3)"]),
                          st.text(max_size=8))
_fmt = st.tuples(mostly(st.sampled_from(["16", "212", "8", "80", "24", "32", "61", "160", "310", "311"]),
                        st.sampled_from(["508", "0", "99", "-16", "x", ""])),
                 mostly("", st.sampled_from(["x1", "x2", "x0"])), mostly("", st.sampled_from([":1", ":0"])),
                 mostly(st.sampled_from(["", "+20"]), st.integers(0, 5000).map(lambda o: f"+{o}"),
                        st.sampled_from(["+", "+-3", "+1e9"]))).map("".join)
_gain = st.tuples(mostly(st.sampled_from(["13.1070", "200", "0", "-5", "1e3"]), _weird_number),
                  mostly("", st.sampled_from(["(0)", "(-5)", "(99999999999999999999)", "("])),
                  mostly(st.sampled_from(["/uV", "/mV", "", "/V"]), st.sampled_from(["/furlong", "/", "/µV"]))
                  ).map("".join)


@fuzz(150)
@given(name=mostly("r", st.sampled_from(["r/2", "", "N2001A01BB01", "r.x"])),
       n_sig=mostly("1", st.sampled_from(["2", "0", "-1", "x"])),
       fs=mostly(st.sampled_from(["23437.5", "4000", "23437.5/100(0)", "1000"]), _weird_number),
       n=mostly(st.integers(1, 300).map(str), _weird_number),
       file=mostly("r.bin", st.sampled_from(["../r.bin", "~", "other.bin", "r.hea", "r..bin"])),
       fmt=_fmt, gain=st.one_of(_gain, st.just("")),
       rest=mostly(st.sampled_from(["", " 16 0 0 0 0 EMG"]), st.sampled_from([" x y z", " 12", " \t"])),
       second=mostly(False, st.just(True)), size=mostly(st.integers(100, 3000), st.integers(0, 100)),
       seed=st.integers(0, 2**32 - 1))
def test_structured_random_headers_and_signal_bytes_never_leak(tmp_path, name, n_sig, fs, n, file, fmt,
                                                                 gain, rest, second, size, seed):
    _clear(tmp_path)
    data = np.random.default_rng(seed).bytes(size)
    sig = f"{file} {fmt} {gain}{rest}".rstrip()
    text = f"{name} {n_sig} {fs} {n}\n{sig}\n" + (f"{sig}\n" if second else "") + "#diagnosis: ALS\n"
    (tmp_path / "r.hea").write_text(text, encoding="utf-8")
    (tmp_path / "r.bin").write_bytes(data)
    rec = only_alsnet_errors(read_recording, tmp_path / "r.hea")
    if rec is not None:
        assert rec.signal.dtype == np.float32 and rec.fs > 0 and rec.n_samples > 0
        assert rec.n_invalid < rec.n_samples


# --------------------------------------------------------------------------- mutated valid files

def _templates() -> dict[str, dict[str, bytes]]:
    """One small valid file (set) per format; the fuzzer mutates their bytes."""
    import io
    import tempfile

    from scipy.io import wavfile

    rng = np.random.default_rng(0)
    x = rng.normal(0, 300, 600)
    out = {"wfdb": {"r.hea": b"r 1 23437.5 600\nr.bin 16+20 13.1070/uV\n#diagnosis: ALS\n#age: 56\n",
                    "r.bin": b"\x7f" * 20 + (x * 13.107).astype("<i2").tobytes() + b"\0" * 20}}
    buf = io.BytesIO()
    np.save(buf, x)
    out["npy"] = {"r.npy": buf.getvalue()}
    out["csv"] = {"r.csv": ("uV\n" + "\n".join(f"{v:.3f}" for v in x[:200]) + "\n").encode()}
    buf = io.BytesIO()
    wavfile.write(buf, 8000, (x * 10).astype(np.int16))
    out["wav"] = {"r.wav": buf.getvalue()}
    try:
        import pyedflib

        with tempfile.TemporaryDirectory() as d:
            h = pyedflib.highlevel.make_signal_header("EMG", dimension="uV", sample_frequency=200,
                                                      physical_min=-2000, physical_max=2000)
            pyedflib.highlevel.write_edf(f"{d}/r.edf", [np.clip(x, -2000, 2000)], [h])
            out["edf"] = {"r.edf": Path(f"{d}/r.edf").read_bytes()}
    except ImportError:  # pragma: no cover
        pass
    return out


TEMPLATES = _templates()


@fuzz(200)
@given(kind=st.sampled_from(sorted(TEMPLATES)), which=st.integers(0, 1),
       edits=st.lists(st.tuples(st.floats(0, 1), st.binary(min_size=1, max_size=4)), max_size=6),
       cut=mostly(st.none(), st.floats(0, 1)), tail=mostly(st.just(b""), st.binary(max_size=40)))
def test_mutated_valid_files_of_every_format_never_leak(tmp_path, kind, which, edits, cut, tail):
    _clear(tmp_path)
    files = TEMPLATES[kind]
    target = sorted(files)[which % len(files)]
    for name, data in files.items():
        if name == target:
            b = bytearray(data)
            for where, new in edits:
                i = int(where * (len(b) - 1))
                b[i:i + len(new)] = new
            if cut is not None:
                b = b[:int(cut * len(b))]
            data = bytes(b) + tail
        (tmp_path / name).write_bytes(data)
    main = next(n for n in sorted(files) if not n.endswith(".bin"))
    rec = only_alsnet_errors(read_recording, tmp_path / main, fs=4000.0, scale=0.5)
    if rec is not None:
        assert rec.signal.dtype == np.float32 and rec.n_invalid < rec.n_samples


@fuzz(50)
@given(suffix=st.sampled_from([".hea", ".bin", ".npy", ".csv", ".txt", ".wav", ".edf", ".bdf"]),
       data=st.binary(max_size=3000))
def test_random_bytes_as_any_file_type_never_leak(tmp_path, suffix, data):
    _clear(tmp_path)
    path = tmp_path / f"r{suffix}"
    path.write_bytes(data)
    if suffix == ".bin":
        (tmp_path / "r.hea").write_text("r 1 23437.5 10\nr.bin 16+20 13.1070/uV\n")
    only_alsnet_errors(read_recording, path, fs=23437.5, scale=0.5)


_DESCR = st.sampled_from(["<f8", "<f4", "<i2", ">i4", "|u1", "<c16", "|b1", "<U3", "|O", "<M8[s]",
                          "[('a', '<f4')]", "<f2", "|V4", "xyz"])


@fuzz(50)
@given(descr=_DESCR, shape=st.lists(mostly(st.integers(0, 60), st.integers(0, 10**12)), max_size=3),
       fortran=st.booleans(), payload=st.binary(max_size=1000), version=st.sampled_from([1, 2]))
def test_npy_with_a_random_header_and_payload_never_leaks(tmp_path, descr, shape, fortran, payload, version):
    _clear(tmp_path)
    header = f"{{'descr': {descr!r}, 'fortran_order': {fortran}, 'shape': {tuple(shape)!r}, }}"
    if descr.startswith("["):
        header = header.replace(repr(descr), descr)
    h = header.encode("latin-1") + b" " * (64 - (len(header) + 11) % 64) + b"\n"
    size = struct.pack("<H", len(h)) if version == 1 else struct.pack("<I", len(h))
    (tmp_path / "r.npy").write_bytes(b"\x93NUMPY" + bytes([version, 0]) + size + h + payload)
    only_alsnet_errors(read_recording, tmp_path / "r.npy", fs=4000.0)


@fuzz(50)
@given(channels=mostly(1, st.integers(0, 3)), rate=mostly(8000, st.integers(-5, 10**6)),
       bits=mostly(16, st.sampled_from([0, 8, 24, 32, 7])), fmt_code=mostly(1, st.sampled_from([3, 0xFFFE, 2, 0])),
       declared=st.one_of(st.none(), st.integers(0, 10**6)), payload=st.binary(max_size=2000))
def test_wav_with_random_header_fields_never_leaks(tmp_path, channels, rate, bits, fmt_code, declared, payload):
    _clear(tmp_path)
    block = max(channels * bits // 8, 0)
    fmt = struct.pack("<HHIIHH", fmt_code, channels, rate & 0xFFFFFFFF, (rate * block) & 0xFFFFFFFF,
                      block & 0xFFFF, bits)
    size = len(payload) if declared is None else declared
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", size) + payload
    (tmp_path / "r.wav").write_bytes(b"RIFF" + struct.pack("<I", len(body)) + body)
    only_alsnet_errors(read_recording, tmp_path / "r.wav", scale=1.0)


# --------------------------------------------------------------------------- the whole pipeline

_rates = st.one_of(st.sampled_from([23437.5, 4000.0, 2048.0, 10_000.0, 44_100.0, 1000.0, 999.9, 0.0, -4000.0]),
                   st.floats(allow_nan=True, allow_infinity=True),
                   st.floats(500.0, 200_000.0))


@fuzz(60)
@given(length=mostly(st.integers(WINDOW_SAMPLES // 2, 3 * WINDOW_SAMPLES), st.integers(0, 100), rare=2),
       fs=mostly(st.sampled_from([23437.5, 4000.0, 2048.0, 10_000.0, 44_100.0, 1000.0]), _rates, rare=2),
       seed=st.integers(0, 2**32 - 1), n_bad=mostly(st.integers(0, 3), st.integers(0, 50)),
       special=st.sampled_from([np.nan, np.inf, -np.inf, 1e39, 0.0]),
       policy=mostly(st.sampled_from(["drop", "keep-zero", "error"]), st.just("bogus")),
       overlap=mostly(st.sampled_from([0.0, 0.5, 0.9]), st.sampled_from([0.96, -0.1])),
       dtype=st.sampled_from(["<f8", "<f4", "<i2"]))
def test_any_length_and_rate_through_read_resample_and_window_never_leaks(
        tmp_path, length, fs, seed, n_bad, special, policy, overlap, dtype):
    _clear(tmp_path)
    rng = np.random.default_rng(seed)
    x = rng.normal(0, 200, length)
    if length:
        x[rng.integers(0, length, n_bad)] = special
    with np.errstate(invalid="ignore", over="ignore"):
        np.save(tmp_path / "r.npy", x.astype(dtype))
    rec = only_alsnet_errors(read_recording, tmp_path / "r.npy", fs=fs)
    if rec is None:
        return
    y = only_alsnet_errors(resample_to_model_rate, rec.signal, rec.fs, name=rec.path)
    if y is None:
        return
    w = only_alsnet_errors(make_windows, y, overlap=overlap, invalid=policy, name=rec.path)
    if w is not None:
        assert w.windows.shape[1] == WINDOW_SAMPLES and len(w.windows) + w.n_dropped == w.n_windows
        assert np.isfinite(w.windows).all() or policy != "drop"
