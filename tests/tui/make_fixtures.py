"""Regenerate the recorded event fixtures (run once; the output is committed):
    python3 tests/tui/make_fixtures.py
Each fixture is the event list of one headless run on the embedded SIMULATED
fleet, one JSON event per line."""
from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
OUT = Path(__file__).parent / "fixtures"
RUNS = {"rolling": ["examples/rolling.yaml"], "canary-bad": ["examples/canary.yaml", "--version", "2.1.0-bad"],
        "blue-green": ["examples/blue-green.yaml"]}


def main() -> None:
    sys.path.insert(0, str(ROOT))
    from console.journal import read_journal

    OUT.mkdir(exist_ok=True)
    for name, args in RUNS.items():
        with tempfile.TemporaryDirectory() as tmp:
            journal = Path(tmp) / "j.jsonl"
            subprocess.run([sys.executable, "-m", "console", "--plan", *args, "--headless", "--time-scale", "50",
                            "--record", str(journal)], cwd=ROOT, stdout=subprocess.DEVNULL)
            events = read_journal(journal).events
        with open(OUT / f"{name}.jsonl", "w") as fh:
            for event in events:
                fh.write(json.dumps(event.to_dict(), sort_keys=True) + "\n")
        print(name, len(events))


if __name__ == "__main__":
    main()
