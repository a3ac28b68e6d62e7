"""The I/O boundary between the engine and a fleet.

The engine (strategies/) decides; a driver does. Two drivers implement this
protocol: `inventory.sshfleet.SshFleet` (real hosts over SSH, systemd, nginx)
and `inventory.simfleet.SimFleet` (in-process, SIMULATED). Everything a
driver reports is a plain value defined here, so the engine never sees
asyncssh, httpx or file formats.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Mapping, Protocol, Sequence

from .clock import Clock
from .exposition import Selector, Series
from .model import Host, Instance
from .nginx_config import LbState
from .validate import reported_version

# What a console tells about itself when it takes the rollout lock: user,
# host, pid, plan, since, journal (inventory/lock.py; other keys are ignored)
LockHolder = Mapping[str, str | int]


class DriverError(Exception):
    """An operation on a host failed. `host` and `op` say where and what;
    the message is one line suitable for an operator."""

    def __init__(self, host: str, op: str, message: str):
        super().__init__(f"{host}: {op}: {message}")
        self.host = host
        self.op = op
        self.message = message


class HostKeyError(DriverError):
    """The host's SSH key is unknown or changed; never retried."""


@dataclass(frozen=True)
class CommandRecord:
    """One remote command as it ran: what the journal and the UI show."""

    host: str
    command: str
    exit_status: int | None
    duration: float
    stdout: str = ""
    stderr: str = ""

    @property
    def ok(self) -> bool:
        return self.exit_status == 0


@dataclass(frozen=True)
class UnitStatus:
    load_state: str
    active_state: str
    sub_state: str = ""

    @property
    def active(self) -> bool:
        return self.load_state == "loaded" and self.active_state == "active"


@dataclass(frozen=True)
class HostFacts:
    """The checklist's facts of one host (inventory/host_facts.py): each
    unit's state, or why systemctl could not say; free bytes per path
    (None: no such path)."""

    units: dict[str, UnitStatus]
    unit_errors: dict[str, str]
    free: dict[str, int | None]


@dataclass(frozen=True)
class HealthSample:
    """One health probe of one instance."""

    instance: str
    ok: bool
    version: str | None
    latency: float
    detail: str = ""


@dataclass(frozen=True)
class InstanceMetrics:
    """What an instance reports about itself on /metrics: every sample
    (inventory/exposition.py), and the few the engine itself needs."""

    instance: str
    series: Series

    @property
    def version(self) -> str | None:
        # held to a release version's rule: it can become a rollback target (inventory/validate.py)
        return reported_version(self.series.label("agent_info", "version"))[0]

    @property
    def inflight(self) -> int:
        return int(self.series.value(Selector("agent_inflight_requests")) or 0)


@dataclass
class BackendStats:
    """What one backend answered over a window: every try nginx sent it,
    including tries that failed and were retried on another backend, and
    the requests behind them: a request counts once per backend it reached
    and failed once when its first try there failed (a judge counts
    requests: one bad request retried shows several failed tries)."""

    tries: int = 0
    failed: int = 0
    latencies: list[float] = field(default_factory=list)
    requests: int = 0
    failed_requests: int = 0

    def merge(self, other: BackendStats) -> None:
        self.tries += other.tries
        self.failed += other.failed
        self.latencies.extend(other.latencies)
        self.requests += other.requests
        self.failed_requests += other.failed_requests


@dataclass
class PoolStats:
    """Client-facing traffic of one pool over a window, from the LB's log.

    A request counts once, by its final status; `retried` counts requests
    nginx had to send to more than one backend, and `hidden` those of them
    that still succeeded: a backend failed them, the client never saw it.
    `backends` attributes every try to the backend that answered it
    ("address:port"), so a judge can weigh the release's instances against
    the others, and a dead old host's failures are its own, not the
    release's."""

    requests: int = 0
    errors: int = 0
    retried: int = 0
    hidden: int = 0
    latencies: list[float] = field(default_factory=list)
    backends: dict[str, BackendStats] = field(default_factory=dict)

    def merge(self, other: PoolStats) -> None:
        self.requests += other.requests
        self.errors += other.errors
        self.retried += other.retried
        self.hidden += other.hidden
        self.latencies.extend(other.latencies)
        for addr, st in other.backends.items():
            self.backends.setdefault(addr, BackendStats()).merge(st)

    def tried(self, addr: str, failed: bool, latency: float | None, again: bool = False) -> None:
        """One try of a request on `addr`; `again` when this request tried
        `addr` before (it is then not another request of that backend)."""
        st = self.backends.setdefault(addr, BackendStats())
        st.tries += 1
        st.failed += failed
        if not again:
            st.requests += 1
            st.failed_requests += failed
        if latency is not None:
            st.latencies.append(latency)


