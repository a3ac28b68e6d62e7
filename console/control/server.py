"""The control server every run serves on its Unix socket.

It is a subscriber of the run's EventBus, like the TUI and the journal: it
keeps its own FleetView (for `status` and for which commands apply now) and
forwards each event to the attached viewers. Commands go to
`Engine.command` with the sender's identity, so the journal records who
sent each one. A slow viewer is dropped rather than slowing the rollout.
"""
from __future__ import annotations

import asyncio
import json
import os
import socket
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from strategies.control import Command
from strategies.events import Event, EventBus, Notice, OperatorCommand, Sender

from ..private import write_private
from ..status_record import EndedRecord, ResultRecord, StatusRecord
from ..view_state import COMMANDS, FleetView
from . import peer as peers
from .protocol import MAX_CONNECTIONS, READ_TIMEOUT, REQUEST_LIMIT, CommandReply, ErrorReply, ProtocolError, decode, encode, error
from .runs import result_path, socket_path

if TYPE_CHECKING:
    from strategies.plan import Plan

    from ..journal import JournalWriter

class RunInputs(Protocol):
    """What the control server reports of a run's inputs (console.session.Inputs)."""

    @property
    def plan(self) -> Plan: ...

    @property
    def plan_path(self) -> str: ...

    @property
    def version(self) -> str: ...


class LiveRun(Protocol):
    """What the control server uses of the run it serves (console.session.Session)."""

    @property
    def bus(self) -> EventBus: ...

    @property
    def inputs(self) -> RunInputs: ...

    @property
    def journal(self) -> JournalWriter: ...

    @property
    def simulated(self) -> bool: ...

    @property
    def time_scale(self) -> float: ...

    def elapsed(self) -> float: ...

    def command(self, cmd: Command, source: str = "operator", sender: Sender | None = None) -> bool: ...

    def emit(self, event: Event) -> None: ...


SLOW_VIEWER_BYTES = 8 * 1024 * 1024  # a viewer this far behind is dropped


