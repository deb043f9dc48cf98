"""alsnet.engine.backends: every backend and train_forward give eager's answers, fast."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from alsnet.engine import backends as fast
from alsnet.engine import winograd as fastconv
from alsnet.engine.backends import InferenceEngine, available_backends, train_forward
from alsnet.errors import AlsnetError
from alsnet.model.network import ALSNet

REPO = Path(__file__).resolve().parents[1]
KERNELS = fastconv.kernels() is not None
needs_kernels = pytest.mark.skipif(not KERNELS, reason=f"C++ kernels unavailable: {fastconv.kernels_error()}")


def make_model(n_outputs: int = 1, seed: int = 0) -> ALSNet:
    """A random ALSNet with non-trivial BatchNorm state (some negative scales)."""
    torch.manual_seed(seed)
    m = ALSNet(n_outputs=n_outputs)
    with torch.no_grad():
        m.train()
        m(torch.randn(4, 1, 800) * 50)
        for bn in (m.features[2], m.features[5], m.features[8], m.dense[2]):
            bn.weight.copy_(torch.randn_like(bn.weight))
            bn.bias.copy_(0.1 * torch.randn_like(bn.bias))
    return m.eval()


def emg(n: int, t: int, seed: int = 1) -> np.ndarray:
    return (np.random.default_rng(seed).standard_normal((n, t)) * 50).astype(np.float32)


def eager_logits(m: ALSNet, x: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return m.eval()(torch.from_numpy(x)[:, None]).numpy()


FP32 = [b for b in ("folded", "fused", "winograd", "onnx") if b in available_backends()]


@pytest.mark.parametrize("backend", FP32)
@pytest.mark.parametrize("n_outputs", [1, 3])
@pytest.mark.parametrize("n_times", [45, 1000])
def test_fp32_backends_match_eager_logits(backend, n_outputs, n_times):
    m = make_model(n_outputs)
    x = emg(5, n_times)
    ref = eager_logits(m, x)
    got = InferenceEngine(m, backend).logits(x)
    assert got.shape == ref.shape and got.dtype == np.float32
    assert np.abs(got - ref).max() <= 1e-4 * np.abs(ref).max() + 1e-6


@pytest.mark.parametrize("backend", [b for b in ("folded", "winograd") if b in available_backends()])
def test_full_one_second_windows_match_eager(backend):
    m = make_model(1)
    x = emg(2, 23437)
    ref = eager_logits(m, x)
    assert np.abs(InferenceEngine(m, backend).logits(x) - ref).max() <= 1e-4 * np.abs(ref).max()


@pytest.mark.parametrize("backend", [b for b in ("int8", "bf16") if b in available_backends()])
def test_reduced_precision_backends_run_and_stay_close(backend):
    m = make_model(1)
    x = emg(3, 600)
    ref = eager_logits(m, x)
    got = InferenceEngine(m, backend).logits(x)
    assert got.shape == (3, 1)
    assert np.abs(got - ref).max() <= 0.2 * np.abs(ref).max()  # not faithful: only sane


def test_engine_accepts_numpy_tensors_channel_axis_and_any_batch():
    m = make_model(3)
    eng = InferenceEngine(m)                      # auto
    assert eng.backend in fast.AUTO_ORDER
    assert eng.name == (f"winograd-{fastconv.kernels()}" if KERNELS else "folded")
    for n in (0, 1, 17):
        x = emg(n, 300)
        ref = eager_logits(m, x) if n else np.zeros((0, 3), np.float32)
        for form in (x, x[:, None, :], torch.from_numpy(x)):
            got = eng.logits(form)
            assert got.shape == (n, 3)
            if n:
                assert np.abs(got - ref).max() <= 1e-4 * np.abs(ref).max()


def test_engine_rejects_windows_shorter_than_the_receptive_field():
    with pytest.raises(AlsnetError, match="at least 45"):
        InferenceEngine(make_model(), "folded").logits(emg(2, 44))


def test_unknown_backend_is_an_alsnet_error():
    with pytest.raises(AlsnetError, match="unknown backend"):
        InferenceEngine(make_model(), "gpu")


def test_engine_leaves_the_model_in_its_mode_and_snapshots_weights():
    m = make_model().train()
    eng = InferenceEngine(m, "eager")
    eng.logits(emg(2, 100))
    assert m.training


@pytest.mark.parametrize("backend", [b for b in ("folded", "winograd") if b in available_backends()])
def test_long_inputs_are_scored_in_segments_with_the_same_answer(monkeypatch, backend):
    monkeypatch.setattr(fast, "MAX_SEGMENT", 300)
    m = make_model(3)
    x = emg(3, 1001)
    ref = eager_logits(m, x)
    assert np.abs(InferenceEngine(m, backend).logits(x) - ref).max() <= 1e-4 * np.abs(ref).max()


def test_auto_falls_back_to_plain_pytorch_without_kernels(monkeypatch):
    from alsnet.engine import kernels

    monkeypatch.setattr(kernels, "_state", {"isa": None, "error": "pretend no compiler"})
    assert "winograd" not in available_backends()
    m = make_model()
    assert InferenceEngine(m).name == "folded"
    x = torch.from_numpy(emg(3, 200))[:, None]
    m.train()
    assert torch.equal(train_forward(m, x), copy.deepcopy(m)(x))  # falls back to model(x)


@pytest.mark.parametrize("m,r", [(4, 9), (6, 7), (2, 3), (1, 5)])
def test_winograd_matrices_are_exact(m, r):
    AT, G, BT = fastconv.winograd_matrices(m, r)
    rng = np.random.default_rng(0)
    x, w = torch.from_numpy(rng.standard_normal(m + r - 1)), torch.from_numpy(rng.standard_normal(r))
    y = AT @ ((G @ w) * (BT @ x))
    direct = torch.stack([(w * x[i:i + r]).sum() for i in range(m)])
    assert torch.allclose(y, direct, rtol=1e-12, atol=1e-12)


@needs_kernels
@pytest.mark.parametrize("n_times", [45, 46, 53, 1000, 2937])
def test_extremes_without_their_times_are_those_of_the_full_kernel(n_times):
    """Inference reduces each tile's extremes in registers (no argmax): same numbers,
    bit for bit, as the training kernel that tracks the times, for any tail of tiles."""
    g = torch.Generator().manual_seed(n_times)
    x = torch.relu(torch.randn(3, n_times - 26, 64, generator=g))
    w, b = torch.randn(128, 64, 7, generator=g) * 0.1, torch.randn(128, generator=g)
    U = fastconv.transform_weight(w, 6)
    full = fastconv.wino_conv(x, U, b, 6, 3, out=False, maxmin=True)
    fast_only = fastconv.wino_conv(x, U, b, 6, 3, out=False, maxmin=True, argmax=False)
    assert "argmm" not in fast_only
    assert torch.equal(fast_only["maxmin"], full["maxmin"])
    y = torch.nn.functional.conv1d(x.transpose(1, 2), w, b, dilation=3)
    assert torch.allclose(full["maxmin"][:, 0], y.amax(-1), atol=1e-4, rtol=1e-5)
    assert torch.allclose(full["maxmin"][:, 1], y.amin(-1), atol=1e-4, rtol=1e-5)


@needs_kernels
@pytest.mark.parametrize("n_times", [11, 12, 14, 15, 600])
def test_first_layer_kernel_matches_conv1d_for_any_tail(n_times):
    g = torch.Generator().manual_seed(n_times)
    x, w, b = torch.randn(2, n_times, generator=g), torch.randn(11, 32, generator=g), torch.randn(32, generator=g)
    out, stats = fastconv.conv1(x, w, b, relu=True, stats=True)
    ref = torch.relu(torch.nn.functional.conv1d(x[:, None], w.T[:, None, :], b)).transpose(1, 2)
    assert torch.allclose(out, ref, atol=1e-5)
    assert torch.allclose(stats[0], ref.double().sum((0, 1)), rtol=1e-5, atol=1e-4)


# --------------------------------------------------------------------------- training

def _step(m: ALSNet, x: torch.Tensor, fwd) -> tuple[torch.Tensor, dict, dict]:
    out = fwd(m, x)
    (out.square().mean() + out.sum()).backward()
    grads = {n: p.grad.clone() for n, p in m.named_parameters()}
    bufs = {n: b.clone() for n, b in m.named_buffers()}
    return out.detach(), grads, bufs


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.double() - b.double()).abs().max() / b.double().abs().max().clamp_min(1e-12))


def _assert_float_tolerance(base: ALSNet, x: torch.Tensor, slack: float = 5.0) -> None:
    """train_forward is as close to fp64 eager as fp32 eager is, within ``slack``x or 2e-4.

    fp32 eager itself can be off by 1e-3 of a gradient's largest entry (BatchNorm over a
    small batch divides by a small variance), so the yardstick is its own error; the floor
    is the Winograd kernels' (about 1e-4 of the largest entry in the worst cases seen).
    """
    x64 = x.double()
    o64, g64, b64 = _step(copy.deepcopy(base).double(), x64, lambda m, xb: m(xb))
    o32, g32, b32 = _step(copy.deepcopy(base), x, lambda m, xb: m(xb))
    of, gf, bf = _step(copy.deepcopy(base), x, train_forward)
    assert _rel(of, o64) <= max(slack * _rel(o32, o64), 2e-4)
    for name in g64:
        assert _rel(gf[name], g64[name]) <= max(slack * _rel(g32[name], g64[name]), 2e-4), name
    for name in b64:
        if "num_batches" in name:
            assert torch.equal(bf[name], b32[name])
        else:
            assert _rel(bf[name], b64[name]) <= max(slack * _rel(b32[name], b64[name]), 1e-5), name


@needs_kernels
@pytest.mark.parametrize("n_outputs", [1, 3])
@pytest.mark.parametrize("n_times", [45, 1000])
@pytest.mark.parametrize("mode", ["train", "eval"])
def test_train_forward_matches_eager_logits_gradients_and_running_stats(n_outputs, n_times, mode):
    base = make_model(n_outputs).train(mode == "train")
    _assert_float_tolerance(base, torch.from_numpy(emg(6, n_times))[:, None])


@needs_kernels
def test_direct_training_kernels_agree_to_float32_rounding(monkeypatch):
    from alsnet.engine import train_step as fasttrain

    monkeypatch.setattr(fasttrain, "TILES", {k: (1, 1) for k in fasttrain.TILES})
    _assert_float_tolerance(make_model(1).train(), torch.from_numpy(emg(4, 700))[:, None], slack=2.0)


@needs_kernels
def test_train_forward_on_a_full_window_batch():
    _assert_float_tolerance(make_model(1).train(), torch.from_numpy(emg(2, 23437))[:, None])


@needs_kernels
def test_train_forward_with_flat_channels_and_without_gradients():
    """A conv3 channel with zero weights is constant in time: every time ties for the max
    pool and is re-evaluated exactly (in bounded blocks); gradients still match eager. With
    gradients off (validation) the re-evaluation is skipped and logits match to rounding."""
    base = make_model(1).train()
    with torch.no_grad():
        base.features[6].weight[:8].zero_()
    x = torch.from_numpy(emg(3, 6000))[:, None]
    _assert_float_tolerance(base, x)
    m = copy.deepcopy(base).eval()
    with torch.no_grad():
        assert _rel(train_forward(m, x), m(x)) < 1e-4


@needs_kernels
def test_train_forward_keeps_a_cumulative_average_when_momentum_is_none():
    """Precise BatchNorm (lightning.recalibrate_bn) sets momentum None: the running
    statistics are then the plain average of the batches', as nn.BatchNorm1d keeps them."""
    eager, fast_m = make_model(), make_model()
    for m in (eager, fast_m):
        m.train()
        for bn in m.modules():
            if isinstance(bn, torch.nn.BatchNorm1d):
                bn.reset_running_stats()
                bn.momentum = None
    with torch.no_grad():
        for seed in range(3):
            x = torch.from_numpy(emg(4, 700, seed=seed))[:, None]
            eager(x)
            train_forward(fast_m, x)
    for (name, a), (_, b) in zip(eager.named_buffers(), fast_m.named_buffers()):
        if "num_batches" in name:
            assert torch.equal(a, b) and int(a) == 3, name
        else:
            assert _rel(b, a) < 1e-4, name  # float32 rounding of the Winograd features, batch of 4


