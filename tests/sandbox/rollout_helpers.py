"""Helpers for the real-sandbox rollout tests: plans, the console as a
subprocess, and what the hosts report."""
from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def plan_file(tmp_path: Path, strategy: str = "rolling", **sections) -> Path:
    doc = {"strategy": strategy, "version": "2.0.0",
           "health": {"interval": "0.5s", "passes": 2, "deadline": "30s", "timeout": "2s"},
           "drain": {"timeout": "10s"},
           "rolling": {"batch": 2, "interval": "2s"},
           "canary": {"sample_interval": "1s"},
           "thresholds": {"error_rate": "1%", "persistence": 2, "min_requests": 20}}
    doc.update(sections)
    path = tmp_path / f"{strategy}.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


async def console(*args: str) -> tuple[int, list[dict], str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "console", *args, cwd=ROOT,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 300)
    lines = [json.loads(line) for line in out.decode().splitlines() if line.startswith("{")]
    return proc.returncode, lines, err.decode()


def managed_config(fleet) -> str:
    return fleet.ssh(fleet.lb_name, "cat /etc/nginx/conf.d/rollout-agent.conf", check=True).stdout


def versions(fleet) -> dict[str, str]:
    return {name: fleet.health(name)[1].get("version") for name in fleet.agent_names}
