"""alsnet explain: evidence positions and the figure."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from alsnet.cli.main import main
from alsnet.data.windows import MODEL_FS, WINDOW_SAMPLES
from alsnet.diagnosis.explain import evidence, explain_recording
from alsnet.model.checkpoint import save_model
from alsnet.model.network import RECEPTIVE_FIELD
from test_predict import emg, fitted_model


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    torch.set_num_threads(1)
    d = tmp_path_factory.mktemp("explain")
    save_model(d / "m", fitted_model(), {"task": "als-vs-normal"})
    return d / "m.safetensors"


def test_evidence_gives_every_channel_once_strongest_first_at_its_max_position():
    model = fitted_model()
    x = np.stack([emg(0.2, MODEL_FS, seed=s) for s in range(2)])
    ev = evidence(model, x)
    assert len(ev) == 2
    with torch.no_grad():
        feats = model.embed(torch.from_numpy(x)[:, None])
    for i, e in enumerate(ev):
        assert sorted(c for _, c, _, _ in e) == list(range(128)) and {m for *_, m in e} == {0}
        w = [wt for _, _, wt, _ in e]
        assert w == sorted(w, reverse=True)
        for t, c, _, _ in e[:5]:
            assert RECEPTIVE_FIELD // 2 <= t < x.shape[1] - RECEPTIVE_FIELD // 2
            assert feats[i, c, t - RECEPTIVE_FIELD // 2] == feats[i, c].max()


def test_an_ensembles_evidence_is_each_members_share_of_the_mean_logit(tmp_path):
    """Every channel of every member once, its weight the member's own evidence divided by the
    number of members (they add up to the evidence for the mean logit); explain runs on such a
    model and names the member of each position."""
    members = [fitted_model(seed=s) for s in (0, 1)]
    x = np.stack([emg(0.2, MODEL_FS, seed=s) for s in range(2)])
    ev = evidence(members, x)
    for i, e in enumerate(ev):
        assert sorted((m, c) for _, c, _, m in e) == [(m, c) for m in (0, 1) for c in range(128)]
        for m, net in enumerate(members):
            own = {c: (t, w) for t, c, w, _ in evidence(net, x[i:i + 1])[0]}
            for t, c, w, mm in e:
                if mm == m:
                    assert t == own[c][0] and w == pytest.approx(own[c][1] / 2, rel=1e-4, abs=1e-7)
    save_model(tmp_path / "e", members, {"task": "als-vs-normal"})
    np.save(tmp_path / "r.npy", emg(2.0, MODEL_FS, seed=5))
    s = explain_recording(tmp_path / "r.npy", tmp_path / "e.png", model=tmp_path / "e.safetensors", fs=MODEL_FS)
    assert (tmp_path / "e.png").is_file()
    assert all(e["member"] in (0, 1) for win in s["evidence"] for e in win)


def test_explain_writes_a_png_and_summarises_each_window(model_path, tmp_path):
    x = emg(3.0, MODEL_FS)
    x[int(1.5 * MODEL_FS):int(1.5 * MODEL_FS) + 10] = np.nan   # window 1 is dropped
    np.save(tmp_path / "r.npy", x)
    s = explain_recording(tmp_path / "r.npy", tmp_path / "fig.png", model=model_path, fs=MODEL_FS)
    assert (tmp_path / "fig.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (s["n_windows"], s["n_windows_used"]) == (3, 2)
    assert s["evidence"][1] == [] and len(s["evidence"][0]) == 3
    assert all(0 <= e["time_s"] < 3 * WINDOW_SAMPLES / MODEL_FS for e in s["evidence"][2])


def test_explain_cli(model_path, tmp_path, capsys):
    np.save(tmp_path / "r.npy", emg(1.2, 8000.0))
    rc = main(["explain", str(tmp_path / "r.npy"), "-o", str(tmp_path / "f.png"), "--fs", "8000",
               "--model", str(model_path), "--max-windows", "1"])
    assert rc == 0 and (tmp_path / "f.png").is_file()
    assert "wrote" in capsys.readouterr().out


def test_three_class_evidence_is_for_the_predicted_class_or_the_one_asked(tmp_path):
    save_model(tmp_path / "m3", fitted_model(n_outputs=3), {"task": "three-class"})
    x = emg(2.0, MODEL_FS, seed=4)
    np.save(tmp_path / "r.npy", x)
    s = explain_recording(tmp_path / "r.npy", tmp_path / "a.png", model=tmp_path / "m3.safetensors", fs=MODEL_FS)
    mean = np.mean(s["window_probabilities"], axis=0)
    assert s["target"] == s["classes"][int(np.argmax(mean))]       # what drove the answer
    other = next(c for c in s["classes"] if c != s["target"])
    t = explain_recording(tmp_path / "r.npy", tmp_path / "b.png", model=tmp_path / "m3.safetensors",
                          fs=MODEL_FS, target=other)
    assert t["target"] == other and t["evidence"] != s["evidence"]
    ev = evidence(fitted_model(n_outputs=3), x[None, :WINDOW_SAMPLES], target=s["classes"].index(other))[0]
    assert t["evidence"][0][0]["weight"] == pytest.approx(ev[0][2], rel=1e-4)


def test_a_binary_model_explains_only_its_positive_class(model_path, tmp_path, capsys):
    np.save(tmp_path / "r.npy", emg(1.2, MODEL_FS))
    rc = main(["explain", str(tmp_path / "r.npy"), "-o", str(tmp_path / "f.png"), "--fs", str(MODEL_FS),
               "--model", str(model_path), "--target", "normal"])
    assert rc == 3 and "one logit" in capsys.readouterr().err
    rc = main(["explain", str(tmp_path / "r.npy"), "-o", str(tmp_path / "f.png"), "--fs", str(MODEL_FS),
               "--model", str(model_path), "--target", "myopathy"])
    assert rc == 3 and "not a class of this model" in capsys.readouterr().err


def test_the_probability_panel_draws_the_models_decision_threshold_not_one_half(tmp_path, monkeypatch):
    """A card whose decision rule was fitted (offset +0.55 on log P(ALS)) decides at
    P(ALS) >= 1 / (1 + e^0.55); the figure's line is there, and the windows' colours follow it."""
    from matplotlib.axes import Axes

    lines, bars = [], []
    real_line, real_bar = Axes.axhline, Axes.bar
    monkeypatch.setattr(Axes, "axhline", lambda self, y=0, *a, **k: lines.append(y) or real_line(self, y, *a, **k))
    monkeypatch.setattr(Axes, "bar", lambda self, x, h, *a, **k: bars.append((list(h), list(k["color"])))
                        or real_bar(self, x, h, *a, **k))
    save_model(tmp_path / "m", fitted_model(), {"task": "als-vs-normal",
                                                "decision_rule": {"offsets": [0.0, 0.55], "fitted_on": "test"}})
    np.save(tmp_path / "r.npy", emg(3.0, MODEL_FS, seed=2))
    explain_recording(tmp_path / "r.npy", tmp_path / "f.png", model=tmp_path / "m.safetensors", fs=MODEL_FS)
    threshold = 1 / (1 + np.exp(0.55))
    assert lines == [pytest.approx(threshold)]
    (heights, colours), = bars
    assert colours == ["tab:red" if h >= threshold else "tab:green" for h in heights]
