"""Rolling with the combined change on real hosts: with no window between
batches, one verified nginx change re-admits batch k and drains batch k+1,
and the last batch comes back with the restore of the original file.
Clients at 100 req/s with keep-alive off must see no failure, and every
instance a change routes to must have passed a health probe on the version
it runs since it last changed."""
from __future__ import annotations

import asyncio
import json

import pytest

from load import SteadyLoad
from rollout_helpers import console, managed_config, plan_file, versions

pytestmark = pytest.mark.sandbox


@pytest.fixture
def fleet(sandbox_fleet):
    sandbox_fleet.reset_agents()
    yield sandbox_fleet


def routed(event: dict) -> set[str]:
    return {b for bs in event["pools"].values() for b in bs}


async def test_rolling_readmits_and_drains_in_one_change_with_zero_failed_requests(fleet, tmp_path):
    before = managed_config(fleet)
    plan = plan_file(tmp_path, rolling={"batch": 2, "interval": "0s"})
    async with SteadyLoad(f"http://{fleet.lb_ip}/v1/chat", rate=100, keepalive=False) as load:
        await asyncio.sleep(1)
        code, events, err = await console("--plan", str(plan), "--inventory", str(fleet.inventory_path),
                                          "--headless", "--output", "json", "--record", str(tmp_path / "j.jsonl"))
        await asyncio.sleep(1)
    assert code == 0, err + json.dumps(events[-3:])
    assert set(versions(fleet).values()) == {"2.0.0"}
    assert managed_config(fleet) == before  # the last change was the byte-for-byte restore

    start = next(e for e in events if e["kind"] == "run_started")
    backend = {f"{i['address']}:{i['port']}": i["key"] for i in start["instances"]}
    changes = [e for e in events if e["kind"] == "traffic"]
    outs = [sorted(k for b, k in backend.items() if b not in routed(c)) for c in changes]
    # 4 verified changes, not 7, never more than one batch out
    assert outs == [["agent-01", "agent-02"], ["agent-03", "agent-04"], ["agent-05", "agent-06"], []]

    # every change routes an updated instance only after a good probe on 2.0.0 since its restart
    touched: set[str] = set()
    verified: set[str] = set()
    for e in events:
        if e["kind"] == "instance" and e["phase"] in ("deploying", "restarting"):
            touched.add(e["instance"])
            verified.discard(e["instance"])
        elif e["kind"] == "health" and e["ok"] and e["version"] == "2.0.0":
            verified.add(e["instance"])
        elif e["kind"] == "traffic":
            unverified = {backend[b] for b in routed(e)} & touched - verified
            assert not unverified, f"{e['generation']} routes to {sorted(unverified)} unverified"
    load.result.assert_no_failures()  # 0 failed, and >= 90 % of rate x duration sent
    assert load.result.versions() == {"1.0.0", "2.0.0"}
    print(f"\nrolling 6 hosts, batches of 2, combined changes: {events[-2]['duration']:.1f}s, "
          f"{len(changes)} verified changes, {load.result.summary()}")
