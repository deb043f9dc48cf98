"""Post-hoc analysis: would a decision rule fitted on people transfer to new people better than
one fitted on windows? Rescore finished nested runs (no training).

    python scripts/subject_rule.py results/nested-three-class-{rf,svm,knn}-s{0,1,2} \
        results/nested-three-class-alsnet-crop0.125-s{0,1,2}

Found after looking: the question comes from the outer results (the three-class window-fitted
offsets call most controls patients), so whatever it shows is labelled so; it changes no
declared procedure and no reported result. For each outer fold the run's chosen candidate and
calibration are kept, and the offsets are fitted on the pooled inner out-of-fold subjects
instead of windows (alsnet.training.rescore.nested_subject_rule). Prints, per run, the outer
test subjects right under the default rule, the run's window-fitted rule, the subject-fitted
one, and the one of the three the inner CV prefers (cross-fitted over the inner folds; its
initial per outer fold: d, w or s), overall and per class.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    import pandas as pd

    from alsnet.data.dataset import load_windows
    from alsnet.errors import AlsnetError
    from alsnet.training.nested import read_config
    from alsnet.training.rescore import nested_subject_rule
    from alsnet.training.runs import read_json, run_task

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+", type=Path, help="finished nested runs")
    args = ap.parse_args(argv)
    cache: dict = {}
    rows, failed = [], 0
    for run in args.runs:
        try:
            _, exp = read_config(run)
            task = run_task(read_json(run / "config.json"), run / "config.json")
            key = repr((exp.data, task.name, exp.invalid, exp.read))
            if key not in cache:
                cache[key] = load_windows(exp.data, task, invalid=exp.invalid, read=exp.read, progress=False)
            sub = nested_subject_rule(run, cache[key])
        except AlsnetError as e:
            print(f"subject_rule: {e}", file=sys.stderr)
            failed += 1
            continue
        row = {"run": run.name, "subjects": len(sub)}
        for rule in ("default", "window", "subject", "chosen"):
            right = sub[f"pred_{rule}"] == sub["y_true"]
            per = "/".join(f"{int(right[sub['y_true'] == k].sum())}" for k in range(len(task.classes)))
            row[rule] = f"{int(right.sum())} ({per})"
        per_fold = sub.groupby("fold")["rule_chosen"].first()
        row["chosen per outer fold"] = ", ".join(per_fold.str[0])
        row["classes"] = "/".join(task.classes)
        rows.append(row)
    if rows:
        print("Outer test subjects right under each decision rule: all (per class). Found after looking.\n")
        print(pd.DataFrame(rows).to_markdown(index=False))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
