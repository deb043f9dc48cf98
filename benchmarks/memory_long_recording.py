"""Peak memory and wall time of ``alsnet predict`` on a long recording.

Writes a synthetic WFDB record (format 16 with a 20-byte header offset, like EMGLab N2001;
default one hour at 23437.5 Hz = 84 M samples, 168 MB on disk) into a temporary folder,
runs ``alsnet predict --json`` on it in a subprocess and prints JSON with the child's peak
resident memory (``getrusage(RUSAGE_CHILDREN).ru_maxrss``) and wall time. The target is a
peak below 1 GB: the recording is memory-mapped and scored in chunks, never held whole.

Usage::

    python benchmarks/memory_long_recording.py [--minutes 60] [--fs 23437.5] [--threads 2]
        [--backend auto] [--model FILE]

Without ``--model`` a randomly initialised ALSNet is saved and used (memory and time do
not depend on the weights).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

GAIN = 13.107  # digital units per µV, as in N2001
OFFSET = 20


def write_record(folder: Path, minutes: float, fs: float, seed: int = 0) -> Path:
    """Noise plus MUAP-like spikes, written one 10-s block at a time (bounded memory)."""
    rng = np.random.default_rng(seed)
    n = int(minutes * 60 * fs)
    block = int(10 * fs)
    t = np.arange(-int(0.004 * fs), int(0.004 * fs)) / fs
    spike = 300 * np.sin(2 * np.pi * 250 * t) * np.exp(-(t / 0.0015) ** 2)
    with open(folder / "long.bin", "wb") as f:
        f.write(b"\0" * OFFSET)
        for a in range(0, n, block):
            m = min(block, n - a)
            x = rng.normal(0, 10, m)
            for s in rng.integers(0, max(1, m - len(t)), max(1, m // int(fs) * 20)):
                x[s:s + len(t)] += spike[: m - s] * rng.uniform(0.5, 1.5)
            f.write(np.clip(np.round(x * GAIN), -32767, 32767).astype("<i2").tobytes())
    (folder / "long.hea").write_text(f"long 1 {fs:g} {n}\nlong.bin 16+{OFFSET} {GAIN}/uV\n")
    return folder / "long.hea"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=60.0)
    ap.add_argument("--fs", type=float, default=23437.5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--backend", default="auto")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--model", default=None, help="saved model; default a random ALSNet")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="alsnet-bench-") as tmp:
        tmp = Path(tmp)
        t0 = time.perf_counter()
        hea = write_record(tmp, args.minutes, args.fs)
        t_write = time.perf_counter() - t0
        model = args.model
        if model is None:
            from alsnet.model.checkpoint import save_model
            from alsnet.model.network import ALSNet

            model = str(save_model(tmp / "random", ALSNet(n_outputs=1), {"task": "als-vs-normal"}))
        cmd = [sys.executable, "-m", "alsnet.cli.main", "predict", "--json", "--model", model,
               "--backend", args.backend, "--threads", str(args.threads), "--batch", str(args.batch),
               str(hea)]
        t0 = time.perf_counter()
        with open(tmp / "out.json", "w+") as out, open(tmp / "err.txt", "w+") as err:
            proc = subprocess.Popen(cmd, stdout=out, stderr=err, text=True)
            # wait4 gives this child's own rusage; RUSAGE_CHILDREN (the max over all
            # children waited for) is reported as well.
            _, status, usage = os.wait4(proc.pid, 0)
            wall = time.perf_counter() - t0
            out.seek(0), err.seek(0)
            stdout, stderr = out.read(), err.read()
        returncode = os.waitstatus_to_exitcode(status)
        peak_kb = usage.ru_maxrss
        children_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    try:
        result = json.loads(stdout)[0]
    except (json.JSONDecodeError, IndexError):
        result = {"error": (stderr or stdout).strip().splitlines()[-1:]}
    scale = 2**20 if sys.platform == "darwin" else 1024  # ru_maxrss: bytes on macOS, KiB on Linux
    peak_mb = peak_kb / scale
    report = {
        "minutes": args.minutes, "fs": args.fs, "samples": int(args.minutes * 60 * args.fs),
        "backend": args.backend, "threads": args.threads, "batch": args.batch,
        "exit_code": returncode, "peak_rss_mb": round(peak_mb, 1),
        "peak_rss_children_mb": round(children_kb / scale, 1),
        "wall_s": round(wall, 1), "write_s": round(t_write, 1),
        "windows_per_s": round((result.get("n_windows") or 0) / wall, 2),
        "target_mb": 1024, "within_target": peak_mb < 1024,
        "result": result, "machine": f"{platform.machine()} {platform.system()}",
    }
    print(json.dumps(report, indent=1))
    return 0 if returncode == 0 and peak_mb < 1024 else 1


if __name__ == "__main__":
    sys.exit(main())
