"""Where a real training epoch's time goes, from a py-spy profile of the running process.

    py-spy record --pid PID --duration 150 --rate 20 --format raw -o epoch.raw
    python3 benchmarks/epoch_profile.py epoch.raw

``PID`` is an ``alsnet train`` process (e.g. a lane of ``scripts/long_runs.sh``, one thread:
``OMP_NUM_THREADS=1``). Each sample is put in the first category whose function is on its
stack; the shares are of all samples (with more than one thread, the other threads'
samples have no Python frames and land in "other").
"""

from __future__ import annotations

import argparse
import collections

#: (a function on the stack, the part of the epoch it is), first match wins
CATEGORIES = (
    ("ALSNetModule.recalibrate_bn", "BatchNorm re-estimation (whole windows)"),
    ("score_windows", "outer test windows scored (nested runs, every epoch)"),
    ("ALSNetModule.validation_step", "validation windows scored"),
    ("_Features.backward", "training step: backward"),
    ("_Features.forward", "training step: forward"),
    ("Adam.step", "training step: loss, optimiser, rest"),
    ("_next_data", "data loading"),
    ("ModelCheckpoint", "checkpoints"),
    ("_save_npz", "per-epoch logits (epochs.npz)"),
)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("raw", help="py-spy --format raw output")
    args = ap.parse_args()
    counts: collections.Counter[str] = collections.Counter()
    total = 0
    with open(args.raw) as fh:
        for line in fh:
            stack, _, n = line.rstrip("\n").rpartition(" ")
            if not stack:
                continue
            total += int(n)
            frames = [f.split(" (")[0] for f in stack.split(";")]
            name = next((part for key, part in CATEGORIES if any(key in f for f in frames)), "other")
            counts[name] += int(n)
    print(f"{total} samples")
    print("| part | share |\n| --- | ---: |")
    for name, n in counts.most_common():
        print(f"| {name} | {100 * n / max(total, 1):.1f} % |")


if __name__ == "__main__":
    main()
