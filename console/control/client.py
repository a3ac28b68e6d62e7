"""The client side of the control socket: find a run, ask it something.

Blocking calls for the one-shot commands (`status`, `pause`, ...), async
ones for `attach`, which follows the event stream while the TUI runs."""
from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Mapping, TypeVar

from ..status_record import EndedRecord, EndedRun, MalformedRecord, StatusRecord, parse
from .protocol import LINE_LIMIT, CommandReply, ProtocolError, Subscribed, decode, encode
from .runs import live_sockets, matches, recent_results

if TYPE_CHECKING:
    import asyncio

TIMEOUT = 10.0


class ControlError(Exception):
    """`code`: "no_run" (nothing matches, or it is gone), "ambiguous",
    "denied" (the socket refused this user), "bad_request", "protocol"."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


M = TypeVar("M")


def _checked(reply: dict[str, object]) -> dict[str, object]:
    if reply.get("type") == "error":
        raise ControlError(str(reply.get("code", "protocol")), str(reply.get("message", "error")))
    return reply


def _reply(kind: type[M], path: Path, reply: dict[str, object]) -> M:
    """A run's reply checked to be a `kind` (console/status_record.py parse)."""
    try:
        return parse(kind, _checked(reply))
    except MalformedRecord as exc:
        raise ControlError("protocol", f"{path}: malformed reply: {exc}") from None


def _connect_error(path: Path, exc: OSError) -> ControlError:
    if isinstance(exc, PermissionError):
        return ControlError("denied", f"{path}: permission denied (the run belongs to another user)")
    return ControlError("no_run", f"{path}: the run is gone ({exc.strerror or exc})")


def request(path: Path, message: Mapping[str, object], timeout: float = TIMEOUT) -> dict[str, object]:
    """One request, one reply."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        try:
            sock.connect(str(path))
        except OSError as exc:
            raise _connect_error(path, exc) from None
        try:
            try:
                sock.sendall(encode(message))
            except (BrokenPipeError, ConnectionResetError):
                pass  # the run answered (a refusal) and closed before reading: read its answer
            line = sock.makefile("rb").readline()
        except OSError as exc:
            raise ControlError("no_run", f"{path}: the run went away: {exc}") from None
        if not line:
            raise ControlError("no_run", f"{path}: the run closed the connection")
        try:
            return _checked(decode(line))
        except ProtocolError as exc:
            raise ControlError("protocol", f"{path}: {exc}") from None
    finally:
        sock.close()


def _unreadable(exc: OSError) -> ControlError:
    """The control directory cannot be used: it belongs to another user
    (XDG_RUNTIME_DIR or the state directory pointing at theirs), or worse."""
    where = exc.filename or "the control directory"
    if isinstance(exc, PermissionError):
        return ControlError("denied", f"{where}: permission denied (it belongs to another user; runs are "
                                      f"controlled by their owner or root)")
    return ControlError("no_run", f"{where}: {exc.strerror or exc}")


def status_of(path: Path) -> StatusRecord:
    """The live run's status (its `type` line dropped)."""
    reply = request(path, {"op": "status"})
    return _reply(StatusRecord, path, {k: v for k, v in reply.items() if k != "type"})


def ask_command(path: Path, command: str) -> CommandReply:
    """Send an operator command; the run's answer (accepted or refused, and why)."""
    return _reply(CommandReply, path, request(path, {"op": "command", "command": command}))


def _quiet(path: Path, problem: str) -> None:
    """The default for a malformed run or file: skipped without a word."""


def live_runs(on_stale: Callable[[Path], None] = lambda p: None,
              on_malformed: Callable[[Path, str], None] = _quiet) -> list[tuple[Path, StatusRecord]]:
    """(socket, status) of every live run of this user; a run whose answer
    is malformed is skipped and told to `on_malformed`."""
    runs = []
    try:
        sockets = live_sockets(on_stale)
    except OSError as exc:
        raise _unreadable(exc) from None
    for path in sockets:
        try:
            runs.append((path, status_of(path)))
        except ControlError as exc:
            if exc.code == "protocol":
                on_malformed(path, str(exc))
            continue  # else it ended between the listing and the question
    return runs


def finished_runs(on_malformed: Callable[[Path, str], None] = _quiet) -> list[EndedRun]:
    """The results of runs that ended in the last day, each with `ended`
    (epoch seconds: when its result was written). A file that is not a
    result is skipped and told to `on_malformed`."""
    out: list[EndedRun] = []
    try:
        results = recent_results()
    except OSError as exc:
        raise _unreadable(exc) from None
    for path in results:
        try:
            text, ended = path.read_bytes(), path.stat().st_mtime
        except OSError:  # gone since the listing
            continue
        try:
            out.append({**parse(EndedRecord, json.loads(text)), "ended": ended})
        except (ValueError, RecursionError) as exc:  # not JSON, or not a result
            on_malformed(path, f"{path}: not a run's result: {exc}")
    return out


def find_run(selector: str | None, on_stale: Callable[[Path], None] = lambda p: None,
             on_malformed: Callable[[Path, str], None] = _quiet) -> tuple[Path, StatusRecord | None]:
    """The socket of the one live run `selector` names (any run when None).
    A selector that is a socket's path is used as it is (another user's run
    is then refused by that run, not here)."""
    if selector and selector.endswith(".sock") and Path(selector).exists():
        return Path(selector), None
    runs = [(p, s) for p, s in live_runs(on_stale, on_malformed) if selector is None or matches(s, selector)]
    if not runs:
        raise ControlError("no_run", f"no live run {'matches ' + repr(selector) if selector else 'found'} "
                                     f"(see `console status`)")
    if len(runs) > 1:
        names = ", ".join(s["run_id"] for _p, s in runs)
        raise ControlError("ambiguous", f"{len(runs)} live runs match: {names}; name one")
    return runs[0]


async def send_command(path: Path, command: str) -> CommandReply:
    """An operator command from an attached TUI."""
    import asyncio  # here: the one-shot commands (`console status`) never load asyncio
    try:
        reader, writer = await asyncio.open_unix_connection(str(path), limit=LINE_LIMIT)
    except OSError as exc:
        raise _connect_error(path, exc) from None
    try:
        writer.write(encode({"op": "command", "command": command}))
        line = await asyncio.wait_for(reader.readline(), TIMEOUT)
        if not line:
            raise ControlError("no_run", f"{path}: the run closed the connection")
        return _reply(CommandReply, path, decode(line))
    finally:
        writer.close()


async def subscribe(path: Path) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, Subscribed]:
    """Start following a run: returns the stream and its "subscribed" line
    (journal path and how many of its records precede the stream)."""
    import asyncio
    try:
        reader, writer = await asyncio.open_unix_connection(str(path), limit=LINE_LIMIT)
    except OSError as exc:
        raise _connect_error(path, exc) from None
    writer.write(encode({"op": "subscribe"}))
    line = await reader.readline()
    if not line:
        writer.close()
        raise ControlError("no_run", f"{path}: the run closed the connection")
    return reader, writer, _reply(Subscribed, path, decode(line))
