"""`console sandbox up` on a machine missing host packages: it names every
missing Debian package in one line (not one per attempt), and with
`--install-deps` installs them with apt-get. Runs as root like the rest of
tests/sandbox; the machine is not changed (PATH is narrowed to a directory
of chosen tools, and apt-get there is a recorder)."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from sandbox.common import HOST_TOOLS, SandboxError, preflight

pytestmark = pytest.mark.sandbox
ROOT = Path(__file__).resolve().parents[2]


def narrowed_path(tmp_path: Path, tools: list[str]) -> Path:
    """A bin directory holding only `tools` (links to the real ones)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in tools:
        os.symlink(shutil.which(tool), bin_dir / tool)
    return bin_dir


def test_up_names_every_missing_package_at_once(tmp_path):
    bin_dir = narrowed_path(tmp_path, ["mount", "ip", "env"])
    proc = subprocess.run([sys.executable, "-m", "console", "sandbox", "up"], cwd=ROOT, capture_output=True,
                          text=True, timeout=60, env={**os.environ, "PATH": str(bin_dir)})
    assert proc.returncode == 6, proc.stderr
    assert proc.stderr.splitlines() == [
        "console sandbox: error: missing Debian packages: systemd-container debootstrap util-linux openssh-client "
        "(apt-get install systemd-container debootstrap util-linux openssh-client, "
        "or `console sandbox up --install-deps`)"]


def test_install_deps_installs_the_missing_packages_with_apt_get(tmp_path, monkeypatch):
    bin_dir = narrowed_path(tmp_path, ["mount", "ip", "env"])
    calls = tmp_path / "apt-calls"
    tools = {}
    for tool, pkg in HOST_TOOLS:
        tools.setdefault(pkg, []).append(tool)
    cases = "\n".join(f"    {pkg}) for t in {' '.join(ts)}; do /bin/ln -sf /bin/true {bin_dir}/$t; done ;;"
                      for pkg, ts in tools.items())
    (bin_dir / "apt-get").write_text(
        f"#!/bin/sh\necho \"$DEBIAN_FRONTEND $*\" >> {calls}\n"
        f"[ \"$1\" = install ] || exit 0\nfor p in \"$@\"; do\n  case $p in\n{cases}\n  esac\ndone\n")
    (bin_dir / "apt-get").chmod(0o755)
    monkeypatch.setenv("PATH", str(bin_dir))
    with pytest.raises(SandboxError):
        preflight()
    preflight(install_deps=True, log=lambda m: None)
    assert calls.read_text().splitlines() == [
        "noninteractive update -qq",
        "noninteractive install -y -qq systemd-container debootstrap util-linux openssh-client"]
