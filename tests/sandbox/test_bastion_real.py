"""Jump hosts, ssh config and become_user against real sshd (no mocks).

lb-01 acts as the bastion. The agents used here are made unreachable from
the controller for the test: a blackhole route inside each agent for the
controller's bridge address drops every reply to it, while replies to
lb-01 still flow, so the only way in is through lb-01. Host keys are checked
on both hops against the fleet's known_hosts.
"""
from __future__ import annotations

import os
import subprocess
import textwrap
from pathlib import Path

import pytest

from inventory.driver import DriverError, HostKeyError
from inventory.loaders import load_inventory
from inventory.ssh import SshPool
from sandbox.common import BRIDGE_IP

pytestmark = pytest.mark.sandbox

BEHIND = ("agent-05", "agent-06")


@pytest.fixture
def walled(sandbox_fleet):
    """BEHIND reachable only through lb-01 for the test, then restored."""
    fleet = sandbox_fleet
    for name in BEHIND:
        fleet.exec_in(name, ["ip", "route", "replace", "blackhole", f"{BRIDGE_IP}/32"], check=True)
    try:
        yield fleet
    finally:
        for name in BEHIND:
            fleet.exec_in(name, ["ip", "route", "del", "blackhole", f"{BRIDGE_IP}/32"])


def write_inventory(tmp_path: Path, fleet, body: str, known_hosts: Path | None = None) -> Path:
    p = tmp_path / "hosts.yml"
    p.write_text(textwrap.dedent(body).format(
        key=fleet.key, known=known_hosts or fleet.known_hosts, lb=fleet.lb_ip,
        a5=fleet.ip("agent-05"), a6=fleet.ip("agent-06"), cfg=tmp_path / "ssh_config"))
    return p


def write_ssh_config(tmp_path: Path, fleet, extra: str = "", proxy: bool = True) -> None:
    jump = f"Host {fleet.ip('agent-05')} {fleet.ip('agent-06')}\n    ProxyJump root@bastion\n" if proxy else ""
    (tmp_path / "ssh_config").write_text(
        f"Host bastion\n    HostName {fleet.lb_ip}\n{jump}{extra}"
        f"Host *\n    User root\n    IdentityFile {fleet.key}\n")


async def run_all(inv, command: str, pool: SshPool | None = None) -> dict[str, str]:
    pool = pool or SshPool(connect_timeout=5, connect_attempts=1)
    try:
        out = {}
        for name, h in inv.hosts.items():
            rec = await pool.run(h, command, 20)
            assert rec.exit_status == 0, rec.stderr
            out[name] = rec.stdout
        return out
    finally:
        await pool.close()


async def test_agents_behind_bastion_are_unreachable_directly(tmp_path, walled):
    inv = load_inventory(write_inventory(tmp_path, walled, """
        all:
          vars: {{ansible_user: root, ansible_ssh_private_key_file: "{key}", rollout_known_hosts: "{known}"}}
          hosts:
            agent-05: {{ansible_host: "{a5}"}}
        """))
    with pytest.raises(DriverError, match="agent-05|10\\."):
        await run_all(inv, "true")


async def test_proxyjump_from_ssh_config_goes_through_the_bastion(tmp_path, walled):
    write_ssh_config(tmp_path, walled)
    inv = load_inventory(write_inventory(tmp_path, walled, """
        all:
          vars:
            ansible_ssh_common_args: "-F {cfg}"
            rollout_known_hosts: "{known}"
          hosts:
            agent-05: {{ansible_host: "{a5}"}}
            agent-06: {{ansible_host: "{a6}"}}
        """))
    # no ansible_user, key or port in the inventory: User, IdentityFile and
    # ProxyJump (to an alias resolved by HostName) come from the ssh config
    out = await run_all(inv, 'echo "$(hostname) ${SSH_CLIENT%% *}"')
    assert out == {"agent-05": f"agent-05 {walled.lb_ip}", "agent-06": f"agent-06 {walled.lb_ip}"}


@pytest.mark.parametrize("jump", ["-o ProxyJump=root@{lb}:22",
                                  "-o 'ProxyCommand=ssh -W %h:%p -q root@{lb}'"])
async def test_jump_from_inventory_args_and_become_user(tmp_path, walled, jump):
    # the jump comes from the inventory; the config (no ProxyJump in it) only
    # gives the bastion hop its key, as OpenSSH's -J would take it (it is read
    # as the inventory is: it must exist by then)
    write_ssh_config(tmp_path, walled, proxy=False)
    inv = load_inventory(write_inventory(tmp_path, walled, """
        all:
          vars:
            ansible_user: root
            ansible_ssh_private_key_file: "{key}"
            rollout_known_hosts: "{known}"
            ansible_ssh_common_args: "-F {cfg} JUMP -o ServerAliveInterval=5"
            ansible_become: true
            ansible_become_user: deploy
          hosts:
            agent-05: {{ansible_host: "{a5}"}}
        """.replace("JUMP", jump)))
    out = await run_all(inv, 'echo "$(id -un) ${SUDO_USER}"')  # only reachable through lb-01
    assert out == {"agent-05": "deploy root"}


