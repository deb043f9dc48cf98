"""Windows: counts, overlap, resampling to the model rate, and the invalid-sample policy."""

from __future__ import annotations

import numpy as np
import pytest

from alsnet.data.windows import (
    MAX_OVERLAP,
    MIN_FS,
    MODEL_FS,
    WINDOW_SAMPLES,
    WindowResult,
    make_windows,
    resample_ratio,
    resample_to_model_rate,
    resampled_length,
    window_hop,
    window_starts,
)
from alsnet.errors import InputError

N2001_SAMPLES = 262124  # every N2001 recording: 11.18 s at 23437.5 Hz


def test_window_is_one_second_at_the_n2001_rate():
    assert MODEL_FS == 23437.5 and WINDOW_SAMPLES == 23437


def test_an_n2001_recording_gives_11_non_overlapping_windows():
    x = np.random.default_rng(0).normal(0, 100, N2001_SAMPLES).astype(np.float32)
    w = make_windows(x)
    assert isinstance(w, WindowResult)
    assert w.windows.shape == (11, WINDOW_SAMPLES) and w.windows.dtype == np.float32
    assert w.n_windows == 11 and w.n_dropped == 0
    np.testing.assert_array_equal(w.starts, np.arange(11) * WINDOW_SAMPLES)
    np.testing.assert_array_equal(w.windows[3], x[3 * WINDOW_SAMPLES:4 * WINDOW_SAMPLES])


@pytest.mark.parametrize("overlap,expected", [(0.0, 11), (0.5, 21), (0.75, 41)])
def test_overlap_shortens_the_hop_and_adds_windows(overlap, expected):
    hop = window_hop(overlap)
    assert hop == round(WINDOW_SAMPLES * (1 - overlap))
    starts = window_starts(N2001_SAMPLES, overlap)
    assert len(starts) == expected == (N2001_SAMPLES - WINDOW_SAMPLES) // hop + 1
    assert np.all(np.diff(starts) == hop) and starts[-1] + WINDOW_SAMPLES <= N2001_SAMPLES
    assert make_windows(np.zeros(N2001_SAMPLES), overlap=overlap).n_windows == expected


@pytest.mark.parametrize("overlap", [-0.1, 1.0, MAX_OVERLAP + 0.01, float("nan"), "half"])
def test_overlap_outside_its_range_is_refused(overlap):
    with pytest.raises(InputError, match="overlap"):
        make_windows(np.zeros(N2001_SAMPLES), overlap=overlap)


def test_a_recording_shorter_than_one_window_is_refused_with_its_length():
    with pytest.raises(InputError, match=r"rec\.npy: recording is 23436 samples .*shorter than one"):
        make_windows(np.zeros(WINDOW_SAMPLES - 1), name="rec.npy")
    assert make_windows(np.zeros(WINDOW_SAMPLES)).n_windows == 1
    assert len(window_starts(100)) == 0


def test_4_khz_record_is_resampled_with_the_exact_ratio_and_keeps_a_sines_frequency_and_amplitude():
    fs, f0, amp = 4000.0, 200.0, 150.0
    assert resample_ratio(fs) == (375, 64)  # 23437.5 / 4000 exactly
    n = 3 * 4000
    x = amp * np.sin(2 * np.pi * f0 * np.arange(n) / fs)
    y = resample_to_model_rate(x, fs)
    assert len(y) == resampled_length(n, fs) == int(np.ceil(n * 375 / 64)) == 70313
    assert y.dtype == np.float32
    core = y[5000:-5000].astype(np.float64)  # away from the filter's edge effects
    spectrum = np.abs(np.fft.rfft(core * np.hanning(len(core))))
    freqs = np.fft.rfftfreq(len(core), 1 / MODEL_FS)
    assert freqs[np.argmax(spectrum)] == pytest.approx(f0, abs=MODEL_FS / len(core))
    assert np.sqrt(np.mean(core**2)) == pytest.approx(amp / np.sqrt(2), rel=0.01)
    t = (np.arange(len(y)) / MODEL_FS)[5000:-5000]
    np.testing.assert_allclose(core, amp * np.sin(2 * np.pi * f0 * t), atol=0.01 * amp)
    assert len(make_windows(y).windows) == 3


