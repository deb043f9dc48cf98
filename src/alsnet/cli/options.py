"""Options shared by the subcommands that read recordings: one definition, one meaning."""

from __future__ import annotations

import argparse


def add_reader_options(p: argparse.ArgumentParser) -> None:
    """``--fs``, ``--scale``, ``--channel``: how to read files that do not say it themselves.

    A data set's ``labels.csv`` may give them per recording (columns ``fs``, ``scale``,
    ``channel``); those win over the command line.
    """
    g = p.add_argument_group("reading files (WFDB, EDF/BDF carry their own rate and units)")
    g.add_argument("--fs", type=float, default=None, metavar="HZ", help="sampling rate of .npy/.csv files")
    g.add_argument("--scale", type=float, default=None, metavar="UV", help="µV per unit of .wav/.npy/.csv samples")
    g.add_argument("--channel", type=int, default=None, metavar="N",
                   help="signal of a multi-channel file (BIDS: among the EMG channels of _channels.tsv)")


def add_dataset_options(p: argparse.ArgumentParser) -> None:
    """Reader options, and ``--label-column``: the ``participants.tsv`` column of a BIDS data set's classes."""
    add_reader_options(p)
    p.add_argument("--label-column", default=None, metavar="NAME",
                   help="BIDS data sets: participants.tsv column holding the class (default diagnosis)")


def reader_options(args: argparse.Namespace) -> dict:
    """The reader options given on the command line (those left out are not passed)."""
    return {k: getattr(args, k) for k in ("fs", "scale", "channel", "label_column")
            if getattr(args, k, None) is not None}


__all__ = ["add_dataset_options", "add_reader_options", "reader_options"]
