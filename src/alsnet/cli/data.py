"""``alsnet data info DIR``: what a data set holds."""

from __future__ import annotations

import argparse
import sys

from alsnet.cli.options import add_dataset_options, reader_options


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("data", help="inspect a data set (alsnet data info DIR)")
    dsub = p.add_subparsers(dest="data_command", metavar="ACTION", required=True)
    info = dsub.add_parser("info", help="per-class and per-subject counts, muscles, durations, invalid samples")
    info.add_argument("paths", nargs="+", metavar="DIR", help="folder(s) or file(s) of recordings")
    info.add_argument("--json", action="store_true",
                      help="print {schema_version, alsnet_version, n_failed, summary, recordings} as JSON")
    add_dataset_options(info)
    info.set_defaults(func=run_info)
    register_kaggle(dsub)
    register_to_bids(dsub)


def run_info(args: argparse.Namespace) -> int:
    from alsnet import __version__
    from alsnet.cli.main import JSON_SCHEMA_VERSION, inputs_exit_code, print_json
    from alsnet.data.dataset import index_dataset, info_to_json, summarise
    from alsnet.data.io import NO_RECORDINGS
    from alsnet.errors import AlsnetError

    infos, errors, warnings = [], [], []
    for path in args.paths:
        try:
            i, p = index_dataset(path, **reader_options(args))
        except AlsnetError as e:
            errors.append(str(e))
            continue
        if not i and not p:  # an empty folder (or one of unknown files) is a mistake, not 0 records
            errors.append(f"{path}: {NO_RECORDINGS}")
        infos += i
        errors += [q.message for q in p if q.path]  # a problem with a path is a file that failed
        warnings += [q.message for q in p if not q.path]
    for message in errors:
        print(f"alsnet data info: error: {message}", file=sys.stderr)
    for message in warnings:
        print(f"alsnet data info: warning: {message}", file=sys.stderr)
    if args.json:
        print_json({"schema_version": JSON_SCHEMA_VERSION, "alsnet_version": __version__,
                    "n_failed": len(errors), **info_to_json(infos)})
    elif infos:
        print_summary(summarise(infos))
    return inputs_exit_code(len(errors), len(infos) + len(errors))


def print_summary(s: dict) -> None:
    print(f"{s['recordings']} recordings, {s['subjects']} subjects, "
          f"{s['duration_s']['total']:.1f} s in all "
          f"(each {s['duration_s']['min']:.2f}-{s['duration_s']['max']:.2f} s), "
          f"rates {', '.join(f'{r:g}' for r in s['sampling_rates'])} Hz")
    print(f"muscles: {', '.join(f'{k} ({v})' for k, v in s['muscles'].items())}")
    print(f"invalid samples: {s['n_invalid']} in {s['recordings_with_invalid']} recordings")
    print()
    print(f"{'class':<10}{'subjects':>9}{'recordings':>12}{'seconds':>10}{'invalid':>10}")
    for k, v in s["classes"].items():
        print(f"{k:<10}{v['subjects']:>9}{v['recordings']:>12}{v['duration_s']:>10.1f}{v['n_invalid']:>10}")
    print()
    print(f"{'subject':<10}{'class':<10}{'recordings':>11}{'seconds':>10}{'invalid':>10}")
    for k, v in s["by_subject"].items():
        print(f"{k:<10}{(v['label'] or '?'):<10}{v['recordings']:>11}{v['duration_s']:>10.1f}{v['n_invalid']:>10}")


def register_kaggle(dsub: argparse._SubParsersAction) -> None:
    k = dsub.add_parser("kaggle", help="read the authors' Kaggle pickles (X_train.pkl, ...): needs --trust-pickle")
    k.add_argument("folder", metavar="FOLDER", help="folder holding X_train.pkl, y_train.pkl, ...")
    k.add_argument("--trust-pickle", action="store_true",
                   help="unpickle the files (this runs code from them: only for files you trust)")
    k.add_argument("--export", metavar="OUT.npz", help="save the windows and labels as a safe .npz")
    k.set_defaults(func=run_kaggle)


