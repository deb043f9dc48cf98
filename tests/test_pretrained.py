"""Bundled models: they load (SHA-256 checked), their cards say what the issue asks, and
they score a recording from a fresh install."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from alsnet.data.labels import get_task
from alsnet.data.windows import MODEL_FS, WINDOW_SAMPLES
from alsnet.model.pretrained import BUNDLED, list_models, resolve_model


def _stem_or_skip(name):
    info = {m["name"]: m for m in list_models()}[name]
    if not info["available"]:
        pytest.skip(f"bundled model {name!r} is not built yet (python scripts/build_pretrained.py --task {name})")
    return Path(info["path"]).with_suffix("")


@pytest.mark.parametrize("name", list(BUNDLED))
def test_bundled_model_card_states_data_protocol_metrics_use_and_limits(name):
    stem = _stem_or_skip(name)
    card = json.loads(stem.with_suffix(".json").read_text())
    task = get_task(BUNDLED[name]["task"])
    assert card["task"] == task.name
    assert list(card["classes"]) == list(task.classes)
    assert card["window"]["window_samples"] == WINDOW_SAMPLES and card["window"]["model_fs"] == MODEL_FS
    assert "N2001" in card["training_data"]["dataset"]
    assert len(card["training_data"]["subjects"]) >= 14
    ev = card["evaluation"]
    assert ev is not None and ev["protocol"] in ("loso", "group-kfold")
    for level in ("window", "recording", "subject"):
        assert set(ev[level]["ci"]) >= {"balanced_accuracy", "roc_auc"}
    assert "not a medical device" in card["intended_use"].lower()
    text = " ".join(card["limitations"]).lower()
    assert "biceps" in text and "age" in text and "one centre" in text
    assert card["rebuild"].startswith("python scripts/build_pretrained.py")
    # the card's subject-wise metrics come from a run of the recipe this model was built with
    assert ev["deviations"] == card["deviations"]
    assert 0.05 < card["calibration"]["temperature"] < 20


@pytest.mark.parametrize("name", list(BUNDLED))
def test_bundled_model_loads_with_its_digest_and_scores_a_recording(name, tmp_path):
    _stem_or_skip(name)
    from alsnet import predict

    loaded = resolve_model(name)
    rng = np.random.default_rng(0)
    x = (rng.standard_normal(3 * WINDOW_SAMPLES) * 50).astype(np.float32)
    out = predict(x, fs=MODEL_FS, model=name)
    assert out["error"] is None and out["n_windows"] == 3
    probs = out["probabilities"]
    assert set(probs) == set(loaded.card["classes"])
    assert abs(sum(probs.values()) - 1) < 1e-6 and all(0 <= p <= 1 for p in probs.values())


def test_a_tampered_bundled_model_is_refused(tmp_path):
    stem = _stem_or_skip("als-vs-normal")
    from alsnet.errors import CheckpointError
    from alsnet.model.checkpoint import load_model

    w = tmp_path / "m.safetensors"
    data = bytearray(stem.with_suffix(".safetensors").read_bytes())
    data[-1] ^= 0xFF
    w.write_bytes(bytes(data))
    (tmp_path / "m.json").write_text(stem.with_suffix(".json").read_text())
    with pytest.raises(CheckpointError, match="m.safetensors"):
        load_model(tmp_path / "m")


def test_build_refuses_an_evaluation_run_of_another_recipe(tmp_path):
    """Before any training: metrics of a differently trained run must not go on a card."""
    import importlib.util

    from alsnet.errors import AlsnetError

    spec = importlib.util.spec_from_file_location(
        "build_pretrained", Path(__file__).resolve().parents[1] / "scripts" / "build_pretrained.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    run = tmp_path / "cv"
    run.mkdir()
    (run / "metrics.json").write_text(json.dumps({
        "task": "als-vs-normal", "protocol": "loso", "protocol_label": "subject-wise",
        "window": {}, "recording": {}, "subject": {}, "deviations": ["max_epochs=6 (paper 100)"]}))
    with pytest.raises(AlsnetError, match="another recipe"):
        mod.main(["--data", str(tmp_path / "no-data"), "--task", "als-vs-normal", "--max-epochs", "6",
                  "--class-weight", "balanced", "--evaluation", str(run), "--out", str(tmp_path / "m")])
