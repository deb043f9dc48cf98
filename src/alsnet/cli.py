"""The ``alsnet`` command line.

Each subcommand lives in its own module under :mod:`alsnet.commands` and exposes
``register(subparsers)`` (adds its parser, sets ``func``) and keeps heavy imports inside
its run function so that ``alsnet --help`` stays fast. Errors of the project's own type
become one line on stderr and exit code 2; nothing else is caught.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import warnings

from alsnet import __version__
from alsnet.errors import AlsnetError

#: Subcommand modules, in the order ``--help`` lists them.
COMMAND_MODULES = ("demo", "data", "simulate", "train", "evaluate", "baseline", "report",
                   "predict", "explain", "export")

EXIT_ERROR = 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="alsnet",
        description="Detect ALS from raw needle EMG with ALSNet (Hassan et al., ICASSP 2022).",
    )
    parser.add_argument("--version", action="version", version=f"alsnet {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            mod = importlib.import_module(f"alsnet.commands.{name}")
        except ModuleNotFoundError as e:
            if e.name == f"alsnet.commands.{name}":
                continue  # subcommand not built yet
            raise
        mod.register(sub)
    return parser


def _format_warning(message, category, filename, lineno, line=None):
    return f"warning: {message}\n"


def main(argv: list[str] | None = None) -> int:
    warnings.formatwarning = _format_warning
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_ERROR
    try:
        return int(args.func(args) or 0)
    except AlsnetError as e:
        print(f"alsnet {args.command}: error: {e}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print(f"alsnet {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
