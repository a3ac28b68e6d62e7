"""`console attach [RUN]`: the same TUI on a run in another process.

The view is rebuilt from the run's journal, then follows the live events
from its control socket. The socket says how many journal records came
before its stream (it registers the viewer and counts in the same loop
step), so every event is shown once: the first N from the file, the rest
live. Any number of viewers may attach; leaving one never touches the run.
"""
from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Callable

from strategies.events import Event, from_dict

from ..journal import read_records
from ..status_record import ResultRecord, StatusRecord, parse
from .client import ControlError, send_command, subscribe
from .protocol import CommandReply, ProtocolError, decode


def journal_events(path: Path, before: int) -> list[Event]:
    """The events among the journal's first `before` records."""
    events = []
    for _number, record, _raw in read_records(path):
        if record is None:
            continue
        seq, event = record.get("seq"), record.get("event")
        if isinstance(seq, int) and seq < before and record.get("type") == "event" and isinstance(event, dict):
            events.append(from_dict(event))
    return events


class RemoteRun:
    """What an attached app talks to: `connect` (events so far), `follow`
    (live events until the result), `command`."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.status: StatusRecord | None = None  # as the run answered when connected
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def connect(self) -> list[Event]:
        self._reader, self._writer, hello = await subscribe(self.path)
        self.status = hello["status"]
        return journal_events(Path(hello["journal"]), hello["journal_records"])

    async def follow(self, on_event: Callable[[Event], None]) -> ResultRecord | None:
        """Feed live events to `on_event`; the run's result record, or None
        if the connection was lost first."""
        assert self._reader is not None and self._writer is not None
        try:
            while line := await self._reader.readline():
                message = decode(line)
                event = message.get("event")
                if message.get("type") == "event" and isinstance(event, dict):
                    on_event(from_dict(event))
                elif message.get("type") == "result":
                    return parse(ResultRecord, {k: v for k, v in message.items() if k != "type"})
            return None
        except (ConnectionError, ProtocolError, ValueError):  # a MalformedRecord is a ValueError
            return None
        finally:
            self._writer.close()

    async def command(self, name: str) -> CommandReply:
        return await send_command(self.path, name)


def main_attach(selector: str | None) -> int:
    """Attach the TUI to a live run; exit 0 when the viewer leaves."""
    from ..exitcodes import Exit
    from ..tui.app import RolloutApp
    from ..view_state import FleetView
    from .client import find_run
    from .errors import report_error, report_stale

    async def main() -> int:
        try:
            path, _status = find_run(selector, report_stale)
            remote = RemoteRun(path)
            events = await remote.connect()
        except ControlError as exc:
            return report_error(exc)
        app = RolloutApp(view=FleetView().apply_all(events), remote=remote)
        await app.run_async()
        return Exit.OK

    return asyncio.run(main())
