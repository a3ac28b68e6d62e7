"""The judge and the guards on the real sandbox, under about 100 req/s of
client load through nginx, keep-alive off and on: a bad canary never gets
past its first step, a slow one is rolled back, a dead old host stops the
rolling run before it drains more, and a blue-green plan that disagrees
with what nginx serves is refused before anything changes. No mocks."""
from __future__ import annotations

import asyncio
import json

import pytest

from fault_helpers import in_nginx, journal_ok, rollout
from inventory.nginx_config import parse_pools
from load import SteadyLoad
from rollout_helpers import console, install_lb, managed_config, plan_file, units_lb, versions

pytestmark = pytest.mark.sandbox
RATE = 100


@pytest.fixture
def fleet(kept_lb_fleet):
    return kept_lb_fleet


async def canary_run(fleet, tmp_path, version, weight, keepalive, *, max_window="60s", analysis="30s",
                     warm_up="0s"):
    plan = plan_file(tmp_path, "canary", version=version, analysis={"latency_warm_up": warm_up},
                     canary={"sample_interval": "2s",
                             "steps": [{"set_weight": weight}, {"analysis": analysis}, {"set_weight": 100}]},
                     thresholds={"error_rate": "1%", "persistence": 2, "min_requests": 20,
                                 "max_window": max_window})
    async with SteadyLoad(f"http://{fleet.lb_ip}/v1/chat", rate=RATE, keepalive=keepalive,
                          retry_reset=keepalive) as load:
        code, events, err = await console("--plan", str(plan), "--inventory", str(fleet.inventory_path),
                                          "--headless", "--output", "json", "--record", str(tmp_path / "j.jsonl"))
    return code, events, err, load.result


def assert_paused_where_it_said(fleet, events, new):
    """A run paused for a human (exit 7) leaves nginx routing the pools of
    its last traffic event, the canary pool's hosts on the new release and
    every other host on the old one."""
    last = [e for e in events if e["kind"] == "traffic"][-1]
    routed = {name: sorted(f"{b.address}:{b.port}" for b in pool)
              for name, pool in parse_pools(managed_config(fleet), "agent").items()}
    assert routed == {name: sorted(members) for name, members in last["pools"].items()}, (routed, last)
    canary = {member.split(":")[0] for member in last["pools"].get("canary", [])}
    assert canary
    assert versions(fleet) == {name: new if ip in canary else "1.0.0" for name, ip in fleet.agents.items()}


def weights(events):
    return [e["weights"].get("canary", 0.0) for e in events if e["kind"] == "traffic"]


@pytest.mark.parametrize("keepalive", [False, True], ids=["keepalive-off", "keepalive-on"])
async def test_a_canary_answering_20_percent_500s_at_1_percent_never_passes_its_first_step(
        fleet, tmp_path, keepalive):
    fleet.write_release(None, "2.1.0-bad", {"error_rate": 0.2})
    before = managed_config(fleet)
    code, events, err, result = await canary_run(fleet, tmp_path, "2.1.0-bad", 1, keepalive)
    assert code in (3, 7), err + json.dumps(events[-3:])  # rolled back, or a human asked
    assert max(weights(events)) == 1.0  # never promoted past the 1 % step
    assert not any(e["kind"] == "gate" and e["verdict"] == "pass" for e in events)
    if code == 3:
        assert set(versions(fleet).values()) == {"1.0.0"}
        assert managed_config(fleet) == before
        fail = next(e for e in events if e["kind"] == "gate" and e["verdict"] == "fail")
        print(f"\n20 % errors at 1 %: stopped after {fail['seen']} canary requests, {fail['at']:.1f}s; "
              f"clients {result.summary()}")
    else:
        assert_paused_where_it_said(fleet, events, "2.1.0-bad")
    bad = [r for r in result.failed if r.version != "2.1.0-bad"]
    assert bad == [], bad[:3]  # only the bad release's own answers failed
    result.assert_enough_sent()
    assert len(result.failed) <= 20  # the issue saw 20 clients get a 500 before the 5 % step caught it
    journal_ok(tmp_path / "j.jsonl")


