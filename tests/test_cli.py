"""The command line: every subcommand is listed, and untrusted pickles are refused."""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest

from alsnet.cli.main import COMMAND_MODULES, build_parser, main


def test_help_lists_every_subcommand(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    for name in ("demo", "data", "simulate", "train", "report", "predict", "explain", "export"):
        assert name in out
    assert set(build_parser()._subparsers._group_actions[0].choices) <= set(COMMAND_MODULES)


class _Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_kaggle_pickles_are_refused_without_trust_and_run_no_code(tmp_path, capsys):
    marker = tmp_path / "pwned"
    with open(tmp_path / "X_train.pkl", "wb") as f:
        pickle.dump(_Evil(str(marker)), f)
    rc = main(["data", "kaggle", str(tmp_path)])
    err = capsys.readouterr().err
    assert rc != 0 and "--trust-pickle" in err and "Traceback" not in err
    assert not marker.exists()


def test_trusted_kaggle_pickles_are_read_and_exported_safely(tmp_path, capsys):
    pd.DataFrame(np.zeros((4, 100))).to_pickle(tmp_path / "X_train.pkl")
    pd.Series([0, 1, 1, 0]).to_pickle(tmp_path / "y_train.pkl")
    out = tmp_path / "windows.npz"
    with pytest.warns(UserWarning):
        rc = main(["data", "kaggle", str(tmp_path), "--trust-pickle", "--export", str(out)])
    assert rc == 0
    z = np.load(out, allow_pickle=False)
    assert z["X_train"].shape == (4, 100) and list(z["y_train"]) == [0, 1, 1, 0]
    assert "classes 0: 2, 1: 2" in capsys.readouterr().out
