"""alsnet.engine.kernels: the C++ extension is built for this CPU, checked before it is
loaded, and every way it can be missing or damaged still gives correct results."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from alsnet.data.windows import MODEL_FS
from alsnet.diagnosis.predict import Predictor
from alsnet.engine import kernels

ISA = kernels.ensure()
needs_kernels = pytest.mark.skipif(ISA is None, reason=f"C++ kernels unavailable: {kernels.error()}")
WARNING = "C++ kernels unavailable"


def emg_file(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    x = rng.normal(0, 20, int(2.5 * MODEL_FS)).astype(np.float32)
    x[::500] += 400  # a few spikes
    np.save(tmp_path / "rec.npy", x)
    return tmp_path / "rec.npy"


def predict_cli(tmp_path: Path, rec: Path, **env: str) -> tuple[int, dict | None, str]:
    """``alsnet predict --json`` in a fresh process with its own kernel cache under ``tmp_path``."""
    full = {k: v for k, v in os.environ.items() if k not in ("TORCH_EXTENSIONS_DIR", "ALSNET_KERNELS", "CXX")}
    full.update({"ALSNET_CACHE_DIR": str(tmp_path / "cache"), **env})
    if ISA is not None:  # the build this process loaded (and copy_build copies), also where ALSNET_KERNELS forced it
        full.setdefault("ALSNET_KERNELS", ISA)
    res = subprocess.run([sys.executable, "-m", "alsnet.cli.main", "predict", "--json", "--threads", "1",
                          "--fs", str(MODEL_FS), str(rec)], capture_output=True, text=True, env=full, timeout=600)
    out = json.loads(res.stdout)[0] if res.returncode in (0, 1) and res.stdout.strip() else None
    return res.returncode, out, res.stderr


def eager_probabilities(rec: Path) -> dict:
    return Predictor(backend="torch").predict(rec, fs=MODEL_FS)["probabilities"]


def assert_same_probabilities(got: dict, ref: dict) -> None:
    assert set(got) == set(ref)
    for k in ref:
        assert got[k] == pytest.approx(ref[k], abs=1e-4), k


def copy_build(tmp_path: Path) -> Path:
    """This machine's build copied into the cache that :func:`predict_cli` uses."""
    src = kernels.build_dir(ISA)
    dst = tmp_path / "cache" / "kernels" / src.name
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copytree(src, dst)
    return dst


def test_without_a_compiler_one_warning_names_the_slower_path_and_results_are_right(tmp_path):
    rec = emg_file(tmp_path)
    rc, out, err = predict_cli(tmp_path, rec, CXX="/nonexistent/c++")
    assert rc == 0, err
    lines = [ln for ln in err.splitlines() if WARNING in ln]
    assert len(lines) == 1, err
    assert "no C++ compiler" in lines[0] and "folded" in lines[0]
    assert_same_probabilities(out["probabilities"], eager_probabilities(rec))
    assert out["backend"] == "folded"


