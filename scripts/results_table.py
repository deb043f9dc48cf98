"""Print a markdown table of metrics.json files (the tables in docs/results.md come from here).

    python scripts/results_table.py runs/paper-als-vs-normal runs/paper-svm ...
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

METRICS = ("accuracy", "sensitivity", "specificity", "balanced_accuracy", "roc_auc")


def fmt(v, ci=None) -> str:
    if v is None:
        return "n/a"
    s = f"{100 * v:.2f}"
    if ci and ci[0] is not None:
        s += f" [{100 * ci[0]:.1f}, {100 * ci[1]:.1f}]"
    return s


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+", type=Path)
    ap.add_argument("--levels", default="window,recording,subject")
    args = ap.parse_args()
    head = ["model", "task", "protocol", "level", "n"] + [m.replace("_", " ") for m in METRICS]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for run in args.runs:
        m = json.loads((run / "metrics.json").read_text())
        leaky = m.get("shares_recordings_between_train_and_test")
        proto = m["protocol"] + (" (leaky: shares recordings)" if leaky else "")
        for lvl in args.levels.split(","):
            v = m.get(lvl)
            if not v:
                continue
            cis = v.get("ci") or {}
            cells = [m["model"], m["task"], proto, lvl, str(v.get("n"))]
            cells += [fmt(v.get(k), cis.get(k)) for k in METRICS]
            print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
