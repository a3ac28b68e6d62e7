"""Helpers for the real-sandbox rollout tests: plans, the console as a
subprocess, and what the hosts report."""
from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path

import yaml

from inventory.nginx_config import Backend, LbState, render
from inventory.nginx_workers import reload_and_settle

ROOT = Path(__file__).resolve().parents[2]
CONF = "/etc/nginx/conf.d/rollout-agent.conf"


def plan_file(tmp_path: Path, strategy: str = "rolling", **sections) -> Path:
    doc = {"strategy": strategy, "version": "2.0.0",
           "health": {"interval": "0.5s", "passes": 2, "deadline": "30s", "timeout": "2s"},
           "drain": {"timeout": "10s"},
           "rolling": {"batch": 2, "interval": "2s"},
           "canary": {"sample_interval": "1s"},
           "thresholds": {"error_rate": "1%", "persistence": 2, "min_requests": 20},
           # The sandbox's agents warm up only when a personality says so. With the
           # default 30 s, a window after a restart compares the release's latency only
           # 60 s after it, and a shorter one extends until then (missing data is never a
           # pass, strategies/coverage.py): tests of the warm-up set their own.
           "analysis": {"latency_warm_up": "0s"}}
    doc.update(sections)
    path = tmp_path / f"{strategy}.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


async def console(*args: str) -> tuple[int, list[dict], str]:
    """Run the console; with `--output json` every stdout line must be one
    JSON object (parsed unfiltered: a stray line fails the test), otherwise
    stdout is text and no events are returned."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "console", *args, cwd=ROOT,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 300)
    json_output = "--output" in args and args[args.index("--output") + 1] == "json"
    return proc.returncode, json_lines(out) if json_output else [], err.decode()


async def console_timeline(*args: str, timeline: list | None = None) -> tuple[int, list[tuple[float, dict]], str]:
    """Run the console with `--output json`, stamping each event with
    time.monotonic() when its line arrives: the client-side clock of
    tests/load.py, so responses can be placed between two routing changes.
    Pass `timeline` to watch the events while the console runs (`until`)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "console", *args, "--output", "json", cwd=ROOT,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, limit=64 * 2**20)
    timeline = [] if timeline is None else timeline
    async for raw in proc.stdout:
        event, = json_lines(raw)
        timeline.append((time.monotonic(), event))
    err = await proc.stderr.read()
    await asyncio.wait_for(proc.wait(), 300)
    return proc.returncode, timeline, err.decode()


async def until(timeline: list, kind: str, timeout: float = 120) -> float:
    """Wait for the first event of `kind` in a live `console_timeline`;
    returns its arrival time."""
    deadline = time.monotonic() + timeout
    while not any(e["kind"] == kind for _, e in timeline):
        assert time.monotonic() < deadline, f"no {kind} event in {timeout:g}s: {timeline[-3:]}"
        await asyncio.sleep(0.02)
    return next(t for t, e in timeline if e["kind"] == kind)


def json_lines(out: bytes) -> list[dict]:
    """Every line of JSON Lines output, each required to be a JSON object."""
    events = []
    for n, line in enumerate(out.decode().splitlines(), 1):
        try:
            event = json.loads(line)
        except ValueError as exc:
            raise AssertionError(f"stdout line {n} is not JSON ({exc}): {line[:200]!r}") from None
        assert isinstance(event, dict), f"stdout line {n} is not a JSON object: {line[:200]!r}"
        events.append(event)
    return events


def managed_config(fleet) -> str:
    return fleet.ssh(fleet.lb_name, f"cat {CONF}", check=True).stdout


def wait_until(check, what: str, timeout: float = 60.0, poll: float = 0.1) -> None:
    """Poll `check()` (blocking) until true: the event a test waits for,
    instead of a guessed sleep."""
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"{what}: not within {timeout:g}s"
        time.sleep(poll)


def hosts_settled(fleet) -> None:
    """Wait until no agent has a systemd job queued or an install-release
    running: what a killed console started on the hosts has finished."""
    # ([i]: the pattern must not match this very command line in /proc)
    busy = "systemctl list-jobs --no-legend | grep -q . || grep -qs '[i]nstall-release' /proc/[0-9]*/cmdline"
    for name in fleet.agent_names:
        wait_until(lambda name=name: fleet.ssh(name, busy).returncode == 1, f"{name} still busy")


def invocations(fleet, names=None) -> dict[str, str]:
    """Each agent unit's systemd invocation id: it changes on any restart."""
    return {name: fleet.ssh(name, "systemctl show -p InvocationID --value agent@main", check=True).stdout.strip()
            for name in (fleet.agent_names if names is None else names)}


def versions(fleet) -> dict[str, str]:
    return {name: fleet.health(name)[1].get("version") for name in fleet.agent_names}


def install_lb(fleet, text: str) -> None:
    """Put this exact managed file on the LB and reload (test set-up)."""
    proc = subprocess.run([*fleet.ssh_argv(fleet.lb_name), f"cat > {CONF} && nginx -t -q && {reload_and_settle()}"],
                          input=text, text=True, capture_output=True, timeout=30)
    assert proc.returncode == 0, proc.stderr


def units_lb(fleet, active: str) -> str:
    """The LB text serving one colour's unit on every host."""
    port = {"blue": 8081, "green": 8082}[active]
    return render(LbState(upstream="agent", pools={active: tuple(Backend(ip, port) for ip in fleet.agent_ips)},
                          default_pool=active, generation=f"test-{active}",
                          access_log="/var/log/nginx/rollout-agent.log", marker_port=8099))


def groups_setup(fleet, tmp_path):
    """The two-group blue-green form: agents 1-3 blue, 4-6 green. Returns
    (inventory path, LB text serving blue)."""
    inv = yaml.safe_load(fleet.inventory_path.read_text())
    agents = inv["all"]["children"].pop("agents")["hosts"]
    names = list(agents)
    inv["all"]["children"]["blue"] = {"hosts": {n: agents[n] for n in names[:3]}}
    inv["all"]["children"]["green"] = {"hosts": {n: agents[n] for n in names[3:]}}
    path = tmp_path / "bg-inventory.yaml"
    path.write_text(yaml.safe_dump(inv))
    lb = render(LbState(upstream="agent", pools={"blue": tuple(Backend(fleet.agents[n], 8080) for n in names[:3])},
                        default_pool="blue", generation="test-groups", access_log="/var/log/nginx/rollout-agent.log",
                        marker_port=8099))
    return path, lb


def units_setup(fleet) -> str:
    """The single-group blue-green form: agent@blue on 1.0.0 on every host;
    returns the LB text that serves blue."""
    for name in fleet.agent_names:
        fleet.ssh(name, "/opt/agent/bin/install-release --slot blue 1.0.0 >/dev/null && systemctl restart agent@blue",
                  check=True)
    return units_lb(fleet, "blue")


LOCKS = "/var/lib/rollout-console/locks"  # where a console keeps its lock on the LB


def plant_lock(fleet, record: dict, mtime: str = "now") -> None:
    """Writes the LB's lock as another console would have left it (`mtime` as `touch -d` reads it)."""
    fleet.ssh(fleet.lb_name, f"mkdir -p {LOCKS} && echo '{json.dumps(record)}' > {LOCKS}/agent.lock && "
              f"touch -d '{mtime}' {LOCKS}/agent.lock", check=True)
