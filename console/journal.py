"""Session journals: append-only, hash-chained JSON Lines.

Line 1 is a header (schema, tool version, argv, operator, the plan and
inventory texts with their SHA-256). Each later line is one event with a
sequence number, UTC time, monotonic offset and the hash of the previous
record; the last line is a closing record carrying the final hash. Editing
any byte breaks the chain at that record (`console audit verify`).

Written as events arrive and flushed at once; fsync'd at decisions (phase
changes, gate failures, operator commands, the end) so a crash loses at most
the tail since the last decision, and a reader tolerates a torn last line.
"""
from __future__ import annotations

import fcntl
import getpass
import hashlib
import json
import os
import re
import socket
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO, Callable, Iterator, Mapping

from strategies.events import Event, from_dict

from . import journal_sign
from .journal_header import Close, Header
from .journal_seal import HeadWriter, authentic, journal_key, read_head
from .notify import NotificationDelivered  # noqa: F401 - registers the "notify" kind for reading journals back
from .private import create_private, first_own_tree, private_dir, state_candidates

SCHEMA = 1
GENESIS = "0" * 64
_DURABLE = {"phase", "operator", "run_finished", "alert"}


def default_dir() -> Path:
    """Where journals go unless --record says otherwise: $ROLLOUT_JOURNAL_DIR,
    else a 0700 directory of the effective user's own (console/private.py)."""
    if os.environ.get("ROLLOUT_JOURNAL_DIR"):
        return private_dir(Path(os.environ["ROLLOUT_JOURNAL_DIR"]))
    return first_own_tree(state_candidates("rollout-console", "journals"))


