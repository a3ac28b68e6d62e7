"""The sandbox bridge, container addresses and readiness probes."""
from __future__ import annotations

import socket
import time
from pathlib import Path

from .common import BRIDGE, BRIDGE_IP, PREFIX, SandboxError, run


def bridge_exists() -> bool:
    return Path(f"/sys/class/net/{BRIDGE}").exists()


def ensure_bridge() -> None:
    if not bridge_exists():
        run(["ip", "link", "add", BRIDGE, "type", "bridge"])
    addrs = run(["ip", "-o", "-4", "addr", "show", "dev", BRIDGE]).stdout
    if f" {BRIDGE_IP}/" not in addrs:
        run(["ip", "addr", "add", f"{BRIDGE_IP}/{PREFIX}", "dev", BRIDGE])
    run(["ip", "link", "set", BRIDGE, "up"])


def delete_bridge() -> None:
    if bridge_exists():
        run(["ip", "link", "del", BRIDGE], check=False)


def _children(pid: int) -> list[int]:
    """Its children now; none once it is gone (a process that exits while
    its tasks are listed is no error: a CI run's `up` met one)."""
    out: list[int] = []
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:
        return out
    for task in tasks:
        try:
            out += [int(x) for x in (task / "children").read_text().split()]
        except OSError:
            pass
    return out


def nspid(pid: int) -> list[str]:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("NSpid:"):
                return line.split()[1:]
    except OSError:
        pass
    return []


def container_init(nspawn_pid: int, timeout: float = 15.0) -> int:
    """The host PID of the container's PID 1 (a descendant of nspawn whose
    PID inside its namespace is 1)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not Path(f"/proc/{nspawn_pid}").exists():
            break
        todo, seen = [nspawn_pid], set()
        while todo:
            p = todo.pop()
            if p in seen:
                continue
            seen.add(p)
            ns = nspid(p)
            if p != nspawn_pid and len(ns) > 1 and ns[-1] == "1":
                return p
            todo += _children(p)
        time.sleep(0.05)
    raise SandboxError(f"container init of nspawn {nspawn_pid} not found within {timeout:g}s")


def configure_address(init_pid: int, ip: str, timeout: float = 10.0) -> None:
    """Give the container's host0 its address (waits for the veth to exist)."""
    deadline = time.monotonic() + timeout
    while True:
        probe = run(["nsenter", "-t", init_pid, "-n", "ip", "-o", "link", "show", "host0"],
                    check=False)
        if probe.returncode == 0:
            break
        if time.monotonic() > deadline:
            raise SandboxError(f"host0 did not appear in container {init_pid}")
        time.sleep(0.05)
    have = run(["nsenter", "-t", init_pid, "-n", "ip", "-o", "-4", "addr", "show", "host0"]).stdout
    if f" {ip}/" not in have:
        run(["nsenter", "-t", init_pid, "-n", "ip", "addr", "add", f"{ip}/{PREFIX}", "dev", "host0"])
    run(["nsenter", "-t", init_pid, "-n", "ip", "link", "set", "host0", "up"])
    run(["nsenter", "-t", init_pid, "-n", "ip", "link", "set", "lo", "up"])


def wait_tcp(ip: str, port: int, timeout: float, banner: bytes | None = None) -> None:
    """Wait until ip:port accepts (and, if given, sends a line starting with banner)."""
    deadline = time.monotonic() + timeout
    last = "no attempt"
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((ip, port), timeout=1.0) as s:
                if banner is None:
                    return
                s.settimeout(2.0)
                if s.recv(64).startswith(banner):
                    return
                last = "unexpected banner"
        except OSError as exc:
            last = str(exc)
        time.sleep(0.1)
    raise SandboxError(f"{ip}:{port} not answering after {timeout:g}s ({last})")
