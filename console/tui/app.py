"""The interactive console: a Textual app over a Session (live), over a
RemoteRun (`console attach`: a live run in another process, fed from its
journal then its control socket), or over a FleetView built from recorded
events (static/replay, used by snapshots and screenshots).

Live wiring: the app subscribes to `session.bus`; the callback only queues
the event and posts one coalesced `EventsArrived` message, whose handler
folds the queue into the FleetView (pure, cheap). Widgets repaint on a
fixed-rate timer (REFRESH_HZ), never per event. The engine runs as an
asyncio task on the app's loop, owned by `run_app`'s loop rather than by a
Textual worker, so that a detach (or a hangup) can leave the app while the
engine continues, and so a failing engine cannot quit the app mid-rollout.
"""
from __future__ import annotations

import asyncio
import sys
from collections import deque
from typing import Any, Awaitable, Callable

from textual.app import App
from textual.message import Message
from textual.widgets import Log

from strategies.control import Command
from strategies.events import Event

from ..view_state import FleetView
from .fleet_table import FleetTable
from .main_screen import MainScreen
from .screens import QuitScreen

REFRESH_HZ = 8


class EventsArrived(Message):
    """Coalesced: at most one in the queue however many events arrive."""


class EngineDone(Message):
    pass


class RolloutApp(App[int]):
    CSS_PATH = "app.tcss"
    TITLE = "rollout console"
    ENABLE_COMMAND_PALETTE = False

    def __init__(self, session: Any = None, view: FleetView | None = None, *, refresh_hz: float = REFRESH_HZ,
                 now: float | None = None, journal_tail: Callable[[str], Awaitable[str]] | None = None,
                 record: dict | None = None, show_operator_keys: bool = False, replay: Any = None,
                 remote: Any = None) -> None:
        super().__init__()
        self.session = session
        self.replay = replay  # a ReplayController: `console replay FILE` (see replay_screen.py)
        self.remote = remote  # a RemoteRun: `console attach RUN` (see control/attach.py)
        self.hung_up = False
        self.view = view or FleetView()
        if session is not None:
            self.view.inventory_engine = getattr(session, "inventory_engine", "")
        self.refresh_hz = refresh_hz
        self.frozen_now = now
        self._journal_tail = journal_tail
        self.record: dict | None = record
        self.detached = False
        self.show_operator_keys = show_operator_keys or session is not None or remote is not None
        self.engine_task: asyncio.Task | None = None
        self._queue: deque[Event] = deque()
        self._posted = False
        self._closed = False
        self._painted_revision = -1
        self._logged = 0
        self.ticks = 0
        if session is not None:
            session.bus.subscribe(self._on_bus_event)

    # -- wiring -------------------------------------------------------------
    @property
    def can_command(self) -> bool:
        return self.show_operator_keys and self.record is None

    def _on_bus_event(self, event: Event) -> None:
        if self._closed:
            return
        self._queue.append(event)
        if not self._posted:
            self._posted = True
            self.post_message(EventsArrived())

    def on_events_arrived(self, _message: EventsArrived) -> None:
        self._posted = False
        self.drain()

    def drain(self) -> None:
        queue = self._queue
        while queue:
            self.view.apply(queue.popleft())

    def send(self, command: Command, key: str) -> bool:
        """An operator key: ask the engine; it acts at the next safe point.
        Attached to a run in another process, the command goes over its
        control socket; the answer comes back as an event like any other."""
        if self.remote is not None:
            self.run_worker(self._send_remote(command), group="command", exit_on_error=False)
            return True
        if self.session is None:
            self.notify("replay: read-only, no engine to command", severity="warning")
            return False
        accepted = self.session.engine.command(command, source=f"key:{key}")
        if not accepted:
            self.notify(f"{command.value} refused (see the event log)", severity="warning")
        self.drain()
        self.repaint(force=True)
        return accepted

    async def _send_remote(self, command: Command) -> None:
        from ..control.client import ControlError

        try:
            reply = await self.remote.command(command.value)
        except ControlError as exc:
            self.notify(f"{command.value}: {exc}", severity="error")
            return
        if not reply["accepted"]:
            self.notify(f"{command.value} refused: {reply['detail']}", severity="warning")

    async def _follow_remote(self) -> None:
        """Attached: the run's live events, until it ends or goes away."""
        record = await self.remote.follow(self._on_bus_event)
        self.drain()
        if record is None:
            self.notify("the run's controller went away (see `console status`)", severity="error", timeout=30)
        else:
            self.record = record
        self.repaint(force=True)
        self.screen.refresh_bindings()

    def hang_up(self, signal_name: str, stop: bool) -> None:
        """The terminal went away (SIGHUP) or SIGTERM arrived: leave the app
        without another byte to the terminal; `run_app` then stops the run
        at a safe point or lets it go on detached."""
        from ..detach import quiet_stdio

        quiet_stdio()
        self.hung_up = True
        if stop and self.session is not None:
            self.session.engine.command(Command.ABORT, source=f"signal {signal_name}")
        self.exit()

    def journal_tail_fn(self) -> Callable[[str], Awaitable[str]] | None:
        if self._journal_tail is not None:
            return self._journal_tail
        if self.session is None:
            return None
        return self.session.engine.journal_tail

    # -- lifecycle ---------------------------------------------------------------
    def get_default_screen(self) -> MainScreen:
        if self.replay is not None:
            from .replay_screen import ReplayScreen

            return ReplayScreen(self.replay, id="main")
        return MainScreen(id="main")

    def on_mount(self) -> None:
        self.on_resize()
        if self.session is not None:
            # after the first frame: the engine's preflight (every host probed) shares this loop and
            # would otherwise hold the first paint back until it is done
            self.call_after_refresh(self._start_engine)
        if self.remote is not None:
            self.run_worker(self._follow_remote(), group="follow", exit_on_error=False)
        self.repaint(force=True)
        self.set_interval(1.0 / self.refresh_hz, self.repaint, name="refresh")

    def _start_engine(self) -> None:
        self.engine_task = asyncio.ensure_future(self.session.run())
        self.engine_task.add_done_callback(lambda _t: self._closed or self.post_message(EngineDone()))

    def on_resize(self, _event=None) -> None:
        self.screen.set_class(self.size.width < 110 or self.size.height < 30, "-narrow")

    def on_engine_done(self, _message: EngineDone) -> None:
        self.drain()
        result, error = None, None
        task = self.engine_task
        if task is not None and not task.cancelled():
            exc = task.exception()
            if exc is not None:
                error = f"internal error: {exc!r}"
            else:
                result = task.result()
        elif task is not None:
            error = "the engine task was cancelled"
        if self.record is None and self.session is not None:
            self.record = self.session.finish(result, error)
        if isinstance(self.screen, QuitScreen):
            self.pop_screen()  # the run ended under the dialog: nothing left to choose, `q` quits
        self.repaint(force=True)
        self.screen.refresh_bindings()

    def on_unmount(self) -> None:
        self._closed = True

    # -- refresh -------------------------------------------------------------------
    def now(self) -> float:
        if self.frozen_now is not None:
            return self.frozen_now
        if self.session is not None and self.view.active and self.view.started:
            try:
                return max(self.view.elapsed, self.session.engine.elapsed())
            except Exception:  # noqa: BLE001
                pass
        return self.view.elapsed

    def repaint(self, force: bool = False) -> None:
        """One refresh tick: repaint the main screen from the FleetView."""
        self.drain()
        self.ticks += 1
        main = self.screen_stack[0] if self.screen_stack else None
        if not isinstance(main, MainScreen) or not main.is_mounted:
            return
        live = self.session is not None and self.view.active
        if not force and not live and self.view.revision == self._painted_revision:
            return
        shown = (self.view.phase, self.view.pending, self.record is None)  # what decides the footer's keys
        phase_changed = getattr(self, "_painted_phase", None) != shown
        self._painted_revision = self.view.revision
        self._painted_phase = shown
        main.repaint(self.now(), self.record)
        self._write_log(main)
        if phase_changed:
            main.refresh_bindings()

    def set_view(self, view: FleetView) -> None:
        """Show another FleetView (replay: a backward seek rebuilds it) and
        repaint now; the event log is rewritten from the new view."""
        main = self.screen_stack[0] if self.screen_stack else None
        if view is not self.view:
            self.view = view
            self._logged = 0
            if isinstance(main, MainScreen) and main.is_mounted:
                main.query_one(FleetTable).view = view
                main.query_one("#log", Log).clear()
        self.repaint(force=True)

    def _write_log(self, main: MainScreen) -> None:
        view = self.view
        new = view.events_total - self._logged
        if new <= 0:
            return
        items = list(view.events)[-min(new, len(view.events)):]
        self._logged = view.events_total
        log = main.query_one("#log", Log)
        log.write_lines((f"[{at:7.1f}s] {text}" for at, _kind, text in items), scroll_end=not log.has_focus)
        # Once Log holds max_lines, write_lines marks the lines *before* its pruning as changed: the
        # new lines would never reach the terminal. Repaint the (visible part of the) log instead.
        log.refresh()


