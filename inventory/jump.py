"""Jump hosts: OpenSSH's ProxyJump hops, and the one ProxyCommand that is a
jump host in disguise (`ssh -W %h:%p bastion`).

Both the connection variables (inventory/connection.py) and the ssh config
audit (inventory/ssh_config.py) read them; they live apart so that neither
of those imports the other.
"""
from __future__ import annotations

import shlex
from dataclasses import dataclass

from .validate import check_address, check_port, check_user, show


@dataclass(frozen=True)
class JumpHop:
    """One ProxyJump hop: `[user@]host[:port]`."""

    host: str
    port: int | None = None
    user: str | None = None

    def __str__(self) -> str:
        text = f"{self.user}@{self.host}" if self.user else self.host
        return f"{text}:{self.port}" if self.port else text


def parse_jump(value: str) -> tuple[JumpHop, ...]:
    """OpenSSH's ProxyJump: comma-separated `[user@]host[:port]`, or `none`."""
    if value.strip().lower() == "none":
        return ()
    hops = []
    for part in value.split(","):
        part = part.strip()
        part = part.removeprefix("ssh://")
        user, at, rest = part.rpartition("@")
        host, port = rest, None
        if rest.startswith("["):
            inner, _, tail = rest[1:].partition("]")
            host = inner
            if tail.startswith(":"):
                port = check_port(tail[1:])
        elif rest.count(":") == 1:
            host, port_text = rest.split(":")
            port = check_port(port_text)
        hops.append(JumpHop(check_address(host), port, check_user(user) if at else None))
    if not hops or any(not h.host for h in hops):
        raise ValueError(f"expected ProxyJump hops like user@bastion:22, got {show(value)}")
    return tuple(hops)


def proxy_command_jump(value: str, target: str | None = None) -> tuple[JumpHop, ...]:
    """The one ProxyCommand that is a jump host in disguise,
    `ssh [-q] [-p PORT] [-l USER] -W %h:%p [USER@]BASTION`, as that hop;
    any other ProxyCommand is refused (it would run a program of its own).
    `target` ("host:port") is what %h:%p became, for a value asyncssh
    already expanded."""
    try:
        argv = shlex.split(value)
    except ValueError as exc:
        raise ValueError(f"cannot split ProxyCommand: {exc}") from None
    refuse = ValueError(f"ProxyCommand {show(value)} is not supported: only `ssh -W %h:%p [user@]bastion` "
                        "(use ProxyJump / -J)")
    if not argv or argv[0] not in ("ssh", "/usr/bin/ssh"):
        raise refuse
    port = user = dest = None
    forward = False
    rest = argv[1:]
    while rest:
        tok = rest.pop(0)
        if tok == "-q":
            continue
        if tok in ("-W", "-p", "-l") and rest:
            arg = rest.pop(0)
            if tok == "-W":
                forward = arg in ("%h:%p", "[%h]:%p") or (target is not None and arg == target)
            elif tok == "-p":
                port = check_port(arg)
            else:
                user = check_user(arg)
        elif not tok.startswith("-") and dest is None:
            dest = tok
        else:
            raise refuse
    if not forward or dest is None:
        raise refuse
    hop = parse_jump(dest)
    if len(hop) != 1:
        raise refuse
    return (JumpHop(hop[0].host, port or hop[0].port, hop[0].user or user),)
