"""The article's three YAML blocks (examples/seed/), verbatim, run to exit 0
on the real sandbox under about 100 req/s of client load with keep-alive
off, with the README's command (`--version 2.0.0 --headless
--auto-promote`), and clients see no failed request.

These are the slowest real-host tests (the canary block's 1 % step waits
minutes for enough evidence at 1 req/s), so `tests/run.sh` runs this file
on a fleet of its own (ROLLOUT_SANDBOX_NET=2) beside the rest of the suite.
"""
from __future__ import annotations

import asyncio
import json
import sys

import pytest

from fault_helpers import in_nginx, journal_ok
from load import SteadyLoad
from rollout_helpers import ROOT, install_lb, json_lines, managed_config, units_lb, versions

pytestmark = pytest.mark.sandbox
SEEDS = ROOT / "examples" / "seed"
RATE = 100

# `fleet` (tests/sandbox/conftest.py): the sandbox as `up` left it, before and after each block


async def run_seed(fleet, tmp_path, block: str) -> tuple[list[dict], object]:
    """The seed block verbatim under load; every stdout line is one JSON event."""
    async with SteadyLoad(f"http://{fleet.lb_ip}/v1/chat", rate=RATE, keepalive=False,
                          max_seconds=3600) as load:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "console", "--plan", str(SEEDS / block), "--inventory", str(fleet.inventory_path),
            "--version", "2.0.0", "--headless", "--auto-promote", "--output", "json",
            "--record", str(tmp_path / "j.jsonl"), cwd=ROOT,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, limit=64 * 2**20)
        out, err = await asyncio.wait_for(proc.communicate(), 3000)
    events = json_lines(out)
    assert proc.returncode == 0, err.decode()[-2000:] + json.dumps(events[-3:])[:2000]
    result = events[-1]
    assert result["kind"] == "result" and result["outcome"] == "succeeded" and result["simulated"] is False
    load.result.assert_no_failures()
    journal_ok(tmp_path / "j.jsonl")
    return events, load.result


def took(events: list[dict]) -> float:
    """Engine seconds from start to the last event."""
    return max(e["at"] for e in events if "at" in e)


async def test_seed_rolling_block_verbatim_on_real_hosts(fleet, tmp_path):
    events, clients = await run_seed(fleet, tmp_path, "rolling.yaml")
    assert set(versions(fleet).values()) == {"2.0.0"}
    assert in_nginx(fleet) == set(fleet.agent_names)
    steps = [e for e in events if e["kind"] == "step_started"]
    assert [len(s["instances"]) for s in steps] == [1] * len(fleet.agent_names)  # replacement_rate 0.1
    print(f"\nseed rolling: {took(events):.0f}s, clients {clients.summary()}")


async def test_seed_canary_block_verbatim_on_real_hosts(fleet, tmp_path):
    before = managed_config(fleet)
    events, clients = await run_seed(fleet, tmp_path, "canary.yaml")
    assert set(versions(fleet).values()) == {"2.0.0"}
    traffic = [e for e in events if e["kind"] == "traffic"]
    weights = list(dict.fromkeys(e["weights"]["canary"] for e in traffic if e["weights"].get("canary")))
    assert weights[0] == 1.0 and weights == sorted(weights)  # 1 % first, never back down
    passes = [e for e in events if e["kind"] == "gate" and e["final"] and e["verdict"] == "pass"]
    assert passes and all(e["seen"] >= e["needed"] for e in passes)  # no step passed on too little evidence
    assert {p: len(b) for p, b in traffic[-1]["pools"].items()} == {"stable": len(fleet.agent_names)}
    assert managed_config(fleet) == before  # one pool of every instance again: the original file, byte for byte
    print(f"\nseed canary: {took(events):.0f}s, {len(passes)} gates passed, clients {clients.summary()}")


async def test_seed_blue_green_block_verbatim_on_real_hosts(fleet, tmp_path):
    """production_env: green is live (agent@green on 8082, 1.0.0); the
    release goes to blue (staging_env), which is live afterwards."""
    for name in fleet.agent_names:
        fleet.ssh(name, "/opt/agent/bin/install-release --slot green 1.0.0 >/dev/null && systemctl restart agent@green",
                  check=True)
    install_lb(fleet, units_lb(fleet, "green"))
    events, clients = await run_seed(fleet, tmp_path, "blue-green.yaml")
    last = [e for e in events if e["kind"] == "traffic"][-1]
    assert set(last["pools"]) == {"blue"} and last["serving"] == "blue"
    assert {fleet.health(name, 8081)[1].get("version") for name in fleet.agent_names} == {"2.0.0"}
    print(f"\nseed blue-green: {took(events):.0f}s, clients {clients.summary()}")