def test_the_model_rate_passes_through_unchanged():
    x = np.arange(30000, dtype=np.float32)
    np.testing.assert_array_equal(resample_to_model_rate(x, MODEL_FS), x)


def test_odd_rates_use_a_cheap_ratio_within_a_hundredth_of_a_percent():
    for fs in (1001.3, 1234.567, 3999.9, 44100.0, 2048.0, 9.9e6):
        up, down = resample_ratio(fs)
        assert max(up, down) <= 50_000
        assert up / down == pytest.approx(MODEL_FS / fs, rel=1e-4)
    assert resample_ratio(2048.0) == (46875, 4096)  # exact where affordable


@pytest.mark.parametrize("fs", [0.0, -4000.0, float("nan"), float("inf"), MIN_FS / 2, 1e8, "fast"])
def test_rates_that_cannot_be_resampled_are_refused_naming_the_recording(fs):
    with pytest.raises(InputError, match=r"^r\.npy: .*sampling rate"):
        resample_to_model_rate(np.zeros(10), fs, name="r.npy")


def test_invalid_samples_stay_invalid_after_resampling():
    x = np.random.default_rng(2).normal(0, 100, 8000)
    x[4000:4010] = np.nan
    y = resample_to_model_rate(x, 4000.0)
    bad = np.flatnonzero(np.isnan(y))
    # Input samples 4000-4009 span 1 - 1.0025 s; the NaNs sit there, a sample or two wider.
    assert bad.min() / MODEL_FS == pytest.approx(1.0, abs=2 / 4000)
    assert bad.max() / MODEL_FS == pytest.approx(4010 / 4000, abs=2 / 4000)
    assert np.isfinite(np.delete(y, bad)).all()


def _with_invalid() -> np.ndarray:
    x = np.random.default_rng(3).normal(0, 100, N2001_SAMPLES).astype(np.float32)
    x[[10, 30000, 30001, 5 * WINDOW_SAMPLES + 7]] = np.nan  # windows 0, 1 and 5
    return x


def test_drop_is_the_default_policy_and_reports_how_many_windows_it_dropped():
    w = make_windows(_with_invalid())
    assert w.n_windows == 11 and w.n_dropped == 3 and len(w.windows) == 8
    np.testing.assert_array_equal(w.starts // WINDOW_SAMPLES, [2, 3, 4, 6, 7, 8, 9, 10])
    assert np.isfinite(w.windows).all()


def test_keep_zero_keeps_every_window_with_invalid_samples_at_zero_microvolts():
    x = _with_invalid()
    w = make_windows(x, invalid="keep-zero")
    assert len(w.windows) == 11 and w.n_dropped == 0
    assert w.windows[0, 10] == 0.0 and w.windows[1, 30000 - WINDOW_SAMPLES] == 0.0
    assert np.isfinite(w.windows).all()
    assert w.windows[0, 11] == x[11]


def test_error_policy_raises_naming_the_recording_and_the_first_bad_window():
    with pytest.raises(InputError, match=r"rec\.hea: 3 of 11 window\(s\) contain invalid samples "
                                         r"\(4 in all; the first such window starts at 0\.000 s\)"):
        make_windows(_with_invalid(), invalid="error", name="rec.hea")


def test_a_recording_whose_every_window_is_invalid_is_refused_under_drop():
    x = np.zeros(2 * WINDOW_SAMPLES, np.float32)
    x[[5, WINDOW_SAMPLES + 5]] = np.nan
    with pytest.raises(InputError, match=r"all 2 window\(s\) contain invalid samples"):
        make_windows(x, name="r")


def test_unknown_policy_and_non_1d_input_are_refused():
    with pytest.raises(InputError, match="policy"):
        make_windows(np.zeros(N2001_SAMPLES), invalid="interpolate")
    with pytest.raises(InputError, match="1-D"):
        make_windows(np.zeros((2, N2001_SAMPLES)))
