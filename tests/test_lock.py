"""The rollout lock's pure parts: record format, staleness, the scripts."""
from __future__ import annotations

import os
import subprocess

from inventory.lock import LockHeld, LockRecord, acquire_script, owned_script, parse_held, staleness


def test_record_round_trips_and_names_the_holder():
    rec = LockRecord.new({"user": "ana", "host": "ctl-1", "pid": 42, "plan": "/p.yaml", "journal": "/j.jsonl"}, "agent")
    back = LockRecord.parse(rec.to_line())
    assert back == rec and len(rec.token) == 32
    assert rec.to_line().count("\n") == 1
    assert "ana@ctl-1 pid 42" in rec.describe() and "/j.jsonl" in rec.describe()


def test_unparsable_records_are_none():
    for text in ("", "garbage", "[1,2]", '{"user": "x"}', "\x00\xff"):
        assert LockRecord.parse(text) is None


def test_staleness():
    rec = LockRecord.new({"host": "me", "pid": 99})
    assert staleness(rec, 5, this_host="me", alive=lambda pid: True) is None
    assert "pid 99" in staleness(rec, 5, this_host="me", alive=lambda pid: False)
    # another controller's pid cannot be checked here: only the heartbeat counts
    assert staleness(rec, 5, this_host="other", alive=lambda pid: False) is None
    assert "no heartbeat" in staleness(rec, 500, max_age=120, this_host="other")
    assert "no heartbeat" in staleness(None, 500, max_age=120)


def test_held_message_is_one_line_and_says_how_to_break_a_stale_lock():
    rec = LockRecord.new({"user": "ana", "host": "ctl", "pid": 1})
    live = LockHeld("lb-01", rec, None)
    stale = LockHeld("lb-01", rec, "pid 1 on ctl is gone")
    assert "\n" not in str(live) and "ana@ctl" in str(live) and "--break-stale-lock" not in str(live)
    assert "--break-stale-lock" in str(stale)


def test_scripts_against_a_local_shell(tmp_path):
    path = str(tmp_path / "locks" / "agent.lock")
    a, b = LockRecord.new({"pid": 1}), LockRecord.new({"pid": 2})

    def sh(script: str, inp: str = "") -> str:
        return subprocess.run(["sh", "-c", script], input=inp, capture_output=True, text=True).stdout

    assert sh(acquire_script(path), a.to_line()).startswith("ACQUIRED")
    out = sh(acquire_script(path), b.to_line())
    assert out.startswith("HELD")
    age, raw = parse_held(out)
    assert 0 <= age < 5 and LockRecord.parse(raw) == a
    assert sh(owned_script(path, b.token, "rm -f")).strip() == "GONE" and os.path.exists(path)
    assert sh(owned_script(path, a.token, "touch -c")).strip() == "OK"
    assert sh(owned_script(path, a.token, "rm -f")).strip() == "OK" and not os.path.exists(path)
    assert [p for p in os.listdir(tmp_path / "locks")] == []  # no temp files left


def test_hostile_path_is_quoted(tmp_path):
    path = str(tmp_path / "it's $(touch pwned); x" / "a.lock")
    out = subprocess.run(["sh", "-c", acquire_script(path)], input=LockRecord.new({}).to_line(),
                         capture_output=True, text=True, cwd=tmp_path).stdout
    assert out.startswith("ACQUIRED") and not (tmp_path / "pwned").exists()