def clear_dead_reserves(directory: Path) -> list[Path]:
    """Remove the disk-full reserves of runs that died (SIGKILL, power loss).
    A live run holds an exclusive flock on its reserve for as long as it
    writes its journal, so a reserve that can be locked has no owner left."""
    removed = []
    for reserve in directory.glob(".*.reserve"):
        try:
            fd = os.open(reserve, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            reserve.unlink(missing_ok=True)
            removed.append(reserve)
        except BlockingIOError:
            pass  # its run is alive
        finally:
            os.close(fd)
    return removed


_HASH_TAIL = re.compile(rb',"hash":"([0-9a-f]{64})"\}\n?$')


def chain(prev: str, body: bytes) -> str:
    """Hash of a record: the previous hash and the record's exact bytes
    (everything but its own trailing hash field), so any edited byte,
    whitespace included, breaks the chain at that record."""
    return hashlib.sha256(prev.encode() + body).hexdigest()


def split_line(raw: bytes) -> tuple[bytes, str] | None:
    """(body bytes as hashed, stored hash) of one journal line."""
    m = _HASH_TAIL.search(raw)
    if not m:
        return None
    return raw[: m.start()] + b"}", m.group(1).decode()


def operator_identity() -> dict[str, str]:
    try:
        user = getpass.getuser()
    except Exception:  # noqa: BLE001 - no passwd entry in some containers
        user = str(os.getuid())
    ssh = os.environ.get("SSH_CLIENT", "").split()
    # SSH_CLIENT is this process's environment: what the session says, not a fact
    return {"user": user, "host": socket.gethostname(), "ssh_client_claimed": ssh[0] if ssh else ""}


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def file_entry(path: str | None, redact: Callable[[str], str]) -> dict[str, str | None]:
    """A file the run read, as its header keeps it: path, SHA-256 and (redacted) text."""
    if not path:
        return {"path": None, "sha256": None, "text": None}
    data = Path(path).read_bytes()
    return {"path": str(path), "sha256": hashlib.sha256(data).hexdigest(),
            "text": redact(data.decode("utf-8", "replace"))}


RESERVE_BYTES = 32 * 1024   # kept free beside the journal for the way out
CLOSE_BYTES = 4 * 1024      # of which this much is kept for the closing record
COMPACT_FIELD = 240         # after a write error, long strings are cut to this


def _compact(value: Any) -> Any:
    if isinstance(value, str) and len(value) > COMPACT_FIELD:
        return value[:COMPACT_FIELD] + f"...[{len(value) - COMPACT_FIELD} chars cut: journal degraded]"
    if isinstance(value, dict):
        return {k: _compact(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_compact(v) for v in value[:50]]
    return value


class JournalWriter:
    """A subscriber that records every event. Use `open_new` to create.

    A write error (a full disk) never leaves a torn record: the file is cut
    back to the last whole record, a reserve file kept beside the journal
    is released, `on_error` is called (the session stops the engine at the
    next safe point), and later events are written compacted while the
    reserve lasts, or counted as lost. The closing record always fits in
    what the reserve keeps back and says how many events were lost."""

    def __init__(self, path: Path, handle: BinaryIO, header: Mapping[str, object], reserve: Path | None = None,
                 reserve_fd: int | None = None):
        self.path = path
        self._fh = handle
        self._seq = 0
        self._prev = GENESIS
        self._mono0 = time.monotonic()
        self.closed = False
        self.error: str | None = None
        self.lost = 0
        self.on_error: Callable[[str], None] | None = None  # called once, at the first write error
        self._reserve = reserve
        self._reserve_fd = reserve_fd  # its flock says "this run is alive" (clear_dead_reserves)
        self._budget = 0
        self._good = 0
        self._seal: HeadWriter | None = None  # made with the header: its hash names the head
        self._write({"type": "header", "schema": SCHEMA, **header}, durable=True)

    @classmethod
    def open_new(cls, path: Path, header: Mapping[str, object]) -> JournalWriter:
        """Create the journal and its reserve, both 0600 (a journal holds every
        command, output and inventory of the run: its operator's alone)."""
        private_dir(path.parent)
        clear_dead_reserves(path.parent)
        reserve = path.with_name(f".{path.name}.reserve")
        reserve_fd = create_private(reserve)
        try:
            fcntl.flock(reserve_fd, fcntl.LOCK_EX)
            os.write(reserve_fd, b"\0" * RESERVE_BYTES)
            os.fsync(reserve_fd)
            handle = open(create_private(path), "wb", buffering=0)  # unbuffered: a failed write leaves nothing pending
        except OSError:
            os.close(reserve_fd)
            reserve.unlink(missing_ok=True)
            raise
        try:
            return cls(path, handle, header, reserve, reserve_fd)
        except OSError:
            handle.close()
            path.unlink(missing_ok=True)  # its head, if made, names a journal that never was
            os.close(reserve_fd)
            reserve.unlink(missing_ok=True)
            raise

    def _release_reserve(self) -> None:
        if self._reserve is not None:
            self._reserve.unlink(missing_ok=True)
            self._reserve = None
        if self._reserve_fd is not None:
            os.close(self._reserve_fd)
            self._reserve_fd = None

    @property
    def records(self) -> int:
        """How many records are in the file so far (header included)."""
        return self._seq

    @property
    def last_hash(self) -> str:
        return self._prev

    def _write(self, record: dict[str, Any], durable: bool = False) -> None:
        record = {"seq": self._seq, "utc": utc_now(),
                  "mono": round(time.monotonic() - self._mono0, 6), "prev": self._prev, **record}
        body = json.dumps(record, separators=(",", ":")).encode()
        digest = chain(self._prev, body)
        line = body[:-1] + f',"hash":"{digest}"}}\n'.encode()
        if self.error is not None and record.get("type") != "close":
            if len(line) > self._budget - CLOSE_BYTES:
                raise OSError(28, "no space left in the journal's reserve")
            self._budget -= len(line)
        try:
            if self._seal is None:
                self._seal = HeadWriter(digest)
            self._seal.advance(self._seq, digest, durable)  # before the record: never behind the journal
            view = memoryview(line)
            while view:
                n = self._fh.write(view)
                view = view[n:]
            if durable:
                os.fsync(self._fh.fileno())
        except OSError:
            self._truncate()
            raise
        self._good += len(line)
        self._prev = digest
        self._seq += 1

    def _truncate(self) -> None:
        """Cut back to the last whole record (drop what a failed write left)."""
        try:
            os.ftruncate(self._fh.fileno(), self._good)
            self._fh.seek(self._good)
        except (OSError, ValueError):
            pass

    def _failed(self, exc: OSError) -> None:
        first = self.error is None
        if first:
            self.error = f"cannot write the journal: {exc.strerror or exc}"
            self._release_reserve()
            self._budget = RESERVE_BYTES
        self.lost += 1
        if first and self.on_error is not None and self.error is not None:
            self.on_error(self.error)

    def __call__(self, event: Event) -> None:
        if self.closed:
            return
        durable = event.kind in _DURABLE or (event.kind == "gate" and getattr(event, "verdict", "") == "fail")
        data = event.to_dict()
        try:
            self._write({"type": "event", "event": _compact(data) if self.error else data}, durable=durable)
        except OSError as exc:
            self._failed(exc)

    def close(self, outcome: str, exit_code: int) -> str:
        """Write the closing record; returns the final hash."""
        if not self.closed:
            record = {"type": "close", "outcome": outcome, "exit_code": exit_code, "records": self._seq}
            if self.error:
                record.update(journal_error=self.error, lost_events=self.lost)
            try:
                self._write(record, durable=True)
            except OSError as exc:
                self._failed(exc)
            self._release_reserve()
            try:
                self._fh.close()
                if self._seal is not None:
                    self._seal.close()
            except OSError:
                pass
            self.closed = True
        return self._prev


def make_header(argv: list[str], plan_path: str | None, inventory_path: str | None,
                simulated: bool, redact: Callable[[str], str], tool_version: str) -> dict[str, object]:
    """The journal's first record: what ran, by whom, from which plan and inventory texts."""
    return {"tool": "rollout-console", "tool_version": tool_version, "argv": [redact(a) for a in argv],
            "operator": operator_identity(), "started": utc_now(), "simulated": simulated,
            "python": sys.version.split()[0],
            "plan": file_entry(plan_path, redact), "inventory": file_entry(inventory_path, redact)}


@dataclass
class Journal:
    """A journal as read back: header, events, closing record, problems."""

    header: Header | None = None
    events: list[Event] = field(default_factory=list)
    records: list[dict[str, object]] = field(default_factory=list)
    close: Close | None = None
    torn_tail: bool = False


def read_records(path: Path) -> Iterator[tuple[int, dict[str, object] | None, bytes]]:
    """(line number, record or None if the line is not a JSON object, raw
    line bytes). A record's fields are checked where they are read."""
    with open(path, "rb") as fh:
        for number, raw in enumerate(fh, 1):
            try:
                record = json.loads(raw.decode("utf-8"))
            except (json.JSONDecodeError, UnicodeDecodeError, RecursionError):
                record = None
            yield number, record if isinstance(record, dict) else None, raw


def _is_json(raw: bytes) -> bool:
    """Whether a line read_records gave no record for is JSON all the same
    (an array, a number: not a record)."""
    try:
        json.loads(raw.decode("utf-8"))
    except (ValueError, UnicodeDecodeError, RecursionError):
        return False
    return True


def read_journal(path: Path) -> Journal:
    """Load a journal for replay; a torn last line is noted, not fatal."""
    journal = Journal()
    rows = list(read_records(path))
    for i, (number, record, raw) in enumerate(rows):
        if record is None:
            json_all_the_same = _is_json(raw)
            if i == len(rows) - 1 and not raw.endswith(b"\n") and not json_all_the_same:
                journal.torn_tail = True
                break
            raise ValueError(f"{path}:{number}: record is " + ("not a JSON object" if json_all_the_same else "not JSON"))
        journal.records.append(record)
        if record.get("type") == "header":
            if record.get("schema") != SCHEMA:
                raise ValueError(f"{path}:{number}: journal schema {record.get('schema')!r}; this console reads "
                                 f"schema {SCHEMA}")
            journal.header = Header.of(record)
        elif record.get("type") == "event":
            event = record.get("event")
            try:
                if not isinstance(event, dict):
                    raise TypeError(f"the event is {type(event).__name__}, not an object")
                journal.events.append(from_dict(event))
            except (AttributeError, KeyError, TypeError, ValueError) as exc:  # a missing field, a wrong type, an unknown kind
                raise ValueError(f"{path}:{number}: not an event this console reads: {exc}") from None
        elif record.get("type") == "close":
            journal.close = Close.of(record)
    if journal.header is None:
        raise ValueError(f"{path}:1: no journal header")
    return journal


@dataclass
class Verification:
    ok: bool
    records: int
    message: str
    final_hash: str | None = None
    # the chain is whole, sealed (or the expected head) and not cut, though
    # perhaps unclosed (the session died): what `console resume` may use
    resumable: bool = False


def head_message(hashes: list[str]) -> bytes:
    """What an SSH signature of the journal covers (console/journal_sign.py)."""
    return journal_sign.message(hashes[0], len(hashes), hashes[-1])


def chain_hashes(path: Path) -> list[str]:
    """Each record's chain hash (as far as the chain holds)."""
    return _chain_of(path)[0]


def _chain_of(path: Path) -> tuple[list[str], dict[str, Any] | None, Verification | None]:
    """(hash of each record, the closing record, a failure naming the first
    bad record or None)."""
    prev = GENESIS
    hashes: list[str] = []
    close = None
    rows = list(read_records(path))
    for i, (number, record, raw) in enumerate(rows):
        count = len(hashes)
        if record is None and not _is_json(raw):
            if i == len(rows) - 1 and not raw.endswith(b"\n"):
                break  # torn as it was written: judged against the head below
            return hashes, None, Verification(False, count, f"{path}:{number}: record is not valid JSON", prev)
        parts = split_line(raw)
        if record is None or parts is None or chain(prev, parts[0]) != parts[1] or record.get("prev") != prev:
            return hashes, None, Verification(False, count, f"{path}:{number}: hash mismatch: record {count} was "
                                              "altered", prev)
        if record.get("seq") != count:
            return hashes, None, Verification(False, count, f"{path}:{number}: sequence {record.get('seq')} where "
                                              f"{count} was expected", prev)
        if close is not None:
            return hashes, None, Verification(False, count, f"{path}:{number}: record {count} after the closing record", prev)
        if record.get("type") == "close":
            close = record
            if record.get("records") != count:
                return hashes, None, Verification(False, count, f"{path}:{number}: the closing record counts "
                                                  f"{record.get('records')} records before it, the journal has {count}", prev)
        prev = parts[1]
        hashes.append(prev)
    return hashes, close, None


def _against_head(path: Path, hashes: list[str]) -> Verification | str:
    """The sealed head's verdict: a failure, or what it says about the end."""
    count = len(hashes)
    key = journal_key(create=False)
    head = read_head(hashes[0])
    if key is None or not head:
        return Verification(False, count, f"{path}: no sealed head for this journal on this machine: its chain "
                            f"cannot be told from a recomputed one (pass --expect with the journal_hash the run "
                            f"reported)", hashes[-1])
    last = head[-1]
    if last.seq > count:
        return Verification(False, count, f"{path}:{count + 1}: cut: the sealed head says {last.seq + 1} records, "
                            f"the journal has {count} (record {count} onwards is missing)", hashes[-1])
    if last.seq < count - 1:
        return Verification(False, count, f"{path}:{last.seq + 2}: record {last.seq + 1} onwards is not covered by "
                            f"the sealed head (written afterwards, not by the session)", hashes[-1])
    entry = next((e for e in head if e.seq == count - 1), None)
    if entry is None or entry.digest != hashes[-1] or not authentic(key, entry):
        return Verification(False, count, f"{path}:{count}: record {count - 1} does not match its sealed head: "
                            f"the journal was rewritten", hashes[-1])
    return "" if last.seq == count - 1 else " (the session died writing the next record: a crash, not a cut)"


def verify(path: Path, expect: str | None = None, allowed_signers: str | None = None) -> Verification:
    """Check the hash chain, sequence and closing count, then the end of
    the chain against its sealed head (or `expect`, a head sent elsewhere,
    or the operator's SSH signature checked with `allowed_signers`); name
    the first bad record, and tell a cut tail from a crash."""
    hashes, close, failure = _chain_of(path)
    if failure is not None:
        return failure
    count = len(hashes)
    if not count:
        return Verification(False, 0, f"{path}: empty journal")
    torn = bool(list(read_records(path))[-1][1] is None)
    if allowed_signers is not None:
        try:
            end = f", signed by {journal_sign.check(path, allowed_signers, head_message(hashes))}"
        except journal_sign.SignError as exc:
            return Verification(False, count, str(exc), hashes[-1])
    elif expect is not None:
        if hashes[-1] != expect:
            return Verification(False, count, f"{path}: the journal ends at {hashes[-1][:16]}..., not at the "
                                f"expected {expect[:16]}... (cut, extended or rewritten)", hashes[-1])
        end = ", the expected head"
    else:
        verdict = _against_head(path, hashes)
        if isinstance(verdict, Verification):
            return verdict
        end = ", sealed head matches" + verdict
    if torn:
        return Verification(False, count, f"{path}:{count + 1}: torn last record (the session did not close){end}",
                            hashes[-1], resumable=True)
    if close is None:
        return Verification(False, count, f"{path}: no closing record (the session did not finish){end}",
                            hashes[-1], resumable=True)
    return Verification(True, count, f"{path}: {count} records, chain intact{end}", hashes[-1], resumable=True)
