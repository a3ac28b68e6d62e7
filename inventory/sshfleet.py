"""FleetDriver over SSH: systemd units on agent hosts, nginx on load balancers.

Every remote command goes through `SshPool.run` (wrapped in coreutils
`timeout`, `sudo -n` when the host says become) and is reported to the
command listener. HTTP to a host (health, /metrics, the nginx marker) goes
over a direct-tcpip channel to the host's 127.0.0.1 (http_get.py), so
nothing but SSH has to be reachable from the console.
"""
from __future__ import annotations

import asyncio
import hashlib
import os
import re
import shlex
import time
from typing import Awaitable, Sequence

from . import access_log, cpu as cpu_mod, host_facts, http_get, lock as lock_mod, systemd
from .clock import Clock
from .driver import (
    CommandListener,
    CommandRecord,
    DriverError,
    HealthSample,
    HostFacts,
    HostKeyError,
    InstanceMetrics,
    LockHolder,
    PoolStats,
)
from .exposition import ExpositionError, read_metrics
from .model import Host, Instance
from .nginx_config import ConfigError, LbState, marker_path, parse_generation, render
from .nginx_workers import RELOAD, old_workers, wait_exited, wait_retired
from .ssh import SshPool
from .validate import clean_text, reported_version

_LISTEN_MARKER = re.compile(r"listen\s+127\.0\.0\.1:(\d+);")
LOG_READ_MAX = 4 * 1024 * 1024
# /metrics and /proc/stat answer in milliseconds; a sample must not wait on
# a dead host for longer than this (gates sample every second or so)
SAMPLE_TIMEOUT = 3.0
# the new config serves about 17 ms after `nginx -s reload`: a coarser poll of
# the marker would add its own interval to every verified change
MARKER_POLL = 0.01


# exit codes of the install script (nginx and coreutils never use these)
_EXIT_WRITE, _EXIT_TEST, _EXIT_RELOAD, _EXIT_CHANGED, _EXIT_EDITED = 90, 92, 93, 94, 95
# the op of a refusal to write over a managed file someone else changed
LB_CHANGED = "lb_changed"
# `_t NAME` prints "@NAME <ns>": the remote steps' times, told apart from the worker PIDs
_STAMP = "_t() { echo \"@$1 $(date +%s%N)\"; }; _t"


def _remote_steps(stdout: str, total: float) -> dict[str, float]:
    """Seconds per step of the install script from its `@NAME ns` stamps:
    write (temp file and swap), nginx_t, reload, and ssh (the round trip:
    channel, `timeout`/`sh` start, the rest of `total`)."""
    stamps: dict[str, int] = {}
    for line in stdout.splitlines():
        name, _, ns = line.partition(" ")
        if name.startswith("@") and ns.strip().isdigit():
            stamps[name[1:]] = int(ns)
    steps: dict[str, float] = {}
    previous = None
    for name, label in (("start", ""), ("written", "write"), ("tested", "nginx_t"), ("reloaded", "reload")):
        if name not in stamps:
            break
        if previous is not None:
            steps[label] = (stamps[name] - stamps[previous]) / 1e9
        previous = name
    steps["ssh"] = max(0.0, total - sum(steps.values()))
    return steps


def slowest(per_lb: Sequence[dict[str, float]]) -> dict[str, float]:
    """Per step, the slowest LB's seconds (the LBs change side by side)."""
    out: dict[str, float] = {}
    for steps in per_lb:
        for name, seconds in steps.items():
            out[name] = round(max(out.get(name, 0.0), seconds), 4)
    return out


def _last_line(text: str) -> str:
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return lines[-1] if lines else ""


def nginx_error_line(stderr: str) -> str:
    """The line of `nginx -t` output that says what is wrong."""
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
    for ln in lines:
        if "[emerg]" in ln or "[error]" in ln or "[crit]" in ln:
            return ln
    return lines[-1] if lines else "nginx -t failed"