def test_train_forward_falls_back_where_the_fast_path_does_not_apply():
    m = make_model().train()
    x = torch.from_numpy(emg(3, 200)).double()[:, None]
    m64 = copy.deepcopy(m).double()
    assert torch.equal(train_forward(m64, x), copy.deepcopy(m64)(x))
    xg = torch.from_numpy(emg(3, 200))[:, None].requires_grad_(True)
    out = train_forward(copy.deepcopy(m), xg)
    out.sum().backward()
    assert xg.grad is not None                    # model(x) path: input gradient available


# --------------------------------------------------------------------------- benchmark harness

@pytest.mark.slow
def test_quick_benchmark_reports_numbers_for_each_path(tmp_path):
    out = tmp_path / "bench.json"
    md = tmp_path / "perf.md"
    md.write_text("# Performance\n\nhand-written text stays\n")
    res = subprocess.run([sys.executable, str(REPO / "benchmarks" / "bench.py"), "--quick", "--json", str(out),
                          "--markdown", str(md)], capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-2000:]
    data = json.loads(out.read_text())
    assert data["ratios"]["inference"] > 0 and data["ratios"]["training"] > 0
    assert {"cpu", "cores", "torch"} <= set(data["machine"])
    for e in data["paths"].values():
        assert e["windows_per_s"] > 0 and e["peak_rss_mb"] > 0
    assert all(v["agreement"] >= 0.995 for v in data["parity"]["paths"].values())
    text = md.read_text()
    assert "hand-written text stays" in text and "bench.py" in text and "| path |" in text
