"""ONNX export: parity with PyTorch, the CLI, and predict --backend onnx."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from alsnet.cli.main import main
from alsnet.data.windows import MODEL_FS
from alsnet.diagnosis.predict import Predictor
from alsnet.engine.onnx import INPUT_NAME, export_onnx
from alsnet.model.checkpoint import load_model, save_model
from alsnet.model.outputs import probabilities
from test_predict import emg, fitted_model

ort = pytest.importorskip("onnxruntime")


@pytest.fixture(scope="module", params=[("als-vs-normal", 1, 1.7), ("three-class", 3, 0.8)],
                ids=["binary", "three-class"])
def saved(request, tmp_path_factory):
    torch.set_num_threads(1)
    task, n_out, temp = request.param
    d = tmp_path_factory.mktemp("export")
    save_model(d / "m", fitted_model(n_out, seed=n_out), {"task": task, "calibration": {"temperature": temp}})
    return d / "m.safetensors"


def test_onnx_matches_pytorch_within_1e_4_on_several_lengths_and_batches(saved, tmp_path):
    out = tmp_path / "m.onnx"
    summary = export_onnx(saved, out)
    assert summary["max_abs_diff"] <= 1e-4
    loaded = load_model(saved)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    sess = ort.InferenceSession(str(out), sess_options=opts, providers=["CPUExecutionProvider"])
    assert [o.name for o in sess.get_outputs()] == ["probabilities", "logits"]
    for batch, n in [(1, 23437), (3, 4000), (2, 45), (5, 777)]:
        x = np.stack([emg(n / MODEL_FS + 0.01, MODEL_FS, seed=s)[:n] for s in range(batch)])
        proba, logits = sess.run(None, {INPUT_NAME: x})
        with torch.no_grad():
            z = loaded.model(torch.from_numpy(x)[:, None]).numpy()
        ref = probabilities(z, loaded.temperature)
        assert proba.shape == ref.shape == (batch, len(loaded.classes))
        assert np.abs(proba - ref).max() <= 1e-4, (batch, n)
        assert np.allclose(proba.sum(axis=1), 1, atol=1e-5)
        assert np.abs(logits - z).max() <= 1e-3 * max(1.0, np.abs(z).max())


def test_export_cli_writes_the_file(saved, tmp_path, capsys):
    out = tmp_path / "sub" / "cli.onnx"
    assert main(["export", "--model", str(saved), "--onnx", str(out)]) == 0
    assert out.is_file() and "max |P_onnx - P_torch|" in capsys.readouterr().out


def test_predict_with_onnx_backend_agrees_with_torch_and_caches_the_graph(saved, tmp_path, monkeypatch):
    monkeypatch.setenv("ALSNET_CACHE_DIR", str(tmp_path / "cache"))
    np.save(tmp_path / "r.npy", emg(2.2, 10_000.0))
    r_onnx = Predictor(saved, backend="onnx", threads=1).predict(tmp_path / "r.npy", fs=10_000.0)
    r_torch = Predictor(saved, backend="torch", threads=1).predict(tmp_path / "r.npy", fs=10_000.0)
    assert r_onnx["label"] == r_torch["label"]
    for c, p in r_torch["probabilities"].items():
        assert r_onnx["probabilities"][c] == pytest.approx(p, abs=1e-4)
    assert len(list((tmp_path / "cache" / "onnx").glob("*.onnx"))) == 1
