"""Files and directories only their owner may read: journals, results,
control sockets' directory. Apart from console/journal.py so the control
clients (`console status`) use them without importing the event types."""
from __future__ import annotations

import os
from pathlib import Path


def private_dir(path: Path, *, tighten: bool = False) -> Path:
    """Make `path` (mode 0700 when this creates it). `tighten` also narrows
    an existing directory to 0700: for the console's own directories (the
    default journal and control directories), never for a directory the
    operator named with --record."""
    existed = path.is_dir()
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    if tighten or not existed:
        os.chmod(path, 0o700)
    return path


def create_private(path: Path, exclusive: bool = True) -> int:
    """Open a new file readable by its owner only (0600 whatever the umask)."""
    flags = os.O_WRONLY | os.O_CREAT | (os.O_EXCL if exclusive else os.O_TRUNC) | os.O_CLOEXEC
    fd = os.open(path, flags, 0o600)
    os.fchmod(fd, 0o600)
    return fd
