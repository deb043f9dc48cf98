"""Saved models: round trip, and every corrupt or foreign checkpoint is a CheckpointError."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import pytest
import torch

from alsnet.errors import AlsnetError, CheckpointError
from alsnet.model.checkpoint import load_model, save_model, sha256_file
from alsnet.model.network import ALSNet


@pytest.fixture(scope="module")
def saved(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    return save_model(tmp_path_factory.mktemp("ckpt") / "base", ALSNet(1, 1), {"task": "als-vs-normal"})


def _variant(saved: Path, tmp_path: Path, name: str, card=None, weights=None) -> Path:
    """A copy of the saved model with its card and/or weights changed; returns the weights path."""
    w = tmp_path / f"{name}.safetensors"
    w.write_bytes(saved.read_bytes())
    c = json.loads(saved.with_suffix(".json").read_text())
    if weights is not None:
        weights(w, c)
    if card is not None:
        c = card(c)
    (tmp_path / f"{name}.json").write_text(c if isinstance(c, str) else json.dumps(c))
    return w


def _rewrite(state: dict):
    """Weights replaced by ``state``, with the card's digest updated to match."""
    from safetensors.torch import save_file

    def f(w: Path, card: dict):
        save_file({k: v.contiguous() for k, v in state.items()}, str(w))
        card["weights_sha256"] = sha256_file(w)
    return f


def test_a_saved_model_loads_back_with_the_same_weights_and_card(saved):
    m = load_model(saved)
    assert m.classes == ("normal", "als") and m.temperature == 1.0
    assert m.card["weights_sha256"] == sha256_file(saved)
    torch.manual_seed(0)
    ref = ALSNet(1, 1).state_dict()
    for k, v in m.model.state_dict().items():
        assert torch.equal(v, ref[k]), k
    assert load_model(saved.with_suffix(".json")).path == str(saved)
    assert load_model(saved.with_suffix("")).path == str(saved)


def test_saving_the_same_weights_again_gives_the_same_file_and_digest(tmp_path):
    torch.manual_seed(0)
    net = ALSNet(1, 1)
    blobs = {save_model(tmp_path / f"m{i}", net, {"task": "als-vs-normal"}).read_bytes() for i in range(6)}
    assert len(blobs) == 1
    shas = {load_model(tmp_path / f"m{i}").card["weights_sha256"] for i in range(6)}
    assert len(shas) == 1


def test_dotted_model_names_keep_their_dots(tmp_path):
    w = save_model(tmp_path / "als.v2", ALSNet(1, 1), {"task": "als-vs-normal"})
    assert w.name == "als.v2.safetensors" and (tmp_path / "als.v2.json").is_file()
    assert load_model(tmp_path / "als.v2").path == str(w)


def _truncated(w: Path, card: dict):
    w.write_bytes(w.read_bytes()[:1000])
    card["weights_sha256"] = sha256_file(w)


def _truncated_keep_digest(w: Path, card: dict):
    w.write_bytes(w.read_bytes()[:1000])


def _pickle_inside(w: Path, card: dict):
    w.write_bytes(pickle.dumps({"state_dict": 1}))
    card["weights_sha256"] = sha256_file(w)


def _nan(w: Path, card: dict):
    from safetensors.torch import load_file

    state = load_file(str(w))
    k = next(k for k, v in state.items() if v.is_floating_point())
    state[k] = torch.full_like(state[k], float("nan"))
    _rewrite(state)(w, card)


