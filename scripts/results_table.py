"""Print a markdown table of metrics.json files (the tables in docs/results.md come from here).

    python scripts/results_table.py runs/paper-als-vs-normal runs/paper-svm ...

Window and recording levels: the point value and its subject-bootstrap 95 % interval.
Subject level: accuracy, sensitivity and specificity as proportions of subjects (``k/n``)
with Wilson 95 % intervals; balanced accuracy and ROC AUC without an interval.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

METRICS = ("accuracy", "sensitivity", "specificity", "balanced_accuracy", "roc_auc")


def fmt(v, ci=None) -> str:
    if v is None:
        return "n/a"
    s = f"{100 * v:.2f}"
    if ci and ci[0] is not None:
        s += f" [{100 * ci[0]:.1f}, {100 * ci[1]:.1f}]"
    return s


def subject_cells(v: dict, task_name: str) -> list[str]:
    """Subject-level cells: proportions as ``k/n`` with their Wilson 95 % interval (a bootstrap
    over a handful of subjects collapses to a point, [100, 100] when all are right); the
    balanced accuracy and AUC, not proportions, without an interval."""
    from alsnet.data.labels import get_task
    from alsnet.evaluation.metrics import count_proportions

    cm = v.get("confusion_matrix")
    if not cm:
        return [fmt(v.get(k)) for k in METRICS]
    props = count_proportions(cm, get_task(task_name))

    def prop(p: dict) -> str:
        if p["value"] is None:
            return "n/a"
        return f"{p['k']}/{p['n']} = {100 * p['value']:.1f} [{100 * p['wilson'][0]:.0f}, {100 * p['wilson'][1]:.0f}]"

    return [*(prop(props[k]) for k in ("accuracy", "sensitivity", "specificity")),
            fmt(v.get("balanced_accuracy")), fmt(v.get("roc_auc"))]


def main() -> int:
    from alsnet.errors import AlsnetError
    from alsnet.training.runs import read_json

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+", type=Path)
    ap.add_argument("--levels", default="window,recording,subject")
    args = ap.parse_args()
    head = ["model", "task", "protocol", "level", "n"] + [m.replace("_", " ") for m in METRICS]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    bad = 0
    for run in args.runs:
        try:  # a damaged run is one line on stderr; the others are still tabulated
            rows = run_rows(read_json(run / "metrics.json"), args.levels.split(","))
        except AlsnetError as e:
            print(f"results_table: {e}", file=sys.stderr)
            bad += 1
            continue
        except (KeyError, TypeError, ValueError, AttributeError, IndexError) as e:
            print(f"results_table: {run / 'metrics.json'}: not a metrics file this script reads "
                  f"({type(e).__name__}: {e})", file=sys.stderr)
            bad += 1
            continue
        for cells in rows:
            print("| " + " | ".join(cells) + " |")
    return 1 if bad else 0


def run_rows(m: dict, levels: list[str]) -> list[list[str]]:
    """The table's rows (cells) of one run's metrics.json."""
    leaky = m.get("shares_recordings_between_train_and_test")
    proto = m["protocol"] + (" (leaky: shares recordings)" if leaky else "")
    rows = []
    for lvl in levels:
        v = m.get(lvl)
        if not v:
            continue
        cis = v.get("ci") or {}
        cells = [m["model"], m["task"], proto, lvl, str(v.get("n"))]
        cells += (subject_cells(v, m["task"]) if lvl == "subject"
                  else [fmt(v.get(k), cis.get(k)) for k in METRICS])
        rows.append(cells)
    return rows


if __name__ == "__main__":
    sys.exit(main())
