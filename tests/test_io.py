"""Readers: N2001 WFDB bytes, PhysioNet-style mV records, .npy/.csv/.wav/EDF, real data, downloads."""

from __future__ import annotations

import contextlib
import io
import json
import warnings
from pathlib import Path

import numpy as np
import pytest

from alsnet.data.io import (
    LabelMismatchWarning,
    find_recordings,
    parse_n2001_name,
    read_csv,
    read_edf,
    read_npy,
    read_recording,
    read_wav,
    read_wfdb,
)
from alsnet.data.windows import MODEL_FS, WINDOW_SAMPLES, make_windows, resample_to_model_rate
from alsnet.errors import AlsnetError, InputError

GAIN = 13.107  # ADC units per µV in the N2001 headers
N2001_COMMENTS = ["gender: M", "age: 56", "duration: 0.5 years", "muscle: Biceps brachii (long head)",
                  "side: Left", "protocol: steady isometric contraction", "level: low",
                  "electrode: concentric needle", "high-pass filter: 2 Hz", "low-pass filter: 10 kHz"]


def write_n2001(folder: Path, name: str = "N2001A01BB01", adu=None, *, n: int | None = None,
                offset: int = 20, extra: int = 10, fs: str = "23437.5", diagnosis: str | None = "ALS",
                comments: list[str] | None = None) -> Path:
    """Write an N2001-style record byte for byte: format 16 after ``offset`` junk bytes,
    gain 13.107/uV, ``extra`` undeclared samples after the declared ones (as in the real
    files), header comments. Returns the ``.hea`` path."""
    folder.mkdir(parents=True, exist_ok=True)
    if adu is None:
        adu = np.random.default_rng(0).integers(-3000, 3000, n or 1000)
    adu = np.asarray(adu, dtype="<i2")
    n = len(adu) if n is None else n
    lines = [f"{name} 1 {fs} {n}", f"{name}.bin 16+{offset} 13.1070/uV"]
    com = list(N2001_COMMENTS if comments is None else comments)
    if diagnosis is not None:
        com.insert(2, f"diagnosis: {diagnosis}")
    lines += [f"#{c}" for c in com]
    (folder / f"{name}.hea").write_text("\n".join(lines) + "\n", encoding="utf-8")
    # The offset bytes hold large non-zero values: reading from byte 0 would be visibly wrong.
    junk = np.full(offset // 2, 20000, "<i2").tobytes() + b"\x7f" * (offset % 2)
    tail = np.full(extra, 1234, "<i2").tobytes()
    (folder / f"{name}.bin").write_bytes(junk + adu.tobytes() + tail)
    return folder / f"{name}.hea"


# --------------------------------------------------------------------------- WFDB

def test_n2001_record_is_microvolts_from_the_byte_offset_and_ignores_the_extra_samples(tmp_path):
    adu = np.array([13107, -13107, 0, 1311, -32767, 32767] + [5] * 94)
    rec = read_wfdb(write_n2001(tmp_path, adu=adu))
    assert rec.fs == 23437.5 and rec.n_samples == 100  # not 110: the tail is not declared
    np.testing.assert_allclose(rec.signal[:6], adu[:6] / GAIN, rtol=1e-6)
    assert rec.signal.dtype == np.float32 and rec.n_invalid == 0
    assert rec.meta["format"] == "16" and rec.meta["byte_offset"] == 20 and rec.meta["units"] == "uV"
    assert rec.meta["age"] == "56" and rec.meta["diagnosis"] == "ALS"
    assert (rec.label, rec.subject, rec.muscle) == ("als", "A01", "BB")


def test_invalid_samples_become_nan_and_are_counted_never_zero(tmp_path):
    adu = np.arange(200) - 100
    adu[[3, 50, 51, 52, 199]] = -32768
    rec = read_recording(write_n2001(tmp_path, "N2001C05BB80", adu=adu, diagnosis="healty controls"))
    assert rec.n_invalid == 5
    assert np.isnan(rec.signal[[3, 50, 51, 52, 199]]).all()
    assert np.isfinite(np.delete(rec.signal, [3, 50, 51, 52, 199])).all()
    assert rec.label == "normal" and rec.subject == "C05"


@pytest.mark.parametrize("name,diagnosis", [("N2001A06BB01", "Mainly bulbar ALS"),
                                            ("N2001C01BB01", "healty controls"),
                                            ("N2001M03BB02", "Polymyositis")])
def test_name_and_diagnosis_that_agree_give_no_warning(tmp_path, name, diagnosis):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        rec = read_recording(write_n2001(tmp_path, name, diagnosis=diagnosis))
    assert rec.label == parse_n2001_name(name)["label"]


def test_label_mismatch_between_name_and_diagnosis_warns_naming_the_file(tmp_path):
    hea = write_n2001(tmp_path, "N2001A01BB07", diagnosis="healty controls")
    with pytest.warns(LabelMismatchWarning, match=r"N2001A01BB07\.hea.*'als'.*healty controls"):
        rec = read_recording(hea)
    assert rec.label == "als"  # the file name decides; the warning tells the user


def test_a_wfdb_record_can_be_named_by_stem_hea_or_bin_even_with_dots_in_its_name(tmp_path):
    hea = write_n2001(tmp_path, "N2001A01BB02")
    for p in (hea, hea.with_suffix(".bin"), hea.with_suffix("")):
        assert read_recording(p).n_samples == 1000
    dotted = tmp_path / "emg.v1.hea"
    dotted.write_text("emg 1 4000 4\nemg_v1.dat 16 200/mV\n")
    (tmp_path / "emg_v1.dat").write_bytes(np.array([200, -200, 0, 2], "<i2").tobytes())
    np.testing.assert_allclose(read_recording(dotted).signal, [1000, -1000, 0, 10])


def test_physionet_style_4_khz_record_in_millivolts_is_converted_to_microvolts(tmp_path):
    wfdb = pytest.importorskip("wfdb")
    t = np.arange(8000) / 4000
    mv = 0.5 * np.sin(2 * np.pi * 100 * t)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # wfdb's own pandas deprecation warnings
        wfdb.wrsamp("emg_neuropathy", fs=4000, units=["mV"], sig_name=["EMG"], p_signal=mv[:, None],
                    fmt=["16"], adc_gain=[2000], baseline=[0], write_dir=str(tmp_path))
    rec = read_recording(tmp_path / "emg_neuropathy.hea")
    assert rec.fs == 4000 and rec.meta["units"] == "mV" and rec.label is None
    np.testing.assert_allclose(rec.signal, mv * 1000, atol=0.5 / 2000 * 1000)  # half an ADC step


def test_a_signal_line_without_units_is_in_millivolts_as_wfdb_specifies(tmp_path):
    (tmp_path / "r.hea").write_text("r 1 4000 3\nr.dat 16 200\n")
    (tmp_path / "r.dat").write_bytes(np.array([200, -100, 0], "<i2").tobytes())
    np.testing.assert_allclose(read_recording(tmp_path / "r.hea").signal, [1000, -500, 0])


def test_multichannel_record_reads_the_chosen_channel(tmp_path):
    (tmp_path / "two.hea").write_text("two 2 10000 3\ntwo.dat 16 1/uV 16 0 0 0 0 a\n"
                                      "two.dat 16 1/uV 16 0 0 0 0 b\n")
    (tmp_path / "two.dat").write_bytes(np.array([1, 10, 2, 20, 3, 30], "<i2").tobytes())
    np.testing.assert_allclose(read_recording(tmp_path / "two.hea", channel=1).signal, [10, 20, 30])
    with pytest.raises(InputError, match="2 signals"):
        read_recording(tmp_path / "two.hea")


# --------------------------------------------------------------------------- other formats

def test_npy_needs_a_rate_and_takes_one_column_arrays(tmp_path):
    x = np.random.default_rng(1).normal(0, 50, 500)
    np.save(tmp_path / "a.npy", x[:, None])
    rec = read_recording(tmp_path / "a.npy", fs=10_000)
    assert rec.fs == 10_000 and rec.record == "a" and rec.label is None
    np.testing.assert_allclose(rec.signal, x, rtol=1e-6)
    with pytest.raises(InputError, match="no sampling rate"):
        read_npy(tmp_path / "a.npy", None)


def test_csv_is_one_column_with_an_optional_header_line(tmp_path):
    (tmp_path / "a.csv").write_text("\ufeffsignal_uV\n1.5\n-2\n\n3e2\nnan\n", encoding="utf-8")
    rec = read_csv(tmp_path / "a.csv", fs=4000)
    np.testing.assert_array_equal(rec.signal[:3], [1.5, -2, 300])
    assert rec.n_invalid == 1 and rec.fs == 4000


def test_wav_takes_its_rate_from_the_file_and_the_scale_from_the_user(tmp_path):
    from scipy.io import wavfile

    wavfile.write(tmp_path / "a.wav", 8000, np.array([100, -200, 0], np.int16))
    rec = read_wav(tmp_path / "a.wav", scale=0.5)
    assert rec.fs == 8000
    np.testing.assert_array_equal(rec.signal, [50, -100, 0])
    wavfile.write(tmp_path / "u8.wav", 8000, np.array([128, 129, 0], np.uint8))
    np.testing.assert_array_equal(read_wav(tmp_path / "u8.wav", scale=2).signal, [0, 2, -256])
    with pytest.raises(InputError, match="no physical scale"):
        read_recording(tmp_path / "a.wav")


@pytest.mark.parametrize("filetype,unit,factor", [("EDF", "uV", 1.0), ("EDFPLUS", "mV", 1e-3)])
def test_edf_and_edf_plus_written_by_pyedflib_are_read_in_microvolts(tmp_path, filetype, unit, factor):
    pyedflib = pytest.importorskip("pyedflib")
    uv = 300 * np.sin(2 * np.pi * 50 * np.arange(5000) / 2500)
    path = tmp_path / f"emg_{filetype}.edf"
    header = pyedflib.highlevel.make_signal_header("EMG", dimension=unit, sample_frequency=2500,
                                                   physical_min=-1000 * factor,
                                                   physical_max=1000 * factor)
    pyedflib.highlevel.write_edf(str(path), [uv * factor], [header],
                                 file_type=getattr(pyedflib, f"FILETYPE_{filetype}"))
    rec = read_recording(path)
    assert rec.fs == 2500 and rec.meta["units"] == unit
    np.testing.assert_allclose(rec.signal, uv, atol=2000 / 65535 + 1e-3)  # one digital step
    assert read_edf(path, channel=0).n_samples == 5000


def test_find_recordings_lists_one_path_per_record_and_skips_labels_csv(tmp_path):
    write_n2001(tmp_path, "N2001A01BB01")
    (tmp_path / "sub").mkdir()
    np.save(tmp_path / "sub" / "x.npy", np.zeros(3))
    (tmp_path / "labels.csv").write_text("record,label\nx,als\n")
    (tmp_path / "README.md").write_text("not a recording")
    names = [p.relative_to(tmp_path).as_posix() for p in find_recordings(tmp_path)]
    assert names == ["N2001A01BB01.hea", "sub/x.npy"]
    with pytest.raises(InputError, match="no such file"):
        find_recordings(tmp_path / "nope")


# --------------------------------------------------------------------------- real data

KNOWN_INVALID = {"N2001A03BB55": 13405, "N2001A06BB07": 3047, "N2001A08BB01": 33,
                 "N2001A08BB10": 20, "N2001C05BB80": 16848, "N2001M05BB58": 1261,
                 "N2001A01BB01": 0}
README_TOTAL_INVALID = 13405 + 3047 + 8058 + (8 * 33 + 21 + 6 * 20) + 16848 + 3095 + 5643 + 1261


@pytest.fixture(scope="module")
def real_info(real_data_dir):
    """``alsnet data info DIR --json`` on the real data, run once."""
    from alsnet.cli.main import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["data", "info", str(real_data_dir), "--json"])
    return code, json.loads(out.getvalue()), err.getvalue()


