"""The nested procedure that also chooses the variant, built from finished runs (no training).

    python scripts/nested_choose.py --out results/nested-als-vs-normal-alsnet-choice-crop0.125-s0 \
        results/nested-als-vs-normal-alsnet-crop0.125-s0 \
        results/nested-als-vs-normal-alsnet-{balanced,subjsampling,gainpolarity}-crop0.125-s0

On each outer fold, the run whose own selection reached the lowest pooled inner out-of-fold
subject log-loss wins (ties: the earlier run given, so list the exact network first); its
choices and outer predictions are kept (alsnet.training.nested.choose_among). The folder it
writes is a nested run like the others: `scripts/nested_report.py` tables it, pairs it with
the baselines and groups its seeds. Rebuilt from scratch each time (it takes seconds).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    from alsnet.errors import AlsnetError
    from alsnet.training.nested import choose_among

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+", type=Path, help="finished nested runs of one task, split and seed")
    ap.add_argument("--out", type=Path, required=True, help="the run folder to write (replaced if present)")
    args = ap.parse_args(argv)
    try:
        m = choose_among(args.runs, args.out, force=True)
    except AlsnetError as e:
        print(f"nested_choose: {e}", file=sys.stderr)
        return 2
    import json

    for fold in sorted(p.parent.name for p in args.out.glob("*/selection.json")):
        sel = json.loads((args.out / fold / "selection.json").read_text())
        losses = ", ".join(f"{k} {v:.3f}" for k, v in sel["run_losses"].items())
        print(f"{fold}: {sel['chosen_run']} (pooled inner OOF subject log-loss: {losses})")
    if m is not None:
        sp = m["subject_proportions"]["all"]
        print(f"{args.out}: window balanced accuracy {100 * m['window']['balanced_accuracy']:.1f} %, "
              f"{sp['k']} of {sp['n']} subjects right")
    return 0


if __name__ == "__main__":
    sys.exit(main())
