"""Decision rules fitted on validation subjects: known answers on hand-made inputs."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from alsnet.data.labels import get_task
from alsnet.errors import AlsnetError
from alsnet.evaluation.decision import apply_class_offsets, fit_class_offsets
from alsnet.training.rescore import rescore_run


def _binary(p_pos):
    p = np.asarray(p_pos, float)
    return np.stack([1 - p, p], 1)


def test_no_shift_when_the_default_rule_is_already_perfect():
    proba = _binary([0.1, 0.2, 0.8, 0.9])
    b = fit_class_offsets(proba, [0, 0, 1, 1])
    np.testing.assert_array_equal(b, [0.0, 0.0])


def test_binary_offset_is_the_smallest_shift_that_separates_the_classes():
    # Positives at P = 0.3, negatives at 0.1 (log-odds -0.847 and -2.197):
    # the rule needs log(0.3/0.7) + b >= 0 > log(0.1/0.9) + b, i.e. b in [0.847, 2.197).
    proba = _binary([0.1] * 6 + [0.3] * 2)
    y = [0] * 6 + [1] * 2
    b = fit_class_offsets(proba, y)
    assert b[0] == 0.0 and b[1] == pytest.approx(0.85)
    shifted = apply_class_offsets(proba, b)
    np.testing.assert_allclose(shifted.sum(1), 1.0)
    np.testing.assert_array_equal(shifted[:, 1] >= 0.5, np.asarray(y) == 1)


def test_three_class_offsets_recover_a_minority_class():
    # Class 2 windows have P = (0.5, 0.1, 0.4): argmax says 0; an offset on class 2
    # of more than log(0.5/0.4) = 0.223 (and less than log(0.7/0.2) = 1.25, so that the
    # class-0 windows at (0.7, 0.1, 0.2) stay) fixes them.
    proba = np.array([[0.7, 0.1, 0.2]] * 4 + [[0.1, 0.8, 0.1]] * 2 + [[0.5, 0.1, 0.4]] * 2)
    y = np.array([0] * 4 + [1] * 2 + [2] * 2)
    b = fit_class_offsets(proba, y)
    assert b[0] == 0.0 and b[1] == 0.0 and b[2] == pytest.approx(0.25)
    assert (apply_class_offsets(proba, b).argmax(1) == y).all()


def test_bad_inputs_are_refused_with_a_clear_error():
    with pytest.raises(AlsnetError, match="single class"):
        fit_class_offsets(_binary([0.2, 0.3]), [1, 1])
    with pytest.raises(AlsnetError, match="probabilities"):
        fit_class_offsets(np.ones(3), [0, 1, 0])


def _fold(run, name, subject, val_logits, val_y, test_p, test_y):
    fd = run / "folds" / name
    fd.mkdir(parents=True)
    np.savez(fd / "calibration.npz", val_logits=np.asarray(val_logits, np.float32)[:, None],
             val_y=np.asarray(val_y), test_logits=np.zeros((len(test_p), 1)), test_y=np.asarray(test_y),
             temperature=1.0)
    lab = np.where(np.asarray(test_y) == 1, "als", "normal")
    pd.DataFrame({"record": [f"{subject}R{i // 2}" for i in range(len(test_p))], "subject": subject,
                  "window": range(len(test_p)), "start": 0, "label": lab, "y_true": test_y, "fold": name,
                  "p_normal": 1 - np.asarray(test_p), "p_als": test_p}).to_csv(fd / "predictions.csv", index=False)


def test_rescore_run_applies_each_folds_own_rule(tmp_path):
    """Two hand-made LOSO folds: validation says 'shift towards ALS', and the ALS subject
    whose windows sit at P(ALS) = 0.3 is then called ALS; the control at 0.1 stays normal."""
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"task": get_task("als-vs-normal").to_dict()}))
    logit = lambda p: np.log(p / (1 - p))  # noqa: E731
    val = [logit(0.1)] * 6 + [logit(0.3)] * 2
    _fold(run, "subject-A01", "A01", val, [0] * 6 + [1] * 2, [0.3] * 4, [1] * 4)
    _fold(run, "subject-C01", "C01", val, [0] * 6 + [1] * 2, [0.1] * 4, [0] * 4)
    m, pred, offsets = rescore_run(run, n_boot=20)
    assert offsets["subject-A01"]["als"] == pytest.approx(0.85)
    assert m["subject"]["confusion_matrix"] == [[1, 0], [0, 1]]
    assert m["window"]["balanced_accuracy"] == 1.0
    assert "validation" in m["decision_rule"]
    assert m["subject"]["decision"]["subject-A01"] == "P(als) >= 0.2994"
    # the probabilities scored are the ones the folds wrote, not shifted ones
    assert sorted(set(pred["p_als"].round(6))) == [0.1, 0.3]


def test_rescore_refuses_a_run_without_validation_logits(tmp_path):
    run = tmp_path / "run"
    (run / "folds" / "f1").mkdir(parents=True)
    (run / "config.json").write_text(json.dumps({"task": get_task("als-vs-normal").to_dict()}))
    with pytest.raises(AlsnetError, match="calibration.npz"):
        rescore_run(run)


def test_rescore_names_a_corrupt_calibration_file(tmp_path):
    run = tmp_path / "run"
    (run / "folds" / "subject-A01").mkdir(parents=True)
    (run / "config.json").write_text(json.dumps({"task": get_task("als-vs-normal").to_dict()}))
    bad = run / "folds" / "subject-A01" / "calibration.npz"
    bad.write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(AlsnetError, match="calibration.npz: unreadable validation logits"):
        rescore_run(run)
