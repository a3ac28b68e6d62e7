"""inventory/http_get.py against a real TCP peer that answers what each test
says: what a probe makes of good, hostile and silent answers."""
from __future__ import annotations

import asyncio
from typing import Awaitable, Callable

import pytest

from inventory import http_get

Answer = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def _with_peer(answer: Answer, timeout: float = 5.0) -> http_get.HttpResponse:
    requests: list[bytes] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        requests.append(await reader.readuntil(b"\r\n\r\n"))
        await answer(reader, writer)
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    async with server:
        port = server.sockets[0].getsockname()[1]
        try:
            return await http_get.get_within(asyncio.open_connection("127.0.0.1", port), "/health", timeout)
        finally:
            assert not requests or requests[0].startswith(b"GET /health HTTP/1.1\r\n")


def _send(raw: bytes) -> Answer:
    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(raw)
        await writer.drain()
    return answer


async def test_a_json_answer_with_its_status() -> None:
    body = b'{"status": "ok", "version": "2.0.0"}'
    r = await _with_peer(_send(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)))
    assert (r.status_code, r.json()) == (200, {"status": "ok", "version": "2.0.0"})


async def test_a_body_read_to_the_close_and_an_error_status() -> None:
    r = await _with_peer(_send(b"HTTP/1.0 503 Service Unavailable\r\n\r\ndraining"))
    assert (r.status_code, r.text) == (503, "draining")


async def test_hostile_or_cut_answers_are_errors_not_guesses() -> None:
    with pytest.raises(http_get.HttpError, match="malformed"):
        await _with_peer(_send(b"SSH-2.0-OpenSSH_9.2\r\n\r\n"))
    with pytest.raises(http_get.HttpError):
        await _with_peer(_send(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort"))
    with pytest.raises(http_get.HttpError, match="closed before a response"):
        await _with_peer(_send(b""))


async def test_a_body_over_the_cap_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(http_get, "MAX_BODY", 1000)
    with pytest.raises(http_get.HttpError, match="over 1000 bytes"):
        await _with_peer(_send(b"HTTP/1.1 200 OK\r\nContent-Length: 5000\r\n\r\n" + b"x" * 5000))


async def test_a_silent_peer_times_out_naming_the_limit() -> None:
    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # until the client gives up and closes

    with pytest.raises(TimeoutError, match="no answer within 0.2 s"):
        await _with_peer(hold, timeout=0.2)