def run_kaggle(args: argparse.Namespace) -> int:
    import numpy as np

    from alsnet.data.pickles import read_kaggle_split
    from alsnet.files import atomic_write_bytes

    parts = read_kaggle_split(args.folder, trust_pickle=args.trust_pickle)
    for name, arr in parts.items():
        extra = ""
        if name.startswith("y_"):
            vals, counts = np.unique(arr, return_counts=True)
            extra = "  classes " + ", ".join(f"{v}: {c}" for v, c in zip(vals, counts))
        print(f"{name:<8} {str(arr.shape):<16} {arr.dtype}{extra}")
    if args.export:
        import io

        buf = io.BytesIO()
        np.savez_compressed(buf, **parts)
        atomic_write_bytes(args.export, buf.getvalue())
        print(f"wrote {args.export}")
    return 0


def register_to_bids(dsub: argparse._SubParsersAction) -> None:
    t = dsub.add_parser(
        "to-bids", help="write a data set as EMG-BIDS (EDF/BDF in µV, sidecars, participants.tsv diagnosis)",
        description="Write every recording of SRC (N2001, simulated, a folder with labels.csv, a BIDS set) "
                    "as an EMG-BIDS data set under OUT (docs/bids.md). Each EDF/BDF data record lasts the "
                    "fewest whole seconds holding a whole number of samples (2 s = 46,875 samples at "
                    "23437.5 Hz); the last record is padded with the last value and the padding annotated "
                    "BAD_ACQ_SKIP, which alsnet leaves out when it reads the set. Exit status 0 when every "
                    "recording was written, 1 when some failed, 3 when none could be.")
    t.add_argument("src", metavar="SRC", help="data set folder (or one recording)")
    t.add_argument("out", metavar="OUT", help="new or empty folder, or an existing BIDS data set")
    t.add_argument("--format", dest="fmt", choices=("edf", "bdf"), default="edf",
                   help="edf: 16-bit (default); bdf: 24-bit, 256 times finer steps")
    t.add_argument("--task", default="isometric", help="BIDS task label (default: %(default)s)")
    t.add_argument("--line-freq", type=float, default=None, metavar="HZ",
                   help="mains frequency for PowerLineFrequency (default: n/a)")
    add_dataset_options(t)
    t.add_argument("--json", action="store_true", help="print what was written (per recording) as JSON")
    t.set_defaults(func=run_to_bids)


def run_to_bids(args: argparse.Namespace) -> int:
    from alsnet.cli.main import JSON_SCHEMA_VERSION, inputs_exit_code, print_json
    from alsnet.data.bids_write import write_bids

    read = reader_options(args)
    problems = []
    report = write_bids(args.src, args.out, fmt=args.fmt, task=args.task, line_freq=args.line_freq,
                        read=read, on_error=problems.append)
    failed = [p for p in problems if p.path]
    for p in problems:
        kind = "error" if p.path else "warning"
        print(f"alsnet data to-bids: {kind}: {p.message}", file=sys.stderr)
    recs = report["recordings"]
    if args.json:
        print_json({"schema_version": JSON_SCHEMA_VERSION, "n_failed": len(failed), **report})
    else:
        for r in recs:
            tail = (f"last record padded with {r['padded_samples']} samples (BAD_ACQ_SKIP)"
                    if r["padded_samples"] else "whole records, no padding")
            print(f"{r['source']} -> {r['path']}: {r['n_samples']} samples at {r['fs']:g} Hz in "
                  f"{r['record_duration_s']}-s records of {r['samples_per_record']}; {tail}; "
                  f"resolution {r['resolution_uv']:.4g} µV")
        print(f"wrote {len(recs)} recording(s) as EMG-BIDS {report['bids_version']} "
              f"({args.fmt.upper()}) under {report['out']}")
    return inputs_exit_code(len(failed), len(recs) + len(failed))
