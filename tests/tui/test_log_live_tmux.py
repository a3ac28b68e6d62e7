"""The event log in a real terminal (tmux) stays live to the last line of a
1,000-host SIMULATED run. (Pilot renders lines afresh, so it cannot see a
terminal left with stale lines; this reads what tmux shows.)"""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def write_inventory(path: Path, hosts: int) -> None:
    doc = {"all": {"vars": {"rollout_simulated": True, "sim_releases": {"1.0.0": {}, "2.0.0": {}}},
                   "children": {"agents": {"hosts": {f"agent-{n:05d}": None for n in range(1, hosts + 1)}},
                                "lb": {"hosts": {"lb-01": {"sim_rps": 200}}}}}}  # enough traffic for each gate to pass
    path.write_text(yaml.safe_dump(doc, sort_keys=False))


def test_event_log_shows_the_last_event_of_a_1000_host_run(tmp_path):
    inv = tmp_path / "inv.yaml"
    write_inventory(inv, 1000)
    session = f"rc-log-{os.getpid()}"
    cmd = (f"cd {ROOT} && PYTHONPATH={ROOT} XDG_RUNTIME_DIR={tmp_path} ROLLOUT_JOURNAL_DIR={tmp_path / 'j'} "
           f"{sys.executable} -m console --plan examples/rolling.yaml --inventory {inv} --time-scale 10; sleep 300")
    subprocess.run(["tmux", "new-session", "-d", "-s", session, "-x", "120", "-y", "40", cmd], check=True)
    def shown() -> str:
        return subprocess.run(["tmux", "capture-pane", "-p", "-t", session], capture_output=True, text=True).stdout

    def last_log_line(text: str) -> str:
        lines = [line for line in text.splitlines() if line.startswith("[")]
        return lines[-1] if lines else ""

    try:
        deadline = time.monotonic() + 240
        while "RESULT" not in (screen := shown()) and time.monotonic() < deadline:
            time.sleep(0.2)  # polling what the terminal shows
        settle = time.monotonic() + 10  # the result is up: the log gets its last line within a few ticks
        while "finished: succeeded" not in last_log_line(screen) and time.monotonic() < settle:
            time.sleep(0.2)
            screen = shown()
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], capture_output=True)
    assert "RESULT succeeded" in screen, screen
    assert "finished: succeeded" in last_log_line(screen), screen
