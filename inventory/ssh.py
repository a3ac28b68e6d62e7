"""A small SSH connection pool over asyncssh (one reused connection per host).

Facts this follows (see the field notes): asyncssh has no pool of its own;
OpenSSH allows 10 sessions per connection (MaxSessions) so exec channels are
capped at 8 per connection (forwarded TCP channels do not count); sshd drops
bursts of new connections (MaxStartups 10:30:100) so handshakes are capped
globally and retried with backoff; `run(timeout=)` leaves the remote process
running, so every command is also wrapped in coreutils `timeout`; `sudo -n`
without a PTY keeps stderr separate.

Host keys are always verified against a known_hosts file: the host variable
``rollout_known_hosts`` if set, else ~/.ssh/known_hosts. Trust-on-first-use
only with an explicit ``accept_new_host_keys=True``: a key is accepted and
appended only when the file has no entry at all for that address; a changed
key is always refused.

~/.ssh/config (or the file given with `-F` in ansible_ssh_common_args) comes
first, as with OpenSSH under Ansible: its Port, User, IdentityFile and
HostName apply unless the inventory sets ansible_port / ansible_user /
ansible_ssh_private_key_file (ansible_host is what the config is matched
against). Jump hosts (`-J` / `ProxyJump` from the inventory, else ProxyJump
from the config) are dialled by this pool itself, each hop with the same
host key checks as the target, and shared by every host behind them. A
host with `ansible_connection: local` runs its commands on the controller.
"""
from __future__ import annotations

import asyncio
import os
import re
import shlex
import signal
import time
import warnings
from dataclasses import dataclass
from typing import Any, Callable, Sequence

# asyncssh (2.24) names cryptography's DSA classes in type hints at import
# time; cryptography (51.0 here) deprecates DSA with a CryptographyDeprecationWarning
# (a UserWarning, so Python shows it) on every such reference: 11 lines on
# stderr of every run, about a key type we never offer or accept. Only that
# message, only from asyncssh's crypto modules, only during this import; any
# other warning still shows. Drop this when asyncssh stops touching dsa.* at import.
with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message="DSA is deprecated", module=r"asyncssh\.crypto\.")
    import asyncssh

from .connection import Connection
from .driver import CommandRecord, DriverError, HostKeyError
from .http_get import Reader, Writer
from .jump import JumpHop, parse_jump, proxy_command_jump
from .model import Host
from .ssh_config import default_config_paths, expand_home

MAX_OUTPUT = 64 * 1024
DOWN_HOLD = 15.0  # seconds an unreachable host fails fast before it is dialled again
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def clean_output(data: bytes, limit: int = MAX_OUTPUT) -> str:
    """Decode (errors replaced), drop NULs and control characters except
    newline and tab, and strip surrounding whitespace."""
    text = data[:limit].decode("utf-8", errors="replace")
    text = text.replace("\r\n", "\n")
    return _CONTROL.sub("", text).strip()


def known_hosts_path(host: Host) -> str:
    path = host.var("rollout_known_hosts") or "~/.ssh/known_hosts"
    return expand_home(str(path))  # ~ as OpenSSH reads it: never another user's $HOME


def known_hosts_name(address: str, port: int) -> str:
    """The host pattern OpenSSH writes: `addr` for port 22, else `[addr]:port`."""
    return address if port == 22 else f"[{address}]:{port}"


def _read_known_hosts(path: str) -> asyncssh.SSHKnownHosts:
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except FileNotFoundError:
        text = ""
    return asyncssh.import_known_hosts(text)


def _has_entry(path: str, host: str, addr: str, port: int | None) -> bool:
    result = _read_known_hosts(path).match(host, addr, port)
    return any(len(part) for part in result)


def wrap_command(command: str, timeout: float, become: bool, become_user: str | None = None) -> str:
    """`[sudo -n [-u USER]] timeout -k 5 SECS sh -c COMMAND` (COMMAND already
    quoted by its builder; here it is quoted once more as one argument)."""
    secs = max(1, int(round(timeout)))
    inner = f"timeout -k 5 {secs} sh -c {shlex.quote(command)}"
    if not become:
        return inner
    as_user = f"-u {shlex.quote(become_user)} " if become_user else ""
    return f"sudo -n {as_user}{inner}"


