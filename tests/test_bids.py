"""EMG-BIDS: alsnet data to-bids, its mne-bids round trip, and BIDS folders read as data sets."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import warnings
from pathlib import Path

import numpy as np
import pytest

from alsnet.cli.main import main
from alsnet.data.bids import record_duration, skip_spans
from alsnet.data.bids_write import write_bids
from alsnet.data.dataset import index_dataset, iter_recordings, load_windows
from alsnet.data.labels import get_task
from alsnet.errors import InputError

mne = pytest.importorskip("mne")
mne_bids = pytest.importorskip("mne_bids")
edfio = pytest.importorskip("edfio")

N2001_RECORDS = ("N2001A01BB01", "N2001C01BB51", "N2001M02BB01")


def _copy_n2001(real_data_dir: Path, dest: Path, records=N2001_RECORDS) -> Path:
    dest.mkdir()
    for r in records:
        for ext in (".hea", ".bin"):
            shutil.copy(real_data_dir / f"{r}{ext}", dest)
    return dest


def _tsv(path: Path) -> list[dict]:
    with path.open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh, delimiter="\t"))


def _npy_set(tmp_path: Path, fs: float, lengths: dict[str, int], labels: dict[str, str]) -> Path:
    """A folder of .npy recordings with labels.csv (record,subject,label,fs)."""
    root = tmp_path / "npy"
    root.mkdir()
    rng = np.random.default_rng(0)
    rows = ["record,subject,label,fs"]
    for rec, n in lengths.items():
        np.save(root / f"{rec}.npy", (rng.standard_normal(n) * 100).astype(np.float32))
        rows.append(f"{rec},{rec[:3]},{labels[rec]},{fs}")
    (root / "labels.csv").write_text("\n".join(rows) + "\n")
    return root


# --------------------------------------------------------------------------- rules

def test_record_duration_is_the_fewest_whole_seconds_holding_whole_samples():
    assert record_duration(23437.5) == 2
    assert record_duration(10000.0) == 1
    assert record_duration(4096.25) == 4
    with pytest.raises(InputError, match="not a whole number of samples"):
        record_duration(np.pi * 1000, "x.npy")


def test_skip_spans_ends_the_recording_at_trailing_padding_and_marks_inner_spans():
    n, spans = skip_spans([1.0, 9.0], [0.5, 1.0], ["BAD_ACQ_SKIP", "BAD_ACQ_SKIP"], 10.0, 100)
    assert (n, spans) == (90, [(10, 15)])
    n, spans = skip_spans([2.0], [1.0], ["other"], 10.0, 100)
    assert (n, spans) == (100, [])


# --------------------------------------------------------------------------- writing

def test_to_bids_of_n2001_reads_back_in_mne_bids_as_emg_at_23437_5_hz(real_data_dir, tmp_path):
    src = _copy_n2001(real_data_dir, tmp_path / "src")
    report = write_bids(src, tmp_path / "bids", line_freq=50)
    assert len(report["recordings"]) == 3
    originals = {r.record: r for r in iter_recordings(src)}
    for r in report["recordings"]:
        orig = originals[r["record"]]
        assert (r["record_duration_s"], r["samples_per_record"]) == (2, 46875)
        assert r["padded_samples"] == -orig.n_samples % 46875
        bp = mne_bids.get_bids_path_from_fname(r["path"]).update(root=tmp_path / "bids")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            raw = mne_bids.read_raw_bids(bp, verbose="error")
        assert raw.info["sfreq"] == 23437.5
        assert raw.get_channel_types() == ["emg"]
        x = raw.get_data()[0] * 1e6
        assert len(x) == orig.n_samples + r["padded_samples"]
        err = np.abs(x[:orig.n_samples] - orig.signal)
        assert err.max() <= r["resolution_uv"] / 2 + 1e-6
        assert r["resolution_uv"] < 0.0763  # finer than N2001's own step (13.107 units/µV)
        skips = [(o, d) for o, d, t in zip(raw.annotations.onset, raw.annotations.duration,
                                         raw.annotations.description) if t == "BAD_ACQ_SKIP"]
        assert round(skips[-1][0] * 23437.5) == orig.n_samples
    part = {r["participant_id"]: r for r in _tsv(tmp_path / "bids" / "participants.tsv")}
    assert {k: v["diagnosis"] for k, v in part.items()} == {"sub-A01": "als", "sub-C01": "normal",
                                                            "sub-M02": "myopathy"}
    desc = json.loads((tmp_path / "bids" / "dataset_description.json").read_text())
    assert desc["BIDSVersion"] == "1.11.0"
    side = json.loads(Path(report["recordings"][0]["path"]).with_name(
        Path(report["recordings"][0]["path"]).name.replace("_emg.edf", "_emg.json")).read_text())
    for field in ("EMGPlacementScheme", "EMGReference", "SamplingFrequency", "PowerLineFrequency",
                  "SoftwareFilters", "TaskName"):
        assert field in side
    assert side["SamplingFrequency"] == 23437.5 and side["PowerLineFrequency"] == 50


def test_n2001_to_bids_to_alsnet_gives_the_same_windows_to_the_edf_resolution(real_data_dir, tmp_path):
    src = _copy_n2001(real_data_dir, tmp_path / "src")
    report = write_bids(src, tmp_path / "bids")
    task = get_task("three-class")
    a, b = load_windows(src, task), load_windows(tmp_path / "bids", task)
    assert a.x.shape == b.x.shape == (33, 23437)
    assert list(a.subject) == list(b.subject) and list(a.y) == list(b.y)
    assert np.abs(a.x - b.x).max() <= max(r["resolution_uv"] for r in report["recordings"]) / 2 + 1e-3
    infos, problems = index_dataset(tmp_path / "bids")
    assert problems == []
    assert [(i.subject, i.label, i.muscle, i.fs, i.n_samples) for i in infos] == [
        ("A01", "als", "BB", 23437.5, 262124), ("C01", "normal", "BB", 23437.5, 262124),
        ("M02", "myopathy", "BB", 23437.5, 262124)]


def test_bdf_steps_are_256_times_finer_than_edf(tmp_path):
    src = _npy_set(tmp_path, 23437.5, {"S01r1": 30000}, {"S01r1": "als"})
    edf = write_bids(src, tmp_path / "edf")["recordings"][0]
    bdf = write_bids(src, tmp_path / "bdf", fmt="bdf")["recordings"][0]
    assert bdf["path"].endswith("_emg.bdf")
    assert edf["resolution_uv"] / bdf["resolution_uv"] == pytest.approx(16777215 / 65535)
    back = next(iter_recordings(tmp_path / "bdf"))
    orig = np.load(src / "S01r1.npy")
    assert back.n_samples == 30000
    assert np.abs(back.signal - orig).max() <= bdf["resolution_uv"] / 2 + 1e-4


def test_invalid_samples_survive_the_round_trip_as_invalid(tmp_path):
    src = _npy_set(tmp_path, 10000.0, {"S01r1": 25000}, {"S01r1": "normal"})
    x = np.load(src / "S01r1.npy")
    x[1000:1500] = np.nan
    np.save(src / "S01r1.npy", x)
    r = write_bids(src, tmp_path / "bids")["recordings"][0]
    assert (r["record_duration_s"], r["padded_samples"]) == (1, 5000)
    back = next(iter_recordings(tmp_path / "bids"))
    assert back.n_samples == 25000 and back.n_invalid == 500
    assert np.isnan(back.signal[1000:1500]).all() and np.isfinite(back.signal[:1000]).all()


def test_cli_to_bids_says_the_record_duration_and_the_tail(tmp_path, capsys):
    src = _npy_set(tmp_path, 23437.5, {"S01r1": 50000, "S02r1": 46875 * 2},
                   {"S01r1": "als", "S02r1": "normal"})
    assert main(["data", "to-bids", str(src), str(tmp_path / "bids")]) == 0
    out = capsys.readouterr().out
    assert "2-s records of 46875; last record padded with 43750 samples (BAD_ACQ_SKIP)" in out
    assert "2-s records of 46875; whole records, no padding" in out
    assert main(["data", "to-bids", str(src), str(tmp_path / "bids" / "sub-S01")]) == 3  # not empty, not BIDS
    assert "is not an empty folder or a BIDS data set" in capsys.readouterr().err
    assert main(["data", "to-bids", str(tmp_path / "bids"), str(tmp_path / "bids")]) == 3
    assert "is the data set being read" in capsys.readouterr().err


def test_a_recording_that_cannot_be_written_is_one_line_and_the_others_are_written(tmp_path, capsys):
    src = _npy_set(tmp_path, 10000.0, {"S01r1": 20000, "S02r1": 20000}, {"S01r1": "als", "S02r1": "normal"})
    (src / "labels.csv").write_text("record,subject,label,fs\nS01r1,S01,als,10000\nS02r1,S02,normal,3141.5926\n")
    assert main(["data", "to-bids", str(src), str(tmp_path / "bids")]) == 1
    err = capsys.readouterr().err.splitlines()
    assert err == [f"alsnet data to-bids: error: {src / 'S02r1.npy'}: 3141.59 Hz is not a whole number of "
                   "samples in any EDF data record of 1-60 s; resample the recording first"]
    assert [i.subject for i in index_dataset(tmp_path / "bids")[0]] == ["S01"]


def test_the_official_bids_validator_finds_no_error_in_a_written_set(tmp_path):
    exe = shutil.which("bids-validator-deno") or pytest.skip("bids-validator-deno (pip) is not installed")
    src = _npy_set(tmp_path, 23437.5, {"S01r1": 50000, "S02r1": 30000}, {"S01r1": "als", "S02r1": "normal"})
    write_bids(src, tmp_path / "bids", line_freq=50)
    run = subprocess.run([exe, str(tmp_path / "bids"), "--json"], capture_output=True, text=True, timeout=300)
    result = json.loads(run.stdout)
    assert [i for i in result["issues"]["issues"] if i["severity"] == "error"] == []
    assert result["summary"]["dataTypes"] == ["emg"] and result["summary"]["subjects"] == ["S01", "S02"]


# --------------------------------------------------------------------------- reading

def _mne_bids_set(real_data_dir: Path, root: Path, records=("N2001A01BB01", "N2001C01BB51")) -> Path:
    """A BIDS set written by mne-bids itself (EDF from edfio, 2-s records; diagnosis in participants.tsv)."""
    from alsnet.data.io import read_recording

    for i, name in enumerate(records):
        rec = read_recording(real_data_dir / f"{name}.hea")
        n = rec.n_samples // 46875 * 46875
        edf = root.parent / f"{name}.edf"
        edfio.Edf([edfio.EdfSignal(rec.signal[:n].astype(float), 23437.5, label="needle",
                                   physical_dimension="uV")], data_record_duration=2).write(edf)
        raw = mne.io.read_raw_edf(edf, verbose="error")
        raw.set_channel_types({"needle": "emg"}, verbose="error")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            mne_bids.write_raw_bids(raw, mne_bids.BIDSPath(subject=f"p{i + 1}", task="rest", datatype="emg",
                                                           root=root), emg_placement="Measured", verbose="error")
    part = _tsv(root / "participants.tsv")
    diagnoses = {"sub-p1": "ALS", "sub-p2": "control"}
    with (root / "participants.tsv").open("w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=[*part[0], "diagnosis", "group"], delimiter="\t")
        w.writeheader()
        w.writerows([{**r, "diagnosis": diagnoses[r["participant_id"]], "group": "healthy"} for r in part])
    return root


def test_a_set_written_by_mne_bids_is_listed_by_data_info(real_data_dir, tmp_path, capsys):
    root = _mne_bids_set(real_data_dir, tmp_path / "bids")
    assert main(["data", "info", str(root), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    recs = out["recordings"]
    assert [(r["subject"], r["label"], r["fs"], r["n_samples"]) for r in recs] == [
        ("p1", "als", 23437.5, 234375), ("p2", "normal", 23437.5, 234375)]
    assert out["summary"]["classes"]["als"]["subjects"] == 1
    assert main(["data", "info", str(root), "--json", "--label-column", "group"]) == 0
    assert [r["label"] for r in json.loads(capsys.readouterr().out)["recordings"]] == ["normal", "normal"]


def test_a_set_written_by_mne_bids_is_scored_by_predict_as_the_source_is(real_data_dir, tmp_path, capsys):
    root = _mne_bids_set(real_data_dir, tmp_path / "bids", records=("N2001A01BB01",))
    assert main(["predict", str(root), "--json"]) == 0
    (res,) = json.loads(capsys.readouterr().out)
    assert res["error"] is None and res["n_windows"] == 10
    import alsnet

    ref = alsnet.predict(tmp_path / "N2001A01BB01.edf")  # the same samples, read as a plain EDF
    assert res["probabilities"]["als"] == pytest.approx(ref["probabilities"]["als"], abs=1e-6)


def test_bad_sidecars_get_one_line_naming_the_file_and_the_rest_is_read(real_data_dir, tmp_path, capsys):
    root = write_bids(_copy_n2001(real_data_dir, tmp_path / "src"), tmp_path / "bids")["out"]
    emg = sorted(Path(root).rglob("*_emg.edf"))
    channels = emg[0].with_name(emg[0].name.replace("_emg.edf", "_channels.tsv"))
    channels.unlink()
    side = emg[1].with_name(emg[1].name.replace("_emg.edf", "_emg.json"))
    side.write_text(json.dumps({**json.loads(side.read_text()), "SamplingFrequency": 10000}))
    rows = _tsv(Path(root) / "participants.tsv")
    rows[2]["diagnosis"] = "parkinson"
    with (Path(root) / "participants.tsv").open("w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]), delimiter="\t")
        w.writeheader()
        w.writerows(rows)
    assert main(["data", "info", root, "--json"]) == 1
    captured = capsys.readouterr()
    err = captured.err.splitlines()
    assert any(str(channels) in e and "missing sidecar channels.tsv" in e for e in err)
    assert any(str(side) in e and "SamplingFrequency 10000 Hz but" in e for e in err)
    assert any("participants.tsv: sub-M02 has diagnosis 'parkinson'" in e for e in err)
    recs = json.loads(captured.out)["recordings"]
    assert [(r["subject"], r["label"]) for r in recs] == [("M02", None)]


def test_several_emg_channels_need_a_channel_choice(tmp_path):
    root = tmp_path / "bids"
    x = np.random.default_rng(1).standard_normal((2, 20000)) * 1e-4
    raw = mne.io.RawArray(x, mne.create_info(["a", "b"], 10000.0, ["emg", "emg"]), verbose="error")
    edf = tmp_path / "two.edf"
    raw.export(edf, fmt="edf", verbose="error")
    raw = mne.io.read_raw_edf(edf, verbose="error")
    raw.set_channel_types({"a": "emg", "b": "emg"}, verbose="error")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mne_bids.write_raw_bids(raw, mne_bids.BIDSPath(subject="01", task="rest", datatype="emg", root=root),
                                emg_placement="Measured", verbose="error")
    infos, problems = index_dataset(root)
    assert infos == [] and "2 channels of type EMG (a, b); choose one with channel=/--channel" in problems[-1].message
    infos, problems = index_dataset(root, channel=1)
    assert len(infos) == 1 and infos[0].n_samples == 20000
    with pytest.warns(UserWarning, match="no column .diagnosis."):
        rec = next(iter_recordings(root, channel=1))
    assert rec.label is None and np.abs(rec.signal - x[1] * 1e6).max() < 0.01


def test_sessions_are_read_and_the_subject_is_the_sub_entity(tmp_path):
    root = tmp_path / "bids"
    rng = np.random.default_rng(2)
    for ses in ("pre", "post"):
        raw = mne.io.RawArray(rng.standard_normal((1, 20000)) * 1e-4,
                              mne.create_info(["EMG"], 10000.0, ["emg"]), verbose="error")
        edf = tmp_path / f"{ses}.edf"
        raw.export(edf, fmt="edf", verbose="error")
        raw = mne.io.read_raw_edf(edf, verbose="error")
        raw.set_channel_types({"EMG": "emg"}, verbose="error")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            mne_bids.write_raw_bids(raw, mne_bids.BIDSPath(subject="07", session=ses, task="rest",
                                                           datatype="emg", root=root),
                                    emg_placement="Measured", verbose="error")
    (root / "participants.tsv").write_text("participant_id\tdiagnosis\nsub-07\tHealthy\n")
    for extra in ("sourcedata/sub-08/emg", "derivatives/filtered/sub-07/emg"):  # not recordings of the set
        (root / extra).mkdir(parents=True)
        shutil.copy(tmp_path / "pre.edf", root / extra / f"{extra.split('/')[-2]}_task-rest_emg.edf")
    infos, problems = index_dataset(root)
    assert problems == []
    assert [(Path(i.path).parent.parent.name, i.subject, i.label, i.fs) for i in infos] == [
        ("ses-post", "07", "normal", 10000.0), ("ses-pre", "07", "normal", 10000.0)]


def test_n2001_invalid_samples_come_back_invalid_where_they_were(real_data_dir, tmp_path):
    src = _copy_n2001(real_data_dir, tmp_path / "src", records=("N2001A03BB55",))
    (r,) = write_bids(src, tmp_path / "bids")["recordings"]
    (a,), (b,) = list(iter_recordings(src)), list(iter_recordings(tmp_path / "bids"))
    assert a.n_invalid == b.n_invalid == 13405
    assert np.array_equal(np.isnan(a.signal), np.isnan(b.signal))
    assert r["resolution_uv"] <= 1 / 13.107  # at most N2001's own step, even at its full range
    assert np.nanmax(np.abs(a.signal - b.signal)) <= r["resolution_uv"] / 2 + 1e-4


def test_a_bids_root_given_as_a_folder_lists_only_its_layouts_recordings(tmp_path):
    """sourcedata/ and derivatives/ EDF files are not recordings of the set."""
    from alsnet.data.io import find_recordings

    src = _npy_set(tmp_path, 23437.5, {"S01r1": 46875, "S02r1": 46875}, {"S01r1": "als", "S02r1": "normal"})
    assert main(["data", "to-bids", str(src), str(tmp_path / "bids")]) == 0
    root = tmp_path / "bids"
    listed = find_recordings(root)
    assert len(listed) == 2 and all(p.name.endswith("_emg.edf") for p in listed)
    for extra in ("sourcedata", "derivatives"):
        (root / extra).mkdir(exist_ok=True)
        shutil.copy(listed[0], root / extra / listed[0].name)
    assert find_recordings(root) == listed
