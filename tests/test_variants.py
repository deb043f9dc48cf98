"""Declared variants of the training recipe: what they change, and that they are named."""

from __future__ import annotations

import numpy as np
import pytest

from alsnet.errors import AlsnetError
from alsnet.training.lightning import EpochSeededSampler, WindowDataset, class_subject_weights
from alsnet.training.recipe import Recipe


def test_gain_polarity_only_scales_and_flips_and_is_seeded_by_epoch_and_window():
    x = np.random.default_rng(0).normal(size=(6, 100)).astype(np.float32)
    ds = WindowDataset(x, np.zeros(6, int), seed=3, augment="gain-polarity")
    ratios = []
    for i in range(6):
        a, _ = ds[i]
        r = a[0].numpy() / x[i]
        assert np.allclose(r, r[0], rtol=1e-5)                      # one factor per window
        assert 0.5 - 1e-6 <= abs(r[0]) <= 2 + 1e-6
        ratios.append(r[0])
        assert np.array_equal(ds[i][0].numpy(), a.numpy())           # same epoch, same draw
    assert {np.sign(r) for r in ratios} == {-1.0, 1.0}
    ds.epoch = 1
    assert not np.array_equal(ds[0][0].numpy(), WindowDataset(x, np.zeros(6, int), seed=3,
                                                              augment="gain-polarity")[0][0].numpy())
    assert np.array_equal(WindowDataset(x, np.zeros(6, int))[0][0][0].numpy(), x[0])  # paper: untouched


def test_class_subject_balanced_sampling_gives_each_class_and_subject_equal_mass():
    y = np.array([0] * 90 + [1] * 10)
    subject = np.array(["C1"] * 80 + ["C2"] * 10 + ["A1"] * 5 + ["A2"] * 5)
    w = class_subject_weights(y, subject)
    assert w[y == 0].sum() == pytest.approx(0.5) and w[subject == "C2"].sum() == pytest.approx(0.25)
    ds = WindowDataset(np.zeros((100, 4), np.float32), y)
    s = EpochSeededSampler(ds, seed=0, weights=w)
    drawn = np.concatenate([list(iter(s)) for s.epoch in range(200)])
    assert (y[drawn] == 1).mean() == pytest.approx(0.5, abs=0.02)
    assert (subject[drawn] == "C2").mean() == pytest.approx(0.25, abs=0.02)
    s.set_epoch(7)
    assert list(iter(s)) == list(iter(s))                             # resumable: (seed, epoch) decide


def test_variants_are_named_deviations_and_unknown_ones_refused():
    r = Recipe(augment="gain-polarity", sampling="class-subject-balanced")
    dev = " ".join(r.deviations())
    assert "augment=gain-polarity" in dev and "sampling=class-subject-balanced" in dev
    assert Recipe().deviations() == []
    with pytest.raises(AlsnetError, match="augment"):
        Recipe(augment="mixup")
