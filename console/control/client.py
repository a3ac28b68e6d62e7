"""The client side of the control socket: find a run, ask it something.

Blocking calls for the one-shot commands (`status`, `pause`, ...), async
ones for `attach`, which follows the event stream while the TUI runs."""
from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from .protocol import LINE_LIMIT, ProtocolError, decode, encode
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


def _checked(reply: dict[str, Any]) -> dict[str, Any]:
    if reply.get("type") == "error":
        raise ControlError(reply.get("code", "protocol"), reply.get("message", "error"))
    return reply


def _connect_error(path: Path, exc: OSError) -> ControlError:
    if isinstance(exc, PermissionError):
        return ControlError("denied", f"{path}: permission denied (the run belongs to another user)")
    return ControlError("no_run", f"{path}: the run is gone ({exc.strerror or exc})")


def request(path: Path, message: dict[str, Any], timeout: float = TIMEOUT) -> dict[str, Any]:
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


def live_runs(on_stale: Callable[[Path], None] = lambda p: None) -> list[tuple[Path, dict[str, Any]]]:
    """(socket, status) of every live run of this user."""
    runs = []
    try:
        sockets = live_sockets(on_stale)
    except OSError as exc:
        raise _unreadable(exc) from None
    for path in sockets:
        try:
            runs.append((path, request(path, {"op": "status"})))
        except ControlError:
            continue  # ended between the listing and the question
    return runs


def finished_runs() -> list[dict[str, Any]]:
    """The results of runs that ended in the last day, each with `ended`
    (epoch seconds: when its result was written)."""
    out = []
    try:
        results = recent_results()
    except OSError as exc:
        raise _unreadable(exc) from None
    for path in results:
        try:
            out.append({**json.loads(path.read_text()), "ended": path.stat().st_mtime})
        except (OSError, ValueError, TypeError):  # gone, or not a result
            continue
    return out


def find_run(selector: str | None, on_stale: Callable[[Path], None] = lambda p: None
             ) -> tuple[Path, dict[str, Any] | None]:
    """The socket of the one live run `selector` names (any run when None).
    A selector that is a socket's path is used as it is (another user's run
    is then refused by that run, not here)."""
    if selector and selector.endswith(".sock") and Path(selector).exists():
        return Path(selector), None
    runs = [(p, s) for p, s in live_runs(on_stale) if selector is None or matches(s, selector)]
    if not runs:
        raise ControlError("no_run", f"no live run {'matches ' + repr(selector) if selector else 'found'} "
                                     f"(see `console status`)")
    if len(runs) > 1:
        names = ", ".join(s["run_id"] for _p, s in runs)
        raise ControlError("ambiguous", f"{len(runs)} live runs match: {names}; name one")
    return runs[0]


async def send_command(path: Path, command: str) -> dict[str, Any]:
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
        return _checked(decode(line))
    finally:
        writer.close()


async def subscribe(path: Path) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, dict[str, Any]]:
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
    return reader, writer, _checked(decode(line))
