"""``alsnet explain PATH -o FIG.png``: where in a recording ALSNet found its evidence."""

from __future__ import annotations

import argparse

from alsnet.cli.options import add_reader_options
from alsnet.model.pretrained import DEFAULT_MODEL


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "explain", help="figure of a recording, its window probabilities and the waveforms behind them",
        description="Draw (a) the recording with window boundaries and the strongest evidence "
                    "positions, (b) the per-window probabilities, (c) the window most like the target class with "
                    "the receptive fields of its strongest channels, and (d) a gallery of the "
                    "waveforms (MUAPs) around the strongest positions. Evidence of a channel of the "
                    "last convolution = gradient of the target class's logit w.r.t. its max-pooled value x "
                    "that value, placed where the max pool found it.")
    p.add_argument("path", metavar="PATH", help="one recording (WFDB .hea, .npy, .csv, .wav, .edf)")
    p.add_argument("-o", "--output", required=True, metavar="FIG.png", help="figure to write (.png, .pdf, .svg)")
    p.add_argument("--model", default=DEFAULT_MODEL, metavar="NAME|FILE",
                   help="bundled model (als-vs-normal, three-class) or a saved model (default: %(default)s)")
    p.add_argument("--max-windows", type=int, default=30, metavar="N",
                   help="explain the first N windows (default: %(default)s)")
    p.add_argument("--top", type=int, default=3, metavar="K", help="evidence positions marked per window")
    p.add_argument("--backend", default="auto", metavar="NAME", help="inference backend (auto, torch, onnx)")
    add_reader_options(p)
    p.add_argument("--target", default=None, metavar="CLASS",
                   help="class whose evidence is shown (default: als for a binary model, the predicted "
                        "class for a three-class one)")
    p.add_argument("--json", action="store_true", help="also print the window probabilities and evidence as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from alsnet.diagnosis.explain import explain_recording
    from alsnet.diagnosis.predict import DISCLAIMER
    from alsnet.errors import AlsnetError

    if args.max_windows < 1:
        raise AlsnetError(f"--max-windows must be at least 1, got {args.max_windows}")
    s = explain_recording(args.path, args.output, model=args.model, max_windows=args.max_windows,
                          fs=args.fs, scale=args.scale, channel=args.channel, top_k=args.top,
                          backend=args.backend, target=args.target)
    if args.json:
        from alsnet.cli.main import JSON_SCHEMA_VERSION, print_json

        print_json({"schema_version": JSON_SCHEMA_VERSION, **s})
    else:
        print(f"wrote {s['figure']} ({s['n_windows_used']} of {s['n_windows']} windows explained, "
              f"evidence for {s['target']})")
        if any(s["qc"]):
            from alsnet.diagnosis.qc import describe_flags

            which = ", ".join(f"{i} ({'+'.join(q)})" for i, q in enumerate(s["qc"]) if q)
            print(f"quality: {describe_flags(s['qc'])}; windows {which} (shaded in the figure)")
        print(f"[{DISCLAIMER}]")
    return 0
