"""tests/lanes.py: which real-host files the queue holds, in which order, and
how a CI log's lines become durations again."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

_spec = importlib.util.spec_from_file_location("lanes", Path(__file__).with_name("lanes.py"))
assert _spec and _spec.loader
lanes = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(lanes)


def test_the_queue_holds_every_real_file_but_the_seeds_longest_first():
    files = lanes.real_files()
    on_disk = {f"tests/sandbox/{p.name}" for p in Path(__file__).parent.joinpath("sandbox").glob("test_*.py")}
    assert set(files) == on_disk - {lanes.SEED} and len(files) == len(set(files))
    known = json.loads(lanes.DURATIONS.read_text())
    timed = [known[f] for f in files if f in known]
    assert timed == sorted(timed, reverse=True)
    assert all(f in known for f in files[len(files) - len(timed):])  # unknown files go first


def test_durations_come_back_from_the_lines_a_run_prints(tmp_path):
    log = tmp_path / "ci.log"
    log.write_text("....\nlanes: tests/sandbox/test_a.py passed in 12 s (fleet 0)\n"
                   "lanes: fast tests passed in 600 s (fleet None)\n"
                   "lanes: tests/sandbox/test_b.py FAILED in 7 s (fleet 1)\n")
    assert lanes.durations_from(str(log)) == {"tests/sandbox/test_a.py": 12.0, "tests/sandbox/test_b.py": 7.0}
