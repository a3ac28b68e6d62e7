#!/usr/bin/env python3
"""What one health probe costs the controller, two ways, side by side.

    sudo ROLLOUT_SANDBOX_NET=3 python3 bench/probe_cost.py [--hosts 50] [--rounds 5]

Boots the sandbox (--hosts agents), opens one SSH connection per agent
with asyncssh, then alternates rounds of one GET /health per agent, all at
once:

  forward+httpx  the console's way until 0d59498: an asyncssh local port
                 forward per host, httpx without keep-alive through it;
  channel+h11    the console's way since: a direct-tcpip channel of the
                 connection, HTTP/1.1 by inventory/http_get.py (h11).

Reported per way: wall time of a round (median, min-max, n) and the
controller's CPU (user+sys of this process) per probe. The capacity guard
probes every serving instance before each batch, so this is paid per batch.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import resource
import sys
import time
from pathlib import Path

import asyncssh
import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from _common import Fleet, fmt, sandbox_module, start  # noqa: E402
from inventory import http_get  # noqa: E402


def cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


async def measure(fleet: Fleet, rounds: int) -> None:
    ips = list(fleet.agents.values())
    conns = await asyncio.gather(*(asyncssh.connect(ip, username="root", client_keys=[str(fleet.key)],
                                                    known_hosts=str(fleet.known_hosts)) for ip in ips))
    forwards = [await c.forward_local_port("127.0.0.1", 0, "127.0.0.1", 8080) for c in conns]
    client = httpx.AsyncClient(trust_env=False, limits=httpx.Limits(max_keepalive_connections=0,
                                                                   max_connections=200))

    async def via_forward(i: int) -> str:
        r = await client.get(f"http://127.0.0.1:{forwards[i].get_port()}/health", timeout=5)
        return str(r.json()["version"])

    async def via_channel(i: int) -> str:
        r = await http_get.get_within(conns[i].open_connection("127.0.0.1", 8080), "/health", 5)
        return str(r.json()["version"])

    ways = {"forward+httpx": via_forward, "channel+h11": via_channel}
    walls: dict[str, list[float]] = {w: [] for w in ways}
    cpus: dict[str, list[float]] = {w: [] for w in ways}
    for _ in range(rounds):
        for name, way in ways.items():  # alternating, round by round
            c0, t0 = cpu(), time.monotonic()
            versions = await asyncio.gather(*(way(i) for i in range(len(ips))))
            walls[name].append(time.monotonic() - t0)
            cpus[name].append((cpu() - c0) / len(ips) * 1000)
            assert all(versions), versions
    await client.aclose()
    for c in conns:
        c.close()
    print(f"\n{len(ips)} agents, one GET /health each per round, all at once; {rounds} rounds per way, alternating")
    print("| way | wall per round | controller CPU per probe |")
    print("|---|---|---|")
    for name in ways:
        print(f"| {name} | {fmt(walls[name], 's', 3)} | {fmt(cpus[name], 'ms', 2)} |")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hosts", type=int, default=50)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    sb = sandbox_module()
    start("probe_cost", f"ROLLOUT_SANDBOX_NET={os.environ.get('ROLLOUT_SANDBOX_NET')} ")
    fleet = Fleet(sb, args.hosts)
    try:
        asyncio.run(measure(fleet, args.rounds))
    finally:
        fleet.down()
    return 0


if __name__ == "__main__":
    sys.exit(main())
