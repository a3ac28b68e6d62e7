"""tests/lanes.py: which real-host files the queue holds, in which order, and
how a CI log's lines become durations again."""

from __future__ import annotations

import importlib.util
import json
import re
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
                   "lanes: tests/sandbox/test_b.py FAILED in 7 s (fleet 1)\n"
                   "......lanes: tests/sandbox/test_c.py passed in 110 s (fleet 3)\n")  # after the fast lane's dots
    assert lanes.durations_from(str(log)) == {"tests/sandbox/test_a.py": 12.0, "tests/sandbox/test_b.py": 7.0,
                                              "tests/sandbox/test_c.py": 110.0}


def test_the_quiet_lane_takes_only_files_that_put_no_client_load_on_their_fleet():
    root = Path(__file__).parent.parent
    for file in lanes.QUIET:
        text = (root / file).read_text()
        assert "SteadyLoad" not in text and "fault_helpers" not in text and "curl" not in text, file
        assert not re.search(r"^\s*(from load import|import load\b)", text, re.M), file


def test_the_quiet_worker_skips_loaded_files_and_the_others_take_any():
    queue = lanes.Lanes([])
    queue.queue = ["tests/sandbox/test_judge_real.py", "tests/sandbox/test_hostile_real.py",
                   "tests/sandbox/test_rollout_real.py", "tests/sandbox/test_lock_real.py"]
    assert queue.take(quiet_only=True) == "tests/sandbox/test_hostile_real.py"
    assert queue.take(quiet_only=False) == "tests/sandbox/test_judge_real.py"
    assert queue.take(quiet_only=True) == "tests/sandbox/test_lock_real.py"
    assert queue.take(quiet_only=True) is None
    assert queue.take(quiet_only=False) == "tests/sandbox/test_rollout_real.py"
    assert queue.take(quiet_only=False) is None


def test_the_beside_files_leave_the_fast_lane_for_the_quiet_one(monkeypatch):
    """Each fast file runs once: the fast lane ignores the BESIDE files, and
    the quiet worker runs them (no fleet) before any real-host file."""
    root = Path(__file__).parent.parent
    assert all((root / f).is_file() and not f.startswith("tests/sandbox/") for f in lanes.BESIDE)
    assert {a.removeprefix("--ignore=") for a in lanes.fast_targets()} == {"tests/sandbox", *lanes.BESIDE}
    ran: list[tuple[list[str], int | None]] = []
    queue = lanes.Lanes([])
    queue.queue = ["tests/sandbox/test_judge_real.py", "tests/sandbox/test_lock_real.py"]
    monkeypatch.setattr(queue, "pytest", lambda targets, net, name, capture: ran.append((targets, net)))
    queue.worker(3, None, quiet_only=True)
    assert ran == [(list(lanes.BESIDE), None), (["tests/sandbox/test_lock_real.py"], 3)]
