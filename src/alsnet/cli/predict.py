"""``alsnet predict PATH...``: diagnose recordings with a bundled or saved model."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from alsnet.cli.options import add_reader_options
from alsnet.model.pretrained import DEFAULT_MODEL

if TYPE_CHECKING:
    from alsnet.diagnosis.predict import Predictor


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "predict", help="diagnose recordings: label and class probabilities per recording",
        description="Score each recording's 1-s windows with ALSNet and report the mean of the "
                    "window probabilities (calibrated as the model card says) and the label, by the "
                    "card's decision rule (P(als) >= a threshold, or the most probable class after "
                    "the card's offsets; printed with the model). Recordings of any length "
                    "and sampling rate are streamed in chunks and resampled to 23437.5 Hz. "
                    "Exit status 0 when every file was scored, 1 when some failed, 3 when none could be. "
                    "Research software, not a medical device.")
    p.add_argument("paths", nargs="+", metavar="PATH",
                   help="recording files (WFDB .hea, .npy, .csv, .wav, .edf) or folders of them")
    p.add_argument("--model", default=DEFAULT_MODEL, metavar="NAME|FILE",
                   help="bundled model (als-vs-normal, three-class) or a saved .safetensors model "
                        "(default: %(default)s)")
    p.add_argument("--json", action="store_true",
                   help="print a JSON list, one object per recording: {schema_version, path, label, "
                        "probabilities, n_windows, n_windows_used, windows: [{index, start_s, probabilities, qc}], "
                        "warnings, error, model: {name, task, weights_sha256}, backend}")
    p.add_argument("--backend", default="auto", metavar="NAME",
                   help="inference backend: auto (fastest faithful one here), torch (the plain "
                        "PyTorch module), onnx (the graph alsnet export writes, cached under the "
                        "user cache), or an alsnet.engine.backends backend such as folded or winograd "
                        "(default: %(default)s)")
    add_reader_options(p)
    p.add_argument("--batch", type=int, default=8, metavar="N",
                   help="windows per forward pass (about 25 MB each; default: %(default)s)")
    p.add_argument("--threads", type=int, default=None, metavar="N", help="CPU threads for inference")
    p.add_argument("--qc", default=None, metavar="flag|drop",
                   help="windows flagged by quality control (clipping, baseline, flat, mains, invalid): "
                        "flag lists them and still scores them, drop leaves them out of the recording's "
                        "mean (default: flag, chosen by measurement, docs/clinical.md)")
    p.add_argument("--report", default=None, metavar="OUT.html",
                   help="write a self-contained HTML report of the recording (trace, quality flags, window "
                        "probabilities, evidence, MUAPs, model card); with several recordings, a folder "
                        "that gets one RECORD.html each")
    p.set_defaults(func=run)


class _WindowBar:
    """``progress(done, total)`` drawn as a tqdm bar of windows (only on a terminal)."""

    def __init__(self, desc: str):
        from tqdm.auto import tqdm

        self.bar = tqdm(total=None, desc=desc, unit="win", leave=False, file=sys.stderr)

    def __call__(self, done: int, total: int) -> None:
        if self.bar.total != total:
            self.bar.total = total
        self.bar.update(done - self.bar.n)

    def close(self) -> None:
        self.bar.close()


def run(args: argparse.Namespace) -> int:
    from alsnet.cli.main import JSON_SCHEMA_VERSION, inputs_exit_code, print_json
    from alsnet.diagnosis.predict import DISCLAIMER, Predictor, evaluation_line
    from alsnet.diagnosis.qc import DEFAULT_QC_POLICY, QC_POLICIES
    from alsnet.errors import UsageError

    if args.qc is not None and args.qc not in QC_POLICIES:
        raise UsageError(f"--qc {args.qc!r}: choose from {', '.join(QC_POLICIES)}")
    predictor = Predictor(args.model, backend=args.backend, batch_size=args.batch, threads=args.threads,
                          qc=args.qc or DEFAULT_QC_POLICY)
    provenance = predictor.describe()
    paths = _expand(args.paths)
    results = []
    files_bar = None
    if len(paths) > 1 and sys.stderr.isatty():
        from tqdm.auto import tqdm

        files_bar = tqdm(total=len(paths), desc="recordings", unit="rec", file=sys.stderr)
    for path in paths:
        bar = _WindowBar(str(path)[-40:]) if sys.stderr.isatty() else None
        r = predictor.predict(path, fs=args.fs, scale=args.scale, channel=args.channel, errors="return",
                              progress=bar)
        if bar:
            bar.close()
        if not r["error"] and args.report:
            r = _write_report(predictor, r, args, many=len(paths) > 1)
        if r["error"]:
            print(f"alsnet predict: error: {r['error']}", file=sys.stderr)
        elif not args.json:
            _print_result(r)
        results.append({"schema_version": JSON_SCHEMA_VERSION, **r, **provenance})
        if files_bar:
            files_bar.update()
    if files_bar:
        files_bar.close()
    n_bad = sum(1 for r in results if r["error"])
    if args.json:
        print_json(results)
    else:
        if n_bad:
            print(f"{n_bad} of {len(results)} recording(s) could not be scored (see the errors above)")
        m = provenance["model"]
        print(f"model {m['name']} ({m['task']}"
              + (f", {m['members']}-network ensemble" if m["members"] > 1 else "")
              + f", label by {m['decision_rule']}, weights sha256 {m['weights_sha256'][:12]}), "
              f"backend {provenance['backend']}")
        print(f"  {evaluation_line(predictor.loaded.card)}")
        print(f"[{DISCLAIMER}]")
    return inputs_exit_code(n_bad, len(results))


def _expand(paths: list[str]) -> list[str]:
    """Folders become the recordings found in them (one ``.hea`` per WFDB record); a folder
    with none stays, and its reader says so as a failed input."""
    from pathlib import Path

    from alsnet.data.io import find_recordings

    out = []
    for p in paths:
        found = [str(f) for f in find_recordings(p)] if Path(p).is_dir() else [p]
        out += found or [p]
    return out


def _print_result(r: dict) -> None:
    probs = "  ".join(f"P({c})={p:.3f}" for c, p in r["probabilities"].items())
    dropped = r["n_windows"] - r["n_windows_used"]
    print(f"{r['path']}: {r['label']}  {probs}  "
          f"({r['n_windows_used']} windows used, {dropped} dropped)")
    from alsnet.diagnosis.qc import describe_flags

    qc = [w["qc"] for w in r["windows"]]
    if any(qc):
        which = ", ".join(f"{w['index']} ({'+'.join(w['qc'])})" for w in r["windows"] if w["qc"])
        print(f"  quality: {describe_flags(qc)}; windows {which}")
    if r["warnings"]:
        print(f"  warning: outside the model's training domain: {'; '.join(r['warnings'])}")
    if r.get("report"):
        print(f"  report: {r['report']}")


def _write_report(predictor: Predictor, r: dict, args: argparse.Namespace, many: bool) -> dict:
    """Write the recording's HTML report; a failure is the recording's error, not the run's."""
    from pathlib import Path

    from alsnet.errors import AlsnetError
    from alsnet.reporting.recording import write_recording_report

    out = Path(args.report)
    if many or out.is_dir():
        out = out / f"{Path(r['path']).stem}.html"
    try:
        path = write_recording_report(r["path"], out, predictor=predictor, result=r, fs=args.fs,
                                      scale=args.scale, channel=args.channel)
    except AlsnetError as e:
        return {**r, "error": f"report not written: {str(e).splitlines()[0]}"}
    return {**r, "report": str(path)}
