"""Fixtures for tests that need the real sandbox fleet (root, Linux, nspawn).

``sandbox_fleet`` (session scope) boots lb-01 + agent-01..06 once and tears
them down at the end. The fleet is held exclusively for the session: a
second pytest session needing it waits (ROLLOUT_SANDBOX_WAIT, default 30 min).
A fleet a developer left up is reset and left up; so is any fleet when
ROLLOUT_SANDBOX_KEEP=1.
Tests that change a host should put it back with ``fleet.reset_agents(...)``.
"""
from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
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
        from sandbox import exec_in
        return exec_in(name, argv, state_dir=self.state_dir, **kw)

    def host_root(self, name: str) -> Path:
        from sandbox import host_root
        return host_root(name, state_dir=self.state_dir)

    def write_release(self, names: Iterable[str] | None, version: str,
                      behaviour: Mapping) -> list[Path]:
        from sandbox import write_release
        return write_release(names, version, behaviour, state_dir=self.state_dir)

    def stop_host(self, name: str) -> None:
        from sandbox import stop_host
        stop_host(name, state_dir=self.state_dir)

    def start_host(self, name: str) -> None:
        from sandbox import start_host
        start_host(name, state_dir=self.state_dir)

    def status(self) -> list[dict]:
        from sandbox import status
        return status(state_dir=self.state_dir)

    def http_get(self, url: str, timeout: float = 10) -> tuple[int, dict, dict]:
        """(status, headers, JSON body) for a GET from this machine."""
        try:
            with urllib.request.urlopen(url, timeout=timeout) as r:
                return r.status, dict(r.headers), json.loads(r.read() or b"null")
        except urllib.error.HTTPError as e:
            return e.code, dict(e.headers), json.loads(e.read() or b"null")

    def metrics(self, name: str, port: int = 8080):
        """An agent's /metrics as the console reads it (inventory/exposition.py)."""
        from inventory.exposition import read_metrics

        with urllib.request.urlopen(f"http://{self.ip(name)}:{port}/metrics", timeout=10) as r:
            return read_metrics(r.read())

    def health(self, name: str, port: int = 8080) -> tuple[int, dict]:
        code, _, body = self.http_get(f"http://{self.ip(name)}:{port}/health")
        return code, body

    def reset_lb(self) -> None:
        """Put lb-01 back to the initial config (every agent in pool stable),
        reload, and clear any rollout lock a killed console left behind."""
        from inventory.nginx_workers import reload_and_settle
        from sandbox import provision
        provision.load_balancer(self.host_root(self.lb_name), self.agent_ips)
        self.ssh(self.lb_name, "rm -rf /var/lib/rollout-console/locks && nginx -t -q && " + reload_and_settle(),
                 check=True)

    def reset(self) -> None:
        """Both resets: the fleet as `up` left it."""
        self.reset_agents()
        self.reset_lb()

    def reset_agents(self, names: Iterable[str] | None = None) -> None:
        """Put agents back to the boot state: every slot on 1.0.0, main
        running, blue/green stopped, release 2.0.0 a good one again (a test that broke
        it and failed before its own clean-up must not fail every test after
        it). Starts hosts that were stopped."""
        names = list(names) if names is not None else self.agent_names
        self.write_release(names, "2.0.0", {})
        running = {s["name"]: s["running"] for s in self.status()}
        for n in names:
            if not running.get(n):
                self.start_host(n)
            self.ssh(n, "systemctl stop agent@blue agent@green; systemctl reset-failed 'agent@*';"
                        " for slot in blue green main; do"
                        " /opt/agent/bin/install-release --slot $slot 1.0.0 >/dev/null || exit 1; done &&"
                        " systemctl restart agent@main", check=True)


def _unavailable_reason() -> str | None:
    from sandbox import SandboxError
    from sandbox.common import preflight
    try:
        preflight()
    except SandboxError as exc:
        return str(exc)
    return None


SESSION_WAIT = float(os.environ.get("ROLLOUT_SANDBOX_WAIT", "1800"))


def _session_lock(state_dir: Path):
    """Hold the fleet for a whole pytest session. Sessions that need it at the
    same time (e.g. several engineers on one machine) queue here: the fleet is
    one set of hosts, and tests that deploy to it must not interleave."""
    state_dir.parent.mkdir(parents=True, exist_ok=True)
    f = open(state_dir.parent / f".{state_dir.name}.session.lock", "w")
    deadline = time.monotonic() + SESSION_WAIT
    told = False
    while True:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return f
        except BlockingIOError:
            if not told:
                print(f"\nsandbox fleet busy (another pytest session); waiting up to {SESSION_WAIT:g}s",
                      file=sys.stderr)
                told = True
            if time.monotonic() > deadline:
                f.close()
                pytest.fail("sandbox fleet still held by another pytest session", pytrace=False)
            time.sleep(0.5)


@pytest.fixture(scope="session")
def sandbox_fleet() -> SandboxFleet:
    """The fleet, held exclusively for this session. A fleet that was already
    up (left by a developer) is reset to its boot state and left up at the end."""
    reason = _unavailable_reason()
    if reason:
        # Never a skip: these tests are the proof the product works on real
        # hosts. Run them as root on Linux (tests/run.sh installs the rest).
        pytest.fail(f"the real sandbox fleet is unavailable: {reason}", pytrace=False)
    import sandbox

    state_dir = sandbox.DEFAULT_STATE_DIR
    lock = _session_lock(state_dir)
    try:
        before = sandbox.status(state_dir)
        already_up = len(before) == SANDBOX_HOSTS + 1 and all(h["running"] for h in before)
        inventory = sandbox.up(hosts=SANDBOX_HOSTS, state_dir=state_dir, log=lambda m: None)
        fleet = SandboxFleet(
            state_dir=state_dir,
            inventory_path=inventory,
            key=state_dir / "id_ed25519",
            known_hosts=state_dir / "known_hosts",
            lb_ip=sandbox.LB_IP,
            agents={sandbox.agent_name(i): sandbox.agent_ip(i)
                    for i in range(1, SANDBOX_HOSTS + 1)},
            owned=not already_up,
        )
        if already_up:
            fleet.reset()
        yield fleet
        if fleet.owned and not os.environ.get("ROLLOUT_SANDBOX_KEEP"):
            sandbox.down(state_dir, log=lambda m: None)
    finally:
        lock.close()


@pytest.fixture
def fleet(sandbox_fleet):
    """The sandbox as `up` left it, before and after the test, whatever the
    test broke (a stopped LB is started again). Modules that need less
    reset override this."""
    sandbox_fleet.reset()
    yield sandbox_fleet
    running = {s["name"]: s["running"] for s in sandbox_fleet.status()}
    if not running.get(sandbox_fleet.lb_name):
        sandbox_fleet.start_host(sandbox_fleet.lb_name)
    sandbox_fleet.reset()


@pytest.fixture
def kept_lb_fleet(sandbox_fleet):
    """Lighter than `fleet`: agents reset before and after, and the LB's
    managed file put back exactly as the test found it."""
    from rollout_helpers import install_lb, managed_config
    sandbox_fleet.reset_agents()
    before = managed_config(sandbox_fleet)
    yield sandbox_fleet
    install_lb(sandbox_fleet, before)
    sandbox_fleet.reset_agents()
