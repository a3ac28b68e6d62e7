"""Shell for one nginx reload whose end can be proven.

`nginx -s reload` makes the master start new workers, sleep about 100 ms,
and only then tell the old workers to stop accepting. In that window both
generations accept new connections on the same sockets, so a marker that
already answers the new generation does not mean every new request gets
the new config: a drained backend can still be picked by an old worker.
So the reload lists the worker processes it replaces, and after the marker
answers, the driver waits until each of those has left the accepting state
(exited, or retitled "worker process is shutting down", which closes its
listening sockets; it may still finish requests it already holds, which is
what the engine's drain wait is for).

Workers are found through /proc, which every Linux host has (procps may not
be installed); PIDs come back as text and are checked to be digits before
they are ever put into a command.
"""
from __future__ import annotations

import re

# an accepting worker's title; a retiring one reads "... is shutting down"
_WORKER = "nginx: worker process"
_LIST = ("for d in /proc/[0-9]*; do "
         "[ \"$(tr -d '\\000' < \"$d/cmdline\" 2>/dev/null)\" = '" + _WORKER + "' ]"
         " && echo \"${d#/proc/}\"; done")
LIST_WORKERS = _LIST  # prints the PIDs of the accepting workers
RELOAD = f"{_LIST}; nginx -s reload"
_PID = re.compile(r"\d{1,10}")
POLL_SECONDS = 0.02


def old_workers(stdout: str) -> list[int]:
    """The PIDs RELOAD printed (the workers accepting before the reload)."""
    return [int(tok) for tok in stdout.split() if _PID.fullmatch(tok)]


def _until_none(pids: str, seconds: float, still: str) -> str:
    """Shell: poll until `still` (a test of "$t", the title of /proc/$p)
    holds for none of the PIDs in `pids` (shell words): exit 0, or print
    the ones it still holds for and exit 1 after `seconds`."""
    rounds = max(1, int(seconds / POLL_SECONDS))
    return (f"i=0; while :; do live=; for p in {pids}; do "
            f"t=\"$(tr -d '\\000' < /proc/$p/cmdline 2>/dev/null)\"; {still} && live=\"$live $p\"; done; "
            f"[ -z \"$live\" ] && exit 0; "
            f"i=$((i+1)); [ $i -ge {rounds} ] && {{ echo $live; exit 1; }}; "
            f"sleep {POLL_SECONDS}; done")


def _until_retired(pids: str, seconds: float) -> str:
    """Shell: poll until none of the PIDs in `pids` (shell words) is an
    accepting worker: exit 0, or print the ones still accepting and exit 1
    after `seconds`."""
    return _until_none(pids, seconds, f"[ \"$t\" = '{_WORKER}' ]")


def wait_exited(pids: list[int], seconds: float) -> str:
    """A command that exits 0 once none of `pids` is an nginx worker any
    more, or 1 after `seconds`, printing the ones left. A retired worker
    still forwards the requests it accepted under the previous config, and
    on a loaded LB it did so up to 0.9 s after it stopped accepting (soak
    seed 9 run 274: to green units a rollback had just stopped); only its
    exit proves nothing more goes where that config sent it."""
    if not pids:
        return "true"
    return _until_none(" ".join(str(int(p)) for p in pids), seconds,
                       f"case \"$t\" in '{_WORKER}'*) true;; *) false;; esac")


def wait_retired(pids: list[int], seconds: float) -> str:
    """A command that exits 0 once none of `pids` is an accepting nginx
    worker, or 1 after `seconds`, printing the ones still accepting."""
    if not pids:
        return "true"
    return _until_retired(" ".join(str(int(p)) for p in pids), seconds)


def reload_and_settle(seconds: float = 5.0) -> str:
    """One command for set-up code (sandbox resets, benchmarks): reload and
    return once the previous workers stopped accepting, so the next request
    meets the new config. (The engine verifies its own changes in two steps,
    with the marker in between: see SshFleet.lb_apply.)"""
    return f"(old=$({_LIST}); nginx -s reload && {_until_retired('$old', seconds)})"
