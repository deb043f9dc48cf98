"""Rescore cross-validated ALSNet runs with a decision rule fitted on validation subjects.

    python scripts/decision_rule.py runs/loso-als-vs-normal-alsnet runs/loso-three-class-alsnet

For each fold, per-class offsets on the log-probabilities are fitted to maximise balanced
accuracy on that fold's validation windows (whole subjects from the training side; never
the test subject) and applied to its test windows (``alsnet.evaluation.decision``). Writes
``RUN_DIR/decision-validation/`` with ``metrics.json`` (every level, bootstrap intervals),
``predictions.csv`` and ``offsets.json``; ``python scripts/results_table.py
RUN_DIR/decision-validation`` prints its rows. The run itself is not changed.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def main(argv=None) -> int:
    from alsnet.errors import AlsnetError
    from alsnet.training.rescore import rescore_run
    from alsnet.training.runs import write_csv, write_json

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+", type=Path)
    ap.add_argument("--n-boot", type=int, default=1000)
    args = ap.parse_args(argv)
    failed = 0
    for run in args.runs:
        try:
            m, pred, offsets = rescore_run(run, n_boot=args.n_boot)
        except AlsnetError as e:
            print(f"decision_rule: error: {e}", file=sys.stderr)
            failed += 1
            continue
        out = run / "decision-validation"
        out.mkdir(exist_ok=True)
        write_json(out / "metrics.json", m)
        write_csv(out / "predictions.csv", pred)
        write_json(out / "offsets.json", {"rule": m["decision"], "offsets": offsets})
        line = ", ".join(f"{lvl} bal.acc {100 * m[lvl]['balanced_accuracy']:.2f}"
                         for lvl in ("window", "recording", "subject"))
        print(f"{run}: {line} -> {out}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
