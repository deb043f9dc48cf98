"""MUAP measures of EMGLab N2001 by class (the table and figure of docs/clinical.md).

    python scripts/muap_n2001.py data/N2001 --figure docs/figures/muap_by_class.png
    python scripts/muap_n2001.py --simulated     # the same analysis of simulated recordings,
                                                 # checked against the simulator's parameters

Per recording: the median of each measure over its MUAPs. Per class: the median (and
quartiles) of those recording medians, and of the subjects' medians.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from alsnet.data.io import find_recordings, parse_n2001_name
from alsnet.diagnosis.muap import analyse_many, analyse_signal, pool, summarise

SHOWN = ("amplitude_uv", "duration_ms", "phases", "turns", "area_uv_ms", "size_index", "firing_rate_hz")
CLASSES = ("als", "normal", "myopathy")


def _table(rows: list[tuple[str, str, dict]]) -> str:
    head = "| class | recordings (with MUAPs) | subjects | MUAPs | " + " | ".join(SHOWN) + " |"
    lines = [head, "|" + " --- |" * (4 + len(SHOWN))]
    for c in CLASSES:
        mine = [(s, m) for cl, s, m in rows if cl == c]
        if not mine:
            continue
        with_mu = [(s, m) for s, m in mine if m["n_units"]]
        cells = []
        for k in SHOWN:
            v = np.array([m[k]["median"] for _, m in with_mu if m[k]["median"] is not None])
            q1, med, q3 = np.percentile(v, [25, 50, 75]) if v.size else (np.nan,) * 3
            cells.append(f"{med:.3g} ({q1:.3g}-{q3:.3g})")
        n_mu = sum(m["n_units"] for _, m in mine)
        lines.append(f"| {c} | {len(mine)} ({len(with_mu)}) | {len({s for s, _ in mine})} | {n_mu} | "
                     + " | ".join(cells) + " |")
    return "\n".join(lines)


def _figure(rows, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = ("amplitude_uv", "duration_ms", "phases", "turns", "size_index", "firing_rate_hz")
    fig, axes = plt.subplots(1, len(keys), figsize=(3.0 * len(keys), 3.4), constrained_layout=True)
    for ax, k in zip(axes, keys):
        data = [[m[k]["median"] for cl, _, m in rows if cl == c and m[k]["median"] is not None] for c in CLASSES]
        ax.boxplot(data, showfliers=False)
        ax.set_xticks(range(1, 4), CLASSES)
        for j, d in enumerate(data):
            ax.plot(np.full(len(d), j + 1) + np.random.default_rng(j).uniform(-0.15, 0.15, len(d)), d, ".",
                    ms=3, alpha=0.5)
        ax.set_title(k, fontsize=9)
        if k == "amplitude_uv":
            ax.set_yscale("log")
            ax.axhspan(436 - 2 * 115, 436 + 2 * 115, color="tab:green", alpha=0.15, lw=0)
        if k == "duration_ms":
            ax.axhspan(9.9 - 2 * 1.4, 9.9 + 2 * 1.4, color="tab:green", alpha=0.15, lw=0)
    fig.suptitle("EMGLab N2001 biceps: per-recording median MUAP measures by class "
                 "(green: biceps reference mean ± 2 SD)", fontsize=10)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=90)


def _simulated() -> int:
    from alsnet.data.simulate import draw_subject, simulate_recording

    rows, check = [], []
    for c in CLASSES:
        for i in range(6):
            rng = np.random.default_rng([7, CLASSES.index(c), i])
            sp = draw_subject(c, rng)
            x = simulate_recording(c, sp, duration_s=11.0, rng=rng)
            mu = analyse_signal(x, 23437.5)
            m = summarise(mu, 11.0)
            rows.append((c, f"{c}{i}", m))
            if mu:  # the largest MUAP is the unit nearest the needle; its rate is the subject's
                top = mu[0]
                check.append((c, sp.rate_hz, top.measures["firing_rate_hz"], sp.n_units, len(mu)))
    print(_table(rows))
    print("\nsimulator check: drawn mean rate of the subject vs firing rate of the largest MUAP found")
    print("| class | drawn rate_hz | found (largest MUAP) | drawn n_units | MUAPs found |")
    print("| --- | --- | --- | --- | --- |")
    for c, r, f, n, k in check:
        print(f"| {c} | {r:.1f} | {f:.1f} | {n:.1f} | {k} |")
    err = np.array([abs(f - r) / r for _, r, f, _, _ in check])
    print(f"\nmedian relative rate error {100 * np.median(err):.0f}% over {len(err)} recordings")
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data", nargs="?", help="folder of N2001 records")
    ap.add_argument("--figure", type=Path, help="write the figure here")
    ap.add_argument("--simulated", action="store_true", help="analyse simulated recordings instead")
    args = ap.parse_args(argv)
    if args.simulated:
        return _simulated()
    paths = find_recordings(args.data)
    results = analyse_many(paths)
    rows = []
    for r in results:
        if r["error"]:
            print(f"skipped: {r['error']}", file=sys.stderr)
            continue
        n = parse_n2001_name(Path(r["path"]).stem)
        rows.append((n["label"], n["subject"], r["summary"]))
    print(_table(rows))
    print("\nper subject, all its recordings pooled (alsnet muap --pool), against the biceps reference "
          "(mean ± 2 SD of a muscle's mean):")
    print("| subject | class | recordings | MUAPs | mean amplitude (µV) | verdict | mean duration (ms) | verdict |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    verdicts = {}
    for subject in sorted({parse_n2001_name(Path(r["path"]).stem)["subject"] for r in results if not r["error"]}):
        mine = [r for r in results if not r["error"] and parse_n2001_name(Path(r["path"]).stem)["subject"] == subject]
        pooled = pool(mine)
        m = pooled["reference"]["measures"]
        cls = parse_n2001_name(Path(mine[0]["path"]).stem)["label"]
        a, d = m["amplitude_uv"], m["duration_ms"]
        verdicts.setdefault(cls, []).append(a["verdict"])
        print(f"| {subject} | {cls} | {pooled['n_recordings']} | {pooled['n_muaps']} | {a['recording_mean']:.0f} | "
              f"{a['verdict']} | {d['recording_mean']:.1f} | {d['verdict']} |")
    for c in CLASSES:
        v = verdicts.get(c, [])
        print(f"{c}: mean amplitude above the reference in {v.count('above')} of {len(v)} subjects, "
              f"within in {v.count('within')}, below in {v.count('below')}")
    amp = {c: np.median([m["amplitude_uv"]["median"] for cl, _, m in rows if cl == c and m["n_units"]])
           for c in CLASSES}
    print(f"\nmedian amplitude: als {amp['als']:.0f} µV, normal {amp['normal']:.0f} µV, "
          f"myopathy {amp['myopathy']:.0f} µV")
    if args.figure:
        _figure(rows, args.figure)
        print(f"wrote {args.figure}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
