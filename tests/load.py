"""Steady client load through the sandbox LB, to prove zero failed requests.

Keep-alive policy: with keep-alive off every request opens its own
connection. With keep-alive on, nginx's reload closes idle client
connections and one can be reset just as a request goes out on it (the
field notes saw 19 in 1,500 over 25 reloads); `retry_reset=True` retries such
a GET once, as browsers and most HTTP clients do, and counts it in `resets`.
The retry goes out on a fresh connection: the pool's other idle connections
were closed by the same reload, and a retry drawn from them met a second
reset twice in 200 soak runs (seed 4 runs 109 and 199).

A bounded fixed-rate client: `rate` requests per second, stopped by
`stop()` or after `max_seconds`, whichever comes first. Every response is
kept (time, status, version header), so a test can say exactly how many
requests failed and when each version served. Requests it scheduled but
could not send before the stop (all workers busy behind a slow or dead LB)
are counted in `unsent`: "0 failed" means nothing when few requests went
out, so `assert_no_failures` also requires `sent` >= 90 % of rate x
duration. Targets only the project's own sandbox hosts.

The client is h11 over asyncio streams, not httpx: 0.27 ms of CPU a request
against httpx's 1.7 ms (both measured on this project's 2-core machine,
loopback, keep-alive off). At 100 req/s httpx alone took a sixth of a core,
and on a machine loaded by CI's lanes or a soak (load average 10 on 2 cores)
the generator fell behind its rate: soak runs sent a median 67 % of their
due requests, and CI's dead-host test 89 %. Errors keep httpx's names
(`ConnectTimeout('')`, `ReadError(...)`, ...): the soak's rules and its saved
cases read them.
"""
from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import h11


@dataclass
class Response:
    t: float
    status: int
    version: str | None
    error: str = ""


@dataclass
class LoadResult:
    rate: float = 0.0
    responses: list[Response] = field(default_factory=list)
    resets: int = 0  # keep-alive connections reset under a request, then retried
    scheduled: int = 0  # requests due by the fixed rate before the stop
    started: float = 0.0
    stopped: float = 0.0

    @property
    def sent(self) -> int:
        return len(self.responses)

    @property
    def unsent(self) -> int:
        """Due by the rate but never sent: dropped from the backlog at stop."""
        return self.scheduled - self.sent

    @property
    def duration(self) -> float:
        return max(0.0, self.stopped - self.started)

    def assert_no_failures(self, min_share: float = 0.9) -> None:
        """0 failed requests, and at least `min_share` of rate x duration
        actually sent (a client that could not keep up proves nothing)."""
        assert self.failed == [], self.summary() + f": {self.failed[:3]}"
        self.assert_enough_sent(min_share)

    def assert_enough_sent(self, min_share: float = 0.9) -> None:
        """At least `min_share` of rate x duration sent: what any claim about
        the failures (none, or only the bad release's) needs to mean something."""
        expected = self.rate * self.duration
        assert self.sent >= min_share * expected, (
            f"only {self.sent} of {expected:.0f} requests due at {self.rate:g}/s over {self.duration:.1f}s "
            f"were sent: {self.summary()}")

    @property
    def failed(self) -> list[Response]:
        return [r for r in self.responses if r.status != 200]

    def versions(self) -> set[str | None]:
        return {r.version for r in self.responses if r.status == 200}

    def last_time_of(self, version: str) -> float | None:
        times = [r.t for r in self.responses if r.version == version]
        return max(times) if times else None

    def first_time_of(self, version: str) -> float | None:
        times = [r.t for r in self.responses if r.version == version]
        return min(times) if times else None

    def summary(self) -> str:
        return (f"{self.sent} requests in {self.duration:.1f}s at {self.rate:g}/s, {len(self.failed)} failed"
                + (f", {self.unsent} not sent" if self.unsent else "")
                + (f", {self.resets} keep-alive resets retried" if self.resets else ""))


def workers_for(rate: float) -> int:
    """Enough workers that the generator keeps its rate while nginx tries a
    dead backend three times (1 s connect time-out each): rate x 3 s.
    16 workers sent as little as 23 % of the due requests in soak runs of
    2026-12-02 (issue 26), and 89 % in CI's dead-stable-host test; 1,000
    (rate x the client's whole time-out) overloaded the shared 2-core sandbox
    itself: soak seed 2 run 154 replayed on NET 1 had 337 and 2,635 client
    connect time-outs to the LB; with 300 it sent 100 % and 0 failed foreign."""
    return max(16, int(rate * 3))


class ClientError(Exception):
    """A request that got no HTTP response; subclasses are named as httpx's."""


class ConnectTimeout(ClientError):
    pass


class ConnectError(ClientError):
    pass


class ReadTimeout(ClientError):
    pass


class WriteError(ClientError):
    pass


class ReadError(ClientError):
    pass


class RemoteProtocolError(ClientError):
    pass


RESET = (ReadError, RemoteProtocolError)  # what a reload's closed keep-alive connection looks like
TIMEOUT = 10.0  # seconds per connect, write or read, as httpx's timeout=10.0


