"""Window quality control: injected artefacts are flagged with their reasons, clean EMG is not."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from alsnet.data.dataset import recording_windows
from alsnet.data.io import read_recording
from alsnet.data.simulate import draw_subject, simulate_recording
from alsnet.data.windows import MODEL_FS, WINDOW_SAMPLES
from alsnet.diagnosis.qc import QC_REASONS, check_policy, describe_flags, window_metrics, window_qc
from alsnet.errors import AlsnetError

T = np.arange(WINDOW_SAMPLES) / MODEL_FS


def _inject(w: np.ndarray) -> np.ndarray:
    """Windows 2, 4, 6, 8, 9 spoilt: clipped, a 1-mV excursion, flat, 30 µV of 50 Hz, a gap."""
    x = w.copy()
    rail = 0.4 * np.abs(x[2]).max()
    x[2] = np.clip(x[2], -rail, rail)
    x[4] += 1000.0 * np.sin(np.pi * np.clip((T - 0.3) / 0.2, 0, 1))   # 200-ms movement artefact
    x[6, 5000:8000] = x[6, 5000]                                      # 128 ms of a dead electrode
    x[8] += 30.0 * np.sin(2 * np.pi * 50.0 * T)
    x[9, 100:200] = np.nan
    return x


EXPECTED = [[], [], ["clipping"], [], ["baseline"], [], ["flat"], [], ["mains"], ["invalid"], []]


def _real_windows(real_data_dir, record: str) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rec = read_recording(real_data_dir / f"{record}.hea")
    return recording_windows(rec).windows


def test_artefacts_injected_into_a_real_recording_are_flagged_with_the_right_reasons(real_data_dir):
    w = _real_windows(real_data_dir, "N2001C01BB51")
    assert window_qc(w) == [[] for _ in range(11)]                    # the clean recording
    assert window_qc(_inject(w)) == EXPECTED


@pytest.mark.slow
def test_clean_real_control_recordings_have_few_flags(real_data_dir):
    qc = [q for p in sorted(real_data_dir.glob("N2001C0[1-3]*.hea"))
          for q in window_qc(_real_windows(real_data_dir, p.stem))]
    flagged = sum(1 for q in qc if q)
    assert len(qc) > 600
    assert flagged / len(qc) < 0.02, describe_flags(qc)


def test_artefacts_injected_into_simulated_emg_are_flagged_and_clean_emg_is_not():
    rng = np.random.default_rng(3)
    x = simulate_recording("normal", draw_subject("normal", rng), duration_s=11.0, fs=MODEL_FS, rng=rng)
    w = x[:11 * WINDOW_SAMPLES].reshape(11, WINDOW_SAMPLES).astype(np.float64)
    assert window_qc(w) == [[] for _ in range(11)]
    assert window_qc(_inject(w)) == EXPECTED


def test_a_constant_window_is_flat_not_clipped_and_an_amplifier_at_its_rail_is_both():
    w = np.zeros((2, WINDOW_SAMPLES))
    rng = np.random.default_rng(0)
    w[1] = rng.normal(0, 20, WINDOW_SAMPLES)
    w[1, 10000:12000] = 2500.0                                        # saturated for 85 ms
    assert window_qc(w) == [["flat"], ["clipping", "baseline", "flat"]]


def test_mains_needs_a_line_above_the_spectrum_around_it():
    rng = np.random.default_rng(1)
    noise = rng.normal(0, 200, (2, WINDOW_SAMPLES))                   # loud broadband EMG-like noise
    noise[1] += 25.0 * np.sin(2 * np.pi * 60.0 * T)
    m = window_metrics(noise)
    assert m["mains_uv"][1] == pytest.approx(25.0, rel=0.25)
    assert window_qc(noise) == [[], ["mains"]]


def test_reasons_come_in_the_documented_order_and_are_counted_in_one_line():
    qc = [[], ["baseline"], ["clipping", "baseline"]]
    assert describe_flags(qc) == "2 of 3 windows flagged: clipping 1, baseline 2"
    assert describe_flags([[]]) == "0 of 1 windows flagged"
    assert QC_REASONS == ("clipping", "baseline", "flat", "mains", "invalid")


def test_unknown_policy_is_a_one_line_error():
    assert check_policy("drop") == "drop"
    with pytest.raises(AlsnetError, match="unknown quality-control policy 'skip'; choose from flag, drop"):
        check_policy("skip")


def test_predict_lists_each_windows_reasons_and_drop_leaves_flagged_windows_out(tmp_path, capsys):
    import json

    from alsnet.cli.main import main

    rng = np.random.default_rng(3)
    x = simulate_recording("normal", draw_subject("normal", rng), duration_s=11.0, fs=MODEL_FS, rng=rng)
    w = _inject(x[:11 * WINDOW_SAMPLES].reshape(11, WINDOW_SAMPLES).astype(np.float64))
    p = tmp_path / "spoilt.npy"
    np.save(p, w.reshape(-1).astype(np.float32))
    assert main(["predict", str(p), "--fs", str(MODEL_FS), "--backend", "torch", "--json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert [win["qc"] for win in row["windows"]] == EXPECTED
    assert [win["index"] for win in row["windows"]] == list(range(11))
    assert row["windows"][3]["start_s"] == pytest.approx(3 * WINDOW_SAMPLES / MODEL_FS)
    assert row["windows"][9]["probabilities"] is None and row["n_windows_used"] == 10   # the gap: not scored
    assert set(row["windows"][4]["probabilities"]) == {"normal", "als"}
    assert main(["predict", str(p), "--fs", str(MODEL_FS), "--backend", "torch", "--qc", "drop", "--json"]) == 0
    (dropped,) = json.loads(capsys.readouterr().out)
    assert dropped["n_windows_used"] == 6 and dropped["windows"][4]["probabilities"] is None
    assert main(["predict", str(p), "--fs", str(MODEL_FS), "--backend", "torch"]) == 0
    out = capsys.readouterr().out
    assert "quality: 5 of 11 windows flagged: clipping 1, baseline 1, flat 1, mains 1, invalid 1; windows 2 " \
           "(clipping), 4 (baseline), 6 (flat), 8 (mains), 9 (invalid)" in out


def test_an_unknown_qc_policy_on_the_command_line_is_a_usage_error(tmp_path, capsys):
    from alsnet.cli.main import main

    p = tmp_path / "x.npy"
    np.save(p, np.zeros(WINDOW_SAMPLES, np.float32))
    assert main(["predict", str(p), "--fs", str(MODEL_FS), "--qc", "skip"]) == 2
    assert capsys.readouterr().err.strip() == "alsnet predict: error: --qc 'skip': choose from flag, drop"
