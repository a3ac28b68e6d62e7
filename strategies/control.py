"""Run control: operator commands, safe points, waits and promotion.

Commands (pause, resume, promote, rollback, abort) arrive at any moment
from the TUI, the control socket or a signal; they are acted on only at
safe points, where every instance is either serving on one version or
deliberately out of nginx, so no interrupt leaves a host half-drained.
Strategies see this through the `Control` protocol (strategies/context.py).
"""
from __future__ import annotations

import asyncio
import enum
from typing import Any

from inventory.clock import Clock

from .events import Emit, Notice, OperatorCommand, Phase, PhaseChanged, Sender


class Command(enum.StrEnum):
    PAUSE = "pause"
    RESUME = "resume"
    PROMOTE = "promote"
    PROMOTE_FULL = "promote_full"
    ROLLBACK = "rollback"
    ABORT = "abort"


# Why pause and resume are refused at a manual gate: the run is already held
# there, and going on from it is a promotion (a decision), not a resume.
AWAITING_PROMOTION = "paused awaiting promotion: use promote (or rollback, abort)"


class Stop(Exception):
    """Raised at a safe point when an operator asked to roll back or abort."""

    def __init__(self, command: Command, reason: str):
        super().__init__(reason)
        self.command = command
        self.reason = reason


class GateFailed(Exception):
    """The release (or the fleet under it) failed a check: the plan's
    on_failure policy applies."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class AwaitingPromotion(Exception):
    """Headless run reached an indefinite pause without --auto-promote."""


class RunControl:
    """The state machine behind the operator's keys. `emit(event)` publishes
    on the run's event stream."""

    def __init__(self, clock: Clock, emit: Emit, *, interactive: bool, auto_promote: bool):
        self.clock = clock
        self.emit = emit
        self.interactive = interactive
        self.auto_promote = auto_promote
        self.phase = Phase.PREFLIGHT
        self.finished = False
        self.fatal: str | None = None
        self._requested: tuple[Command, str] | None = None
        self._running = asyncio.Event()
        self._running.set()
        self._promoted = asyncio.Event()
        self._promote_full = False
        self._wake = asyncio.Event()
        self._alarm: str | None = None  # a critical alert between windows: on_failure at the next safe point
        self._awaiting_promotion = False  # paused at a manual gate: resume refers the operator to promote

    def set_phase(self, phase: Phase, reason: str = "", awaiting_promotion: bool = False) -> None:
        self.phase = phase
        self._awaiting_promotion = awaiting_promotion
        self.emit(PhaseChanged(phase=phase, reason=reason, awaiting_promotion=awaiting_promotion))

    # -- commands ------------------------------------------------------------
    def command(self, cmd: Command, source: str = "operator", sender: Sender | None = None) -> bool:
        """Ask for something; acted on at the next safe point. Returns
        whether the command applies in the current state. `sender`
        identifies who sent it from another shell (journalled)."""
        accepted, detail = self._accept(cmd)
        self.emit(OperatorCommand(command=cmd.value, source=source, accepted=accepted, detail=detail,
                                  sender=dict(sender or {})))
        return accepted

    def _accept(self, cmd: Command) -> tuple[bool, str]:
        if self.finished:
            return False, "the run has finished"
        if cmd in (Command.ROLLBACK, Command.ABORT):
            if self._requested is not None or self.phase == Phase.ROLLING_BACK:
                return False, "already stopping"
            self._requested = (cmd, f"{cmd.value} requested by operator")
            self._wake_up()
            return True, "at the next safe point"
        if cmd in (Command.PAUSE, Command.RESUME) and self._awaiting_promotion:
            return False, AWAITING_PROMOTION
        if cmd == Command.PAUSE:
            if not self._running.is_set():
                return False, "already paused"
            self._running.clear()
            return True, "at the next safe point"
        if cmd == Command.RESUME:
            if self._running.is_set():
                return False, "not paused"
            self._wake_up()
            return True, ""
        if cmd in (Command.PROMOTE, Command.PROMOTE_FULL):
            self._promote_full = self._promote_full or cmd == Command.PROMOTE_FULL
            self._promoted.set()
            self._wake_up()
            return True, "skipping the remaining steps" if cmd == Command.PROMOTE_FULL else "next step"
        return False, "unknown command"

    def _wake_up(self) -> None:
        self._running.set()
        self._wake.set()

    def fail_stop(self, reason: str) -> None:
        """Something the run depends on broke (e.g. the journal cannot be
        written): stop at the next safe point, ending FAILED (a human must
        look), without starting further changes."""
        if self.finished or self.fatal:
            return
        self.fatal = reason
        self.emit(Notice(level="error", message=f"{reason}: stopping at the next safe point"))
        if self._requested is None:
            self._requested = (Command.ABORT, reason)
        self._wake_up()

    def alarm(self, reason: str) -> None:
        """A critical finding outside an analysis window (clients' error
        rate): on_failure applies at the next safe point. The first wins."""
        if self._alarm is None:
            self._alarm = reason
            self._wake.set()

    @property
    def alarmed(self) -> bool:
        return self._alarm is not None

    def pause_here(self) -> None:
        """on_failure: pause: the next safe point waits for the operator."""
        self._running.clear()

    def forget_request(self) -> None:
        """A rollback has started: the command that asked for it is done."""
        self._requested = None

    @property
    def promote_full(self) -> bool:
        return self._promote_full

    @property
    def requested(self) -> tuple[Command, str] | None:
        """A rollback or abort accepted and not yet acted on."""
        return self._requested

    def undisturbed(self) -> bool:
        """No operator command, critical alarm or fatal error waits for a
        safe point: the run may go on without stopping at one."""
        return self._requested is None and self._alarm is None and self._running.is_set()

    def take_promotion(self) -> bool:
        """Consume a pending promote (an analysis window ends as a pass)."""
        if self._promoted.is_set():
            self._promoted.clear()
            return True
        return False

    # -- safe points and waits -------------------------------------------------
    def _raise_alarm(self) -> None:
        if self._alarm:
            reason, self._alarm = self._alarm, None
            raise GateFailed(reason)

    async def safe_point(self) -> None:
        """Honour rollback/abort/pause and critical alarms. Call only where
        the fleet is safe."""
        if self._requested:
            raise Stop(*self._requested)
        self._raise_alarm()
        if not self._running.is_set():
            previous = self.phase
            self.set_phase(Phase.PAUSED, "operator")
            while not self._running.is_set():
                await self._wait_wake(None)
            if self._requested:
                raise Stop(*self._requested)
            self.set_phase(previous, "resumed")

    async def _wait_wake(self, seconds: float | None) -> None:
        """Wait for a command, or `seconds` of engine-clock time."""
        self._wake.clear()
        sleeper = asyncio.ensure_future(self.clock.sleep(seconds)) if seconds is not None else None
        waiter = asyncio.ensure_future(self._wake.wait())
        pending: set[asyncio.Future[Any]] = {waiter} | ({sleeper} if sleeper else set())
        try:
            await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in pending:
                task.cancel()

    async def wait(self, seconds: float, promotable: bool = False) -> None:
        """Sleep on the engine clock, waking at once for commands; time spent
        paused does not count. A `promotable` wait (a canary's timed pause)
        ends early on promote or promote-full: the operator's "next step"."""
        end = self.clock.now() + seconds
        while True:
            await self.safe_point()
            if promotable and self.take_promotion():
                return
            remaining = end - self.clock.now()
            if remaining <= 0:
                return
            before = self.clock.now()
            await self._wait_wake(remaining)
            if not self._running.is_set():
                paused_at = before
                await self.safe_point()
                end += self.clock.now() - paused_at

    async def wait_for_promotion(self, title: str) -> bool:
        """An indefinite pause. Returns True when promoted; raises
        AwaitingPromotion in headless mode without auto-promote."""
        if self.take_promotion() or self.auto_promote:
            return True
        if not self.interactive:
            raise AwaitingPromotion(title)
        self.set_phase(Phase.PAUSED, f"{title}: waiting for promote", awaiting_promotion=True)
        while not self._promoted.is_set():
            await self._wait_wake(None)
            if self._requested:
                raise Stop(*self._requested)
            self._raise_alarm()
        self._promoted.clear()
        self.set_phase(Phase.RUNNING, "promoted")
        return True


__all__ = ["AWAITING_PROMOTION", "AwaitingPromotion", "Command", "GateFailed", "RunControl", "Stop"]
