"""One HTTP/1.1 GET over a stream to a host's own 127.0.0.1 port.

The stream is a direct-tcpip channel of the host's SSH connection
(`SshPool.open_stream`), so nothing but SSH has to be reachable from the
console. Health probes, /metrics and the nginx marker all come this way, and
the capacity guard probes every serving instance before every batch, so a
probe's cost counts: through a local port forward and httpx it cost 3.05 ms
of controller CPU and 0.180 s of wall per round of 50 hosts; over the channel
with h11, 1.11 ms and 0.096 s (bench/probe_cost.py, 50 sandbox hosts, the
two ways alternating; bench/results/2026-12-02-caf7311/probe_cost.txt).

h11 does the parsing: it is sans-I/O, already installed (httpx is built on
it), and refuses a malformed response (hostile remote output) with an error
instead of a guess. Bodies are capped.
"""
from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Awaitable, Protocol

import h11

from .json_types import JSON

MAX_BODY = 1 << 20  # health, /metrics and the marker answer in bytes


class Reader(Protocol):
    """The reading end of a stream (asyncio's StreamReader, asyncssh's SSHReader)."""

    async def read(self, n: int, /) -> bytes: ...


class Writer(Protocol):
    """The writing end of a stream (asyncio's StreamWriter, asyncssh's SSHWriter)."""

    def write(self, data: bytes, /) -> None: ...

    def close(self) -> None: ...


class HttpError(Exception):
    """The peer closed early, sent a malformed response, or too much."""


@dataclass(frozen=True)
class HttpResponse:
    status_code: int
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")

    def json(self) -> JSON:
        """The body as JSON (ValueError if it is not)."""
        document: JSON = json.loads(self.body)
        return document


async def get(reader: Reader, writer: Writer, path: str) -> HttpResponse:
    """GET `path` over an open stream (asyncio's or asyncssh's), then close it."""
    conn = h11.Connection(h11.CLIENT)
    try:
        writer.write(conn.send(h11.Request(method="GET", target=path, headers=[
            ("Host", "127.0.0.1"), ("User-Agent", "rollout-console"), ("Connection", "close")])))
        writer.write(conn.send(h11.EndOfMessage()))
        status = 0
        body = bytearray()
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                data = await reader.read(65536)
                if not data and not status:
                    raise HttpError("connection closed before a response")
                conn.receive_data(data)  # b"": the peer closed; h11 decides if that ends the body
            elif isinstance(event, h11.Response):
                status = event.status_code
            elif isinstance(event, h11.Data):
                body += event.data
                if len(body) > MAX_BODY:
                    raise HttpError(f"response body over {MAX_BODY} bytes")
            elif isinstance(event, h11.EndOfMessage):
                return HttpResponse(status, bytes(body))
            elif isinstance(event, h11.ConnectionClosed):
                raise HttpError("connection closed before a response")
    except h11.ProtocolError as exc:
        raise HttpError(f"malformed response: {exc}") from None
    finally:
        writer.close()


async def get_within(streams: Awaitable[tuple[Reader, Writer]], path: str, timeout: float) -> HttpResponse:
    """`get` over the streams `streams` (an awaitable opening them), all of
    it within `timeout` seconds (TimeoutError after)."""
    async def both() -> HttpResponse:
        reader, writer = await streams
        return await get(reader, writer, path)
    try:
        return await asyncio.wait_for(both(), timeout)
    except TimeoutError:
        raise TimeoutError(f"no answer within {timeout:g} s") from None
