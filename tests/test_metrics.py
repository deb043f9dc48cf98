"""Metrics, aggregation, subject bootstrap and calibration on hand-made inputs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import balanced_accuracy_score, f1_score, roc_auc_score

from alsnet.data.labels import get_task
from alsnet.errors import AlsnetError
from alsnet.evaluation.calibration import (
    apply_temperature,
    expected_calibration_error,
    fit_temperature,
    reliability_curve,
)
from alsnet.evaluation.metrics import _weighted_auc, aggregate, bootstrap_counts, decide, evaluate, evaluate_by_fold

BIN = get_task("als-vs-normal")
THREE = get_task("three-class")


def frame(rows, task=BIN) -> pd.DataFrame:
    """rows: (subject, record, true class code, probabilities of the task classes)."""
    out = []
    for k, (subj, rec, y, p) in enumerate(rows):
        out.append({"record": rec, "subject": subj, "window": k, "start": k * 23437,
                    "label": task.classes[y], "y_true": y, "fold": "f0",
                    **{f"p_{c}": v for c, v in zip(task.classes, p)}})
    return pd.DataFrame(out)


def binrow(subj, rec, y, p_als):
    return (subj, rec, y, (1 - p_als, p_als))


def random_frame(task, n_subj=12, n_rec=3, n_win=5, seed=0, noise=1.0):
    rng = np.random.default_rng(seed)
    k = len(task.classes)
    rows = []
    for s in range(n_subj):
        y = s % k
        for r in range(n_rec):
            for _ in range(n_win):
                z = rng.normal(0, noise, k)
                z[y] += 1.0
                p = np.exp(z) / np.exp(z).sum()
                rows.append((f"s{s}", f"s{s}r{r}", y, tuple(p)))
    return frame(rows, task)


def test_recording_is_mean_of_windows_and_subject_mean_of_recordings():
    # Subject A: recording A1 with 3 windows (mean 0.6), A2 with 1 window (0.2).
    pred = frame([binrow("A", "A1", 1, 0.9), binrow("A", "A1", 1, 0.3), binrow("A", "A1", 1, 0.6),
                  binrow("A", "A2", 1, 0.2), binrow("N", "N1", 0, 0.1)])
    rec = aggregate(pred, "recording", BIN).set_index("unit")
    assert rec.loc["A1", "p_als"] == pytest.approx(0.6)
    assert rec.loc["A1", "n_windows"] == 3
    sub = aggregate(pred, "subject", BIN).set_index("unit")
    # Each recording counts once: (0.6 + 0.2) / 2, not the window mean 0.5.
    assert sub.loc["A", "p_als"] == pytest.approx(0.4)
    assert sub.loc["A", "p_normal"] == pytest.approx(0.6)
    assert len(aggregate(pred, "window", BIN)) == 5


def test_two_subject_case_gives_known_answers_at_every_level():
    pred = frame([binrow("A", "A1", 1, 0.9), binrow("A", "A1", 1, 0.3), binrow("A", "A1", 1, 0.6),
                  binrow("A", "A2", 1, 0.2), binrow("N", "N1", 0, 0.1), binrow("N", "N1", 0, 0.5)])
    m = evaluate(pred, BIN, n_boot=200, seed=1)
    w = m["window"]
    # windows: ALS 0.9, 0.3, 0.6, 0.2 -> 2 of 4 detected; normal 0.1, 0.5 -> 1 of 2 correct
    # (0.5 itself is called ALS: the rule is P >= 0.5).
    assert w["confusion_matrix"] == [[1, 1], [2, 2]]
    assert w["sensitivity"] == pytest.approx(0.5)
    assert w["specificity"] == pytest.approx(0.5)
    assert w["balanced_accuracy"] == pytest.approx(0.5)
    assert w["f1"] == pytest.approx(2 * 2 / (2 * 2 + 1 + 2))
    # recordings: A1 0.6 (hit), A2 0.2 (miss), N1 0.3 (correct).
    r = m["recording"]
    assert r["confusion_matrix"] == [[1, 0], [1, 1]]
    assert r["sensitivity"] == pytest.approx(0.5) and r["specificity"] == pytest.approx(1.0)
    # subjects: A 0.4 -> missed, N 0.3 -> correct; yet ranked right, so AUC 1.
    s = m["subject"]
    assert s["confusion_matrix"] == [[1, 0], [1, 0]]
    assert s["sensitivity"] == 0 and s["specificity"] == 1 and s["roc_auc"] == 1
    assert s["f1"] is None or s["f1"] == 0  # no predicted and one missed positive: F1 = 0
    # One subject per class: every replicate is the original sample, so the CI is a point.
    assert s["ci"]["balanced_accuracy"] == [pytest.approx(0.5), pytest.approx(0.5)]
    assert w["ci"]["sensitivity"] == [pytest.approx(0.5), pytest.approx(0.5)]


def test_perfect_predictions_give_ones_and_degenerate_intervals():
    pred = random_frame(BIN, noise=0.0)
    m = evaluate(pred, BIN, n_boot=100)
    for lv in ("window", "recording", "subject"):
        for key in ("accuracy", "sensitivity", "specificity", "balanced_accuracy", "f1", "roc_auc"):
            assert m[lv][key] == 1.0
        for key in ("balanced_accuracy", "sensitivity", "specificity", "roc_auc"):
            assert m[lv]["ci"][key] == [1.0, 1.0]
    assert m["subject"]["n"] == 12 and m["window"]["n"] == 180


def test_binary_metrics_match_scikit_learn_and_intervals_bracket_them():
    pred = random_frame(BIN, n_subj=16, noise=1.5, seed=3)
    m = evaluate(pred, BIN, n_boot=300, seed=0)
    for lv in ("window", "recording", "subject"):
        u = aggregate(pred, lv, BIN)
        y, p = u["y_true"].to_numpy(), u[["p_normal", "p_als"]].to_numpy()
        yhat = (p[:, 1] >= 0.5).astype(int)
        assert m[lv]["balanced_accuracy"] == pytest.approx(balanced_accuracy_score(y, yhat))
        assert m[lv]["f1"] == pytest.approx(f1_score(y, yhat))
        assert m[lv]["roc_auc"] == pytest.approx(roc_auc_score(y, p[:, 1]))
        lo, hi = m[lv]["ci"]["balanced_accuracy"]
        assert lo <= m[lv]["balanced_accuracy"] <= hi
    # A window bootstrap would be narrower; the subject bootstrap must not collapse.
    lo, hi = m["window"]["ci"]["balanced_accuracy"]
    assert hi - lo > 0.02


def test_three_class_specificity_counts_any_non_als_prediction_of_non_als():
    # normal predicted myopathy is still "not ALS" -> counts for specificity.
    rows = [("n1", "n1a", 0, (0.2, 0.1, 0.7)), ("n2", "n2a", 0, (0.8, 0.1, 0.1)),
            ("a1", "a1a", 1, (0.1, 0.8, 0.1)), ("a2", "a2a", 1, (0.6, 0.3, 0.1)),
            ("m1", "m1a", 2, (0.1, 0.2, 0.7)), ("m2", "m2a", 2, (0.2, 0.7, 0.1))]
    m = evaluate(frame(rows, THREE), THREE, n_boot=0)["window"]
    assert m["confusion_matrix"] == [[1, 0, 1], [1, 1, 0], [0, 1, 1]]
    assert m["sensitivity"] == pytest.approx(0.5)
    assert m["specificity"] == pytest.approx(3 / 4)  # n1, n2, m1 non-ALS; m2 called ALS
    assert m["balanced_accuracy"] == pytest.approx(0.5)
    assert m["recall"] == {"normal": 0.5, "als": 0.5, "myopathy": 0.5}
    y = [0, 0, 1, 1, 2, 2]
    yhat = decide(np.array([r[3] for r in rows]), THREE)
    assert m["f1"] == pytest.approx(f1_score(y, yhat, average="macro"))
    p = np.array([r[3] for r in rows])
    assert m["roc_auc"] == pytest.approx(roc_auc_score(y, p, multi_class="ovr", average="macro"))
    assert m["ci"]["roc_auc"] == [None, None]


def test_three_class_bootstrap_and_auc_match_scikit_learn():
    pred = random_frame(THREE, n_subj=15, noise=1.0, seed=5)
    m = evaluate(pred, THREE, n_boot=200)
    u = aggregate(pred, "window", THREE)
    p = u[["p_normal", "p_als", "p_myopathy"]].to_numpy()
    assert m["window"]["roc_auc"] == pytest.approx(
        roc_auc_score(u["y_true"], p, multi_class="ovr", average="macro"))
    lo, hi = m["window"]["ci"]["roc_auc"]
    assert lo <= m["window"]["roc_auc"] <= hi


def test_single_class_fold_leaves_undefined_metrics_null():
    pred = frame([binrow("A", "A1", 1, 0.9), binrow("A", "A1", 1, 0.2)])
    m = evaluate(pred, BIN, n_boot=50)["window"]
    assert m["sensitivity"] == 0.5
    assert m["specificity"] is None and m["balanced_accuracy"] is None and m["roc_auc"] is None
    assert m["ci"]["specificity"] == [None, None]


def test_als_vs_rest_uses_p_als_as_positive():
    task = get_task("als-vs-rest")
    rows = [("r1", "r1a", 0, (0.9, 0.1)), ("a1", "a1a", 1, (0.4, 0.6))]
    m = evaluate(frame(rows, task), task, n_boot=0)["window"]
    assert m["sensitivity"] == 1 and m["specificity"] == 1 and m["roc_auc"] == 1


def test_bootstrap_draws_every_class_in_every_replicate():
    classes = pd.Series([0, 0, 0, 1, 1], index=list("abcde"))
    c = bootstrap_counts(classes, 500, seed=7)
    assert c.shape == (500, 5)
    assert (c[:, :3].sum(1) == 3).all() and (c[:, 3:].sum(1) == 2).all()
    assert np.array_equal(c, bootstrap_counts(classes, 500, seed=7))


def test_weighted_auc_matches_scikit_learn_with_ties_and_weights():
    rng = np.random.default_rng(0)
    s = np.round(rng.random(300), 1)  # many ties
    y = rng.random(300) < 0.4
    w = rng.integers(0, 4, 300).astype(float)
    assert _weighted_auc(s, y, w[None])[0] == pytest.approx(roc_auc_score(y, s, sample_weight=w))


def test_evaluate_rejects_missing_columns_and_reports_per_fold():
    pred = random_frame(BIN)
    with pytest.raises(AlsnetError, match="p_als"):
        evaluate(pred.drop(columns="p_als"), BIN)
    pred["fold"] = np.where(pred["subject"].isin(["s0", "s1"]), "a", "b")
    folds = evaluate_by_fold(pred, BIN)
    assert set(folds) == {"a", "b"} and folds["a"]["subject"]["n"] == 2


# --------------------------------------------------------------------------- calibration

def overconfident(n=4000, k=1, scale=4.0, seed=0):
    rng = np.random.default_rng(seed)
    if k == 1:
        z = rng.normal(0, 2, n)
        y = (rng.random(n) < 1 / (1 + np.exp(-z))).astype(int)
        return z * scale, y
    z = rng.normal(0, 1.5, (n, k))
    p = np.exp(z) / np.exp(z).sum(1, keepdims=True)
    y = np.array([rng.choice(k, p=row) for row in p])
    return z * scale, y


@pytest.mark.parametrize("k", [1, 3])
def test_temperature_scaling_recovers_the_scale_and_lowers_ece(k):
    z, y = overconfident(k=k)
    t = fit_temperature(z if k > 1 else z[:, None], y)
    assert t == pytest.approx(4.0, rel=0.2)
    before = expected_calibration_error(apply_temperature(z, 1.0), y)
    after = expected_calibration_error(apply_temperature(z, t), y)
    assert after < before / 2
    assert apply_temperature(z, t).shape == (len(y), 2 if k == 1 else k)


def test_reliability_curve_of_a_calibrated_binary_set_follows_the_diagonal():
    rng = np.random.default_rng(1)
    p = rng.random(20000)
    y = (rng.random(20000) < p).astype(int)
    conf, freq, count = reliability_curve(p, y, n_bins=10)
    assert len(conf) == 10 and count.sum() == 20000
    assert np.abs(conf - freq).max() < 0.05
    assert expected_calibration_error(np.c_[1 - p, p], y, n_bins=10) < 0.02
