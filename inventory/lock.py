"""The rollout lock: one console per service upstream at a time.

A lock is a file per upstream on every load balancer
(``/var/lib/rollout-console/locks/<upstream>.lock``). It is created
atomically with link(2): the holder record is written to a temp file beside
it, then hard-linked to the lock path, which fails if the path exists. The
record (one JSON line) names the holder: operator user, controller host,
pid, plan, since (UTC), session journal, and a random token that release,
heartbeat and a deliberate break match on, so a console never removes a lock
it does not hold. The file's mtime is the heartbeat (``touch -c``, every
~10 s while the engine runs), read with the LB's own clock, so controller
clock skew does not matter.

A lock is stale when its heartbeat is older than the max age, or when its
holder ran on this very machine and boot (the record's boot id, from
/proc/sys/kernel/random/boot_id, equals ours: a hostname alone is shared by
containers and CI runners) and its pid is gone. A stale lock is reported,
and broken only when asked (``--break-stale-lock``) or when a resumed
session takes over the lock of the very session it resumes. Breaking is
atomic against other consoles: under flock(1) on the LB, the lock is
removed only if it is still the one judged stale (same token, or the same
bytes if unreadable) and, when judged by its heartbeat, still that old.

This module holds the pure parts (record format, staleness, the shell
scripts); the drivers do the I/O.
"""
from __future__ import annotations

import json
import os
import secrets
import shlex
import socket
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Callable

from .driver import DriverError, LockHolder

LOCK_DIR = "/var/lib/rollout-console/locks"
DEFAULT_MAX_AGE = 120.0
HEARTBEAT_INTERVAL = 10.0
RECORD_MAX = 4096


@dataclass(frozen=True)
class LockRecord:
    user: str
    host: str
    pid: int
    plan: str
    since: str
    journal: str
    token: str
    upstream: str = ""
    boot: str = ""  # the holder's boot id: its pid means something only on that machine and boot

    @classmethod
    def new(cls, holder: LockHolder, upstream: str = "") -> LockRecord:
        """A record for this process; `holder` may set user, host, pid,
        plan, journal (anything else is ignored)."""
        return cls(
            user=str(holder.get("user") or os.environ.get("USER") or os.getuid()),
            host=str(holder.get("host") or socket.gethostname()),
            pid=int(holder.get("pid") or os.getpid()),
            plan=str(holder.get("plan") or ""),
            since=str(holder.get("since") or datetime.now(UTC).isoformat(timespec="seconds")),
            journal=str(holder.get("journal") or ""),
            token=str(holder.get("token") or secrets.token_hex(16)),
            upstream=upstream,
            boot=str(holder.get("boot") or boot_id()),
        )

    def to_line(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=True, separators=(",", ":")) + "\n"

    @classmethod
    def parse(cls, text: str) -> LockRecord | None:
        """The record in a lock file, or None if it is not one (torn, foreign)."""
        try:
            data = json.loads(text.strip().splitlines()[0] if text.strip() else "")
        except (ValueError, IndexError):
            return None
        if not isinstance(data, dict):
            return None
        try:
            return cls(user=str(data["user"]), host=str(data["host"]), pid=int(data["pid"]),
                       plan=str(data.get("plan", "")), since=str(data.get("since", "")),
                       journal=str(data.get("journal", "")), token=str(data["token"]),
                       upstream=str(data.get("upstream", "")), boot=str(data.get("boot", "")))
        except (KeyError, TypeError, ValueError):
            return None

    def describe(self) -> str:
        """One line naming the holder."""
        return (f"{self.user}@{self.host} pid {self.pid} since {self.since}"
                + (f" (plan {self.plan})" if self.plan else "")
                + (f" journal {self.journal}" if self.journal else ""))


class LockHeld(DriverError):
    """Another console holds the lock (or a stale one is in the way)."""

    def __init__(self, lb: str, record: LockRecord | None, stale: str | None, raw: str = ""):
        who = record.describe() if record else f"unreadable lock record {raw[:80]!r}"
        if stale:
            msg = (f"rollout lock held by {who}; it looks stale ({stale}): "
                   f"break it with --break-stale-lock")
        else:
            msg = f"rollout lock held by {who}"
        super().__init__(lb, "lock", msg)
        self.record = record
        self.stale = stale


def pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def boot_id() -> str:
    """This machine's boot id (unique per boot, distinct between containers'
    hosts and CI runners that share a hostname); "" if unknown."""
    try:
        with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as f:
            return f.read().strip()
    except OSError:
        return ""


def staleness(record: LockRecord | None, age: float, *, max_age: float = DEFAULT_MAX_AGE,
              this_host: str | None = None, this_boot: str | None = None,
              alive: Callable[[int], bool] = pid_alive) -> str | None:
    """Why a held lock is stale, or None if its holder may be alive.

    `age` is seconds since the last heartbeat (the file's mtime, by the LB's
    clock). A dead pid counts only for a holder on this machine and boot."""
    this_host = this_host or socket.gethostname()
    this_boot = boot_id() if this_boot is None else this_boot
    if (record is not None and record.host == this_host and this_boot and record.boot == this_boot
            and not alive(record.pid)):
        return f"pid {record.pid} on {this_host} is gone"
    if age > max_age:
        return f"no heartbeat for {age:.0f} s (max age {max_age:.0f} s)"
    return None


def lock_path(upstream: str, lock_dir: str = LOCK_DIR) -> str:
    return f"{lock_dir.rstrip('/')}/{upstream}.lock"


def acquire_script(path: str) -> str:
    """Reads the record on stdin. Prints ACQUIRED, or HELD then
    `<now> <mtime>` (LB clock) then the holder's record."""
    q = shlex.quote
    d, lk = q(os.path.dirname(path)), q(path)
    return (f"umask 022; mkdir -p {d} && t=$(mktemp {d}/.lock.XXXXXX) && cat > \"$t\" && "
            f"if ln \"$t\" {lk} 2>/dev/null; then rm -f \"$t\"; echo ACQUIRED; "
            f"else rm -f \"$t\"; echo HELD; echo \"$(date +%s) $(stat -c '%Y %i' {lk} 2>/dev/null || echo 0)\"; "
            f"head -c {RECORD_MAX} {lk} 2>/dev/null; fi")


def owned_script(path: str, token: str, action: str) -> str:
    """Run `action` ("rm -f" or "touch -c") on the lock only if it still holds
    `token`; prints OK or GONE."""
    q = shlex.quote
    return (f"if grep -qF -- {q(token)} {q(path)} 2>/dev/null; then {action} {q(path)} && echo OK; "
            f"else echo GONE; fi")


def break_script(path: str, token: str | None, inode: int, min_age: float) -> str:
    """Remove the lock judged stale, atomically against other consoles:
    under flock(1) on the lock directory, only if it is still that lock (it
    holds `token`; unreadable, it is still inode `inode` and still holds no
    console's record) and its heartbeat is still at least `min_age` seconds old. Prints
    BROKEN or CHANGED."""
    q = shlex.quote
    d, lk = q(os.path.dirname(path)), q(path)
    same = (f"grep -qF -- {q(token)} {lk}" if token is not None else
            f"[ \"$(stat -c %i {lk})\" = {int(inode)} ] && ! grep -qF '\"token\"' {lk}")
    old = f"[ $(( $(date +%s) - $(stat -c %Y {lk}) )) -ge {int(min_age)} ]"
    inner = f"if {same} 2>/dev/null && {old} 2>/dev/null; then rm -f {lk} && echo BROKEN; else echo CHANGED; fi"
    return f"mkdir -p {d} && flock -w 10 {d}/.break sh -c {q(inner)}"


def parse_inode(stdout: str) -> int:
    """The lock file's inode from the HELD branch of acquire_script (0: unknown)."""
    try:
        return int(stdout.split("\n")[1].split()[2])
    except (ValueError, IndexError):
        return 0


def parse_held(stdout: str) -> tuple[float, str]:
    """(age in seconds, record text) from the HELD branch of acquire_script."""
    lines = stdout.split("\n")
    try:
        now, mtime = (int(x) for x in lines[1].split()[:2])
        age = float(max(0, now - mtime)) if mtime else float("inf")
    except (ValueError, IndexError):
        age = float("inf")
    return age, "\n".join(lines[2:])
