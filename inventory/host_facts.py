"""What the checklist asks a host, in one command (pure: text in, text out).

The checklist used to ask each host three times (`true` for reach, then
`systemctl show` per unit, then `df`), each its own SSH session: on sshd a
fork and a PAM session apiece, which on 50 hosts cost about 1 s of a 2-core
machine. One command answers all three: that it ran at all is the reach
check (SSH, and `sudo -n` when the host says become), and its output holds a
section per unit and a line per path. Every value is shell-quoted.
"""
from __future__ import annotations

import shlex
from typing import Sequence

from .driver import HostFacts, UnitStatus
from .systemd import parse_unit_status, show_cmd

_UNIT, _DISK = "@unit ", "@disk "


def command(units: Sequence[str], paths: Sequence[str]) -> str:
    """Sections `@unit NAME` (systemctl show, its errors folded in) and
    lines `@disk PATH <df -Pk line>` for the paths that exist; exits 0
    whenever the shell ran, so a non-zero exit means the host was not reached."""
    parts = [f"echo {shlex.quote(_UNIT + u)}; {show_cmd(u)} 2>&1 || echo \"exit $?\"" for u in units]
    if paths:
        q = " ".join(shlex.quote(p) for p in paths)
        parts.append(f"for p in {q}; do if [ -e \"$p\" ]; then printf '{_DISK}%s ' \"$p\"; "
                     f"df -Pk \"$p\" | tail -n 1; fi; done")
    return "; ".join([*parts, "exit 0"])


def parse(units: Sequence[str], paths: Sequence[str], stdout: str) -> HostFacts:
    """The facts `command(units, paths)` printed. A unit whose section holds
    no LoadState gets the section's other lines as its error; a path with no
    line (or an unreadable one) gets None."""
    sections: dict[str, list[str]] = {}
    free: dict[str, int | None] = {p: None for p in paths}
    current: list[str] | None = None
    for line in stdout.splitlines():
        if line.startswith(_UNIT):
            current = sections.setdefault(line[len(_UNIT):], [])
        elif line.startswith(_DISK):
            current = None
            rest = line[len(_DISK):]
            # the path may hold spaces: the longest asked-for path it starts with
            path = max((p for p in paths if rest.startswith(p + " ")), key=len, default=None)
            fields = rest[len(path) + 1:].split() if path is not None else []
            if path is not None and len(fields) >= 4 and fields[3].isdigit():
                free[path] = int(fields[3]) * 1024  # df -Pk: filesystem, blocks, used, available
        elif current is not None:
            current.append(line)
    statuses: dict[str, UnitStatus] = {}
    errors: dict[str, str] = {}
    for unit in units:
        lines = sections.get(unit, [])
        if any(line.startswith("LoadState=") for line in lines):
            statuses[unit] = parse_unit_status("\n".join(lines))
        else:
            errors[unit] = " ".join(" ".join(lines).split())[:200] or "systemctl show printed nothing"
    return HostFacts(statuses, errors, free)
