"""Hand-crafted window features and the classical baselines on synthetic signals."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from alsnet.errors import AlsnetError
from alsnet.evaluation.baselines import BASELINES, fit_predict, fit_predict_features, make_baseline
from alsnet.evaluation.features import DB4_HI, DB4_LO, dwt, feature_names, window_features

FS = 23437.5
T = 4096


def sine(freq, amp, n=T, phase=0.0):
    return amp * np.sin(2 * np.pi * freq * np.arange(n) / FS + phase)


def feats(x):
    return dict(zip(feature_names(), window_features(np.atleast_2d(x), FS)[0]))


def test_features_have_one_finite_column_per_name():
    rng = np.random.default_rng(0)
    x = np.vstack([rng.normal(0, 50, (5, T)), np.zeros((1, T)), np.full((1, T), 7.0)]).astype(np.float32)
    f = window_features(x, FS)
    assert f.shape == (7, len(feature_names()))
    assert len(set(feature_names())) == len(feature_names())
    assert np.isfinite(f).all()


def test_amplitude_features_of_a_sine_match_theory():
    amp, freq = 100.0, 500.0
    f = feats(sine(freq, amp) + 30.0)  # the DC offset is removed first
    assert f["rms"] == pytest.approx(amp / np.sqrt(2), rel=1e-2)
    assert f["mav"] == pytest.approx(2 * amp / np.pi, rel=1e-2)
    assert f["ptp"] == pytest.approx(2 * amp, rel=1e-2)
    assert f["zc"] == pytest.approx(2 * freq, rel=0.02)     # crossings per second
    assert f["ssc"] == pytest.approx(2 * freq, rel=0.02)    # one extremum per half period
    assert f["kurtosis"] == pytest.approx(-1.5, abs=0.02)   # excess kurtosis of a sine
    assert abs(f["skewness"]) < 0.02
    assert f["mnf"] == pytest.approx(freq, rel=0.05)
    assert f["mdf"] == pytest.approx(freq, abs=30)
    assert f["rel_250_500"] + f["rel_500_1000"] > 0.95


def test_crossings_below_the_noise_threshold_are_ignored():
    f = feats(sine(500.0, 0.5))  # 0.5 µV: steps far below 5 µV
    assert f["zc"] == 0 and f["ssc"] == 0


def test_db4_filter_bank_is_orthonormal_and_preserves_energy():
    assert DB4_LO.sum() == pytest.approx(np.sqrt(2))
    assert (DB4_LO ** 2).sum() == pytest.approx(1.0)
    assert np.dot(DB4_LO, DB4_HI) == pytest.approx(0.0, abs=1e-12)
    for m in (1, 2, 3):
        assert np.dot(DB4_LO[:-2 * m], DB4_LO[2 * m:]) == pytest.approx(0.0, abs=1e-9)
    x = np.random.default_rng(1).normal(size=(2, T))
    coefs = dwt(x)
    energy = sum((c ** 2).sum(-1) for c in coefs)
    assert energy == pytest.approx((x ** 2).sum(-1), rel=1e-6)


def test_wavelet_energy_of_a_high_tone_sits_in_the_finest_band():
    f = feats(sine(8000.0, 100.0))
    assert f["d1_relE"] > 0.8
    f = feats(sine(60.0, 100.0))
    assert f["a6_relE"] > 0.8


def test_bad_windows_are_refused():
    with pytest.raises(AlsnetError, match="NaN"):
        window_features(np.full((2, T), np.nan), FS)
    with pytest.raises(AlsnetError, match="shape"):
        window_features(np.zeros((2, 3, 4)), FS)


def separable(n_per_class, n_classes, seed):
    """Class 0 noise, class 1 noise + a 300-Hz tone, class 2 louder noise."""
    rng = np.random.default_rng(seed)
    xs, ys = [], []
    for c in range(n_classes):
        x = rng.normal(0, 20, (n_per_class, T))
        if c == 1:
            x += sine(300.0, 150.0, phase=rng.random() * 6)
        if c == 2:
            x *= 6
        xs.append(x)
        ys.append(np.full(n_per_class, c))
    return np.vstack(xs), np.concatenate(ys)


@pytest.mark.parametrize("name", BASELINES)
@pytest.mark.parametrize("n_classes", [2, 3])
def test_baselines_return_probabilities_and_beat_chance(name, n_classes):
    xtr, ytr = separable(30, n_classes, seed=0)
    xte, yte = separable(10, n_classes, seed=1)
    p = fit_predict(name, xtr, ytr, xte, FS, seed=0, n_classes=n_classes)
    assert p.shape == (len(yte), n_classes)
    assert np.allclose(p.sum(1), 1.0)
    assert (p.argmax(1) == yte).mean() > 1 / n_classes + 0.3


def test_a_class_missing_from_training_gets_probability_zero():
    xtr, ytr = separable(20, 2, seed=0)
    f = window_features(xtr, FS)
    p = fit_predict_features("knn", f, ytr, f[:5], n_classes=3)
    assert p.shape == (5, 3) and (p[:, 2] == 0).all()


def test_unknown_baseline_is_an_alsnet_error():
    with pytest.raises(AlsnetError, match="unknown baseline"):
        make_baseline("xgboost")
    with pytest.raises(AlsnetError, match="unknown baseline"):
        fit_predict("mlp", np.zeros((2, T)), np.array([0, 1]), np.zeros((1, T)), FS)


def test_fitted_baseline_can_be_pickled():
    xtr, ytr = separable(15, 2, seed=0)
    model = make_baseline("svm", seed=0).fit(window_features(xtr, FS), ytr)
    again = pickle.loads(pickle.dumps(model))
    f = window_features(xtr[:3], FS)
    assert np.allclose(again.predict_proba(f), model.predict_proba(f))