CASES = {
    # id: (card change, weights change, file the message names, message regex)
    "truncated-safetensors": (None, _truncated, ".safetensors", r"not a readable safetensors file"),
    "digest-mismatch": (None, _truncated_keep_digest, ".safetensors",
                        r"weights do not match the SHA-256 in the model card"),
    "pickle-renamed-safetensors": (None, _pickle_inside, ".safetensors", r"not a readable safetensors file"),
    "wrong-architecture-shapes": (None, _rewrite(ALSNet(1, 3).state_dict()), ".safetensors",
                                  r"tensor 'out\.weight' has shape \(3, 64\), the card's architecture "
                                  r"needs \(1, 64\)"),
    "foreign-network": (None, _rewrite({"fc.weight": torch.zeros(3, 3)}), ".safetensors",
                        r"weights do not fit ALSNet: missing \d+ tensor\(s\).*another network's"),
    "nan-weights": (None, _nan, ".safetensors", r"holds NaN or infinite values"),
    "wrong-label-map": (lambda c: {**c, "classes": ["als", "normal"]}, None, ".json",
                        r"label map \['als', 'normal'\] does not match task 'als-vs-normal' \['normal', 'als'\]"),
    "label-map-not-a-list": (lambda c: {**c, "classes": 5}, None, ".json", r"label map 5 does not match"),
    "unknown-task": (lambda c: {**c, "task": "als-vs-everything"}, None, ".json",
                     r"unknown task 'als-vs-everything'"),
    "outputs-do-not-fit-task": (lambda c: {**c, "architecture": {**c["architecture"], "n_outputs": 3}},
                                None, ".json", r"does not fit task 'als-vs-normal'"),
    "architecture-not-a-dict": (lambda c: {**c, "architecture": "ALSNet"}, None, ".json",
                                r"architecture ALSNet does not fit"),
    "channels-not-a-number": (lambda c: {**c, "architecture": {**c["architecture"], "n_chans": "x"}},
                              None, ".json", r"n_chans 'x' is not a channel count"),
    "other-window-settings": (lambda c: {**c, "window": {"model_fs": 4000.0}}, None, ".json",
                              r"model was trained on windows"),
    "bad-calibration": (lambda c: {**c, "calibration": {"temperature": -1}}, None, ".json",
                        r"lacks a positive temperature"),
    "card-not-json": (lambda c: "{not json", None, ".json", r"model card is not valid JSON"),
    "card-not-an-object": (lambda c: "[1, 2]", None, ".json", r"lacks 'task' or 'architecture'"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_bad_checkpoint_is_a_checkpoint_error_naming_the_file(saved, tmp_path, case):
    card, weights, suffix, problem = CASES[case]
    w = _variant(saved, tmp_path, case, card, weights)
    with pytest.raises(CheckpointError, match=problem) as info:
        load_model(w)
    assert info.value.path == str(w.with_suffix(suffix))


def test_a_truncated_file_without_the_digest_check_is_still_refused(saved, tmp_path):
    w = _variant(saved, tmp_path, "t", None, _truncated_keep_digest)
    with pytest.raises(CheckpointError, match="not a readable safetensors file"):
        load_model(w, check_digest=False)


@pytest.mark.parametrize("suffix", [".pt", ".pth", ".ckpt", ".pkl"])
def test_a_pickled_checkpoint_is_refused_before_it_is_opened(tmp_path, suffix):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    path = tmp_path / f"model{suffix}"
    path.write_bytes(pickle.dumps(Evil()))
    with pytest.raises(CheckpointError, match=r"pickled checkpoints are not loaded \(unpickling runs code\)"):
        load_model(path)
    assert not marker.exists()


def test_missing_files_are_named(saved, tmp_path):
    with pytest.raises(CheckpointError, match=r"nothere\.safetensors: model file not found"):
        load_model(tmp_path / "nothere.safetensors")
    (tmp_path / "lonely.safetensors").write_bytes(saved.read_bytes())
    with pytest.raises(CheckpointError, match=r"lonely\.json: model file not found"):
        load_model(tmp_path / "lonely.safetensors")
    assert issubclass(CheckpointError, AlsnetError)


def test_an_ensemble_model_is_one_file_and_predicts_the_mean_of_its_members(tmp_path):
    import numpy as np

    from alsnet.diagnosis.predict import Predictor
    from alsnet.model.checkpoint import load_model, save_model
    from alsnet.model.network import ALSNet
    from alsnet.model.outputs import probabilities

    torch.manual_seed(0)
    members = [ALSNet().eval() for _ in range(3)]
    card = {"task": "als-vs-normal", "calibration": {"method": "none", "scale": [1.0], "bias": [0.0]}}
    save_model(tmp_path / "ens", members, card)
    loaded = load_model(tmp_path / "ens")
    assert len(loaded.members) == 3 and loaded.card["architecture"]["members"] == 3
    x = np.random.default_rng(1).normal(scale=50, size=(4, 3000)).astype(np.float32)
    with torch.no_grad():
        want = np.mean([probabilities(m(torch.from_numpy(x)[:, None]).numpy()) for m in members], axis=0)
    got = Predictor(loaded, backend="eager").probabilities(x)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_an_ensemble_file_with_a_stray_tensor_is_refused(tmp_path):
    from safetensors.torch import load_file, save_file

    from alsnet.errors import CheckpointError
    from alsnet.model.checkpoint import load_model, save_model
    from alsnet.model.network import ALSNet

    save_model(tmp_path / "ens", [ALSNet(), ALSNet()], {"task": "als-vs-normal"})
    state = load_file(str(tmp_path / "ens.safetensors"))
    state["member7.features.0.weight"] = state["member0.features.0.weight"].clone()
    save_file(state, str(tmp_path / "ens.safetensors"))
    with pytest.raises(CheckpointError, match="of no member"):
        load_model(tmp_path / "ens", check_digest=False)
