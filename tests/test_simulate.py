"""The synthetic needle-EMG generator (``alsnet simulate``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from alsnet.cli.main import main
from alsnet.data.io import read_recording
from alsnet.data.muap_model import muap_metrics
from alsnet.data.simulate import (
    ADC_GAIN,
    CLASS_RANGES,
    MODEL_FS,
    SIM_CLASSES,
    draw_sources,
    draw_subject,
    recording_chain,
    simulate_dataset,
    simulate_recording,
)
from alsnet.data.windows import make_windows
from alsnet.errors import AlsnetError

SMALL = dict(n_subjects=1, recordings_per_subject=1, duration_s=1.2)


def _bytes(paths: list[Path]) -> list[bytes]:
    return [p.read_bytes() + p.with_suffix(".bin").read_bytes() for p in paths]


def test_same_seed_writes_the_same_bytes(tmp_path):
    a = simulate_dataset(tmp_path / "a", seed=7, **SMALL)
    b = simulate_dataset(tmp_path / "b", seed=7, **SMALL)
    assert [p.name for p in a] == [p.name for p in b]
    assert _bytes(a) == _bytes(b)


def test_different_seeds_give_different_signals(tmp_path):
    a = simulate_dataset(tmp_path / "a", seed=1, **SMALL)
    b = simulate_dataset(tmp_path / "b", seed=2, **SMALL)
    for pa, pb in zip(a, b):
        assert pa.with_suffix(".bin").read_bytes() != pb.with_suffix(".bin").read_bytes()


def test_a_subject_does_not_depend_on_how_many_others_are_simulated(tmp_path):
    one = simulate_dataset(tmp_path / "one", n_subjects={"als": 1}, recordings_per_subject=1, duration_s=1.2)
    many = simulate_dataset(tmp_path / "many", n_subjects={"als": 2, "normal": 2}, recordings_per_subject=1,
                            duration_s=1.2)
    same = [p for p in many if p.name == one[0].name]
    assert _bytes(one) == _bytes(same)


def test_subjects_draw_parameters_inside_the_documented_class_ranges():
    for cls in SIM_CLASSES:
        subjects = [draw_subject(cls, np.random.default_rng(i)) for i in range(20)]
        for name, ranges in CLASS_RANGES.items():
            lo, hi = ranges[cls]
            values = [s.values[name] for s in subjects]
            assert all(lo <= v <= hi for v in values), name
            if hi > lo:
                assert len(set(values)) > 1, f"{name} does not vary between subjects"


def _window_features(cls: str, n_subjects: int = 5) -> tuple[float, float]:
    """Mean over subjects of the 1-s window's peak |µV| and zero crossings per second."""
    peaks, zcs = [], []
    for s in range(n_subjects):
        p = draw_subject(cls, np.random.default_rng([11, s]))
        x = simulate_recording(cls, p, 1.0, MODEL_FS, np.random.default_rng([12, s])).astype(float)
        x -= np.median(x)
        peaks.append(np.max(np.abs(x)))
        zcs.append(np.count_nonzero(np.diff(np.sign(x))) / 1.0)
    return float(np.mean(peaks)), float(np.mean(zcs))


def test_als_windows_have_larger_peaks_and_fewer_zero_crossings_than_myopathy():
    als_peak, als_zc = _window_features("als")
    myo_peak, myo_zc = _window_features("myopathy")
    norm_peak, _ = _window_features("normal")
    assert als_peak > 1.5 * myo_peak
    assert als_peak > norm_peak > myo_peak
    assert als_zc < myo_zc


def test_muaps_follow_the_textbook_class_differences():
    stats = {}
    for ci, cls in enumerate(SIM_CLASSES):
        rows = []
        for s in range(4):
            p = draw_subject(cls, np.random.default_rng([21, ci, s]))
            for src in draw_sources(p, "low", MODEL_FS, np.random.default_rng([22, ci, s])):
                if src.kind == "unit":
                    m = muap_metrics(src.templates[0], MODEL_FS)
                    amp = np.ptp(src.templates, axis=1)
                    rows.append((m["ptp_uv"], m["duration_ms"], m["phases"], np.std(amp) / np.mean(amp)))
        stats[cls] = np.median(np.array(rows), axis=0)
    als, normal, myo = stats["als"], stats["normal"], stats["myopathy"]
    assert als[0] > normal[0] > myo[0]  # amplitude
    assert als[1] > normal[1]  # duration
    assert als[2] >= 4  # polyphasic
    assert als[3] > 2 * normal[3]  # unstable from discharge to discharge


def test_denervation_potentials_only_in_patients():
    def kinds(p):
        return {s.kind for s in draw_sources(p, "low", MODEL_FS, np.random.default_rng(4))}

    for seed in range(5):
        assert not kinds(draw_subject("normal", np.random.default_rng(seed))) & {"fibrillation", "sharp_wave"}
    als = draw_subject("als", np.random.default_rng(3))
    als.values.update(fibrillations=5.0, sharp_waves=5.0)  # the top of the range is lower; make it certain
    assert {"fibrillation", "sharp_wave"} <= kinds(als)


