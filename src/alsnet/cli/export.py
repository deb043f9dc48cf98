"""``alsnet export --model NAME|FILE --onnx OUT.onnx``: the model as an ONNX graph."""

from __future__ import annotations

import argparse

from alsnet.model.pretrained import DEFAULT_MODEL


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "export", help="export a model to ONNX (input µV at 23437.5 Hz; outputs probabilities, logits)",
        description="Write the model as ONNX. Input 'emg': float32 (batch, time) raw µV at 23437.5 Hz, "
                    "both axes dynamic (time >= 45; the model's windows are 23437 samples). Outputs: "
                    "'probabilities' (batch, n_classes), calibrated as the card says (for an ensemble: "
                    "the mean of its members' calibrated probabilities, as predict scores it), and "
                    "'logits' before calibration, (batch, n_outputs) or, for an ensemble, (batch, "
                    "n_members, n_outputs). The class order, calibration and decision rule are in the "
                    "ONNX metadata ('classes', 'calibration', 'decision_rule'). A check compares ONNX "
                    "Runtime with PyTorch.")
    p.add_argument("--model", default=DEFAULT_MODEL, metavar="NAME|FILE",
                   help="bundled model (als-vs-normal, three-class) or a saved model (default: %(default)s)")
    p.add_argument("--onnx", required=True, metavar="OUT.onnx", help="file to write")
    p.add_argument("--no-check", action="store_true", help="skip the ONNX Runtime vs PyTorch check")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from alsnet.engine.onnx import export_onnx

    s = export_onnx(args.model, args.onnx, check=not args.no_check)
    if args.json:
        from alsnet.cli.main import JSON_SCHEMA_VERSION, print_json
        from alsnet.diagnosis.predict import bundled_or_path, model_identity
        from alsnet.model.pretrained import resolve_model

        loaded = resolve_model(args.model)
        print_json({"schema_version": JSON_SCHEMA_VERSION, **s,
                    "model": model_identity(loaded, bundled_or_path(args.model, loaded))})
        return 0
    cal = s["calibration"]
    print(f"wrote {s['onnx']}: task {s['task']}, classes {', '.join(s['classes'])}, "
          + (f"ensemble of {s['members']} networks (probabilities averaged), " if s["members"] > 1 else "")
          + f"calibration {cal['method']}"
          + (f" (scale {', '.join(f'{v:g}' for v in cal['scale'])}; bias {', '.join(f'{v:g}' for v in cal['bias'])})"
             if cal["method"] != "none" else ""))
    print("input 'emg' float32 (batch, time) µV at 23437.5 Hz; outputs 'probabilities' (calibrated), 'logits'")
    if "max_abs_diff" in s:
        print(f"check: max |P_onnx - P_torch| = {s['max_abs_diff']:.2e}")
    return 0
