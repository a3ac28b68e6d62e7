"""The operator commands whose claims are about hosts, on the real sandbox
fleet: `console lock status|release` read and remove the lock file on the
real LB (a live holder's only with --force, always after a yes), `console
rollback` of a finished run puts the agents back on the release they ran
before, from the journals' history, and `console check --limit` checks
only the hosts the limit names."""
from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest

from inventory.lock import boot_id
from rollout_helpers import LOCKS, ROOT, plan_file, plant_lock, versions

pytestmark = pytest.mark.sandbox

FAST = {"health": {"interval": "0.5s", "passes": 2, "deadline": "30s", "timeout": "2s"}, "drain": {"timeout": "3s"},
        "rolling": {"batch": 3, "interval": "0s"}, "thresholds": {"error_rate": "1%", "min_requests": 0}}


def cli(tmp_path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "ROLLOUT_JOURNAL_DIR": str(tmp_path / "journals"), "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "console", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300, input=stdin, stdin=None if stdin is not None else subprocess.DEVNULL)


def plant_pid_lock(fleet, pid: int, token: str, mtime: str = "now") -> None:
    record = {"user": "alice", "host": socket.gethostname(), "pid": pid, "plan": "/srv/p.yaml", "since": "2026-01-01",
              "journal": "/tmp/a.jsonl", "token": token, "upstream": "agent",
              "boot": boot_id()}  # held from this machine and boot, as a console writes it: its pid means something
    plant_lock(fleet, record, mtime)


def lock_file(fleet) -> str:
    return fleet.ssh(fleet.lb_name, f"cat {LOCKS}/agent.lock 2>/dev/null").stdout


def test_lock_status_and_release_on_the_real_lb(fleet, tmp_path):
    plan = plan_file(tmp_path, **FAST)
    inv = str(fleet.inventory_path)
    free = cli(tmp_path, "lock", "status", "--plan", str(plan), "--inventory", inv)
    assert free.returncode == 0 and f"{fleet.lb_name}: free" in free.stdout, free.stderr

    plant_pid_lock(fleet, os.getpid(), "tok-alive")  # this test's own pid, on this machine: alive
    held = cli(tmp_path, "lock", "status", "--plan", str(plan), "--inventory", inv)
    assert held.returncode == 0 and "HELD by alice@" in held.stdout and "holder looks alive" in held.stdout
    refused = cli(tmp_path, "lock", "release", "--plan", str(plan), "--inventory", inv, "--yes")
    assert refused.returncode == 6 and "looks alive" in refused.stderr and "tok-alive" in lock_file(fleet)
    unasked = cli(tmp_path, "lock", "release", "--plan", str(plan), "--inventory", inv, "--force")
    assert unasked.returncode == 2 and "pass --yes" in unasked.stderr and "tok-alive" in lock_file(fleet)
    forced = cli(tmp_path, "lock", "release", "--plan", str(plan), "--inventory", inv, "--force", "--yes")
    assert forced.returncode == 0 and f"{fleet.lb_name}: released" in forced.stdout and lock_file(fleet) == ""

    plant_pid_lock(fleet, os.getpid(), "tok-old", mtime="1 hour ago")  # no heartbeat for an hour: stale
    stale = cli(tmp_path, "lock", "status", "--plan", str(plan), "--inventory", inv)
    assert "STALE (no heartbeat for" in stale.stdout
    released = cli(tmp_path, "lock", "release", "--plan", str(plan), "--inventory", inv, "--yes")
    assert released.returncode == 0 and lock_file(fleet) == "", released.stderr


def test_a_run_refused_by_a_planted_lock_runs_after_lock_release(fleet, tmp_path):
    plan = plan_file(tmp_path, **FAST)
    inv = str(fleet.inventory_path)
    plant_pid_lock(fleet, 2 ** 22 + 7, "tok-dead")  # a pid no process has on this machine: its holder is gone
    refused = cli(tmp_path, "--plan", str(plan), "--inventory", inv, "--headless")
    assert refused.returncode == 6 and "lock held by alice@" in refused.stdout
    assert cli(tmp_path, "lock", "release", "--plan", str(plan), "--inventory", inv, "--yes").returncode == 0
    shipped = cli(tmp_path, "--plan", str(plan), "--inventory", inv, "--headless")
    assert shipped.returncode == 0, shipped.stdout[-600:] + shipped.stderr
    assert set(versions(fleet).values()) == {"2.0.0"}


def test_rollback_of_a_finished_run_goes_back_to_the_release_before(fleet, tmp_path):
    plan = plan_file(tmp_path, **FAST)
    inv = str(fleet.inventory_path)
    assert set(versions(fleet).values()) == {"1.0.0"}
    shipped = cli(tmp_path, "--plan", str(plan), "--inventory", inv, "--headless")
    assert shipped.returncode == 0, shipped.stdout[-600:] + shipped.stderr
    assert set(versions(fleet).values()) == {"2.0.0"}

    back = cli(tmp_path, "rollback", "--yes", "--headless")  # no live run: the last succeeded one's fleet
    assert back.returncode == 0, back.stdout[-600:] + back.stderr
    assert ": 2.0.0 -> 1.0.0 " in back.stderr and inv in back.stderr
    assert set(versions(fleet).values()) == {"1.0.0"}

    history = cli(tmp_path, "releases").stdout.splitlines()
    assert [" ".join(line.split()[1:5]) for line in history] == ["agent 1.0.0 -> 2.0.0", "agent 2.0.0 -> 1.0.0"]
    again = cli(tmp_path, "rollback", "--plan", str(plan), "--inventory", inv, "--yes", "--headless")
    assert again.returncode == 0 and ": 1.0.0 -> 2.0.0 " in again.stderr  # undo of the undo, as Argo's
    assert set(versions(fleet).values()) == {"2.0.0"}


def test_check_with_a_limit_checks_only_those_hosts(fleet, tmp_path):
    plan = plan_file(tmp_path, **FAST)
    proc = cli(tmp_path, "check", "--plan", str(plan), "--inventory", str(fleet.inventory_path),
               "--limit", "agent-01")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    named = {name for name in fleet.agent_names if name in proc.stdout}
    assert named == {"agent-01"}
