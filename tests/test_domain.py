"""Out-of-domain warnings: a 4 kHz tibialis record is warned about, N2001-like biceps records are not."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.signal import resample_poly

from alsnet.cli.main import main
from alsnet.data.domain import muscle_of, training_domain, window_stats, windowset_domain
from alsnet.data.simulate import draw_subject, simulate_dataset, simulate_recording
from alsnet.data.windows import MODEL_FS, WINDOW_SAMPLES
from alsnet.diagnosis.domain import N2001_DOMAIN, card_domain, domain_warnings
from alsnet.diagnosis.predict import Predictor


def _write_4khz_record(tmp_path, muscle: str = "tibialis anterior"):
    """A PhysioNet-style record: 4 kHz, another muscle, nothing above 2 kHz."""
    import wfdb

    rng = np.random.default_rng(5)
    x = simulate_recording("normal", draw_subject("normal", rng), duration_s=8.0, fs=MODEL_FS, rng=rng)
    y = resample_poly(x.astype(np.float64), 64, 375)                  # 23437.5 Hz -> 4000 Hz, anti-aliased
    wfdb.wrsamp("emg_healthy", fs=4000, units=["uV"], sig_name=["EMG"], p_signal=y[:, None], fmt=["16"],
                adc_gain=[10.0], baseline=[0], write_dir=str(tmp_path), comments=[f"muscle: {muscle}"])
    return tmp_path / "emg_healthy.hea"


@pytest.fixture(scope="module")
def predictor():
    return Predictor("als-vs-normal", backend="torch", threads=1)


def test_a_4khz_record_of_another_muscle_gets_out_of_domain_warnings(tmp_path, predictor):
    r = predictor.predict(_write_4khz_record(tmp_path))
    assert r["error"] is None and r["label"] in ("normal", "als")        # a warning, not a refusal
    text = " | ".join(r["warnings"])
    assert "sampled at 4000 Hz, so it holds nothing above 2000 Hz" in text
    assert "of its power lies above 2000 Hz" in text
    assert "recorded from the tibialis anterior; the model was trained on the biceps brachii" in text


def test_a_simulated_biceps_record_at_the_n2001_rate_gets_no_warning(tmp_path, predictor):
    path = simulate_dataset(tmp_path, n_subjects={"normal": 1}, recordings_per_subject=1, duration_s=6.0,
                            seed=2, progress=False)[0]
    assert predictor.predict(path)["warnings"] == []


def test_an_n2001_biceps_record_gets_no_warning(real_data_dir, predictor):
    for record in ("N2001A01BB01", "N2001C01BB51", "N2001M02BB61"):
        assert predictor.predict(real_data_dir / f"{record}.hea")["warnings"] == [], record


def test_predict_prints_one_warning_line_and_json_carries_the_list(tmp_path, capsys):
    hea = _write_4khz_record(tmp_path)
    assert main(["predict", str(hea), "--backend", "torch"]) == 0
    out = capsys.readouterr().out
    lines = [ln for ln in out.splitlines() if "warning:" in ln]
    assert len(lines) == 1 and "outside the model's training domain" in lines[0]
    assert main(["predict", str(hea), "--backend", "torch", "--json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert len(row["warnings"]) == 3


def test_amplitudes_far_outside_the_training_windows_are_warned_about():
    rng = np.random.default_rng(0)
    loud = rng.normal(0, 5000.0, (3, WINDOW_SAMPLES))                  # 5 mV RMS: a wrong unit (mV read as µV)
    w = domain_warnings(N2001_DOMAIN, fs=MODEL_FS, muscle="biceps brachii", stats=window_stats(loud))
    (rms,) = [s for s in w if s.startswith("its median window RMS is ")]
    assert float(rms.split()[5]) == pytest.approx(5000.0, rel=0.01) and "7.119-160.5 µV" in rms


def test_a_fold_records_the_muscles_of_its_windows_records():
    dom = windowset_domain(np.random.default_rng(2).normal(0, 40, (5, WINDOW_SAMPLES)),
                           ["N2001A01BB01", "N2001C02BB03", "N2001C02BB03"])
    assert dom["muscles"] == ["biceps brachii"] and dom["n_windows"] == 5
    assert dom["window_stats"]["rms_uv"]["p50"] == pytest.approx(40.0, rel=0.05)


def test_a_card_without_a_domain_record_is_compared_with_n2001_and_says_so():
    dom, note = card_domain({"task": "als-vs-normal"})
    assert dom is N2001_DOMAIN and "no domain record" in note
    own = training_domain(np.random.default_rng(1).normal(0, 30, (20, WINDOW_SAMPLES)), rates=[23437.5],
                          muscles=["BB"], metas=[{"high-pass filter": "2 Hz", "low-pass filter": "10 kHz"}])
    assert card_domain({"domain": own}) == (own, None)
    assert own["muscles"] == ["biceps brachii"] and own["analogue_band_hz"] == [2.0, 10000.0]
    assert own["window_stats"]["rms_uv"]["p50"] == pytest.approx(30.0, rel=0.05)


def test_muscle_names_come_from_n2001_codes_and_header_comments():
    assert muscle_of("N2001A01BB01") == "biceps brachii"
    assert muscle_of("rec", {"muscle": "Biceps brachii (long head)"}) == "biceps brachii"
    assert muscle_of("rec", {"muscle": "Tibialis anterior"}) == "tibialis anterior"
    assert muscle_of("rec", {}) is None
