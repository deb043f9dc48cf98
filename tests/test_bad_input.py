"""Bad-input corpus: every malformed file is an AlsnetError naming the file and the problem,
and on the command line one line on stderr, a non-zero exit, no traceback, while the other
files of the same call are still processed. The table in docs/robustness.md lists these cases.
"""

from __future__ import annotations

import json
import pickle
import re
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from scipy.io import wavfile

from alsnet.cli.main import build_parser, main
from alsnet.data.dataset import recording_windows
from alsnet.data.io import SignalQualityWarning, read_recording
from alsnet.data.windows import WINDOW_SAMPLES
from alsnet.errors import AlsnetError, InputError
from test_io import write_n2001


@dataclass
class Case:
    id: str
    path: Path
    problem: str  # regex the message must match after "PATH: "
    needs_rate: bool = True  # the CLI call gives --fs/--scale; False for "no rate given" cases


def _hea(folder: Path, name: str, text: str | bytes, bin_bytes: bytes | None = b"\0" * 2020) -> Path:
    hea = folder / f"{name}.hea"
    hea.write_bytes(text if isinstance(text, bytes) else text.encode())
    if bin_bytes is not None:
        (folder / f"{name}.bin").write_bytes(bin_bytes)
    return hea


def make_corpus(root: Path) -> list[Case]:
    """Write every bad input into ``root``; return the cases."""
    root.mkdir(parents=True, exist_ok=True)
    W = root / "wfdb"
    c: list[Case] = []
    add = lambda i, p, problem, **kw: c.append(Case(i, p, problem, **kw))  # noqa: E731

    hea = write_n2001(W, "N2001A01BB01")
    (W / "N2001A01BB01.bin").unlink()
    add("wfdb-missing-bin", hea, r"signal file N2001A01BB01\.bin named by the header is missing")
    hea = write_n2001(W, "N2001A01BB02")
    (W / "N2001A01BB02.bin").write_bytes((W / "N2001A01BB02.bin").read_bytes()[:1021])
    add("wfdb-truncated-bin", hea, r"header says 1000 samples but the file holds 500 \(from byte offset 20\)")
    add("wfdb-sample-count-too-large", write_n2001(W, "N2001A01BB03", np.zeros(1000), n=5000),
        r"header says 5000 samples but the file holds 1010")
    add("wfdb-offset-beyond-file", _hea(W, "offset", "offset 1 23437.5 1000\n"
                                                     "offset.bin 16+1000000 13.1070/uV\n"),
        r"header byte offset 1000000 is beyond the end of the file")
    add("wfdb-unknown-format", _hea(W, "fmt99", "fmt99 1 23437.5 1000\nfmt99.bin 99+20 13.1070/uV\n"),
        r"unknown WFDB signal format '99'")
    add("wfdb-rate-zero", write_n2001(W, "N2001A01BB05", fs="0"), r"sampling rate must be positive, got '0'")
    add("wfdb-rate-negative", write_n2001(W, "N2001A01BB06", fs="-23437.5"),
        r"sampling rate must be positive, got '-23437.5'")
    add("wfdb-rate-not-a-number", write_n2001(W, "N2001A01BB07", fs="fast"),
        r"sampling rate is not a number: 'fast'")
    add("wfdb-rate-infinite", write_n2001(W, "N2001A01BB08", fs="inf"),
        r"sampling rate must be a finite positive number, got 'inf'")
    add("wfdb-header-not-utf8", _hea(W, "latin1", "latin1 1 23437.5 1000\nlatin1.bin 16+20 13.1070/uV\n"
                                                   "#contributor: M\xfcller\n".encode("latin-1")),
        r"WFDB header is not UTF-8 text \(byte 0xfc at offset \d+\)")
    add("wfdb-header-garbage-line", _hea(W, "garbage", "garbage 1 23437.5 1000\n"
                                                      "garbage.bin 16+20 13.1070/uV\n#age: 56\n"
                                                      "these are not comments\n"),
        r"header line 4 is neither one of the 1 signal line\(s\) nor a comment")
    add("wfdb-header-control-chars", _hea(W, "ctrl", "ctrl 1 23437.5\x00 1000\nctrl.bin 16+20 13/uV\n"),
        r"header line 1 holds control characters")
    add("wfdb-multichannel", _hea(W, "two", "two 2 10000 1000\ntwo.bin 16 1/uV 16 0 0 0 0 a\n"
                                            "two.bin 16 1/uV 16 0 0 0 0 b\n", b"\0" * 4000),
        r"record has 2 signals \(a, b\); choose one with channel=/--channel")
    add("wfdb-empty-hea", _hea(W, "emptyhea", b""), r"WFDB header is empty")
    add("wfdb-empty-bin", _hea(W, "emptybin", "emptybin 1 23437.5 1000\nemptybin.bin 16+20 13.1/uV\n", b""),
        r"signal file is empty")
    add("wfdb-missing-hea", _orphan_bin(W), r"WFDB header \(\.hea\) not found")
    add("wfdb-no-signal-line", _hea(W, "nosig", "nosig 1 23437.5 1000\n#diagnosis: ALS\n"),
        r"header declares 1 signal\(s\) but has 0 signal line\(s\)")
    add("wfdb-sample-count-negative", _hea(W, "negn", "negn 1 23437.5 -5\nnegn.bin 16+20 13.1/uV\n"),
        r"number of samples must be a positive integer, got '-5'")
    add("wfdb-no-sample-count", _hea(W, "non", "non 1 23437.5\nnon.bin 16+20 13.1/uV\n"),
        r"does not give the number of samples")
    add("wfdb-file-outside-folder", _hea(W, "escape", "escape 1 23437.5 10\n../escape.bin 16 13.1/uV\n"),
        r"signal file '\.\./escape\.bin' is not a plain file name")
    add("wfdb-all-invalid", write_n2001(W, "N2001A01BB10", adu=np.full(1000, -32768)),
        r"all 1000 samples are invalid")
    add("wfdb-unknown-unit", _hea(W, "furlong", "furlong 1 23437.5 1000\nfurlong.bin 16 13/furlong\n"),
        r"unknown signal unit 'furlong'")
    add("wfdb-multi-frequency", _hea(W, "spf", "spf 1 23437.5 500\nspf.bin 16x2 13/uV\n"),
        r"2 samples per frame \(multi-frequency records\) are not supported")
    add("wfdb-multi-segment", _hea(W, "seg", "seg/2 1 23437.5 1000\nseg_1 500\nseg_2 500\n"),
        r"multi-segment WFDB records are not supported")

    A = root / "arrays"
    A.mkdir()
    np.save(A / "object.npy", np.array([1.0, "a", None], dtype=object), allow_pickle=True)
    add("npy-object-dtype", A / "object.npy", r"holds Python objects \(a pickled array\)")
    np.save(A / "complex.npy", np.ones(1000, complex))
    add("npy-complex-dtype", A / "complex.npy", r"samples must be real numbers, got dtype complex128")
    np.save(A / "strings.npy", np.array(["1.0", "2.0"]))
    add("npy-string-dtype", A / "strings.npy", r"samples must be real numbers, got dtype <U3")
    np.save(A / "two_channels.npy", np.zeros((1000, 2)))
    add("npy-2d-multichannel", A / "two_channels.npy", r"expected one channel, got an array of shape \(1000, 2\)")
    np.save(A / "all_nan.npy", np.full(1000, np.nan))
    add("npy-all-nan", A / "all_nan.npy", r"all 1000 samples are invalid")
    np.save(A / "all_inf.npy", np.full(1000, np.inf))
    add("npy-all-inf", A / "all_inf.npy", r"all 1000 samples are invalid")
    np.save(A / "truncated.npy", np.zeros(1000))
    (A / "truncated.npy").write_bytes((A / "truncated.npy").read_bytes()[:900])
    add("npy-truncated", A / "truncated.npy", r"truncated: header declares shape \(1000,\)")
    np.save(A / "no_rate.npy", np.zeros(1000))
    add("npy-no-rate", A / "no_rate.npy", r"carries no sampling rate; give fs= / --fs", needs_rate=False)
    (A / "text.npy").write_text("1.0\n2.0\n")
    add("npy-not-npy", A / "text.npy", r"not a \.npy file")
    np.save(A / "empty.npy", np.zeros(0))
    add("npy-no-samples", A / "empty.npy", r"recording holds no samples")
    (A / "zero_bytes.npy").write_bytes(b"")
    add("file-empty", A / "zero_bytes.npy", r"file is empty")
    (A / "text.csv").write_text("uV\n1.0\n2.0\nthree\n")
    add("csv-with-text", A / "text.csv", r"CSV line 4 is not a number: 'three'")
    (A / "two_cols.csv").write_text("1,2\n3,4\n")
    add("csv-two-columns", A / "two_cols.csv", r"CSV must have exactly one column")
    (A / "latin1.csv").write_bytes("uV\n1\n\xb5\n".encode("latin-1"))
    add("csv-not-utf8", A / "latin1.csv", r"CSV is not UTF-8 text")
    wavfile.write(A / "zero_length.wav", 23437, np.zeros(0, np.int16))
    add("wav-zero-length", A / "zero_length.wav", r"WAV holds no samples")
    wavfile.write(A / "stereo.wav", 23437, np.zeros((1000, 2), np.int16))
    add("wav-stereo", A / "stereo.wav", r"WAV has 2 channels; alsnet needs one")
    (A / "fake.wav").write_bytes(b"ID3\x03 an mp3, say")
    add("wav-not-wav", A / "fake.wav", r"not a WAV file \(no RIFF/WAVE header\)")
    (A / "truncated.wav").write_bytes(b"RIFF\x10\x00\x00\x00WAVEjunk")
    add("wav-truncated-header", A / "truncated.wav", r"cannot read WAV \(Unexpected end of file\.\)")
    (A / "no_fmt.wav").write_bytes(b"RIFF\x10\x00\x00\x00WAVEnot really")
    add("wav-no-fmt-chunk", A / "no_fmt.wav", r"WAV header is malformed or truncated")
    (A / "fake.edf").write_bytes(b"0       " + b"x" * 248)
    add("edf-not-edf", A / "fake.edf", r"cannot read EDF")
    (A / "signal.mat").write_bytes(b"MATLAB 5.0")
    add("unknown-file-type", A / "signal.mat", r"unknown file type '\.mat'")
    add("file-missing", A / "nothere.npy", r"file not found")
    (A / "folder.npy").mkdir()
    add("folder-not-file", A / "folder.npy", r"not a regular file")  # data info: "no recordings found"
    return c


