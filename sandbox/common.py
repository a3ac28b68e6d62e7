"""Shared constants, errors and small helpers for the sandbox fleet."""
from __future__ import annotations

import hashlib
import os
import platform
import shutil
import subprocess
from pathlib import Path
from typing import Callable, Sequence

# Several fleets can run side by side (tests on net 0, a benchmark on net 1):
# ROLLOUT_SANDBOX_NET=N gives bridge rcbrN, subnet 10.(77+N).0.0/24 and its
# own state dir. Read once, at import.
NET = int(os.environ.get("ROLLOUT_SANDBOX_NET", "0"))
if not 0 <= NET <= 9:
    raise ValueError("ROLLOUT_SANDBOX_NET must be 0..9")
_SUBNET = f"10.{77 + NET}.0"
DEFAULT_STATE_DIR = Path(os.environ.get(
    "ROLLOUT_SANDBOX_DIR", "/var/lib/rollout-console/sandbox" + (f"-{NET}" if NET else "")))
MIRROR = "http://deb.debian.org/debian"
SUITE = "bookworm"
# python3-prometheus-client: the agent exports its metrics in Prometheus's
# text format; prometheus: the server `sandbox up --prometheus` runs on the LB.
PACKAGES = ("systemd,systemd-sysv,dbus,openssh-server,python3,iproute2,nginx,sudo,"
            "python3-prometheus-client,prometheus")
# The image's directory carries a digest of its package list: a changed list
# builds a new image beside the old one (which fleets still running on it keep
# using) instead of finding the old one "incomplete".
_IMAGE_TAG = hashlib.sha256(f"{SUITE}:{PACKAGES}".encode()).hexdigest()[:8]
DEFAULT_IMAGE_DIR = Path(os.environ.get("ROLLOUT_SANDBOX_IMAGE", f"/var/cache/rollout-console/image-{_IMAGE_TAG}"))

BRIDGE = f"rcbr{NET}"
BRIDGE_IP = f"{_SUBNET}.1"
PREFIX = 24
LB_IP = f"{_SUBNET}.10"
FIRST_AGENT_OCTET = 11
MAX_AGENTS = 60
LB_NAME = "lb-01"
AGENT_PORT = 8080

HERE = Path(__file__).resolve().parent


class SandboxError(RuntimeError):
    """The sandbox fleet cannot be built or driven; the message is one line."""


def agent_name(i: int) -> str:
    return f"agent-{i:02d}"


def agent_ip(i: int) -> str:
    return f"{_SUBNET}.{FIRST_AGENT_OCTET + i - 1}"


# The host tools the fleet needs and the Debian package that ships each.
HOST_TOOLS = (("systemd-nspawn", "systemd-container"), ("debootstrap", "debootstrap"),
              ("nsenter", "util-linux"), ("ip", "iproute2"), ("ssh", "openssh-client"),
              ("ssh-keygen", "openssh-client"), ("mount", "mount"))


def missing_packages() -> list[str]:
    """Every Debian package whose tool is not on PATH, each named once."""
    return list(dict.fromkeys(pkg for tool, pkg in HOST_TOOLS if shutil.which(tool) is None))


def install_packages(packages: Sequence[str], log: Callable[[str], None] = print) -> None:
    """apt-get install the packages (non-interactive)."""
    if shutil.which("apt-get") is None:
        raise SandboxError(f"missing packages {' '.join(packages)} and no apt-get to install them")
    log(f"installing {' '.join(packages)} with apt-get")
    run(["env", "DEBIAN_FRONTEND=noninteractive", "apt-get", "update", "-qq"], timeout=900)
    run(["env", "DEBIAN_FRONTEND=noninteractive", "apt-get", "install", "-y", "-qq", *packages], timeout=1800)


def preflight(install_deps: bool = False, log: Callable[[str], None] = print) -> None:
    """Refuse early, with one line naming every missing Debian package at
    once, on machines that cannot run the fleet; with `install_deps`,
    install them first."""
    if platform.system() != "Linux":
        raise SandboxError(f"the sandbox fleet needs Linux (this is {platform.system()})")
    if os.geteuid() != 0:
        raise SandboxError("the sandbox fleet needs root (systemd-nspawn, overlayfs, bridges)")
    missing = missing_packages()
    if missing and install_deps:
        install_packages(missing, log)
        missing = missing_packages()
    if missing:
        names = " ".join(missing)
        raise SandboxError(f"missing Debian packages: {names} (apt-get install {names}, "
                           f"or `console sandbox up --install-deps`)")


def run(argv: Sequence[str | int | os.PathLike[str]], *, check: bool = True, timeout: float = 60,
        input: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run a command, capturing text output; on failure raise SandboxError
    naming the command and the last line of its stderr."""
    try:
        proc = subprocess.run(list(map(str, argv)), capture_output=True, text=True,
                              timeout=timeout, input=input)
    except FileNotFoundError as exc:
        raise SandboxError(f"{argv[0]}: not found") from exc
    except subprocess.TimeoutExpired as exc:
        raise SandboxError(f"{' '.join(map(str, argv))}: timed out after {timeout:g}s") from exc
    if check and proc.returncode != 0:
        err = (proc.stderr or proc.stdout or "").strip().splitlines()
        last = err[-1] if err else f"exit {proc.returncode}"
        raise SandboxError(f"{' '.join(map(str, argv[:4]))}: {last}")
    return proc
