"""--class-weight balanced: known weights, the weighted loss, and a run that records it."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from alsnet.data.labels import get_task
from alsnet.errors import AlsnetError
from alsnet.training.fold import balanced_class_weights
from alsnet.training.lightning import ALSNetModule, Recipe


def test_balanced_weights_are_n_over_k_times_class_count():
    np.testing.assert_allclose(balanced_class_weights(np.array([0, 0, 0, 1]), 2), [4 / 6, 4 / 2])
    np.testing.assert_allclose(balanced_class_weights(np.array([0, 1, 2, 2]), 3), [4 / 3, 4 / 3, 4 / 6])
    with pytest.raises(AlsnetError, match="all 3 classes"):
        balanced_class_weights(np.array([0, 1, 1]), 3)
    with pytest.raises(AlsnetError, match="'balanced' or None"):
        Recipe(class_weight="inverse")


def test_binary_weighted_loss_is_the_weighted_mean_of_per_window_losses():
    task = get_task("als-vs-normal")
    logits = torch.tensor([[0.3], [-1.2], [2.0], [0.1]])
    y = torch.tensor([0, 0, 0, 1])
    per = torch.nn.functional.binary_cross_entropy_with_logits(logits[:, 0], y.float(), reduction="none")
    plain = ALSNetModule(task, Recipe())._loss(logits, y)
    assert plain.item() == pytest.approx(per.mean().item())
    w = torch.tensor([4 / 6, 2.0])
    weighted = ALSNetModule(task, Recipe(class_weight="balanced"), class_weights=w)._loss(logits, y)
    expect = (per * w[y]).sum() / w[y].sum()
    assert weighted.item() == pytest.approx(expect.item())
    # the one ALS window now counts as much as the three normal ones together
    assert weighted.item() == pytest.approx(0.5 * per[:3].mean().item() + 0.5 * per[3].item())


def test_three_class_weighted_loss_matches_cross_entropy_with_weights():
    task = get_task("three-class")
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(7, 3, generator=g)
    y = torch.tensor([0, 0, 0, 0, 1, 2, 2])
    w = torch.tensor(balanced_class_weights(y.numpy(), 3))
    got = ALSNetModule(task, Recipe(class_weight="balanced"), class_weights=w)._loss(logits, y)
    assert got.item() == pytest.approx(torch.nn.functional.cross_entropy(logits, y, weight=w).item())
    with pytest.raises(ValueError, match="3 class weights"):
        ALSNetModule(task, Recipe(), class_weights=torch.ones(2))


def test_a_class_weighted_run_names_the_deviation(tmp_path):
    from alsnet.cli.main import main
    from alsnet.data.simulate import simulate_dataset

    data = tmp_path / "sim"
    simulate_dataset(data, n_subjects={"als": 2, "normal": 4}, recordings_per_subject=1, duration_s=3.2, seed=2)
    out = tmp_path / "run"
    assert main(["train", "--data", str(data), "--out", str(out), "--protocol", "paper", "--max-epochs", "1",
                 "--batch-size", "16", "--train-crop", "0.05", "--n-boot", "20", "--class-weight", "balanced",
                 "--quiet"]) == 0
    m = json.loads((out / "metrics.json").read_text())
    assert any(d.startswith("class_weight=balanced") for d in m["deviations"])
    card = json.loads((out / "model.json").read_text())
    assert card["recipe"]["class_weight"] == "balanced"
