"""Shared by the fault-matrix tests: a headless console run with a fault
injected at a chosen event, under steady client load, and what the hosts
and the journal say afterwards."""
from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

from console.journal import verify
from load import SteadyLoad
from rollout_helpers import ROOT, console, json_lines, managed_config, versions


async def run_with_fault(args, trigger, inject):
    """Run a headless console (JSON), call `inject()` (blocking, in a thread)
    at the first event for which `trigger(event)` is true; return (exit
    code, events, stderr)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "console", *args, "--headless", "--output", "json", cwd=ROOT,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, limit=64 * 2**20)
    events, fired = [], False
    async for raw in proc.stdout:
        event, = json_lines(raw)  # every line, unfiltered: each must be one JSON object
        events.append(event)
        if not fired and trigger(event):
            fired = True
            await asyncio.to_thread(inject)
    err = await proc.stderr.read()
    await asyncio.wait_for(proc.wait(), 300)
    assert fired, "the fault was never injected: " + json.dumps(events[-3:])
    return proc.returncode, events, err.decode()


def restarting(host: str):
    return lambda e: e.get("kind") == "instance" and e.get("instance") == host and e.get("phase") == "restarting"


def batch(n: int):
    return lambda e: e.get("kind") == "step_started" and e.get("index") == n


def journal_ok(path: Path) -> None:
    v = verify(path)
    assert v.ok, v.message


def in_nginx(fleet) -> set[str]:
    conf = managed_config(fleet)
    return {name for name, ip in fleet.agents.items() if f"server {ip}:8080" in conf}


async def rollout(fleet, tmp_path, plan_path, trigger, inject, load_ok=True, record=None, inventory=None):
    record = record or tmp_path / "j.jsonl"
    inventory = inventory or fleet.inventory_path
    async with SteadyLoad(f"http://{fleet.lb_ip}/v1/chat", rate=100) as load:
        await asyncio.sleep(0.5)
        code, events, err = await run_with_fault(
            ["--plan", str(plan_path), "--inventory", str(inventory), "--record", str(record)],
            trigger, inject)
        await asyncio.sleep(0.5)
    if load_ok:
        load.result.assert_no_failures()
    return code, events, err


async def resume_rollback(fleet, tmp_path) -> None:
    """`console resume J --rollback` on the failed session: every host ends
    on the old version."""
    code, events, err = await console("resume", str(tmp_path / "j.jsonl"), "--rollback", "--headless",
                                      "--output", "json", "--record", str(tmp_path / "r.jsonl"))
    assert code in (0, 3), err + json.dumps(events[-3:])
    assert set(versions(fleet).values()) == {"1.0.0"}
