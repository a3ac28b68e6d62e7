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


def test_a_dead_pid_counts_only_on_this_machine_and_boot():
    """Issue 23 finding 6: containers and CI runners share hostnames; a pid
    means something only on the holder's own machine and boot."""
    twin = LockRecord.new({"host": "me", "pid": 99, "boot": "another-boot"})
    assert staleness(twin, 5, this_host="me", this_boot="this-boot", alive=lambda pid: False) is None
    legacy = LockRecord.parse('{"user":"u","host":"me","pid":99,"token":"t"}')  # no boot id recorded
    assert staleness(legacy, 5, this_host="me", this_boot="this-boot", alive=lambda pid: False) is None
    here = LockRecord.new({"host": "me", "pid": 99, "boot": "this-boot"})
    assert "pid 99" in staleness(here, 5, this_host="me", this_boot="this-boot", alive=lambda pid: False)
    assert "no heartbeat" in staleness(twin, 500, max_age=120, this_host="me", this_boot="this-boot")
    assert LockRecord.new({}).boot == open("/proc/sys/kernel/random/boot_id").read().strip()


def test_breaking_is_atomic_and_rechecks_what_was_judged(tmp_path):
    """Two consoles judge the same lock stale: the first breaks it and takes
    the lock; the second's break finds another lock there and leaves it."""
    from inventory.lock import break_script, parse_inode

    path = str(tmp_path / "locks" / "agent.lock")
    dead, a, b = LockRecord.new({"pid": 1}), LockRecord.new({"pid": 2}), LockRecord.new({"pid": 3})

    def sh(script: str, inp: str = "") -> str:
        return subprocess.run(["sh", "-c", script], input=inp, capture_output=True, text=True).stdout

    sh(acquire_script(path), dead.to_line())
    seen_by_a = sh(acquire_script(path), a.to_line())
    seen_by_b = sh(acquire_script(path), b.to_line())
    assert sh(break_script(path, dead.token, parse_inode(seen_by_a), 0)).strip() == "BROKEN"
    assert sh(acquire_script(path), a.to_line()).startswith("ACQUIRED")
    assert sh(break_script(path, dead.token, parse_inode(seen_by_b), 0)).strip() == "CHANGED"
    assert LockRecord.parse(open(path).read()) == a  # a's lock survived b's late break
    # a heartbeat since the judgement keeps it: judged by age, it must still be that old
    assert sh(break_script(path, a.token, 0, 120)).strip() == "CHANGED" and os.path.exists(path)
    # an unreadable lock is broken only if it is still the same file
    os.unlink(path)
    with open(path, "w") as f:
        f.write("garbage")
    seen = sh(acquire_script(path), b.to_line())
    os.unlink(path)
    assert sh(acquire_script(path), b.to_line()).startswith("ACQUIRED")  # b took it meanwhile (inode maybe reused)
    assert sh(break_script(path, None, parse_inode(seen), 0)).strip() == "CHANGED" and os.path.exists(path)
    os.unlink(path)
    with open(path, "w") as f:
        f.write("garbage")
    seen = sh(acquire_script(path), b.to_line())
    assert sh(break_script(path, None, parse_inode(seen), 0)).strip() == "BROKEN" and not os.path.exists(path)
