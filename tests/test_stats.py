"""Intervals and paired tests give the textbook answers on hand-made inputs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from alsnet.data.labels import get_task
from alsnet.evaluation.calibration import Calibrator, fit_calibrator
from alsnet.evaluation.decision import DecisionRule
from alsnet.evaluation.metrics import evaluate
from alsnet.evaluation.selection import subject_log_loss
from alsnet.evaluation.stats import (
    clopper_pearson_interval,
    mcnemar_exact,
    paired_bootstrap,
    proportion,
    subject_proportions,
    wilson_interval,
)


def test_wilson_interval_of_ten_out_of_ten_is_not_a_point():
    lo, hi = wilson_interval(10, 10)
    assert lo == pytest.approx(10 / (10 + 1.959964 ** 2), abs=1e-6)   # 0.7225: n / (n + z^2)
    assert hi == 1.0


def test_wilson_interval_matches_the_textbook_value():
    # Newcombe (1998), Statistics in Medicine 17:857, table I: 81 of 263 -> 0.2553 to 0.3662
    lo, hi = wilson_interval(81, 263)
    assert (round(lo, 4), round(hi, 4)) == (0.2553, 0.3662)


def test_clopper_pearson_of_all_or_nothing_has_the_closed_form():
    assert clopper_pearson_interval(10, 10)[0] == pytest.approx(0.025 ** (1 / 10))   # 0.6915
    assert clopper_pearson_interval(0, 10) == pytest.approx((0.0, 1 - 0.025 ** (1 / 10)))


def test_a_proportion_records_how_many_subjects_it_rests_on():
    p = proportion(13, 14)
    assert p["k"] == 13 and p["n"] == 14 and p["value"] == pytest.approx(13 / 14)
    assert p["wilson"][0] < 13 / 14 < p["wilson"][1] and p["clopper_pearson"][0] < p["wilson"][0]
    assert proportion(0, 0)["wilson"] is None


def test_exact_mcnemar_is_the_binomial_test_of_the_discordant_pairs():
    a = np.array([1, 1, 1, 1, 1, 1, 0, 1], bool)
    b = np.array([0, 0, 0, 0, 0, 1, 0, 1], bool)
    r = mcnemar_exact(a, b)
    assert (r["a_right_b_wrong"], r["a_wrong_b_right"]) == (5, 0)
    assert r["p_value"] == pytest.approx(2 * 0.5 ** 5)                  # 0.0625
    assert mcnemar_exact(a, a)["p_value"] == 1.0


def _pred(p_als: dict[str, float]) -> pd.DataFrame:
    rows = []
    for s, p in p_als.items():
        for w in range(3):
            rows.append({"record": f"{s}R", "subject": s, "window": w, "start": 0, "label": "",
                         "y_true": int(s[0] == "A"), "fold": "f", "p_normal": 1 - p, "p_als": p})
    return pd.DataFrame(rows)


def test_paired_bootstrap_of_identical_models_is_exactly_zero():
    pred = _pred({"A01": 0.7, "A02": 0.4, "C01": 0.2, "C02": 0.6})
    task = get_task("als-vs-normal")

    def ll(df):
        return subject_log_loss(df[["p_normal", "p_als"]].to_numpy(), df["y_true"].to_numpy(), df["subject"].to_numpy())

    r = paired_bootstrap(pred, pred, ll, n_boot=200)
    assert r["difference"] == 0 and r["ci"] == [0.0, 0.0] and r["n_subjects"] == 4
    del task


def test_paired_bootstrap_sees_a_model_better_on_every_subject():
    good = _pred({"A01": 0.9, "A02": 0.8, "A03": 0.85, "C01": 0.1, "C02": 0.2, "C03": 0.15})
    bad = _pred({"A01": 0.6, "A02": 0.55, "A03": 0.6, "C01": 0.4, "C02": 0.45, "C03": 0.4})

    def ll(df):
        return subject_log_loss(df[["p_normal", "p_als"]].to_numpy(), df["y_true"].to_numpy(), df["subject"].to_numpy())

    r = paired_bootstrap(good, bad, ll, n_boot=300)
    assert r["difference"] < 0 and r["ci"][1] < 0 and r["p_two_sided"] < 0.01


def test_a_bootstrap_replicate_is_the_drawn_subjects_rows_each_draw_its_own_subject():
    from alsnet.evaluation.stats import _resampled, _rows_by_subject

    pred = _pred({"A01": 0.7, "C01": 0.2, "A02": 0.4}).sample(frac=1.0, random_state=0)   # rows interleaved
    drawn = ["A02", "C01", "A02"]
    rep = _resampled(pred, _rows_by_subject(pred), drawn)
    want = pd.concat([pred[pred.subject == s].assign(subject=f"{s}#{i}") for i, s in enumerate(drawn)])
    pd.testing.assert_frame_equal(rep, want)
    assert list(rep.groupby("subject", sort=False).size()) == [3, 3, 3]
    assert set(pred.subject) == {"A01", "C01", "A02"}          # the table itself is not changed


def _random_pred(rng, task, n_subjects: int) -> pd.DataFrame:
    """Windows of random subjects (each of one class, 1-6 recordings of 1-5 windows) in two
    folds, rows shuffled, with random probabilities."""
    k = len(task.classes)
    rows = []
    for j in range(n_subjects):
        y = j % k if j < k else int(rng.integers(0, k))
        s = f"{'CAM'[y]}{j:02d}"
        for r in range(int(rng.integers(1, 7))):
            for w in range(int(rng.integers(1, 6))):
                p = rng.dirichlet(np.ones(k))
                rows.append({"record": f"{s}R{r}", "subject": s, "window": w, "y_true": y, "fold": f"f{j % 2}",
                             **{f"p_{c}": p[i] for i, c in enumerate(task.classes)}})
    return pd.DataFrame(rows).sample(frac=1.0, random_state=int(rng.integers(1 << 30))).reset_index(drop=True)


@pytest.mark.parametrize("task_name", ["als-vs-normal", "three-class"])
def test_each_subject_statistic_gives_a_replicate_bit_for_bit_from_its_subjects(task_name):
    """from_subjects(summary, drawn) == the statistic of the drawn subjects' rows, exactly."""
    from alsnet.evaluation.stats import _resampled, _rows_by_subject
    from alsnet.reporting.nested import SubjectLogLoss, WindowBalancedAccuracy

    task = get_task(task_name)
    rng = np.random.default_rng(7)
    k = len(task.classes)
    rules = {"f0": DecisionRule(offsets=tuple(rng.normal(0, 0.5, k))), "f1": DecisionRule()}
    for _ in range(25):
        pred = _random_pred(rng, task, int(rng.integers(k, 12)))
        subjects = sorted(set(pred["subject"]))
        rows = _rows_by_subject(pred)
        for stat in (SubjectLogLoss(task), WindowBalancedAccuracy(task, rules)):
            summary = stat.summarise(pred)
            for _ in range(5):
                drawn = list(rng.choice(subjects, size=len(subjects)))
                assert stat.from_subjects(summary, drawn) == stat(_resampled(pred, rows, drawn))


