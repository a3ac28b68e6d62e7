"""The control socket's wire format: JSON Lines, one request per connection.

Client -> server, one line: {"op": "status"} | {"op": "command", "command":
"pause"} | {"op": "subscribe"}. Server -> client: one reply line for status
and command; for subscribe, a "subscribed" line (the journal path and how
many journal records precede the stream), then one "event" line per event
and a final "result" line when the run ends. Errors: {"type": "error",
"code": ..., "message": ...}. Lines are ASCII JSON (non-ASCII escaped), so
no byte a host prints can split one.
"""
from __future__ import annotations

import json
from typing import Literal, Mapping, TypedDict

from ..status_record import StatusRecord

LINE_LIMIT = 64 * 1024 * 1024   # one event line (a command's output) can be large
REQUEST_LIMIT = 64 * 1024       # one request line (a client's: small)
READ_TIMEOUT = 10.0             # seconds a client has to send its request
MAX_CONNECTIONS = 64            # open control connections (viewers included) per run
OPS = ("status", "command", "subscribe")


class ProtocolError(Exception):
    """A line that is not a JSON object."""


class ErrorReply(TypedDict):
    type: Literal["error"]
    code: str
    message: str


class CommandReply(TypedDict):
    """The answer to a command: accepted or refused, and why."""

    type: Literal["reply"]
    command: str
    accepted: bool
    detail: str
    phase: str


class Subscribed(TypedDict):
    """The first line a viewer reads: how far the journal already goes."""

    type: Literal["subscribed"]
    journal: str
    journal_records: int
    status: StatusRecord


def encode(message: Mapping[str, object]) -> bytes:
    return json.dumps(message, separators=(",", ":")).encode() + b"\n"


def decode(line: bytes) -> dict[str, object]:
    """A line as a JSON object, not yet checked to be any message."""
    try:
        message = json.loads(line)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ProtocolError(f"not JSON: {exc}") from None
    except RecursionError:  # nested deeper than the parser goes: an answer, not a traceback
        raise ProtocolError("not JSON: nested too deeply") from None
    if not isinstance(message, dict):
        raise ProtocolError("not a JSON object")
    return message


def error(code: str, message: str) -> ErrorReply:
    return {"type": "error", "code": code, "message": message}
