"""``alsnet report RUN_DIR [RUN_DIR ...] [-o OUT.html]``: one self-contained HTML page."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("report", help="HTML report (metrics with CIs, figures) of one or more runs",
                       description="Write a self-contained HTML report of run folders: per-run "
                                   "metrics at window/recording/subject level with subject-bootstrap "
                                   "intervals, figures, and a comparison table across runs.")
    p.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="run folder(s) written by alsnet train")
    p.add_argument("-o", "--output", metavar="OUT.html", default=None,
                   help="output file (default: RUN_DIR/report.html for one run, ./report.html for several)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from alsnet.reporting.html import write_report

    dirs = [Path(d) for d in args.run_dirs]
    if args.output:
        out = Path(args.output)
    else:
        out = dirs[0] / "report.html" if len(dirs) == 1 else Path.cwd() / "report.html"
    path = write_report(dirs, out)
    print(path)
    return 0
