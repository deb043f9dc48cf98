"""scripts/results_table.py: subject rows are proportions with Wilson intervals, never a collapsed bootstrap."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_subject_rows_give_counts_and_wilson_intervals(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    subject = {"n": 14, "accuracy": 1.0, "sensitivity": 1.0, "specificity": 1.0, "balanced_accuracy": 1.0,
               "roc_auc": 1.0, "confusion_matrix": [[8, 0], [0, 6]],
               "ci": {k: [1.0, 1.0] for k in ("accuracy", "sensitivity", "specificity", "balanced_accuracy",
                                              "roc_auc")}}
    window = {"n": 100, "accuracy": 0.9, "ci": {"accuracy": [0.85, 0.95]}}
    (run / "metrics.json").write_text(json.dumps({"model": "rf", "task": "als-vs-normal", "protocol": "loso",
                                                  "window": window, "subject": subject}))
    out = subprocess.run([sys.executable, str(ROOT / "scripts" / "results_table.py"), str(run)],
                         capture_output=True, text=True, check=True).stdout
    rows = {line.split("|")[4].strip(): line for line in out.splitlines()[2:]}
    assert "90.00 [85.0, 95.0]" in rows["window"]                       # bootstrap kept where sound
    assert "14/14 = 100.0 [78, 100]" in rows["subject"]                 # Wilson 95 % of 14/14
    assert "6/6 = 100.0 [61, 100]" in rows["subject"] and "8/8 = 100.0 [68, 100]" in rows["subject"]
    assert "[100.0, 100.0]" not in rows["subject"]


def test_a_damaged_metrics_file_is_one_line_and_the_other_runs_are_still_tabulated(tmp_path):
    good, bad, odd = tmp_path / "good", tmp_path / "bad", tmp_path / "odd"
    for d in (good, bad, odd):
        d.mkdir()
    (good / "metrics.json").write_text(json.dumps({"model": "rf", "task": "als-vs-normal", "protocol": "loso",
                                                   "window": {"n": 10, "accuracy": 0.9}}))
    (bad / "metrics.json").write_text('{"model": "rf", "task": ')         # truncated
    (odd / "metrics.json").write_text(json.dumps({"model": "rf"}))         # no protocol
    res = subprocess.run([sys.executable, str(ROOT / "scripts" / "results_table.py"), str(bad), str(good), str(odd)],
                         capture_output=True, text=True)
    assert res.returncode == 1
    err = res.stderr.strip().splitlines()
    assert len(err) == 2 and "Traceback" not in res.stderr
    assert str(bad / "metrics.json") in err[0] and str(odd / "metrics.json") in err[1]
    assert "| rf | als-vs-normal | loso | window | 10 |" in res.stdout


def test_the_train_summary_counts_people_and_prints_no_subject_bootstrap(capsys):
    """`alsnet train` ends with the metrics: windows and recordings with their bootstrap interval,
    people as k of n with Wilson intervals, never the subject bootstrap ([100, 100] here)."""
    from alsnet.cli.train import print_metrics

    level = {"n": 14, "accuracy": 1.0, "sensitivity": 1.0, "specificity": 1.0, "balanced_accuracy": 1.0,
             "roc_auc": 1.0, "ci": {"balanced_accuracy": [1.0, 1.0]}, "confusion_matrix": [[8, 0], [0, 6]]}
    window = {**level, "n": 3472, "ci": {"balanced_accuracy": [0.75, 0.9]},
              "confusion_matrix": [[2000, 639], [100, 733]]}
    print_metrics({"task": "als-vs-normal", "model": "rf", "protocol": "loso", "protocol_label": "subject-wise",
                   "window": window, "recording": window, "subject": level}, "RUN")
    out = capsys.readouterr().out
    assert "[75.00, 90.00]" in out and "[100.00, 100.00]" not in out
    assert "people right (Wilson 95 %): all 14 of 14 [78, 100]; ALS 6 of 6 [61, 100]; non-ALS 8 of 8 [68, 100]" in out
