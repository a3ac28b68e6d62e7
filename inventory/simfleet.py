"""SIMULATED fleet: an in-process stand-in for real hosts.

For the demo, fast engine tests and scale benchmarks; never for tests that
claim to exercise SSH, systemd or nginx. It implements the same FleetDriver
protocol as the SSH driver, so the engine cannot tell the difference, but
every command it reports says "[simulated]" and the console labels the run.

Behaviour per release comes from the inventory variable ``sim_releases``
(``{version: {fail_start, start_delay, health_fail, error_rate, latency_ms,
quality, cpu}}``); a version missing from it fails to install, like a release
that was never built. Client traffic is synthesised at ``sim_rps`` requests
per simulated second and routed by the current load-balancer state exactly
as the rendered nginx config would route it.
"""
from __future__ import annotations

import random
from collections import Counter
from collections.abc import Container, Mapping
from dataclasses import dataclass, fields, replace
from typing import Any, Sequence

from .clock import ScaledClock
from .driver import (
    CommandListener,
    CommandRecord,
    DriverError,
    HealthSample,
    HostFacts,
    InstanceMetrics,
    LockHolder,
    PoolStats,
    UnitStatus,
)
from .exposition import Labels, Series
from .model import Host, Instance
from .nginx_config import Backend, LbState, parse_generation, parse_pools, render
from .validate import show

SIM = "[simulated] "
MAX_SAMPLE = 2000  # synthetic requests per traffic() call, at most


@dataclass(frozen=True)
class SimRelease:
    fail_start: bool = False
    start_delay: float = 0.0
    health_fail: bool = False
    error_rate: float = 0.0
    latency_ms: float = 40.0
    # a good release: 4 sd (0.005) above the seed's 0.95 floor, so a good run's
    # hundreds of samples do not dip below it by chance (at 0.96, 2 sd, they did)
    quality: float = 0.97
    cpu: float = 0.30
    cost_per_request: float = 0.002  # dollars per answered request (agent_cost_dollars_total)

    @classmethod
    def from_vars(cls, raw: object) -> SimRelease:
        """A release from its `sim_releases` entry (unknown keys ignored)."""
        if not isinstance(raw, Mapping):
            if raw:
                raise TypeError(f"a sim_releases entry is a mapping of behaviour, not {show(raw)}")
            raw = {}
        names = {f.name for f in fields(cls)}
        # Any: the SIMULATED fleet's knobs, passed on as the inventory writes them (tests and examples)
        knobs: dict[str, Any] = {k: v for k, v in raw.items() if k in names}
        return cls(**knobs)


@dataclass
class _SimInstance:
    version: str | None
    running: bool
    staged: str | None = None
    requests: int = 0
    errors: int = 0


