"""alsnet predict: output schema, exit codes, resampling, streaming, calibration, real data."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from alsnet.cli.main import main
from alsnet.data.windows import MODEL_FS, WINDOW_SAMPLES, make_windows, resample_to_model_rate
from alsnet.diagnosis.predict import Predictor, iter_window_chunks, open_source, predict
from alsnet.errors import AlsnetError, InputError
from alsnet.model.checkpoint import save_model
from alsnet.model.network import ALSNet

FIELDS = {"schema_version", "path", "label", "probabilities", "n_windows", "n_windows_used", "windows", "warnings",
          "error", "model", "backend"}


def emg(seconds: float, fs: float, seed: int = 0) -> np.ndarray:
    """Noise plus sparse biphasic spikes, in µV: enough like EMG for plumbing tests."""
    rng = np.random.default_rng(seed)
    n = int(seconds * fs)
    x = rng.normal(0, 10, n)
    t = np.arange(-int(0.004 * fs), int(0.004 * fs)) / fs
    spike = 300 * np.sin(2 * np.pi * 250 * t) * np.exp(-(t / 0.0015) ** 2)
    for s in rng.integers(0, n - len(t), max(1, int(seconds * 20))):
        x[s:s + len(t)] += spike * rng.uniform(0.5, 1.5)
    return x.astype(np.float32)


def fitted_model(n_outputs: int = 1, seed: int = 0) -> ALSNet:
    """A random ALSNet whose BatchNorm statistics fit EMG-scale input, so probabilities
    are not saturated at 0/1 (a plain random init on raw µV is)."""
    torch.manual_seed(seed)
    m = ALSNet(n_outputs=n_outputs)
    bns = [b for b in m.modules() if isinstance(b, torch.nn.BatchNorm1d)]
    for b in bns:
        b.reset_running_stats()
        b.momentum = None  # cumulative average: one pass sets the batch statistics
    m.train()
    with torch.no_grad():
        m(torch.from_numpy(np.stack([emg(0.3, MODEL_FS, s) for s in range(8)]))[:, None])
    for b in bns:
        b.momentum = 0.01
    return m.eval()


@pytest.fixture(scope="session")
def model_path(tmp_path_factory) -> Path:
    torch.set_num_threads(1)
    d = tmp_path_factory.mktemp("models")
    save_model(d / "m", fitted_model(), {"task": "als-vs-normal", "calibration": {"temperature": 2.0}})
    return d / "m.safetensors"


@pytest.fixture(scope="session")
def predictor(model_path) -> Predictor:
    return Predictor(model_path, backend="torch", threads=1)


def write_wfdb(folder: Path, name: str, x: np.ndarray, fs: float, gain: float = 10.0,
               offset: int = 0, invalid: slice | None = None, baseline: int = 0) -> Path:
    """A format-16 WFDB record (optionally with a byte offset, a baseline and −32768
    invalid samples)."""
    d = np.clip(np.round(x * gain) + baseline, -32767, 32767).astype("<i2")
    if invalid is not None:
        d[invalid] = -32768
    (folder / f"{name}.bin").write_bytes(b"\0" * offset + d.tobytes())
    (folder / f"{name}.hea").write_text(f"{name} 1 {fs:g} {len(d)}\n"
                                        f"{name}.bin 16+{offset} {gain:g}({baseline})/uV\n")
    return folder / f"{name}.hea"


def run_cli(capsys, *argv) -> tuple[int, str, str]:
    rc = main(list(map(str, argv)))
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_json_output_has_the_documented_fields(model_path, tmp_path, capsys):
    np.save(tmp_path / "a.npy", emg(2.5, MODEL_FS))
    rc, out, _ = run_cli(capsys, "predict", "--json", "--threads", 1, "--model", model_path, "--backend", "torch",
                         "--fs", MODEL_FS, tmp_path / "a.npy")
    assert rc == 0
    (r,) = json.loads(out)
    assert set(r) == FIELDS
    assert r["path"] == str(tmp_path / "a.npy") and r["error"] is None
    assert set(r["probabilities"]) == {"normal", "als"}
    assert sum(r["probabilities"].values()) == pytest.approx(1.0)
    assert r["label"] == ("als" if r["probabilities"]["als"] >= 0.5 else "normal")
    assert (r["n_windows"], r["n_windows_used"]) == (2, 2)
    assert r["schema_version"] == 1 and r["backend"] == "eager"  # --backend torch is the eager module
    assert r["model"] == {"name": str(model_path), "task": "als-vs-normal",
                          "weights_sha256": hashlib.sha256(model_path.read_bytes()).hexdigest(),
                          "members": 1, "decision_rule": "P(als) >= 0.5",   # a card without a fitted rule
                          "evaluation": None}                    # a test model's card has none


def test_one_bad_file_gives_exit_1_and_the_others_are_still_scored(model_path, tmp_path, capsys):
    np.save(tmp_path / "good.npy", emg(1.2, MODEL_FS))
    np.save(tmp_path / "short.npy", emg(0.5, MODEL_FS))
    files = [tmp_path / "good.npy", tmp_path / "missing.npy", tmp_path / "short.npy"]
    rc, out, err = run_cli(capsys, "predict", "--json", "--threads", 1, "--model", model_path,
                           "--fs", MODEL_FS, *files)
    assert rc == 1
    res = json.loads(out)
    assert [r["path"] for r in res] == list(map(str, files))
    assert res[0]["error"] is None and res[0]["label"] in ("als", "normal")
    for r in res[1:]:
        assert r["label"] is None and r["probabilities"] is None
        assert isinstance(r["error"], str) and "\n" not in r["error"]
    assert "shorter than one" in res[2]["error"]
    assert "Traceback" not in err


def test_when_every_recording_fails_predict_exits_3_naming_each(model_path, tmp_path, capsys):
    np.save(tmp_path / "short.npy", emg(0.5, MODEL_FS))
    (tmp_path / "empty").mkdir()
    rc, out, err = run_cli(capsys, "predict", "--threads", 1, "--model", model_path, "--fs", MODEL_FS,
                           tmp_path / "short.npy", tmp_path / "empty", tmp_path / "gone.npy")
    assert rc == 3
    lines = err.splitlines()
    assert len(lines) == 3 and all(ln.startswith("alsnet predict: error: ") for ln in lines)
    assert f"{tmp_path / 'empty'}: not a regular file but a folder: no recordings found (alsnet reads .hea" in lines[1]
    assert lines[2].endswith("gone.npy: file not found")
    assert "3 of 3 recording(s) could not be scored" in out


def test_human_output_prints_label_windows_and_disclaimer(model_path, tmp_path, capsys):
    np.save(tmp_path / "a.npy", emg(1.5, MODEL_FS))
    rc, out, _ = run_cli(capsys, "predict", "--threads", 1, "--model", model_path, "--fs", MODEL_FS,
                         tmp_path / "a.npy")
    assert rc == 0
    assert "P(als)=" in out and "1 windows used, 0 dropped" in out
    digest = hashlib.sha256(model_path.read_bytes()).hexdigest()[:12]
    assert f"model {model_path} (als-vs-normal, label by P(als) >= 0.5, weights sha256 {digest}), backend " in out
    assert "not a medical device" in out
    assert "\n  its card carries no subject-wise evaluation\n" in out     # a test model's card has none


def test_the_evaluation_line_counts_people_and_names_the_baseline_comparison():
    from alsnet.diagnosis.predict import evaluation_line

    old = {"task": "als-vs-normal", "evaluation": {"protocol_label": "subject-wise", "subject": {
        "n": 14, "accuracy": 13 / 14, "ci": {"accuracy": [0.79, 1.0]}}}}
    assert evaluation_line(old) == ("its card's evaluation (subject-wise): 13 of 14 people right, "
                                    "Wilson 95 % [69, 99]")
    ll = [{"difference": 0.07, "ci": [-0.011, 0.146]}, {"difference": 0.077, "ci": [0.023, 0.134]}]
    nested = {"task": "three-class", "evaluation": {
        "protocol_label": "nested subject-wise",
        "subject": {"n": 19, "accuracy": 0.9, "confusion_matrix": [[1, 2, 5], [0, 6, 0], [0, 0, 5]]},
        "seeds": [{"seed": 0}, {"seed": 1}],
        "against_baseline": [{"seed": s, "baseline": f"results/nested-three-class-rf-s{s}",
                              "subject_log_loss_difference": d} for s, d in zip((0, 1), ll)]}}
    line = evaluation_line(nested)
    assert line.startswith("its card's evaluation (nested subject-wise): 12 of 19 people right, Wilson 95 % [41, 81] "
                           "(normal 1 of 8, als 6 of 6, myopathy 5 of 5) (seed 0 of 2); subject log-loss minus the "
                           "nested-three-class-rf-s0 of the same folds: ")
    assert "+0.070 [-0.011, +0.146], +0.077 [+0.023, +0.134] (seeds 0, 1; above 0: the baseline is better)" in line
    from alsnet.diagnosis.predict import card_evaluation

    e = card_evaluation(nested)
    assert e["people_right"]["k"] == 12 and e["per_class"]["normal"]["k"] == 1 and e["seeds"] == [0, 1]
    assert e["against_baseline"][1] == {"seed": 1, "baseline": "nested-three-class-rf-s1",
                                        "subject_log_loss_difference": ll[1]}
    json.dumps(e)                                                  # what --json prints
    broken = {"task": "als-vs-normal", "evaluation": {"subject": {"n": "x", "accuracy": None}}}
    assert evaluation_line(broken).startswith("its card's evaluation cannot be read (TypeError")


def test_unbundled_model_name_is_a_clear_error(monkeypatch):
    from alsnet.model import pretrained

    monkeypatch.setattr(pretrained, "_bundled_stem", lambda name: None)
    with pytest.raises(AlsnetError, match="bundled model 'three-class' is not in this install"):
        pretrained.resolve_model("three-class")
    with pytest.raises(AlsnetError, match="unknown model 'nonsense'"):
        pretrained.resolve_model("nonsense")


@pytest.mark.parametrize("suffix", [".npy", ".csv", ".hea", ".wav"])
def test_a_3_s_recording_at_4_khz_is_resampled_into_3_windows(predictor, tmp_path, suffix):
    x = emg(3.0, 4000.0)
    if suffix == ".npy":
        np.save(tmp_path / "r.npy", x)
    elif suffix == ".csv":
        np.savetxt(tmp_path / "r.csv", x, fmt="%.4f")
    elif suffix == ".wav":
        from scipy.io import wavfile

        wavfile.write(tmp_path / "r.wav", 4000, np.round(x * 10).astype(np.int16))
    else:
        write_wfdb(tmp_path, "r", x, 4000.0)
    r = predictor.predict(tmp_path / f"r{suffix}", fs=4000.0 if suffix in (".npy", ".csv") else None,
                          scale=0.1)
    # 3 s at 4 kHz → 70313 samples at 23437.5 Hz → 3 whole windows.
    assert (r["n_windows"], r["n_windows_used"]) == (3, 3)
    assert sum(r["probabilities"].values()) == pytest.approx(1.0)


def test_array_api_needs_a_rate_and_reports_no_path(model_path):
    x = emg(1.1, 8000.0)
    r = predict(x, fs=8000.0, model=model_path, backend="torch")
    assert r["path"] is None and r["n_windows"] == 1 and r["error"] is None
    with pytest.raises(InputError, match="sampling rate"):
        predict(x, model=model_path)


class CheapEngine:
    """Stands in for the network where only the plumbing is tested (no 3.6 GFLOP per window)."""

    name = "cheap"

    def logits(self, x):
        return (np.std(x, axis=1, dtype=np.float64) / 20 - 1)[:, None].astype(np.float32)


@pytest.mark.parametrize("fs", [10_000.0, MODEL_FS])
def test_chunked_scoring_equals_whole_signal_scoring(predictor, tmp_path, fs, monkeypatch):
    x = emg(150.0, fs, seed=3)                       # 2.5 minutes
    write_wfdb(tmp_path, "long", x, fs, invalid=slice(int(40.2 * fs), int(40.3 * fs)))
    src = open_source(tmp_path / "long.hea")
    whole = resample_to_model_rate(src.read(0, src.n_samples), fs)
    ref = make_windows(whole)                        # drops the window holding the gap
    got = np.concatenate([w for _, w in iter_window_chunks(src, chunk_windows=7)])
    keep = np.isfinite(got).all(axis=1)
    assert len(got) == ref.n_windows and (~keep).sum() == ref.n_dropped == 1
    np.testing.assert_allclose(got[keep], ref.windows, rtol=0, atol=1e-4)
    monkeypatch.setattr(predictor, "engine", CheapEngine())
    monkeypatch.setattr(predictor, "chunk_windows", 7)
    calls = []
    r = predictor.predict(tmp_path / "long.hea", progress=lambda done, total: calls.append((done, total)))
    assert len(calls) == 22 and calls[-1] == (150, 150)       # one call per chunk of 7 windows
    expect = predictor.decide
    p_ref = 1 / (1 + np.exp(-CheapEngine().logits(ref.windows)[:, 0] / predictor.temperature))
    assert r["n_windows"] == 150 and r["n_windows_used"] == 149
    assert r["probabilities"]["als"] == pytest.approx(p_ref.mean(), abs=1e-6)
    assert r["label"] == expect(np.array([1 - p_ref.mean(), p_ref.mean()]))


def _u8_wav(path: Path, x: np.ndarray) -> None:
    from scipy.io import wavfile

    wavfile.write(path, 8000, np.clip(np.round(x / 4) + 128, 0, 255).astype(np.uint8))


def _unitless_wfdb(path: Path, x: np.ndarray) -> None:
    hea = write_wfdb(path.parent, path.stem, x / 1000, 8000.0, gain=200)  # signal line without units: mV
    hea.write_text(hea.read_text().replace("/uV", ""))


def _edf(path: Path, x: np.ndarray) -> None:
    import pyedflib

    h = pyedflib.highlevel.make_signal_header("EMG", dimension="mV", sample_frequency=8000,
                                              physical_min=-5, physical_max=5)
    pyedflib.highlevel.write_edf(str(path), [np.clip(x, -5000, 5000) / 1000], [h])


@pytest.mark.parametrize("name,write,kw", [("u8.wav", _u8_wav, {"scale": 4.0}),
                                           ("r.hea", _unitless_wfdb, {}),
                                           ("r.edf", _edf, {})])
def test_predict_streams_the_microvolts_that_training_reads(predictor, tmp_path, monkeypatch, name, write, kw):
    """Streamed scoring of a file = scoring the whole-file read_recording signal (the reader
    training uses): 8-bit WAV without its 128 offset, WFDB without units in mV, EDF in mV."""
    from alsnet.data.io import read_recording

    write(tmp_path / name, emg(3.0, 8000.0, seed=4))
    rec = read_recording(tmp_path / name, **kw)
    assert abs(np.nanmedian(rec.signal)) < 20  # µV: no DC offset, no 1000-fold unit error
    monkeypatch.setattr(predictor, "engine", CheapEngine())
    monkeypatch.setattr(predictor, "chunk_windows", 1)  # every window from its own range read
    streamed, whole = predictor.predict(tmp_path / name, **kw), predictor.predict(rec.signal, fs=rec.fs)
    assert streamed["n_windows"] == whole["n_windows"] == 3
    assert streamed["probabilities"] == whole["probabilities"]


def test_temperature_from_the_card_calibrates_probabilities(predictor, tmp_path):
    x = emg(1.0, MODEL_FS, seed=5)[:WINDOW_SAMPLES]
    with torch.no_grad():
        z = float(predictor.loaded.model(torch.from_numpy(x)[None, None])[0, 0])
    r = predictor.predict(x, fs=MODEL_FS)
    assert predictor.temperature == 2.0
    assert r["probabilities"]["als"] == pytest.approx(1 / (1 + np.exp(-z / 2.0)), abs=1e-5)


def test_predict_on_a_real_n2001_record(predictor, real_data_dir):
    hea = sorted(Path(real_data_dir).glob("N2001A01BB*.hea"))[0]
    r = predictor.predict(hea)
    assert r["error"] is None and r["label"] in ("als", "normal")
    assert sum(r["probabilities"].values()) == pytest.approx(1.0)
    assert r["n_windows"] == 11 and r["n_windows_used"] >= 1


@pytest.mark.realdata
@pytest.mark.parametrize("record", ["N2001A01BB01", "N2001A03BB55"])
def test_a_real_record_streams_the_windows_training_cuts(predictor, real_data_dir, monkeypatch, record):
    """Streamed windows of real N2001 records (one with 13405 invalid samples) = the windows
    make_windows cuts from read_recording, the path training takes; scores follow."""
    from alsnet.data.io import read_recording

    hea = Path(real_data_dir) / f"{record}.hea"
    ref = make_windows(read_recording(hea).signal)
    with open_source(hea) as src:
        got = np.concatenate([w for _, w in iter_window_chunks(src, chunk_windows=4)])
    keep = np.isfinite(got).all(axis=1)
    assert len(got) == ref.n_windows == 11 and int((~keep).sum()) == ref.n_dropped
    np.testing.assert_array_equal(got[keep], ref.windows)
    monkeypatch.setattr(predictor, "engine", CheapEngine())
    streamed = predictor.predict(hea)
    p_ref = 1 / (1 + np.exp(-CheapEngine().logits(ref.windows)[:, 0] / predictor.temperature))
    assert streamed["n_windows_used"] == 11 - ref.n_dropped
    assert streamed["probabilities"]["als"] == pytest.approx(p_ref.mean(), abs=1e-7)


def test_the_printed_model_line_names_the_rule_the_label_comes_from(tmp_path, capsys):
    """A fitted offset moves the label away from the plain arg-max: predict says which rule it used."""
    save_model(tmp_path / "m", [fitted_model(seed=1), fitted_model(seed=2)],
               {"task": "als-vs-normal", "decision_rule": {"offsets": [0.0, 0.55], "fitted_on": "test"}})
    np.save(tmp_path / "r.npy", emg(2.0, MODEL_FS))
    assert main(["predict", str(tmp_path / "r.npy"), "--fs", str(MODEL_FS), "--model",
                 str(tmp_path / "m.safetensors")]) == 0
    out = capsys.readouterr().out
    assert "2-network ensemble, label by P(als) >= 0.3659" in out
    d = Predictor(tmp_path / "m.safetensors").describe()["model"]
    assert (d["members"], d["decision_rule"]) == (2, "P(als) >= 0.3659")
