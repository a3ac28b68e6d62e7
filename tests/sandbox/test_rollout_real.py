"""Rollouts against the real sandbox: sshd, systemd and nginx in
systemd-nspawn hosts, driven through the `console` command, under steady
client load through the nginx load balancer. No mocks."""
from __future__ import annotations

import asyncio
import json

import pytest
import yaml

from load import SteadyLoad
from rollout_helpers import console, invocations, managed_config, plan_file, versions

pytestmark = pytest.mark.sandbox


@pytest.fixture
def fleet(sandbox_fleet):
    sandbox_fleet.reset_agents()
    yield sandbox_fleet


@pytest.mark.parametrize("keepalive", [False, True], ids=["keepalive-off", "keepalive-on"])
async def test_rolling_deploy_under_load_has_zero_failed_requests(fleet, tmp_path, keepalive):
    before = managed_config(fleet)
    async with SteadyLoad(f"http://{fleet.lb_ip}/v1/chat", rate=100, keepalive=keepalive,
                          retry_reset=keepalive) as load:
        await asyncio.sleep(1)
        code, events, err = await console("--plan", str(plan_file(tmp_path)), "--inventory",
                                          str(fleet.inventory_path), "--headless", "--output", "json",
                                          "--record", str(tmp_path / "j.jsonl"))
        await asyncio.sleep(1)
    result = load.result
    assert code == 0, err + json.dumps(events[-3:])
    assert events[-1]["kind"] == "result" and events[-1]["outcome"] == "succeeded"
    assert set(versions(fleet).values()) == {"2.0.0"}
    assert managed_config(fleet) == before
    assert result.sent > 500, result.summary()
    result.assert_no_failures()
    assert result.versions() == {"1.0.0", "2.0.0"}
    steps = [e for e in events if e["kind"] == "step_started"]
    assert [len(s["instances"]) for s in steps] == [2, 2, 2]
    print(f"\nrolling 6 hosts, batches of 2, keep-alive {'on' if keepalive else 'off'}: "
          f"{events[-2]['duration']:.1f}s, {result.summary()}")


async def test_release_failing_health_is_rolled_back_without_failed_requests(fleet, tmp_path):
    fleet.write_release(None, "2.1.0", {"health_fail": True})
    plan = plan_file(tmp_path, version="2.1.0", health={"interval": "0.5s", "passes": 2, "deadline": "4s"})
    async with SteadyLoad(f"http://{fleet.lb_ip}/v1/chat", rate=100) as load:
        await asyncio.sleep(1)
        code, events, err = await console("--plan", str(plan), "--inventory", str(fleet.inventory_path),
                                          "--headless", "--output", "json", "--record", str(tmp_path / "j.jsonl"))
        await asyncio.sleep(1)
    assert code == 3, err + json.dumps(events[-3:])
    assert set(versions(fleet).values()) == {"1.0.0"}
    load.result.assert_no_failures()
    assert load.result.versions() == {"1.0.0"}


async def test_changed_host_key_is_refused_before_anything_changes(fleet, tmp_path):
    inv = yaml.safe_load(fleet.inventory_path.read_text())
    known = fleet.known_hosts.read_text().splitlines()
    victim = fleet.agents["agent-03"]
    other_key = next(line.split(None, 1)[1] for line in known if line.startswith(fleet.agents["agent-04"] + " "))
    tampered = [line for line in known if not line.startswith(victim + " ")] + [f"{victim} {other_key}"]
    (tmp_path / "known_hosts").write_text("\n".join(tampered) + "\n")
    inv["all"]["vars"]["rollout_known_hosts"] = str(tmp_path / "known_hosts")
    (tmp_path / "inv.yaml").write_text(yaml.safe_dump(inv))
    before = managed_config(fleet)
    code, events, err = await console("--plan", str(plan_file(tmp_path)), "--inventory", str(tmp_path / "inv.yaml"),
                                      "--headless", "--output", "json", "--record", str(tmp_path / "j.jsonl"))
    assert code == 6, err
    result = events[-1]
    assert "agent-03" in result["message"] and "SHA256:" in result["message"]
    assert managed_config(fleet) == before
    assert set(versions(fleet).values()) == {"1.0.0"}


@pytest.mark.parametrize("target,text,where", [
    ("plan", "strategy: rolling\nversion: '2.0.0'\nrolling:\n  batch: lots\n", ":4: rolling.batch"),
    ("inventory", "all:\n  children:\n    agents:\n      hosts:\n        agent-01:\n          ansible_port: ssh\n",
     ":6: all.children.agents.hosts.agent-01.ansible_port"),
])
async def test_malformed_input_exits_2_and_touches_no_host(fleet, tmp_path, target, text, where):
    bad = tmp_path / f"bad-{target}.yaml"
    bad.write_text(text)
    plan = bad if target == "plan" else plan_file(tmp_path)
    inventory = bad if target == "inventory" else fleet.inventory_path
    before = managed_config(fleet), invocations(fleet)
    code, _, err = await console("--plan", str(plan), "--inventory", str(inventory), "--headless",
                                 "--record", str(tmp_path / "j.jsonl"))
    assert code == 2
    assert err.strip().splitlines() == [err.strip()] and f"{bad}{where}" in err
    assert not (tmp_path / "j.jsonl").exists()
    assert (managed_config(fleet), invocations(fleet)) == before
