"""The interactive console: a Textual app over a Session (live), over a
RemoteRun (`console attach`: a live run in another process, fed from its
journal then its control socket), or over a FleetView built from recorded
events (static/replay, used by snapshots and screenshots).

Live wiring: the engine runs on its own asyncio loop in a dedicated thread
(console/engine_thread.py), so the UI never waits behind its per-host work.
The app subscribes to `session.bus`; the callback (on the engine thread)
only queues the event and posts one coalesced `EventsArrived` message, whose
handler folds the queue into the FleetView a few milliseconds at a time
(DRAIN_BUDGET), so keys are handled between slices of a big batch's events.
Widgets repaint on a fixed-rate timer (REFRESH_HZ), never per event, and
only what changed (see panels.py). Long-lived state is kept out of the
cyclic collector's full collections (`freeze_long_lived`). An
operator key shows its effect at once ("pausing at the next safe point")
while the command crosses to the engine loop. The engine thread outlives the
app, so a detach (or a hangup) can leave the app while the run continues,
and a failing engine cannot quit the app mid-rollout.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import gc
import sys
import time
from collections import deque
from typing import TYPE_CHECKING, Any, Awaitable, Callable

from textual import events
from textual.app import App
from textual.css.query import NoMatches
from textual.message import Message
from textual.widgets import Log

from strategies.control import Command
from strategies.events import Event

from ..engine_thread import EngineThread
from ..view_state import FleetView
from .fleet_table import FleetTable
from .main_screen import MainScreen
from .screens import QuitScreen

if TYPE_CHECKING:  # imported where used: the TUI starts without them
    from ..journal import Journal
    from ..session import Session
    from ..status_record import ResultRecord
    from .host import AttachedRun, RolloutHost
    from .replay import ReplayController

    def _shows_the_screens(app: RolloutApp) -> RolloutHost:
        return app  # mypy holds the app to what its screens use of it (console/tui/host.py)

REFRESH_HZ = 8
DRAIN_BUDGET = 0.008  # seconds of event folding per slice; the UI's other work runs between slices


def freeze_long_lived() -> None:
    """Move every object alive now out of the cyclic collector's reach.

    What is built before the run (the inventory, the plan, the session)
    and by its preflight (the per-host state) lives as long as the run. A
    full collection walks every tracked object while holding the GIL, so
    at 10,000 hosts each one stopped both the engine and the UI for 75 to
    700 ms, some 60 times a run: most of the worst key-to-screen times (a
    key waits for it, and so does the frame that shows the key's effect).
    Frozen, those objects are skipped; reference counting still frees any
    of them that is let go. Measured in bench/tui_tmux.py."""
    gc.freeze()


class EventsArrived(Message):
    """Coalesced: at most one in the queue however many events arrive."""


class EngineDone(Message):
    pass


class RolloutApp(App[int]):
    CSS_PATH = "app.tcss"
    TITLE = "rollout console"
    ENABLE_COMMAND_PALETTE = False

    def __init__(self, session: Session | None = None, view: FleetView | None = None, *,
                 refresh_hz: float = REFRESH_HZ, now: float | None = None,
                 journal_tail: Callable[[str], Awaitable[str]] | None = None, record: ResultRecord | None = None,
                 show_operator_keys: bool = False, replay: ReplayController | None = None,
                 remote: AttachedRun | None = None) -> None:
        super().__init__()
        self.session = session
        self.replay = replay  # a ReplayController: `console replay FILE` (see replay_screen.py)
        self.remote = remote  # a RemoteRun: `console attach RUN` (see control/attach.py)
        self.hung_up = False
        self.view = view or FleetView()
        if session is not None:
            self.view.inventory_engine = session.inventory_engine
            self.view.time_scale = session.time_scale
        self.refresh_hz = refresh_hz
        self.frozen_now = now
        self._journal_tail = journal_tail
        self.record: ResultRecord | None = record
        self.detached = False
        self.show_operator_keys = show_operator_keys or session is not None or remote is not None
        self.engine: EngineThread | None = None
        self._clock: Callable[[], float] = time.monotonic
        # attached: the run's clock at connect time and its pace, so the elapsed time ticks between events
        self._remote_clock: tuple[float, float, float] | None = None
        if remote is not None and remote.status is not None:
            self._remote_clock = (self._clock(), remote.status["elapsed"], remote.status["time_scale"])
            self.view.time_scale = self._remote_clock[2]
        self.engine_task: asyncio.Future[ResultRecord] | None = None  # the run's result record, on this loop
        self._queue: deque[Event] = deque()
        self._posted = False
        self._closed = False
        self._painted_revision = -1
        self._painted_phase: tuple[object, ...] | None = None  # what decided the keys last offered (_show_keys)
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
        shown = (self.view.phase, self.view.pending)
        started = self.view.started
        if not self.drain(DRAIN_BUDGET):
            self._fold_more_later()
        if not started and self.view.started and self.session is not None:
            freeze_long_lived()  # the preflight's per-host state, built on the engine thread
        if (self.view.phase, self.view.pending) != shown:  # e.g. "paused": at once, not at the next tick
            self.show_phase()

    def _fold_more_later(self) -> None:
        """More events to fold: post for them from the loop's next turn,
        not into this pump's queue (which it would read at once), so every
        other pump (a key on its way to a binding, a repaint) goes first."""
        if not self._posted and self._loop is not None:
            self._posted = True
            self._loop.call_soon(self.post_message, EventsArrived())

    def drain(self, budget: float | None = None) -> bool:
        """Fold queued events into the view: all of them, or for about
        `budget` seconds. Whether the queue is empty."""
        queue, apply = self._queue, self.view.apply
        if budget is None:
            while queue:
                apply(queue.popleft())
            return True
        deadline = time.perf_counter() + budget
        while queue:
            for _ in range(min(64, len(queue))):
                apply(queue.popleft())
            if time.perf_counter() > deadline:
                return not queue
        return True

    def send(self, command: Command, key: str) -> bool:
        """An operator key: ask the engine; it acts at the next safe point.
        Attached to a run in another process, the command goes over its
        control socket; the answer comes back as an event like any other."""
        if self.remote is not None:
            self.run_worker(self._send_remote(self.remote, command), group="command", exit_on_error=False)
            return True
        if self.session is None or self.engine is None:
            self.notify("replay: read-only, no engine to command", severity="warning")
            return False
        # Shown at once: the command crosses to the engine loop, which may be busy with a batch; the
        # view's own rules (check_action) already said it applies. The engine's answer comes back as
        # an OperatorCommand event; a refusal is told and undoes the mark.
        view, before = self.view, self.view.pending
        mark = view.expect_command(command.value)
        answer = self.engine.command(command, f"key:{key}")

        def answered(future: concurrent.futures.Future[bool]) -> None:
            if future.cancelled() or future.exception() is not None or not future.result():
                if view.pending == mark:
                    view.pending = before
                self.notify(f"{command.value} refused (see the event log)", severity="warning")
                self.repaint(force=True)
        answer.add_done_callback(lambda f: self._from_engine(answered, f))
        self.show_phase()
        return True

    def _from_engine(self, callback: Callable[..., Any], *args: Any) -> None:
        """Run `callback(*args)` on the UI loop (called on the engine thread)."""
        if self._closed or self._loop is None:
            return
        try:
            self._loop.call_soon_threadsafe(callback, *args)
        except RuntimeError:
            pass  # the UI's loop is gone: nobody to tell

    async def _send_remote(self, remote: AttachedRun, command: Command) -> None:
        from ..control.client import ControlError

        try:
            reply = await remote.command(command.value)
        except ControlError as exc:
            self.notify(f"{command.value}: {exc}", severity="error")
            return
        if not reply["accepted"]:
            self.notify(f"{command.value} refused: {reply['detail']}", severity="warning")

    async def _follow_remote(self, remote: AttachedRun) -> None:
        """Attached: the run's live events, until it ends or goes away."""
        record = await remote.follow(self._on_bus_event)
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
        if stop and self.engine is not None:
            self.engine.command(Command.ABORT, f"signal {signal_name}")
        self.exit()

    def journal_tail_fn(self) -> Callable[[str], Awaitable[str]] | None:
        if self._journal_tail is not None:
            return self._journal_tail
        if self.session is None or self.engine is None:
            return None
        session, thread = self.session, self.engine

        async def tail(key: str) -> str:  # the driver lives on the engine loop
            return await asyncio.wrap_future(thread.run(session.journal_tail(key)))
        return tail

    # -- lifecycle ---------------------------------------------------------------
    def get_default_screen(self) -> MainScreen:
        if self.replay is not None:
            from .replay_screen import ReplayScreen

            return ReplayScreen(self.replay, id="main")
        return MainScreen(id="main")

    def on_mount(self) -> None:
        self.on_resize()
        session = self.session
        if session is not None:
            # after the first frame: the engine's preflight (every host probed) shares this loop and
            # would otherwise hold the first paint back until it is done
            self.call_after_refresh(lambda: self._start_engine(session))
        if self.remote is not None:
            self.run_worker(self._follow_remote(self.remote), group="follow", exit_on_error=False)
        self.repaint(force=True)
        self.set_interval(1.0 / self.refresh_hz, self.repaint, name="refresh")

    def _start_engine(self, session: Session) -> None:
        self.engine = EngineThread(session)
        self.engine_task = asyncio.wrap_future(self.engine.done)
        self.engine.done.add_done_callback(lambda _f: self._closed or self.post_message(EngineDone()))
        self.engine.start()

    def on_resize(self, _event: events.Resize | None = None) -> None:
        self.screen.set_class(self.size.width < 110 or self.size.height < 30, "-narrow")

    def on_engine_done(self, _message: EngineDone) -> None:
        self.drain()
        assert self.engine is not None
        exc = self.engine.done.exception()
        if exc is not None:
            self.notify(f"internal error: {exc!r}", severity="error", timeout=30)
        elif self.record is None:
            self.record = self.engine.done.result()  # the engine thread closed the journal
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
        if self.engine is not None and self.view.active and self.view.started:
            try:
                return max(self.view.elapsed, self.engine.elapsed())
            except Exception:  # noqa: BLE001
                pass
        if self._remote_clock is not None and self.record is None and self.view.active and self.view.started:
            since, elapsed, scale = self._remote_clock
            return max(self.view.elapsed, elapsed + (self._clock() - since) * scale)
        return self.view.elapsed

    def repaint(self, force: bool = False) -> None:
        """One refresh tick: repaint the main screen from the FleetView."""
        if not self.drain(DRAIN_BUDGET):
            self._fold_more_later()
        self.ticks += 1
        main = self._main()
        if main is None:
            return
        live = (self.session is not None or self.remote is not None) and self.view.active
        if not force and not live and self.view.revision == self._painted_revision:
            return
        self._painted_revision = self.view.revision
        try:
            main.repaint(self.now(), self.record)
            self._write_log(main)
        except NoMatches:  # the app is closing (the run ended as it left): nothing to paint on
            return
        self._show_keys(main)

    def show_phase(self) -> None:
        """A key's effect or a change of phase ("pausing at the next safe
        point", "paused"): the header and the keys now, as the view stands:
        not after folding one more slice of queued events (up to DRAIN_BUDGET,
        and a big batch queues many), and without the table, panels and log,
        whose redraw (a layout pass when the log grows) the frame would wait
        for. They follow at the next tick."""
        main = self._main()
        if main is None:
            return
        try:
            main.show_phase(self.now())
        except NoMatches:
            return
        self._show_keys(main)

    def _main(self) -> MainScreen | None:
        main = self.screen_stack[0] if self.screen_stack else None
        return main if isinstance(main, MainScreen) and main.is_mounted else None

    def _show_keys(self, main: MainScreen) -> None:
        shown = (self.view.phase, self.view.pending, self.record is None)  # what decides the keys offered
        if self._painted_phase != shown:
            self._painted_phase = shown
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


def run_app(session: Session, on_hangup: str = "stop") -> int:
    """Run the interactive console; return the session's exit code.

    The engine runs in its own thread (console/engine_thread.py). Detaching
    (`d`, or quitting while the rollout is active) forks the run into the
    background from that thread: this process returns to the shell, the
    child goes on writing only to the journal and the control socket. A
    hangup (SIGHUP) leaves the app at once and, per `on_hangup`, stops the
    run at the next safe point or lets it go on; a SIGTERM stops it. Either
    way the journal is closed by the run's end."""
    import signal

    from ..detach import HangupSafeStream
    from ..session import _tell

    if sys.__stderr__ is not None:  # what Textual draws on (typeshed has it Final: Python's own copy of stderr)
        sys.__stderr__ = HangupSafeStream(sys.__stderr__)  # type: ignore[misc,assignment]
    app = RolloutApp(session)
    freeze_long_lived()  # the inputs and the session, 10,000 hosts' worth at 10,000 hosts

    async def main() -> int:
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGHUP, lambda: app.hang_up("SIGHUP", stop=on_hangup == "stop"))
        loop.add_signal_handler(signal.SIGTERM, lambda: app.hang_up("SIGTERM", stop=True))
        await app.run_async()
        if app.record is not None:
            return int(app.record["exit_code"])
        engine = app.engine
        if engine is None:  # left before the first frame started the engine: start it now, headless
            engine = app.engine = EngineThread(session)
            engine.start()
        if not app.hung_up:  # detached by the operator
            engine.detach(on_hangup)  # the parent exits from the engine thread; here only if the run ended first
        else:
            def interrupted(name: str) -> None:
                if name != "SIGHUP" or on_hangup == "stop":
                    engine.command(Command.ABORT, f"signal {name}")
                    _tell(f"{name}: stopping at the next safe point")
            for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
                loop.add_signal_handler(sig, interrupted, sig.name)
        try:
            record = await asyncio.wrap_future(engine.done)
        except Exception as exc:  # noqa: BLE001 - the engine thread itself failed
            _tell(f"internal error: {exc!r}")
            return 1
        return int(record["exit_code"])

    return asyncio.run(main())


async def replay_journal_tail(key: str) -> str:
    return f"{key}: not available in replay (the unit's journal is not recorded)\n"


def make_replay_app(controller: ReplayController) -> RolloutApp:
    """A read-only app over a ReplayController (no session, no engine)."""
    return RolloutApp(view=controller.view, now=controller.clock, journal_tail=replay_journal_tail,
                      replay=controller)


def run_replay(journal: Journal, *, autoplay: bool = True) -> int:
    """`console replay FILE`: the console fed from a recording. Exit 0."""
    from .replay import ReplayController

    controller = ReplayController.from_journal(journal)
    controller.playing = autoplay and bool(controller.events)
    make_replay_app(controller).run()
    return 0


__all__ = ["RolloutApp", "make_replay_app", "run_app", "run_replay"]
