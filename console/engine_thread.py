"""The interactive console's engine, on its own asyncio loop in a dedicated
thread, so the UI never waits behind the engine's per-host work (a
5,000-host batch is tens of thousands of loop callbacks, and on a shared
loop every key and every frame waited for them).

Everything that touches the engine runs on the engine loop: commands
(`command`), the unit journal tail (`run`), the session's finish (the
journal's closing record and the control socket's result). Events cross to
the UI through the bus subscriber the app installs (a deque and one
coalesced, thread-safe message). `done` is the run's result record.

Detach forks the process from this thread (`detach`, run as a callback on
the engine loop): fork keeps only the calling thread, and in the child
CPython makes that thread the main thread, so the engine loop simply goes
on there, signal handlers can be installed on it, and the parent's UI
exits. When the run ends the child exits with the run's code.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import os
import sys
import threading
from typing import TYPE_CHECKING, Callable, Coroutine, TypeVar

from strategies.control import Command

if TYPE_CHECKING:
    from .session import Session
    from .status_record import ResultRecord

T = TypeVar("T")


class EngineThread:
    """Create with a Session, `start()`; `done` holds the result record."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.loop = asyncio.new_event_loop()
        self.done: concurrent.futures.Future[ResultRecord] = concurrent.futures.Future()
        self._exit_when_done = False  # the detached child: nothing else left to return to
        self.thread = threading.Thread(target=self._main, name="rollout-engine", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def _main(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            record = self.loop.run_until_complete(self._host())
        except BaseException as exc:  # noqa: BLE001 - told to the UI; the journal may stay open
            if not self.done.done():
                self.done.set_exception(exc)
            record = None
        if self._exit_when_done:
            for stream in (sys.stdout, sys.stderr):
                try:
                    stream.flush()
                except (OSError, ValueError):
                    pass
            os._exit(record["exit_code"] if record else 1)

    async def _host(self) -> ResultRecord:
        result, error = None, None
        try:
            result = await self.session.run()
        except Exception as exc:  # noqa: BLE001 - shown as the result (exit 1), the journal still closed
            error = f"internal error: {exc!r}"
        record = self.session.finish(result, error)
        self.done.set_result(record)
        return record

    # -- from the UI thread ----------------------------------------------------------
    def call(self, fn: Callable[..., T], *args: object) -> concurrent.futures.Future[T]:
        """`fn(*args)` on the engine loop; its result as a future."""
        future: concurrent.futures.Future[T] = concurrent.futures.Future()

        def run() -> None:
            if future.set_running_or_notify_cancel():
                try:
                    future.set_result(fn(*args))
                except Exception as exc:  # noqa: BLE001 - handed to the caller
                    future.set_exception(exc)
        self.loop.call_soon_threadsafe(run)
        return future

    def run(self, coro: Coroutine[object, object, T]) -> concurrent.futures.Future[T]:
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def command(self, cmd: Command, source: str) -> concurrent.futures.Future[bool]:
        return self.call(lambda: self.session.command(cmd, source=source))

    def elapsed(self) -> float:
        return self.session.elapsed()

    def detach(self, on_hangup: str) -> None:
        """Move the run into the background: fork from the engine thread
        (see the module docstring). Returns in the parent only if the fork
        could not be scheduled; the parent process exits from the engine
        thread once the child is ready."""
        from .detach import leave_terminal
        from .session import _tell, install_interrupts

        def leave() -> None:
            ready = leave_terminal(self.session.detached_notice)  # returns in the child only
            self._exit_when_done = True
            install_interrupts(self.session, lambda name: _tell(f"{name}: stopping at the next safe point"),
                               on_hangup)
            ready()
        self.loop.call_soon_threadsafe(leave)
        self.thread.join()


__all__ = ["EngineThread"]
