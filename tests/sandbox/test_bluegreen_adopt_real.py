"""examples/blue-green.yaml, verbatim, on a fresh `console sandbox up`
(nginx serving agent@main on 8080 on every host, outside both colours),
under 100 req/s with keep-alive on: the first run adopts main as its old
side and ends on green, the next run reads green from live routing and
ships to blue. Both exit 0 with no failed client request. No mocks."""
from __future__ import annotations

import asyncio
import json

import pytest

from load import SteadyLoad
from rollout_helpers import ROOT, console, managed_config

pytestmark = pytest.mark.sandbox

PLAN = str(ROOT / "examples" / "blue-green.yaml")


def unit_state(fleet, unit: str) -> dict[str, str]:
    return {name: fleet.ssh(name, f"systemctl is-active {unit}").stdout.strip() for name in fleet.agent_names}


async def ship(fleet, tmp_path, version: str, name: str) -> tuple[int, list[dict], str, object]:
    async with SteadyLoad(f"http://{fleet.lb_ip}/v1/chat", rate=100, keepalive=True, retry_reset=True) as load:
        await asyncio.sleep(1)
        code, events, err = await console("--plan", PLAN, "--inventory", str(fleet.inventory_path),
                                          "--version", version, "--headless", "--output", "json",
                                          "--record", str(tmp_path / f"{name}.jsonl"))
        await asyncio.sleep(1)
    return code, events, err, load.result


async def test_blue_green_example_adopts_a_fresh_sandbox_then_alternates(fleet, tmp_path):
    assert ":8080" in managed_config(fleet) and ":8081" not in managed_config(fleet)  # as `up` left it

    code, events, err, clients = await ship(fleet, tmp_path, "2.0.0", "first")
    assert code == 0, err + json.dumps(events[-3:])
    clients.assert_no_failures()  # 0 failed, and >= 90 % of the due requests sent
    notices = [e["message"] for e in events if e["kind"] == "notice"]
    assert any(m.startswith("adopted: nginx serves agent@main.service on port 8080") for m in notices), notices
    conf = managed_config(fleet)
    assert all(f"{ip}:8082" in conf for ip in fleet.agent_ips) and ":8080" not in conf and ":8081" not in conf
    assert set(unit_state(fleet, "agent@main").values()) == {"inactive"}  # the adopted side, retired
    assert {fleet.health(n, 8082)[1].get("version") for n in fleet.agent_names} == {"2.0.0"}
    assert clients.versions() == {"1.0.0", "2.0.0"}

    code, events, err, clients = await ship(fleet, tmp_path, "3.0.0", "second")
    assert code == 0, err + json.dumps(events[-3:])
    clients.assert_no_failures()
    notices = [e["message"] for e in events if e["kind"] == "notice"]
    assert "active colour read from live routing: green" in notices, notices
    conf = managed_config(fleet)
    assert all(f"{ip}:8081" in conf for ip in fleet.agent_ips) and ":8082" not in conf
    assert set(unit_state(fleet, "agent@green").values()) == {"inactive"}
    assert clients.versions() == {"2.0.0", "3.0.0"}