def _target(host: Host) -> str:
    """`address[:port]` for messages (no port: the ssh config's, else 22)."""
    return f"{host.address}:{host.port}" if host.port else host.address


def ssh_config_paths(host: Host) -> list[str]:
    """The ssh config files asyncssh reads: `-F FILE` (checked at load),
    else the user's own ~/.ssh/config as OpenSSH finds and checks it (by
    the password database: root run with `sudo -E` never reads the
    invoking user's, whose Match exec would run as root)."""
    if host.connection.ssh_config:
        return [expand_home(host.connection.ssh_config)]
    try:
        return default_config_paths()
    except ValueError as exc:
        raise DriverError(host.name, "connect", str(exc)) from None


def config_jump(host: Host) -> tuple[JumpHop, ...]:
    """ProxyJump from the ssh config for this host (after the inventory's
    own -J, which wins as on OpenSSH's command line)."""
    if host.connection.jump:
        return host.connection.jump
    opts = asyncssh.SSHClientConnectionOptions(
        config=ssh_config_paths(host), host=host.address, port=host.port or (),
        client_keys=None, known_hosts=None)
    tunnel = opts.tunnel
    try:
        if isinstance(tunnel, str) and tunnel.strip():
            return parse_jump(tunnel)
        if opts.proxy_command and not host.connection.trusted_config:
            # the only ProxyCommand an untrusted config may hold (inventory/ssh_config.py):
            # `ssh -W %h:%p bastion`, dialled as a hop like -J instead of run
            return proxy_command_jump(" ".join(shlex.quote(a) for a in opts.proxy_command),
                                      target=f"{opts.host}:{opts.port}")
    except ValueError as exc:
        raise DriverError(host.name, "connect", f"jump host in ssh config: {exc}") from None
    return ()


def hop_host(target: Host, hop: JumpHop, index: int) -> Host:
    """A jump hop as a Host: the target's known_hosts and ssh config apply."""
    return Host(name=f"{target.name} via {hop}", address=hop.host, port=hop.port, user=hop.user,
                vars={"rollout_known_hosts": known_hosts_path(target)},
                connection=Connection(ssh_config=target.connection.ssh_config,
                                      trusted_config=target.connection.trusted_config))


class _Client(asyncssh.SSHClient):
    """Records the presented key and, when allowed, trusts it on first use.

    asyncssh calls validate_host_public_key only for keys that known_hosts
    does not already trust."""

    def __init__(self, path: str, accept_new: bool, host: Host):
        self.path = path
        self.accept_new = accept_new
        self.host = host
        self.rejected_fingerprint: str | None = None
        self.reason = ""
        self.appended = False

    def validate_host_public_key(self, host: str, addr: str, port: int, key: asyncssh.SSHKey) -> bool:
        fp = key.get_fingerprint("sha256")
        port_arg = port if port and port != 22 else None
        if _has_entry(self.path, host, addr, port_arg):
            self.rejected_fingerprint = fp
            self.reason = "changed"
            return False
        if not self.accept_new:
            self.rejected_fingerprint = fp
            self.reason = "unknown"
            return False
        alg, blob = key.export_public_key("openssh").decode().split()[:2]
        line = f"{known_hosts_name(self.host.address, port or 22)} {alg} {blob}\n"
        os.makedirs(os.path.dirname(self.path) or ".", mode=0o700, exist_ok=True)
        with open(self.path, "a+", encoding="utf-8") as f:
            f.seek(0, os.SEEK_END)
            if f.tell() > 0:
                f.seek(f.tell() - 1)
                if f.read(1) != "\n":
                    line = "\n" + line
            f.write(line)
        self.appended = True
        return True


@dataclass
class _Entry:
    conn: asyncssh.SSHClientConnection
    channels: asyncio.Semaphore
    connect_time: float = 0.0
    inflight: int = 0
    retired: bool = False


