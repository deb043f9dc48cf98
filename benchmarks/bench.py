"""Speed, memory and parity of ALSNet's execution paths (``alsnet.engine.backends``) against eager fp32.

Usage::

    python benchmarks/bench.py --json bench.json [--markdown docs/performance.md]
    python benchmarks/bench.py --json quick.json --quick        # seconds; used by the tests

Every path is timed in the same run as the reference (plain eager fp32 ``ALSNet``: batch
16 for inference, batch 48 for a training step), in rounds that cycle through all paths
so that machine noise hits them alike; the median over rounds is reported and ratios are
medians over the reference's median. Each (path, round) runs in its own subprocess, so
its peak resident memory (``ru_maxrss``) is its own; the RSS after imports and set-up is
reported too. ``--quick`` uses tiny inputs, one round and no subprocesses.

Parity: each inference path scores real N2001 windows (``--data``, task als-vs-normal,
about 200 windows from recordings of both classes; synthetic windows when the data is
absent) with the ``--model`` weights (default: a random ALSNet whose BatchNorm statistics
come from a few train-mode batches of those windows) and is compared with eager fp32:
window-label agreement (threshold 0.5 / argmax), ROC-AUC against the true labels and the
largest logit difference. A path is *faithful* when agreement >= 99.5 % and
|delta AUC| <= 0.002 (and it is fp32 by design). ``train_forward`` is compared on one batch:
logits, every parameter gradient and the running statistics.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
INFER_PATHS = ("eager", "folded", "fused", "winograd", "onnx", "int8", "bf16", "compiled")
TRAIN_PATHS = ("eager", "fast", "fast-direct")
FP32_PATHS = {"eager", "folded", "fused", "winograd", "onnx", "compiled", "fast", "fast-direct"}
#: Paths too slow (bf16 emulation: ~0.7 windows/s) or too costly to set up (torch.compile:
#: ~30 s per process) for several rounds in a 10-minute run: fewer rounds / timed calls.
MAX_ROUNDS = {"bf16": 1, "compiled": 1}
MAX_ITERS = {"bf16": 1}
PARITY_MAX = {"bf16": 48}   # windows in the parity check (bf16 emulation is slow)
BEGIN, END = "<!-- bench:begin -->", "<!-- bench:end -->"


# --------------------------------------------------------------------------- worker side

def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


_MODELS: dict = {}


def _model(seed: int, n_outputs: int = 1, model_path: str | None = None):
    """A fresh copy of the benchmark model (weights are irrelevant to speed)."""
    import copy

    import torch

    from alsnet.model.network import ALSNet

    key = (seed, n_outputs, model_path)
    if key not in _MODELS:
        if model_path:
            from alsnet.model.checkpoint import load_model

            m = load_model(model_path).model
        else:
            torch.manual_seed(seed)
            m = ALSNet(n_outputs=n_outputs)
            with torch.no_grad():  # plausible BatchNorm statistics
                m.train()
                for _ in range(2):
                    m(torch.randn(4, 1, 1000) * 50)
        _MODELS[key] = m.eval()
    return copy.deepcopy(_MODELS[key])


def measure(kind: str, path: str, batch: int, n_times: int, iters: int, threads: int,
            model_path: str | None = None) -> dict:
    """Time ``iters`` calls of one path after one warm-up call; returns a result record."""
    import torch

    from alsnet.engine.backends import InferenceEngine, set_threads

    set_threads(threads)
    model = _model(0, model_path=model_path)
    x = torch.randn(batch, 1, n_times, generator=torch.Generator().manual_seed(1)) * 50
    rec = {"kind": kind, "path": path, "batch": batch, "n_times": n_times, "iters": iters}
    if kind == "infer":
        t0 = time.perf_counter()
        eng = InferenceEngine(model, backend=path, threads=threads)
        rec["setup_s"] = time.perf_counter() - t0
        xs = x[:, 0].numpy()
        rec["base_rss_mb"] = _rss_mb()
        t0 = time.perf_counter()
        eng.logits(xs[:2])  # code paths, kernels, compilation: a small batch is enough
        rec["warmup_s"] = time.perf_counter() - t0
        times = []
        for _ in range(iters):
            t0 = time.perf_counter()
            eng.logits(xs)
            times.append(time.perf_counter() - t0)
    else:
        from alsnet.engine import train_step as fasttrain
        from alsnet.engine.backends import keep_freed_memory, train_forward

        if path != "eager":  # as `alsnet train` does on the fast path; eager stays plain PyTorch
            rec["keep_freed_memory"] = keep_freed_memory()
        if path == "fast-direct":  # the same kernels with direct (not Winograd) convolutions
            fasttrain.TILES = {k: (1, 1) for k in fasttrain.TILES}
        fwd = (lambda m, xb: m(xb)) if path == "eager" else train_forward
        model.train()
        opt = torch.optim.Adam(model.parameters(), lr=1e-3, eps=1e-7)
        y = (torch.arange(batch) % 2).float()
        loss_fn = torch.nn.BCEWithLogitsLoss()
        rec["base_rss_mb"] = _rss_mb()

        def step():
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(fwd(model, x)[:, 0], y)
            loss.backward()
            opt.step()

        t0 = time.perf_counter()
        step()
        rec["warmup_s"] = time.perf_counter() - t0
        times = []
        for _ in range(iters):
            t0 = time.perf_counter()
            step()
            times.append(time.perf_counter() - t0)
    rec["times_s"] = times
    rec["windows_per_s"] = batch * len(times) / sum(times)
    rec["peak_rss_mb"] = _rss_mb()
    return rec


def _worker_main(argv: list[str]) -> None:
    kind, path, batch, n_times, iters, threads, model_path = argv
    try:
        rec = measure(kind, path, int(batch), int(n_times), int(iters), int(threads), model_path or None)
    except Exception as e:  # a path that cannot run here is reported, not fatal
        rec = {"kind": kind, "path": path, "error": f"{type(e).__name__}: {e}"}
    print("BENCH-RESULT " + json.dumps(rec), flush=True)


# --------------------------------------------------------------------------- parity

def parity_windows(data: str | None, n_windows: int, n_times: int, task_name: str = "als-vs-normal"):
    """``(x (n, T) float32, y, source)``: real N2001 windows of every class of the task, else synthetic."""
    import numpy as np

    if data and Path(data).is_dir():
        from alsnet.data.dataset import recording_windows
        from alsnet.data.io import find_recordings, parse_n2001_name, read_recording
        from alsnet.data.labels import get_task

        task = get_task(task_name)
        by_class: dict[int, list[Path]] = {k: [] for k in range(len(task.classes))}
        for p in find_recordings(data):
            info = parse_n2001_name(p.stem)
            code = task.code(info["label"]) if info else None
            if code is not None:
                by_class[code].append(p)
        per_class = -(-n_windows // (11 * len(by_class))) + 1        # ~11 windows per recording
        xs, ys = [], []
        for code, files in by_class.items():        # recordings spread over each class's list
            for k in range(min(per_class, len(files))):
                w = recording_windows(read_recording(files[k * len(files) // per_class])).windows
                xs.append(w[:, :n_times])
                ys.append(np.full(len(w), code))
        if xs:
            x, yy = np.concatenate(xs).astype(np.float32), np.concatenate(ys)
            keep = np.random.default_rng(0).permutation(len(x))[:n_windows]
            return x[keep], yy[keep], f"N2001 ({data})"
    rng = np.random.default_rng(0)
    x = (rng.standard_normal((n_windows, n_times)) * 50).astype(np.float32)
    y = np.arange(n_windows) % 2
    return x, y, "synthetic (N2001 data not found)"


def parity(paths, data: str | None, n_windows: int, n_times: int, threads: int, model_path: str | None) -> dict:
    """Label agreement, ROC-AUC and logit differences of each path against eager fp32."""
    import numpy as np
    import torch
    from sklearn.metrics import roc_auc_score

    from alsnet.engine.backends import InferenceEngine, available_backends, set_threads

    set_threads(threads)
    task_name = "als-vs-normal"
    if model_path:
        from alsnet.model.checkpoint import load_model

        loaded = load_model(model_path)
        model, model_desc, task_name = loaded.model, model_path, loaded.card.get("task", task_name)
    x, y, source = parity_windows(data, n_windows, n_times, task_name)
    if not model_path:
        torch.manual_seed(0)
        from alsnet.model.network import ALSNet

        model = ALSNet()
        with torch.no_grad():  # BatchNorm statistics from the windows themselves
            model.train()
            for i in range(0, min(len(x), 64), 16):
                model(torch.from_numpy(x[i:i + 16])[:, None])
            # centre the logits (median 0) so that labels split and agreement means something
            model.eval()
            model.out.bias -= float(np.median(InferenceEngine(model, "eager").logits(x)[:, 0]))
        model_desc = ("random ALSNet (seed 0), BatchNorm statistics from train-mode batches of these windows, "
                      "output bias set so that the median logit is 0")
    model.eval()

    def labels(z):
        return (z[:, 0] > 0).astype(int) if z.shape[1] == 1 else z.argmax(1)

    def auc(z, yy=y):
        if len(np.unique(yy)) < 2:
            return float("nan")
        if z.shape[1] == 1:
            return float(roc_auc_score(yy, z[:, 0]))
        return float(roc_auc_score(yy, torch.softmax(torch.from_numpy(z), 1).numpy(), multi_class="ovr",
                                   labels=list(range(z.shape[1]))))

    ref = InferenceEngine(model, "eager").logits(x)
    out = {"source": source, "n_windows": int(len(x)), "n_times": int(x.shape[1]), "model": model_desc,
           "eager_auc": auc(ref), "eager_positive_rate": float(labels(ref).mean()),
           "eager_min_abs_logit": float(np.abs(ref).min()), "paths": {}}
    avail = set(available_backends())
    for p in paths:
        if p == "eager" or p not in avail:
            continue
        k = min(len(x), PARITY_MAX.get(p, len(x)))
        try:
            z = InferenceEngine(model, p).logits(x[:k])
        except Exception as e:
            out["paths"][p] = {"error": f"{type(e).__name__}: {e}"}
            continue
        zr = ref[:k]
        agree = float((labels(z) == labels(zr)).mean())
        d_auc = auc(z, y[:k]) - auc(zr, y[:k])
        maxdiff = float(np.abs(z - zr).max())
        out["paths"][p] = {"n_windows": int(k), "agreement": agree, "auc": auc(z, y[:k]), "delta_auc": d_auc,
                           "max_abs_logit_diff": maxdiff, "max_rel_logit_diff": maxdiff / float(np.abs(zr).max()),
                           "faithful": bool(p in FP32_PATHS and agree >= 0.995 and abs(d_auc) <= 0.002)}
    out["train"] = train_parity(model, x[:8], model_path)
    return out


def train_parity(model, x, model_path) -> dict:
    """train_forward vs eager autograd on one batch: logits, gradients, running statistics."""
    import copy

    import torch

    from alsnet.engine.backends import train_forward

    res = {}
    runs = {}
    for name, fn in (("eager", lambda m, xb: m(xb)), ("fast", train_forward)):
        m = copy.deepcopy(model).train()
        xb = torch.from_numpy(x)[:, None]
        out = fn(m, xb)
        (out.square().mean() + out.mean()).backward()
        runs[name] = (out.detach(), {n: p.grad for n, p in m.named_parameters()},
                      {n: b for n, b in m.named_buffers() if "running" in n})
    (o1, g1, b1), (o2, g2, b2) = runs["eager"], runs["fast"]

    def rel(a, b):
        return float((a - b).abs().max() / b.abs().max().clamp_min(1e-30))

    res["logits_rel"] = rel(o2, o1)
    res["grad_rel_max"] = max(rel(g2[n], g1[n]) for n in g1)
    res["grad_rel"] = {n: rel(g2[n], g1[n]) for n in g1}
    res["running_stats_rel_max"] = max(rel(b2[n], b1[n]) for n in b1)
    res["batch"] = int(x.shape[0])
    # yardstick: how far eager fp32 itself is from eager fp64 on the same batch
    m64 = copy.deepcopy(model).double().train()
    out = m64(torch.from_numpy(x).double()[:, None])
    (out.square().mean() + out.mean()).backward()
    g64 = {n: p.grad for n, p in m64.named_parameters()}
    res["eager32_vs_fp64"] = {"logits_rel": rel(o1.double(), out.detach()),
                              "grad_rel_max": max(rel(g1[n].double(), g64[n]) for n in g1)}
    res["fast_vs_fp64"] = {"logits_rel": rel(o2.double(), out.detach()),
                           "grad_rel_max": max(rel(g2[n].double(), g64[n]) for n in g1)}
    return res


# --------------------------------------------------------------------------- driver

def machine() -> dict:
    import torch

    cpu = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        flags = Path("/proc/cpuinfo").read_text().split("flags", 2)[1].split("\n", 1)[0].split()
        simd = [f for f in ("avx2", "fma", "avx512f", "avx512_bf16", "avx512_vnni", "avx_vnni", "amx_bf16")
                if f in flags]
    except (OSError, IndexError):
        simd = []
    info = {"cpu": cpu, "cores": os.cpu_count(), "simd": simd, "torch": torch.__version__,
            "python": platform.python_version(), "platform": platform.platform(),
            "torch_cpu_capability": torch.backends.cpu.get_cpu_capability()}
    from alsnet.engine.kernels import ensure, error

    info["kernels"] = ensure() or f"unavailable ({error()})"
    try:
        import onnxruntime

        info["onnxruntime"] = onnxruntime.__version__
    except ImportError:
        pass
    return info


def _spawn(kind, path, batch, n_times, iters, threads, model_path) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", kind, path, str(batch), str(n_times),
           str(iters), str(threads), model_path or ""]
    env = dict(os.environ, PYTHONPATH=str(REPO / "src") + os.pathsep + os.environ.get("PYTHONPATH", ""))
    res = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=1800)
    for line in res.stdout.splitlines():
        if line.startswith("BENCH-RESULT "):
            return json.loads(line[len("BENCH-RESULT "):])
    return {"kind": kind, "path": path, "error": (res.stderr or res.stdout).strip()[-500:]}


def _keras(python: str, r: int, threads: int, n_times: int, bi: int, bt: int, iters: int) -> list[dict]:
    """One round of the Keras reference (benchmarks/keras_reference.py under ``python``)."""
    cmd = [python, str(REPO / "benchmarks" / "keras_reference.py"), "--threads", str(threads), "--samples",
           str(n_times), "--infer-batch", str(bi), "--train-batch", str(bt), "--iters", str(iters)]
    try:
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
        recs = json.loads(res.stdout.strip().splitlines()[-1]) if res.returncode == 0 else None
    except (OSError, ValueError, IndexError, subprocess.TimeoutExpired) as e:
        res, recs = None, None
        err = f"{type(e).__name__}: {e}"
    if recs is None:
        err = err if res is None else (res.stderr.strip().splitlines() or [f"exit {res.returncode}"])[-1]
        return [{"kind": k, "path": "keras", "batch": b, "round": r, "error": err[:300]}
                for k, b in (("infer", bi), ("train", bt))]
    return [{**rec, "round": r} for rec in recs]


def summarise(runs: list[dict], ref_path: str = "eager") -> dict:
    out: dict = {}
    for r in runs:
        key = f"{r['kind']}:{r['path']}@{r.get('batch', '?')}"
        e = out.setdefault(key, {"kind": r["kind"], "path": r["path"], "batch": r.get("batch"),
                                 "rounds": [], "errors": []})
        if "error" in r:
            e["errors"].append(r["error"])
        else:
            e["rounds"].append(r)
    for e in out.values():
        rs = e["rounds"]
        if rs:
            wps = [r["windows_per_s"] for r in rs]
            e["windows_per_s"] = statistics.median(wps)
            e["windows_per_s_all"] = wps
            e["peak_rss_mb"] = max(r["peak_rss_mb"] for r in rs)
            e["base_rss_mb"] = statistics.median(r["base_rss_mb"] for r in rs)
            e["warmup_s"] = statistics.median(r["warmup_s"] for r in rs)
        del e["rounds"]
        if not e["errors"]:
            del e["errors"]
    for kind in ("infer", "train"):
        refs = [e for e in out.values() if e["kind"] == kind and e["path"] == ref_path and "windows_per_s" in e]
        ref = max(refs, key=lambda e: e["batch"]) if refs else None
        for e in out.values():
            if e["kind"] == kind and ref and "windows_per_s" in e:
                e["ratio_vs_reference"] = e["windows_per_s"] / ref["windows_per_s"]
    return out


def run(args) -> dict:
    quick = args.quick
    threads = args.threads
    if quick:
        n_times, bi, bt, iters_i, iters_t, rounds = 2000, 4, 4, 1, 1, 1
        ipaths = [p for p in args.paths or ("eager", "folded", "winograd") if p in INFER_PATHS]
        tpaths = [p for p in args.train_paths or ("eager", "fast") if p in TRAIN_PATHS]
    else:
        n_times, bi, bt, iters_i, iters_t, rounds = 23437, 16, 48, 3, 1, args.rounds
        ipaths = list(args.paths or INFER_PATHS)
        tpaths = list(args.train_paths or TRAIN_PATHS)
    from alsnet.engine.backends import available_backends

    avail = set(available_backends())
    skipped = {p: "not available here" for p in ipaths if p not in avail}
    ipaths = [p for p in ipaths if p in avail]
    jobs = ([("infer", p, bi, min(iters_i, MAX_ITERS.get(p, iters_i))) for p in ipaths]
            + [("train", p, bt, iters_t) for p in tpaths])
    if not quick:  # batch-1 latency of the reference and the fastest kernels
        jobs += [("infer", p, 1, 16) for p in ("eager", "winograd") if p in ipaths]
    t_start = time.time()
    load0 = os.getloadavg()
    runs = []
    keras = getattr(args, "keras_python", None)
    if not keras:
        skipped["keras"] = ("no --keras-python: the authors' Keras model needs TensorFlow in its own environment "
                            "(benchmarks/keras_reference.py says how to make one)")
    for r in range(rounds):
        if keras:
            runs += _keras(keras, r, threads, n_times, bi, bt, iters_i)
        for kind, path, batch, iters in jobs:
            if r >= MAX_ROUNDS.get(path, rounds):
                continue
            if quick or args.inprocess:
                try:
                    rec = measure(kind, path, batch, n_times, iters, threads, args.model)
                except Exception as e:
                    rec = {"kind": kind, "path": path, "batch": batch, "error": f"{type(e).__name__}: {e}"}
            else:
                rec = _spawn(kind, path, batch, n_times, iters, threads, args.model)
            rec["round"] = r
            runs.append(rec)
            if args.verbose:
                print(f"round {r} {kind:5s} {path:12s} b{batch:<3d} "
                      + (f"{rec['windows_per_s']:8.2f} w/s  rss {rec['peak_rss_mb']:.0f} MB"
                         if "windows_per_s" in rec else rec.get("error", "")[:200]), file=sys.stderr, flush=True)
    summary = summarise(runs)
    best = {}
    par = None
    if not args.no_parity:
        par = parity(ipaths, args.data, 24 if quick else args.parity_windows, n_times, threads, args.model)
    for kind in ("infer", "train"):
        cands = [e for e in summary.values() if e["kind"] == kind and e["path"] != "eager" and "windows_per_s" in e
                 and e["path"] in FP32_PATHS and e["batch"] == (bi if kind == "infer" else bt)]
        if par and kind == "infer":
            cands = [e for e in cands if par["paths"].get(e["path"], {}).get("faithful")]
        if cands:
            b = max(cands, key=lambda e: e["windows_per_s"])
            best[kind] = {"path": b["path"], "ratio": b.get("ratio_vs_reference")}
    from limit import limit

    result = {
        "limit": limit(threads, n_times),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "quick": quick, "threads": threads, "n_times": n_times, "rounds": rounds,
        "batch": {"inference": bi, "training": bt},
        "machine": machine(), "loadavg_start": load0, "loadavg_end": os.getloadavg(),
        "started": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t_start)),
        "elapsed_s": time.time() - t_start,
        "ratios": {"inference": best.get("infer", {}).get("ratio"), "training": best.get("train", {}).get("ratio")},
        "best": best, "paths": summary, "skipped": skipped, "parity": par, "runs": runs,
    }
    return result


def markdown(res: dict) -> str:
    m = res["machine"]
    lines = [BEGIN, "", f"Measured {res['started']} with `{res['command']}` "
             f"({res['elapsed_s'] / 60:.1f} min; load average {res['loadavg_start'][0]:.1f} at the start, "
             f"{res['loadavg_end'][0]:.1f} at the end).", "",
             f"Machine: {m['cpu']}, {m['cores']} cores ({', '.join(m['simd'])}), torch {m['torch']}, "
             f"onnxruntime {m.get('onnxruntime', '-')}, C++ kernels {m.get('kernels', '-')}, "
             f"{res['threads']} threads, input {res['n_times']} samples, "
             f"median of {res['rounds']} round(s).", "",
             f"**Best faithful path vs eager: inference {_fmt(res['ratios']['inference'], 'x')} "
             f"({res['best'].get('infer', {}).get('path', '-')}), training {_fmt(res['ratios']['training'], 'x')} "
             f"({res['best'].get('train', {}).get('path', '-')}).**", "",
             "| kind | path | batch | windows/s (median) | all rounds | vs eager | peak RSS MB | "
             "RSS after set-up MB | warm-up s |",
             "| --- | --- | ---: | ---: | --- | ---: | ---: | ---: | ---: |"]
    for e in sorted(res["paths"].values(), key=lambda e: (e["kind"], -e.get("batch", 0), -e.get("windows_per_s", 0))):
        if "windows_per_s" not in e:
            lines.append(f"| {e['kind']} | {e['path']} | {e['batch']} | error: {e['errors'][0][:80]} | | | | | |")
            continue
        lines.append(f"| {e['kind']} | {e['path']} | {e['batch']} | {e['windows_per_s']:.2f} | "
                     f"{', '.join(f'{v:.2f}' for v in e['windows_per_s_all'])} | "
                     f"{_fmt(e.get('ratio_vs_reference'), 'x')} | "
                     f"{e['peak_rss_mb']:.0f} | {e['base_rss_mb']:.0f} | {e['warmup_s']:.1f} |")
    par = res.get("parity")
    if par:
        lines += ["", f"Parity against eager fp32 on {par['n_windows']} windows of {par['n_times']} samples from "
                  f"{par['source']}; model: {par['model']} (eager AUC {par['eager_auc']:.4f}, "
                  f"{100 * par['eager_positive_rate']:.1f} % labelled positive, smallest |logit| "
                  f"{par['eager_min_abs_logit']:.3g}).", "",
                  "| path | windows | label agreement | ROC-AUC | delta AUC | max abs logit diff | "
                  "max rel logit diff | faithful |",
                  "| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |"]
        for p, v in par["paths"].items():
            if "error" in v:
                lines.append(f"| {p} | | error: {v['error'][:80]} | | | | | |")
                continue
            lines.append(f"| {p} | {v['n_windows']} | {100 * v['agreement']:.2f} % | {v['auc']:.4f} | "
                         f"{v['delta_auc']:+.4f} | "
                         f"{v['max_abs_logit_diff']:.2e} | {v['max_rel_logit_diff']:.2e} | "
                         f"{'yes' if v['faithful'] else 'no'} |")
        t = par["train"]
        lines += ["", f"`train_forward` vs eager autograd (train mode, batch {t['batch']}): logits rel. diff "
                  f"{t['logits_rel']:.1e}, largest parameter-gradient rel. diff {t['grad_rel_max']:.1e}, "
                  f"running statistics rel. diff {t['running_stats_rel_max']:.1e} (relative to each tensor's "
                  f"largest magnitude). Against fp64 eager, the yardstick for float32 rounding: eager fp32 "
                  f"logits {t['eager32_vs_fp64']['logits_rel']:.1e}, gradients "
                  f"{t['eager32_vs_fp64']['grad_rel_max']:.1e}; "
                  f"train_forward logits {t['fast_vs_fp64']['logits_rel']:.1e}, gradients "
                  f"{t['fast_vs_fp64']['grad_rel_max']:.1e}."]
    lines += _limit_lines(res)
    if res.get("skipped"):
        lines += ["", "Not run here: " + ", ".join(f"{k} ({v})" for k, v in res["skipped"].items()) + "."]
    lines += ["", END]
    return "\n".join(lines)


#: FLOPs per window of each path's own arithmetic (benchmarks/limit.py); others are direct.
_OWN_FLOPS = {("infer", "winograd"): "winograd_forward_flops", ("train", "fast"): "winograd_training_step_flops"}


def _limit_lines(res: dict) -> list[str]:
    lim = res.get("limit")
    if not lim:
        return []
    peak = lim["gemm_peak_gflops"]
    lines = ["", "Arithmetic limit (`benchmarks/limit.py`): a window is "
             f"{lim['direct_forward_flops'] / 1e9:.2f} GFLOP forward and "
             f"{lim['direct_training_step_flops'] / 1e9:.2f} GFLOP per training step as `nn.Conv1d` computes it, "
             f"{lim['winograd_forward_flops'] / 1e9:.2f} / {lim['winograd_training_step_flops'] / 1e9:.2f} "
             f"GFLOP as the Winograd kernels do; the best float32 GEMM here (`torch.mm` 2048², "
             f"{lim['threads']} threads, capability {lim['cpu_capability']}) ran at {peak:.0f} GFLOP/s. "
             "Each path against that peak (its own FLOPs; direct-equivalent GFLOP/s counts the direct FLOPs):", "",
             "| kind | path | batch | windows/s | GFLOP/window (own) | GFLOP/s (own) | % of GEMM peak | "
             "direct-equivalent GFLOP/s |", "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for e in sorted(res["paths"].values(), key=lambda e: (e["kind"], -e.get("batch", 0), -e.get("windows_per_s", 0))):
        if "windows_per_s" not in e or e["batch"] != res["batch"]["inference" if e["kind"] == "infer" else "training"]:
            continue
        direct = lim["direct_forward_flops" if e["kind"] == "infer" else "direct_training_step_flops"]
        own = lim.get(_OWN_FLOPS.get((e["kind"], e["path"]), ""), direct)
        lines.append(f"| {e['kind']} | {e['path']} | {e['batch']} | {e['windows_per_s']:.2f} | {own / 1e9:.2f} | "
                     f"{e['windows_per_s'] * own / 1e9:.0f} | {100 * e['windows_per_s'] * own / 1e9 / peak:.0f} % | "
                     f"{e['windows_per_s'] * direct / 1e9:.0f} |")
    return lines


def _fmt(v, unit="") -> str:
    return "-" if v is None else f"{v:.2f}{unit}"


def write_markdown(path: Path, block: str) -> None:
    text = path.read_text() if path.is_file() else "# Performance\n\n"
    if BEGIN in text and END in text:
        text = text[:text.index(BEGIN)] + block + text[text.index(END) + len(END):]
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    path.write_text(text)


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "--worker":
        _worker_main(argv[1:])
        return 0
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--json", required=True, help="where to write the results")
    ap.add_argument("--markdown", help="update the results block of this markdown file")
    ap.add_argument("--quick", action="store_true", help="tiny sizes, one round, in-process (seconds)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--paths", nargs="*", help=f"inference paths (default all of {', '.join(INFER_PATHS)})")
    ap.add_argument("--train-paths", nargs="*", help=f"training paths (default {', '.join(TRAIN_PATHS)})")
    ap.add_argument("--model", help="weights for all paths (alsnet.model.checkpoint.load_model); default random")
    ap.add_argument("--data", default=str(REPO / "data" / "N2001"), help="N2001 folder for the parity check")
    ap.add_argument("--parity-windows", type=int, default=200)
    ap.add_argument("--no-parity", action="store_true")
    ap.add_argument("--inprocess", action="store_true", help="no subprocesses (RSS then not per path)")
    ap.add_argument("--keras-python", default=os.environ.get("ALSNET_KERAS_PYTHON"),
                    help="a Python with TensorFlow: adds the authors' Keras model as a reference path "
                         "(benchmarks/keras_reference.py; default $ALSNET_KERAS_PYTHON)")
    ap.add_argument("-v", "--verbose", action="store_true")
    args = ap.parse_args(argv)
    sys.path.insert(0, str(REPO / "src"))
    res = run(args)
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(res, indent=1))
    if args.markdown:
        write_markdown(Path(args.markdown), markdown(res))
    r = res["ratios"]
    print(f"inference {_fmt(r['inference'], 'x')}  training {_fmt(r['training'], 'x')}  -> {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
