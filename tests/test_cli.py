"""The command line: subcommands, exit codes, machine-readable output, untrusted pickles."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pandas as pd
import pytest

from alsnet import __version__
from alsnet.cli.main import (
    COMMAND_MODULES,
    EXIT_OK,
    EXIT_SOME_FAILED,
    EXIT_UNUSABLE,
    EXIT_USAGE,
    build_parser,
    inputs_exit_code,
    main,
)


def test_help_lists_every_subcommand_with_its_summary(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    assert list(sub.choices) == list(COMMAND_MODULES)
    helps = {a.dest: a.help for a in sub._choices_actions}
    for name in COMMAND_MODULES:
        assert helps[name] and f"{name:<5}" in out and helps[name][:30] in " ".join(out.split())


def run_cli(capsys, *argv) -> tuple[int, str, str]:
    rc = main([str(a) for a in argv])
    out = capsys.readouterr()
    return rc, out.out, out.err


@pytest.mark.parametrize("argv,code,message", [
    ([], EXIT_USAGE, "usage: alsnet"),
    (["predict"], EXIT_USAGE, "the following arguments are required: PATH"),
    (["simulate", "x", "--classes", "bogus"], EXIT_USAGE, "--classes: unknown class bogus"),
    (["export", "--model", "nonsense", "--onnx", "x.onnx"], EXIT_UNUSABLE, "unknown model 'nonsense'"),
    (["report", "/nonexistent/run"], EXIT_UNUSABLE, "/nonexistent/run: not a folder"),
    (["explain", "/nonexistent/x.npy", "-o", "x.png"], EXIT_UNUSABLE, "/nonexistent/x.npy: file not found"),
    (["train", "--data", "d"], EXIT_UNUSABLE, "--data and --out are required"),
])
def test_every_command_maps_errors_to_the_documented_exit_codes(capsys, argv, code, message):
    try:
        rc = main(argv)
    except SystemExit as e:  # argparse exits by itself on a usage error
        rc = e.code
    assert rc == code
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_data_info_exits_0_1_or_3_as_none_some_or_all_inputs_fail(tmp_path, capsys):
    np.save(tmp_path / "good.npy", np.random.default_rng(0).normal(size=30000))
    (tmp_path / "bad.csv").write_text("1,2\n3,4\n")
    good, bad, gone = tmp_path / "good.npy", tmp_path / "bad.csv", tmp_path / "gone"
    assert run_cli(capsys, "data", "info", good, "--fs", 23437.5)[0] == EXIT_OK
    rc, out, err = run_cli(capsys, "data", "info", good, bad, "--fs", 23437.5, "--json")
    assert rc == EXIT_SOME_FAILED and err.count("\n") == 1 and "bad.csv: CSV must have exactly one column" in err
    info = json.loads(out)
    assert (info["schema_version"], info["alsnet_version"], info["n_failed"]) == (1, __version__, 1)
    assert [r["record"] for r in info["recordings"]] == ["good"]
    assert info["summary"]["recordings"] == 1
    rc, out, err = run_cli(capsys, "data", "info", bad, gone, "--fs", 23437.5)
    assert rc == EXIT_UNUSABLE and out == "" and len(err.splitlines()) == 2
    assert err.splitlines()[1] == f"alsnet data info: error: {gone}: no such file or directory"


def test_inputs_exit_code_is_3_only_when_every_input_failed():
    assert [inputs_exit_code(f, 4) for f in (0, 1, 3, 4)] == [EXIT_OK, 1, 1, EXIT_UNUSABLE]
    assert inputs_exit_code(0, 0) == EXIT_OK


@pytest.mark.slow
def test_train_json_prints_the_metrics_summary_of_its_run_folder(tmp_path, capsys):
    """A baseline (no network) on a few simulated subjects: the JSON is what metrics.json holds."""
    assert main(["simulate", str(tmp_path / "sim"), "--subjects-per-class", "2", "--classes", "als,normal",
                 "--recordings", "1", "--duration", "2", "--quiet"]) == 0
    capsys.readouterr()
    rc, out, _ = run_cli(capsys, "train", "--data", tmp_path / "sim", "--model", "knn", "--protocol",
                         "subject-holdout", "--out", tmp_path / "run", "--n-boot", 10, "--quiet", "--json")
    assert rc == 0
    got = json.loads(out)
    assert got["schema_version"] == 1 and got["run_dir"] == str(tmp_path / "run")
    on_disk = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert got["metrics"] == on_disk
    assert got["metrics"]["window"]["n"] == 4 and got["metrics"]["model"] == "knn"


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
    assert rc == EXIT_UNUSABLE and "--trust-pickle" in err and "Traceback" not in err
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
