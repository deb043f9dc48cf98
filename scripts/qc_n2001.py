"""How many N2001 windows each quality rule flags, and what dropping them does to subject-wise metrics.

    python scripts/qc_n2001.py data/N2001 [--run RUN_DIR]

With ``--run`` (a run folder of ``alsnet train --protocol loso``), its test-window
predictions are re-evaluated with the flagged windows left out (the ``--qc drop`` policy)
and compared with all windows kept (``--qc flag``). The windows are those of training
(non-overlapping 1-s windows at the model rate), matched by record and window index.
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from collections import Counter
from pathlib import Path

import numpy as np

from alsnet.data.dataset import iter_recordings
from alsnet.data.windows import WINDOW_SAMPLES, resample_to_model_rate
from alsnet.diagnosis.qc import QC_REASONS, RULES, reasons_from_metrics, window_metrics


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data")
    ap.add_argument("--run", type=Path, help="LOSO run folder whose predictions are re-evaluated")
    args = ap.parse_args(argv)
    flags, per_class, n_class, label, metrics = {}, {}, Counter(), {}, {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for rec in iter_recordings(args.data):
            # the windows of training, NaN kept: the "invalid" rule needs them
            x = resample_to_model_rate(rec.signal, rec.fs, name=rec.path)
            n = len(x) // WINDOW_SAMPLES
            m = window_metrics(x[:n * WINDOW_SAMPLES].reshape(n, WINDOW_SAMPLES))
            for k, v in m.items():
                metrics.setdefault(k, []).append(v)
            for i, q in enumerate(reasons_from_metrics(m)):
                flags[(rec.record, i)] = q
                label[rec.record] = rec.label
                n_class[rec.label] += 1
                for r in q or ["clean"]:
                    per_class.setdefault(rec.label, Counter())[r] += 1
    print(f"rules: {json.dumps(RULES.to_dict())}")
    print("| metric (valid windows) | min | 1% | 50% | 99% | 99.9% | max |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for k in ("clip_run", "baseline_uv", "min_sd_uv", "mains_uv", "mains_ratio"):
        v = np.concatenate(metrics[k])
        v = v[np.isfinite(v)]
        print(f"| {k} | " + " | ".join(f"{q:.3g}" for q in np.percentile(v, [0, 1, 50, 99, 99.9, 100])) + " |")
    print()
    print("| class | windows | " + " | ".join(QC_REASONS) + " | any |")
    print("|" + " --- |" * (len(QC_REASONS) + 3))
    for c in ("als", "normal", "myopathy"):
        any_ = sum(1 for (r, _), q in flags.items() if q and label[r] == c)
        print(f"| {c} | {n_class[c]} | " + " | ".join(str(per_class[c][r]) for r in QC_REASONS)
              + f" | {any_} ({100 * any_ / n_class[c]:.1f}%) |")
    tot = sum(1 for q in flags.values() if q)
    print(f"| all | {len(flags)} | " + " | ".join(str(sum(per_class[c][r] for c in per_class)) for r in QC_REASONS)
          + f" | {tot} ({100 * tot / len(flags):.1f}%) |")
    if args.run:
        from alsnet.evaluation.metrics import evaluate
        from alsnet.training.runs import read_csv, read_json, run_task

        cfg = read_json(args.run / "config.json")
        task = run_task(cfg, args.run / "config.json")
        pred = read_csv(args.run / "predictions.csv")
        flagged = pred.apply(lambda r: bool(flags.get((r["record"], int(r["window"])))), axis=1)
        print(f"\nrun {args.run} ({cfg['model']}, {cfg['split']['protocol']}): {int(flagged.sum())} of "
              f"{len(pred)} test windows flagged")
        print("| policy | windows | recordings | subject bal. acc. | subject sens. | subject spec. | "
              "recording bal. acc. | window bal. acc. |")
        print("| --- | --- | --- | --- | --- | --- | --- | --- |")
        for name, p in (("flag (all windows)", pred), ("drop (flagged left out)", pred[~flagged])):
            m = evaluate(p, task, n_boot=0)
            s, r, w = m["subject"], m["recording"], m["window"]
            print(f"| {name} | {len(p)} | {r['n']} | {100 * s['balanced_accuracy']:.2f} | "
                  f"{100 * s['sensitivity']:.2f} | {100 * s['specificity']:.2f} | "
                  f"{100 * r['balanced_accuracy']:.2f} | {100 * w['balanced_accuracy']:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