@needs_kernels
def test_a_truncated_cached_library_is_refused_not_loaded(tmp_path):
    """Without a compiler to rebuild it: one line names the truncation, scoring is right."""
    rec = emg_file(tmp_path)
    lib = copy_build(tmp_path) / f"alsnet_kernels_{ISA}.so"
    lib.write_bytes(lib.read_bytes()[: lib.stat().st_size // 3])
    rc, out, err = predict_cli(tmp_path, rec, CXX="/nonexistent/c++")
    assert rc == 0, err                                  # not SIGBUS (-7)
    (line,) = [ln for ln in err.splitlines() if WARNING in ln]
    assert "does not match its recorded digest" in line and "folded" in line
    assert_same_probabilities(out["probabilities"], eager_probabilities(rec))
    assert out["backend"] == "folded"


@needs_kernels
def test_a_truncated_cached_library_is_rebuilt_where_a_compiler_exists(tmp_path):
    rec = emg_file(tmp_path)
    folder = copy_build(tmp_path)
    lib = folder / f"alsnet_kernels_{ISA}.so"
    lib.write_bytes(lib.read_bytes()[:4096])
    rc, out, err = predict_cli(tmp_path, rec)
    assert rc == 0, err
    assert WARNING not in err and "building the C++ kernels" in err
    assert kernels.check_build(folder, ISA) is None     # the new library matches its manifest
    assert_same_probabilities(out["probabilities"], eager_probabilities(rec))
    assert out["backend"] == f"winograd-{ISA}"


@needs_kernels
@pytest.mark.parametrize("key,value", [("torch", "2.0.0+cpu"), ("isa", "avx2" if ISA == "avx512" else "avx512"),
                                       ("source_sha256", "0" * 64), ("abi", 1)])
def test_a_build_recorded_for_another_torch_cpu_or_source_is_refused(tmp_path, key, value):
    folder = copy_build(tmp_path)
    man = json.loads((folder / "manifest.json").read_text())
    man[key] = value
    (folder / "manifest.json").write_text(json.dumps(man))
    assert kernels.check_build(folder, ISA).startswith(f"built for {key} ")


@needs_kernels
def test_a_missing_or_garbled_manifest_is_refused(tmp_path):
    folder = copy_build(tmp_path)
    assert kernels.check_build(folder, ISA) is None
    (folder / "manifest.json").write_text("{not json")
    assert kernels.check_build(folder, ISA).startswith("unreadable manifest")
    (folder / "manifest.json").unlink()
    assert kernels.check_build(folder, ISA) == "no manifest"


def test_kernels_disabled_by_the_environment_warn_nothing_and_score_right(tmp_path):
    rec = emg_file(tmp_path)
    rc, out, err = predict_cli(tmp_path, rec, ALSNET_KERNELS="0", CXX="/nonexistent/c++")
    assert rc == 0 and WARNING not in err, err
    assert_same_probabilities(out["probabilities"], eager_probabilities(rec))
    assert out["backend"] == "folded"
    assert not (tmp_path / "cache" / "kernels").exists()  # nothing was built or looked for


def test_an_unknown_kernels_setting_is_one_line_and_exit_3(tmp_path):
    rc, _, err = predict_cli(tmp_path, emg_file(tmp_path), ALSNET_KERNELS="sse2")
    assert rc == 3
    msg = "alsnet predict: error: ALSNET_KERNELS='sse2': expected 0, auto, avx512 or avx2"
    assert err.strip().splitlines() == [msg]


def test_the_build_follows_the_cpu_flags(monkeypatch):
    all_flags = {"avx512f", "avx512bw", "avx512dq", "avx512vl", "avx2", "fma", "sse4_2"}
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: "AVX512")
    monkeypatch.setattr(kernels, "cpu_flags", lambda: all_flags)
    assert kernels.detect_isa() == "avx512"
    monkeypatch.setattr(kernels, "cpu_flags", lambda: all_flags - {"avx512bw"})
    assert kernels.detect_isa() == "avx2"
    monkeypatch.setattr(kernels, "cpu_flags", lambda: {"sse4_2", "avx"})
    assert kernels.detect_isa() is None
    # PyTorch's capability (OS support, ATEN_CPU_CAPABILITY) can only lower the choice
    monkeypatch.setattr(kernels, "cpu_flags", lambda: all_flags)
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: "AVX2")
    assert kernels.detect_isa() == "avx2"


def test_the_cache_lives_where_the_environment_says(monkeypatch, tmp_path):
    monkeypatch.setenv("ALSNET_CACHE_DIR", str(tmp_path / "a"))
    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", str(tmp_path / "t"))
    assert kernels.cache_root() == tmp_path / "a" / "kernels"
    monkeypatch.delenv("ALSNET_CACHE_DIR")
    assert kernels.cache_root() == tmp_path / "t" / "alsnet"
    assert kernels.build_dir("avx2").parent == tmp_path / "t" / "alsnet"