@pytest.mark.parametrize("missing", ["lb", "agent"])
async def test_host_keys_checked_on_both_hops(tmp_path, walled, missing):
    write_ssh_config(tmp_path, walled)
    drop = walled.lb_ip if missing == "lb" else walled.ip("agent-05")
    known = tmp_path / "known_hosts"
    known.write_text("".join(line + "\n" for line in walled.known_hosts.read_text().splitlines()
                             if line.split()[0] != drop))
    inv = load_inventory(write_inventory(tmp_path, walled, """
        all:
          vars: {{ansible_ssh_common_args: "-F {cfg}", rollout_known_hosts: "{known}"}}
          hosts:
            agent-05: {{ansible_host: "{a5}"}}
        """, known_hosts=known))
    with pytest.raises(HostKeyError) as info:
        await run_all(inv, "true")
    msg = str(info.value)
    shown = "bastion" if missing == "lb" else drop  # the hop as the config names it
    assert f"host key unknown for {shown}" in msg
    assert ("jump host root@bastion" in msg) == (missing == "lb")


async def test_ssh_config_port_applies_unless_the_inventory_sets_one(tmp_path, sandbox_fleet):
    fleet = sandbox_fleet
    write_ssh_config(tmp_path, fleet, extra=f"Host {fleet.lb_ip}\n    Port 9\n")
    body = """
        all:
          vars: {{ansible_ssh_common_args: "-F {cfg}", rollout_known_hosts: "{known}"}}
          hosts:
            lb-01: {{ansible_host: "{lb}"PORT}}
        """
    inv = load_inventory(write_inventory(tmp_path, fleet, body.replace("PORT", "")))
    with pytest.raises(DriverError, match=r", 9\)"):  # the config's Port, not a default 22
        await run_all(inv, "true")
    inv = load_inventory(write_inventory(tmp_path, fleet, body.replace("PORT", ", ansible_port: 22")))
    assert await run_all(inv, "hostname") == {"lb-01": "lb-01"}


async def test_ssh_w_proxycommand_in_an_inventory_config_is_dialled_not_run(tmp_path, walled, monkeypatch):
    """Issue 23 finding 1: an inventory's ssh config runs nothing here. Its
    `ProxyCommand ssh -W %h:%p bastion` is dialled by the pool as a hop
    (host keys checked) instead of running a local ssh: an `ssh` first on
    PATH would leave a marker."""
    mark = tmp_path / "ran"
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "ssh").write_text(f"#!/bin/sh\nid > {mark}\nexec /usr/bin/ssh \"$@\"\n")
    (fake / "ssh").chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake}:{os.environ['PATH']}")
    write_ssh_config(tmp_path, walled, proxy=False,
                     extra=f"Host {walled.ip('agent-05')}\n    ProxyCommand ssh -W %h:%p -q root@bastion\n")
    inv = load_inventory(write_inventory(tmp_path, walled, """
        all:
          vars: {{ansible_ssh_common_args: "-F {cfg}", rollout_known_hosts: "{known}"}}
          hosts:
            agent-05: {{ansible_host: "{a5}"}}
        """))
    out = await run_all(inv, 'echo "$(hostname) ${SSH_CLIENT%% *}"')
    assert out == {"agent-05": f"agent-05 {walled.lb_ip}"}
    assert not mark.exists(), mark.read_text()


async def test_agent_forwarding_is_off_even_when_an_ssh_config_asks(tmp_path, sandbox_fleet, monkeypatch):
    """Issue 23 finding 1: the operator's agent is never lent to a host
    (a root there could sign with it): ~/.ssh/config's ForwardAgent yes
    (an inventory's is refused at load) does not forward it."""
    fleet = sandbox_fleet
    sock = tmp_path / "agent.sock"
    # without -D it forks once the socket is listening and prints the agent's pid
    started = subprocess.run(["ssh-agent", "-s", "-a", str(sock)], capture_output=True, text=True, timeout=10,
                             check=True).stdout
    pid = int(started.split("SSH_AGENT_PID=")[1].split(";")[0])
    try:
        home = tmp_path / "home"
        (home / ".ssh").mkdir(parents=True)
        (home / ".ssh" / "config").write_text("Host *\n    ForwardAgent yes\n")
        monkeypatch.setenv("HOME", str(home))
        monkeypatch.setenv("SSH_AUTH_SOCK", str(sock))
        inv = load_inventory(write_inventory(tmp_path, fleet, """
            all:
              vars: {{ansible_user: root, ansible_ssh_private_key_file: "{key}", rollout_known_hosts: "{known}"}}
              hosts:
                lb-01: {{ansible_host: "{lb}"}}
            """))
        assert await run_all(inv, 'echo "${SSH_AUTH_SOCK:-none}"') == {"lb-01": "none"}
    finally:
        os.kill(pid, 15)
