"""An in-process asyncssh server for testing the SSH pool without root.

Modelled on asyncssh's own tests (tests/server.py): a real SSH server on
127.0.0.1 with its own host key and one authorised client key, so the
pool's connection logic (redials, fail-fast, channel limits, host-key
refusal) runs against real handshakes in milliseconds. It is not a fake
sshd for the product: commands are not run by a shell. The pool wraps each
command as ``timeout -k 5 N sh -c CMD``; the server unwraps CMD and answers
a tiny command language:

    echo TEXT   print TEXT, exit 0
    exit N      exit with status N
    hold        keep the session open until `release()` (counts as running)
    drop        close the whole connection from the server side

It records what the pool does to it (connections, sessions, forwards), can
emulate OpenSSH's MaxSessions by refusing session channels beyond a cap, and
can hold logins (a slow handshake) until the test lets them through.
"""
from __future__ import annotations

import asyncio
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import asyncssh

from inventory.model import Host
from inventory.ssh import known_hosts_name

USER = "tester"


def inner_command(wrapped: str) -> str:
    """CMD out of ``[sudo -n] timeout -k 5 N sh -c CMD``."""
    words = shlex.split(wrapped)
    return words[-1] if words[-3:-1] == ["sh", "-c"] else wrapped


@dataclass
class Stats:
    """What the server saw, in the order it saw it."""

    connections: int = 0  # SSH connections accepted (TCP + version exchange)
    auth_begun: int = 0  # connections that asked to log in
    authenticated: int = 0  # connections that logged in
    sessions_open: int = 0  # session channels open right now
    sessions_peak: int = 0
    sessions_refused: int = 0
    commands: list[str] = field(default_factory=list)
    forwards: list[int] = field(default_factory=list)  # direct-tcpip destination ports


class _Server(asyncssh.SSHServer):
    def __init__(self, owner: SshTestServer):
        self.owner = owner
        self.conn: asyncssh.SSHServerConnection | None = None
        self.number = 0  # 1 for the first connection the server accepted, ...

    def connection_made(self, conn: asyncssh.SSHServerConnection) -> None:
        self.conn = conn
        self.owner.stats.connections += 1
        self.number = self.owner.stats.connections
        self.owner.live.add(conn)
        self.owner.changed()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.conn is not None:
            self.owner.live.discard(self.conn)

    async def begin_auth(self, username: str) -> bool:
        self.owner.stats.auth_begun += 1
        self.owner.changed()
        await self.owner.logins.wait()  # a slow login, until the test allows it
        return True

    def auth_completed(self) -> None:
        self.owner.stats.authenticated += 1
        self.owner.changed()

    def session_requested(self) -> asyncssh.SSHServerProcess[str] | bool:
        stats = self.owner.stats
        cap = self.owner.session_caps.get(self.number, self.owner.max_sessions)
        if cap is not None and stats.sessions_open >= cap:
            stats.sessions_refused += 1
            return False
        stats.sessions_open += 1
        stats.sessions_peak = max(stats.sessions_peak, stats.sessions_open)
        self.owner.changed()
        return asyncssh.SSHServerProcess(self.owner.handle, None, 3, False)

    def connection_requested(self, dest_host: str, dest_port: int, orig_host: str, orig_port: int) -> bool:
        self.owner.stats.forwards.append(dest_port)
        self.owner.changed()
        return False  # refused: the test only needs to see that it arrived


class SshTestServer:
    """``async with SshTestServer(tmp_path) as server:`` listens on 127.0.0.1:<free port>."""

    def __init__(self, directory: Path, *, max_sessions: int | None = None,
                 session_caps: dict[int, int] | None = None):
        self.dir = directory
        self.max_sessions = max_sessions
        self.session_caps = session_caps or {}  # connection number -> its own MaxSessions
        self.stats = Stats()
        self.live: set[asyncssh.SSHServerConnection] = set()
        self.host_key = asyncssh.generate_private_key("ssh-ed25519")
        self.client_key = asyncssh.generate_private_key("ssh-ed25519")
        self.client_key_path = directory / "client_key"
        self.client_key.write_private_key(str(self.client_key_path))
        self.known_hosts_path = directory / "known_hosts"
        self.port = 0
        self._listener: asyncssh.SSHAcceptor | None = None
        self._released = asyncio.Event()
        self.logins = asyncio.Event()  # cleared: logins wait (see begin_auth)
        self.logins.set()
        self._waiters: list[tuple[Callable[[Stats], bool], asyncio.Future[None]]] = []

    async def __aenter__(self) -> SshTestServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def start(self) -> None:
        self._listener = await asyncssh.listen(
            "127.0.0.1", self.port,
            server_host_keys=[self.host_key],
            authorized_client_keys=asyncssh.import_authorized_keys(
                self.client_key.export_public_key().decode()),
            server_factory=lambda: _Server(self),
        )
        self.port = self._listener.get_port()

    async def stop(self) -> None:
        """Stop listening and drop every connection (the port stays reserved
        in `self.port` for a restart, which a racing process could take)."""
        if self._listener is not None:
            self._listener.close()
            await self._listener.wait_closed()
            self._listener = None
        for conn in list(self.live):
            conn.abort()

    def trust(self, key: asyncssh.SSHKey | None = None) -> None:
        """Write a known_hosts line for this server (or for `key` in its place)."""
        key = key or self.host_key
        line = f"{known_hosts_name('127.0.0.1', self.port)} {key.export_public_key().decode()}"
        self.known_hosts_path.write_text(line)

    def host(self, name: str = "h1") -> Host:
        return Host(name=name, address="127.0.0.1", port=self.port, user=USER,
                    key_file=str(self.client_key_path),
                    vars={"rollout_known_hosts": str(self.known_hosts_path)})

    def drop_all(self) -> None:
        """Close every connection from the server side, as a restarted sshd would."""
        for conn in list(self.live):
            conn.abort()

    def release(self) -> None:
        """Let every `hold` command (now and later) finish."""
        self._released.set()

    def changed(self) -> None:
        for predicate, future in self._waiters:
            if not future.done() and predicate(self.stats):
                future.set_result(None)

    async def wait_for(self, predicate: Callable[[Stats], bool], timeout: float = 5.0) -> None:
        """Wait until predicate(stats) holds, woken by each thing the server sees."""
        if predicate(self.stats):
            return
        waiter = (predicate, asyncio.get_running_loop().create_future())
        self._waiters.append(waiter)
        try:
            await asyncio.wait_for(waiter[1], timeout)
        finally:
            self._waiters.remove(waiter)

    async def handle(self, process: asyncssh.SSHServerProcess[str]) -> None:
        """Answer one exec request; any exception here would close the
        whole connection, so everything is guarded."""
        stats = self.stats
        try:
            command = inner_command(process.command or "")
            stats.commands.append(command)
            self.changed()
            verb, _, arg = command.partition(" ")
            if verb == "echo":
                process.stdout.write(arg + "\n")
                process.exit(0)
            elif verb == "exit":
                process.exit(int(arg))
            elif verb == "hold":
                await self._released.wait()
                process.exit(0)
            elif verb == "drop":
                process.channel.get_connection().close()
            else:
                process.stderr.write(f"{verb}: not found\n")
                process.exit(127)
        except Exception:  # noqa: BLE001 - see docstring
            process.exit(1)
        finally:
            stats.sessions_open -= 1
            self.changed()
