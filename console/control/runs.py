"""Where control sockets live, and finding a live run among them.

`$XDG_RUNTIME_DIR/rollout-console/`, else the state directory
(`$XDG_STATE_HOME` or `~/.local/state`)`/rollout-console/control/`; always
0700, and each only when it is the effective user's own real directory
(console/private.py: root with another user's XDG_RUNTIME_DIR neither
follows their symlinks nor uses their directory). A run's socket is `<run id>.sock`; when the run ends it leaves
`<run id>.result.json` (0600) so `console status` can still say how a
detached run ended. A socket nobody listens on (its run was SIGKILLed) is
stale: the first client that meets it removes it.
"""
from __future__ import annotations

import os
import socket
import time
from pathlib import Path
from typing import Callable

from ..private import NotPrivate, first_own_tree, state_candidates
from ..status_record import EndedRun, StatusRecord

SOCKET_SUFFIX = ".sock"
RESULT_SUFFIX = ".result.json"
RESULTS_KEPT = 24 * 3600  # seconds a finished run's result stays listed
RECENT = 3600  # seconds an ended run stays in plain `console status`
RECENT_MOST = 5  # ended runs plain `console status` lists at most


# A socket's path must fit sun_path (108 bytes with its NUL); a run id is at
# most 24 characters of plan name, '-' and a pid of up to 7 digits.
SUN_PATH = 107
LONGEST_NAME = len("/") + 24 + 1 + 7 + len(SOCKET_SUFFIX)


def control_dir() -> Path:
    """The first candidate that is the effective user's own and leaves room
    for a socket's name in sun_path: one too long (a deep XDG_RUNTIME_DIR)
    is passed over, since no run could listen there, and the server and its
    clients pass over the same ones."""
    candidates = [(os.environ.get("XDG_RUNTIME_DIR"), ("rollout-console",)),
                  *state_candidates("rollout-console", "control")]
    fits = [(base, parts) for base, parts in candidates
            if base and len(os.fsencode(os.path.join(base, *parts))) + LONGEST_NAME <= SUN_PATH]
    if not fits:
        raise NotPrivate("no control directory short enough for a socket (sun_path holds "
                         f"{SUN_PATH} bytes): " + ", ".join(os.path.join(b, *p) for b, p in candidates if b))
    return first_own_tree(fits)


def socket_path(run_id: str) -> Path:
    return control_dir() / f"{run_id}{SOCKET_SUFFIX}"


def result_path(run_id: str) -> Path:
    return control_dir() / f"{run_id}{RESULT_SUFFIX}"


def is_stale(path: Path) -> bool:
    """True when nothing listens on the socket (its run died)."""
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(str(path))
    except ConnectionRefusedError:
        return True
    except OSError:
        return False  # gone already, or not ours to judge
    finally:
        probe.close()
    return False


def live_sockets(on_stale: Callable[[Path], None] = lambda path: None) -> list[Path]:
    """The sockets of live runs; stale ones are removed (and reported)."""
    found = []
    for path in sorted(control_dir().glob(f"*{SOCKET_SUFFIX}")):
        if is_stale(path):
            path.unlink(missing_ok=True)
            on_stale(path)
        else:
            found.append(path)
    return found


def recent_results() -> list[Path]:
    """Result files of runs that ended in the last day; older ones removed."""
    keep = []
    for path in sorted(control_dir().glob(f"*{RESULT_SUFFIX}")):
        try:
            if time.time() - path.stat().st_mtime > RESULTS_KEPT:
                path.unlink(missing_ok=True)
            else:
                keep.append(path)
        except FileNotFoundError:
            pass
    return keep


def recent_ended(ended: list[EndedRun], now: float, everything: bool = False) -> tuple[list[EndedRun], int]:
    """(the ended runs plain `console status` lists, how many it leaves
    out): newest first, those that ended within RECENT seconds, at most
    RECENT_MOST; `everything` (--all) lists every kept one. A day of test
    runs would otherwise bury the live run an operator is looking for."""
    newest = sorted(ended, key=lambda s: -s["ended"])
    if everything:
        return newest, 0
    shown = [s for s in newest if now - s["ended"] <= RECENT][:RECENT_MOST]
    return shown, len(newest) - len(shown)


def matches(status: StatusRecord, selector: str) -> bool:
    """A run is named by its run id, controller pid, upstream, plan (path or
    name) or journal path. The id is `<plan name>-<pid that started it>`; a
    detached run's controller is a forked child with a pid of its own, so
    either pid names it."""
    started_by = status["run_id"].rsplit("-", 1)[-1]
    if selector in (status["run_id"], str(status["pid"]), started_by, status["upstream"], status["plan_name"]):
        return True
    candidates = {status["plan"], status["journal"]}
    try:
        resolved = str(Path(selector).resolve())
    except OSError:
        resolved = selector
    return selector in candidates or resolved in candidates
