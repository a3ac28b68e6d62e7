"""A TUI rollout on the real sandbox whose terminal hangs up (the pty closed
under it, as when an SSH session drops or tmux is killed), under client
load. --on-hangup stop: it stops at a safe point, exit 5, the journal
closed and the lock released. --on-hangup detach: the same process goes on
to the end and releases the lock itself. Either way no request fails."""
from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from console.journal import read_journal, verify
from control_helpers import PtyConsole, control_env, status, until
from load import SteadyLoad
from rollout_helpers import managed_config, plan_file, versions

pytestmark = pytest.mark.sandbox
LOCKS = "/var/lib/rollout-console/locks"


@pytest.mark.parametrize("policy", ["stop", "detach"])
async def test_hangup_of_a_tui_rollout_on_real_hosts(fleet, tmp_path, policy):
    env = control_env(tmp_path)
    # The sandbox's CPU is the whole shared machine's: a busy machine must not
    # turn this hangup test into a CPU-gate rollback (gates are tested elsewhere).
    plan = plan_file(tmp_path, rolling={"batch": 2, "interval": "2s"},
                     thresholds={"error_rate": "1%", "persistence": 2, "min_requests": 20, "cpu": "100%"})
    async with SteadyLoad(f"http://{fleet.lb_ip}/v1/chat", rate=100) as load:
        tui = PtyConsole(env, "--plan", str(plan), "--inventory", str(fleet.inventory_path), "--on-hangup", policy)
        try:
            live = (await asyncio.to_thread(until, lambda: status(env)["live"], "the TUI's run"))[0]
            await asyncio.to_thread(until, lambda: (status(env)["live"] or [{}])[0].get("step", {}).get("index", 0) >= 1,
                                    "the first batch")
            lock_held = fleet.ssh(fleet.lb_name, f"ls {LOCKS}").stdout.split()
            assert lock_held == ["agent.lock"]
            tui.hang_up()
            code = await asyncio.to_thread(tui.proc.wait, 240)
        finally:
            tui.close()
    assert code == {"stop": 5, "detach": 0}[policy]
    journal = Path(live["journal"])
    assert verify(journal).ok
    closed = read_journal(journal).close
    assert closed is not None and closed.outcome == {"stop": "aborted", "detach": "succeeded"}[policy]
    assert fleet.ssh(fleet.lb_name, f"ls {LOCKS} 2>/dev/null").stdout.split() == []  # released
    on = versions(fleet)
    if policy == "detach":
        assert set(on.values()) == {"2.0.0"}
    else:
        assert set(on.values()) <= {"1.0.0", "2.0.0"} and all(fleet.health(n)[0] == 200 for n in fleet.agent_names)
        config = managed_config(fleet)
        assert all(ip in config for ip in fleet.agent_ips)  # every instance back in nginx
    load.result.assert_no_failures()
    print(f"\nTUI hangup ({policy}): exit {code}, versions {sorted(on.values())}, {load.result.summary()}")
