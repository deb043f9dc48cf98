"""MNE-Python Raw objects as inputs of predict and explain: the same samples as alsnet's own readers."""

from __future__ import annotations

import shutil
import warnings

import numpy as np
import pytest

import alsnet
from alsnet.data.bids_write import write_bids
from alsnet.data.mne_io import RawSource, open_input
from alsnet.errors import InputError

mne = pytest.importorskip("mne")
mne_bids = pytest.importorskip("mne_bids")
edfio = pytest.importorskip("edfio")

FS = 23437.5


def _raw(x_uv: np.ndarray, names=("EMG",), types=("emg",), fs: float = FS):
    return mne.io.RawArray(np.atleast_2d(x_uv) * 1e-6, mne.create_info(list(names), fs, list(types)),
                           verbose="error")


def test_raw_source_reads_the_emg_channel_in_microvolts():
    x = np.random.default_rng(0).standard_normal((3, 5000)) * 100
    raw = _raw(x, ("Fz", "needle", "MEG1"), ("eeg", "emg", "mag"))
    with open_input(raw) as src:
        assert (src.channel, src.fs, src.n_samples) == (1, FS, 5000)
        np.testing.assert_allclose(src.read(100, 200), x[1, 100:200], rtol=1e-12)
    with open_input(raw, channel="Fz") as src:
        np.testing.assert_allclose(src.read(), x[0], rtol=1e-12)
    with pytest.raises(InputError, match="not in volts"):
        RawSource(raw, channel="MEG1")  # teslas
    with pytest.raises(InputError, match="no channel named 'X'"):
        RawSource(raw, channel="X")


def test_two_emg_channels_need_a_name_and_one_other_channel_is_taken():
    x = np.zeros((2, 100))
    with pytest.raises(InputError, match="2 channels of type EMG among a \\(emg\\), b \\(emg\\)"):
        RawSource(_raw(x, ("a", "b"), ("emg", "emg")))
    assert RawSource(_raw(x[:1], ("Cz",), ("eeg",))).channel == 0  # read_raw_edf calls signals eeg


def test_bad_acq_skip_annotations_end_or_invalidate_the_raw_as_in_bids():
    raw = _raw(np.arange(1000.0), fs=100.0)
    raw.set_annotations(mne.Annotations([1.0, 9.0], [0.5, 1.0], ["BAD_ACQ_SKIP"] * 2))
    src = RawSource(raw)
    x = src.read()
    assert src.n_samples == 900
    assert np.isnan(x[100:150]).all() and x[99] == 99.0 and x[150] == 150.0


def test_a_file_read_by_mne_scores_as_the_same_file_read_by_alsnet(tmp_path):
    rng = np.random.default_rng(3)
    x = rng.standard_normal(46875 * 2) * 80
    edf = tmp_path / "x.edf"
    edfio.Edf([edfio.EdfSignal(x, FS, label="EMG", physical_dimension="uV")], data_record_duration=2).write(edf)
    raw = mne.io.read_raw_edf(edf, verbose="error")
    a, b = alsnet.predict(raw), alsnet.predict(edf)
    assert a["n_windows"] == b["n_windows"] == 4
    assert a["path"] == str(edf)
    assert a["probabilities"]["als"] == pytest.approx(b["probabilities"]["als"], abs=1e-6)
    assert [w["probabilities"] for w in a["windows"]] == pytest.approx([w["probabilities"] for w in b["windows"]],
                                                                       abs=1e-6)


def test_n2001_exported_to_bids_and_read_by_mne_bids_scores_as_alsnet_reads_it(real_data_dir, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    for ext in (".hea", ".bin"):
        shutil.copy(real_data_dir / f"N2001A01BB01{ext}", src)
    (r,) = write_bids(src, tmp_path / "bids")["recordings"]
    bp = mne_bids.get_bids_path_from_fname(r["path"]).update(root=tmp_path / "bids")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        raw = mne_bids.read_raw_bids(bp, verbose="error")
    from_mne, from_file = alsnet.predict(raw), alsnet.predict(r["path"])
    original = alsnet.predict(src / "N2001A01BB01.hea")
    assert from_mne["n_windows"] == from_file["n_windows"] == original["n_windows"] == 11  # padding left out
    assert from_mne["probabilities"]["als"] == pytest.approx(from_file["probabilities"]["als"], abs=1e-6)
    assert from_file["probabilities"]["als"] == pytest.approx(original["probabilities"]["als"], abs=1e-4)


def test_explain_accepts_a_raw(tmp_path):
    x = np.random.default_rng(4).standard_normal(int(FS * 2)) * 60
    edf = tmp_path / "x.edf"
    edfio.Edf([edfio.EdfSignal(x, FS, label="EMG", physical_dimension="uV")], data_record_duration=2).write(edf)
    a = alsnet.explain_recording(mne.io.read_raw_edf(edf, verbose="error"), tmp_path / "raw.png", max_windows=2)
    b = alsnet.explain_recording(edf, tmp_path / "file.png", max_windows=2)
    assert (tmp_path / "raw.png").stat().st_size > 0 and a["n_windows"] == 2
    assert np.allclose(a["window_probabilities"], b["window_probabilities"], atol=1e-6)