def test_written_records_read_back_with_label_subject_rate_and_11_windows(tmp_path):
    paths = simulate_dataset(tmp_path, n_subjects={"als": 1, "myopathy": 1}, recordings_per_subject=1,
                             duration_s=11.18, seed=3)
    assert [p.name for p in paths] == ["N2001A01BB01.hea", "N2001M01BB01.hea"]
    for p, label, subject in zip(paths, ("als", "myopathy"), ("A01", "M01")):
        rec = read_recording(p)
        assert (rec.label, rec.subject, rec.muscle, rec.fs) == (label, subject, "BB", 23437.5)
        assert rec.n_samples == round(11.18 * 23437.5) and rec.n_invalid == 0
        assert rec.meta["byte_offset"] == 20 and rec.meta["adc_gain"] == pytest.approx(13.107)
        assert rec.meta["simulated"] == "alsnet 0.1.0 seed 3"
        assert rec.meta["electrode"] == "concentric needle" and rec.meta["level"] in ("low", "moderate")
        win = make_windows(rec.signal)
        assert win.n_windows == 11 and win.windows.shape == (11, 23437)
        assert 5 < np.std(rec.signal) < 500  # µV, not ADC units
    # .bin layout like N2001: 10 samples in the 20-byte offset, 10 after the record
    assert paths[0].with_suffix(".bin").stat().st_size == 2 * (round(11.18 * 23437.5) + 20)


def test_recording_chain_quantises_and_clips_at_the_rails():
    x = np.concatenate([np.zeros(2000), np.full(2000, 5000.0), np.full(2000, -5000.0)])
    adc = recording_chain(x, MODEL_FS)
    assert adc.dtype == np.int16
    assert adc.max() == 32767 and adc.min() == -32767  # ±2500 µV; -32768 would read as invalid
    assert 32767 / ADC_GAIN == pytest.approx(2500, abs=0.1)


def test_simulate_recording_returns_float32_uv_on_the_adc_grid():
    p = draw_subject("normal", np.random.default_rng(0))
    x = simulate_recording("normal", p, 0.5, MODEL_FS, np.random.default_rng(1))
    assert x.dtype == np.float32 and len(x) == round(0.5 * MODEL_FS)
    codes = x.astype(np.float64) * ADC_GAIN
    assert np.allclose(codes, np.round(codes), atol=1e-2)
    with pytest.raises(AlsnetError, match="does not match"):
        simulate_recording("als", p, 0.5, MODEL_FS, np.random.default_rng(1))


def test_unknown_class_is_an_alsnet_error(tmp_path):
    with pytest.raises(AlsnetError, match="unknown class"):
        draw_subject("flu", np.random.default_rng(0))
    with pytest.raises(AlsnetError, match="unknown class"):
        simulate_dataset(tmp_path, n_subjects={"flu": 1})


def test_existing_records_are_not_overwritten_without_force(tmp_path):
    simulate_dataset(tmp_path, n_subjects=2, recordings_per_subject=1, duration_s=1.1)
    with pytest.raises(AlsnetError, match="--force"):
        simulate_dataset(tmp_path, **SMALL)
    paths = simulate_dataset(tmp_path, force=True, **SMALL)
    # the earlier run's other records are gone: the folder holds exactly this run
    assert sorted(p.name for p in tmp_path.glob("*.hea")) == sorted(p.name for p in paths)


def test_force_never_deletes_real_records(tmp_path):
    real = tmp_path / "N2001C01BB01.hea"
    real.write_text("N2001C01BB01 1 23437.5 10\nN2001C01BB01.bin 16+20 13.1070/uV\n#diagnosis: healty controls\n")
    with pytest.raises(AlsnetError, match="real"):
        simulate_dataset(tmp_path, force=True, **SMALL)
    assert real.exists()


def test_cli_simulate_writes_records_and_prints_a_summary(tmp_path, capsys):
    out = tmp_path / "sim"
    rc = main(["simulate", str(out), "--subjects-per-class", "1", "--recordings", "2",
               "--duration", "1.1", "--seed", "5", "--quiet"])
    assert rc == 0
    assert "wrote 6 recordings" in capsys.readouterr().out
    assert len(list(out.glob("N2001*.hea"))) == 6
    rc = main(["simulate", str(out), "--subjects-per-class", "1", "--recordings", "1", "--duration", "1.1"])
    err = capsys.readouterr().err
    assert rc == 3 and "--force" in err and len(err.strip().splitlines()) == 1


def test_cli_class_selection(tmp_path, capsys):
    out = tmp_path / "sim"
    assert main(["simulate", str(out), "--classes", "als,myopathy", "--als", "2", "--recordings", "1",
                 "--duration", "1.1", "--quiet"]) == 0
    names = sorted(p.stem for p in out.glob("*.hea"))
    assert [n[5] for n in names] == ["A", "A", "M", "M", "M"]
    assert main(["simulate", str(tmp_path / "x"), "--classes", "als,flu"]) == 2
    assert "unknown class" in capsys.readouterr().err
