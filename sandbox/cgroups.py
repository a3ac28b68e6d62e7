"""A cgroup of its own for each sandbox container.

`systemd-nspawn --keep-unit --register=no` (the sandbox cannot ask a
machined: the host need not run systemd) puts the container's systemd in a
`payload` cgroup under the cgroup nspawn itself runs in. Containers started
from the same process therefore share one `payload`, and each container's
systemd creates and removes the same unit cgroups in it
(`payload/system.slice/systemd-user-sessions.service`, ...). When two
containers boot at once, one removes a cgroup the other is attaching a
process to, and the unit fails with status 219/CGROUP: seen on this
project's machine for systemd-user-sessions on 1 of 3 hosts booted side by
side, which leaves /run/nologin in place and locks every user but root out.

So nspawn is started inside `<own cgroup>/rollout-sandbox/<machine>` in
every hierarchy systemd tracks processes in (the v1 `name=systemd` one and
cgroup2, unified or pure), and `payload` becomes per container.
"""
from __future__ import annotations

import os
import shlex
from pathlib import Path

PARENT = "rollout-sandbox"


def _mounts() -> dict[str, Path]:
    """Mount points by hierarchy key: 'name=systemd' (v1) and '' (cgroup2)."""
    out: dict[str, Path] = {}
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        left, _, right = line.partition(" - ")
        fields, rest = left.split(), right.split()
        if len(fields) < 5 or len(rest) < 3 or fields[3] != "/":
            continue  # a bind of a sub-cgroup: its paths do not map simply
        if rest[0] == "cgroup2":
            out.setdefault("", Path(fields[4]))
        elif rest[0] == "cgroup" and "name=systemd" in rest[2].split(","):
            out["name=systemd"] = Path(fields[4])
    return out


def _own_paths() -> dict[str, str]:
    """This process's cgroup path by hierarchy key, as _mounts() keys them."""
    out = {}
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        if controllers in ("", "name=systemd"):
            out[controllers] = path
    return out


def directories(machine: str) -> list[Path]:
    """Where `machine`'s nspawn runs, one directory per hierarchy."""
    mounts, own = _mounts(), _own_paths()
    return [mounts[key] / own[key].lstrip("/") / PARENT / machine for key in mounts if key in own]


def prepare(machine: str) -> list[Path]:
    """Create `machine`'s cgroups; returns their cgroup.procs files."""
    procs = []
    for d in directories(machine):
        d.mkdir(parents=True, exist_ok=True)
        procs.append(d / "cgroup.procs")
    return procs


def enter_and_exec(procs: list[Path], argv: list[str]) -> list[str]:
    """argv that moves itself into the cgroups `procs` names, then execs
    `argv` (a shell, not a preexec_fn: the sandbox boots hosts from threads)."""
    moves = "".join(f"echo $$ > {shlex.quote(str(p))} && " for p in procs)
    return ["sh", "-c", moves + 'exec "$@"', "sh", *argv]


def remove(machine: str) -> None:
    """Remove `machine`'s cgroups once its processes are gone (a cgroup with
    a process left in it stays: rmdir refuses, and that is not an error)."""
    for d in directories(machine):
        if not d.is_dir():
            continue
        for sub in sorted((p for p in d.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True):
            _rmdir(sub)
        _rmdir(d)


def _rmdir(d: Path) -> None:
    try:
        os.rmdir(d)
    except OSError:
        pass
