"""The replay controller: a recorded session's events, a position in them,
a playback speed and a playing flag. No Textual, no clock: playback is
driven by `advance(dt)` with wall seconds, so every method unit-tests.

The panels at position i are exactly `FleetView().apply_all(events[:i])`:
FleetView is a pure reducer, so a forward seek folds the next events into
the current view and a backward seek rebuilds it from scratch.
"""
from __future__ import annotations

import bisect
import copy
import re
from typing import Iterable

from strategies.events import Event

from ..journal import Journal
from ..journal_header import Header
from ..view_state import FleetView

SPEEDS = (1, 2, 5, 10, 20, 50, 100)
CHECKPOINT_EVERY = 2000  # a backward seek replays at most this many events from a saved copy
_TIME = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*s\s*$", re.IGNORECASE)
_INDEX = re.compile(r"^\s*(\d+)\s*$")


class ReplayController:
    """`position` is the number of events applied (0 = nothing yet, N = all).
    `clock` is the recording's time (the events' `at` seconds) at the
    position; during playback it runs between events at `speed` x."""

    def __init__(self, events: Iterable[Event], *, simulated: bool = False, torn_tail: bool = False,
                 source: str = "", closed: bool = True) -> None:
        self.events: list[Event] = list(events)
        self.times: list[float] = [float(e.at) for e in self.events]
        self.simulated = simulated
        self.torn_tail = torn_tail
        self.closed = closed
        self.source = source
        self.position = 0
        self.speed = SPEEDS[0]
        self.playing = False
        self.view = FleetView()
        self.clock = self.times[0] if self.times else 0.0
        self.checkpoint_every = CHECKPOINT_EVERY
        self._checkpoints: dict[int, FleetView] = {0: FleetView()}  # position -> view there (never handed out)

    @classmethod
    def from_journal(cls, journal: Journal, source: str = "") -> ReplayController:
        header = journal.header or Header()
        if not source:
            source = f"{header.plan.path or '?'} by {header.operator.label()} at {header.started or '?'}"
        return cls(journal.events, simulated=header.simulated, torn_tail=journal.torn_tail,
                   source=source, closed=journal.close is not None)

    # -- position ------------------------------------------------------------
    @property
    def total(self) -> int:
        return len(self.events)

    @property
    def at_end(self) -> bool:
        return self.position >= self.total

    def time_at(self, position: int) -> float:
        """The recording's time when `position` events have been applied."""
        if not self.times:
            return 0.0
        return self.times[max(0, min(position, self.total) - 1)]

    def view_at(self, position: int) -> FleetView:
        """A fresh FleetView of the first `position` events: a copy of the
        nearest checkpoint before it, then the events after that (the same
        state as folding events[:position] into a new FleetView)."""
        position = max(0, min(position, self.total))
        start = max(k for k in self._checkpoints if k <= position)
        view = copy.deepcopy(self._checkpoints[start])
        every = self.checkpoint_every
        for i in range(start, position):
            view.apply(self.events[i])
            if (i + 1) % every == 0 and i + 1 not in self._checkpoints:
                self._checkpoints[i + 1] = copy.deepcopy(view)
        return view

    def seek(self, position: int) -> FleetView:
        """Go to `position` (clamped to 0..N); returns the view there. Forward
        folds the next events into the current view; backward rebuilds."""
        position = max(0, min(position, self.total))
        if position >= self.position:
            self.view.apply_all(self.events[self.position: position])
        else:
            self.view = self.view_at(position)
        self.position = position
        self.clock = self.time_at(position)
        if self.at_end:
            self.playing = False
        return self.view

    def step(self) -> FleetView:
        return self.seek(self.position + 1)

    def step_back(self) -> FleetView:
        return self.seek(self.position - 1)

    def index_for_time(self, seconds: float) -> int:
        """The position that shows the recording at `seconds`: every event
        with at <= seconds applied."""
        return bisect.bisect_right(self.times, seconds)

    def seek_time(self, seconds: float) -> FleetView:
        view = self.seek(self.index_for_time(seconds))
        if self.times:
            self.clock = max(self.time_at(self.position), min(seconds, self.times[-1]))
        return view

    def parse_target(self, text: str) -> tuple[str, float] | None:
        """'42' -> ('index', 42); '12.5s' -> ('time', 12.5); else None."""
        m = _INDEX.match(text)
        if m:
            return "index", int(m.group(1))
        m = _TIME.match(text)
        if m:
            return "time", float(m.group(1))
        return None

    def goto(self, text: str) -> FleetView | None:
        """Seek to what the operator typed; None if it is not understood."""
        target = self.parse_target(text)
        if target is None:
            return None
        kind, value = target
        return self.seek(int(value)) if kind == "index" else self.seek_time(value)

    # -- speed and play ------------------------------------------------------------
    def faster(self) -> int:
        self.speed = next((s for s in SPEEDS if s > self.speed), SPEEDS[-1])
        return self.speed

    def slower(self) -> int:
        self.speed = next((s for s in reversed(SPEEDS) if s < self.speed), SPEEDS[0])
        return self.speed

    def toggle(self) -> bool:
        """Play / pause; playing at the end starts again from the beginning."""
        if self.playing:
            self.playing = False
        else:
            if self.at_end:
                self.seek(0)
            self.playing = bool(self.events)
        return self.playing

    def advance(self, dt: float) -> int:
        """Playback: move the clock by `dt` wall seconds times the speed and
        apply every event due by then; returns how many were applied."""
        if not self.playing or self.at_end:
            self.playing = False
            return 0
        self.clock += max(0.0, dt) * self.speed
        due = bisect.bisect_right(self.times, self.clock)
        start = self.position
        if due > start:
            clock = self.clock
            self.seek(due)
            self.clock = max(clock, self.clock)
        if self.at_end:
            self.playing = False
        return self.position - start

    def status(self) -> str:
        return f"event {self.position}/{self.total} at {self.clock:.1f}s, speed {self.speed}x"


__all__ = ["ReplayController", "SPEEDS"]
