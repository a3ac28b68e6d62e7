"""The fault matrix for canary and blue-green on the real sandbox (sshd,
systemd, nginx in systemd-nspawn hosts), under steady client load through
the LB: a fault injected in the middle of a step, then the end state (who
nginx routes to, which version each host runs), the exit code, a complete
journal, and a `console resume` that puts everything back. No mocks.

The faults shared by every strategy (sshd stopped, network cut, nginx -t
rejecting, a reload that does not take, the journal's disk full) are driven
through rolling plans in test_faults_real.py; here are the ones where a
canary or a blue-green run is in a state rolling never reaches.
"""
from __future__ import annotations

import json

import pytest

from fault_helpers import journal_ok, resume_rollback, rollout
from inventory.nginx_config import parse_pools
from rollout_helpers import groups_setup, install_lb, managed_config, plan_file, units_setup

pytestmark = pytest.mark.sandbox

FAST = {"health": {"interval": "0.5s", "passes": 2, "deadline": "8s", "timeout": "1s"},
        "drain": {"timeout": "3s"}, "deploy": {"timeout": "15s"}}


def routed(fleet) -> dict[str, set[str]]:
    """Pool -> the hosts nginx sends that pool's requests to (backups aside)."""
    by_ip = {ip: name for name, ip in fleet.agents.items()}
    return {pool: {by_ip[b.address] for b in backends}
            for pool, backends in parse_pools(managed_config(fleet), "agent").items()}


# -- canary ----------------------------------------------------------------------------

async def test_canary_host_powered_off_while_it_is_the_whole_canary_pool(fleet, tmp_path):
    """10 % of 6 hosts is one canary host. Powered off during the analysis,
    its requests are retried on stable (the canary pool's backups), its
    health probes fail the gate, and the rollback puts every request on
    stable while the dead host stays out of nginx."""
    before = managed_config(fleet)
    plan = plan_file(tmp_path, "canary", **FAST,
                     canary={"sample_interval": "1s",
                             "steps": [{"set_weight": 10}, {"analysis": "30s"}, {"set_weight": 100}]},
                     thresholds={"error_rate": "1%", "health_pass_rate": "95%", "persistence": 2,
                                 "min_requests": 10})
    canary: list[str] = []

    def analysing(event) -> bool:
        if event.get("kind") == "instance" and "canary at" in event.get("detail", ""):
            canary.append(event["instance"])
        return bool(canary) and event.get("kind") == "gate"

    code, events, err = await rollout(fleet, tmp_path, plan, analysing, lambda: fleet.stop_host(canary[0]))
    dead = canary[0]
    assert code == 4, err + json.dumps(events[-3:])
    # its failed health probes (critical) or the tries nginx made to it and had to retry on stable
    # (failed tries of the canary's backend): whichever the judge is sure of first
    assert any(e["kind"] == "gate" and e["verdict"] == "fail"
               and any(r.startswith(("health", "error_rate")) for r in e["reasons"])
               for e in events), "the dead canary must fail the gate"
    assert dead in events[-1]["message"]
    journal_ok(tmp_path / "j.jsonl")
    alive = set(fleet.agent_names) - {dead}
    assert routed(fleet) == {"stable": alive}  # no split left, the dead host out
    assert "split_clients" not in managed_config(fleet)
    assert {n: fleet.health(n)[1].get("version") for n in alive} == {n: "1.0.0" for n in alive}

    fleet.start_host(dead)
    await resume_rollback(fleet, tmp_path)
    assert managed_config(fleet) == before
    journal_ok(tmp_path / "r.jsonl")


# -- blue-green ------------------------------------------------------------------------

def bluegreen_plan(tmp_path, mode: str):
    bg = {"mode": mode, "active": "blue", "rollback_window": "4s"}
    if mode == "groups":
        bg.update(blue="blue", green="green")
    return plan_file(tmp_path, "blue_green", **FAST, blue_green=bg, canary={"sample_interval": "1s"})


async def test_blue_green_new_colour_fails_to_start_before_any_traffic(fleet, tmp_path):
    """Groups form: one green host's release cannot start. Green never
    takes a request; blue keeps serving on the old version."""
    inventory, lb = groups_setup(fleet, tmp_path)
    install_lb(fleet, lb)
    fleet.write_release(None, "2.0.0", {})
    fleet.write_release(["agent-05"], "2.0.0", {"start_fail": True})
    try:
        code, events, err = await rollout(fleet, tmp_path, bluegreen_plan(tmp_path, "groups"),
                                          lambda e: e.get("kind") == "run_started", lambda: None, inventory=inventory)
    finally:  # whatever happened, the next test must not find a release that cannot start
        fleet.write_release(None, "2.0.0", {})
    assert code == 3, err + json.dumps(events[-3:])
    assert "agent-05" in events[-1]["message"]
    assert not any(e["kind"] == "step_started" and e["title"].startswith("switch") for e in events)
    assert managed_config(fleet) == lb
    blue = ("agent-01", "agent-02", "agent-03")
    assert {n: fleet.health(n)[1].get("version") for n in blue} == {n: "1.0.0" for n in blue}
    journal_ok(tmp_path / "j.jsonl")


async def test_blue_green_lb_unreachable_at_the_switch_then_resume(fleet, tmp_path):
    """Units form: the LB host dies as the switch begins. The run stops
    (exit 4) naming the LB; once the LB is back, whatever file it booted
    with, `console resume --rollback` leaves it serving blue exactly as
    before and green stopped."""
    lb = units_setup(fleet)
    install_lb(fleet, lb)
    code, events, err = await rollout(
        fleet, tmp_path, bluegreen_plan(tmp_path, "units"),
        lambda e: e.get("kind") == "step_started" and e.get("title", "").startswith("switch"),
        lambda: fleet.stop_host(fleet.lb_name), load_ok=False)
    assert code == 4, err + json.dumps(events[-3:])
    assert fleet.lb_name in events[-1]["message"]
    journal_ok(tmp_path / "j.jsonl")

    fleet.start_host(fleet.lb_name)
    await resume_rollback(fleet, tmp_path)
    assert managed_config(fleet) == lb
    for name in fleet.agent_names:
        assert fleet.ssh(name, "systemctl is-active agent@blue").stdout.strip() == "active"
        assert fleet.ssh(name, "systemctl is-active agent@green").stdout.strip() != "active"
        assert fleet.health(name, 8081)[1].get("version") == "1.0.0"
    journal_ok(tmp_path / "r.jsonl")
