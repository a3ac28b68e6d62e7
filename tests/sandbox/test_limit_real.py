"""`--limit` on part of an nginx upstream, on the real sandbox under
steady client load (40 req/s, keep-alive on: at 100 req/s the load
generator sent only 72 % of its due requests on this shared machine):
only the limited hosts are changed; the others keep serving through every
nginx change, untouched (no restart, no command), and the managed file
ends as it started. No mocks."""
from __future__ import annotations

import asyncio
import json

import pytest

from load import SteadyLoad
from rollout_helpers import console, invocations, managed_config, plan_file, versions

pytestmark = pytest.mark.sandbox


@pytest.fixture
def fleet(sandbox_fleet):
    sandbox_fleet.reset_agents()
    yield sandbox_fleet
    sandbox_fleet.reset_agents()


async def test_a_limited_rolling_run_changes_only_the_limited_hosts(fleet, tmp_path):
    limited, left = fleet.agent_names[:3], fleet.agent_names[3:]
    before, started = managed_config(fleet), invocations(fleet)
    async with SteadyLoad(f"http://{fleet.lb_ip}/v1/chat", rate=40, keepalive=True, retry_reset=True) as load:
        await asyncio.sleep(1)
        code, events, err = await console("--plan", str(plan_file(tmp_path)), "--inventory",
                                          str(fleet.inventory_path), "--limit", ",".join(limited), "--headless",
                                          "--output", "json", "--record", str(tmp_path / "j.jsonl"))
        await asyncio.sleep(1)
    assert code == 0, err + json.dumps(events[-3:])
    assert versions(fleet) == {**{n: "2.0.0" for n in limited}, **{n: "1.0.0" for n in left}}
    after = invocations(fleet)
    assert [n for n in fleet.agent_names if after[n] == started[n]] == left  # never restarted
    assert not [e for e in events if e["kind"] == "command" and e["host"] in left]  # never reached over SSH
    left_ips = {f"{fleet.ip(n)}:8080" for n in left}
    changes = [e for e in events if e["kind"] == "traffic"]
    assert len(changes) >= 3 and all(left_ips <= {b for bs in e["pools"].values() for b in bs} for e in changes)
    assert {e["serving"] for e in events if e["kind"] == "capacity"} == {len(fleet.agent_names)}
    assert next(e for e in events if e["kind"] == "run_started")["untouched"] == left
    assert events[-1]["message"].endswith(f"left out by --limit, untouched and serving: {', '.join(left)}")
    assert managed_config(fleet) == before
    load.result.assert_no_failures()
    assert load.result.versions() == {"1.0.0", "2.0.0"}
    print(f"\nrolling --limit 3 of 6 hosts, keep-alive on: {load.result.summary()}")