async def test_a_canary_300ms_slower_is_rolled_back(fleet, tmp_path):
    """A uniform slowdown is the median test's: it judges an instance's
    latencies once it is twice its warm-up old (60 s), so the step lasts 90 s
    (a shorter step after a restart judges errors and the tail only: see
    docs/judge.md, "What a step can see")."""
    fleet.write_release(None, "2.4.0-slow", {"latency_ms": 300})
    code, events, err, result = await canary_run(fleet, tmp_path, "2.4.0-slow", 10, False, max_window="120s",
                                                 analysis="90s", warm_up="30s")
    assert code == 3, err + json.dumps(events[-3:])
    fail = next(e for e in events if e["kind"] == "gate" and e["verdict"] == "fail")
    assert any("latency" in r for r in fail["reasons"]), fail
    assert set(versions(fleet).values()) == {"1.0.0"}
    result.assert_no_failures()


@pytest.mark.parametrize("keepalive", [False, True], ids=["keepalive-off", "keepalive-on"])
async def test_a_good_canary_is_promoted_to_100(fleet, tmp_path, keepalive):
    before = managed_config(fleet)
    code, events, err, result = await canary_run(fleet, tmp_path, "2.0.0", 10, keepalive, max_window="120s")
    assert code == 0, err + json.dumps(events[-3:])
    assert set(versions(fleet).values()) == {"2.0.0"}
    assert managed_config(fleet) == before
    result.assert_no_failures()
    final = [e for e in events if e["kind"] == "gate" and e["final"]]
    assert [e["verdict"] for e in final] == ["pass"] and final[0]["seen"] >= 20
    clients = events[-2]["clients"] if events[-2]["kind"] == "run_finished" else events[-1]["clients"]
    assert clients["requests"] > 0 and clients["failed"] == 0
    print(f"\ngood canary at 10 %: passed on {final[0]['seen']} canary requests; {result.summary()}")


async def test_a_dead_old_host_stops_the_rolling_run_before_it_drains_more(fleet, tmp_path):
    """agent-05 (not yet updated, serving) is powered off during batch 1.
    The run re-admits batch 1 without it, will not drain batch 2 (that
    would leave 3 of 6 serving), and stops for a human naming the host,
    not blaming the release: exit 7, 0 failed client requests."""
    plan = plan_file(tmp_path, "rolling", rolling={"batch": 2, "interval": "2s"},
                     canary={"sample_interval": "1s"})

    def restarting_agent_01(e):
        return e.get("kind") == "instance" and e.get("instance") == "agent-01" and e.get("phase") == "restarting"

    try:
        code, events, err = await rollout(fleet, tmp_path, plan, restarting_agent_01,
                                          lambda: fleet.stop_host("agent-05"))
        assert code == 7, err + json.dumps(events[-3:])
        result = events[-1]
        assert "agent-05 unhealthy (not touched by this release)" in result["message"], result
        drained = {e["instance"] for e in events if e["kind"] == "instance" and e["phase"] == "draining"}
        assert drained == {"agent-01", "agent-02"}
        guard = [e for e in events if e["kind"] == "capacity" and not e["ok"]]
        assert guard and guard[0]["unhealthy"] == ["agent-05"]
        assert in_nginx(fleet) == set(fleet.agent_names) - {"agent-05"}  # nothing routes to the dead host
        journal_ok(tmp_path / "j.jsonl")
    finally:
        fleet.start_host("agent-05")


@pytest.mark.parametrize("live", ["main", "green"])
async def test_blue_green_plan_disagreeing_with_live_routing_is_refused_before_any_change(
        fleet, tmp_path, live):
    """The fresh sandbox serves agent@main (8080); a plan saying blue is
    live must not rewrite nginx to a colour nobody started. Nor may it when
    green is what nginx serves."""
    if live == "green":
        install_lb(fleet, units_lb(fleet, "green"))
    before = managed_config(fleet)
    plan = plan_file(tmp_path, "blue_green", blue_green={"mode": "units", "active": "blue", "rollback_window": "8s"})
    async with SteadyLoad(f"http://{fleet.lb_ip}/v1/chat", rate=RATE) as load:
        await asyncio.sleep(1)
        code, events, err = await console("--plan", str(plan), "--inventory", str(fleet.inventory_path),
                                          "--headless", "--output", "json")
    assert code == 6, err + json.dumps(events[-3:])
    assert "live routing disagrees with the plan" in events[-1]["message"]
    assert "active: blue" in events[-1]["message"]
    assert managed_config(fleet) == before
    assert not any(e["kind"] in ("traffic", "command") and e.get("command", "").startswith("systemctl restart")
                   for e in events)
    if live == "main":
        load.result.assert_no_failures()
