"""Compare simulated needle EMG (``alsnet simulate``) with real EMGLab N2001 recordings.

Per class, for real and simulated recordings: RMS and peak-to-peak amplitude of the 1-s
windows ALSNet sees, zero-crossing rate, median frequency and Welch power spectra; plus
the simulator's own MUAP statistics. Prints a table and saves a figure.

    python scripts/compare_simulator.py                      # defaults below
    python scripts/compare_simulator.py --real data/N2001 --sim /tmp/sim --out docs/figures/simulator_vs_real.png

Real data: ``--real`` (default ``data/N2001``); if that folder is missing, the archive
``../shared/data/emglab-n2001-bb-dev.tar.xz`` is unpacked to a temporary folder.
Simulated data: ``--sim DIR`` of records, or (default) simulated afresh into a temporary
folder with ``--subjects`` per class, ``--recordings`` each and ``--seed``.
"""

from __future__ import annotations

import argparse
import tarfile
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
ARCHIVE = REPO.parent / "shared" / "data" / "emglab-n2001-bb-dev.tar.xz"
CLASSES = ("normal", "als", "myopathy")
COLOURS = {"normal": "tab:green", "als": "tab:red", "myopathy": "tab:blue"}


def real_dir(path: Path, tmp: Path) -> Path:
    if path.is_dir() and any(path.glob("N2001*.hea")):
        return path
    if not ARCHIVE.is_file():
        raise SystemExit(f"no real data: {path} is missing and {ARCHIVE} not found")
    print(f"unpacking {ARCHIVE} ...")
    with tarfile.open(ARCHIVE, "r:xz") as tar:
        tar.extractall(tmp, filter="data")
    return tmp / "N2001"


def pick(paths: list[Path], per_subject: int) -> list[Path]:
    """At most ``per_subject`` records per subject, spread over its record numbers."""
    by = defaultdict(list)
    for p in paths:
        by[p.stem[5:8]].append(p)
    out = []
    for subj in sorted(by):
        ps = sorted(by[subj])
        idx = np.unique(np.linspace(0, len(ps) - 1, min(per_subject, len(ps))).round().astype(int))
        out += [ps[i] for i in idx]
    return out


def measure(paths: list[Path]) -> dict:
    """Per-class lists of per-recording features and PSDs."""
    from scipy.signal import welch

    from alsnet.data.io import read_recording
    from alsnet.data.windows import make_windows

    res = defaultdict(lambda: defaultdict(list))
    for p in paths:
        rec = read_recording(p)
        win = make_windows(rec.signal).windows.astype(np.float64)
        win -= np.median(win, axis=1, keepdims=True)
        x = np.nan_to_num(rec.signal.astype(np.float64) - np.nanmedian(rec.signal))
        f, psd = welch(x, fs=rec.fs, nperseg=4096)
        c = np.cumsum(psd)
        d = res[rec.label]
        d["rms"].append(float(np.median(np.sqrt(np.mean(win**2, axis=1)))))
        d["ptp"].append(float(np.median(np.ptp(win, axis=1))))
        d["zc"].append(float(np.mean(np.sum(np.diff(np.sign(win), axis=1) != 0, axis=1))))
        d["medf"].append(float(f[np.searchsorted(c, c[-1] / 2)]))
        d["psd"].append(psd)
        c0 = int(np.argmax(np.abs(np.diff(x[: int(3 * rec.fs)]))))  # the sharpest potential in the first 3 s
        c0 = min(max(c0, int(0.02 * rec.fs)), len(x) - int(0.03 * rec.fs))
        d["snip"].append(x[c0 - int(0.02 * rec.fs): c0 + int(0.03 * rec.fs)])
        d["freq"] = f
    return res


def muap_table(seed: int, n_subjects: int) -> dict:
    """Median MUAP peak-to-peak, duration and % polyphasic (>= 5 phases) per class."""
    from alsnet.data.muap_model import muap_metrics
    from alsnet.data.simulate import MODEL_FS, SIM_CLASSES, draw_sources, draw_subject

    out = {}
    for ci, cls in enumerate(SIM_CLASSES):
        rows = []
        for s in range(n_subjects):
            p = draw_subject(cls, np.random.default_rng([seed, ci, s]))
            for src in draw_sources(p, "low", MODEL_FS, np.random.default_rng([seed, ci, s, 1])):
                if src.kind == "unit":
                    m = muap_metrics(src.templates[0], MODEL_FS)
                    amp = np.ptp(src.templates, axis=1)
                    rows.append((m["ptp_uv"], m["duration_ms"], m["phases"], np.std(amp) / np.mean(amp)))
        a = np.array(rows)
        out[cls] = {"n": len(a), "ptp": np.percentile(a[:, 0], [10, 50, 90]),
                    "dur": np.percentile(a[:, 1], [10, 50, 90]), "poly": 100 * np.mean(a[:, 2] >= 5),
                    "ampcv": 100 * np.median(a[:, 3])}
    return out


def q(v) -> str:
    a = np.percentile(v, [25, 50, 75])
    return f"{a[1]:6.0f} [{a[0]:.0f}-{a[2]:.0f}]"


