"""Figures and the HTML report, from small synthetic run folders."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from alsnet.cli.main import main
from alsnet.data.labels import get_task
from alsnet.errors import AlsnetError
from alsnet.evaluation.metrics import evaluate
from alsnet.reporting.figures import write_run_figures
from alsnet.reporting.html import write_report
from alsnet.training.splits import HONEST_LABEL, LEAKY_LABEL, describe


def make_run(root, name="run", *, task="als-vs-normal", protocol="paper", model="alsnet",
             history=True, calibration=True, seed=0):
    """A run folder as the training orchestrator writes it, with made-up predictions."""
    t = get_task(task)
    rng = np.random.default_rng(seed)
    rows = []
    k = len(t.classes)
    for s in range(3 * k):
        y = s % k
        for r in range(2):
            for w in range(4):
                z = rng.normal(0, 1, k)
                z[y] += 1.5
                p = np.exp(z) / np.exp(z).sum()
                rows.append({"record": f"S{s}R{r}", "subject": f"S{s}", "window": w, "start": w * 23437,
                             "label": t.classes[y], "y_true": y, "fold": f"fold-{s % 2}",
                             **{f"p_{c}": v for c, v in zip(t.classes, p)}})
    pred = pd.DataFrame(rows)
    d = root / name
    d.mkdir(parents=True)
    pred.to_csv(d / "predictions.csv", index=False)
    config = {"task": t.to_dict(), "model": model, "split": describe(protocol, seed=seed, folds=2),
              "window": {"model_fs": 23437.5}, "seed": seed, "versions": {"alsnet": "0.1.0"},
              "data": "/data/N2001"}
    (d / "config.json").write_text(json.dumps(config))
    metrics = evaluate(pred, t, n_boot=50)
    metrics.update({"task": task, "protocol": protocol, "model": model,
                    "protocol_label": config["split"]["label"]})
    (d / "metrics.json").write_text(json.dumps(metrics))
    if history:
        h = pd.DataFrame([{"fold": f"fold-{f}", "epoch": e, "train_loss": 1 / (e + 1),
                           "val_loss": 1.2 / (e + 1), "val_accuracy": 0.5 + e / 20, "lr": 1e-3}
                          for f in range(2) for e in range(5)])
        h.to_csv(d / "history.csv", index=False)
    if calibration:
        z = rng.normal(0, 6, 200)
        y = (rng.random(200) < 1 / (1 + np.exp(-z / 3))).astype(int)
        (d / "calibration.json").write_text(json.dumps({"logits": z.tolist(), "y": y.tolist(),
                                                        "temperature": 3.0}))
    return d


def test_run_figures_are_written(tmp_path):
    d = make_run(tmp_path)
    paths = write_run_figures(d)
    names = {p.name for p in paths}
    assert names == {"confusion_window.png", "confusion_recording.png", "confusion_subject.png",
                     "roc.png", "subject_strip.png", "learning_curves.png", "reliability.png"}
    for p in paths:
        assert p.parent == d / "figures" and p.read_bytes()[:4] == b"\x89PNG"


def test_optional_figures_are_skipped_without_their_files(tmp_path):
    d = make_run(tmp_path, history=False, calibration=False, task="three-class", protocol="loso")
    names = {p.name for p in write_run_figures(d)}
    assert "learning_curves.png" not in names and "reliability.png" not in names
    assert "roc.png" in names


def test_report_embeds_figures_and_marks_the_leaky_protocol(tmp_path):
    d = make_run(tmp_path, protocol="paper")
    out = write_report([d], tmp_path / "r.html")
    page = out.read_text(encoding="utf-8")
    assert page.count('src="data:image/png;base64,') == 7
    assert '<span class="leaky">' + LEAKY_LABEL in page
    for level in ("window", "recording", "subject"):
        assert f"<th>{level}</th>" in page
    assert "[" in page and "script" not in page.lower()
    assert not list(tmp_path.glob(".r.html.*"))  # no temporary file left behind


def test_comparison_covers_every_run_and_honest_runs_are_not_flagged(tmp_path):
    a = make_run(tmp_path, "honest", protocol="loso", model="svm", history=False)
    b = make_run(tmp_path, "three", protocol="group-kfold", task="three-class", calibration=False)
    page = write_report([a, b], tmp_path / "cmp.html").read_text(encoding="utf-8")
    assert 'href="#run-0">honest' in page and 'href="#run-1">three' in page
    assert HONEST_LABEL in page and 'class="leaky"' not in page
    assert "recall of myopathy" in page


def test_missing_metrics_file_is_named_in_the_error(tmp_path):
    d = make_run(tmp_path)
    (d / "metrics.json").unlink()
    with pytest.raises(AlsnetError, match="metrics.json"):
        write_report([d], tmp_path / "r.html")


def test_garbled_config_is_named_in_the_error(tmp_path):
    d = make_run(tmp_path)
    (d / "config.json").write_text("{not json")
    with pytest.raises(AlsnetError, match="config.json"):
        write_report([d], tmp_path / "r.html")
    (d / "config.json").write_text(json.dumps({"model": "alsnet"}))
    with pytest.raises(AlsnetError, match="config.json.*task"):
        write_run_figures(d)


def test_predictions_without_probability_columns_are_refused(tmp_path):
    d = make_run(tmp_path)
    pd.read_csv(d / "predictions.csv").drop(columns="p_als").to_csv(d / "predictions.csv", index=False)
    with pytest.raises(AlsnetError, match="predictions.csv.*p_als"):
        write_run_figures(d)


def test_cli_writes_report_next_to_a_single_run(tmp_path, capsys):
    d = make_run(tmp_path, calibration=False, history=False)
    assert main(["report", str(d)]) == 0
    assert (d / "report.html").is_file()
    assert main(["report", str(tmp_path / "nope")]) == 3
    err = capsys.readouterr().err
    assert "nope" in err and len(err.strip().splitlines()) == 1


def test_run_folder_readers_take_a_path_as_a_user_gives_it(tmp_path):
    from alsnet.training.runs import read_csv, read_json

    (tmp_path / "c.json").write_text('{"a": 1}')
    (tmp_path / "p.csv").write_text("record,subject\nr1,S1\n")
    assert read_json(str(tmp_path / "c.json")) == {"a": 1}
    assert list(read_csv(str(tmp_path / "p.csv"), ("record",))["subject"]) == ["S1"]
    with pytest.raises(AlsnetError, match="lacks column"):
        read_csv(str(tmp_path / "p.csv"), ("fold",))


def test_subjects_are_counted_with_wilson_intervals_never_a_collapsed_bootstrap(tmp_path):
    """At subject level every shown proportion is k of n people with its Wilson interval: a
    bootstrap over six subjects that are all right would print [100.0, 100.0]."""
    import re

    d = make_run(tmp_path, protocol="loso")
    m = json.loads((d / "metrics.json").read_text())
    m["subject"]["confusion_matrix"] = [[3, 0], [0, 3]]          # every person right
    m["subject"]["ci"] = {k: [1.0, 1.0] for k in m["subject"]["ci"]}
    for k in ("accuracy", "sensitivity", "specificity"):
        m["subject"][k] = 1.0
    (d / "metrics.json").write_text(json.dumps(m))
    page = write_report([d], tmp_path / "r.html").read_text(encoding="utf-8")
    rows = re.findall(r"<tr><td class=\"l\">(accuracy|sensitivity \(ALS recall\))</td>(.*?)</tr>", page)
    assert len(rows) == 2
    for _, cells in rows:
        subject = re.findall(r"<td>(.*?)</td>", cells)[2]
        assert "[100.0, 100.0]" not in subject
    acc = re.findall(r"<td>(.*?)</td>", rows[0][1])[2]
    assert acc == '100.0 <span class="ci">6/6 [61, 100]</span>'      # Wilson 6 of 6: 0.610-1
    sens = re.findall(r"<td>(.*?)</td>", rows[1][1])[2]
    assert sens.endswith("3/3 [44, 100]</span>")
    assert "Wilson 95 %" in page


def test_a_model_card_shows_its_seeds_and_the_paired_comparison_with_the_baseline():
    from alsnet.reporting.recording import _card_evaluation_html

    diff = {"difference": 0.07, "ci": [-0.011, 0.146]}
    card = {"task": "als-vs-normal", "evaluation": {
        "protocol": "nested", "protocol_label": "nested subject-wise",
        "subject": {"n": 14, "accuracy": 13 / 14, "sensitivity": 5 / 6, "specificity": 1.0, "balanced_accuracy": 0.917,
                    "roc_auc": 1.0, "ci": {"specificity": [1.0, 1.0]}, "confusion_matrix": [[8, 0], [1, 5]]},
        "seeds": [{"seed": 0}, {"seed": 1}, {"seed": 2}],
        "over_seeds": {"n_seeds": 3, "subject log-loss": {"mean": 0.484, "min": 0.481, "max": 0.486}},
        "against_baseline": [{"seed": 0, "baseline": "results/nested-als-vs-normal-rf-s0",
                              "subject_log_loss_difference": diff,
                              "window_balanced_accuracy_difference": {"difference": -0.052, "ci": [-0.121, 0.025]},
                              "mcnemar_subjects": {"a_right_b_wrong": 0, "a_wrong_b_right": 1, "p_value": 1.0}}]}}
    page = _card_evaluation_html(card)
    assert "seed 0 of 3" in page and "13/14 [69, 99]" in page and "8/8 [68, 100]" in page
    assert "[100.0, 100.0]" not in page
    assert "0.484 (0.481–0.486)" in page
    assert "nested-als-vs-normal-rf-s0" in page and "+0.070 [-0.011, +0.146]" in page and "-5.2 [-12.1, +2.5]" in page
    assert "0 vs 1 (p = 1.00)" in page
    assert "no cross-validated evaluation" in _card_evaluation_html({"task": "als-vs-normal"})


def test_an_older_card_without_its_confusion_matrix_shows_no_collapsed_interval():
    from alsnet.reporting.recording import _card_evaluation_html

    card = {"task": "als-vs-normal", "evaluation": {"protocol": "loso", "subject": {
        "n": 14, "accuracy": 13 / 14, "specificity": 1.0, "ci": {"accuracy": [0.79, 1.0], "specificity": [1.0, 1.0]}}}}
    page = _card_evaluation_html(card)
    assert "92.9" in page and "[" not in page.split("</table>")[0] and "predates counting its people" in page


def test_a_card_with_a_broken_evaluation_is_one_line_in_the_report():
    from alsnet.reporting.recording import _card_evaluation_html

    card = {"task": "als-vs-normal", "evaluation": {"subject": {"n": 14, "confusion_matrix": [[1, 2, 3]]},
                                                    "against_baseline": [{"seed": 0}]}}
    page = _card_evaluation_html(card)
    assert page.startswith('<p class="warn">The card\'s evaluation could not be read (AlsnetError')
    assert page.count("<p") == 1


def test_a_nested_run_shows_what_each_outer_fold_chose_and_on_what(tmp_path):
    d = make_run(tmp_path, protocol="loso")
    m = json.loads((d / "metrics.json").read_text())
    m["choices"] = {
        "outer-0": {"chosen_epoch": 6, "chosen_steps": [259, 266, 262], "chosen_params": None,
                    "calibrator": {"method": "temperature", "scale": [0.585], "bias": [0.0]},
                    "decision_rule": {"offsets": [0.0, 0.4]}, "chosen_on": "pooled inner out-of-fold predictions"},
        "outer-1": {"chosen_epoch": None, "chosen_params": {"min_samples_leaf": 50},
                    "calibrator": {"method": "none"}, "decision_rule": {"offsets": [0.0, -0.15]},
                    "chosen_on": "pooled inner out-of-fold predictions"}}
    m["subject"]["decision"] = {"outer-0": "P(als) >= 0.4013"}
    (d / "metrics.json").write_text(json.dumps(m))
    c = json.loads((d / "config.json").read_text())
    c["split"]["folds_detail"] = [{"name": "outer-0", "test_subjects": ["A01", "C02"]}]
    (d / "config.json").write_text(json.dumps(c))
    page = write_report([d], tmp_path / "r.html").read_text(encoding="utf-8")
    assert "Choices per outer fold" in page
    assert ('<td class="l">outer-0</td><td class="l">A01, C02</td><td class="l">epoch 6 (259–266 steps)</td>'
            '<td class="l">temperature (scale 0.585; bias 0)</td><td class="l">P(als) &gt;= 0.4013</td>') in page
    assert '<td class="l">min_samples_leaf 50</td><td class="l">none</td><td class="l">+0.00, -0.15</td>' in page
    assert "chosen on: pooled inner out-of-fold predictions" in page
    plain = write_report([make_run(tmp_path, "plain", protocol="loso")], tmp_path / "p.html")
    assert "Choices per outer fold" not in plain.read_text(encoding="utf-8")


def test_a_three_class_card_counts_the_people_of_each_class():
    from alsnet.reporting.recording import _card_evaluation_html

    card = {"task": "three-class", "evaluation": {"protocol": "nested", "subject": {
        "n": 19, "accuracy": 12 / 19, "confusion_matrix": [[1, 2, 5], [0, 6, 0], [0, 0, 5]]}}}
    page = _card_evaluation_html(card)
    assert "recall of normal</td><td>12.5 <span class=\"ci\">1/8 [2, 47]</span>" in page
    assert "recall of myopathy</td><td>100.0 <span class=\"ci\">5/5 [57, 100]</span>" in page


def _with_fold_rules(d, offsets):
    """Give a made-up run the nested layout's per-fold rules: FOLD/selection.json and the folds in its split."""
    config = json.loads((d / "config.json").read_text())
    config["split"]["folds_detail"] = [{"name": name} for name in offsets]
    (d / "config.json").write_text(json.dumps(config))
    for name, b in offsets.items():
        (d / name).mkdir()
        (d / name / "selection.json").write_text(json.dumps({"decision_rule": {"offsets": b, "fitted_on": "test"}}))