def run_app(session: Any, on_hangup: str = "stop") -> int:
    """Run the interactive console; return the session's exit code.

    Detaching (`d`, or quitting while the rollout is active) forks the run
    into the background (see console/detach.py): this process returns to
    the shell, the child awaits the engine writing only to the journal and
    the control socket. A hangup (SIGHUP) leaves the app at once and, per
    `on_hangup`, stops the run at the next safe point or lets it go on; a
    SIGTERM stops it. Either way the journal is closed by the run's end."""
    import signal

    from ..detach import HangupSafeStream, leave_terminal
    from ..session import finish_headless

    sys.__stderr__ = HangupSafeStream(sys.__stderr__)  # what Textual draws on; see HangupSafeStream
    app = RolloutApp(session)

    async def main() -> int:
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGHUP, lambda: app.hang_up("SIGHUP", stop=on_hangup == "stop"))
        loop.add_signal_handler(signal.SIGTERM, lambda: app.hang_up("SIGTERM", stop=True))
        await app.run_async()
        task = app.engine_task
        if app.record is not None:
            return app.record["exit_code"]
        if not app.hung_up:  # detached by the operator
            leave_terminal(session.detached_notice)()
        return await finish_headless(session, None, task if task is not None else session.run(),
                                     on_hangup="detach" if app.hung_up and on_hangup == "detach" else "stop")

    return asyncio.run(main())


async def replay_journal_tail(key: str) -> str:
    return f"{key}: not available in replay (the unit's journal is not recorded)\n"


def make_replay_app(controller: Any) -> RolloutApp:
    """A read-only app over a ReplayController (no session, no engine)."""
    return RolloutApp(view=controller.view, now=controller.clock, journal_tail=replay_journal_tail,
                      replay=controller)


def run_replay(journal: Any, *, autoplay: bool = True) -> int:
    """`console replay FILE`: the console fed from a recording. Exit 0."""
    from .replay import ReplayController

    controller = ReplayController.from_journal(journal)
    controller.playing = autoplay and bool(controller.events)
    make_replay_app(controller).run()
    return 0


__all__ = ["RolloutApp", "make_replay_app", "run_app", "run_replay"]
