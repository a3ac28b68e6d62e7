"""The ssh config an inventory points to (`-F FILE`), read before any
connection, so that an inventory never runs a program on this machine.

asyncssh honours `Match exec` (a shell command, run as the operator while
the file is parsed), `ProxyCommand` (a program as the transport) and
`ForwardAgent`/`IdentityAgent` (the operator's keys lent out or taken from
a socket of the file's choosing). An inventory author is trusted to name
hosts, not to run code as whoever runs the console (root on a bastion):
see docs/threat-model.md. So every file the config would read (Include
followed, as asyncssh and OpenSSH resolve it) is read first and these are
refused with FILE:LINE:

- `ProxyCommand` other than `none` and the jump host in disguise
  (`ssh -W %h:%p [user@]bastion`, dialled by the pool itself like -J);
- `Match exec`, `IdentityAgent` (other than `none`);
- `LocalCommand`, `PermitLocalCommand yes`, `KnownHostsCommand`,
  `PKCS11Provider`, `SecurityKeyProvider` (OpenSSH would run or load them;
  asyncssh would not, and reading a file differently from OpenSSH is
  refused too);
- `ForwardAgent` other than `no`: agent forwarding is always off.

`--trust-ssh-config FILE` on the command line lets that one file's
ProxyCommand, Match exec and IdentityAgent through (the operator vouches
for it); the rest stay refused. A file another user owns or may write is
refused like OpenSSH refuses such a ~/.ssh/config: it could be changed
between this reading and asyncssh's.
"""
from __future__ import annotations

import os
import pwd
import shlex
import stat
from contextvars import ContextVar
from pathlib import Path
from typing import Iterable

from .jump import proxy_command_jump

_TRUSTED: ContextVar[frozenset[str]] = ContextVar("trusted_ssh_configs", default=frozenset())
MAX_INCLUDE_DEPTH = 16  # OpenSSH's READCONF_MAX_DEPTH
_NO_ARG_CRITERIA = ("all", "canonical", "final")
# OpenSSH would run or load these; asyncssh ignores them: refused even when trusted
_NEVER = {"localcommand": "runs a program on this machine after login",
          "knownhostscommand": "runs a program on this machine to list host keys",
          "pkcs11provider": "loads a library into this process",
          "securitykeyprovider": "loads a library into this process"}


def trust_ssh_configs(paths: Iterable[str]) -> None:
    """The operator's explicit opt-in (command line) for these files."""
    _TRUSTED.set(frozenset(os.path.realpath(expand_home(p)) for p in paths))


def is_trusted(path: str) -> bool:
    return os.path.realpath(expand_home(path)) in _TRUSTED.get()


def passwd_home() -> Path:
    """The effective user's home as the password database has it: what
    OpenSSH uses for ~, where $HOME (kept by `sudo -E` and `su` without `-`)
    may be another user's."""
    return Path(pwd.getpwuid(os.geteuid()).pw_dir)


def expand_home(path: str) -> str:
    """`~` and `~/...` as OpenSSH expands them (passwd_home), `~user` as usual."""
    if path == "~" or path.startswith("~/"):
        return str(passwd_home()) + path[1:]
    return os.path.expanduser(path)


def default_config_paths() -> list[str]:
    """The user's own ~/.ssh/config (by passwd_home, as OpenSSH finds it),
    checked as OpenSSH checks it; [] if there is none."""
    path = passwd_home() / ".ssh" / "config"
    if not path.is_file():
        return []
    _check_owner(path)
    return [str(path)]


def _check_owner(path: Path) -> None:
    st = path.stat()
    if st.st_uid not in (os.geteuid(), 0) or st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise ValueError(f"{path}: ssh config owned by uid {st.st_uid} with mode {stat.S_IMODE(st.st_mode):04o}: "
                         "it must belong to you (or root) and be writable by its owner only, as OpenSSH "
                         "requires of ~/.ssh/config")


def _words(line: str, where: str) -> list[str]:
    """`Keyword args` or `Keyword=args`, split the way OpenSSH does."""
    line = line.strip()
    head, sep, rest = line.partition("=")
    if sep and " " not in head.strip() and "\t" not in head.strip():
        line = f"{head.strip()} {rest}"
    try:
        return shlex.split(line, comments=True)
    except ValueError as exc:
        raise ValueError(f"{where}: cannot split: {exc}") from None


def _match_has_exec(words: list[str]) -> bool:
    args = [part for word in words for part in word.split("=", 1) if part]  # OpenSSH splits on '=' too
    i = 0
    while i < len(args):
        criterion = args[i].lower().lstrip("!")
        if criterion in _NO_ARG_CRITERIA:
            i += 1
            continue
        if criterion == "exec":
            return True
        i += 2
    return False


def _include_paths(pattern: str) -> list[Path]:
    """Include as asyncssh (and OpenSSH for a user config) resolves it:
    relative to ~/.ssh, globbed, files only, in sorted order."""
    path = Path(pattern).expanduser()
    base, rest = (Path(path.anchor), str(Path(*path.parts[1:]))) if path.anchor else \
        (Path("~", ".ssh").expanduser(), pattern)
    return sorted(p for p in base.glob(rest) if p.is_file()) if rest else []


def _refusal(key: str, args: list[str], trusted: bool) -> str | None:
    """Why this directive may not be read, or None."""
    value = " ".join(args)
    if key in _NEVER:
        if key == "localcommand" or args:
            return f"{key} {_NEVER[key]}"
    if key == "permitlocalcommand" and value.lower() != "no":
        return "PermitLocalCommand would run LocalCommand on this machine"
    if key == "forwardagent" and value.lower() != "no":
        return "agent forwarding is always off (a remote root could use the operator's keys)"
    if trusted:
        return None
    if key == "match" and _match_has_exec(args):
        return "Match exec runs a shell command on this machine while the file is read"
    if key == "identityagent" and value.lower() != "none":
        return "IdentityAgent picks the agent socket that signs for the operator"
    if key == "proxycommand" and value.lower() != "none":
        try:
            proxy_command_jump(value)
        except ValueError:
            return "ProxyCommand runs a program on this machine (use ProxyJump, or `ssh -W %h:%p bastion`)"
    return None


def audit_ssh_config(path: str) -> None:
    """Read `path` and what it includes; raise ValueError naming FILE:LINE
    at the first directive that would run local code (see the module doc)."""
    top = Path(expand_home(path))
    if not top.is_file():
        raise ValueError(f"{path}: ssh config not found")
    trusted = is_trusted(path)

    def read(file: Path, depth: int) -> None:
        if depth > MAX_INCLUDE_DEPTH:
            raise ValueError(f"{file}: Include nested more than {MAX_INCLUDE_DEPTH} deep")
        _check_owner(file)
        try:
            text = file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ValueError(f"{file}: cannot read ssh config: {exc}") from None
        for number, line in enumerate(text.splitlines(), 1):
            where = f"{file}:{number}"
            words = _words(line, where)
            if not words:
                continue
            key, args = words[0].lower(), words[1:]
            if key == "include":
                for pattern in args:
                    for included in _include_paths(pattern):
                        read(included, depth + 1)
                continue
            why = _refusal(key, args, trusted)
            if why is not None:
                hint = "" if trusted or key in _NEVER or key in ("permitlocalcommand", "forwardagent") else \
                    f" (--trust-ssh-config {path} to allow it)"
                raise ValueError(f"{where}: {words[0]}: refused: {why}{hint}")

    read(top, 0)
