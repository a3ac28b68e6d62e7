"""Killing the console with SIGKILL in the middle of a batch on the real
sandbox, then resuming from its journal: every host ends on one version,
all in nginx, with zero failed client requests. No mocks."""
from __future__ import annotations

import asyncio
import json
import signal
import sys

import pytest

from console.journal import read_journal
from load import SteadyLoad
from rollout_helpers import ROOT, console, hosts_settled, managed_config, plan_file, versions

pytestmark = pytest.mark.sandbox


@pytest.fixture
def fleet(sandbox_fleet):
    sandbox_fleet.reset_agents()
    sandbox_fleet.reset_lb()  # a killed console may have left instances out of nginx: start from the original
    yield sandbox_fleet


async def kill_when(plan, inventory, journal, moment) -> None:
    """Start a headless rollout and SIGKILL it at the first event for which
    `moment(events so far)` is true."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "console", "--plan", str(plan), "--inventory", str(inventory), "--headless",
        "--output", "json", "--record", str(journal), cwd=ROOT,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL)
    events = []
    async for raw in proc.stdout:
        events.append(json.loads(raw))
        if moment(events):
            proc.send_signal(signal.SIGKILL)
            break
    await proc.wait()
    assert proc.returncode == -signal.SIGKILL, json.dumps([e for e in events if e["kind"] != "instance"][-8:])


def restarting_in_batch_2(events) -> bool:
    e = events[-1]
    batches = sum(x["kind"] == "step_started" for x in events)
    return batches == 2 and e["kind"] == "instance" and e["phase"] == "restarting"


def analysing_at_50(events) -> bool:
    weights = [x["weights"].get("canary", 0.0) for x in events if x["kind"] == "traffic"]
    return bool(weights) and weights[-1] == 50.0 and events[-1]["kind"] == "gate"


async def resume_after_kill(fleet, tmp_path, plan, moment, *extra):
    """Kill the console at `moment`, then `console resume` it, all under
    load; returns (exit code, events, stderr, load result)."""
    journal = tmp_path / "killed.jsonl"
    async with SteadyLoad(f"http://{fleet.lb_ip}/v1/chat", rate=100) as load:
        await kill_when(plan, fleet.inventory_path, journal, moment)
        dead = read_journal(journal)
        assert dead.close is None  # the killed session never closed its journal
        await asyncio.to_thread(hosts_settled, fleet)  # the commands it left running have ended
        code, events, err = await console("resume", str(journal), "--headless", "--output", "json",
                                          "--record", str(tmp_path / "resumed.jsonl"), *extra)
        await asyncio.sleep(1)
    started = next((e for e in events if e["kind"] == "run_started"), None)
    assert started is not None, f"resume exited {code} with no run: {err}"
    assert started["resumed"] == str(journal)
    return code, events, err, load.result


@pytest.mark.parametrize("mode", ["continue", "rollback"])
async def test_sigkill_mid_batch_then_resume(fleet, tmp_path, mode):
    before = managed_config(fleet)
    plan = plan_file(tmp_path, rolling={"batch": 2, "interval": "1s"})
    code, events, err, load = await resume_after_kill(fleet, tmp_path, plan, restarting_in_batch_2,
                                                      *(["--rollback"] if mode == "rollback" else []))
    expected = {"continue": (0, "2.0.0"), "rollback": (3, "1.0.0")}[mode]
    assert code == expected[0], err + json.dumps(events[-3:])
    assert set(versions(fleet).values()) == {expected[1]}
    assert managed_config(fleet) == before
    load.assert_no_failures()
    print(f"\nSIGKILL then resume ({mode}): {load.summary()}")


async def test_sigkill_at_a_canary_split_then_resume_rollback(fleet, tmp_path):
    """Killed while nginx splits 50/50: the resume finds the split in the
    LB's file, puts every request on stable, reinstalls the old version on
    the canaries, and leaves the file exactly as before the rollout."""
    before = managed_config(fleet)
    plan = plan_file(tmp_path, "canary", canary={"sample_interval": "1s", "steps": [
        {"set_weight": 50}, {"analysis": "30s"}, {"set_weight": 100}]})
    code, events, err, load = await resume_after_kill(fleet, tmp_path, plan, analysing_at_50, "--rollback")
    assert code == 3, err + json.dumps(events[-3:])
    assert set(versions(fleet).values()) == {"1.0.0"}
    assert managed_config(fleet) == before
    load.assert_no_failures()
    print(f"\nSIGKILL at a canary split then resume --rollback: {load.summary()}")


def installed_between_deploy_and_restart(events) -> bool:
    """The first host's release is installed (its install-release command
    ended 0) and the restart has not been sent: the deploy's trailing
    command is still running."""
    e = events[-1]
    return e["kind"] == "command" and "install-release" in e["command"] and e["exit_status"] == 0


async def test_sigkill_between_deploy_and_restart_then_resume_rollback_reinstalls_the_old_release(fleet, tmp_path):
    """Found by the soak (seed 2 run 102): killed after the new release was
    installed on a host but before its restart, the host still answers on
    the old version; `resume --rollback` must not take that answer for the
    installed release, or the next restart brings the new release up."""
    plan = plan_file(tmp_path, rolling={"batch": 1, "interval": "1s"},
                     deploy={"commands": ["/opt/agent/bin/install-release --slot {slot} {version}", "sleep 2"]})
    code, events, err, load = await resume_after_kill(fleet, tmp_path, plan, installed_between_deploy_and_restart,
                                                      "--rollback")
    assert code == 3, err + json.dumps(events[-3:])
    assert set(versions(fleet).values()) == {"1.0.0"}
    installed = {name: fleet.ssh(name, "readlink -f /opt/agent/slots/main/current", check=True).stdout.strip()
                 for name in fleet.agent_names}
    assert all(path.endswith("/1.0.0") for path in installed.values()), installed
    load.assert_no_failures()
