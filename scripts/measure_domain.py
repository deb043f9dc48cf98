"""Measure the training domain of a folder of recordings (the N2001 fallback of alsnet.diagnosis.domain).

    python scripts/measure_domain.py data/N2001

Prints the domain record as JSON, then how many of the folder's own recordings would be
warned about under it (the false-alarm count quoted in docs/clinical.md).
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings

import numpy as np

from alsnet.data.dataset import iter_recordings, recording_windows
from alsnet.data.domain import muscle_of, training_domain, window_stats
from alsnet.diagnosis.domain import domain_warnings


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data", help="folder of recordings")
    args = ap.parse_args(argv)
    wins, rates, muscles, metas, per_rec = [], [], [], [], []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for rec in iter_recordings(args.data, on_error=lambda p: print(f"skipped: {p.message}", file=sys.stderr)):
            w = recording_windows(rec).windows
            wins.append(w)
            rates.append(rec.fs)
            muscles.append(muscle_of(rec.record, rec.meta, rec.muscle))
            metas.append(rec.meta)
            per_rec.append((rec.record, rec.fs, muscles[-1], window_stats(w)))
    dom = training_domain(np.concatenate(wins), rates=rates, muscles=muscles, metas=metas,
                          source=f"measured from {len(per_rec)} recordings under {args.data} "
                                 "by scripts/measure_domain.py")
    print(json.dumps(dom, indent=1))
    warned = [(r, w) for r, fs, m, st in per_rec
              for w in [domain_warnings(dom, fs=fs, muscle=m, stats=st)] if w]
    print(f"{len(warned)} of {len(per_rec)} recordings of the folder itself get a warning")
    for r, w in warned:
        print(f"  {r}: {'; '.join(w)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