class SimFleet:
    """In-process fleet; see module docstring. Deterministic for a seed."""

    simulated = True

    def __init__(self, initial_lb: LbState, *, time_scale: float = 1.0, seed: int = 7,
                 restart_seconds: float = 2.0, running_slots: Sequence[str] = ("main", "blue")):
        self.clock = ScaledClock(time_scale)
        self._running_slots = list(running_slots)  # at boot, unless a host sets sim_running_slots
        self._rng = random.Random(seed)
        self._lb_state = initial_lb
        # nginx's workers of the config before the last change still forward the requests
        # they hold for `retire_seconds` (0: a change takes effect at once); see _cut_held
        self.retire_seconds = 0.0
        self._retiring: tuple[LbState, float] | None = None  # (that config, until when)
        self._cut: Counter[str] = Counter()  # pool -> requests lost since the last traffic() call
        self._routes_of: LbState | None = None  # the LB state `_routes` was worked out for
        self._routes: dict[str, tuple[tuple[Backend, ...], tuple[Backend, ...]]] = {}
        self._lb_texts: dict[str, str] = {}
        self._listener: CommandListener = lambda record: None
        self._instances: dict[tuple[str, str], _SimInstance] = {}
        self._by_backend: dict[tuple[str, int], tuple[Host, str]] = {}
        self._hosts: dict[str, Host] = {}
        self._last_traffic = 0.0
        self._carry = 0.0
        self._rps = 100.0
        self._restart_seconds = restart_seconds
        self._lock_holder: dict[str, str | int] | None = None

    # -- lifecycle -----------------------------------------------------
    def set_command_listener(self, listener: CommandListener) -> None:
        self._listener = listener

    async def open(self, hosts: Sequence[Host], lbs: Sequence[Host]) -> None:
        # every host the LB knows runs, as on a real fleet, also those the run does not open (a --limit)
        registered = {h.name: h for h, _slot in self._by_backend.values()}
        for host in {**registered, **{h.name: h for h in hosts}}.values():
            self._hosts[host.name] = host
            running = host.var("sim_running_slots", self._running_slots)
            if not isinstance(running, Container):
                raise DriverError(host.name, "open", f"sim_running_slots: expected a list of slots, got {show(running)}")
            for slot in ("main", "blue", "green"):
                self._instances[(host.name, slot)] = _SimInstance(
                    version=str(host.var("sim_version", "1.0.0")), running=slot in running)
        for lb in lbs:
            self._lb_texts[lb.name] = render(self._lb_state)
            rps = lb.var("sim_rps", self._rps)
            if not isinstance(rps, int | float | str):
                raise DriverError(lb.name, "open", f"sim_rps: expected requests per second, got {show(rps)}")
            self._rps = float(rps)
        self._last_traffic = self.clock.now()

    async def close(self) -> None:
        return None

    def register_ports(self, instances: Sequence[Instance]) -> None:
        """Tell the simulated LB which instance answers on which backend."""
        for inst in instances:
            self._by_backend[(inst.host.address, inst.port)] = (inst.host, inst.slot)

    # -- helpers -------------------------------------------------------
    def _state(self, inst: Instance) -> _SimInstance:
        return self._instances.setdefault(
            (inst.host.name, inst.slot), _SimInstance(version=None, running=False))

    def _release(self, host: Host, version: str | None) -> SimRelease | None:
        releases = host.var("sim_releases", {}) or {}
        if not isinstance(releases, Mapping):
            raise DriverError(host.name, "release", f"sim_releases: expected a mapping of version -> behaviour, "
                                                    f"got {show(releases)}")
        if version is None or version not in releases:
            return None
        return SimRelease.from_vars(releases[version])

    def _record(self, host: str, command: str, status: int, started: float,
                stdout: str = "", stderr: str = "") -> CommandRecord:
        record = CommandRecord(host, SIM + command, status, self.clock.now() - started, stdout, stderr)
        self._listener(record)
        return record

    # -- load balancer -------------------------------------------------
    async def lb_read(self) -> dict[str, str]:
        return dict(self._lb_texts)

    async def lb_apply(self, state: LbState) -> dict[str, float]:
        started = self.clock.now()
        text = render(state)
        await self.clock.sleep(0.05)
        for lb in self._lb_texts:
            self._record(lb, "nginx -t && nginx -s reload", 0, started)
            self._lb_texts[lb] = text
        self._retire(self._lb_state)
        self._lb_state = state
        return {}

    def _retire(self, previous: LbState) -> None:
        if self.retire_seconds > 0:
            self._retiring = (previous, self.clock.now() + self.retire_seconds)

    async def lb_drained(self, timeout: float) -> bool:
        if self._retiring is None:
            return True
        left = self._retiring[1] - self.clock.now()
        if left > 0:
            await self.clock.sleep(min(left, timeout))
        return self.clock.now() >= self._retiring[1]

    def _cut_held(self, inst: Instance) -> None:
        """`inst` stops: a request the retiring workers hold for it goes to
        another server of its pool in their config, and fails (one per pool)
        when none of them answers (SIMULATED; soak seed 9 run 274: green
        units stopped while nginx's retired workers still sent to them)."""
        if self._retiring is None or self.clock.now() >= self._retiring[1]:
            return
        me = (inst.host.address, inst.port)
        for pool, backends in self._retiring[0].pools.items():
            keys = {(b.address, b.port) for b in backends}
            if me in keys and not any(self._running_at(k) for k in keys - {me}):
                self._cut[pool] += 1

    def _running_at(self, key: tuple[str, int]) -> bool:
        owner = self._by_backend.get(key)
        state = self._instances.get((owner[0].name, owner[1])) if owner else None
        return state is not None and state.running

    async def lb_restore(self, texts: dict[str, str]) -> dict[str, float]:
        started = self.clock.now()
        for lb, text in texts.items():
            self._record(lb, f"restore managed config (generation {parse_generation(text)})", 0, started)
            self._lb_texts[lb] = text
        self._retire(self._lb_state)
        first = next(iter(texts.values()), "")
        pools = parse_pools(first, self._lb_state.upstream)
        if pools:
            default = self._lb_state.default_pool if self._lb_state.default_pool in pools else next(iter(pools))
            self._lb_state = replace(self._lb_state, pools=pools, weights={}, default_pool=default, fallback={},
                                     generation=parse_generation(first) or "restored")
        return {}

    # -- the rollout lock (in-process: a simulated fleet has one console) --
    async def lock_acquire(self, holder: LockHolder, wait: float, *, break_stale: bool = False,
                           max_age: float = 120.0, takeover_journal: str | None = None) -> None:
        self._lock_holder = dict(holder)

    async def lock_heartbeat(self) -> bool:
        return True

    async def lock_release(self) -> None:
        self._lock_holder = None

    # -- read-only checks ----------------------------------------------
    async def run_check(self, host: Host, command: str, timeout: float = 30.0, *,
                        version: str | None = None) -> CommandRecord:
        started = self.clock.now()
        if version is not None and self._release(host, version) is None:
            return self._record(host.name, command, 1, started, stderr=f"release {version} not found")
        return self._record(host.name, command, 0, started)

    async def host_facts(self, host: Host, instances: Sequence[Instance], paths: Sequence[str]) -> HostFacts:
        running = {i.unit: self._state(i).running for i in instances}
        return HostFacts({u: UnitStatus("loaded", "active" if up else "failed", "running" if up else "failed")
                          for u, up in running.items()}, {}, {p: 50 * 2**30 for p in paths})

    # -- instance operations ------------------------------------------
    async def inflight(self, inst: Instance) -> int:
        return 0

    async def run_commands(self, inst: Instance, commands: Sequence[str], timeout: float,
                           *, version: str | None = None) -> None:
        state = self._state(inst)
        for command in commands:
            started = self.clock.now()
            await self.clock.sleep(0.3)
            if version is not None and self._release(inst.host, version) is None:
                record = self._record(inst.host.name, command, 1, started,
                                      stderr=f"release {version} not found")
                raise DriverError(inst.host.name, "deploy", f"exit {record.exit_status}: {record.stderr}")
            self._record(inst.host.name, command, 0, started)
        state.staged = version

    async def restart(self, inst: Instance) -> None:
        state = self._state(inst)
        started = self.clock.now()
        version = state.staged or state.version
        release = self._release(inst.host, version) or SimRelease()
        self._cut_held(inst)
        state.running = False
        await self.clock.sleep(self._restart_seconds + release.start_delay)
        state.version = version
        if release.fail_start:
            self._record(inst.host.name, f"systemctl restart {inst.unit}", 1, started,
                         stderr=f"Job for {inst.unit} failed because the control process exited with error code.")
            raise DriverError(inst.host.name, "restart", f"{inst.unit} failed to start (release {version})")
        state.running = True
        state.requests = state.errors = 0
        self._record(inst.host.name, f"systemctl restart {inst.unit}", 0, started)

    async def stop(self, inst: Instance) -> None:
        started = self.clock.now()
        self._cut_held(inst)
        self._state(inst).running = False
        self._record(inst.host.name, f"systemctl stop {inst.unit}", 0, started)

    async def health(self, inst: Instance, path: str, port: int, timeout: float) -> HealthSample:
        state = self._state(inst)
        release = self._release(inst.host, state.version) or SimRelease()
        latency = release.latency_ms / 1000 * (0.5 + self._rng.random())
        await self.clock.sleep(min(latency, timeout))
        if not state.running:
            return HealthSample(inst.key, False, None, latency, "connection refused")
        if release.health_fail:
            return HealthSample(inst.key, False, state.version, latency, "HTTP 503")
        return HealthSample(inst.key, True, state.version, latency, "HTTP 200")

    async def instance_metrics(self, inst: Instance, port: int) -> InstanceMetrics:
        state = self._state(inst)
        release = self._release(inst.host, state.version) or SimRelease()
        labels: Labels = (("slot", inst.slot), ("version", state.version or ""))
        answered = float(state.requests - state.errors)
        samples = {("agent_info", labels): 1.0, ("agent_inflight_requests", labels): 0.0,
                   ("agent_requests_total", (*labels, ("status", "200"))): answered,
                   ("agent_requests_total", (*labels, ("status", "500"))): float(state.errors),
                   ("agent_errors_total", labels): float(state.errors),
                   ("agent_cost_dollars_total", labels): answered * release.cost_per_request}
        if state.running:
            samples[("agent_quality_score", labels)] = min(1.0, max(0.0, release.quality + self._rng.gauss(0, 0.005)))
        return InstanceMetrics(inst.key, Series(samples))

    async def unit_cpu(self, inst: Instance) -> float:
        state = self._state(inst)
        if not state.running:
            return 0.0
        release = self._release(inst.host, state.version) or SimRelease()
        return max(0.0, release.cpu + self._rng.gauss(0, 0.02))

    async def journal_tail(self, inst: Instance, lines: int = 50) -> str:
        state = self._state(inst)
        return (f"{SIM}{inst.unit}: version {state.version} "
                f"{'running' if state.running else 'stopped'}; requests {state.requests}\n")

    # -- synthetic client traffic --------------------------------------
    async def traffic(self) -> dict[str, PoolStats]:
        """Requests since the last call, at `sim_rps` per simulated second,
        sampled down to at most MAX_SAMPLE requests: at a high time scale a
        full count would cost more real time than it simulates."""
        now = self.clock.now()
        due = self._rps * max(0.0, now - self._last_traffic) + self._carry
        self._last_traffic = now
        count = int(due)
        self._carry = due - count
        stats: dict[str, PoolStats] = {}
        for pool, lost in self._cut.items():
            st = stats.setdefault(pool, PoolStats())
            st.requests, st.errors = st.requests + lost, st.errors + lost
        self._cut.clear()
        for _ in range(min(count, MAX_SAMPLE)):
            pool = self._pick_pool()
            self._serve(pool, stats.setdefault(pool, PoolStats()))
        return stats

    def _pick_pool(self) -> str:
        state = self._lb_state
        roll = self._rng.random() * 100
        acc = 0.0
        for pool, weight in sorted(state.weights.items(), key=lambda pw: pw[1]):
            acc += weight
            if roll < acc and state.pools.get(pool):
                return pool
        return state.default_pool

    def _route(self, pool: str) -> tuple[tuple[Backend, ...], tuple[Backend, ...]]:
        """(servers, backup servers not among them) of `pool` in the current
        LB state, worked out once per state: per request it cost O(pool x
        backups) comparisons, which at 1,000+ hosts made every simulated
        request cost milliseconds of real time (and, at a high time scale,
        that real time became simulated time full of more requests)."""
        lb = self._lb_state
        if self._routes_of is not lb:
            self._routes_of, self._routes = lb, {}
        route = self._routes.get(pool)
        if route is None:
            backends = tuple(lb.pools.get(pool, ()))
            own = set(backends)
            spare = tuple(b for b in lb.pools.get(lb.fallback.get(pool, ""), ()) if b not in own)
            route = self._routes[pool] = (backends, spare)
        return route

    def _serve(self, pool: str, stats: PoolStats) -> None:
        """One request as nginx would serve it: a random backend of the pool,
        the next one on a connection failure (proxy_next_upstream, up to 3
        tries; the pool's backup servers after all of its own), a 502 when
        none answers."""
        backends, spare = self._route(pool)
        stats.requests += 1
        start = self._rng.randrange(len(backends)) if backends else 0
        for attempt in range(min(3, len(backends) + len(spare))):
            # the pool's servers from a random one round, then its backups
            backend = backends[(start + attempt) % len(backends)] if attempt < len(backends) \
                else spare[attempt - len(backends)]
            owner = self._by_backend.get((backend.address, backend.port))
            if owner is None:
                continue
            state = self._instances.get((owner[0].name, owner[1]))
            if state is None or not state.running:
                stats.tried(str(backend), True, None)
                continue
            release = self._release(owner[0], state.version) or SimRelease()
            state.requests += 1
            latency = self._rng.lognormvariate(0, 0.35) * release.latency_ms / 1000
            stats.latencies.append(latency)
            failed = self._rng.random() < release.error_rate
            stats.tried(str(backend), failed, latency)
            if failed:
                state.errors += 1
                stats.errors += 1
            if attempt:
                stats.retried += 1
                stats.hidden += not failed
            return
        stats.errors += 1
        stats.latencies.append(0.001)