def test_subject_strip_marks_each_folds_own_decision_threshold(tmp_path, monkeypatch):
    """A binary run whose folds have their own rules: one threshold tick per subject, at its fold's
    threshold on P(positive), so the figure shows the rule the run's metrics counted."""
    import alsnet.reporting.figures as figures
    from alsnet.training.runs import load_run

    d = make_run(tmp_path)
    _with_fold_rules(d, {"fold-0": [0.0, 0.8], "fold-1": [0.0, -0.4]})
    run = load_run(d)
    assert {k: r.offsets for k, r in run["rules"].items()} == {"fold-0": (0.0, 0.8), "fold-1": (0.0, -0.4)}
    drawn = {}
    monkeypatch.setattr(figures, "_save", lambda fig, path: drawn.setdefault(path.name, fig) and path)
    figures.draw_run_figures(run, tmp_path / "figs")
    ax = drawn["subject_strip.png"].axes[0]
    ticks = [seg for coll in ax.collections if coll.get_gid() == "threshold" for seg in coll.get_segments()]
    pred = run["predictions"]
    subjects = pred.groupby("subject")["fold"].first()
    assert len(ticks) == len(subjects)
    want = {"fold-0": 1 / (1 + np.exp(0.8)), "fold-1": 1 / (1 + np.exp(-0.4))}
    assert sorted(round(seg[0][1], 6) for seg in ticks) == sorted(round(want[f], 6) for f in subjects)
    assert not any(line.get_linestyle() == "--" for line in ax.lines)  # no 0.5 line: no fold decides by it


