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
from rollout_helpers import ROOT, console, managed_config, plan_file, versions

pytestmark = pytest.mark.sandbox


@pytest.fixture
def fleet(sandbox_fleet):
    sandbox_fleet.reset_agents()
    yield sandbox_fleet


async def kill_mid_batch(plan, inventory, journal) -> None:
    """Start a headless rollout and SIGKILL it while batch 2 is restarting."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "console", "--plan", str(plan), "--inventory", str(inventory), "--headless",
        "--output", "json", "--record", str(journal), cwd=ROOT,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL)
    batches = 0
    async for raw in proc.stdout:
        event = json.loads(raw)
        batches += event["kind"] == "step_started"
        if batches == 2 and event["kind"] == "instance" and event["phase"] == "restarting":
            proc.send_signal(signal.SIGKILL)
            break
    await proc.wait()
    assert proc.returncode == -signal.SIGKILL


@pytest.mark.parametrize("mode", ["continue", "rollback"])
async def test_sigkill_mid_batch_then_resume(fleet, tmp_path, mode):
    before = managed_config(fleet)
    plan = plan_file(tmp_path, rolling={"batch": 2, "interval": "1s"})
    journal = tmp_path / "killed.jsonl"
    async with SteadyLoad(f"http://{fleet.lb_ip}/v1/chat", rate=100) as load:
        await kill_mid_batch(plan, fleet.inventory_path, journal)
        dead = read_journal(journal)
        assert dead.close is None  # the killed session never closed its journal
        await asyncio.sleep(2)
        args = ["resume", str(journal), "--headless", "--output", "json", "--record", str(tmp_path / "resumed.jsonl")]
        code, events, err = await console(*args, *(["--rollback"] if mode == "rollback" else []))
        await asyncio.sleep(1)
    expected = {"continue": (0, "2.0.0"), "rollback": (3, "1.0.0")}[mode]
    assert code == expected[0], err + json.dumps(events[-3:])
    assert set(versions(fleet).values()) == {expected[1]}
    assert managed_config(fleet) == before
    assert load.result.failed == [], load.result.summary()
    started = next(e for e in events if e["kind"] == "run_started")
    assert started["resumed"] == str(journal)
    print(f"\nSIGKILL then resume ({mode}): {load.result.summary()}")