class Connection:
    """One TCP connection speaking HTTP/1.1 (h11 parses, asyncio moves bytes)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.h11 = h11.Connection(h11.CLIENT)

    @classmethod
    async def open(cls, host: str, port: int) -> Connection:
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), TIMEOUT)
        except TimeoutError:
            raise ConnectTimeout("") from None
        except OSError as exc:
            raise ConnectError(str(exc)) from None
        return cls(reader, writer)

    def usable(self) -> bool:
        """Idle and not closed by the server (a reload's FIN already read):
        httpx's pool drops such connections too."""
        return self.h11.our_state is h11.IDLE and not self.reader.at_eof() and not self.writer.is_closing()

    async def get(self, target: str, headers: list[tuple[str, str]]) -> tuple[int, str | None]:
        """(status, x-agent-version) of one GET, the body read and dropped."""
        try:
            self.writer.write(self.h11.send(h11.Request(method="GET", target=target, headers=headers))
                              + self.h11.send(h11.EndOfMessage()))
            await asyncio.wait_for(self.writer.drain(), TIMEOUT)
        except TimeoutError:
            raise WriteError("") from None
        except OSError as exc:
            raise WriteError(str(exc)) from None
        status, version = 0, None
        while True:
            try:
                event = self.h11.next_event()
            except h11.RemoteProtocolError as exc:
                raise RemoteProtocolError(str(exc)) from None
            if event is h11.NEED_DATA:
                try:
                    data = await asyncio.wait_for(self.reader.read(65536), TIMEOUT)
                except TimeoutError:
                    raise ReadTimeout("") from None
                except OSError as exc:
                    raise ReadError(str(exc)) from None
                if not data and status == 0:
                    raise RemoteProtocolError("Server disconnected without sending a response.")
                self.h11.receive_data(data)
            elif isinstance(event, h11.Response):
                status = event.status_code
                version = next((v.decode() for k, v in event.headers if k == b"x-agent-version"), None)
            elif isinstance(event, h11.EndOfMessage):
                return status, version
            elif isinstance(event, h11.ConnectionClosed):
                raise RemoteProtocolError("peer closed connection without sending complete message body")

    def close(self) -> None:
        self.writer.close()


class SteadyLoad:
    """Use as `async with SteadyLoad(url, rate=100) as load: ...`."""

    def __init__(self, url: str, rate: float = 100.0, keepalive: bool = False, max_seconds: float = 300.0,
                 headers: dict[str, str] | None = None, workers: int | None = None, retry_reset: bool = False):
        self.url = url
        self.rate = rate
        self.keepalive = keepalive
        self.max_seconds = max_seconds
        self.headers = headers or {}
        self.workers = workers or workers_for(rate)
        self.retry_reset = retry_reset
        self.result = LoadResult(rate=rate)
        self._stop = asyncio.Event()
        self._task: asyncio.Task | None = None
        parts = urlsplit(url)
        self._host, self._port = parts.hostname or "", parts.port or 80
        self._target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        self._idle: list[Connection] = []  # keep-alive connections between requests

    async def __aenter__(self) -> SteadyLoad:
        self._task = asyncio.create_task(self._run())
        return self

    async def __aexit__(self, *exc) -> None:
        await self.stop()

    async def stop(self) -> LoadResult:
        self._stop.set()
        if self._task:
            await self._task
        return self.result

    def _request_headers(self, keepalive: bool) -> list[tuple[str, str]]:
        host = self._host if self._port == 80 else f"{self._host}:{self._port}"
        return [("Host", host), ("User-Agent", "rollout-console-tests"), *self.headers.items(),
                ("Connection", "keep-alive" if keepalive else "close")]

    async def _run(self) -> None:
        queue: asyncio.Queue[float | None] = asyncio.Queue()
        workers = [asyncio.create_task(self._worker(queue)) for _ in range(self.workers)]
        start = self.result.started = time.monotonic()
        n = 0
        while not self._stop.is_set() and time.monotonic() - start < self.max_seconds:
            due = start + n / self.rate
            delay = due - time.monotonic()
            if delay > 0:
                try:
                    await asyncio.wait_for(self._stop.wait(), delay)
                    break
                except TimeoutError:
                    pass
            queue.put_nowait(time.monotonic())
            n += 1
        self.result.stopped = time.monotonic()
        self.result.scheduled = n
        for _ in workers:
            queue.put_nowait(None)
        await asyncio.gather(*workers)
        for conn in self._idle:
            conn.close()
        self._idle.clear()

    async def _fetch(self, fresh: bool) -> tuple[int, str | None]:
        """One GET: on an idle keep-alive connection when there is one (and
        not `fresh`), else on a new one."""
        keepalive = self.keepalive and not fresh
        conn = None
        while keepalive and self._idle and conn is None:
            conn = self._idle.pop()
            if not conn.usable():
                conn.close()
                conn = None
        if conn is None:
            conn = await Connection.open(self._host, self._port)
        try:
            answer = await conn.get(self._target, self._request_headers(keepalive))
        except BaseException:
            conn.close()
            raise
        if keepalive and conn.h11.our_state is h11.DONE and conn.h11.their_state is h11.DONE:
            conn.h11.start_next_cycle()
            self._idle.append(conn)
        else:
            conn.close()
        return answer

    async def _worker(self, queue: asyncio.Queue) -> None:
        while await queue.get() is not None:
            if self._stop.is_set():
                continue  # not sent before stop(): a backlog behind a dead LB is dropped, not replayed
            for attempt in (0, 1):
                try:
                    status, version = await self._fetch(fresh=attempt == 1)
                    self.result.responses.append(Response(time.monotonic(), status, version))
                except RESET as exc:
                    # An idle keep-alive connection closed by an nginx reload as the
                    # request went out: browsers and most clients retry a GET once.
                    if self.retry_reset and attempt == 0:
                        self.result.resets += 1
                        continue
                    self.result.responses.append(Response(time.monotonic(), 0, None, repr(exc)))
                except ClientError as exc:
                    self.result.responses.append(Response(time.monotonic(), 0, None, repr(exc)))
                break
