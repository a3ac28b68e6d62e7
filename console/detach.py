"""Leaving the terminal: a detached run writes only to its journal and its
control socket, so a closed terminal or a dropped SSH session neither stops
nor kills it.

`leave_terminal` forks: the parent tells the operator where the run went
and exits 0 (the shell gets its prompt back); the child starts a new
session (setsid: no controlling terminal, so no SIGHUP) with stdin, stdout
and stderr on /dev/null, and carries on with the same engine. `quiet_stdio`
is the in-place half, for a terminal that is already gone (a hangup).
"""
from __future__ import annotations

import os
import signal
import sys
import threading
from typing import Callable, TextIO

HANGUP_POLICIES = ("stop", "detach")
DEFAULT_ON_HANGUP = "stop"


def quiet_stdio() -> None:
    """Point fds 0, 1 and 2 at /dev/null: nothing more reaches (or is read
    from) the terminal, and writes never fail with EIO on a hung-up tty."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    os.close(null)


def leave_terminal(announce: Callable[[int], str]) -> Callable[[], None]:
    """Fork into the background. The parent waits until the child calls the
    returned `ready()` (its control socket listens) or dies, prints
    `announce(child pid)` and exits 0 (1 if the child died first). Returns
    in the child only.

    Safe inside a running asyncio loop: the parent only prints and _exits;
    the child, which inherits the loop (its epoll set, sockets and tasks),
    tells asyncio that the loop runs in this pid now (asyncio refuses a loop
    whose pid changed, and from 3.12 forgets it at fork), puts back the
    signal wakeup fd, and replaces the loop's default executor, whose worker
    threads fork did not copy (a DNS lookup would otherwise wait forever).
    Called from a thread other than the main one (the TUI's engine thread),
    the child goes on in that thread alone, which CPython makes the child's
    main thread: it may then install signal handlers on its loop."""
    import asyncio  # here, not at the top: `console --help` reads this module's constants
    from concurrent.futures import ThreadPoolExecutor

    sys.stdout.flush()
    sys.stderr.flush()
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        loop = None  # not in a loop yet: asyncio.run makes a fresh one in the child
    wakeup = -1
    if threading.current_thread() is threading.main_thread():  # the TUI forks from its engine thread
        wakeup = signal.set_wakeup_fd(-1)
        signal.set_wakeup_fd(wakeup, warn_on_full_buffer=False)
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid:
        os.close(write_fd)
        with os.fdopen(read_fd, "rb") as pipe:
            ok = pipe.read(1) == b"1"
        if ok:
            print(announce(pid), flush=True)
        else:
            print(f"console: the detached run (pid {pid}) ended before it was ready; see its journal",
                  file=sys.stderr, flush=True)
        os._exit(0 if ok else 1)
    os.close(read_fd)
    os.setsid()
    quiet_stdio()
    if loop is not None:
        asyncio.events._set_running_loop(loop)
        if wakeup != -1:
            signal.set_wakeup_fd(wakeup, warn_on_full_buffer=False)
        loop.set_default_executor(ThreadPoolExecutor())

    def ready() -> None:
        try:
            os.write(write_fd, b"1")
            os.close(write_fd)
        except OSError:
            pass  # told already
    return ready


class HangupSafeStream:
    """The stream Textual draws on (it writes `sys.__stderr__` from a
    thread), made to drop writes once the terminal is gone. Textual's
    writer thread dies at the first EIO of a hung-up terminal, and the UI
    thread then blocks for ever on that thread's full queue, so the app
    could never leave in order; through this stream the writes after a
    hangup simply go nowhere."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self.gone = False

    def write(self, text: str) -> int:
        if not self.gone:
            try:
                return self._stream.write(text)
            except OSError:
                self.gone = True
        return len(text)

    def flush(self) -> None:
        if not self.gone:
            try:
                self._stream.flush()
            except OSError:
                self.gone = True

    def __getattr__(self, name: str) -> object:
        return getattr(self._stream, name)
