"""The test load generator counts what it could not send: a client stuck
behind a slow server must not pass as "0 failed" (tests/load.py)."""
from __future__ import annotations

import asyncio

import pytest

from load import SteadyLoad


async def serve(delay: float):
    """A loopback HTTP server answering every request after `delay` seconds."""
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        await asyncio.sleep(delay)
        writer.write(b"HTTP/1.1 200 OK\r\nX-Agent-Version: 1.0.0\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/"


async def test_a_client_that_keeps_up_passes():
    server, url = await serve(0.0)
    async with server:
        async with SteadyLoad(url, rate=50) as load:
            await asyncio.sleep(2)
    load.result.assert_no_failures()
    assert load.result.scheduled >= load.result.sent > 0, load.result.summary()


async def test_requests_it_could_not_send_fail_the_zero_failure_check():
    server, url = await serve(0.5)  # 2 workers x 2 req/s each: far below 50 req/s
    async with server:
        async with SteadyLoad(url, rate=50, workers=2) as load:
            await asyncio.sleep(2)
    result = load.result
    assert result.failed == [] and result.unsent > 50, result.summary()
    with pytest.raises(AssertionError, match="were sent"):
        result.assert_no_failures()