def _orphan_bin(W: Path) -> Path:
    (W / "orphan.bin").write_bytes(b"\0" * 100)
    return W / "orphan.bin"


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> list[Case]:
    return make_corpus(tmp_path_factory.mktemp("bad"))


with tempfile.TemporaryDirectory() as _tmp:  # case ids, for one test per case
    CASE_IDS = [c.id for c in make_corpus(Path(_tmp) / "ids")]


def test_the_corpus_covers_every_case_listed_in_the_docs():
    assert len(CASE_IDS) == len(set(CASE_IDS)) >= 45
    doc = Path(__file__).resolve().parents[1] / "docs" / "robustness.md"
    if doc.is_file():
        text = doc.read_text(encoding="utf-8")
        assert [i for i in CASE_IDS if f"`{i}`" not in text] == []


@pytest.mark.parametrize("case_id", CASE_IDS)
def test_a_bad_file_raises_an_input_error_naming_the_file_and_the_problem(corpus, case_id):
    case = next(c for c in corpus if c.id == case_id)
    kw = {"fs": 23437.5, "scale": 1.0} if case.needs_rate else {}
    with pytest.raises(AlsnetError) as info:
        read_recording(case.path, **kw)
    e = info.value
    assert isinstance(e, InputError)
    assert e.path is not None and Path(e.path).stem == case.path.stem, str(e)
    assert str(e).startswith(f"{e.path}: ")
    assert re.search(case.problem, e.problem), e.problem
    assert "\n" not in str(e)


