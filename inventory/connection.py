"""Ansible's connection variables: honoured, or refused naming file, line
and variable.

The console must reach a host the way Ansible would, or not at all. So
every variable that changes how a host is reached or how commands run is
either carried out or refused:

- `ansible_connection`: `ssh`/`smart`/`paramiko` (SSH), `local` (commands
  run on the controller); anything else (docker, winrm, ...) is refused.
- `ansible_become_user` -> `sudo -n -u USER`; `ansible_become_method` other
  than sudo, `ansible_become_exe` and `ansible_become_flags` are refused
  when become is on (without become Ansible ignores them too).
- `ansible_shell_type`, `ansible_shell_executable`, `ansible_ssh_executable`
  other than sh, /bin/sh and ssh are refused.
- Passwords (`ansible_password`, `ansible_ssh_pass`, `ansible_become_pass`
  ...) are refused: the console authenticates with keys and runs `sudo -n`.
- `ansible_ssh_common_args`, `ansible_ssh_extra_args`, `ansible_ssh_args`:
  `-J HOPS` / `-o ProxyJump=HOPS` go through those jump hosts (host keys
  checked on every hop), and so does the classic
  `-o ProxyCommand="ssh -W %h:%p [-q] [-p PORT] [user@]bastion"` (the first
  jump given wins, as in OpenSSH); `-F FILE` reads that ssh config instead
  of ~/.ssh/config, after it is read and checked (inventory/ssh_config.py:
  no local code, no agent forwarding); options that only tune an OpenSSH client (-C, -q,
  Control*, ServerAlive*, ConnectTimeout, LogLevel) have no effect here.
  Anything else (any other ProxyCommand, -p, -i, -o User=,
  -o StrictHostKeyChecking=no...) is refused.
"""
from __future__ import annotations

import shlex
from dataclasses import dataclass
from typing import Callable, NoReturn, Protocol, TypeVar

from .jump import JumpHop, parse_jump, proxy_command_jump
from .ssh_config import audit_ssh_config, is_trusted
from .validate import check_user, show

SSH_CONNECTIONS = ("ssh", "smart", "paramiko", "paramiko_ssh", "ansible.builtin.ssh",
                   "ansible.builtin.paramiko_ssh")
LOCAL_CONNECTIONS = ("local", "ansible.builtin.local")
PASSWORD_VARS = ("ansible_password", "ansible_ssh_pass", "ansible_ssh_password", "ansible_become_password",
                 "ansible_become_pass", "ansible_sudo_pass", "ansible_sudo_password")
SSH_ARG_VARS = ("ansible_ssh_args", "ansible_ssh_common_args", "ansible_ssh_extra_args")
BECOME_REFUSED = ("ansible_become_exe", "ansible_become_flags")
# variables that change which program runs the commands, with the values
# that mean what the console does anyway (`sh -c` over OpenSSH's protocol)
DEFAULT_ONLY = {"ansible_shell_type": ("sh",), "ansible_shell_executable": ("/bin/sh", "sh"),
                "ansible_ssh_executable": ("ssh", "/usr/bin/ssh")}
_HARMLESS_FLAGS = ("-C", "-q")
_HARMLESS_OPTIONS = ("controlmaster", "controlpersist", "controlpath", "serveraliveinterval",
                     "serveralivecountmax", "connecttimeout", "loglevel")



_T = TypeVar("_T")
_D = TypeVar("_D")


class VarGetter(Protocol):
    """`get(keys, check, default)`: the first of `keys` a host sets, as `check`
    reads its raw value (a ValueError from `check` becomes an error naming its
    file, line and variable), else `default`."""

    def __call__(self, keys: tuple[str, ...], check: Callable[[object], _T], default: _D, /) -> _T | _D: ...


@dataclass(frozen=True)
class Connection:
    kind: str = "ssh"  # "ssh" or "local"
    become_user: str | None = None
    jump: tuple[JumpHop, ...] = ()
    ssh_config: str | None = None
    # the operator vouched for ssh_config on the command line (--trust-ssh-config):
    # its ProxyCommand runs as written instead of being refused
    trusted_config: bool = False