def test_subject_strip_crosses_out_recordings_decided_wrongly_under_the_fold_rules(tmp_path, monkeypatch):
    import alsnet.reporting.figures as figures
    from alsnet.evaluation.metrics import aggregate
    from alsnet.training.runs import load_run

    d = make_run(tmp_path, task="three-class")
    offsets = {"fold-0": [0.0, 1.5, -0.5], "fold-1": [0.0, -1.0, 2.0]}
    _with_fold_rules(d, offsets)
    run = load_run(d)
    drawn = {}
    monkeypatch.setattr(figures, "_save", lambda fig, path: drawn.setdefault(path.name, fig) and path)
    figures.draw_run_figures(run, tmp_path / "figs")
    ax = drawn["subject_strip.png"].axes[0]
    crosses = sum(len(c.get_offsets()) for c in ax.collections if c.get_gid() == "decided-wrongly")
    rec = aggregate(run["predictions"], "recording", run["task"])
    p = rec[["p_normal", "p_als", "p_myopathy"]].to_numpy()
    b = np.array([offsets[f] for f in rec["fold"]])
    wrong = int((np.argmax(np.log(p) + b, axis=1) != rec["y_true"].to_numpy()).sum())
    assert 0 < wrong < len(rec) and crosses == wrong
    assert [line.get_ydata()[0] for line in ax.lines] == [1 / 3]


def test_a_broken_fold_selection_is_named(tmp_path):
    from alsnet.training.runs import load_run

    d = make_run(tmp_path)
    _with_fold_rules(d, {"fold-0": [0.0, 0.1], "fold-1": [0.0, 0.2]})
    (d / "fold-1" / "selection.json").write_text('{"decision_rule": {"offsets": [0.0, "x"]}}')
    with pytest.raises(AlsnetError, match="fold-1/selection.json"):
        load_run(d)
