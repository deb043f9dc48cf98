"""Render a per-recording HTML report in headless Chromium: check it and keep a screenshot.

    python scripts/check_report_browser.py REPORT.html --screenshot docs/figures/recording_report.png

Chromium is the Debian package (``apt-get install -y chromium``), run headless with a fresh
profile and no network. The check: the DOM Chromium built holds every section of the report
and its figures as decoded data-URL images, and the screenshot is not blank. Exit 0 when it
renders, 1 when it does not (one line saying why).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars")
SECTIONS = ("Result", "Trace and signal quality", "Evidence", "Motor-unit potentials", "Model card", "Windows")


def _chromium(args: list[str], profile: str, timeout: float = 120.0) -> subprocess.CompletedProcess:
    return subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={profile}", *args],
                          capture_output=True, text=True, timeout=timeout)


def check(report: Path, screenshot: Path, width: int = 1280, height: int = 5200) -> list[str]:
    """Problems found rendering ``report`` (empty when it renders); writes ``screenshot``."""
    from matplotlib.image import imread

    url = report.resolve().as_uri()
    problems = []
    with tempfile.TemporaryDirectory() as profile:
        dom = _chromium(["--dump-dom", url], profile).stdout
    for s in SECTIONS:
        if f"<h2>{s}</h2>" not in dom:
            problems.append(f"section {s!r} missing from the rendered DOM")
    n_img = dom.count('src="data:image/png;base64,')
    if n_img < 3:
        problems.append(f"only {n_img} embedded figures in the rendered DOM")
    if "not a medical device" not in dom:
        problems.append("the disclaimer is missing")
    if "http://" in dom or "https://" in dom:
        problems.append("the page refers to the network (it must be self-contained)")
    screenshot.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as profile:
        _chromium([f"--screenshot={screenshot.resolve()}", f"--window-size={width},{height}", url], profile)
    if not screenshot.is_file():
        return [*problems, "Chromium wrote no screenshot"]
    img = imread(screenshot)
    ink = float((img[..., :3].mean(axis=2) < 0.9).mean())
    if ink < 0.02:
        problems.append(f"the screenshot is nearly blank ({100 * ink:.1f}% ink)")
    return problems


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("report", type=Path)
    ap.add_argument("--screenshot", type=Path, default=Path("recording_report.png"))
    ap.add_argument("--height", type=int, default=5200)
    args = ap.parse_args(argv)
    if not Path(CHROMIUM).is_file():
        print(f"check_report_browser: {CHROMIUM} not found (apt-get install -y chromium)", file=sys.stderr)
        return 1
    problems = check(args.report, args.screenshot, height=args.height)
    for p in problems:
        print(f"check_report_browser: {args.report}: {p}", file=sys.stderr)
    if not problems:
        print(f"{args.report} renders in {CHROMIUM}; screenshot {args.screenshot}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
