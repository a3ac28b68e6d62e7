"""Who is on the other end of a control connection (SO_PEERCRED), and
whether they may command this run: its owner's uid, or root.

uid, user and pid come from the kernel. The SSH client address comes from
the peer process's own environment (SSH_CLIENT), which that process may set
to anything: it is recorded as `ssh_client_claimed` and shown as "claims",
never as a fact (docs/threat-model.md)."""
from __future__ import annotations

import os
import pwd
import socket
import struct
from pathlib import Path

from strategies.events import Sender

_UCRED = struct.Struct("3i")  # pid, uid, gid


def ssh_client_of(pid: int) -> str:
    """The SSH client address in the peer process's environment, if it runs
    under SSH and /proc lets us read it (same uid, or we are root)."""
    try:
        environ = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return ""
    found = {}
    for item in environ.split(b"\0"):
        name, _, value = item.partition(b"=")
        if name in (b"SSH_CLIENT", b"SSH_CONNECTION"):
            found[name] = value.decode("ascii", "replace").split()
    for name in (b"SSH_CLIENT", b"SSH_CONNECTION"):
        if found.get(name):
            return found[name][0]
    return ""


def user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def identify(sock: socket.socket) -> Sender:
    """uid, user, pid and SSH client address of a connected peer."""
    pid, uid, _gid = _UCRED.unpack(sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _UCRED.size))
    return {"uid": uid, "user": user_name(uid), "pid": pid, "ssh_client_claimed": ssh_client_of(pid)}


def may_control(peer: Sender, owner_uid: int | None = None) -> bool:
    owner = os.getuid() if owner_uid is None else owner_uid
    return peer["uid"] in (owner, 0)


def source_label(peer: Sender) -> str:
    """The OperatorCommand source for a command sent over the socket."""
    claimed = peer.get("ssh_client_claimed")
    return f"socket:{peer['user']}" + (f" (claims ssh from {claimed})" if claimed else "")
