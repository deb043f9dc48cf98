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


def test_the_onnx_graph_applies_the_cards_affine_calibration_as_predict_does(tmp_path):
    import torch

    from alsnet.engine.onnx import INPUT_NAME, export_onnx, session
    from alsnet.model.checkpoint import save_model
    from alsnet.model.network import ALSNet

    torch.manual_seed(0)
    save_model(tmp_path / "m", ALSNet().eval(),
               {"task": "als-vs-normal", "calibration": {"method": "affine", "scale": [0.7], "bias": [-0.4]}})
    s = export_onnx(tmp_path / "m.safetensors", tmp_path / "m.onnx")
    assert s["max_abs_diff"] < 1e-5 and s["calibration"]["bias"] == [-0.4]
    x = np.random.default_rng(0).normal(scale=80, size=(3, 2000)).astype(np.float32)
    got = session(str(tmp_path / "m.onnx"), None).run(["probabilities"], {INPUT_NAME: x})[0]
    want = Predictor(str(tmp_path / "m.safetensors"), backend="eager").probabilities(x)
    np.testing.assert_allclose(got, want, atol=1e-5)


def test_an_ensemble_exports_as_one_graph_scoring_what_predict_scores(tmp_path):
    """The nested procedure's model is an ensemble: one graph whose probabilities are the mean
    of the members' calibrated probabilities (as predict scores it), whose logits are each
    member's, and whose metadata carries the card's decision rule."""
    import json

    import onnx

    from alsnet.engine.onnx import export_onnx, session
    from alsnet.model.network import ALSNet

    members = []
    for seed in (0, 1, 2):
        torch.manual_seed(seed)
        members.append(ALSNet(n_outputs=3).eval())
    rule = {"offsets": [0.0, 0.4, -0.2], "fitted_on": "hand-made"}
    save_model(tmp_path / "e", members, {"task": "three-class", "decision_rule": rule,
                                         "calibration": {"method": "temperature", "scale": [0.5] * 3,
                                                         "bias": [0.0] * 3}})
    s = export_onnx(tmp_path / "e.safetensors", tmp_path / "e.onnx")
    assert s["members"] == 3 and s["max_abs_diff"] < 1e-5
    x = np.random.default_rng(1).normal(scale=80, size=(4, 3000)).astype(np.float32)
    p, z = session(str(tmp_path / "e.onnx"), None).run(["probabilities", "logits"], {INPUT_NAME: x})
    assert z.shape == (4, 3, 3)
    pred = Predictor(str(tmp_path / "e.safetensors"), backend="eager")
    np.testing.assert_allclose(p, pred.probabilities(x), atol=1e-5)
    with torch.no_grad():   # not the first member's alone: the members differ
        first = pred.calibrator.apply(members[0](torch.from_numpy(x)[:, None]).numpy())
    assert np.abs(p - first).max() > 1e-3
    meta = {m.key: m.value for m in onnx.load(str(tmp_path / "e.onnx")).metadata_props}
    assert json.loads(meta["decision_rule"]) == rule and json.loads(meta["members"]) == 3