def test_numbers_that_are_nan_or_inf_are_invalid_samples_not_errors(tmp_path):
    np.save(tmp_path / "x.npy", np.array([1.0, np.nan, np.inf, -np.inf, 2.0, 3.0]))
    rec = read_recording(tmp_path / "x.npy", fs=4000)
    assert rec.n_invalid == 3 and np.isnan(rec.signal[1:4]).all()


def test_a_constant_signal_is_read_but_warned_about(tmp_path):
    np.save(tmp_path / "flat.npy", np.full(30000, 7.0))
    with pytest.warns(SignalQualityWarning, match=r"flat\.npy: signal is constant \(7 µV"):
        rec = read_recording(tmp_path / "flat.npy", fs=23437.5)
    assert rec.n_samples == 30000


def test_garbage_inside_header_comments_is_ignored(tmp_path):
    hea = write_n2001(tmp_path, "N2001A01BB01", comments=["\x01\x02:::", "no colon here", ": empty key",
                                                          "age: 56", "über: ✓"])
    rec = read_recording(hea)
    assert rec.n_samples == 1000 and rec.meta["age"] == "56" and rec.meta["über"] == "✓"


def test_recordings_too_short_or_wholly_invalid_for_windows_are_refused(tmp_path):
    np.save(tmp_path / "short.npy", np.random.default_rng(0).normal(size=WINDOW_SAMPLES - 1))
    with pytest.raises(InputError, match=r"short\.npy: recording is 23436 samples"):
        recording_windows(read_recording(tmp_path / "short.npy", fs=23437.5))
    x = np.random.default_rng(0).normal(size=2 * WINDOW_SAMPLES)
    x[[3, WINDOW_SAMPLES + 3]] = np.nan
    np.save(tmp_path / "holes.npy", x)
    with pytest.raises(InputError, match=r"holes\.npy: all 2 window\(s\) contain invalid samples"):
        recording_windows(read_recording(tmp_path / "holes.npy", fs=23437.5))