def parse_ssh_args(text: object) -> tuple[tuple[JumpHop, ...] | None, str | None]:
    """(jump hops or None, ssh config file or None) from an ssh argument string."""
    if not isinstance(text, str):
        raise ValueError(f"expected ssh arguments as a string, got {show(text)}")
    try:
        tokens = shlex.split(text)
    except ValueError as exc:
        raise ValueError(f"cannot split ssh arguments: {exc}") from None
    jump: tuple[JumpHop, ...] | None = None
    config: str | None = None
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        flag = tok[:2]
        if flag in ("-J", "-o", "-F"):
            value = tok[2:]
            if not value:
                i += 1
                if i >= len(tokens):
                    raise ValueError(f"{flag} needs a value")
                value = tokens[i]
            if flag == "-J":
                jump = jump if jump is not None else parse_jump(value)
            elif flag == "-F":
                audit_ssh_config(value)
                config = value
            else:
                key, sep, opt_value = value.partition("=")
                if not sep:
                    key, _, opt_value = value.partition(" ")
                key = key.strip()
                if key.lower() == "proxyjump":  # OpenSSH: the first value given wins
                    jump = jump if jump is not None else parse_jump(opt_value.strip())
                elif key.lower() == "proxycommand":
                    jump = jump if jump is not None else proxy_command_jump(opt_value.strip())
                elif key.lower() in ("stricthostkeychecking", "userknownhostsfile"):
                    raise ValueError(f"ssh option {show(key)} is not supported: the console always checks host "
                                     "keys against known_hosts (rollout_known_hosts; --accept-new-host-keys "
                                     "for trust on first use)")
                elif key.lower() not in _HARMLESS_OPTIONS:
                    raise ValueError(f"ssh option {show(key)} is not supported by the console's SSH transport "
                                     "(supported: -J / ProxyJump, -F; ProxyCommand is refused)")
        elif tok not in _HARMLESS_FLAGS:
            raise ValueError(f"ssh argument {show(tok)} is not supported by the console's SSH transport "
                             "(supported: -J / ProxyJump, -F)")
        i += 1
    return jump, config


def connection_of(get: VarGetter,
                  present: Callable[[str], bool], become: bool) -> Connection:
    """The host's Connection. `get(keys, check, default)` reads a merged
    variable (a ValueError from `check` becomes an error naming its file,
    line and variable); `present(key)` tells whether it is set."""

    def refuse(message: str) -> Callable[[object], NoReturn]:
        def check(value: object) -> NoReturn:
            raise ValueError(message)
        return check

    for key in PASSWORD_VARS:
        if present(key):
            get((key,), refuse("passwords are not supported: the console logs in with keys (ssh-agent, "
                               "IdentityFile, ansible_ssh_private_key_file) and runs sudo -n"), None)

    def check_connection(value: object) -> str:
        if value in SSH_CONNECTIONS:
            return "ssh"
        if value in LOCAL_CONNECTIONS:
            return "local"
        raise ValueError(f"connection {show(value)} is not supported (ssh or local)")

    kind = get(("ansible_connection",), check_connection, "ssh")
    for key, allowed in DEFAULT_ONLY.items():
        if present(key):
            def check_default(value: object, key: str = key, allowed: tuple[str, ...] = allowed) -> object:
                if value not in allowed:
                    raise ValueError(f"{key} {show(value)} is not supported: the console runs commands with "
                                     f"`sh -c` over SSH ({' or '.join(allowed)} only)")
                return value

            get((key,), check_default, None)
    become_user = None
    if become:
        def check_method(value: object) -> str:
            if value not in ("sudo", "ansible.builtin.sudo"):
                raise ValueError(f"become method {show(value)} is not supported (sudo)")
            return str(value)

        get(("ansible_become_method",), check_method, "sudo")
        for key in BECOME_REFUSED:
            if present(key):
                get((key,), refuse(f"{key} is not supported: the console runs `sudo -n [-u USER]`"), None)
        become_user = get(("ansible_become_user",), check_user, None)
    jump: tuple[JumpHop, ...] = ()
    config: str | None = None
    for key in SSH_ARG_VARS:
        if present(key):
            found_jump, found_config = get((key,), parse_ssh_args, (None, None))
            jump = jump or found_jump or ()
            config = found_config or config
    if kind == "local":  # Ansible's local connection ignores ssh arguments too
        jump, config = (), None
    return Connection(kind=kind, become_user=become_user if become_user != "root" else None,
                      jump=jump, ssh_config=config, trusted_config=bool(config) and is_trusted(str(config)))
