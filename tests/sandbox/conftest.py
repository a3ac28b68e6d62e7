"""Fixtures for tests that need the real sandbox fleet (root, Linux, nspawn).

``sandbox_fleet`` (session scope) boots lb-01 + agent-01..06 once and tears
them down when the last pytest session using them ends (sessions hold
leases, so parallel sessions share one fleet). A fleet a developer left up
before the session is left up; so is any fleet when ROLLOUT_SANDBOX_KEEP=1.
Tests that change a host should put it back with ``fleet.reset_agents(...)``.
"""
from __future__ import annotations

import fcntl
import json
import os
import subprocess
import urllib.error
import urllib.request
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import pytest

try:  # the repo root is not on sys.path when pytest runs without `python -m`
    import inventory  # noqa: F401
except ImportError:  # pragma: no cover
    import sys
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

SANDBOX_HOSTS = 6


@dataclass
class SandboxFleet:
    state_dir: Path
    inventory_path: Path
    key: Path
    known_hosts: Path
    lb_ip: str
    agents: dict[str, str]  # name -> ip, in order
    lb_name: str = "lb-01"
    owned: bool = field(default=True, repr=False)

    @property
    def agent_ips(self) -> list[str]:
        return list(self.agents.values())

    @property
    def agent_names(self) -> list[str]:
        return list(self.agents)

    def ip(self, name_or_ip: str) -> str:
        if name_or_ip == self.lb_name:
            return self.lb_ip
        return self.agents.get(name_or_ip, name_or_ip)

    def ssh_argv(self, target: str, user: str = "root") -> list[str]:
        return ["ssh", "-i", str(self.key), "-o", f"UserKnownHostsFile={self.known_hosts}",
                "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes",
                "-o", "ConnectTimeout=5", "-o", "LogLevel=ERROR", f"{user}@{self.ip(target)}"]

    def ssh(self, target: str, command: str, user: str = "root", check: bool = False,
            timeout: float = 60) -> subprocess.CompletedProcess:
        """Run a shell command on a host over real SSH (strict host key checking)."""
        proc = subprocess.run([*self.ssh_argv(target, user), command], capture_output=True,
                              text=True, timeout=timeout)
        if check and proc.returncode != 0:
            raise AssertionError(f"ssh {target} {command!r}: exit {proc.returncode}: "
                                 f"{proc.stderr.strip()}")
        return proc

    def exec_in(self, name: str, argv: Sequence[str], **kw) -> subprocess.CompletedProcess:
        from inventory.sandbox import exec_in
        return exec_in(name, argv, state_dir=self.state_dir, **kw)

    def host_root(self, name: str) -> Path:
        from inventory.sandbox import host_root
        return host_root(name, state_dir=self.state_dir)

    def write_release(self, names: Iterable[str] | None, version: str,
                      behaviour: Mapping) -> list[Path]:
        from inventory.sandbox import write_release
        return write_release(names, version, behaviour, state_dir=self.state_dir)

    def stop_host(self, name: str) -> None:
        from inventory.sandbox import stop_host
        stop_host(name, state_dir=self.state_dir)

    def start_host(self, name: str) -> None:
        from inventory.sandbox import start_host
        start_host(name, state_dir=self.state_dir)

    def status(self) -> list[dict]:
        from inventory.sandbox import status
        return status(state_dir=self.state_dir)

    def http_get(self, url: str, timeout: float = 10) -> tuple[int, dict, dict]:
        """(status, headers, JSON body) for a GET from this machine."""
        try:
            with urllib.request.urlopen(url, timeout=timeout) as r:
                return r.status, dict(r.headers), json.loads(r.read() or b"null")
        except urllib.error.HTTPError as e:
            return e.code, dict(e.headers), json.loads(e.read() or b"null")

    def health(self, name: str, port: int = 8080) -> tuple[int, dict]:
        code, _, body = self.http_get(f"http://{self.ip(name)}:{port}/health")
        return code, body

    def reset_agents(self, names: Iterable[str] | None = None) -> None:
        """Put agents back to the boot state: slot main on 1.0.0 and running,
        blue/green stopped. Starts hosts that were stopped."""
        names = list(names) if names is not None else self.agent_names
        running = {s["name"]: s["running"] for s in self.status()}
        for n in names:
            if not running.get(n):
                self.start_host(n)
            self.ssh(n, "systemctl stop agent@blue agent@green; systemctl reset-failed 'agent@*';"
                        " /opt/agent/bin/install-release --slot main 1.0.0 >/dev/null &&"
                        " systemctl restart agent@main", check=True)


def _skip_reason() -> str | None:
    from inventory.sandbox import SandboxError
    from inventory.sandbox.common import preflight
    try:
        preflight()
    except SandboxError as exc:
        return str(exc)
    return None


@contextmanager
def _lease_lock(state_dir: Path):
    state_dir.parent.mkdir(parents=True, exist_ok=True)
    with open(state_dir.parent / f".{state_dir.name}.leases.lock", "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        yield state_dir.parent / f".{state_dir.name}.leases"


def _live_leases(leases: Path) -> list[Path]:
    out = []
    for lease in leases.glob("*") if leases.is_dir() else []:
        try:
            os.kill(int(lease.name), 0)
            out.append(lease)
        except (ValueError, ProcessLookupError):
            lease.unlink(missing_ok=True)  # its session died without cleaning up
    return out


@pytest.fixture(scope="session")
def sandbox_fleet() -> SandboxFleet:
    """The shared fleet. Several pytest sessions may use it at once (one state
    dir): each holds a lease, and the last one to finish tears it down."""
    reason = _skip_reason()
    if reason:
        pytest.skip(reason)
    from inventory import sandbox

    state_dir = sandbox.DEFAULT_STATE_DIR
    with _lease_lock(state_dir) as leases:
        leases.mkdir(exist_ok=True)
        before = sandbox.status(state_dir)
        already_up = len(before) == SANDBOX_HOSTS + 1 and all(h["running"] for h in before)
        # a fleet left up by a developer (no live lease) is left up at the end
        keep = already_up and not _live_leases(leases)
        (leases / str(os.getpid())).write_text("")
        inventory = sandbox.up(hosts=SANDBOX_HOSTS, state_dir=state_dir, log=lambda m: None)
    fleet = SandboxFleet(
        state_dir=state_dir,
        inventory_path=inventory,
        key=state_dir / "id_ed25519",
        known_hosts=state_dir / "known_hosts",
        lb_ip=sandbox.LB_IP,
        agents={sandbox.agent_name(i): sandbox.agent_ip(i) for i in range(1, SANDBOX_HOSTS + 1)},
        owned=not keep,
    )
    yield fleet
    with _lease_lock(state_dir) as leases:
        (leases / str(os.getpid())).unlink(missing_ok=True)
        if fleet.owned and not _live_leases(leases) and not os.environ.get("ROLLOUT_SANDBOX_KEEP"):
            sandbox.down(state_dir, log=lambda m: None)
