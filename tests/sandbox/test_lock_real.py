"""The rollout lock on the real LB (lb-01): a second console is refused
(exit 6, naming the holder) while the first runs; `--lock-wait` waits for
the holder to finish, then runs; a lock whose holder's pid is gone on this
controller, or whose heartbeat stopped, is stale and broken only with
`--break-stale-lock`. And an unreachable host refuses the run in preflight
(exit 6) before anything changes. Waits are for the console's own events,
not for a guessed number of seconds."""
from __future__ import annotations

import asyncio
import json
import socket
import subprocess

import pytest

from inventory.lock import boot_id
from rollout_helpers import LOCKS, console, console_timeline, invocations, managed_config, plan_file, plant_lock, until, versions

pytestmark = pytest.mark.sandbox

FAST = {"health": {"interval": "0.5s", "passes": 2, "deadline": "6s", "timeout": "1s"},
        "drain": {"timeout": "3s"}, "rolling": {"batch": 2, "interval": "0s"}}  # no client load: no judged window


def run(fleet, plan, record, *extra):
    return console("--plan", str(plan), "--inventory", str(fleet.inventory_path), "--headless", "--output", "json",
                   "--record", str(record), *extra)


async def test_second_console_refused_and_lock_wait_runs_after_the_holder(fleet, tmp_path):
    # the holder must outlive the other consoles' start-up: 15 s between batches (judged on health alone)
    p = plan_file(tmp_path, **{**FAST, "rolling": {"batch": 2, "interval": "15s"}}, thresholds={"min_requests": 0})
    first_events: list = []
    first = asyncio.create_task(console_timeline("--plan", str(p), "--inventory", str(fleet.inventory_path),
                                                 "--headless", "--record", str(tmp_path / "a.jsonl"),
                                                 timeline=first_events))
    await until(first_events, "run_started")  # the first console holds the lock from here to its end
    waiter_events: list = []
    waiter = asyncio.create_task(console_timeline("--plan", str(p), "--inventory", str(fleet.inventory_path),
                                                  "--headless", "--record", str(tmp_path / "c.jsonl"),
                                                  "--lock-wait", "120", timeline=waiter_events))
    code, events, err = await run(fleet, p, tmp_path / "b.jsonl")
    assert code == 6 and "lock held by" in events[-1]["message"] and "a.jsonl" in events[-1]["message"], err
    assert not first.done()  # refused while the holder was still running
    code1, _, err1 = await first
    assert code1 == 0, err1
    code3, timeline3, err3 = await waiter
    assert code3 == 0, err3 + json.dumps([e for _, e in timeline3][-3:])
    first_end = next(t for t, e in first_events if e["kind"] == "result")
    assert await until(waiter_events, "run_started") > first_end  # it ran only once the holder let go
    assert fleet.ssh(fleet.lb_name, f"ls {LOCKS}").stdout.strip() == ""
    assert set(versions(fleet).values()) == {"2.0.0"}


async def test_lock_of_a_dead_pid_on_this_controller_is_stale(fleet, tmp_path):
    """Fresh heartbeat, but the holder ran here and its pid is gone."""
    dead = subprocess.Popen(["true"])
    dead.wait()
    plant_lock(fleet, {"user": "operator", "host": socket.gethostname(), "pid": dead.pid, "plan": "p",
                       "since": "2026-01-01T00:00:00+00:00", "journal": "", "token": "deadbeef",
                       "boot": boot_id()})
    p = plan_file(tmp_path, **FAST)
    before = managed_config(fleet), invocations(fleet)
    code, events, err = await run(fleet, p, tmp_path / "a.jsonl")
    message = events[-1]["message"]
    assert code == 6 and "stale" in message and f"pid {dead.pid} on {socket.gethostname()} is gone" in message, err
    assert (managed_config(fleet), invocations(fleet)) == before
    code, events, err = await run(fleet, p, tmp_path / "b.jsonl", "--break-stale-lock")
    assert code == 0, err + json.dumps(events[-3:])
    assert fleet.ssh(fleet.lb_name, f"ls {LOCKS}").stdout.strip() == ""


async def test_a_twin_hostnames_live_lock_is_not_stale(fleet, tmp_path):
    """Issue 23 finding 6: a console on another machine with this hostname
    (a container, a CI runner) holds the lock with a fresh heartbeat; its
    pid means nothing here. Refused as held, not stale, and not broken even
    with --break-stale-lock."""
    dead = subprocess.Popen(["true"])
    dead.wait()
    plant_lock(fleet, {"user": "twin", "host": socket.gethostname(), "pid": dead.pid, "plan": "p",
                       "since": "2026-01-01T00:00:00+00:00", "journal": "", "token": "feedface",
                       "boot": "0" * 8 + "-another-machine"})
    p = plan_file(tmp_path, **FAST)
    before = managed_config(fleet), invocations(fleet)
    code, events, err = await run(fleet, p, tmp_path / "a.jsonl", "--break-stale-lock")
    message = events[-1]["message"]
    assert code == 6 and "twin@" in message and "stale" not in message, err + message
    assert (managed_config(fleet), invocations(fleet)) == before
    assert "feedface" in fleet.ssh(fleet.lb_name, f"cat {LOCKS}/agent.lock").stdout
    fleet.ssh(fleet.lb_name, f"rm -f {LOCKS}/agent.lock", check=True)


async def test_lock_without_heartbeat_is_stale(fleet, tmp_path):
    plant_lock(fleet, {"user": "ghost", "host": "elsewhere", "pid": 4242, "plan": "p", "since": "2020-01-01",
                       "journal": "", "token": "deadbeef"}, mtime="2020-01-01")
    p = plan_file(tmp_path, **FAST)
    code, events, err = await run(fleet, p, tmp_path / "a.jsonl")
    assert code == 6 and "stale" in events[-1]["message"] and "ghost@elsewhere" in events[-1]["message"], err
    assert "no heartbeat" in events[-1]["message"]
    code, events, err = await run(fleet, p, tmp_path / "b.jsonl", "--break-stale-lock")
    assert code == 0, err + json.dumps(events[-3:])


async def test_unreachable_host_is_refused_before_anything_changes(fleet, tmp_path):
    fleet.stop_host("agent-06")
    alive = [n for n in fleet.agent_names if n != "agent-06"]
    before = managed_config(fleet), invocations(fleet, alive)
    code, events, err = await run(fleet, plan_file(tmp_path, **FAST), tmp_path / "a.jsonl")
    assert code == 6, err + json.dumps(events[-3:])
    assert events[-1]["outcome"] == "refused" and "agent-06" in events[-1]["message"]
    assert (managed_config(fleet), invocations(fleet, alive)) == before
    assert {n: fleet.health(n)[1]["version"] for n in alive} == {n: "1.0.0" for n in alive}
    assert fleet.ssh(fleet.lb_name, f"ls {LOCKS}").stdout.strip() == ""  # the lock was released
