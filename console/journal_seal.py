"""The journal's head, sealed with a key kept apart from the journal.

A hash chain alone proves nothing against whoever can rewrite the file:
they recompute it (issue 23: a forged tail with a "succeeded" closing record
passed `audit verify`). So as each record is written, its sequence number and
chain hash are MACed (HMAC-SHA256) with a key that lives in the operator's
own 0700 state directory (console/private.py), never beside the journal, and
the head (the last two such entries) is kept there too, under the id of the
journal's first record. Then:

- an edited, appended or recomputed journal no longer matches its sealed
  head (forging one needs the key: the operator's account);
- a journal shorter than its head was cut; one exactly one record short is
  what a crash between writing the head and the record leaves (the previous
  entry still authenticates it), and is told apart as such;
- a journal read elsewhere (no key, no head) is checked against a head sent
  elsewhere: `console audit verify --expect HASH` (the run's journal_hash,
  which notifications carry off the machine).

The head is written before its record, so it is never behind the journal.
"""
from __future__ import annotations

import hashlib
import hmac
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from .private import NotPrivate, create_private, first_own_tree, state_candidates

KEY_BYTES = 32
_ENTRY_LEN = 12 + 1 + 64 + 1 + 64 + 1


@dataclass(frozen=True)
class HeadEntry:
    seq: int
    digest: str
    mac: str


def _tree(name: str) -> Path:
    return first_own_tree(state_candidates("rollout-console", name))


def _read_key(path: Path) -> bytes:
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        st = os.fstat(fd)
        if st.st_uid != os.geteuid() or stat.S_IMODE(st.st_mode) & 0o077:
            raise NotPrivate(f"{path}: journal key must be yours and mode 0600")
        key = os.read(fd, KEY_BYTES + 1)
    finally:
        os.close(fd)
    if len(key) != KEY_BYTES:
        raise NotPrivate(f"{path}: journal key is not {KEY_BYTES} bytes")
    return key


def journal_key(create: bool) -> bytes | None:
    """The operator's journal key (made on first use when `create`)."""
    path = _tree("keys") / "journal.key"
    try:
        return _read_key(path)
    except FileNotFoundError:
        if not create:
            return None
    try:
        fd = create_private(path)
    except FileExistsError:  # another run made it just now
        return _read_key(path)
    with open(fd, "wb") as fh:
        fh.write(os.urandom(KEY_BYTES))
        fh.flush()
        os.fsync(fh.fileno())
    return _read_key(path)


def seal(key: bytes, seq: int, digest: str) -> str:
    return hmac.new(key, f"{seq}:{digest}".encode(), hashlib.sha256).hexdigest()


def head_path(journal_id: str) -> Path:
    return _tree("heads") / f"{journal_id}.head"


class HeadWriter:
    """Keeps `<journal id>.head` at the last two sealed entries."""

    def __init__(self, journal_id: str):
        key = journal_key(create=True)
        if key is None:
            raise NotPrivate("no journal key")
        self._key = key
        self._fd = create_private(head_path(journal_id))
        self._entries: list[tuple[int, bytes]] = []

    def advance(self, seq: int, digest: str, durable: bool) -> None:
        """Seal record `seq` before it is written (a record whose write
        failed is sealed again under the same number: it replaces that entry)."""
        entry = f"{seq:012d} {digest} {seal(self._key, seq, digest)}\n".encode()
        kept = [e for e in self._entries if e[0] != seq][-1:]
        data = b"".join(e[1] for e in kept) + entry
        if os.pwrite(self._fd, data, 0) != len(data):
            raise OSError(28, "short write to the journal's head")
        if durable:
            os.fsync(self._fd)
        self._entries = [*kept, (seq, entry)]

    def close(self) -> None:
        os.close(self._fd)


def read_head(journal_id: str) -> list[HeadEntry] | None:
    """The sealed entries (oldest first), or None when there is no head."""
    try:
        fd = os.open(head_path(journal_id), os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except (FileNotFoundError, NotPrivate):
        return None
    try:
        data = os.read(fd, 4 * _ENTRY_LEN)
    finally:
        os.close(fd)
    entries = []
    for line in data.decode("ascii", "replace").splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[0].isdigit():
            entries.append(HeadEntry(int(parts[0]), parts[1], parts[2]))
    return entries


def authentic(key: bytes, entry: HeadEntry) -> bool:
    return hmac.compare_digest(seal(key, entry.seq, entry.digest), entry.mac)