def journal_summary(journal: str, app_lines: int = 2) -> str:
    """One line from `journalctl -o short-iso` output: the service's own last
    lines (what it said before dying) and systemd's last verdict, without
    timestamps and host names."""
    msgs = []
    for ln in journal.splitlines():
        parts = ln.split(maxsplit=2)
        if len(parts) == 3 and parts[0][:1].isdigit():
            msgs.append(parts[2])
        elif ln.strip() and not ln.startswith("-- "):
            msgs.append(ln.strip())
    own = [m for m in msgs if not m.startswith("systemd[")]
    verdict = [m for m in msgs if m.startswith("systemd[")]
    picked = own[-app_lines:] + verdict[-1:]
    return " | ".join(picked)


class SshFleet:
    """The real fleet. See FleetDriver for the contract of each method."""

    simulated = False

    def __init__(self, *, nginx_config_path: str, upstream: str, marker_port: int,
                 accept_new_host_keys: bool = False, connect_timeout: float = 10.0,
                 command_timeout: float = 120.0, access_log_path: str | None = None,
                 reload_timeout: float = 5.0):
        self.clock = Clock()
        self.nginx_config_path = nginx_config_path
        self.upstream = upstream
        self.marker_port = marker_port
        self.command_timeout = command_timeout
        self.reload_timeout = reload_timeout
        self.access_log_path = access_log_path or f"/var/log/nginx/rollout-{upstream}.log"
        self.pool = SshPool(accept_new_host_keys=accept_new_host_keys,
                            connect_timeout=connect_timeout)
        self.hosts: list[Host] = []
        self.lbs: list[Host] = []
        self._log_offsets: dict[str, int] = {}
        self._texts: dict[str, str] = {}  # LB -> the managed file's text as last read or installed
        self._retiring: dict[str, list[int]] = {}  # LB -> workers its reloads retired, not yet seen gone (lb_drained)
        self._cpu_prev: dict[str, cpu_mod.CpuReading] = {}
        self.backends_seen: dict[str, int] = {}  # final upstream addr -> requests (last traffic())
        self.lock_dir = lock_mod.LOCK_DIR
        self._lock: lock_mod.LockRecord | None = None
        self._locked: list[Host] = []

    # -- lifecycle ---------------------------------------------------------

    def set_command_listener(self, listener: CommandListener) -> None:
        self.pool.listener = listener

    async def open(self, hosts: Sequence[Host], lbs: Sequence[Host]) -> None:
        """Connect to every host (bounded handshakes) and mark where each LB's
        access log ends, so traffic() counts from now on."""
        self.hosts = list(hosts)
        self.lbs = list(lbs)
        seen: dict[str, Host] = {}
        for h in [*self.hosts, *self.lbs]:
            seen.setdefault(h.name, h)
        results = await asyncio.gather(*(self.pool.connect(h) for h in seen.values()),
                                       return_exceptions=True)
        errors = [r for r in results if isinstance(r, BaseException)]
        if errors:
            errors.sort(key=lambda e: 0 if isinstance(e, HostKeyError) else 1)
            first = errors[0]
            if isinstance(first, DriverError):
                raise first
            raise DriverError("fleet", "open", str(first))
        await asyncio.gather(*(self._init_log_offset(lb) for lb in self.lbs))

    async def close(self) -> None:
        await self.pool.close()

    # -- the rollout lock ----------------------------------------------------

    @property
    def lock_path(self) -> str:
        return lock_mod.lock_path(self.upstream, self.lock_dir)

    async def lock_acquire(self, holder: LockHolder, wait: float, *, break_stale: bool = False,
                           max_age: float = lock_mod.DEFAULT_MAX_AGE,
                           takeover_journal: str | None = None) -> None:
        """Take the lock on every LB (in name order, so two consoles cannot
        deadlock), waiting up to `wait` seconds for a live holder. On refusal
        the LBs already taken are released and LockHeld is raised."""
        record = lock_mod.LockRecord.new(holder, self.upstream)
        self._lock = record
        deadline = time.monotonic() + max(0.0, wait)
        for lb in sorted(self.lbs, key=lambda h: h.name):
            while True:
                try:
                    await self._lock_one(lb, record, break_stale, max_age, takeover_journal)
                    self._locked.append(lb)
                    break
                except lock_mod.LockHeld as held:
                    if held.stale is None and time.monotonic() < deadline:
                        await asyncio.sleep(min(1.0, max(0.05, deadline - time.monotonic())))
                        continue
                    await self.lock_release()
                    raise
                except DriverError:
                    await self.lock_release()
                    raise

    async def _lock_one(self, lb: Host, record: lock_mod.LockRecord, break_stale: bool,
                        max_age: float, takeover_journal: str | None) -> None:
        path = self.lock_path
        for _ in range(3):
            rec = await self._check(lb, "lock", lock_mod.acquire_script(path), 30.0, input=record.to_line())
            if rec.stdout.startswith("ACQUIRED"):
                return
            age, raw = lock_mod.parse_held(rec.stdout)
            held = lock_mod.LockRecord.parse(raw)
            if held is not None and held.token == record.token:
                return  # ours already (a retried command)
            stale = lock_mod.staleness(held, age, max_age=max_age)
            takeover = (stale is not None and held is not None and takeover_journal
                        and held.journal == takeover_journal)
            if stale is None or not (break_stale or takeover):
                raise lock_mod.LockHeld(lb.name, held, stale, raw)
            # judged by its heartbeat: still that old when removed (a holder that touched it since lives)
            min_age = 0.0 if stale.startswith("pid ") else max_age
            script = lock_mod.break_script(path, held.token if held else None, lock_mod.parse_inode(rec.stdout),
                                           min_age)
            done = await self._check(lb, "lock", script, 30.0)
            if done.stdout.startswith("BROKEN"):
                self.pool.report(CommandRecord(lb.name, f"# broke stale rollout lock: {stale}", 0, 0.0))
        raise lock_mod.LockHeld(lb.name, None, None, "lock changed hands while breaking it")

    async def lock_heartbeat(self) -> bool:
        """Touch the lock on every LB; False if it is no longer ours somewhere."""
        if self._lock is None:
            return True
        script = lock_mod.owned_script(self.lock_path, self._lock.token, "touch -c")
        recs = await asyncio.gather(*(self._check(lb, "lock", script, 15.0) for lb in self._locked))
        return all(r.stdout.startswith("OK") for r in recs)

    async def lock_release(self) -> None:
        """Remove the lock where it is still ours; best effort per LB (an
        unreachable LB keeps it, and it goes stale there)."""
        if self._lock is None:
            return
        script = lock_mod.owned_script(self.lock_path, self._lock.token, "rm -f")
        locked, self._locked = self._locked, []
        results = await asyncio.gather(*(self._check(lb, "unlock", script, 15.0) for lb in locked),
                                       return_exceptions=True)
        self._lock = None
        errors = [r for r in results if isinstance(r, BaseException)]
        if errors:
            raise errors[0] if isinstance(errors[0], DriverError) else DriverError("lb", "unlock", str(errors[0]))

    # -- read-only checks ----------------------------------------------------

    async def run_check(self, host: Host, command: str, timeout: float = 30.0, *,
                        version: str | None = None) -> CommandRecord:
        """Run a read-only command; a non-zero exit is in the record."""
        return await self._run(host, command, timeout)

    async def host_facts(self, host: Host, instances: Sequence[Instance], paths: Sequence[str]) -> HostFacts:
        units = [i.unit for i in instances]
        rec = await self._check(host, "reach", host_facts.command(units, paths), 30.0)
        return host_facts.parse(units, paths, rec.stdout)

    # -- plain commands ----------------------------------------------------

    async def _run(self, host: Host, command: str, timeout: float | None = None,
                   input: str | bytes | None = None) -> CommandRecord:
        return await self.pool.run(host, command, timeout or self.command_timeout, input)

    async def _check(self, host: Host, op: str, command: str, timeout: float | None = None,
                     input: str | bytes | None = None) -> CommandRecord:
        rec = await self._run(host, command, timeout, input)
        if not rec.ok:
            detail = _last_line(rec.stderr) or _last_line(rec.stdout) or "no output"
            raise DriverError(host.name, op, f"exit {rec.exit_status}: {detail}")
        return rec

    async def run_commands(self, inst: Instance, commands: Sequence[str], timeout: float,
                           *, version: str | None = None) -> None:
        """Each command gets `timeout` seconds; stop at the first failure.
        (`version` is for simulated fleets; here the commands say it.)"""
        for cmd in commands:
            rec = await self._run(inst.host, cmd, timeout)
            if not rec.ok:
                detail = _last_line(rec.stderr) or _last_line(rec.stdout) or "no output"
                if rec.exit_status == 124:
                    detail = f"timed out after {timeout:.0f} s"
                raise DriverError(inst.host.name, "deploy",
                                  f"{cmd[:120]}: exit {rec.exit_status}: {detail}")

    async def restart(self, inst: Instance) -> None:
        await self._unit_op(inst, "restart", systemd.restart_cmd(inst.unit))

    async def stop(self, inst: Instance) -> None:
        await self._unit_op(inst, "stop", systemd.stop_cmd(inst.unit))

    async def _unit_op(self, inst: Instance, op: str, command: str) -> None:
        rec = await self._run(inst.host, command)
        if rec.ok:
            return
        journal = ""
        try:
            journal = await self.journal_tail(inst, 20)
        except DriverError:
            pass
        detail = journal_summary(journal) or _last_line(rec.stderr) or "no output"
        raise DriverError(inst.host.name, op, f"{inst.unit} exit {rec.exit_status}: {detail}")

    async def journal_tail(self, inst: Instance, lines: int = 50) -> str:
        rec = await self._check(inst.host, "journal", systemd.journal_cmd(inst.unit, lines), 30.0)
        return rec.stdout

    async def unit_cpu(self, inst: Instance) -> float:
        rec = await self._check(inst.host, "cpu", cpu_mod.usage_cmd(inst.unit), SAMPLE_TIMEOUT)
        try:
            used = cpu_mod.parse_usage(rec.stdout)
        except ValueError as exc:
            raise DriverError(inst.host.name, "cpu", str(exc)) from None
        if used is None:
            raise DriverError(inst.host.name, "cpu", f"{inst.unit}: no CPU accounting (CPUUsageNSec not set)")
        cur = cpu_mod.CpuReading(used, time.monotonic())
        prev = self._cpu_prev.get(inst.key)
        self._cpu_prev[inst.key] = cur
        return 0.0 if prev is None else cpu_mod.cores_used(prev, cur)

    # -- HTTP over direct-tcpip channels -------------------------------------

    async def _get(self, host: Host, port: int, path: str, timeout: float) -> http_get.HttpResponse:
        return await http_get.get_within(self.pool.open_stream(host, port, within=timeout), path, timeout)

    async def health(self, inst: Instance, path: str, port: int, timeout: float) -> HealthSample:
        t0 = time.monotonic()
        try:
            r = await self._get(inst.host, port, path, timeout)
        except (http_get.HttpError, DriverError, OSError) as exc:
            return HealthSample(inst.key, False, None, time.monotonic() - t0,
                                detail=f"{type(exc).__name__}: {exc}"[:200])
        latency = time.monotonic() - t0
        try:
            body = r.json()
        except ValueError:
            body = None
        body = body if isinstance(body, dict) else {}
        version, refused = reported_version(body.get("version"))
        ok = r.status_code == 200 and body.get("status") == "ok" and not refused
        detail = refused or ("" if ok else f"HTTP {r.status_code} status={body.get('status')!r}")
        return HealthSample(inst.key, ok, version, latency, clean_text(detail))

    async def instance_metrics(self, inst: Instance, port: int) -> InstanceMetrics:
        """The instance's /metrics, in Prometheus's text format or the older
        JSON (inventory/exposition.py)."""
        try:
            r = await self._get(inst.host, port, "/metrics", SAMPLE_TIMEOUT)
            if r.status_code != 200:
                raise http_get.HttpError(f"HTTP {r.status_code}")
            series = read_metrics(r.body)
        except (http_get.HttpError, ExpositionError, OSError) as exc:
            raise DriverError(inst.host.name, "metrics", f"{type(exc).__name__}: {exc}"[:200]) from None
        return InstanceMetrics(inst.key, series)

    async def inflight(self, inst: Instance) -> int:
        return (await self.instance_metrics(inst, inst.port)).inflight

    # -- nginx -------------------------------------------------------------

    @property
    def _tmp_path(self) -> str:
        d, f = os.path.split(self.nginx_config_path)
        return os.path.join(d, f".{f}.rollout-new")  # not *.conf: never included

    @property
    def _bak_path(self) -> str:
        d, f = os.path.split(self.nginx_config_path)
        return os.path.join(d, f".{f}.rollout-bak")

    async def lb_read(self) -> dict[str, str]:
        out = await asyncio.gather(*(self._read_one(lb) for lb in self.lbs))
        return {lb.name: text for lb, text in zip(self.lbs, out)}

    async def _read_one(self, lb: Host) -> str:
        t = shlex.quote(self.nginx_config_path)
        rec, raw = await self.pool.run_bytes(lb, f"if [ -e {t} ]; then cat {t}; fi",
                                             30.0, max_output=LOG_READ_MAX)
        if not rec.ok:
            raise DriverError(lb.name, "lb_read", f"exit {rec.exit_status}: {_last_line(rec.stderr)}")
        text = raw.decode("utf-8", errors="replace")
        self._texts[lb.name] = text
        return text

    async def lb_apply(self, state: LbState) -> dict[str, float]:
        """Install render(state) on every LB at once.

        Per LB: `nginx -t` checks the configuration nginx would load, i.e.
        the file at its real path (a temp file beside it is not included:
        its name does not end in .conf). So the new text is streamed to a
        temp file, the current file is copied to a backup, the temp file is
        renamed over the target (atomic), and only then `nginx -t` runs. If
        it fails, the backup is renamed back (the running master never saw
        the bad file) and DriverError carries nginx's error line. Otherwise
        `nginx -s reload`, and the reload is *verified* by polling the
        marker server until it answers the new generation (a zero exit
        status does not prove the new config was applied), then by waiting
        until the old workers stopped accepting (nginx_workers says why).
        If verification fails the backup is put back and reloaded before
        raising.

        If one LB fails, LBs that did take the new file are put back to
        their previous text, so all LBs agree. The previous text is the one
        this driver last read or installed there (the rollout lock keeps
        other consoles out), read afresh where unknown.

        Returns seconds per step, the slowest LB's (see _install)."""
        try:
            text = render(state)
        except ConfigError as exc:
            raise DriverError("lb", "lb_apply", str(exc)) from None
        if state.access_log != self.access_log_path:
            self.access_log_path = state.access_log
            self._log_offsets.clear()
            await asyncio.gather(*(self._init_log_offset(lb) for lb in self.lbs))
        previous = dict(self._texts) if all(lb.name in self._texts for lb in self.lbs) else await self.lb_read()
        results = await asyncio.gather(
            *(self._install(lb, text, state.generation, state.marker_port, expected=previous[lb.name])
              for lb in self.lbs),
            return_exceptions=True)
        failed = [r for r in results if isinstance(r, BaseException)]
        self._forget_failed(self.lbs, results)
        if failed:
            done = [lb for lb, r in zip(self.lbs, results) if not isinstance(r, BaseException)]
            if done:
                await asyncio.gather(*(self._install(lb, previous[lb.name],
                                                     parse_generation(previous[lb.name]),
                                                     self._marker_port_of(previous[lb.name]), expected=text)
                                       for lb in done), return_exceptions=True)
            raise failed[0]
        return slowest([r for r in results if isinstance(r, dict)])

    async def lb_restore(self, texts: dict[str, str]) -> dict[str, float]:
        """Write these exact texts back ('' removes the managed file), with
        the same test/reload/verify steps as lb_apply."""
        lbs = [lb for lb in self.lbs if lb.name in texts]
        results = await asyncio.gather(
            *(self._install(lb, texts[lb.name], parse_generation(texts[lb.name]),
                            self._marker_port_of(texts[lb.name]), expected=self._texts.get(lb.name)) for lb in lbs),
            return_exceptions=True)
        self._forget_failed(lbs, results)
        for r in results:
            if isinstance(r, BaseException):
                raise r
        return slowest([r for r in results if isinstance(r, dict)])

    def _forget_failed(self, lbs: Sequence[Host], results: Sequence[object]) -> None:
        """An LB whose install failed is read afresh next time, but for one
        whose file someone else changed: the console's last text stays what
        it expects there, so a rollback refuses to write over the change too."""
        for lb, r in zip(lbs, results):
            if isinstance(r, BaseException) and not (isinstance(r, DriverError) and r.op == LB_CHANGED):
                self._texts.pop(lb.name, None)

    def _marker_port_of(self, text: str) -> int:
        m = _LISTEN_MARKER.search(text)
        return int(m.group(1)) if m else self.marker_port

    def _restore_script(self, written: str) -> str:
        """Put the backup back, but only over the console's own `written`
        text: an edit someone else made after the console wrote (between its
        swap and `nginx -t`, or before the reload re-read the file) is left
        as found, and the script exits _EXIT_EDITED. Soak seed 15 run 34:
        their line landed after `nginx -t`, the reload failed on it, and the
        restore put the console's backup over their edit, unsaid."""
        q = shlex.quote
        target, bak = q(self.nginx_config_path), q(self._bak_path)
        if written:
            digest = hashlib.sha256(written.encode()).hexdigest()
            ours = f"[ \"$(if [ -e {target} ]; then sha256sum < {target} | cut -c1-64; fi)\" = {digest} ]"
        else:
            ours = f"[ ! -e {target} ]"
        return (f"if {ours}; then if [ -e {bak} ]; then mv -f {bak} {target}; else rm -f {target}; fi; "
                f"else rm -f {bak}; exit {_EXIT_EDITED}; fi")

    def install_script(self, text: str, expected: str | None) -> str:
        """The one remote script of an install (see `_install`), fed `text` on stdin.

        It must hold when the console vanishes mid-way (kill -9, a dropped
        link): its stdin then ends early, and `cat` takes a cut file as
        whole, so the temp file must carry the text's own digest before it
        is swapped in; and its stdout is gone, so the shell ignores SIGPIPE
        and HUP rather than die between the swap and `nginx -t`'s restore
        (the harder soak, seed 9 run 75: an empty managed file left in
        place and nginx -t failing on the LB)."""
        q = shlex.quote
        target, tmp, bak = q(self.nginx_config_path), q(self._tmp_path), q(self._bak_path)
        if text:
            digest = hashlib.sha256(text.encode()).hexdigest()
            swap = (f"umask 022; cat > {tmp} || exit {_EXIT_WRITE}; "
                    f"[ \"$(sha256sum < {tmp} | cut -c1-64)\" = {digest} ] || {{ rm -f {tmp}; exit {_EXIT_WRITE}; }}; "
                    f"{{ if [ -e {target} ]; then cp -p {target} {bak}; else rm -f {bak}; fi"
                    f" && mv -f {tmp} {target}; }} || {{ rm -f {tmp}; exit {_EXIT_WRITE}; }}")
        else:
            swap = (f"{{ if [ -e {target} ]; then mv -f {target} {bak}; else rm -f {bak}; fi; }}"
                    f" || exit {_EXIT_WRITE}")
        guard = ""
        if expected is not None:
            was = hashlib.sha256(expected.encode()).hexdigest() if expected else ""
            guard = (f"[ \"$(if [ -e {target} ]; then sha256sum < {target} | cut -c1-64; fi)\" = {q(was)} ]"
                     f" || exit {_EXIT_CHANGED}; ")
        return (f"trap '' PIPE HUP; {_STAMP} start; {guard}{swap}; _t written; "
                f"if ! nginx -t; then {self._restore_script(text)}; exit {_EXIT_TEST}; fi; _t tested; "
                f"{RELOAD} || exit {_EXIT_RELOAD}; _t reloaded")

    async def _install(self, lb: Host, text: str, generation: str | None, marker_port: int,
                       expected: str | None = None) -> dict[str, float]:
        """Write, test, reload and verify on one LB; returns seconds per step.

        `expected`: the text this driver last read or installed there ('' for
        no file). When the file holds anything else, someone else changed it
        between two of the console's changes: nothing is written, nginx is
        not reloaded, and DriverError (op LB_CHANGED) says so; writing over
        it would undo their change unsaid (issue 26, the soak's
        foreign_edit and foreign_broken).

        Three round trips: one script writes the temp file, swaps it in,
        runs `nginx -t` (swapping back on failure: the master never sees
        the bad file), lists the accepting workers and reloads; then the
        marker poll and the wait for the old workers run side by side (both
        must hold; the marker's verdict is reported first, since a reload
        that did not take also leaves the old workers accepting); then the
        backup is removed."""
        script = self.install_script(text, expected)
        started = time.monotonic()
        rec = await self._run(lb, script, 60.0, input=text if text else None)
        steps = _remote_steps(rec.stdout, time.monotonic() - started)
        if rec.exit_status == _EXIT_CHANGED:
            raise DriverError(lb.name, LB_CHANGED, f"{self.nginx_config_path} was changed by someone else since "
                              "the console last read or wrote it: left as found, nginx not reloaded")
        if rec.exit_status == _EXIT_EDITED:
            raise self._edited(lb, f"nginx -t: {nginx_error_line(rec.stderr or rec.stdout)}")
        if rec.exit_status == _EXIT_WRITE:
            raise DriverError(lb.name, "lb_write", f"exit {rec.exit_status}: "
                              f"{_last_line(rec.stderr) or 'no output'}")
        if rec.exit_status == _EXIT_TEST:
            raise DriverError(lb.name, "nginx -t", nginx_error_line(rec.stderr or rec.stdout))
        try:
            if not rec.ok:
                raise DriverError(lb.name, "reload", f"exit {rec.exit_status}: "
                                  f"{_last_line(rec.stderr) or 'no output'}")
            if generation is not None and text:
                pids = old_workers("\n".join(ln for ln in rec.stdout.splitlines() if not ln.startswith("@")))
                marker, retired = await asyncio.gather(self._timed(self._verify(lb, generation, marker_port)),
                                                       self._timed(self._retired(lb, pids)),
                                                       return_exceptions=True)
                if isinstance(marker, BaseException):
                    raise marker
                if isinstance(retired, BaseException):
                    raise retired
                steps["marker"], steps["old_workers"] = marker, retired
                known = self._retiring.setdefault(lb.name, [])
                known += [p for p in pids if p not in known]
        except DriverError as exc:
            put_back = await self._run(lb, self._restore_script(text), 30.0)
            if put_back.exit_status == _EXIT_EDITED:
                raise self._edited(lb, f"{exc.op}: {exc.message}") from None
            await self._run(lb, "nginx -s reload", 60.0)
            raise DriverError(lb.name, exc.op, exc.message + " (previous config restored)") from None
        steps["cleanup"] = await self._timed(self._run(lb, f"rm -f {shlex.quote(self._bak_path)}", 30.0))
        self._texts[lb.name] = text
        return steps

    def _edited(self, lb: Host, failure: str) -> DriverError:
        """Someone else edited the managed file after the console wrote it,
        and the change then failed: nothing was put back over their edit
        (op LB_CHANGED: the console's next write refuses too)."""
        return DriverError(lb.name, LB_CHANGED, f"{self.nginx_config_path} was edited by someone else while the "
                           f"console changed it: left as found, the previous config not put back ({failure})")

    @staticmethod
    async def _timed(aw: Awaitable[object]) -> float:
        """Seconds `aw` took (its result is dropped; its errors raise)."""
        t0 = time.monotonic()
        await aw
        return time.monotonic() - t0

    async def marker(self, lb: Host, marker_port: int | None = None, timeout: float = 2.0) -> str | None:
        """The generation the LB's marker server answers now (None if none)."""
        try:
            r = await self._get(lb, marker_port or self.marker_port, marker_path(self.upstream),
                                timeout)
        except (http_get.HttpError, OSError):
            return None
        return r.text.strip() if r.status_code == 200 else None

    async def _verify(self, lb: Host, generation: str, marker_port: int) -> None:
        deadline = time.monotonic() + self.reload_timeout
        seen = None
        while True:
            seen = await self.marker(lb, marker_port, timeout=1.0)
            if seen == generation:
                return
            if time.monotonic() >= deadline:
                raise DriverError(lb.name, "reload",
                                  f"marker answers {seen!r}, not generation {generation!r} "
                                  f"{self.reload_timeout:.0f} s after reload")
            await asyncio.sleep(MARKER_POLL)

    async def _retired(self, lb: Host, pids: list[int]) -> None:
        """Wait until the workers of the previous config stopped accepting
        (see nginx_workers: the marker alone can answer while they still do)."""
        rec = await self._run(lb, wait_retired(pids, self.reload_timeout),
                              self.reload_timeout + 30.0)
        if not rec.ok:
            raise DriverError(lb.name, "reload",
                              f"workers of the previous config still accept connections "
                              f"{self.reload_timeout:.0f} s after reload (pids {rec.stdout.strip()})")

    async def lb_drained(self, timeout: float) -> bool:
        """Wait until the nginx workers each LB's reloads retired have
        exited, at most `timeout` s; True when they have. Retired, they
        accept nothing new but still forward the requests they hold, under
        the config they had (nginx_workers.wait_exited). Every reload's, not
        only the last one's: a resume's first two changes came 0.4 s apart,
        and the workers the first retired still sent 92 requests to green
        after the drain had stopped it (soak seed 12 run 12 at 32f23ee)."""
        async def one(lb: Host, pids: list[int]) -> bool:
            try:  # bounded as a whole: an LB that went away must not hold the drain for a connect time-out
                gone = (await asyncio.wait_for(self._run(lb, wait_exited(pids, timeout), timeout + 5.0),
                                               timeout + 1.0)).ok
            except (DriverError, TimeoutError):
                return False
            if gone:
                self._retiring.pop(lb.name, None)
            return gone
        retiring = [(lb, self._retiring[lb.name]) for lb in self.lbs if self._retiring.get(lb.name)]
        return all(await asyncio.gather(*(one(lb, pids) for lb, pids in retiring)))

    # -- traffic -----------------------------------------------------------

    def _size_cmd(self) -> str:
        return f"stat -c %s {shlex.quote(self.access_log_path)} 2>/dev/null || echo 0"

    async def _init_log_offset(self, lb: Host) -> None:
        rec = await self._check(lb, "traffic", self._size_cmd(), 30.0)
        try:
            self._log_offsets[lb.name] = int(rec.stdout.split()[0])
        except (ValueError, IndexError):
            self._log_offsets[lb.name] = 0

    async def _read_log(self, lb: Host) -> access_log.ParseResult:
        if lb.name not in self._log_offsets:
            await self._init_log_offset(lb)
            return access_log.ParseResult()
        off = self._log_offsets[lb.name]
        f = shlex.quote(self.access_log_path)
        cmd = (f"sz=$(stat -c %s {f} 2>/dev/null || echo 0); echo \"$sz\"; "
               f"if [ \"$sz\" -gt {off} ]; then tail -c +{off + 1} {f} | head -c {LOG_READ_MAX}; fi")
        rec, raw = await self.pool.run_bytes(lb, cmd, 60.0, max_output=LOG_READ_MAX + 64)
        if not rec.ok:
            raise DriverError(lb.name, "traffic", f"exit {rec.exit_status}: {_last_line(rec.stderr)}")
        head, _, data = raw.partition(b"\n")
        try:
            size = int(head.strip() or b"0")
        except ValueError:
            size = 0
        if size < off:  # rotated or truncated: start over from the beginning
            self._log_offsets[lb.name] = 0
            return await self._read_log(lb)
        cut = data.rfind(b"\n")
        if cut < 0:
            return access_log.ParseResult()  # only a partial line so far
        complete = data[: cut + 1]
        self._log_offsets[lb.name] = off + len(complete)
        return access_log.parse(complete.decode("utf-8", errors="replace"), self.upstream)

    async def traffic(self) -> dict[str, PoolStats]:
        results = await asyncio.gather(*(self._read_log(lb) for lb in self.lbs))
        merged: dict[str, PoolStats] = {}
        backends: dict[str, int] = {}
        for res in results:
            for pool, st in res.pools.items():
                merged.setdefault(pool, PoolStats()).merge(st)
            for addr, n in res.backends.items():
                backends[addr] = backends.get(addr, 0) + n
        self.backends_seen = backends
        return merged
