"""What the console's screens use of the app that shows them.

The screens are always shown by a RolloutApp (console/tui/app.py), which
imports them; typed by this protocol, a screen reads the app's view and
sends its keys without importing the app back."""
from __future__ import annotations

from typing import Awaitable, Callable, Protocol

from strategies.control import Command
from strategies.events import Event

from ..control.protocol import CommandReply
from ..status_record import ResultRecord, StatusRecord
from ..view_state import FleetView


class RolloutHost(Protocol):
    view: FleetView

    @property
    def session(self) -> object:
        """The Session running the rollout in this process, or None."""
    record: ResultRecord | None  # the run's closing record, once it ended
    detached: bool
    frozen_now: float | None

    @property
    def can_command(self) -> bool: ...

    def repaint(self, force: bool = False) -> None: ...

    def drain(self, budget: float | None = None) -> bool: ...

    def send(self, command: Command, key: str) -> bool: ...

    def journal_tail_fn(self) -> Callable[[str], Awaitable[str]] | None: ...

    def set_view(self, view: FleetView) -> None: ...


class AttachedRun(Protocol):
    """What an app attached to a run in another process talks to
    (console/control/attach.py RemoteRun): its status at connect time, its
    live events until the result record, and its commands."""

    status: StatusRecord | None  # `console status` as the run's control socket answered it

    async def follow(self, on_event: Callable[[Event], None]) -> ResultRecord | None: ...

    async def command(self, name: str) -> CommandReply: ...
