"""Quantitative MUAP analysis: measures of known waveforms, units found in noise, real-data classes."""

from __future__ import annotations

import json

import numpy as np
import pytest

from alsnet.cli.main import main
from alsnet.data.simulate import simulate_dataset
from alsnet.diagnosis.muap import analyse_many, analyse_recording, analyse_signal, compare_reference, measure

FS = 23437.5


def _triphasic(amp_uv: float, width_ms: float, fs: float = FS) -> np.ndarray:
    """A triphasic MUAP-like waveform: the second derivative of a Gaussian, peak-to-peak ``amp_uv``."""
    t = np.arange(-15, 15, 1e3 / fs)
    s = width_ms / 2
    w = (1 - (t / s) ** 2) * np.exp(-0.5 * (t / s) ** 2)
    return amp_uv * w / np.ptp(w)


def test_measures_of_a_triphasic_potential_are_those_of_its_shape():
    w = _triphasic(600.0, 2.0)
    m = measure(w, FS, int(np.argmax(w)))
    assert m["amplitude_uv"] == pytest.approx(600.0, rel=1e-6)
    assert m["phases"] == 3 and m["turns"] == 3                          # trough, peak, trough
    above = np.abs(w) >= 15.0                                         # the duration's level
    assert m["duration_ms"] == pytest.approx((np.flatnonzero(above)[-1] - np.flatnonzero(above)[0] + 1) * 1e3 / FS)
    area = np.abs(w[above.argmax():len(w) - above[::-1].argmax()]).sum() * 1e3 / FS
    assert m["area_uv_ms"] == pytest.approx(area, rel=1e-6)
    assert m["size_index"] == pytest.approx(2 * np.log10(0.6) + (area / 1e3) / 0.6)


def test_a_serrated_potential_has_more_turns_than_phases():
    w = _triphasic(600.0, 2.0)
    t = np.arange(len(w))
    w = w + 40.0 * np.sin(2 * np.pi * t / 12) * (np.abs(w) > 100)    # 40-µV serrations on the spike
    m = measure(w, FS, int(np.argmax(w)))
    assert m["turns"] >= 6 and m["turns"] > m["phases"]