class ControlServer:
    """Create with the session, `await start()` when the run starts,
    `close(record)` when it has finished."""

    def __init__(self, session: LiveRun, run_id: str) -> None:
        self.session = session
        self.run_id = run_id
        self.path: Path | None = None
        self.view = FleetView()
        self.record: ResultRecord | None = None
        self.started = datetime.now(UTC).isoformat(timespec="seconds")
        self._viewers: set[asyncio.StreamWriter] = set()
        self._connections = 0
        self._server: asyncio.base_events.Server | None = None
        self._last_operator: OperatorCommand | None = None
        session.bus.subscribe(self)

    # -- the bus side ---------------------------------------------------------------
    def __call__(self, event: Event) -> None:
        self.view.apply(event)
        if isinstance(event, OperatorCommand):
            self._last_operator = event
        if self._viewers:
            line = encode({"type": "event", "event": event.to_dict()})
            for writer in list(self._viewers):
                self._send(writer, line)

    def _send(self, writer: asyncio.StreamWriter, line: bytes) -> None:
        if writer.is_closing() or writer.transport.get_write_buffer_size() > SLOW_VIEWER_BYTES:
            self._viewers.discard(writer)
            writer.close()
            return
        writer.write(line)

    # -- lifecycle ---------------------------------------------------------------------
    async def start(self) -> Path:
        """Listen on `<run id>.sock`: bound under a temporary name, made 0600,
        then renamed into place, so no client ever finds it half made (and
        takes it for stale). It is bound inside control_dir(), checked to be
        the effective user's own 0700 directory, so no other user can reach
        it before its mode is set."""
        final = socket_path(self.run_id)
        tmp = final.with_name(f".{final.name}.{os.getpid()}.tmp")
        tmp.unlink(missing_ok=True)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.bind(str(tmp))
            os.chmod(tmp, 0o600)
            sock.listen(16)
            os.replace(tmp, final)
        except OSError:
            sock.close()
            tmp.unlink(missing_ok=True)
            raise
        self._server = await asyncio.start_unix_server(self._serve, sock=sock, limit=REQUEST_LIMIT)
        self.path = final
        return final

    def close(self, record: ResultRecord) -> None:
        """The run ended: leave the result for `console status`, tell the
        viewers, stop listening and remove the socket."""
        self.record = record
        try:
            ended: EndedRecord = {**self.status(), **record}
            write_private(result_path(self.run_id), json.dumps(ended).encode())
        except OSError:
            pass  # the journal holds the result too
        line = encode({"type": "result", **record})
        for writer in list(self._viewers):
            if not writer.is_closing():
                writer.write(line)
                writer.close()
        self._viewers.clear()
        if self._server is not None:
            self._server.close()
        if self.path is not None:
            self.path.unlink(missing_ok=True)

    # -- requests ------------------------------------------------------------------------
    def status(self) -> StatusRecord:
        """`console status`: the run's status (strategies/status.py, folded
        from the events this server saw, with what the view derives from
        it) and what this process knows of the run."""
        s = self.session
        plan = s.inputs.plan
        return {**self.view.state(),
                "run_id": self.run_id, "pid": os.getpid(), "user": peers.user_name(os.getuid()),
                "plan": str(Path(s.inputs.plan_path).resolve()), "plan_name": plan.name,
                "upstream": plan.nginx.upstream, "journal": str(s.journal.path.resolve()),
                "strategy": plan.strategy, "service": plan.service, "version": s.inputs.version,
                "simulated": s.simulated, "started": self.started, "elapsed": round(s.elapsed(), 1),
                "time_scale": s.time_scale,  # an attached clock ticks from elapsed
                "viewers": len(self._viewers)}

    def command(self, name: object, peer: Sender) -> CommandReply | ErrorReply:
        if not isinstance(name, str) or name not in COMMANDS:
            return error("bad_request", f"unknown command {name!r}; one of {', '.join(COMMANDS)}")
        cmd = Command(name)
        run, source = self.session, peers.source_label(peer)
        refusal = self.view.command_refusal(cmd.value)
        if refusal is not None:
            run.emit(OperatorCommand(command=cmd.value, source=source, accepted=False, detail=refusal,
                                        sender=peer))
            return {"type": "reply", "command": cmd.value, "accepted": False, "detail": refusal,
                    "phase": self.view.phase}
        accepted = run.command(cmd, source=source, sender=peer)
        detail = self._last_operator.detail if self._last_operator is not None else ""
        return {"type": "reply", "command": cmd.value, "accepted": accepted, "detail": detail,
                "phase": self.view.phase}

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """One connection: capped in number, given READ_TIMEOUT to send its
        request, and answered (never a traceback on the run's stderr) whatever
        it sends."""
        self._connections += 1
        try:
            if self._connections > MAX_CONNECTIONS:
                writer.write(encode(error("busy", f"more than {MAX_CONNECTIONS} control connections open")))
                return
            await self._answer(reader, writer)
        except asyncio.CancelledError:
            # The run's loop is ending (asyncio.run cancels what is left, e.g. a viewer's
            # read): the viewer already has the result line. Python 3.11's stream server
            # calls task.exception() on a cancelled handler and prints that as a traceback,
            # so the handler ends normally here; nothing else awaits it.
            pass
        except Exception as exc:  # noqa: BLE001 - a bad client must not reach the run's stderr
            if not writer.is_closing():
                writer.write(encode(error("internal", f"{type(exc).__name__}")))
        finally:
            self._connections -= 1
            self._viewers.discard(writer)
            writer.close()

    async def _answer(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            peer = peers.identify(writer.get_extra_info("socket"))
            if not peers.may_control(peer):
                self.session.emit(Notice(level="warning", message=(
                    f"control socket: refused uid {peer['uid']} ({peer['user']}): only the run's owner or root")))
                writer.write(encode(error("denied", f"uid {peer['uid']} ({peer['user']}) may not control this "
                                                    f"run: only its owner ({peers.user_name(os.getuid())}) or root")))
                return
            try:
                request = decode(await asyncio.wait_for(reader.readline(), READ_TIMEOUT))
            except TimeoutError:
                writer.write(encode(error("timeout", f"no request within {READ_TIMEOUT:g} s")))
                return
            op = request.get("op")
            if op == "status":
                writer.write(encode({"type": "status", **self.status()}))
            elif op == "command":
                writer.write(encode(self.command(request.get("command"), peer)))
            elif op == "subscribe":
                await self._follow(reader, writer)
            else:
                writer.write(encode(error("bad_request", f"unknown op {op!r}")))
            await writer.drain()
        except ProtocolError as exc:
            writer.write(encode(error("bad_request", str(exc))))
        except (asyncio.LimitOverrunError, ValueError):
            writer.write(encode(error("bad_request", f"request longer than {REQUEST_LIMIT} bytes")))
        except (ConnectionError, asyncio.IncompleteReadError):
            pass

    async def _follow(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """A viewer: how far the journal already goes (read those from the
        file), then every later event, live, until the run ends or the
        viewer leaves. Registered in the same loop step the count is taken,
        so no event falls between the file and the stream."""
        journal = self.session.journal
        writer.write(encode({"type": "subscribed", "journal": str(journal.path.resolve()),
                             "journal_records": journal.records, "status": self.status()}))
        if self.record is not None:
            writer.write(encode({"type": "result", **self.record}))
            return
        self._viewers.add(writer)
        while await reader.read(4096):  # a viewer only listens; EOF means it left
            pass