@needs_kernels
def test_operators_check_their_tensors_with_a_message_naming_the_argument():
    w, b = torch.zeros(11, 32), torch.zeros(32)
    with pytest.raises(RuntimeError, match="alsnet::conv1: x must be Float"):
        torch.ops.alsnet.conv1(torch.zeros(2, 100, dtype=torch.float64), w, b, torch.empty(2, 90, 32), True, False)
    with pytest.raises(RuntimeError, match=r"alsnet::conv1: out must be \(2, 90, 32\)"):
        torch.ops.alsnet.conv1(torch.zeros(2, 100), w, b, torch.empty(2, 91, 32), True, False)
    with pytest.raises(RuntimeError, match="alsnet::conv1: x must be contiguous"):
        torch.ops.alsnet.conv1(torch.zeros(100, 2).T, w, b, torch.empty(2, 90, 32), True, False)
    assert torch.ops.alsnet.isa() == ISA and torch.ops.alsnet.abi_version() == kernels.ABI


@needs_kernels
@pytest.mark.skipif(ISA != "avx512", reason=f"needs the AVX-512 build to compare with (here: {ISA})")
def test_the_avx2_build_gives_the_same_logits_on_an_avx512_machine(tmp_path):
    """Both builds are correct where both run (the AVX2 one is what other machines get)."""
    code = ("import numpy as np, torch; from alsnet.engine.backends import InferenceEngine;"
            "from alsnet.model.network import ALSNet; torch.manual_seed(0); m = ALSNet(n_outputs=3).eval();"
            "x = np.random.default_rng(0).normal(0, 50, (3, 4000)).astype(np.float32);"
            "e = InferenceEngine(m, 'winograd'); print(e.name);"
            "np.save('out.npy', np.stack([e.logits(x), InferenceEngine(m, 'eager').logits(x)]))")
    env = {**os.environ, "ALSNET_KERNELS": "avx2"}
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=tmp_path,
                         timeout=600)
    assert res.returncode == 0, res.stderr
    assert res.stdout.split() == ["winograd-avx2"]
    got, ref = np.load(tmp_path / "out.npy")
    assert np.abs(got - ref).max() <= 1e-4 * np.abs(ref).max()


@needs_kernels
def test_a_rebuild_keeps_only_object_files_the_manifest_vouches_for(tmp_path):
    folder = copy_build(tmp_path)
    kernels._clear(folder, ISA)                       # intact objects: relink only
    assert sorted(p.name for p in folder.glob("*.o")) == ["ops.o", "pointwise.o", "winograd.o"]
    assert not (folder / f"alsnet_kernels_{ISA}.so").exists() and not (folder / "manifest.json").exists()
    folder = copy_build(tmp_path / "second")
    (folder / "winograd.o").write_bytes(b"\0" * 100)    # one damaged object: everything goes
    kernels._clear(folder, ISA)
    assert list(folder.iterdir()) == []


def test_runs_and_cards_are_told_which_backend_computes_them(monkeypatch):
    from alsnet.engine.backends import describe

    if ISA:
        assert describe("auto", True) == {"inference": f"winograd-{ISA}", "training_step": f"fast-{ISA}",
                                          "kernels": ISA, "tiles": {"inference": [6, 8], "training_step": {
                                              "forward": [4, 6], "input_grad": [6, 8], "weight_grad": [6, 8]}}}
        assert describe("folded", False) == {"inference": "folded", "training_step": "eager", "kernels": ISA}
    monkeypatch.setattr(kernels, "_state", {"isa": None, "error": "no C++ compiler"})
    assert describe("auto", True) == {"inference": "folded", "training_step": "eager", "kernels": None,
                                      "kernels_unavailable": "no C++ compiler"}


@needs_kernels
def test_exact_conv2_outputs_are_float64_direct_convolutions_and_indices_are_checked():
    from alsnet.engine import refine

    g = torch.Generator().manual_seed(0)
    r1 = torch.relu(torch.randn(2, 300, 32, generator=g))
    conv = torch.nn.Conv1d(32, 64, 9, dilation=2)
    a1 = torch.rand(32, generator=g, dtype=torch.float64) + 0.5
    s1 = torch.randn(32, generator=g, dtype=torch.float64)
    h1 = (r1.double() * a1 + s1).transpose(1, 2)
    ref = torch.nn.functional.conv1d(h1, conv.weight.double(), conv.bias.double(), dilation=2)  # (2, 64, 284)
    n, t, c = torch.tensor([0, 1, 1]), torch.tensor([0, 283, 100]), torch.tensor([5, 63, 0])
    got = refine.exact_z2(r1, n, t, c, conv, a1, s1)
    assert got.dtype == torch.float64
    assert torch.allclose(got, ref[n, c, t], rtol=1e-12, atol=1e-12)
    with pytest.raises(RuntimeError, match="alsnet::exact_conv: t out of range"):
        refine.exact_z2(r1, n, torch.tensor([0, 284, 100]), c, conv, a1, s1)