def test_two_units_firing_in_noise_are_found_with_their_amplitudes_and_rates():
    rng = np.random.default_rng(0)
    x = rng.normal(0, 3.0, int(10 * FS))
    units = [(_triphasic(800.0, 1.5), 10.0), (-_triphasic(300.0, 2.5), 14.0)]
    for w, rate in units:
        t = 0.05
        while t < 9.9:
            i = int(t * FS)
            x[i - len(w) // 2:i - len(w) // 2 + len(w)] += w
            t += rng.normal(1 / rate, 0.1 / rate)
    found = analyse_signal(x, FS)
    assert len(found) == 2
    big, small = found
    assert big.measures["amplitude_uv"] == pytest.approx(800.0, rel=0.05)
    assert small.measures["amplitude_uv"] == pytest.approx(300.0, rel=0.05)
    assert big.measures["firing_rate_hz"] == pytest.approx(10.0, rel=0.1)
    assert small.measures["firing_rate_hz"] == pytest.approx(14.0, rel=0.1)


def test_noise_alone_has_no_motor_units():
    assert analyse_signal(np.random.default_rng(1).normal(0, 3.0, int(5 * FS)), FS) == []


def test_reference_comparison_names_the_source_and_says_when_a_muscle_has_none():
    summary = {"amplitude_uv": {"mean": 900.0}, "duration_ms": {"mean": 10.0}}
    ref = compare_reference(summary, "biceps brachii")
    assert ref["available"] and "Referanseverdier" in ref["source"]
    assert ref["measures"]["amplitude_uv"]["verdict"] == "above"           # 436 + 2 x 115 = 666 µV
    assert ref["measures"]["duration_ms"]["verdict"] == "within"
    none = compare_reference(summary, "tibialis anterior")
    assert not none["available"] and "no reference values for tibialis anterior" in none["note"]


def test_simulated_als_muaps_are_larger_and_myopathic_ones_smaller_than_normal(tmp_path):
    paths = simulate_dataset(tmp_path, n_subjects={"als": 2, "normal": 2, "myopathy": 2},
                             recordings_per_subject=2, duration_s=6.0, seed=4, progress=False)
    med = {}
    for r in analyse_many(paths):
        assert r["error"] is None and r["muscle"] == "biceps brachii"
        cls = {"A": "als", "C": "normal", "M": "myopathy"}[r["path"].split("N2001")[1][0]]
        if r["n_muaps"]:
            med.setdefault(cls, []).append(r["summary"]["amplitude_uv"]["median"])
    m = {c: np.median(v) for c, v in med.items()}
    assert m["als"] > m["normal"] > m["myopathy"]


@pytest.mark.slow
def test_real_n2001_als_amplitudes_exceed_controls_and_myopathy_is_smallest(real_data_dir):
    by_subject: dict[str, list[float]] = {}
    for p in sorted(real_data_dir.glob("N2001*.hea")):
        subject = p.stem[5:8]
        if len(by_subject.setdefault(subject, [])) < 4:               # 4 recordings of each of 19 subjects
            r = analyse_recording(p)
            if r["n_muaps"]:
                by_subject[subject].append(r["summary"]["amplitude_uv"]["median"])
    cls = {c: np.median([np.median(v) for s, v in by_subject.items() if s[0] == c and v]) for c in "ACM"}
    assert cls["A"] > 1.4 * cls["C"] and cls["M"] < cls["C"]


def test_muap_command_reports_a_bad_file_in_one_line_and_still_analyses_the_others(tmp_path, capsys):
    good = simulate_dataset(tmp_path / "sim", n_subjects={"als": 1}, recordings_per_subject=1, duration_s=4.0,
                            seed=0, progress=False)[0]
    bad = tmp_path / "broken.hea"
    bad.write_text("this is not a header\n")
    code = main(["muap", str(good), str(bad), "--json"])
    out, err = capsys.readouterr()
    assert code == 1
    assert err.strip().count("\n") == 0 and "broken.hea" in err
    rows = json.loads(out)
    assert [r["error"] is None for r in rows] == [True, False]
    first = rows[0]
    assert first["n_muaps"] == len(first["muaps"]) > 0
    assert set(first["summary"]["amplitude_uv"]) == {"median", "q1", "q3", "mean"}
    for k in ("duration_ms", "phases", "turns", "area_uv_ms", "size_index"):
        assert first["summary"][k]["median"] is not None


def test_a_recording_sampled_too_slowly_for_muap_shapes_is_refused_with_its_name(tmp_path):
    p = tmp_path / "slow.npy"
    np.save(p, np.zeros(20000, np.float32))
    from alsnet.errors import InputError

    with pytest.raises(InputError, match=r"slow\.npy: sampled at 2000 Hz"):
        analyse_recording(p, fs=2000.0)


def test_pooling_the_recordings_of_one_muscle_sums_their_muaps_and_skips_failures(tmp_path, capsys):
    paths = simulate_dataset(tmp_path, n_subjects={"normal": 1}, recordings_per_subject=3, duration_s=4.0,
                             seed=5, progress=False)
    bad = tmp_path / "bad.hea"
    bad.write_text("not a header\n")
    code = main(["muap", *map(str, paths), str(bad), "--pool", "--json"])
    out = json.loads(capsys.readouterr().out)
    assert code == 1
    per, pooled = out["recordings"], out["pooled"]
    assert pooled["n_recordings"] == 3 and pooled["n_muaps"] == sum(r["n_muaps"] for r in per if not r["error"])
    assert pooled["muscle"] == "biceps brachii" and pooled["reference"]["available"]
    assert pooled["summary"]["recruitment_ratio"] is None                # a property of one needle position
    all_amps = [m["amplitude_uv"] for r in per if not r["error"] for m in r["muaps"]]
    assert pooled["summary"]["amplitude_uv"]["median"] == pytest.approx(float(np.median(all_amps)))