def _check_cli_errors(err: str, bad: list[Case]) -> None:
    assert "Traceback" not in err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    for case in bad:
        names = {case.path.name, case.path.stem + ".hea", case.path.stem + ".bin"}
        hits = [ln for ln in lines if any(f"{case.path.parent.name}/{n}:" in ln for n in names)]
        assert len(hits) == 1, (case.id, hits)
        assert "error" in hits[0], (case.id, hits[0])
    assert len(lines) == len(bad), "\n".join(lines)


def test_data_info_gives_one_line_per_bad_file_and_still_reports_the_good_ones(corpus, tmp_path, capsys):
    good = write_n2001(tmp_path / "good", "N2001C01BB01", diagnosis="healty controls")
    bad = [c for c in corpus if c.needs_rate]
    code = main(["data", "info", *map(str, (c.path for c in bad)), str(good), "--json",
                 "--fs", "23437.5", "--scale", "1"])
    out, err = capsys.readouterr()
    assert code != 0
    _check_cli_errors(err, bad)
    info = json.loads(out)
    assert [r["record"] for r in info["recordings"]] == ["N2001C01BB01"]


def test_data_info_warns_in_one_line_about_a_flat_signal_and_exits_zero(tmp_path, capsys):
    np.save(tmp_path / "flat.npy", np.zeros(30000))
    assert main(["data", "info", str(tmp_path / "flat.npy"), "--fs", "23437.5"]) == 0
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "warning" in err and "flat.npy: signal is constant" in err


@pytest.fixture(scope="module")
def random_model(tmp_path_factory) -> Path:
    import torch

    from alsnet.model.checkpoint import save_model
    from alsnet.model.network import ALSNet

    torch.manual_seed(0)
    return save_model(tmp_path_factory.mktemp("model") / "random", ALSNet(1, 1), {"task": "als-vs-normal"})


def _has_command(name: str) -> bool:
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    return name in sub.choices