def test_the_paired_bootstrap_from_subjects_equals_the_one_from_rows():
    """The fast path (both statistics per subject) and the table path give the same dict."""
    from alsnet.reporting.nested import SubjectLogLoss, WindowBalancedAccuracy

    task = get_task("three-class")
    rng = np.random.default_rng(3)
    a = _random_pred(rng, task, 9)
    b = a.assign(**{f"p_{c}": rng.dirichlet(np.ones(3), len(a))[:, i] for i, c in enumerate(task.classes)})
    rule_a, rule_b = {"f0": DecisionRule(offsets=(0.0, 0.4, -0.2)), "f1": DecisionRule()}, None
    for fast_a, fast_b in ((SubjectLogLoss(task), None),
                           (WindowBalancedAccuracy(task, rule_a), WindowBalancedAccuracy(task, rule_b))):
        fast = paired_bootstrap(a, b, fast_a, statistic_b=fast_b, n_boot=150, seed=5)
        slow = paired_bootstrap(a, b, lambda d, s=fast_a: s(d), n_boot=150, seed=5,
                                statistic_b=None if fast_b is None else (lambda d, s=fast_b: s(d)))
        assert fast == slow and fast["ci"][0] < fast["ci"][1]


def test_subject_proportions_decide_each_fold_by_its_own_rule():
    pred = _pred({"A01": 0.3, "C01": 0.1})
    pred.loc[pred.subject == "C01", "fold"] = "g"
    task = get_task("als-vs-normal")
    plain = subject_proportions(pred, task)
    assert plain["all"]["k"] == 1 and plain["als"]["k"] == 0
    rules = {"f": DecisionRule((0.0, 1.0)), "g": DecisionRule()}          # f: P(ALS) >= 0.269
    shifted = subject_proportions(pred, task, rules)
    assert shifted["all"]["k"] == 2 and shifted["subjects"] == {"A01": True, "C01": True}
    m = evaluate(pred, task, n_boot=0, rules=rules)
    assert m["subject"]["confusion_matrix"] == [[1, 0], [0, 1]]
    # the probabilities scored are untouched by the rule
    assert m["window"]["roc_auc"] == evaluate(pred, task, n_boot=0)["window"]["roc_auc"]


def test_a_binary_rule_is_a_threshold_and_zero_offsets_are_the_papers_rule():
    p = np.array([[0.5, 0.5], [0.6, 0.4], [0.3, 0.7]])
    assert DecisionRule().decide(p).tolist() == [1, 0, 1]                 # P(ALS) >= 0.5, ties to ALS
    assert DecisionRule((0.0, np.log(1.5))).threshold == pytest.approx(0.4)
    assert DecisionRule((0.0, np.log(1.5))).decide(p).tolist() == [1, 1, 1]
    three = np.array([[0.4, 0.35, 0.25]])
    assert DecisionRule((0.0, 0.2, 0.0)).decide(three).tolist() == [1]


def test_affine_calibration_recovers_a_known_scale_and_bias():
    rng = np.random.default_rng(0)
    z = rng.normal(size=20000) * 3
    y = (rng.random(len(z)) < 1 / (1 + np.exp(-(0.5 * z - 1.0)))).astype(int)
    cal = fit_calibrator(z, y, "affine")
    assert cal.scale[0] == pytest.approx(0.5, abs=0.05) and cal.bias[0] == pytest.approx(-1.0, abs=0.1)
    # an old card holding only a temperature still means sigmoid(z / T)
    old = Calibrator.from_dict({"temperature": 2.0})
    assert old.apply(np.array([2.0]))[0, 1] == pytest.approx(1 / (1 + np.exp(-1.0)))


def test_every_evaluation_gives_subject_proportions_with_intervals_that_are_not_a_point():
    pred = _pred({"A01": 0.9, "A02": 0.8, "C01": 0.1, "C02": 0.2})   # every subject right
    m = evaluate(pred, get_task("als-vs-normal"), n_boot=200)
    acc = m["subject"]["proportions"]["accuracy"]
    assert (acc["k"], acc["n"]) == (4, 4)
    assert acc["wilson"][1] == 1.0 and acc["wilson"][0] == pytest.approx(4 / (4 + 1.959964 ** 2), abs=1e-6)
    assert m["subject"]["ci"]["accuracy"] == [1.0, 1.0]                   # what the bootstrap would have said
    assert m["subject"]["proportions"]["recall"]["als"]["n"] == 2
