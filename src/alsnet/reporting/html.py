"""A self-contained HTML report of one or more run folders.

One HTML file, no server and no scripts: inline CSS, figures embedded as base64 PNG. It
opens with a comparison table across runs (one row per run: model × protocol × task), then
a section per run with its header (task, model, protocol and its honesty label, seed,
data), metric tables at window, recording and subject level (windows and recordings with
subject-bootstrap intervals, people as k of n with Wilson intervals), a nested run's choices
per outer fold (what was chosen, calibration, decision rule, and on what), and its figures.
Numbers of a protocol that shares recordings between train and test (the paper's
segment-level split) carry its label in bold wherever they appear.
"""

from __future__ import annotations

import base64
import html
import tempfile
from pathlib import Path

from alsnet.errors import AlsnetError
from alsnet.evaluation.metrics import LEVELS, count_proportions
from alsnet.files import atomic_write_text
from alsnet.reporting.figures import draw_run_figures, load_run

#: Rows of the per-run metric table: (key, label, is a proportion shown in %).
ROWS = (("accuracy", "accuracy", True), ("balanced_accuracy", "balanced accuracy", True),
        ("sensitivity", "sensitivity (ALS recall)", True),
        ("specificity", "specificity (non-ALS recall)", True), ("f1", "F1", True),
        ("roc_auc", "ROC AUC", False))
#: Columns of the comparison table, per level.
COMPARE = (("balanced_accuracy", "bal. acc."), ("sensitivity", "sens."), ("specificity", "spec."),
           ("roc_auc", "AUC"))
FIGURES = (("confusion_window.png", "Confusion matrix, windows"),
           ("confusion_recording.png", "Confusion matrix, recordings"),
           ("confusion_subject.png", "Confusion matrix, subjects"),
           ("roc.png", "ROC"), ("subject_strip.png", "Per-recording probabilities by subject"),
           ("learning_curves.png", "Learning curves"), ("reliability.png", "Reliability (calibration)"))

CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:2em auto;max-width:1200px;
color:#222;line-height:1.4;padding:0 1em}
h1{font-size:1.6em}h2{font-size:1.3em;border-bottom:1px solid #ccc;margin-top:2em}h3{font-size:1.05em}
table{border-collapse:collapse;margin:.6em 0;font-size:.9em}
th,td{border:1px solid #ccc;padding:.25em .55em;text-align:right}
th{background:#f2f2f2}td.l,th.l{text-align:left}
.leaky{color:#a00;font-weight:bold}.ci{color:#666;font-size:.85em}
.figs{display:flex;flex-wrap:wrap;gap:1em}.figs figure{margin:0}
.figs img{max-width:100%;border:1px solid #eee}figcaption{font-size:.85em;color:#555}
.note{background:#fff6e0;border-left:4px solid #e0a000;padding:.5em 1em}
dl{display:grid;grid-template-columns:max-content auto;gap:.15em 1em}dt{font-weight:bold}dd{margin:0}
"""


def _e(x) -> str:
    return html.escape(str(x), quote=True)


def _fmt(v, pct: bool) -> str:
    if v is None:
        return "–"
    return f"{100 * v:.1f}" if pct else f"{v:.3f}"


def _cell(m: dict, key: str, pct: bool) -> str:
    ci = (m.get("ci") or {}).get(key)
    s = _e(_fmt(m.get(key), pct))
    if ci and ci[0] is not None and ci[1] is not None:
        s += f' <span class="ci">[{_e(_fmt(ci[0], pct))}, {_e(_fmt(ci[1], pct))}]</span>'
    return s


#: Subject-level metrics shown as proportions of people (k of n, Wilson interval).
COUNTED = ("accuracy", "sensitivity", "specificity")


def _level_cell(m: dict, key: str, pct: bool, level: str, task) -> str:  # noqa: ANN001 - a Task
    """One level's metric: windows and recordings with their subject-bootstrap interval; people as
    ``k/n`` with the Wilson 95 % interval (a bootstrap over a handful of them collapses to a point,
    [100, 100] when all are right), and the subject level's balanced accuracy, F1 and AUC with
    none."""
    if level != "subject":
        return _cell(m, key, pct)
    cm = m.get("confusion_matrix")
    if key not in COUNTED or not cm:
        return _e(_fmt(m.get(key), pct))
    return count_cell(count_proportions(cm, task)[key])


def count_cell(p: dict) -> str:
    """A proportion of people (:func:`alsnet.evaluation.stats.proportion`) as a table cell: the
    percentage, then ``k/n`` and the Wilson 95 % interval; "–" where none was counted."""
    if p["value"] is None:
        return "–"
    lo, hi = p["wilson"]
    return f'{_e(_fmt(p["value"], True))} <span class="ci">{p["k"]}/{p["n"]} [{100 * lo:.0f}, {100 * hi:.0f}]</span>'


def _leaky(run: dict) -> bool:
    return bool((run["config"].get("split") or {}).get("shares_recordings_between_train_and_test"))


def _protocol_html(run: dict) -> str:
    split = run["config"].get("split") or {}
    name = _e(split.get("protocol", run["metrics"].get("protocol", "?")))
    label = _e(split.get("label") or run["metrics"].get("protocol_label") or "")
    if _leaky(run):
        return f'{name}: <span class="leaky">{label}</span>'
    return f"{name}: {label}" if label else name


def _comparison(runs: list[dict]) -> str:
    head1 = '<th class="l" rowspan="2">run</th><th class="l" rowspan="2">model</th>' \
            '<th class="l" rowspan="2">protocol</th><th class="l" rowspan="2">task</th>' \
            '<th rowspan="2">seed</th>'
    head1 += "".join(f'<th colspan="{len(COMPARE)}">{lv}</th>' for lv in LEVELS)
    head2 = "".join(f"<th>{_e(lab)}</th>" for _ in LEVELS for _, lab in COMPARE)
    rows = []
    for k, run in enumerate(runs):
        cfg, met = run["config"], run["metrics"]
        cells = "".join(f"<td>{_level_cell(met[lv], key, key != 'roc_auc', lv, run['task'])}</td>"
                        for lv in LEVELS for key, _ in COMPARE)
        rows.append(f'<tr><td class="l"><a href="#run-{k}">{_e(run["dir"].name)}</a></td>'
                    f'<td class="l">{_e(cfg.get("model", met.get("model", "?")))}</td>'
                    f'<td class="l">{_protocol_html(run)}</td><td class="l">{_e(run["task"].name)}</td>'
                    f'<td>{_e(cfg.get("seed", ""))}</td>{cells}</tr>')
    return (f"<table><thead><tr>{head1}</tr><tr>{head2}</tr></thead><tbody>{''.join(rows)}</tbody></table>"
            f'<p class="ci">Percentages; AUC as a fraction. {_e(_ci_note(runs))}</p>')


def _ci_note(runs: list[dict]) -> str:
    """What the bracketed intervals are, from the runs' own bootstrap settings."""
    settings = {(b.get("ci"), b.get("n_boot")) for r in runs
                for b in [r["metrics"]["subject"].get("bootstrap") or {}]}
    if len(settings) == 1:
        ci, n_boot = settings.pop()
        if ci is not None and n_boot:
            return (f"Brackets: windows and recordings, {100 * ci:g}% percentile interval from {n_boot} "
                    f"bootstrap replicates over subjects (resampled within each class); {SUBJECT_NOTE}")
        if n_boot == 0:
            return f"Windows and recordings: no intervals (bootstrap skipped). {SUBJECT_NOTE}"
    return ("Brackets: windows and recordings, percentile intervals from a bootstrap over subjects "
            f"(settings per run); {SUBJECT_NOTE}")


SUBJECT_NOTE = ("subjects: k of n people right with the Wilson 95 % interval (accuracy, sensitivity, "
                "specificity); the subject balanced accuracy and AUC have none.")


def _metric_table(met: dict, task) -> str:
    head = '<tr><th class="l">metric</th>' + "".join(f"<th>{lv}</th>" for lv in LEVELS) + "</tr>"
    body = [f'<tr><td class="l">{_e(lab)}</td>' + "".join(f"<td>{_level_cell(met[lv], key, pct, lv, task)}</td>"
                                                          for lv in LEVELS) + "</tr>"
            for key, lab, pct in ROWS]
    if not task.binary:
        for c in task.classes:
            body.append(f'<tr><td class="l">recall of {_e(c)}</td>' + "".join(
                f"<td>{_e(_fmt((met[lv].get('recall') or {}).get(c), True))}</td>" for lv in LEVELS) + "</tr>")
    body.append('<tr><td class="l">units (subjects)</td>' + "".join(
        f"<td>{_e(met[lv].get('n', '?'))} ({_e(met[lv].get('n_subjects', '?'))})</td>" for lv in LEVELS) + "</tr>")
    return f"<table>{head}{''.join(body)}</table>"


def _confusion_tables(met: dict, task) -> str:
    out = []
    for lv in LEVELS:
        cm = met[lv].get("confusion_matrix") or []
        head = '<tr><th class="l">true \\ predicted</th>' + "".join(f"<th>{_e(c)}</th>" for c in task.classes) + "</tr>"
        rows = "".join(f'<tr><th class="l">{_e(c)}</th>' + "".join(f"<td>{_e(v)}</td>" for v in row) + "</tr>"
                       for c, row in zip(task.classes, cm))
        out.append(f'<div><h3>{lv}</h3><table>{head}{rows}</table></div>')
    return f'<div class="figs">{"".join(out)}</div>'


def _choices_table(run: dict) -> str:
    """A nested run's choices, one row per outer fold (``metrics.json`` -> ``choices``): what was
    chosen, the calibration and the decision rule, and what every choice was made on."""
    met = run["metrics"]
    choices = met.get("choices")
    if not isinstance(choices, dict) or not choices:
        return ""
    folds = {f.get("name"): f for f in (run["config"].get("split") or {}).get("folds_detail") or []}
    rules = (met.get("subject") or {}).get("decision")
    rows = []
    for name, c in sorted(choices.items()):
        if c.get("chosen_params"):
            chosen = ", ".join(f"{k} {v}" for k, v in c["chosen_params"].items())
        elif c.get("chosen_epoch") is not None:
            steps = c.get("chosen_steps")
            chosen = f"epoch {c['chosen_epoch']}" + (f" ({min(steps)}–{max(steps)} steps)" if steps else "")
        else:
            chosen = "–"
        cal = c.get("calibrator") or {}
        method = cal.get("method", "?")
        if method not in ("none", "?"):
            method += f" (scale {', '.join(f'{v:.3g}' for v in cal.get('scale') or [])}"
            method += f"; bias {', '.join(f'{v:.3g}' for v in cal.get('bias') or [])})"
        rule = rules.get(name) if isinstance(rules, dict) else None
        rule = rule or ", ".join(f"{v:+.2f}" for v in (c.get("decision_rule") or {}).get("offsets") or [])
        test = ", ".join(folds.get(name, {}).get("test_subjects") or [])
        rows.append(f'<tr><td class="l">{_e(name)}</td><td class="l">{_e(test)}</td><td class="l">{_e(chosen)}</td>'
                    f'<td class="l">{_e(method)}</td><td class="l">{_e(rule)}</td></tr>')
    said = {k: {str(c.get(k)) for c in choices.values() if c.get(k)} for k in ("criterion", "chosen_on", "scored_by")}
    notes = "; ".join(f"{k.replace('_', ' ')}: {'/'.join(sorted(v))}" for k, v in said.items() if v)
    return ('<h3>Choices per outer fold</h3><table><tr><th class="l">outer fold</th><th class="l">test subjects</th>'
            '<th class="l">chosen</th><th class="l">calibration</th><th class="l">decision rule</th></tr>'
            f'{"".join(rows)}</table><p class="ci">{_e(notes)}</p>')


def _img(path: Path, caption: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return (f'<figure><img alt="{_e(caption)}" src="data:image/png;base64,{data}">'
            f"<figcaption>{_e(caption)}</figcaption></figure>")


def _run_section(k: int, run: dict, figs: dict[str, Path]) -> str:
    cfg, met, task = run["config"], run["metrics"], run["task"]
    ver = cfg.get("versions") or {}
    facts = [("task", f"{task.name} (classes {', '.join(task.classes)})"),
             ("model", cfg.get("model", met.get("model", "?"))), ("seed", cfg.get("seed", "?")),
             ("data", cfg.get("data", "?")), ("folder", str(run["dir"]))]
    if cfg.get("n_windows") is not None:
        facts.append(("windows", cfg["n_windows"]))
    if ver:
        facts.append(("versions", ", ".join(f"{a} {b}" for a, b in ver.items() if a in
                                            ("alsnet", "torch", "scikit-learn", "python"))))
    dev = cfg.get("deviations") or met.get("deviations")
    dl = f"<dt>protocol</dt><dd>{_protocol_html(run)}</dd>" + "".join(
        f"<dt>{_e(a)}</dt><dd>{_e(b)}</dd>" for a, b in facts)
    if dev:
        dl += f"<dt>deviations from the paper</dt><dd>{_e('; '.join(map(str, dev)))}</dd>"
    facts.append(("intervals", _ci_note([run])))
    note = ""
    if _leaky(run):
        note = ('<p class="note"><b>Leaky protocol:</b> windows of the same recordings (and people) are '
                "in both training and test, so these numbers measure recognition of seen recordings, "
                "not diagnosis of new patients.</p>")
    images = "".join(_img(figs[name], cap) for name, cap in FIGURES if name in figs)
    return (f'<section id="run-{k}"><h2>{_e(run["dir"].name)}: {_e(cfg.get("model", "?"))}, '
            f"{_e(task.name)}</h2><dl>{dl}</dl>{note}<h3>Metrics</h3>{_metric_table(met, task)}{_choices_table(run)}"
            f"<h3>Confusion matrices</h3>{_confusion_tables(met, task)}"
            f'<h3>Figures</h3><div class="figs">{images}</div></section>')


def _draw(run: dict, tmp: Path) -> dict[str, Path]:
    """Figures into the run's own ``figures/``; a temporary folder if that is read-only."""
    try:
        paths = draw_run_figures(run, run["dir"] / "figures")
    except PermissionError:
        paths = draw_run_figures(run, tmp / run["dir"].name)
    return {p.name: p for p in paths}


def write_report(run_dirs: list[Path], out_html: Path) -> Path:
    """Write the HTML report of ``run_dirs`` to ``out_html`` (atomically); returns its path.

    Raises :class:`AlsnetError` naming the file when a run folder is missing or garbled.
    """
    if not run_dirs:
        raise AlsnetError("no run folders given")
    runs = [load_run(d) for d in run_dirs]
    out = Path(out_html)
    with tempfile.TemporaryDirectory() as tmp:
        sections = [_run_section(k, run, _draw(run, Path(tmp))) for k, run in enumerate(runs)]
    leaky = any(_leaky(r) for r in runs)
    warn = ('<p class="note">Rows marked in <span class="leaky">bold red</span> come from a split that '
            "shares recordings between train and test; they are not estimates of diagnostic accuracy "
            "on new patients.</p>") if leaky else ""
    page = (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>alsnet report</title>'
            f"<style>{CSS}</style></head><body><h1>alsnet report</h1>"
            f"<h2>Comparison</h2>{warn}{_comparison(runs)}{''.join(sections)}</body></html>\n")
    atomic_write_text(out, page)
    return out


__all__ = ["write_report"]
