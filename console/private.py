"""The console's private directories and files, safe when run as root
beside other users (docs/threat-model.md, "other local users").

`su` without `-` and `sudo -E` keep the invoking user's XDG_RUNTIME_DIR,
XDG_STATE_HOME and HOME. A directory found through them may be that user's,
or a symlink of theirs to a file of root's. So a directory is used only when
`lstat` shows a real directory owned by the effective user that no one else
may write; the console's own last directory must be mode 0700 as well
(narrowed when it is ours). Otherwise the next candidate is tried, ending
with the home directory the password database names for the effective user.

Every private file is written under a fresh temporary name with
O_CREAT|O_EXCL|O_NOFOLLOW (a planted name or symlink makes the open fail, it
is never followed) and renamed into place: a reader sees the old file or the
new one, and a symlink in the final name is replaced, not written through.
"""
from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Iterable

from inventory.ssh_config import passwd_home

_OTHERS_WRITE = stat.S_IWGRP | stat.S_IWOTH


class NotPrivate(OSError):
    """No directory fit to hold the console's private files."""


def _owned_dir(path: Path, *, private: bool) -> str | None:
    """Why `path` cannot be used (None: it can). Never follows a symlink."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return "missing"
    if stat.S_ISLNK(st.st_mode):
        return "a symlink"
    if not stat.S_ISDIR(st.st_mode):
        return "not a directory"
    if st.st_uid != os.geteuid():
        return f"owned by uid {st.st_uid}, not {os.geteuid()}"
    if private and stat.S_IMODE(st.st_mode) != 0o700:
        os.chmod(path, 0o700, follow_symlinks=False)  # ours, just checked
    elif st.st_mode & _OTHERS_WRITE:
        return f"writable by others (mode {stat.S_IMODE(st.st_mode):04o})"
    return None


def _safe_parent(path: Path) -> str | None:
    """Why another user could swap `path` out from under us through its
    parent directory (None: they cannot): the parent must be the effective
    user's or root's, and writable by no one else unless sticky."""
    parent = path.parent
    try:
        st = os.lstat(parent)
    except OSError as exc:
        return f"{parent}: {exc.strerror}"
    if st.st_uid not in (os.geteuid(), 0):
        return f"{parent} is owned by uid {st.st_uid}"
    if st.st_mode & _OTHERS_WRITE and not st.st_mode & stat.S_ISVTX:
        return f"{parent} is writable by others (mode {stat.S_IMODE(st.st_mode):04o})"
    return None


def _make_base(base: Path) -> None:
    """Create a missing base directory (0700), each new level under a
    parent no other user can swap."""
    missing = []
    path = base
    while not os.path.lexists(path) and path != path.parent:
        missing.append(path)
        path = path.parent
    for new in reversed(missing):
        why = _safe_parent(new)
        if why is not None:
            raise NotPrivate(f"{new}: not created: {why}")
        try:
            os.mkdir(new, 0o700)
        except FileExistsError:
            pass


def own_tree(base: Path, parts: Iterable[str]) -> Path:
    """`base/parts...`, each made if missing; raise NotPrivate naming the
    first one that is not the effective user's own (the last must be, and
    is made, 0700). The base itself must sit in a directory no other user
    can swap it out of."""
    _make_base(base)
    why = _owned_dir(base, private=False) or _safe_parent(base)
    if why is not None:
        raise NotPrivate(f"{base}: {why}")
    path = base
    names = list(parts)
    for i, name in enumerate(names):
        path = path / name
        last = i == len(names) - 1
        try:
            os.mkdir(path, 0o700)
        except FileExistsError:
            pass
        why = _owned_dir(path, private=last)
        if why is not None:
            raise NotPrivate(f"{path}: {why}")
    return path


def first_own_tree(candidates: Iterable[tuple[str | Path | None, tuple[str, ...]]]) -> Path:
    """The first candidate `(base, parts)` that `own_tree` accepts; bases
    that are unset are skipped. NotPrivate lists why each was refused."""
    refused = []
    for base, parts in candidates:
        if not base:
            continue
        try:
            return own_tree(Path(base), parts)
        except NotPrivate as exc:
            refused.append(str(exc))
    raise NotPrivate("no private directory: " + "; ".join(refused))


def state_candidates(*parts: str) -> list[tuple[str | Path | None, tuple[str, ...]]]:
    """$XDG_STATE_HOME, ~/.local/state by $HOME, then by the password database."""
    return [(os.environ.get("XDG_STATE_HOME"), parts),
            (os.environ.get("HOME"), (".local", "state", *parts)),
            (passwd_home(), (".local", "state", *parts))]


def private_dir(path: Path) -> Path:
    """Make `path` (mode 0700 when this creates it) for a directory the
    operator named (--record, ROLLOUT_JOURNAL_DIR): its mode is theirs."""
    existed = path.is_dir()
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    if not existed:
        os.chmod(path, 0o700)
    return path


def create_private(path: Path) -> int:
    """A new file readable by its owner only (0600 whatever the umask); a
    name that exists, symlink or not, makes it fail."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    os.fchmod(fd, 0o600)
    return fd


def write_private(path: Path, data: bytes) -> None:
    """Replace `path` with `data` (0600): written to a fresh temporary name
    beside it and renamed into place, never through a symlink."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{os.urandom(4).hex()}.tmp")
    fd = create_private(tmp)
    try:
        with open(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