@pytest.mark.skipif(not _has_command("predict"), reason="alsnet predict is not built yet")
def test_predict_gives_one_line_per_bad_file_and_still_scores_the_good_ones(corpus, tmp_path, capsys,
                                                                            random_model):
    good = write_n2001(tmp_path / "good", "N2001C01BB01", n=30000, diagnosis="healty controls")
    np.save(tmp_path / "short.npy", np.ones(1000) + np.arange(1000))
    x = np.random.default_rng(0).normal(size=2 * WINDOW_SAMPLES)
    x[[3, WINDOW_SAMPLES + 3]] = np.nan
    np.save(tmp_path / "holes.npy", x)
    extra = [Case("short", tmp_path / "short.npy", ""), Case("holes", tmp_path / "holes.npy", "")]
    bad = [c for c in corpus if c.needs_rate] + extra
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        code = main(["predict", *map(str, (c.path for c in bad)), str(good), "--json", "--model",
                     str(random_model), "--backend", "torch", "--threads", "1",
                     "--fs", "23437.5", "--scale", "1"])
    out, err = capsys.readouterr()
    assert code != 0
    _check_cli_errors(err, bad)
    results = {Path(r["path"]).name: r for r in json.loads(out)}
    assert results["N2001C01BB01.hea"]["error"] is None and results["N2001C01BB01.hea"]["n_windows"] == 1
    assert sum(r["error"] is not None for r in results.values()) == len(bad)


@pytest.mark.skipif(not _has_command("predict"), reason="alsnet predict is not built yet")
def test_predict_with_a_pickled_model_is_one_line_and_no_traceback(tmp_path, capsys):
    (tmp_path / "model.pt").write_bytes(pickle.dumps({"weights": 1}))
    np.save(tmp_path / "x.npy", np.zeros(30000))
    code = main(["predict", str(tmp_path / "x.npy"), "--fs", "23437.5", "--model", str(tmp_path / "model.pt")])
    err = capsys.readouterr().err
    assert code != 0 and "Traceback" not in err and err.count("\n") == 1
    assert "model.pt: pickled checkpoints are not loaded (unpickling runs code)" in err


# --------------------------------------------------------------------------- pickles

class _Marker:
    """Unpickling this creates ``path``: a stand-in for arbitrary code."""

    def __init__(self, path: str):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_a_malicious_pickle_is_refused_without_trust_and_runs_nothing(tmp_path):
    from alsnet.data.pickles import read_kaggle_pickle, read_kaggle_split

    marker = tmp_path / "pwned"
    (tmp_path / "X_train.pkl").write_bytes(pickle.dumps(_Marker(str(marker))))
    with pytest.raises(InputError, match=r"X_train\.pkl: refusing to unpickle: unpickling runs code"
                                         r".*pass --trust-pickle"):
        read_kaggle_pickle(tmp_path / "X_train.pkl")
    with pytest.raises(InputError, match="--trust-pickle"):
        read_kaggle_split(tmp_path)
    assert not marker.exists()


def test_a_trusted_kaggle_pickle_is_loaded_with_a_warning(tmp_path):
    pd = pytest.importorskip("pandas")
    from alsnet.data.pickles import PickleTrustWarning, read_kaggle_pickle, read_kaggle_split

    x = np.random.default_rng(0).normal(size=(4, 50))
    pd.DataFrame(x).to_pickle(tmp_path / "X_train.pkl")
    pd.Series(["ALS", "Normal", "ALS", "Normal"]).to_pickle(tmp_path / "y_train.pkl")
    with pytest.warns(PickleTrustWarning, match="can run code"):
        got = read_kaggle_pickle(tmp_path / "X_train.pkl", trust_pickle=True)
    assert got.dtype == np.float32 and got.shape == (4, 50)
    np.testing.assert_allclose(got, x, rtol=1e-6)
    with pytest.warns(PickleTrustWarning):
        split = read_kaggle_split(tmp_path, trust_pickle=True)
    assert list(split["y_train"]) == ["ALS", "Normal", "ALS", "Normal"]
    pd.Series([1, 0]).to_pickle(tmp_path / "y_train.pkl")
    with pytest.warns(PickleTrustWarning), pytest.raises(InputError, match="X_train has 4 windows but y_train has 2"):
        read_kaggle_split(tmp_path, trust_pickle=True)
