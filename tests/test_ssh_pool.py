"""The SSH pool's own logic against an in-process asyncssh server (no root).

Real handshakes, real channels and real host-key checks on 127.0.0.1, so
each test takes milliseconds; tests/sandbox/test_sshfleet.py keeps the
same pool honest against OpenSSH."""
from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import asyncssh
import pytest

from inventory import ssh
from inventory.driver import CommandRecord, DriverError, HostKeyError
from inventory.model import Host
from inventory.ssh import SshPool
from ssh_server import SshTestServer


@pytest.fixture(autouse=True)
def no_user_ssh(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """asyncssh reads ~/.ssh (config, keys) and the agent: keep the
    developer's own out of these tests."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[SshTestServer]:
    async with SshTestServer(tmp_path) as srv:
        srv.trust()
        yield srv


async def test_commands_share_one_connection_and_report_exit_status(server: SshTestServer) -> None:
    pool = SshPool()
    host = server.host()
    try:
        results = await asyncio.gather(*(pool.run(host, f"echo {i}", timeout=5) for i in range(5)))
        failed = await pool.run(host, "exit 3", timeout=5)
    finally:
        await pool.close()
    assert [r.stdout for r in results] == [str(i) for i in range(5)]
    assert all(r.ok for r in results)
    assert failed.exit_status == 3 and not failed.ok
    assert server.stats.connections == 1  # one shared dial, then reuse


async def test_redials_after_the_server_drops_the_connection(server: SshTestServer) -> None:
    pool = SshPool()
    host = server.host()
    try:
        assert (await pool.run(host, "echo before", timeout=5)).stdout == "before"
        server.drop_all()
        after = await pool.run(host, "echo after", timeout=5)
    finally:
        await pool.close()
    assert after.stdout == "after"
    assert server.stats.connections == 2


async def test_connection_lost_mid_command_is_an_error_and_the_next_command_redials(
        server: SshTestServer) -> None:
    seen: list[CommandRecord] = []
    pool = SshPool(listener=seen.append)
    host = server.host()
    try:
        with pytest.raises(DriverError, match="connection lost") as err:
            await pool.run(host, "drop", timeout=5)
        after = await pool.run(host, "echo again", timeout=5)
    finally:
        await pool.close()
    assert err.value.host == "h1" and err.value.op == "run"
    assert after.stdout == "again"
    assert server.stats.connections == 2
    # The journal listener sees the failed command too, with no exit status.
    assert [(r.command, r.exit_status) for r in seen] == [("drop", None), ("echo again", 0)]


async def test_a_slow_handshake_is_shared_and_outlives_a_caller_that_gives_up(server: SshTestServer) -> None:
    server.logins.clear()
    pool = SshPool()
    host = server.host()
    try:
        with pytest.raises(DriverError, match="still dialling"):
            await pool.run(host, "echo early", timeout=0.1)
        second = asyncio.ensure_future(pool.run(host, "echo late", timeout=5))
        await server.wait_for(lambda s: s.auth_begun == 1)
        server.logins.set()
        assert (await second).stdout == "late"
    finally:
        await pool.close()
    assert server.stats.connections == 1  # the abandoned dial was kept and shared
    assert server.stats.commands == ["echo late"]


class _Slammer:
    """A TCP port that accepts and at once closes: an sshd that is up but
    refusing, where every connect attempt can be counted."""

    def __init__(self) -> None:
        self.accepts = 0
        self.port = 0
        self._server: asyncio.Server | None = None

    async def __aenter__(self) -> _Slammer:
        async def slam(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            self.accepts += 1
            writer.close()

        self._server = await asyncio.start_server(slam, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()


async def test_unreachable_host_fails_fast_until_the_hold_expires(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pool = SshPool(connect_attempts=2)
    try:
        async with _Slammer() as slammer:
            host = Host("lb", "127.0.0.1", slammer.port, user="tester",
                        vars={"rollout_known_hosts": str(tmp_path / "known_hosts")})
            with pytest.raises(DriverError) as first:
                await pool.run(host, "echo x", timeout=5)
            assert slammer.accepts == 2  # every attempt dialled
            assert f"127.0.0.1:{slammer.port}" in first.value.message

            with pytest.raises(DriverError, match="unreachable moments ago"):
                await pool.run(host, "echo x", timeout=5)
            with pytest.raises(DriverError, match="unreachable moments ago"):
                await pool.open_stream(host, 80)
            assert slammer.accepts == 2  # failed fast: no new dial

            monkeypatch.setattr(ssh, "DOWN_HOLD", 0.0)
            with pytest.raises(DriverError) as again:
                await pool.run(host, "echo x", timeout=5)
            assert "moments ago" not in again.value.message
            assert slammer.accepts == 4  # dialled again once the hold is over
    finally:
        await pool.close()


async def test_exec_channels_are_capped_per_connection_but_tcp_streams_are_not(
        server: SshTestServer) -> None:
    pool = SshPool(max_channels=2)
    host = server.host()
    try:
        await pool.connect(host)
        held = [asyncio.ensure_future(pool.run(host, "hold", timeout=5)) for _ in range(5)]
        await server.wait_for(lambda s: s.sessions_open == 2)
        # A direct TCP channel opens beside the two busy exec channels.
        # SSH keeps one connection's messages in order, so once the server
        # has seen this later channel open it has seen every session open the
        # pool sent before it.
        with pytest.raises(ConnectionRefusedError):  # what the test server answers every such channel
            await pool.open_stream(host, 9)
        await server.wait_for(lambda s: s.forwards == [9])
        assert server.stats.sessions_peak == 2
        assert server.stats.commands == ["hold", "hold"]
        server.release()
        results = await asyncio.gather(*held)
    finally:
        await pool.close()
    assert [r.exit_status for r in results] == [0] * 5
    assert server.stats.sessions_peak == 2
    assert server.stats.connections == 1


async def test_session_refusals_like_maxsessions_are_retried_on_the_same_connection(
        tmp_path: Path) -> None:
    async with SshTestServer(tmp_path, max_sessions=2) as server:
        server.trust()
        pool = SshPool(max_channels=8)
        host = server.host()
        try:
            held = [asyncio.ensure_future(pool.run(host, "hold", timeout=5)) for _ in range(2)]
            await server.wait_for(lambda s: s.sessions_open == 2)
            echoes = [asyncio.ensure_future(pool.run(host, f"echo {i}", timeout=5)) for i in range(2)]
            await server.wait_for(lambda s: s.sessions_refused >= 2)
            server.release()
            results = await asyncio.gather(*held, *echoes)
        finally:
            await pool.close()
    assert [r.stdout for r in results] == ["", "", "0", "1"]
    assert pool.channel_retries == server.stats.sessions_refused
    assert server.stats.connections == 1


async def test_a_connection_that_keeps_refusing_sessions_is_retired_and_redialled(tmp_path: Path) -> None:
    async with SshTestServer(tmp_path, session_caps={1: 0}) as server:  # the first connection opens nothing
        server.trust()
        pool = SshPool()
        try:
            result = await pool.run(server.host(), "echo through", timeout=5)
        finally:
            await pool.close()
    assert result.stdout == "through"
    assert server.stats.connections == 2
    assert server.stats.sessions_refused == pool.channel_retries == 6


async def host_key_refusal(server: SshTestServer, accept_new_host_keys: bool = False) -> HostKeyError:
    """The error a fresh pool raises on its first command to the server."""
    pool = SshPool(accept_new_host_keys=accept_new_host_keys)
    try:
        with pytest.raises(HostKeyError) as err:
            await pool.run(server.host(), "echo x", timeout=5)
    finally:
        await pool.close()
    assert server.host_key.get_fingerprint("sha256") in err.value.message
    assert server.stats.connections == 1  # never retried
    assert server.stats.authenticated == 0 and server.stats.commands == []
    return err.value


async def test_unknown_host_key_is_refused_and_not_retried(server: SshTestServer) -> None:
    server.known_hosts_path.write_text("")
    err = await host_key_refusal(server)
    assert "host key unknown" in err.message
    assert server.known_hosts_path.read_text() == ""


async def test_missing_known_hosts_file_refuses_every_key(server: SshTestServer) -> None:
    server.known_hosts_path.unlink()
    err = await host_key_refusal(server)
    assert "host key unknown" in err.message
    assert not server.known_hosts_path.exists()


async def test_changed_host_key_is_refused_even_when_new_keys_are_accepted(
        server: SshTestServer) -> None:
    server.trust(asyncssh.generate_private_key("ssh-ed25519"))  # someone else's key on record
    before = server.known_hosts_path.read_text()
    err = await host_key_refusal(server, accept_new_host_keys=True)
    assert "host key changed" in err.message
    assert server.known_hosts_path.read_text() == before


async def test_trust_on_first_use_records_the_key_once_then_checks_it(server: SshTestServer) -> None:
    server.known_hosts_path.write_text("# no entries yet")
    first = SshPool(accept_new_host_keys=True)
    try:
        assert (await first.run(server.host(), "echo hi", timeout=5)).stdout == "hi"
    finally:
        await first.close()
    lines = server.known_hosts_path.read_text().splitlines()
    key = server.host_key.export_public_key().decode().split()
    assert lines == ["# no entries yet", f"[127.0.0.1]:{server.port} {key[0]} {key[1]}"]

    strict = SshPool()  # the recorded key is now simply known
    try:
        assert (await strict.run(server.host(), "echo again", timeout=5)).stdout == "again"
    finally:
        await strict.close()
    assert server.known_hosts_path.read_text().splitlines() == lines


async def test_a_closed_pool_refuses_work(server: SshTestServer) -> None:
    pool = SshPool()
    await pool.run(server.host(), "echo x", timeout=5)
    await pool.close()
    with pytest.raises(DriverError, match="pool is closed"):
        await pool.run(server.host(), "echo x", timeout=5)
    assert server.stats.connections == 1
