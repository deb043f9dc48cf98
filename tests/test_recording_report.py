"""The per-recording HTML report: self-contained, every section, and it renders in Chromium."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import numpy as np
import pytest

from alsnet.cli.main import main
from alsnet.data.simulate import simulate_dataset
from alsnet.diagnosis.predict import DISCLAIMER

REPO = Path(__file__).resolve().parents[1]
SECTIONS = ("Result", "Trace and signal quality", "Evidence", "Motor-unit potentials", "Model card", "Windows")


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> tuple[Path, str]:
    tmp = tmp_path_factory.mktemp("report")
    rec = simulate_dataset(tmp / "sim", n_subjects={"als": 1}, recordings_per_subject=1, duration_s=6.0,
                           seed=1, progress=False)[0]
    out = tmp / "out" / "report.html"
    assert main(["predict", str(rec), "--backend", "torch", "--threads", "1", "--report", str(out)]) == 0
    return out, out.read_text(encoding="utf-8")


def test_the_report_has_every_section_the_disclaimer_and_no_outside_references(report):
    _, page = report
    for s in SECTIONS:
        assert f"<h2>{s}</h2>" in page
    assert page.count(DISCLAIMER) == 2                                 # top and bottom
    assert len(re.findall(r'src="data:image/png;base64,', page)) >= 3  # trace, evidence, MUAPs
    assert not re.search(r'(src|href)="(https?:|file:|/)', page)      # self-contained
    assert "biceps brachii reference" in page and "Referanseverdier" in page
    assert "Subject-wise evaluation" in page and "<h3>Limits</h3>" in page
    rows = re.findall(r"<tr><td>(\d+)</td><td>([\d.]+)</td><td>([\d.]+|not scored)</td>", page)
    assert [int(r[0]) for r in rows] == list(range(6))


def test_predict_prints_where_the_report_is(report, capsys, tmp_path):
    out, _ = report
    rec = next((out.parent.parent / "sim").glob("*.hea"))
    assert main(["predict", str(rec), "--backend", "torch", "--threads", "1", "--report", str(tmp_path)]) == 0
    assert f"  report: {tmp_path / (rec.stem + '.html')}" in capsys.readouterr().out


def test_a_report_for_a_recording_that_cannot_be_scored_is_not_written_and_the_others_are(tmp_path, capsys):
    good = simulate_dataset(tmp_path / "sim", n_subjects={"normal": 1}, recordings_per_subject=1, duration_s=3.0,
                            seed=0, progress=False)[0]
    short = tmp_path / "short.npy"
    np.save(short, np.zeros(100, np.float32))
    code = main(["predict", str(good), str(short), "--fs", "23437.5", "--backend", "torch", "--report",
                 str(tmp_path / "reports")])
    err = capsys.readouterr().err
    assert code == 1 and "short.npy" in err and err.strip().count("\n") == 0
    assert sorted(p.name for p in (tmp_path / "reports").iterdir()) == [good.stem + ".html"]


@pytest.mark.skipif(not Path("/usr/bin/chromium").is_file(),
                    reason="Chromium not installed (apt-get install -y chromium); the page is not rendered")
def test_the_report_renders_in_headless_chromium(report, tmp_path):
    sys.path.insert(0, str(REPO / "scripts"))
    from check_report_browser import check

    out, _ = report
    assert check(out, tmp_path / "shot.png") == []


@pytest.mark.slow
def test_the_demo_ends_with_the_report_of_a_held_out_recording(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path / "demo"), "--subjects", "3", "--recordings", "1",
                 "--epochs", "1"]) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert last.startswith("what a clinician reads: the report of held-out recording N2001")
    page = Path(last.rsplit(": ", 1)[1])
    assert page == tmp_path / "demo" / "recording_report.html"
    text = page.read_text(encoding="utf-8")
    assert "<h2>Motor-unit potentials</h2>" in text and DISCLAIMER in text
    test_records = {ln.split(",")[0] for ln in (tmp_path / "demo" / "run" / "predictions.csv").read_text()
                    .splitlines()[1:]}
    assert last.split("held-out recording ")[1].split(" ")[0] in test_records