@needs_kernels
def test_exact_conv3_outputs_are_float64_direct_convolutions_of_the_whole_stack():
    from alsnet.engine import refine

    g = torch.Generator().manual_seed(1)
    r1 = torch.relu(torch.randn(2, 300, 32, generator=g))
    conv2, conv3 = torch.nn.Conv1d(32, 64, 9, dilation=2), torch.nn.Conv1d(64, 128, 7, dilation=3)
    a1, a2 = (torch.rand(k, generator=g, dtype=torch.float64) + 0.5 for k in (32, 64))
    s1, s2 = (torch.randn(k, generator=g, dtype=torch.float64) for k in (32, 64))
    h1 = (r1.double() * a1 + s1).transpose(1, 2)
    z2 = torch.nn.functional.conv1d(h1, conv2.weight.double(), conv2.bias.double(), dilation=2)    # (2, 64, 284)
    rows = refine.exact_z2_rows(r1, torch.tensor([1, 0]), torch.tensor([283, 7]), conv2, a1, s1)
    assert rows.shape == (2, 64) and rows.dtype == torch.float64
    assert torch.allclose(rows, torch.stack([z2[1, :, 283], z2[0, :, 7]]), rtol=1e-12, atol=1e-12)
    h2 = z2.clamp_min(0) * a2[:, None] + s2[:, None]
    z3 = torch.nn.functional.conv1d(h2, conv3.weight.double(), conv3.bias.double(), dilation=3)    # (2, 128, 266)
    n, t, c = torch.tensor([0, 1, 1, 0, 0]), torch.tensor([0, 265, 100, 101, 0]), torch.tensor([5, 127, 0, 0, 6])
    for block in (16384, 2):    # candidates in one block and across blocks
        got = refine.exact_z3(r1, n, t, c, conv2, conv3, a1, s1, a2, s2, block=block)
        assert torch.allclose(got, z3[n, c, t], rtol=1e-12, atol=1e-12)
    with pytest.raises(RuntimeError, match="alsnet::exact_rows: t out of range"):
        refine.exact_z2_rows(r1, torch.tensor([0]), torch.tensor([284]), conv2, a1, s1)
    w3 = conv3.weight.detach().double().permute(0, 2, 1).contiguous()
    with pytest.raises(RuntimeError, match="alsnet::exact_taps: idx out of range"):
        torch.ops.alsnet.exact_taps(rows, torch.full((1, 7), 2), torch.tensor([0]), w3, conv3.bias.double(), a2, s2,
                                    True)

_FAULTS = r"""
import resource, sys, torch
from alsnet.engine.backends import keep_freed_memory
kept = keep_freed_memory() if sys.argv[1] == "keep" else None
faults = []
for _ in range(20):   # 200 MB, above glibc's mmap threshold; the first rounds (up to ~9 seen) grow the heap
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    t = torch.ones(50_000_000); del t
    faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
print(kept, sum(faults[-4:]))
"""


@needs_kernels
def test_training_keeps_freed_memory_instead_of_faulting_in_fresh_pages():
    """keep_freed_memory (called by training): freed 200-MB blocks are reused, not returned
    to the kernel and faulted back in zeroed (~49,000 page faults of 4 kB each time)."""
    import subprocess
    import sys

    out = {}
    for mode in ("keep", "default"):
        r = subprocess.run([sys.executable, "-c", _FAULTS, mode], capture_output=True, text=True, check=True)
        out[mode] = r.stdout.split()
    assert out["keep"][0] == "True"
    assert int(out["default"][1]) > 4 * 40_000    # every page faulted in again, every round
    assert int(out["keep"][1]) < 1_000             # the heap's own pages, reused