CommandListener = Callable[[CommandRecord], None]


class InstanceDriver(Protocol):
    """What the engine does to one instance: deploy, restart, stop, and ask it
    how it is. Used by the instance operations (strategies/instances.py)."""

    @property
    def clock(self) -> Clock: ...  # read-only here: a fleet may keep a richer clock (SimFleet's ScaledClock)

    async def inflight(self, inst: Instance) -> int: ...

    async def lb_drained(self, timeout: float) -> bool:
        """Wait, at most `timeout` s, until the load balancers forward
        nothing more under a configuration from before their last change
        (nginx's retired workers still send the requests they hold); True
        when they do not. Part of draining an instance that change took out."""

    async def run_commands(self, inst: Instance, commands: Sequence[str], timeout: float,
                           *, version: str | None = None) -> None:
        """Run deploy commands in order (with sudo when the host says
        become); stop at the first non-zero exit. `version` names the release
        the commands install (a simulated fleet needs it; real ones ignore it)."""

    async def restart(self, inst: Instance) -> None: ...

    async def stop(self, inst: Instance) -> None: ...

    async def health(self, inst: Instance, path: str, port: int, timeout: float) -> HealthSample: ...

    async def instance_metrics(self, inst: Instance, port: int) -> InstanceMetrics: ...

    async def unit_cpu(self, inst: Instance) -> float:
        """CPU the instance's own unit used since the previous call, in cores
        (1.0 = one core busy): the service's cgroup, not the machine, so
        neighbours in a container host or a VM do not count."""

    async def journal_tail(self, inst: Instance, lines: int = 50) -> str: ...


class LoadBalancerDriver(Protocol):
    """What the engine does on the load balancers: the managed nginx file,
    the traffic it logs, and the rollout lock. Used by the traffic control
    (strategies/traffic.py) and the engine's lock."""

    @property
    def clock(self) -> Clock: ...

    async def lb_read(self) -> dict[str, str]:
        """The managed nginx file's text on each LB ('' if absent)."""

    async def lb_apply(self, state: LbState) -> dict[str, float]:
        """Render, write atomically, `nginx -t`, reload, and verify the new
        generation is served, on every LB; on failure restore the previous
        file (and reload) before raising. Returns seconds per step where the
        driver measures them (the journal's breakdown of a change), else {}."""

    async def lb_restore(self, texts: dict[str, str]) -> dict[str, float]:
        """Put back exactly these file contents (from lb_read) and verify;
        returns seconds per step as lb_apply does."""

    async def traffic(self) -> dict[str, PoolStats]:
        """Per-pool client traffic seen by the LBs since the previous call."""

    async def lock_acquire(self, holder: LockHolder, wait: float, *, break_stale: bool = False,
                           max_age: float = 120.0, takeover_journal: str | None = None) -> None:
        """Take the rollout lock for this upstream on every LB (inventory/lock.py),
        waiting up to `wait` seconds for a live holder; raises LockHeld
        (a DriverError) naming the holder. A stale lock is broken only with
        `break_stale`, or when its holder's journal is `takeover_journal`."""

    async def lock_heartbeat(self) -> bool:
        """Refresh the lock; False if another console broke it."""

    async def lock_release(self) -> None:
        """Remove the lock where it is still ours."""


class HostChecks(Protocol):
    """Read-only questions to a host: the pre-deployment checklist's."""

    async def run_check(self, host: Host, command: str, timeout: float = 30.0, *,
                        version: str | None = None) -> CommandRecord:
        """Run a read-only check command; a non-zero exit is reported in the
        record, not raised (DriverError only if it could not run)."""

    async def host_facts(self, host: Host, instances: Sequence[Instance], paths: Sequence[str]) -> HostFacts:
        """Each instance's unit state and the free bytes of each path, in one read-only
        command; it running at all is the host's reach check (DriverError,
        with the reason, if it could not)."""


class FleetDriver(InstanceDriver, LoadBalancerDriver, HostChecks, Protocol):
    """A whole fleet: the three narrow protocols above, plus connecting to
    it. Two implementations: `inventory.sshfleet.SshFleet` (real hosts) and
    `inventory.simfleet.SimFleet` (SIMULATED). Every method raises
    DriverError on failure."""

    simulated: bool
    @property
    def clock(self) -> Clock: ...

    def set_command_listener(self, listener: CommandListener) -> None: ...

    async def open(self, hosts: Sequence[Host], lbs: Sequence[Host]) -> None: ...

    async def close(self) -> None: ...
