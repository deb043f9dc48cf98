"""A self-contained HTML report of one recording: what a clinician reads first.

One HTML file, no server and no scripts (inline CSS, figures as base64 PNG, the style of
:mod:`alsnet.reporting.html`): the research-software disclaimer; the result and its
out-of-domain warnings; the trace with its quality flags and the window probabilities; the
evidence waveforms (:func:`alsnet.diagnosis.explain.explain_recording`); the MUAP analysis
against the muscle's reference values (:mod:`alsnet.diagnosis.muap`); the model card's
training data and domain, its subject-wise metrics and limitations; and the per-window table.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np

from alsnet.data.labels import get_task
from alsnet.data.windows import MODEL_FS, WINDOW_SAMPLES
from alsnet.diagnosis.predict import DISCLAIMER, Predictor, iter_window_chunks, open_source
from alsnet.errors import AlsnetError
from alsnet.evaluation.metrics import count_proportions
from alsnet.files import atomic_write_text
from alsnet.model.pretrained import DEFAULT_MODEL
from alsnet.reporting.html import CSS, ROWS, SUBJECT_NOTE, _e, _img, _level_cell, count_cell

EXTRA_CSS = """
.disclaimer{background:#fde8e8;border-left:4px solid #c00;padding:.5em 1em;font-weight:bold}
.warn{background:#fff6e0;border-left:4px solid #e0a000;padding:.4em 1em;margin:.3em 0}
.flag{color:#a00}.ok{color:#070}.big{font-size:1.25em}
"""
#: Colours of the quality reasons in the trace.
QC_COLOURS = {"clipping": "tab:purple", "baseline": "tab:orange", "flat": "tab:gray", "mains": "tab:cyan",
              "invalid": "black"}


def _trace_figure(windows: np.ndarray, rows: list[dict], pos: str, out: Path,
                  decide, threshold: float | None = None) -> Path:  # noqa: ANN001
    """The trace with flagged windows shaded by reason, and each window's P(pos) below, coloured
    by the model's own decision (``decide``: a probability dict's label; ``threshold``: the
    binary rule's line on P(pos))."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from alsnet.diagnosis.explain import _envelope

    sig = windows.reshape(-1)
    t = np.arange(len(sig)) / MODEL_FS
    fig, (ax, ax2) = plt.subplots(2, 1, figsize=(12, 5.2), sharex=True, height_ratios=[1.4, 1],
                                  constrained_layout=True)
    tt, lo, hi = _envelope(sig, t)
    if hi is None:
        ax.plot(tt, lo, lw=0.4, color="0.2")
    else:
        ax.fill_between(tt, lo, hi, color="0.2", lw=0)
    for w in rows[:len(windows)]:
        a = w["start_s"]
        ax.axvline(a, color="tab:blue", lw=0.5, alpha=0.4)
        for k, reason in enumerate(w["qc"]):
            ax.axvspan(a, a + WINDOW_SAMPLES / MODEL_FS, ymin=k / len(w["qc"]), ymax=(k + 1) / len(w["qc"]),
                       color=QC_COLOURS[reason], alpha=0.25, lw=0)
    seen = sorted({r for w in rows for r in w["qc"]})
    for r in seen:
        ax.axvspan(0, 0, color=QC_COLOURS[r], alpha=0.25, label=r)
    if seen:
        ax.legend(loc="upper right", fontsize=8, title="quality flags", title_fontsize=8)
    ax.set(ylabel="µV", title="recording (1-s windows; shaded: windows flagged by quality control)")
    centres = [w["start_s"] + 0.5 for w in rows[:len(windows)]]
    p = [w["probabilities"][pos] if w["probabilities"] else np.nan for w in rows[:len(windows)]]
    colours = ["0.7" if w["qc"] else ("tab:red" if w["probabilities"] and decide(w["probabilities"]) == pos
                                      else "tab:green") for w in rows[:len(windows)]]
    ax2.bar(centres, np.nan_to_num(p), width=0.9, color=colours,
            hatch=None, edgecolor=["k" if w["qc"] else "none" for w in rows[:len(windows)]])
    if threshold is not None:
        ax2.axhline(threshold, color="k", ls="--", lw=0.8, label=f"decision threshold {threshold:.3g}")
        ax2.legend(loc="upper right", fontsize=8)
    ax2.set(ylim=(0, 1), xlabel="time (s)", ylabel=f"P({pos})",
            title=f"window probabilities (red: decided {pos} by the model's rule; grey, outlined: flagged windows)")
    fig.savefig(out, dpi=90)
    plt.close(fig)
    return out


def _muap_figure(muaps: list[dict], fs: float, out: Path, n: int = 12) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = muaps[:n]
    cols = min(6, len(shown))
    rows = -(-len(shown) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(2.1 * cols, 1.9 * rows), squeeze=False, constrained_layout=True)
    for ax in axes.flat:
        ax.axis("off")
    for ax, m in zip(axes.flat, shown):
        ax.axis("on")
        w = np.asarray(m["waveform_uv"])
        t = np.arange(len(w)) * 1e3 / fs
        ax.plot(t, w, lw=0.8, color="tab:blue")
        ax.axvspan(m["onset_ms"], m["end_ms"], color="0.9", zorder=0)
        ax.set_title(f"{m['amplitude_uv']:.0f} µV, {m['duration_ms']:.1f} ms\n"
                     f"{m['phases']} ph, {m['turns']} turns, {m['firing_rate_hz'] or 0:.1f} Hz", fontsize=7)
        ax.tick_params(labelsize=6)
    fig.suptitle("MUAPs (median of each unit's discharges; grey: duration)", fontsize=9)
    fig.savefig(out, dpi=90)
    plt.close(fig)
    return out


def _result_html(r: dict, pred: Predictor) -> str:
    probs = ", ".join(f"P({_e(c)}) = {p:.3f}" for c, p in r["probabilities"].items())
    from alsnet.diagnosis.qc import describe_flags

    qc = [w["qc"] for w in r["windows"]]
    warn = "".join(f'<div class="warn">Outside the training domain: {_e(w)}</div>' for w in r["warnings"])
    if not r["warnings"]:
        warn = '<p class="ok">The recording is within the model\'s training domain (rate, band, muscle, ' \
               'amplitude and spectrum).</p>'
    return (f'<p class="big">Model output: <b>{_e(r["label"])}</b> ({probs}; mean of '
            f'{r["n_windows_used"]} of {r["n_windows"]} windows, quality-control policy '
            f'<code>{_e(pred.qc_policy)}</code>).</p>'
            f'<p class="{"flag" if any(qc) else "ok"}">Signal quality: {_e(describe_flags(qc))}.</p>{warn}')


def _muap_html(m: dict) -> str:
    if m.get("error"):
        return f'<p class="flag">MUAP analysis failed: {_e(m["error"])}</p>'
    if not m["n_muaps"]:
        return "<p>No motor-unit potentials found (no unit fired steadily above threshold).</p>"
    s = m["summary"]
    names = (("amplitude_uv", "amplitude (µV)"), ("duration_ms", "duration (ms)"), ("phases", "phases"),
             ("turns", "turns"), ("area_uv_ms", "area (µV·ms)"), ("size_index", "size index"),
             ("rise_time_ms", "rise time (ms)"), ("firing_rate_hz", "firing rate (Hz)"))
    ref = m["reference"]
    body = []
    for k, lab in names:
        v = s[k]
        r = (ref.get("measures") or {}).get(k) if ref.get("available") else None
        ref_txt = (f'{r["reference_mean"]:g} ± {r["reference_sd"]:g} (mean limits {r["mean_limits"][0]:.3g}–'
                   f'{r["mean_limits"][1]:.3g}); single MUAPs {r["outlier_limits"][0]:g}–{r["outlier_limits"][1]:g}'
                   f' → <b class="{"ok" if r["verdict"] == "within" else "flag"}">{_e(r["verdict"])}</b>'
                   if r else "–")
        body.append(f'<tr><td class="l">{_e(lab)}</td><td>{v["median"]:.3g}</td><td>{v["q1"]:.3g}–{v["q3"]:.3g}</td>'
                    f'<td>{v["mean"]:.3g}</td><td class="l">{ref_txt}</td></tr>')
    if ref.get("available"):
        caveat = f' <b>Note</b>: {_e(ref["note"])}.' if ref.get("note") else ""
        src = f'<p class="ci">Reference: {_e(ref["source"])}.{caveat}</p>'
    else:
        src = f'<p class="ci">{_e(ref["note"])}</p>'
    return (f'<p>{m["n_muaps"]} motor units; polyphasic (&gt; 4 phases): {s["polyphasic_percent"]:.0f}%; '
            f'recruitment ratio (fastest rate / units): {s["recruitment_ratio"] or 0:.2f}.</p>'
            '<table><tr><th class="l">measure</th><th>median</th><th>quartiles</th><th>mean</th>'
            f'<th class="l">{_e(m["muscle"] or "muscle unknown")} reference, mean ± SD</th></tr>'
            + "".join(body) + f"</table>{src}")


def _card_html(pred: Predictor) -> str:
    card = pred.loaded.card
    td = card.get("training_data") or {}
    if not isinstance(td, dict):  # a run folder's fold card names its data folder only
        td = {"dataset": str(td)}
    dom, note = pred.domain, pred.domain_note
    st = dom.get("window_stats", {})
    rows = [("model", f'{Path(pred.loaded.path).name} ({card.get("task")})'),
            ("training data", td.get("dataset", "not stated")),
            ("subjects", f'{len(td.get("subjects", []))}: {", ".join(td.get("subjects", []))}'),
            ("windows", td.get("n_windows", "?")), ("protocol", card.get("protocol", "?")),
            ("domain", note or dom.get("source", "")),
            ("sampling rate, band", f'{dom.get("sampling_rate_hz")} Hz, {dom.get("analogue_band_hz")} Hz'),
            ("muscles", ", ".join(dom.get("muscles") or []) or "not stated"),
            ("window RMS (1st–99th pct)", f'{st["rms_uv"]["p1"]:.3g}–{st["rms_uv"]["p99"]:.3g} µV'
             if st.get("rms_uv") else "–")]
    dl = "".join(f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in rows)
    limits = "".join(f"<li>{_e(x)}</li>" for x in card.get("limitations") or [])
    return f"<dl>{dl}</dl>{_card_evaluation_html(card)}" + (f"<h3>Limits</h3><ul>{limits}</ul>" if limits else "")


def _card_evaluation_html(card: dict) -> str:
    """The card's subject-wise evaluation: its first run's subject metrics (people as k of n with
    Wilson intervals), and where the card has them (a nested build), every seed's mean and range
    and the paired comparison with the best baseline on the same folds. A card whose evaluation
    cannot be read gets one line saying so; the rest of the report stands."""
    try:
        return _card_evaluation_body(card)
    except (AlsnetError, KeyError, TypeError, ValueError, IndexError, AttributeError) as e:
        return f'<p class="warn">The card\'s evaluation could not be read ({_e(type(e).__name__)}: {_e(e)}).</p>'


def _card_evaluation_body(card: dict) -> str:
    ev = card.get("evaluation") or {}
    sub = ev.get("subject")
    if not sub:
        return "<p>The card carries no cross-validated evaluation.</p>"
    task = get_task(card["task"])
    seeds = ev.get("seeds") or []
    which = f"; seed {seeds[0]['seed']} of {len(seeds)}" if len(seeds) > 1 else ""
    note = (SUBJECT_NOTE[0].upper() + SUBJECT_NOTE[1:] if sub.get("confusion_matrix") else
            "No subject-level intervals: this card predates counting its people (a bootstrap over a "
            "handful of them collapses to a point, and is not shown).")
    out = (f'<p>Subject-wise evaluation ({_e(ev.get("protocol_label") or ev.get("protocol"))}, '
           f'{_e(sub.get("n"))} subjects{_e(which)}):</p><table>'
           + "".join(f'<tr><td class="l">{_e(lab)}</td><td>{_level_cell(sub, k, pct, "subject", task)}</td></tr>'
                     for k, lab, pct in ROWS)
           + _class_rows(sub.get("confusion_matrix"), task)
           + f'</table><p class="ci">{_e(note)}</p>')
    return out + _card_seeds_html(ev)


def _class_rows(cm, task) -> str:  # noqa: ANN001 - a confusion matrix (rows true), a Task
    """People of each class called that class, k of n with the Wilson interval (three classes:
    sensitivity and specificity would hide whether controls or myopathy patients are missed)."""
    if not cm or task.binary:
        return ""
    return "".join(f'<tr><td class="l">recall of {_e(c)}</td><td>{count_cell(p)}</td></tr>'
                   for c, p in count_proportions(cm, task)["recall"].items() if p["value"] is not None)


def _card_seeds_html(ev: dict) -> str:
    """A nested card's mean and range over seeds and its paired comparison with the baseline."""
    out = ""
    over = ev.get("over_seeds") or {}
    if over:
        def span(v: dict, f: str) -> str:
            return f'{f.format(v["mean"])} ({f.format(v["min"])}–{f.format(v["max"])})'

        cells = [(k, span(v, "{:.3f}" if k == "subject log-loss" else "{:.1f}")) for k, v in over.items()
                 if isinstance(v, dict) and {"mean", "min", "max"} <= set(v)]
        out += (f'<p>Over {_e(over.get("n_seeds"))} seeds (mean, range):</p><table>'
                + "".join(f'<tr><td class="l">{_e(k)}</td><td>{_e(v)}</td></tr>' for k, v in cells) + "</table>")
    against = ev.get("against_baseline") or []
    if against:
        def diff(d: dict, scale: float, f: str) -> str:
            lo, hi = d["ci"]
            return f"{scale * d['difference']:+{f}} [{scale * lo:+{f}}, {scale * hi:+{f}}]"

        rows = "".join(
            f'<tr><td>{_e(a["seed"])}</td><td class="l">{_e(Path(a["baseline"]).name)}</td>'
            f'<td>{_e(diff(a["subject_log_loss_difference"], 1, ".3f"))}</td>'
            f'<td>{_e(diff(a["window_balanced_accuracy_difference"], 100, ".1f"))}</td>'
            f'<td>{_e(a["mcnemar_subjects"]["a_right_b_wrong"])} vs {_e(a["mcnemar_subjects"]["a_wrong_b_right"])}'
            f' (p = {a["mcnemar_subjects"]["p_value"]:.2f})</td></tr>' for a in against)
        out += ("<p>Against the best baseline on the same folds (this model's procedure minus the baseline, "
                "paired by subject; below 0 in log-loss and above 0 in balanced accuracy is better):</p>"
                '<table><tr><th>seed</th><th class="l">baseline</th><th>subject log-loss</th>'
                "<th>window balanced accuracy (points)</th><th>people: this right, baseline wrong vs the "
                f"reverse (McNemar)</th></tr>{rows}</table>")
    return out


def _window_table(rows: list[dict], pos: str) -> str:
    def p(w: dict) -> str:
        return f"{w['probabilities'][pos]:.3f}" if w["probabilities"] else "not scored"

    body = "".join(
        f'<tr><td>{w["index"]}</td><td>{w["start_s"]:.2f}</td><td>{p(w)}</td>'
        f'<td class="l {"flag" if w["qc"] else ""}">{_e(", ".join(w["qc"]) or "clean")}</td></tr>' for w in rows)
    return (f'<table><tr><th>window</th><th>start (s)</th><th>P({_e(pos)})</th><th class="l">quality</th></tr>'
            f"{body}</table>")


def write_recording_report(path: str | os.PathLike, out: str | os.PathLike, *, predictor: Predictor | None = None,
                           result: dict | None = None, model: str = DEFAULT_MODEL, fs: float | None = None,
                           scale: float | None = None, channel: int | None = None,
                           max_windows: int = 30) -> Path:
    """Write the HTML report of one recording and return its path.

    Parameters
    ----------
    path : path
        The recording.
    out : path
        The ``.html`` file to write (atomically).
    predictor : Predictor, optional
        The model and engine to use (default: a new one of ``model``).
    result : dict, optional
        ``predictor.predict(path)`` if already computed.
    fs, scale, channel
        As for :func:`alsnet.diagnosis.predict.predict`.
    max_windows : int
        Windows drawn in the trace and explained (the table lists all).

    Raises
    ------
    AlsnetError
        The recording cannot be read or scored; the message names it.
    """
    from alsnet.diagnosis.explain import explain_recording
    from alsnet.diagnosis.muap import analyse_many

    pred = predictor or Predictor(model)
    r = result or pred.predict(path, fs=fs, scale=scale, channel=channel)
    if r.get("error"):
        raise AlsnetError(r["error"])
    pos = pred.classes[1] if pred.task.binary else r["label"]
    with open_source(path, fs=fs, scale=scale, channel=channel) as src:
        wins = []
        for _, w in iter_window_chunks(src, min(32, max_windows)):
            wins.append(w)
            if sum(map(len, wins)) >= max_windows:
                break
    windows = np.concatenate(wins)[:max_windows]
    mu = analyse_many([path], fs=fs, scale=scale, channel=channel, keep_waveforms=True)[0]
    name = Path(os.fspath(path)).name
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        trace = _img(_trace_figure(windows, r["windows"], pos, tmp / "trace.png",
                                   decide=lambda d: pred.decide([d[c] for c in pred.classes]),
                                   threshold=pred.rule.threshold if pred.task.binary else None),
                     "trace and window probabilities")
        ex = explain_recording(path, tmp / "explain.png", model=pred.loaded, max_windows=max_windows, fs=fs,
                               scale=scale, channel=channel, target=None if pred.task.binary else pos)
        evidence = _img(Path(ex["figure"]), "where ALSNet found its evidence")
        muaps = _img(_muap_figure(mu["muaps"], mu["fs"], tmp / "muaps.png"), "MUAPs") if mu.get("n_muaps") else ""
    page = (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>alsnet: {_e(name)}</title>'
            f"<style>{CSS}{EXTRA_CSS}</style></head><body><h1>alsnet report: {_e(name)}</h1>"
            f'<p class="disclaimer">{_e(DISCLAIMER)}</p>'
            f'<p class="ci">{_e(os.fspath(path))}</p>'
            f"<h2>Result</h2>{_result_html(r, pred)}"
            f'<h2>Trace and signal quality</h2><div class="figs">{trace}</div>'
            f'<h2>Evidence</h2><div class="figs">{evidence}</div>'
            f'<h2>Motor-unit potentials</h2>{_muap_html(mu)}<div class="figs">{muaps}</div>'
            f"<h2>Model card</h2>{_card_html(pred)}"
            f"<h2>Windows</h2>{_window_table(r['windows'], pos)}"
            f'<p class="disclaimer">{_e(DISCLAIMER)}</p></body></html>')
    out = Path(out)
    atomic_write_text(out, page)
    return out


__all__ = ["write_recording_report"]
