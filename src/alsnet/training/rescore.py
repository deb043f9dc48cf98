"""Rescoring a finished run under a decision rule fitted on each fold's validation subjects."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pandas as pd

from alsnet.errors import AlsnetError
from alsnet.evaluation.calibration import apply_temperature
from alsnet.evaluation.decision import RULE, DecisionRule, fit_class_offsets
from alsnet.evaluation.metrics import aggregate, evaluate, proba_columns
from alsnet.training.runs import read_csv, read_json, run_task


def rescore_run(run_dir: str | Path, *, n_boot: int = 1000, seed: int = 0) -> tuple[dict, pd.DataFrame, dict]:
    """Metrics of a cross-validated run under offsets fitted on each fold's validation windows.

    Returns ``(metrics, predictions, offsets_by_fold)``. The probabilities are the ones the
    folds wrote (never shifted); each fold's decisions use its own fitted rule; each fold's
    ``calibration.npz`` holds the validation logits of the same model (validation subjects come from the training side).
    """
    run = Path(run_dir)
    task = run_task(read_json(run / "config.json"), run / "config.json")
    pcols = proba_columns(task)
    frames, offsets, rules = [], {}, {}
    folds = sorted(p for p in (run / "folds").glob("*") if p.is_dir())
    if not folds:
        raise AlsnetError(f"{run}: no folds/ to rescore")
    for fd in folds:
        npz = fd / "calibration.npz"
        if not npz.is_file():
            raise AlsnetError(f"{fd}: no calibration.npz (an unfinished fold, or not an ALSNet run)")
        try:
            with np.load(npz) as z:
                val_logits, val_y = z["val_logits"], z["val_y"]
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as e:
            raise AlsnetError(f"{npz}: unreadable validation logits ({type(e).__name__}: {e})") from None
        try:
            b = fit_class_offsets(apply_temperature(val_logits, 1.0), val_y)
        except AlsnetError as e:
            raise AlsnetError(f"{npz}: {e}") from None
        pred = read_csv(fd / "predictions.csv", ("record", "subject", "y_true", "fold", *pcols))
        frames.append(pred)
        rules[fd.name] = DecisionRule(tuple(float(v) for v in b), fitted_on=f"{fd.name} validation windows")
        offsets[fd.name] = {c: float(v) for c, v in zip(task.classes, b)}
    pred = pd.concat(frames, ignore_index=True)
    pred["fold"] = pred["fold"].astype(str)
    m = evaluate(pred, task, n_boot=n_boot, seed=seed, rules=rules)
    m["decision_rule"] = RULE
    src = read_json(run / "metrics.json") if (run / "metrics.json").is_file() else {}
    for key in ("task", "model", "protocol", "protocol_label", "shares_recordings_between_train_and_test",
                "deviations", "window_settings", "seed"):
        if key in src:
            m[key] = src[key]
    m["source_run"] = str(run)
    return m, pred, offsets


def nested_subject_rule(run_dir: str | Path, ws=None) -> pd.DataFrame:  # noqa: ANN001 - a WindowSet
    """Subject decisions of a finished nested run under three rules, for comparing them.

    - ``default``: P(positive) >= 0.5, or the most probable class;
    - ``window``: the run's own rule, offsets fitted on the pooled inner out-of-fold *windows*;
    - ``subject``: offsets fitted the same way (:func:`fit_class_offsets`) on the pooled inner
      out-of-fold *subjects* (each subject's mean of its recordings' mean probabilities);
    - ``chosen``: whichever of the three the inner CV prefers, cross-fitted: each rule fitted on
      two inner folds' out-of-fold predictions decides the third fold's subjects, and the rule
      with the highest subject balanced accuracy over all inner folds' held-out subjects wins
      (ties in the order default, window, subject), then refitted on all of them (``rule_chosen``).

    Each outer fold's chosen candidate and calibration (its ``selection.json``) are kept; the
    outer test subjects' probabilities are the run's own ``predictions.csv``; no outer test
    label enters any rule. Returns one row per outer test subject: ``fold, subject, y_true``,
    the decision under each rule (``pred_default``, ``pred_window``, ``pred_subject``,
    ``pred_chosen``), the rule chosen (``rule_chosen``) and each rule's held-out subject
    balanced accuracy (``held_out_<rule>``) for its fold, and the subject rule's offsets
    (``offsets_subject``). ``ws``: the run's windows, if loaded.
    """
    from alsnet.data.dataset import load_windows
    from alsnet.model.outputs import Calibrator
    from alsnet.training.fold import predictions_frame
    from alsnet.training.nested import load_inner, read_config, run_folds

    run = Path(run_dir)
    _, exp = read_config(run)
    task = run_task(read_json(run / "config.json"), run / "config.json")
    if ws is None:
        ws = load_windows(exp.data, task, invalid=exp.invalid, read=exp.read, progress=False)
    pcols = proba_columns(task)
    rows = []
    for fold in run_folds(exp, ws):
        d = run / fold.name
        if not (d / "predictions.csv").is_file():
            raise AlsnetError("outer fold not finished (no predictions.csv)", d)
        sel = read_json(d / "selection.json")
        try:
            cal = Calibrator.from_dict(sel["calibrator"])
            c = int(sel["chosen_candidate"])
            own = DecisionRule.from_dict(sel["decision_rule"])  # the run's window rule, not fitted again
        except (KeyError, TypeError, ValueError) as e:
            raise AlsnetError(f"not a finished fold's choices ({type(e).__name__}: {e})",
                              d / "selection.json") from None
        oof, _ = load_inner(ws, fold, d)
        frames = [predictions_frame(ws, val, cal.apply(f.logits[c]), task, fold.name)
                  for f, (_, _, val) in zip(oof, fold.inner)]
        try:
            rules = _fit_rules(pd.concat(frames, ignore_index=True), task, window=own)
            held = _held_out_rule_scores(frames, task)
        except AlsnetError as e:
            raise AlsnetError(f"cannot fit the decision rules: {e}", d) from None
        chosen = max(RULES, key=lambda r: (held[r], -RULES.index(r)))
        test = aggregate(read_csv(d / "predictions.csv", ("record", "subject", "y_true", "fold", *pcols)),
                         "subject", task)
        p = test[pcols].to_numpy(float)
        out = test[["subject", "y_true"]].assign(fold=fold.name, rule_chosen=chosen,
                                                 offsets_subject=[list(rules["subject"].offsets)] * len(test),
                                                 **{f"held_out_{r}": held[r] for r in RULES})
        for name, rule in rules.items():
            out[f"pred_{name}"] = rule.decide(p)
        out["pred_chosen"] = rules[chosen].decide(p)
        rows.append(out)
    return pd.concat(rows, ignore_index=True)


#: The decision rules :func:`nested_subject_rule` compares, in their order of preference on ties.
RULES = ("default", "window", "subject")


def _fit_rules(pred: pd.DataFrame, task, window: DecisionRule | None = None) -> dict[str, DecisionRule]:  # noqa: ANN001
    """The three rules fitted on window predictions ``pred`` (labels of both classes needed);
    ``window``: a window rule already fitted on them, kept instead of fitting it again."""
    pcols = proba_columns(task)
    rules = {"default": DecisionRule()}
    fit = {"subject": aggregate(pred, "subject", task)}
    if window is None:
        fit["window"] = pred
    else:
        rules["window"] = window
    for name, units in fit.items():
        b = fit_class_offsets(units[pcols].to_numpy(float), units["y_true"].to_numpy(int))
        rules[name] = DecisionRule(tuple(float(v) for v in b), fitted_on=f"pooled inner out-of-fold {name}s")
    return rules


def _held_out_rule_scores(frames: list[pd.DataFrame], task) -> dict[str, float]:  # noqa: ANN001 - a Task
    """Subject balanced accuracy of each rule fitted on the other inner folds, over every inner fold."""
    pcols = proba_columns(task)
    y, pred = [], {r: [] for r in RULES}
    for j, held in enumerate(frames):
        rules = _fit_rules(pd.concat([f for i, f in enumerate(frames) if i != j], ignore_index=True), task)
        sub = aggregate(held, "subject", task)
        y.append(sub["y_true"].to_numpy(int))
        for r in RULES:
            pred[r].append(rules[r].decide(sub[pcols].to_numpy(float)))
    y = np.concatenate(y)
    return {r: float(np.mean([(np.concatenate(pred[r])[y == k] == k).mean() for k in np.unique(y)])) for r in RULES}


__all__ = ["nested_subject_rule", "rescore_run"]
