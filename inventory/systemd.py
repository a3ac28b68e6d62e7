"""systemctl / journalctl command strings and output parsing (pure, no I/O).

Every value that reaches a shell goes through shlex.quote. `systemctl show -p`
prints properties in its own order, so the output is parsed as key=value.
A missing unit reports ActiveState=inactive with exit 0: check LoadState.
"""
from __future__ import annotations

import shlex

from .driver import UnitStatus

SHOW_PROPERTIES = ("LoadState", "ActiveState", "SubState")


def unit_arg(unit: str) -> str:
    if not unit or "\n" in unit or "\0" in unit:
        raise ValueError(f"bad unit name {unit!r}")
    return shlex.quote(unit)


def restart_cmd(unit: str) -> str:
    """`systemctl restart`: for Type=notify units this blocks until READY=1
    and exits non-zero if the start fails."""
    return f"systemctl restart {unit_arg(unit)}"


def stop_cmd(unit: str) -> str:
    return f"systemctl stop {unit_arg(unit)}"


def start_cmd(unit: str) -> str:
    return f"systemctl start {unit_arg(unit)}"


def reload_cmd(unit: str) -> str:
    return f"systemctl reload {unit_arg(unit)}"


def show_cmd(unit: str) -> str:
    return f"systemctl show -p {','.join(SHOW_PROPERTIES)} --no-pager {unit_arg(unit)}"


def journal_cmd(unit: str, lines: int = 50) -> str:
    n = max(1, int(lines))
    return f"journalctl -u {unit_arg(unit)} -n {n} --no-pager -o short-iso"


def parse_show(text: str) -> dict[str, str]:
    """key=value lines in any order; the value keeps any '=' it contains."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or "=" not in line:
            continue
        key, _, value = line.partition("=")
        out[key.strip()] = value.strip()
    return out


def parse_unit_status(text: str) -> UnitStatus:
    props = parse_show(text)
    return UnitStatus(
        load_state=props.get("LoadState", "unknown") or "unknown",
        active_state=props.get("ActiveState", "unknown") or "unknown",
        sub_state=props.get("SubState", ""),
    )
