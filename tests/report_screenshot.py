"""Write screenshots/report-canary-bad.png: `console report --html` of the
README's bad canary (a SIMULATED run recorded now), as chromium shows it
offline. Development tooling, from the repository root:

    python3 -m tests.report_screenshot [--out screenshots]
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

from .browser import screenshot

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    p = argparse.ArgumentParser(prog="python3 -m tests.report_screenshot")
    p.add_argument("--out", default="screenshots")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        journal, html = Path(tmp) / "canary-bad.jsonl", Path(tmp) / "report.html"
        subprocess.run([sys.executable, "-m", "console", "--plan", "examples/canary.yaml", "--version", "2.1.0-bad",
                        "--headless", "--time-scale", "50", "--record", str(journal)], cwd=ROOT,
                       stdout=subprocess.DEVNULL, check=False)
        subprocess.run([sys.executable, "-m", "console", "report", str(journal), "--html", str(html)], cwd=ROOT,
                       check=True, stdout=subprocess.DEVNULL)
        out = Path(args.out) / "report-canary-bad.png"
        print(screenshot(html, out, width=1200, height=3300))


if __name__ == "__main__":
    main()