@pytest.mark.realdata
def test_data_info_on_the_real_data_reports_409_recordings_of_19_subjects(real_info):
    code, info, err = real_info
    assert code == 0 and err == ""
    s = info["summary"]
    assert s["recordings"] == 409 and s["subjects"] == 19
    assert {k: v["recordings"] for k, v in s["classes"].items()} == {"als": 78, "myopathy": 91,
                                                                    "normal": 240}
    assert s["sampling_rates"] == [23437.5] and s["muscles"] == {"BB": 409}


@pytest.mark.realdata
def test_real_n_invalid_equals_wfdb_nan_count_per_record_and_in_total(real_info, real_data_dir):
    import wfdb

    by_record = {r["record"]: r for r in real_info[1]["recordings"]}
    for name, expected in KNOWN_INVALID.items():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            nan_count = int(np.isnan(wfdb.rdrecord(str(real_data_dir / name)).p_signal).sum())
        assert by_record[name]["n_invalid"] == nan_count == expected, name
    # The total, against the README's per-record list and an independent count of raw -32768s.
    raw_total = 0
    for r in by_record.values():
        raw = np.fromfile(Path(r["path"]).with_suffix(".bin"), "<i2", offset=20, count=r["n_samples"])
        assert int((raw == -32768).sum()) == r["n_invalid"], r["record"]
        raw_total += int((raw == -32768).sum())
    total = real_info[1]["summary"]["n_invalid"]
    assert total == raw_total == README_TOTAL_INVALID == 51762
    assert real_info[1]["summary"]["recordings_with_invalid"] == 22


