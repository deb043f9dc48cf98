"""Tables and the budget figure of nested runs, computed from their committed folds.

    python scripts/nested_report.py results/nested-* --figure docs/figures/budget_inner_curves.png
    python scripts/nested_report.py results/nested-*-alsnet-* --budget-table    # one row per inner training
    python scripts/nested_report.py results/nested-als-vs-normal-alsnet-crop*-s0 --outer-fold outer-0 \
        --outer-fold outer-1 --figure docs/figures/budget_crop_screen.png     # the crop screen

Prints markdown: one row per finished run (intervals and the number of subjects they rest
on), one row per configuration over its seeds (mean and range), each subject's probability
of its own class under every run of the same task, and the paired comparison of every ALSNet
run with every baseline run of the same task and seed (with every baseline run where none has
that seed; paired subject bootstrap, exact McNemar), as lines and again as one table per task.
Unfinished runs are listed with their progress. The figure shows the inner out-of-fold
curves of every ALSNet run against optimiser steps. With --outer-fold and several ALSNet runs
(a screen, e.g. of crop lengths) the thick lines, and a table of one row per run (lowest mean
inner log-loss, its epoch, the cost), rest on the inner folds that every run has finished.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def _progress(run: Path) -> str:
    done = len(list(run.glob("*/inner-*/done.json")))
    outer = len(list(run.glob("*/selection.json")))
    cfg = json.loads((run / "config.json").read_text())
    total = sum(len(f["inner"]) for f in cfg["split"]["folds_detail"])
    return f"{done}/{total} inner trainings, {outer}/{len(cfg['split']['folds_detail'])} outer folds"


def main(argv: list[str] | None = None) -> int:
    import pandas as pd

    from alsnet.errors import AlsnetError
    from alsnet.reporting.nested import (
        budget_table,
        common_inner_folds,
        held_out_subjects,
        inner_curves,
        paired_comparison,
        per_subject_table,
        plot_budget,
        screen_table,
        seed_summary,
        summary_row,
    )

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+", type=Path)
    ap.add_argument("--figure", type=Path, help="write the budget figure here")
    ap.add_argument("--n-boot", type=int, default=2000)
    ap.add_argument("--budget-table", action="store_true",
                    help="print one row per finished inner training of every ALSNet run (its best epoch)")
    ap.add_argument("--unfinished", action="store_true",
                    help="draw the epochs logged so far by inner trainings still running (dotted)")
    ap.add_argument("--outer-fold", action="append", metavar="NAME",
                    help="draw and tabulate only these outer folds' inner trainings (repeatable): compares a "
                         "screen run on some outer folds with other runs on the same folds")
    args = ap.parse_args(argv)
    finished, unfinished = [], []
    for run in args.runs:
        if not (run / "config.json").is_file():
            print(f"nested_report: {run}: not a run folder (no config.json)", file=sys.stderr)
            continue
        (finished if (run / "metrics.json").is_file() else unfinished).append(run)
    rows = []
    for run in finished:
        try:
            rows.append(summary_row(run))
        except AlsnetError as e:
            print(f"nested_report: {e}", file=sys.stderr)
    if rows:
        print(pd.DataFrame(rows).to_markdown(index=False))
        seeds = seed_summary([run for run, _ in zip(finished, rows)])
        print("\n### Each configuration over its seeds: mean (min-max)\n")
        print(seeds[[c for c in seeds.columns if not c.startswith("_")]].to_markdown(index=False))
    for run in unfinished:
        print(f"\n- {run.name}: unfinished ({_progress(run)})")
    tasks = sorted({r["task"] for r in rows})
    for task in tasks:
        runs = [run for run, r in zip(finished, rows) if r["task"] == task]
        print(f"\n### {task}: each subject's probability of its own class\n")
        print(per_subject_table(runs).round(3).to_markdown())
        nets = [run for run, r in zip(finished, rows) if r["task"] == task and r["model"] == "alsnet"]
        bases = [run for run, r in zip(finished, rows) if r["task"] == task and r["model"] != "alsnet"]
        seed_of = {run: r["seed"] for run, r in zip(finished, rows)}
        pairs = []
        for a in nets:
            # paired with the baselines of the same seed where there are any (the seeds of one
            # procedure against the seeds of the other), else with every baseline run
            same = [b for b in bases if seed_of[b] == seed_of[a]]
            for b in same or bases:
                c = paired_comparison(a, b, n_boot=args.n_boot)
                ll, ba, mc = (c["subject_log_loss_difference"], c["window_balanced_accuracy_difference"],
                              c["mcnemar_subjects"])
                print(f"\n- {a.name} − {b.name} ({ll['n_subjects']} subjects, {ll['n_boot']} paired replicates): "
                      f"subject log-loss {ll['difference']:+.3f} [{ll['ci'][0]:+.3f}, {ll['ci'][1]:+.3f}], "
                      f"window balanced accuracy {100 * ba['difference']:+.1f} points "
                      f"[{100 * ba['ci'][0]:+.1f}, {100 * ba['ci'][1]:+.1f}]; McNemar on subjects: "
                      f"{mc['a_right_b_wrong']} vs {mc['a_wrong_b_right']} discordant, p = {mc['p_value']:.3f}")
                pairs.append({"ALSNet run": a.name, "baseline": b.name,
                              "subject log-loss (paired − baseline)":
                                  f"{ll['difference']:+.3f} [{ll['ci'][0]:+.3f}, {ll['ci'][1]:+.3f}]",
                              "window bal. acc. (points)":
                                  f"{100 * ba['difference']:+.1f} [{100 * ba['ci'][0]:+.1f}, {100 * ba['ci'][1]:+.1f}]",
                              "McNemar (ALSNet right only vs baseline right only)":
                                  f"{mc['a_right_b_wrong']} vs {mc['a_wrong_b_right']}, p = {mc['p_value']:.3f}"})
        if pairs:
            print(f"\n### {task}: the paired comparisons as a table\n")
            print(pd.DataFrame(pairs).to_markdown(index=False))
    if args.figure or args.budget_table:
        curves = {}
        for run in args.runs:
            cfg = json.loads((run / "config.json").read_text())
            if cfg.get("model") == "alsnet":
                crop = cfg["experiment"]["recipe"].get("train_crop")
                label = f"{cfg['task']['name'] if isinstance(cfg['task'], dict) else cfg['task']}, " + (
                    f"crop {crop:g} s" if crop else "whole windows") + f", seed {cfg['seed']}"
                c = inner_curves(run, unfinished=args.unfinished)
                if args.outer_fold and len(c):
                    c = c[c["outer"].isin(args.outer_fold)]
                    label += f", {'+'.join(args.outer_fold)}"
                curves[label] = c
                if args.budget_table:
                    table = budget_table(curves[label], held_out_subjects(run), label=f"{label}, ")
                    print(f"\n### Inner trainings of {run.name}: {len(table)} finished\n")
                    print(table.to_markdown(index=False) if len(table) else "(none finished)")
        screen = bool(args.outer_fold) and len(curves) > 1
        if screen:  # runs compared on some outer folds: on the inner folds all of them finished
            table = screen_table(curves)
            print(f"\n### The screen, on the {len(common_inner_folds(curves))} inner folds every run finished\n")
            print(table.to_markdown(index=False) if len(table) else "(no inner fold finished by every run)")
        if curves and args.figure:
            print(f"\nfigure: {plot_budget(curves, args.figure, common=screen)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
