"""``alsnet simulate OUT_DIR``: write synthetic needle-EMG recordings in N2001 layout."""

from __future__ import annotations

import argparse
import sys

CLASS_NAMES = ("als", "normal", "myopathy")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "simulate", help="write synthetic needle-EMG recordings (N2001 WFDB records)",
        description="Simulate concentric-needle EMG of ALS, normal and myopathic biceps (motor-unit "
                    "action potential trains, fibrillations, noise, hum, drift, the N2001 recording "
                    "chain) and write them as N2001-named WFDB records that alsnet reads like real "
                    "ones. Deterministic per --seed. See docs/simulator.md.")
    p.add_argument("out_dir", metavar="OUT_DIR", help="folder to write the records into")
    p.add_argument("--subjects-per-class", type=int, default=None, metavar="N",
                   help="subjects per class (default 3)")
    for name in CLASS_NAMES:
        p.add_argument(f"--{name}", type=int, default=None, metavar="N",
                       help=f"{name} subjects (overrides --subjects-per-class for this class)")
    p.add_argument("--classes", default=",".join(CLASS_NAMES),
                   help="comma-separated classes to simulate (default als,normal,myopathy)")
    p.add_argument("--recordings", type=int, default=4, metavar="N", help="recordings per subject (default 4)")
    p.add_argument("--duration", type=float, default=11.18, metavar="S",
                   help="seconds per recording (default 11.18, as N2001)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--force", action="store_true",
                   help="replace simulated N2001 records already in OUT_DIR (real ones are never deleted)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def subject_counts(args: argparse.Namespace) -> dict[str, int]:
    """Subjects per class from the options (``--classes`` filters, per-class options override)."""
    from alsnet.errors import AlsnetError, UsageError

    classes = [c.strip().lower() for c in args.classes.split(",") if c.strip()]
    bad = [c for c in classes if c not in CLASS_NAMES]
    if bad or not classes:
        raise UsageError(f"--classes: unknown class {', '.join(bad) or '(none)'}; "
                          f"choose from {', '.join(CLASS_NAMES)}")
    default = 3 if args.subjects_per_class is None else args.subjects_per_class
    counts = {}
    for c in CLASS_NAMES:
        given = getattr(args, c)
        n = given if given is not None else (default if c in classes else 0)
        if n < 0 or n > 99:
            raise UsageError(f"subjects per class must be 0-99, got {n} for {c}")
        counts[c] = n
    if sum(counts.values()) == 0:
        raise AlsnetError("nothing to simulate: every class has 0 subjects")
    return counts


def run(args: argparse.Namespace) -> int:
    import time

    from alsnet.data.simulate import simulate_dataset
    from alsnet.data.windows import MODEL_FS

    counts = subject_counts(args)
    t0 = time.perf_counter()
    paths = simulate_dataset(args.out_dir, n_subjects=counts, recordings_per_subject=args.recordings,
                             duration_s=args.duration, seed=args.seed, force=args.force,
                             progress=not args.quiet and sys.stderr.isatty())
    took = time.perf_counter() - t0
    per = ", ".join(f"{n} {c}" for c, n in counts.items() if n)
    print(f"wrote {len(paths)} recordings ({sum(counts.values())} subjects: {per}; "
          f"{args.recordings} each, {args.duration:g} s at {MODEL_FS:g} Hz) to {args.out_dir} "
          f"in {took:.1f} s, seed {args.seed}")
    print("simulated data: for demos and tests, not for clinical conclusions")
    return 0