@pytest.mark.realdata
def test_a_real_n2001_recording_gives_11_windows(real_data_dir):
    rec = read_recording(real_data_dir / "N2001A01BB01.hea")
    assert rec.n_samples == 262124 and rec.fs == MODEL_FS
    w = make_windows(resample_to_model_rate(rec.signal, rec.fs))
    assert w.windows.shape == (11, WINDOW_SAMPLES) and w.n_dropped == 0
    # The first sample honours the 20-byte offset (reading from byte 0 gives another value).
    raw = np.fromfile(real_data_dir / "N2001A01BB01.bin", "<i2", count=20)
    assert rec.signal[0] == pytest.approx(raw[10] / GAIN)
    bad = read_recording(real_data_dir / "N2001A03BB55.hea")
    wb = make_windows(bad.signal)
    assert wb.n_windows == 11 and wb.n_dropped >= 1 and len(wb.windows) == 11 - wb.n_dropped


# --------------------------------------------------------------------------- downloads

def _fake_physionet(root: Path) -> str:
    """A local PhysioNet-like tree (PROJECT/VERSION/files + SHA256SUMS.txt); its file:// URL."""
    from alsnet.data.download import sha256_file

    ver = root / "emgdb" / "1.0.0"
    ver.mkdir(parents=True)
    (ver / "emg_healthy.hea").write_text("emg_healthy 1 4000 2\nemg_healthy.dat 16 200/mV\n")
    (ver / "emg_healthy.dat").write_bytes(np.array([200, -200], "<i2").tobytes())
    sums = "".join(f"{sha256_file(ver / n)}  {n}\n" for n in ("emg_healthy.dat", "emg_healthy.hea"))
    (ver / "SHA256SUMS.txt").write_text(sums)
    return root.as_uri()


