"""The ``alsnet`` command line.

Each subcommand lives in its own module of :mod:`alsnet.cli` and exposes
``register(subparsers)`` (adds its parser, sets ``func``) and keeps heavy imports inside
its run function so that ``alsnet --help`` stays fast.

Exit codes (the same for every subcommand, documented in README):

- 0 (:data:`EXIT_OK`): everything asked for was done;
- 1 (:data:`EXIT_SOME_FAILED`): some inputs failed (each named on one line), the rest were done;
- 2 (:data:`EXIT_USAGE`): a usage error (argparse's own code, or a :class:`UsageError`);
- 3 (:data:`EXIT_UNUSABLE`): nothing usable, or a model error: an :class:`AlsnetError`
  reached the edge, printed as one line, or every input of a many-input command failed;
- 70 (:data:`EXIT_INTERNAL`): a bug in alsnet (an unexpected exception): its traceback is
  printed so that it can be reported.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import traceback
import warnings

from alsnet import __version__
from alsnet.errors import AlsnetError, UsageError

#: Subcommand modules of :mod:`alsnet.cli`, in the order ``--help`` lists them.
COMMAND_MODULES = ("demo", "data", "simulate", "train", "report", "predict", "explain", "muap", "export")

EXIT_OK = 0
EXIT_SOME_FAILED = 1
EXIT_USAGE = 2
EXIT_UNUSABLE = 3
EXIT_INTERNAL = 70

#: Version of the JSON that ``--json`` prints; raised when a field changes meaning or goes.
JSON_SCHEMA_VERSION = 1


def inputs_exit_code(n_failed: int, n_inputs: int) -> int:
    """Exit code of a command over many inputs: 0 all done, 1 some failed, 3 all failed."""
    if n_failed == 0:
        return EXIT_OK
    return EXIT_UNUSABLE if n_failed >= n_inputs else EXIT_SOME_FAILED


def _plain(o: object) -> object:
    """NumPy scalars and arrays, paths: as the JSON values they stand for."""
    if hasattr(o, "tolist"):
        return o.tolist()
    return str(o)


def print_json(obj: dict | list) -> None:
    """``obj`` as indented JSON on stdout (what every ``--json`` prints)."""
    json.dump(obj, sys.stdout, indent=1, default=_plain)
    print()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="alsnet",
        description="Detect ALS from raw needle EMG with ALSNet (Hassan et al., ICASSP 2022).",
    )
    parser.add_argument("--version", action="version", version=f"alsnet {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(f"alsnet.cli.{name}").register(sub)
    return parser


def _format_warning(message: Warning | str, category: type[Warning], filename: str, lineno: int,
                    line: str | None = None) -> str:
    return f"warning: {message}\n"


def main(argv: list[str] | None = None) -> int:
    warnings.formatwarning = _format_warning
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        return int(args.func(args) or EXIT_OK)
    except UsageError as e:
        print(f"alsnet {args.command}: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except AlsnetError as e:
        print(f"alsnet {args.command}: error: {e}", file=sys.stderr)
        return EXIT_UNUSABLE
    except KeyboardInterrupt:
        print(f"alsnet {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception:  # a bug, not bad input: keep the traceback so it can be reported
        traceback.print_exc()
        print(f"alsnet {args.command}: internal error (a bug in alsnet {__version__}); "
              "please report it with the traceback above", file=sys.stderr)
        return EXIT_INTERNAL


if __name__ == "__main__":
    sys.exit(main())