def _retrieve(task: asyncio.Task[_Entry]) -> None:
    """Mark a shared dial's failure as seen even if every waiter gave up."""
    if not task.cancelled():
        task.exception()


class SshPool:
    """One lazily opened, reused asyncssh connection per host."""

    def __init__(self, *, accept_new_host_keys: bool = False, connect_timeout: float = 10.0,
                 login_timeout: float = 30.0, keepalive_interval: float = 5.0,
                 max_channels: int = 8, max_handshakes: int = 8, connect_attempts: int = 4,
                 listener: Callable[[CommandRecord], None] | None = None):
        self.accept_new_host_keys = accept_new_host_keys
        self.connect_timeout = connect_timeout
        self.login_timeout = login_timeout
        self.keepalive_interval = keepalive_interval
        self.max_channels = max_channels
        self.connect_attempts = max(1, connect_attempts)
        self._down: dict[str, tuple[float, DriverError]] = {}
        self.listener = listener
        self._handshakes = asyncio.Semaphore(max_handshakes)
        self._dialing: dict[str, asyncio.Task[_Entry]] = {}
        self._entries: dict[str, _Entry] = {}
        self._options: dict[tuple[object, ...], asyncssh.SSHClientConnectionOptions] = {}
        self._jumps: dict[tuple[object, ...], asyncssh.SSHClientConnection] = {}
        self._jump_locks: dict[tuple[object, ...], asyncio.Lock] = {}
        self._closing = False
        self.connect_times: list[float] = []  # seconds per successful handshake
        self._watchers: set[asyncio.Task[None]] = set()
        self.channel_retries = 0  # channel opens refused by sshd and retried

    # -- connections -------------------------------------------------------

    def _options_for(self, host: Host) -> tuple[asyncssh.SSHClientConnectionOptions, str]:
        path = known_hosts_path(host)
        key = (host.user, host.key_file, path, host.connection.ssh_config)
        opts = self._options.get(key)
        if opts is None:
            def match(h: str, addr: str, port: int | None, _path: str = path) -> tuple[Sequence[object], ...]:
                # Re-read each handshake: a key appended on first use counts.
                return _read_known_hosts(_path).match(h, addr, port)

            kwargs: dict[str, Any] = dict(
                known_hosts=match,
                connect_timeout=self.connect_timeout,
                login_timeout=self.login_timeout,
                keepalive_interval=self.keepalive_interval,
                keepalive_count_max=3,
                agent_forwarding=False,  # always: a remote root could sign with the operator's keys
            )
            if host.user:
                kwargs["username"] = host.user
            if host.key_file:
                kwargs["client_keys"] = [expand_home(host.key_file)]
            opts = asyncssh.SSHClientConnectionOptions(**kwargs)
            self._options[key] = opts
        return opts, path

    async def _handshake(self, host: Host,
                         tunnel: asyncssh.SSHClientConnection | None) -> asyncssh.SSHClientConnection:
        """One connection attempt (through `tunnel` if given); a host key or
        login refusal raises at once, other failures are left to retry."""
        opts, path = self._options_for(host)
        client = _Client(path, self.accept_new_host_keys, host)
        try:
            async with self._handshakes:
                return await asyncssh.connect(host.address, host.port or (), options=opts,
                                              config=ssh_config_paths(host),
                                              tunnel=tunnel if tunnel is not None else (),
                                              # a config's ProxyCommand runs only when the operator
                                              # trusted that file (config_jump dials `ssh -W` itself)
                                              proxy_command=() if host.connection.trusted_config else None,
                                              client_factory=lambda c=client: c)
        except asyncssh.HostKeyNotVerifiable as exc:
            fp = client.rejected_fingerprint or "?"
            what = "changed" if client.reason == "changed" else "unknown"
            raise HostKeyError(
                host.name, "connect",
                f"host key {what} for {host.address}: server presented {fp} "
                f"(known_hosts {path}){' ' + str(exc.reason) if not client.rejected_fingerprint else ''}",
            ) from None
        except asyncssh.PermissionDenied as exc:
            raise DriverError(host.name, "connect", f"permission denied: {exc.reason}") from None

    async def _tunnel(self, host: Host) -> asyncssh.SSHClientConnection | None:
        """The connection to the last jump hop for `host` (None: direct).
        Hop connections are shared and redialled when closed."""
        tunnel = None
        for i, hop in enumerate(config_jump(host)):
            key = (str(hop), known_hosts_path(host), host.connection.ssh_config, id(tunnel))
            conn = self._jumps.get(key)
            if conn is None or conn.is_closed():
                lock = self._jump_locks.setdefault(key, asyncio.Lock())
                async with lock:
                    conn = self._jumps.get(key)
                    if conn is None or conn.is_closed():
                        try:
                            conn = await self._handshake(hop_host(host, hop, i), tunnel)
                        except DriverError as exc:
                            raise type(exc)(host.name, "connect", f"jump host {hop}: {exc.message}") from None
                        except (TimeoutError, OSError, asyncssh.Error) as exc:
                            msg = getattr(exc, "reason", None) or str(exc) or type(exc).__name__
                            raise OSError(f"jump host {hop}: {msg}") from None
                        self._jumps[key] = conn
            tunnel = conn
        return tunnel

    async def _dial(self, host: Host) -> _Entry:
        delay = 0.2
        last: Exception | None = None
        for attempt in range(self.connect_attempts):
            t0 = time.monotonic()
            try:
                conn = await self._handshake(host, await self._tunnel(host))
            except (TimeoutError, OSError, asyncssh.Error) as exc:
                last = exc
                if attempt + 1 < self.connect_attempts:
                    await asyncio.sleep(delay)
                    delay *= 2.5
                    continue
                break
            dt = time.monotonic() - t0
            self.connect_times.append(dt)
            entry = _Entry(conn=conn, channels=asyncio.Semaphore(self.max_channels), connect_time=dt)
            task = asyncio.get_running_loop().create_task(self._watch(host.name, entry))
            self._watchers.add(task)
            task.add_done_callback(self._watchers.discard)
            return entry
        msg = getattr(last, "reason", None) or str(last) or type(last).__name__
        error = DriverError(host.name, "connect", f"{_target(host)}: {msg}")
        self._down[host.name] = (time.monotonic(), error)
        raise error

    async def _watch(self, name: str, entry: _Entry) -> None:
        try:
            await entry.conn.wait_closed()
        except Exception:  # noqa: BLE001 - only eviction matters here
            pass
        self._evict(name, entry)

    def _evict(self, name: str, entry: _Entry | None = None) -> None:
        cur = self._entries.get(name)
        if cur is not None and (entry is None or cur is entry):
            del self._entries[name]
            cur.conn.close()

    def _retire(self, name: str, entry: _Entry) -> None:
        """Stop handing out this connection; close it once it is idle."""
        if self._entries.get(name) is entry:
            del self._entries[name]
        entry.retired = True
        if entry.inflight == 0:
            entry.conn.close()

    async def _entry(self, host: Host, within: float | None = None) -> _Entry:
        """The host's open connection, dialling if needed; waits at most
        `within` seconds (None: as long as the dial takes)."""
        if self._closing:
            raise DriverError(host.name, "connect", "pool is closed")
        down = self._down.get(host.name)
        if down is not None:
            # A host that just failed every connect attempt fails fast for a
            # while: a dead LB must not cost a full retry cycle per operation.
            if time.monotonic() - down[0] < DOWN_HOLD:
                raise DriverError(host.name, "connect", f"{down[1].message} (unreachable moments ago)")
            del self._down[host.name]
        entry = self._entries.get(host.name)
        if entry is not None and not entry.conn.is_closed():
            return entry
        if entry is not None:
            self._evict(host.name, entry)
        # One dial per host, shared: a caller that stops waiting (a 1 s
        # health probe) neither cancels it nor starts another.
        task = self._dialing.get(host.name)
        if task is None:
            task = asyncio.get_running_loop().create_task(self._open(host))
            self._dialing[host.name] = task
            task.add_done_callback(_retrieve)
        try:
            return await asyncio.wait_for(asyncio.shield(task), within)
        except TimeoutError:
            raise DriverError(host.name, "connect",
                              f"{_target(host)}: no connection within {within:g} s "
                              f"(still dialling)") from None

    async def _open(self, host: Host) -> _Entry:
        try:
            entry = await self._dial(host)
        finally:
            self._dialing.pop(host.name, None)
        if self._closing:
            entry.conn.close()
            raise DriverError(host.name, "connect", "pool is closed")
        self._entries[host.name] = entry
        return entry

    async def connect(self, host: Host) -> float:
        """Open (or reuse) the host's connection; returns the handshake time
        (0 for a local host: there is nothing to open)."""
        if host.connection.kind == "local":
            return 0.0
        return (await self._entry(host)).connect_time

    # -- commands ----------------------------------------------------------

    async def run(self, host: Host, command: str, timeout: float, input: str | bytes | None = None,
                  *, max_output: int = MAX_OUTPUT) -> CommandRecord:
        record, _ = await self.run_bytes(host, command, timeout, input, max_output=max_output)
        return record

    async def run_bytes(self, host: Host, command: str, timeout: float,
                        input: str | bytes | None = None, *,
                        max_output: int = MAX_OUTPUT) -> tuple[CommandRecord, bytes]:
        """Run one command; returns its record and the raw (capped) stdout.

        A non-zero exit is reported in the record, not raised; DriverError is
        raised when the command could not be run at all."""
        wrapped = wrap_command(command, timeout, host.become, host.connection.become_user)
        data = input.encode() if isinstance(input, str) else input
        t0 = time.monotonic()
        if host.connection.kind == "local":
            exit_status, out, err = await self._run_local(host, command, wrapped, data, max_output, timeout, t0)
        else:
            exit_status, out, err = await self._run_remote(host, command, wrapped, data, max_output, timeout, t0)
        record = CommandRecord(
            host=host.name, command=command, exit_status=exit_status,
            duration=time.monotonic() - t0,
            stdout=clean_output(out), stderr=clean_output(err),
        )
        self.report(record)
        return record, out

    async def _run_remote(self, host: Host, command: str, wrapped: str, data: bytes | None,
                          max_output: int, timeout: float, t0: float) -> tuple[int | None, bytes, bytes]:
        attempt = 0
        while True:
            entry = await self._entry(host, within=timeout)

            def fail(op_msg: str) -> DriverError:
                self.report(CommandRecord(host.name, command, None, time.monotonic() - t0, "", op_msg))
                return DriverError(host.name, "run", op_msg)

            try:
                async with entry.channels:
                    entry.inflight += 1
                    try:
                        exit_status, out, err = await asyncio.wait_for(
                            self._exec(entry.conn, wrapped, data, max_output), timeout + 15.0)
                    finally:
                        entry.inflight -= 1
                        if entry.retired and entry.inflight == 0:
                            entry.conn.close()
                if exit_status is None and entry.conn.is_closed():
                    self._evict(host.name, entry)
                    raise fail("connection lost while the command ran")
                return exit_status, out, err
            except asyncssh.ChannelOpenError as exc:
                # The command never started, so retrying is safe. On a live
                # connection this is sshd's MaxSessions (a closed session is
                # freed a moment after the client sees it close): back off and
                # retry on the same connection. A dead or persistently refusing
                # connection is retired (in-flight commands finish) and redialled.
                attempt += 1
                self.channel_retries += 1
                if entry.conn.is_closed():
                    self._evict(host.name, entry)
                elif attempt >= 6:
                    self._retire(host.name, entry)
                if attempt > 7:
                    raise fail(f"cannot open channel: {exc.reason}") from None
                await asyncio.sleep(min(0.5, 0.02 * 2 ** attempt))
            except asyncssh.ConnectionLost as exc:
                self._evict(host.name, entry)
                raise fail(f"connection lost: {exc.reason}") from None
            except TimeoutError:
                raise fail(f"timed out after {timeout:.0f} s: {command[:80]}") from None
            except (OSError, asyncssh.Error) as exc:
                self._evict(host.name, entry)
                msg = getattr(exc, "reason", None) or str(exc) or type(exc).__name__
                raise fail(msg) from None

    async def _run_local(self, host: Host, command: str, wrapped: str, data: bytes | None,
                         max_output: int, timeout: float, t0: float) -> tuple[int | None, bytes, bytes]:
        """`ansible_connection: local`: the same wrapped command, run by sh on
        the controller (as Ansible's local connection does)."""
        try:
            proc = await asyncio.create_subprocess_exec(
                "sh", "-c", wrapped, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE, start_new_session=True)
        except OSError as exc:
            self.report(CommandRecord(host.name, command, None, time.monotonic() - t0, "", str(exc)))
            raise DriverError(host.name, "run", f"cannot start sh on the controller: {exc}") from None
        try:
            out, err = await asyncio.wait_for(proc.communicate(data), timeout + 15.0)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            msg = f"timed out after {timeout:.0f} s: {command[:80]}"
            self.report(CommandRecord(host.name, command, None, time.monotonic() - t0, "", msg))
            raise DriverError(host.name, "run", msg) from None
        status = proc.returncode
        if status is not None and status < 0:
            status = 128 - status
        return status, out[:max_output], err[:max_output]

    async def _exec(self, conn: asyncssh.SSHClientConnection, command: str, data: bytes | None,
                    limit: int) -> tuple[int | None, bytes, bytes]:
        proc = await conn.create_process(command, encoding=None)
        try:
            if data:
                proc.stdin.write(data)
            proc.stdin.write_eof()

            async def drain(stream: asyncssh.SSHReader[bytes]) -> bytes:
                buf = bytearray()
                while True:
                    chunk = await stream.read(65536)
                    if not chunk:
                        return bytes(buf)
                    if len(buf) < limit:
                        buf += chunk[: limit - len(buf)]

            out, err = await asyncio.gather(drain(proc.stdout), drain(proc.stderr))
            await proc.wait_closed()
            status = proc.exit_status
            if (status is None or status < 0) and proc.exit_signal:
                name = str(proc.exit_signal[0])
                signum = getattr(signal, "SIG" + name, None)
                status = 128 + int(signum) if signum is not None else 128 + 15
            elif status is not None and status < 0:
                status = None
            return status, out, err
        finally:
            proc.close()

    def report(self, record: CommandRecord) -> None:
        """Tell the listener (the run's journal and views) about a command that ran."""
        if self.listener is None:
            return
        try:
            self.listener(record)
        except Exception:  # noqa: BLE001 - a broken listener must not break a deploy
            pass

    # -- TCP streams -------------------------------------------------------

    async def open_stream(self, host: Host, remote_port: int,
                          within: float | None = None) -> tuple[Reader, Writer]:
        """(reader, writer) of a TCP stream to 127.0.0.1:remote_port on the
        host: a direct-tcpip channel of its connection, not capped by
        max_channels (a probe must not queue behind long commands); waits at
        most `within` seconds for the connection. A local host's port is on
        the controller. Nothing listening there raises ConnectionRefusedError,
        as a local connect would: the host is fine, its service is not."""
        if host.connection.kind == "local":
            return await asyncio.open_connection("127.0.0.1", remote_port)
        entry = await self._entry(host, within)
        try:
            return await entry.conn.open_connection("127.0.0.1", remote_port)
        except asyncssh.ChannelOpenError as exc:
            raise ConnectionRefusedError(f"{host.name}: 127.0.0.1:{remote_port}: {exc.reason}") from None
        except (OSError, asyncssh.Error) as exc:
            self._evict(host.name, entry)
            raise DriverError(host.name, "connect", f"port {remote_port}: {exc}") from None

    # -- shutdown ----------------------------------------------------------

    async def close(self) -> None:
        self._closing = True
        for task in list(self._dialing.values()):
            task.cancel()
        entries = list(self._entries.values())
        self._entries.clear()
        for e in entries:
            e.conn.close()
        jumps = list(self._jumps.values())
        self._jumps.clear()
        for conn in jumps:
            conn.close()
        for conn in [e.conn for e in entries] + jumps:
            try:
                await asyncio.wait_for(conn.wait_closed(), 5.0)
            except Exception:  # noqa: BLE001
                pass
