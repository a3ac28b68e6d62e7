"""Write a sandbox host's layout into its (mounted, not yet booted) root."""
from __future__ import annotations

import json
import os
import uuid
from pathlib import Path
from typing import Iterable, Mapping

from .agent_service import BehaviourValue
from .common import AGENT_PORT, BRIDGE, HERE, run

SLOTS = {"main": 8080, "blue": 8081, "green": 8082}
INITIAL_VERSION = "1.0.0"
# Names the fleet (its bridge) a container belongs to, so cleaning up one
# fleet never touches another's containers.
SANDBOX_MARK = "etc/rollout-sandbox"
DEPLOY_UID = 1000


def _write(path: Path, text: str, mode: int = 0o644, owner: tuple[int, int] | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.is_symlink() or path.exists():
        path.unlink()
    path.write_text(text)
    os.chmod(path, mode)
    if owner:
        os.chown(path, *owner)


def _symlink(target: str, link: Path) -> None:
    link.parent.mkdir(parents=True, exist_ok=True)
    if link.is_symlink() or link.exists():
        link.unlink()
    os.symlink(target, link)


def _append_line(path: Path, prefix: str, line: str) -> None:
    text = path.read_text()
    if not any(existing.startswith(prefix) for existing in text.splitlines()):
        path.write_text(text.rstrip("\n") + "\n" + line + "\n")


def host_key(root: Path, name: str) -> str:
    """Generate this host's own ed25519 host key; drop the image's shared keys.
    Returns the public key line ("ssh-ed25519 AAAA...")."""
    ssh = root / "etc/ssh"
    for old in ssh.glob("ssh_host_*"):
        old.unlink()
    key = ssh / "ssh_host_ed25519_key"
    run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"root@{name}", "-f", key])
    return " ".join(key.with_suffix(".pub").read_text().split()[:2])


def base(root: Path, name: str, authorized_key: str) -> str:
    """Identity, sshd and users common to every host; returns the host key."""
    _write(root / "etc/machine-id", uuid.uuid4().hex + "\n", 0o444)
    _write(root / "etc/hostname", name + "\n")
    _write(root / SANDBOX_MARK, f"{BRIDGE}\n")
    _write(root / "etc/hosts", f"127.0.0.1\tlocalhost\n127.0.1.1\t{name}\n::1\tlocalhost ip6-localhost\n")
    pub = host_key(root, name)
    _write(root / "etc/ssh/sshd_config.d/10-sandbox.conf", (HERE / "sshd-sandbox.conf").read_text())
    _symlink("/lib/systemd/system/ssh.service", root / "etc/systemd/system/multi-user.target.wants/ssh.service")
    # the image's prometheus package enables its server: it runs only where
    # `sandbox up --prometheus` starts it (prometheus_server.py)
    wants = root / "etc/systemd/system/multi-user.target.wants/prometheus.service"
    if wants.is_symlink():
        wants.unlink()
    (root / "root/.ssh").mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(root / "root/.ssh", 0o700)
    _write(root / "root/.ssh/authorized_keys", authorized_key.strip() + "\n", 0o600)
    # user "deploy": same key, passwordless sudo (for become tests)
    uid = DEPLOY_UID
    _append_line(root / "etc/passwd", "deploy:", f"deploy:x:{uid}:{uid}:deploy:/home/deploy:/bin/bash")
    _append_line(root / "etc/group", "deploy:", f"deploy:x:{uid}:")
    _append_line(root / "etc/shadow", "deploy:", "deploy:*:19700:0:99999:7:::")
    home = root / "home/deploy"
    (home / ".ssh").mkdir(parents=True, exist_ok=True)
    for d, mode in ((home, 0o755), (home / ".ssh", 0o700)):
        os.chmod(d, mode)
        os.chown(d, uid, uid)
    _write(home / ".ssh/authorized_keys", authorized_key.strip() + "\n", 0o600, (uid, uid))
    _write(root / "etc/sudoers.d/deploy", "deploy ALL=(ALL) NOPASSWD:ALL\n", 0o440)
    return pub


def _release(root: Path, version: str, behaviour: Mapping[str, BehaviourValue]) -> None:
    rel = root / "opt/agent/releases" / version
    _write(rel / "VERSION", version + "\n")
    _write(rel / "behaviour.json", json.dumps(dict(behaviour)) + "\n")


def agent_code(root: Path) -> None:
    """The stand-in agent's program and installer (used from the next start)."""
    opt = root / "opt/agent"
    _write(opt / "bin/agent.py", (HERE / "agent_service.py").read_text(), 0o755)
    _write(opt / "bin/install-release", (HERE / "install-release.py").read_text(), 0o755)


def agent(root: Path) -> None:
    """The stand-in agent: code, installer, unit, env files, release 1.0.0."""
    opt = root / "opt/agent"
    agent_code(root)
    (opt / "catalog").mkdir(parents=True, exist_ok=True)
    _release(root, INITIAL_VERSION, {})
    for slot, port in SLOTS.items():
        _write(root / f"etc/agent/{slot}.env", f"PORT={port}\nSLOT={slot}\n")
        _symlink(f"/opt/agent/releases/{INITIAL_VERSION}", opt / "slots" / slot / "current")
    unit = root / "etc/systemd/system/agent@.service"
    _write(unit, (HERE / "agent@.service").read_text())
    _symlink("/etc/systemd/system/agent@.service",
             root / "etc/systemd/system/multi-user.target.wants/agent@main.service")
    # nginx is not needed on agent hosts: mask it to save memory
    _symlink("/dev/null", root / "etc/systemd/system/nginx.service")
    wants = root / "etc/systemd/system/multi-user.target.wants/nginx.service"
    if wants.is_symlink():
        wants.unlink()


def load_balancer(root: Path, agent_ips: Iterable[str]) -> None:
    from inventory.nginx_config import Backend, LbState, render

    enabled = root / "etc/nginx/sites-enabled"
    for f in enabled.iterdir():
        f.unlink()
    _write(enabled / "agent", (HERE / "lb-site.conf").read_text())
    state = LbState(
        upstream="agent",
        pools={"stable": tuple(Backend(ip, AGENT_PORT) for ip in agent_ips)},
        default_pool="stable",
        generation="sandbox-initial",
        access_log="/var/log/nginx/rollout-agent.log",
        marker_port=8099,
    )
    _write(root / "etc/nginx/conf.d/rollout-agent.conf", render(state))
    # no agent on the LB
    for name in ("agent@main.service",):
        link = root / "etc/systemd/system/multi-user.target.wants" / name
        if link.is_symlink():
            link.unlink()


def write_catalog(root: Path, version: str, behaviour: Mapping[str, BehaviourValue]) -> Path:
    path = root / "opt/agent/catalog" / f"{version}.json"
    _write(path, json.dumps(dict(behaviour), sort_keys=True) + "\n")
    return path