def test_download_physionet_from_a_local_mirror_checks_every_digest(tmp_path):
    from alsnet.data.download import download_physionet, physionet_url

    assert physionet_url("emgdb", "1.0.0", "emg_healthy.hea") == \
        "https://physionet.org/files/emgdb/1.0.0/emg_healthy.hea"
    base = _fake_physionet(tmp_path / "mirror")
    got = download_physionet(tmp_path / "data", base=base)
    assert sorted(p.name for p in got) == ["emg_healthy.dat", "emg_healthy.hea"]
    np.testing.assert_allclose(read_recording(tmp_path / "data" / "emg_healthy.hea").signal, [1000, -1000])
    # A tampered mirror file is refused and nothing half-written is left behind.
    (tmp_path / "mirror" / "emgdb" / "1.0.0" / "emg_healthy.dat").write_bytes(b"\0\0\0\0")
    (tmp_path / "data" / "emg_healthy.dat").unlink()
    with pytest.raises(AlsnetError, match="SHA-256 mismatch"):
        download_physionet(tmp_path / "data", base=base)
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == ["SHA256SUMS.txt", "emg_healthy.hea"]


def test_unpack_n2001_checks_the_archive_digest_before_unpacking(tmp_path):
    import tarfile

    from alsnet.data.download import sha256_file, unpack_n2001

    write_n2001(tmp_path / "src" / "N2001", "N2001A01BB01")
    archive = tmp_path / "emglab-n2001-bb-dev.tar.xz"
    with tarfile.open(archive, "w:xz") as tar:
        tar.add(tmp_path / "src" / "N2001", arcname="N2001")
    (tmp_path / "SHA256SUMS").write_text(f"{'0' * 64}  {archive.name}\n")
    with pytest.raises(AlsnetError, match="does not match"):
        unpack_n2001(archive, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    (tmp_path / "SHA256SUMS").write_text(f"{sha256_file(archive)}  {archive.name}\n")
    folder = unpack_n2001(archive, tmp_path / "out")
    assert read_recording(folder / "N2001A01BB01.hea").n_samples == 1000