def print_table(real: dict, sim: dict) -> None:
    print("\nper-recording medians over 1-s windows; median [IQR] across recordings")
    print(f"{'class':<9}{'src':<5}{'n':>4}  {'RMS µV':<18}{'peak-to-peak µV':<20}"
          f"{'zero cross./s':<20}{'median freq Hz':<18}")
    for cls in CLASSES:
        for name, d in (("real", real.get(cls)), ("sim", sim.get(cls))):
            if d:
                print(f"{cls:<9}{name:<5}{len(d['rms']):>4}  {q(d['rms']):<18}{q(d['ptp']):<20}"
                      f"{q(d['zc']):<20}{q(d['medf']):<18}")
    bands = [(2, 20), (20, 60), (60, 200), (200, 600), (600, 2000), (2000, 5000), (5000, 11000)]
    print("\nmedian PSD per band, dB re 1 µV²/Hz (real / sim)")
    print(f"{'class':<9}" + "".join(f"{f'{a}-{b} Hz':>15}" for a, b in bands))
    for cls in CLASSES:
        if cls in real and cls in sim:
            f = real[cls]["freq"]
            row = []
            for a, b in bands:
                m = (f >= a) & (f < b)
                r, s = (10 * np.log10(np.median(np.mean(np.array(d[cls]["psd"])[:, m], 1))) for d in (real, sim))
                row.append(f"{r:6.1f} /{s:6.1f}")
            print(f"{cls:<9}" + "".join(f"{x:>15}" for x in row))


def figure(real: dict, sim: dict, out: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(2, 3, figsize=(15, 8.5))
    a = ax[0, 0]
    for cls in CLASSES:
        for d, ls, lab in ((real, "-", "real"), (sim, "--", "sim")):
            if cls in d:
                f, P = d[cls]["freq"], np.array(d[cls]["psd"])
                lo, med, hi = np.percentile(P, [25, 50, 75], axis=0)
                a.loglog(f[1:], med[1:], ls, color=COLOURS[cls], lw=1.3, label=f"{cls} {lab}")
                if lab == "real":
                    a.fill_between(f[1:], lo[1:], hi[1:], color=COLOURS[cls], alpha=0.12, lw=0)
    a.set(xlabel="Hz", ylabel="µV²/Hz", title="Welch PSD: median (real IQR shaded)", xlim=(4, 12000))
    a.legend(fontsize=7, ncol=2)
    for a, key, title in ((ax[0, 1], "rms", "RMS of 1-s windows (µV)"),
                          (ax[0, 2], "ptp", "peak-to-peak of 1-s windows (µV)"),
                          (ax[1, 0], "zc", "zero crossings per 1-s window")):
        data, pos, cols = [], [], []
        for i, cls in enumerate(CLASSES):
            for j, d in enumerate((real, sim)):
                if cls in d:
                    data.append(d[cls][key])
                    pos.append(3 * i + j)
                    cols.append(COLOURS[cls])
        bp = a.boxplot(data, positions=pos, widths=0.7, patch_artist=True, showfliers=True)
        for k, (patch, c) in enumerate(zip(bp["boxes"], cols)):
            patch.set(facecolor=c, alpha=0.35 if pos[k] % 3 == 0 else 0.8)
        a.set_yscale("log")
        a.set_xticks([3 * i + 0.5 for i in range(3)], [f"{c}\nreal | sim" for c in CLASSES])
        a.set_title(title)
    for a, d, name in ((ax[1, 1], real, "real"), (ax[1, 2], sim, "simulated")):
        for i, cls in enumerate(CLASSES):
            if cls not in d:
                continue
            snips = d[cls]["snip"]
            k = int(np.argsort(d[cls]["rms"])[len(snips) // 2])  # the median-RMS recording
            s = snips[k] - np.median(snips[k])
            t = np.arange(len(s)) / 23.4375
            a.plot(t, s - 800 * i, color=COLOURS[cls], lw=0.7)
            a.text(0.5, -800 * i + 250, cls, fontsize=8, color=COLOURS[cls])
        a.set(xlabel="ms", ylabel="µV (offset per class)",
              title=f"{name}: 50 ms around the sharpest potential\n(median-RMS recording per class)")
        a.set_ylim(-2300, 700)
    fig.suptitle("alsnet simulate vs EMGLab N2001 (biceps brachii, concentric needle)")
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=90)
    print(f"\nfigure: {out}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--real", type=Path, default=REPO / "data" / "N2001")
    ap.add_argument("--real-per-subject", type=int, default=10, help="records per real subject (default 10)")
    ap.add_argument("--sim", type=Path, default=None, help="folder of simulated records (default: simulate)")
    ap.add_argument("--subjects", type=int, default=6, help="simulated subjects per class (default 6)")
    ap.add_argument("--recordings", type=int, default=5, help="recordings per simulated subject (default 5)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=REPO / "docs" / "figures" / "simulator_vs_real.png")
    args = ap.parse_args(argv)
    from alsnet.data.simulate import simulate_dataset

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        rdir = real_dir(args.real, tmp / "real")
        real = measure(pick(sorted(rdir.glob("N2001*.hea")), args.real_per_subject))
        sdir = args.sim
        if sdir is None:
            t0 = time.perf_counter()
            paths = simulate_dataset(tmp / "sim", n_subjects=args.subjects,
                                     recordings_per_subject=args.recordings, seed=args.seed)
            print(f"simulated {len(paths)} recordings in {time.perf_counter() - t0:.1f} s")
            sdir = tmp / "sim"
        sim = measure(sorted(sdir.glob("N2001*.hea")))
        print_table(real, sim)
        print("\nsimulated MUAPs (units near the needle, low force): p10/median/p90")
        for cls, m in muap_table(args.seed, 20).items():
            print(f"{cls:<9} n={m['n']:<4} peak-to-peak {m['ptp'].round(0)} µV, duration {m['dur'].round(1)} ms, "
                  f"polyphasic {m['poly']:.0f}%, discharge-to-discharge amplitude CV {m['ampcv']:.1f}%")
        figure(real, sim, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
