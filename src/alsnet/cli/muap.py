"""``alsnet muap PATH...``: quantitative motor-unit potential analysis of recordings."""

from __future__ import annotations

import argparse
import sys

from alsnet.cli.options import add_reader_options


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "muap", help="motor-unit potentials: amplitude, duration, phases, turns, area, size index",
        description="Detect motor-unit potentials (MUAPs) in each recording, group their discharges "
                    "into motor units by template matching, and measure each unit's median "
                    "waveform: amplitude, duration, phases, turns, area, size index, rise time and "
                    "firing rate; summarise per recording (median and quartiles) and compare with "
                    "published reference values for the muscle. Method and sources: docs/clinical.md. "
                    "Exit status 0 when every file was analysed, 1 when some failed. "
                    "Research software, not a medical device.")
    p.add_argument("paths", nargs="+", metavar="PATH",
                   help="recording files (WFDB .hea, .npy, .csv, .wav, .edf) or folders of them")
    p.add_argument("--json", action="store_true",
                   help="print a JSON list of {path, n_muaps, summary, reference, muaps, error}")
    p.add_argument("--waveforms", action="store_true", help="include each MUAP's waveform (µV) in --json")
    p.add_argument("--pool", action="store_true",
                   help="also summarise the MUAPs of all recordings together (one muscle, several needle "
                        "positions: the reference means are of at least 20 MUAPs); --json then prints "
                        "{recordings: [...], pooled: {...}}")
    add_reader_options(p)
    p.set_defaults(func=run)


def _line(r: dict) -> str:
    s = r["summary"]
    if not r["n_muaps"]:
        return f"{r['path']}: no motor-unit potentials found (no unit fired steadily above threshold)"

    def q(k: str, fmt: str) -> str:
        v = s[k]
        return f"{v['median']:{fmt}} ({v['q1']:{fmt}}-{v['q3']:{fmt}})"

    out = (f"{r['path']}: {r['n_muaps']} MUAPs  amplitude {q('amplitude_uv', '.0f')} µV  "
           f"duration {q('duration_ms', '.1f')} ms  phases {q('phases', '.0f')}  turns {q('turns', '.0f')}  "
           f"size index {q('size_index', '.2f')}  polyphasic {s['polyphasic_percent']:.0f}%")
    ref = r.get("reference") or {}
    if ref.get("available"):
        parts = []
        for k, unit in (("amplitude_uv", "µV"), ("duration_ms", "ms")):
            m = ref["measures"][k]
            lo, hi = m["mean_limits"]
            parts.append(f"mean {k.split('_')[0]} {m['recording_mean']:.3g} {unit} {m['verdict']} "
                         f"{lo:.3g}-{hi:.3g}")
        out += f"\n    vs {ref['muscle']} reference (mean ± 2 SD): " + "; ".join(parts)
        if ref.get("note"):
            out += f" ({ref['note']})"
    elif ref:
        out += f"\n    {ref['note']}"
    return out


def _expand(paths: list[str]) -> list[str]:
    """Folders become the recordings found in them; an empty folder stays, to fail as an input."""
    from pathlib import Path

    from alsnet.data.io import find_recordings

    out = []
    for p in paths:
        out += ([str(f) for f in find_recordings(p)] or [p]) if Path(p).is_dir() else [p]
    return out


def run(args: argparse.Namespace) -> int:
    from alsnet.cli.main import inputs_exit_code, print_json
    from alsnet.diagnosis.muap import analyse_many, pool
    from alsnet.diagnosis.predict import DISCLAIMER

    results = analyse_many(_expand(args.paths), fs=args.fs, scale=args.scale, channel=args.channel,
                           keep_waveforms=args.waveforms)
    for r in results:
        if r["error"]:
            print(f"alsnet muap: error: {r['error']}", file=sys.stderr)
        elif not args.json:
            print(_line(r))
    pooled = pool(results) if args.pool else None
    if args.json:
        print_json({"recordings": results, "pooled": pooled} if args.pool else results)
    else:
        if pooled:
            print(_line({**pooled, "path": f"pooled over {pooled['n_recordings']} recording(s)"}))
        print(f"[{DISCLAIMER}]")
    return inputs_exit_code(sum(1 for r in results if r["error"]), len(results))
